//! Whether this binary can be the agent: it is mounted into containers
//! whose images have no libc of ours, so it must be statically linked (no
//! ELF interpreter). `scripts/test`, `cargo build` (see .cargo/config.toml)
//! and the flake build it so; other builds fall back to `podman exec`.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This executable, if it can run inside a container; else why not.
pub fn usable() -> Result<&'static Path, &'static str> {
    static FOUND: OnceLock<Result<PathBuf, &'static str>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|_| "cannot find this executable")?;
            // Podman's --volume syntax cannot carry these in a path.
            if exe.to_str().is_none_or(|s| s.contains([':', ','])) {
                return Err("the path of this executable has ':' or ',' in it");
            }
            match is_static(&exe) {
                Some(true) => Ok(exe),
                Some(false) => Err("this executable is dynamically linked (build it with -C target-feature=+crt-static)"),
                None => Err("this executable is not a readable ELF file"),
            }
        })
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(|e| *e)
}

/// Whether the ELF file at `path` has no program interpreter (PT_INTERP);
/// None if it is not a 64-bit little-endian ELF file we can read.
pub fn is_static(path: &Path) -> Option<bool> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut header = [0u8; 64];
    f.read_exact(&mut header).ok()?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(header[32..40].try_into().ok()?) as usize;
    let (phentsize, phnum) = (u16_at(&header, 54), u16_at(&header, 56));
    if phentsize < 4 || phnum > 4096 {
        return None;
    }
    let need = phoff.checked_add(phentsize.checked_mul(phnum)?)?;
    let mut table = Vec::with_capacity(need.min(1 << 20));
    f.rewind().ok()?;
    f.take(need as u64).read_to_end(&mut table).ok()?;
    if table.len() < need {
        return None;
    }
    const PT_INTERP: u32 = 3;
    Some(!(0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(table[o..o + 4].try_into().unwrap()) == PT_INTERP
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_is_not_static_and_text_is_not_elf() {
        // Debian's sh (dash) is dynamically linked.
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        assert_eq!(is_static(&sh), Some(false), "{}", sh.display());
        let dir = crate::testutil::TempDir::new("elf");
        let text = dir.join("script");
        std::fs::write(&text, "#!/bin/sh\n").unwrap();
        assert_eq!(is_static(&text), None);
    }

    #[test]
    fn the_test_binary_is_static_as_the_build_configuration_asks() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(is_static(&exe), Some(true), "see .cargo/config.toml");
    }
}
