# Placeholder: at run time lectic-nix-sandbox writes the contents of
# --nix-packages-file here, in its own copy of this flake.
[ ]
