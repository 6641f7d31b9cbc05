//! Which Nix the nixpkgs of a build needs. nixpkgs says it in
//! `lib/minver.nix` and aborts evaluation with "This version of Nixpkgs
//! requires Nix >= X" on an older one, which a user meets only deep in a
//! cold build. We read it before: from the locked nixpkgs of our flake
//! when it is in the store (its path follows from the lock's narHash),
//! from a local `--nixpkgs` path, else the known minimum of our lock.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// What the nixpkgs of our flake.lock needs (its `lib/minver.nix`), for
/// when it is not in the store yet to be read.
pub const PINNED_MIN_NIX: (u32, u32) = (2, 18);

/// Flakes (and so our flake) need at least this Nix.
pub const FLAKES_MIN_NIX: (u32, u32) = (2, 4);

/// The Nix a build's nixpkgs needs, and how that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub version: (u32, u32),
    pub why: String,
}

/// The Nix that the nixpkgs of `flake`/`nixpkgs` (as --flake/--nixpkgs
/// give them) needs; None when that cannot be told here (another flake,
/// or a nixpkgs that is not on this machine).
pub fn needs(flake: Option<&str>, nixpkgs: Option<&str>) -> Option<Need> {
    if flake.is_some() {
        return None;
    }
    match nixpkgs {
        Some(reference) => {
            let dir = local_dir(reference)?;
            let version = min_nix_in(&dir).unwrap_or(FLAKES_MIN_NIX);
            Some(Need {
                version,
                why: format!("--nixpkgs {reference}"),
            })
        }
        None => {
            let locked = locked_store_path(include_str!("../../flake.lock"));
            match locked.as_deref().and_then(min_nix_in) {
                Some(version) => Some(Need {
                    version,
                    why: "the pinned nixpkgs".into(),
                }),
                None => Some(Need {
                    version: PINNED_MIN_NIX,
                    why: "the pinned nixpkgs".into(),
                }),
            }
        }
    }
}

/// `major.minor` in a nixpkgs tree's `lib/minver.nix` (`"2.18"`).
fn min_nix_in(dir: &Path) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(dir.join("lib/minver.nix")).ok()?;
    let quoted = text.lines().find_map(|l| {
        let l = l.trim();
        (!l.starts_with('#')).then(|| l.split('"').nth(1)).flatten()
    })?;
    let mut parts = quoted.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A `path:` or absolute reference's directory.
fn local_dir(reference: &str) -> Option<PathBuf> {
    let path = reference.strip_prefix("path:").unwrap_or(reference);
    let path = path.split('?').next()?;
    Path::new(path)
        .is_absolute()
        .then(|| PathBuf::from(path))
        .filter(|p| p.is_dir())
}

/// The store path Nix gives the locked `nixpkgs` of `lock`: a source
/// tree is stored under a path fixed by its NAR hash and the name `source`.
pub fn locked_store_path(lock: &str) -> Option<PathBuf> {
    let v: serde_json::Value = serde_json::from_str(lock).ok()?;
    let sri = v["nodes"]["nixpkgs"]["locked"]["narHash"].as_str()?;
    Some(source_path(&nar_hash(sri)?))
}

/// The 32 bytes of an SRI `sha256-...` hash.
fn nar_hash(sri: &str) -> Option<[u8; 32]> {
    let b64 = sri.strip_prefix("sha256-")?;
    let mut out = Vec::with_capacity(32);
    let (mut acc, mut bits) = (0u32, 0);
    for c in b64.bytes().take_while(|&c| c != b'=') {
        let d = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(d);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out.try_into().ok()
}

/// Nix's `makeFixedOutputPath` for a recursive sha256 named `source`.
fn source_path(nar: &[u8; 32]) -> PathBuf {
    let hex: String = nar.iter().map(|b| format!("{b:02x}")).collect();
    let digest = Sha256::digest(format!("source:sha256:{hex}:/nix/store:source"));
    let mut short = [0u8; 20];
    for (i, b) in digest.iter().enumerate() {
        short[i % 20] ^= b;
    }
    PathBuf::from(format!("/nix/store/{}-source", nix_base32(&short)))
}

/// Nix's base32: its own alphabet, last bits first.
fn nix_base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let len = (bytes.len() * 8).div_ceil(5);
    (0..len)
        .rev()
        .map(|n| {
            let (i, j) = (n * 5 / 8, n * 5 % 8);
            let low = u16::from(bytes[i]) >> j;
            let high = bytes.get(i + 1).map_or(0, |&b| u16::from(b) << (8 - j));
            ALPHABET[usize::from((low | high) & 0x1f)] as char
        })
        .collect()
}

/// The version a "requires Nix >= X" abort of nixpkgs names, if `log` has one.
pub fn required_by_abort(log: &str) -> Option<String> {
    let rest = &log[log.find("requires Nix >= ")? + "requires Nix >= ".len()..];
    let v: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v = v.trim_end_matches('.').to_owned();
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_source_has_the_store_path_nix_gives_it() {
        // `nix flake metadata --json` of tests/fixtures/nixpkgs, Nix 2.8.
        let lock = r#"{"nodes":{"nixpkgs":{"locked":{"narHash":"sha256-s1M+pvOX03YWSXJGnLuBWyFNgSgucutGYKP5vcXebGA="}}}}"#;
        assert_eq!(
            locked_store_path(lock).unwrap(),
            Path::new("/nix/store/r1yx6y06mpsmgdryg4m9c0jcc9hindhk-source")
        );
        assert!(locked_store_path(include_str!("../../flake.lock")).is_some());
        assert_eq!(nar_hash("sha256-short"), None);
    }

    #[test]
    fn minver_is_read_from_nixpkgs_and_from_its_abort() {
        let dir = crate::testutil::TempDir::new("minver");
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(
            dir.join("lib/minver.nix"),
            "# Expose the minimum required version for evaluating Nixpkgs\n\"2.18\"\n",
        )
        .unwrap();
        assert_eq!(min_nix_in(&dir), Some((2, 18)));
        let reference = format!("path:{}", dir.display());
        assert_eq!(needs(None, Some(&reference)).unwrap().version, (2, 18));
        assert_eq!(needs(Some("github:x/y"), None), None);
        assert_eq!(needs(None, Some("nixpkgs")), None);
        assert_eq!(
            required_by_abort("error: evaluation aborted with the following error message: '\n    This version of Nixpkgs requires Nix >= 2.18, please upgrade:").as_deref(),
            Some("2.18")
        );
        assert_eq!(required_by_abort("error: other"), None);
    }
}
