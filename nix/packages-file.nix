# Evaluates a --nix-packages-file. It may be
#   - a list of derivations,
#   - an attrset { packages = [ ... ]; }, or
#   - a function taking { pkgs, callPackage } and returning either.
# Errors start with "lectic-nix-sandbox:" so the binary can show them with
# the user's file name.
{ pkgs, file }:
let
  raw = import file;
  args = { inherit pkgs; inherit (pkgs) callPackage; };
  formals = builtins.functionArgs raw;
  value =
    if builtins.isFunction raw then
      raw (if formals == { } then args else builtins.intersectAttrs formals args)
    else raw;
  list =
    if builtins.isList value then value
    else if builtins.isAttrs value && !(pkgs.lib.isDerivation value) && value ? packages then
      (if builtins.isList value.packages then value.packages
       else throw "lectic-nix-sandbox: `packages` must be a list of derivations, not a ${builtins.typeOf value.packages}")
    else
      throw "lectic-nix-sandbox: expected a list of derivations, an attrset { packages = [ ... ]; } or a function { pkgs, callPackage } returning either, but got ${if pkgs.lib.isDerivation value then "a single derivation (wrap it in [ ])" else "a ${builtins.typeOf value}"}";
  check = i: p:
    if pkgs.lib.isDerivation p then p
    else throw "lectic-nix-sandbox: element ${toString i} of the package list is a ${builtins.typeOf p}, not a derivation";
in
builtins.genList (i: check i (builtins.elemAt list i)) (builtins.length list)
