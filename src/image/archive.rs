//! What Nix built, read as it streams to `podman load`: a docker archive
//! (tar) whose `manifest.json` names the image's config file. The config's
//! sha256 is the image ID Podman must report once it has loaded it, and
//! the config lists every layer's digest (`rootfs.diff_ids`), which Podman
//! checks against the layers it unpacks. So comparing the two IDs proves
//! that the image in the store is the one Nix built, whatever passed
//! through Podman's scratch space on the way.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

const BLOCK: usize = 512;
/// Metadata members (the manifest, the config) are kept up to this size;
/// an image's config is a few KiB.
const JSON_LIMIT: u64 = 16 << 20;

/// A tar stream's reader that keeps its small `.json` members.
#[derive(Default)]
pub struct Archive {
    /// The current header being gathered, or the member's data.
    header: Vec<u8>,
    /// Bytes left of the current member's data (padded to blocks).
    left: u64,
    /// Unpadded size of the current member.
    size: u64,
    /// Name of the current member, when it is kept.
    keep: Option<String>,
    data: Vec<u8>,
    /// A long name (GNU `L` or pax `path`) for the next member.
    long_name: Option<String>,
    /// Whether the current member is a long-name record itself.
    meta: Option<u8>,
    kept: Vec<(String, Vec<u8>)>,
    /// Bytes seen so far.
    pub seen: u64,
}

impl Archive {
    /// The sha256 (hex) of the config that `manifest.json` names, if the
    /// stream was a docker archive of one image.
    pub fn config_digest(&self) -> Result<String, String> {
        let member = |name: &str| {
            self.kept
                .iter()
                .find(|(n, _)| n.trim_start_matches("./") == name)
                .map(|(_, d)| d)
        };
        let manifest = member("manifest.json").ok_or("it has no manifest.json")?;
        let manifest: serde_json::Value = serde_json::from_slice(manifest)
            .map_err(|e| format!("its manifest.json is not JSON ({e})"))?;
        let images = manifest
            .as_array()
            .ok_or("its manifest.json is not a list")?;
        let [image] = images.as_slice() else {
            return Err(format!("it holds {} images, not one", images.len()));
        };
        let name = image["Config"]
            .as_str()
            .ok_or("its manifest.json names no Config")?;
        let config = member(name).ok_or_else(|| format!("it has no {name}"))?;
        Ok(format!("{:x}", Sha256::digest(config)))
    }

    fn end_of_header(&mut self) {
        let h = std::mem::take(&mut self.header);
        if h.iter().all(|&b| b == 0) {
            return; // the end-of-archive blocks
        }
        let field = |from: usize, len: usize| {
            let f = &h[from..from + len];
            let end = f.iter().position(|&b| b == 0).unwrap_or(len);
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let size = u64::from_str_radix(field(124, 12).trim(), 8).unwrap_or(0);
        let kind = h[156];
        let mut name = field(0, 100);
        if &h[257..262] == b"ustar" {
            let prefix = field(345, 155);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        self.size = size;
        self.left = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        self.meta = None;
        self.keep = None;
        match kind {
            b'L' | b'x' if size <= JSON_LIMIT => {
                self.meta = Some(kind);
                self.keep = Some(String::new());
            }
            b'0' | 0 => {
                let name = self.long_name.take().unwrap_or(name);
                if name.ends_with(".json") && size <= JSON_LIMIT {
                    self.keep = Some(name);
                }
            }
            _ => self.long_name = None,
        }
        self.data.clear();
    }

    fn end_of_member(&mut self) {
        let data = std::mem::take(&mut self.data);
        match (self.meta.take(), self.keep.take()) {
            (Some(b'L'), _) => {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                self.long_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            (Some(_), _) => {
                // pax records: "LEN path=NAME\n"
                self.long_name = String::from_utf8_lossy(&data).lines().find_map(|l| {
                    l.split_once(' ')
                        .and_then(|(_, kv)| kv.strip_prefix("path="))
                        .map(str::to_owned)
                });
            }
            (None, Some(name)) => self.kept.push((name, data)),
            (None, None) => {}
        }
    }
}

impl Write for Archive {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        self.seen += n as u64;
        while !buf.is_empty() {
            if self.left == 0 {
                let take = (BLOCK - self.header.len()).min(buf.len());
                self.header.extend_from_slice(&buf[..take]);
                buf = &buf[take..];
                if self.header.len() == BLOCK {
                    self.end_of_header();
                    if self.left == 0 {
                        self.end_of_member();
                    }
                }
                continue;
            }
            let take = (self.left.min(buf.len() as u64)) as usize;
            if self.keep.is_some() {
                let used = self.size.saturating_sub(self.data.len() as u64) as usize;
                self.data.extend_from_slice(&buf[..take.min(used)]);
            }
            buf = &buf[take..];
            self.left -= take as u64;
            if self.left == 0 {
                self.end_of_member();
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `members` made by the system's tar (GNU tar on Debian).
    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let dir = crate::testutil::TempDir::new("archive");
        for (name, data) in members {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        let names: Vec<&str> = members.iter().map(|(n, _)| *n).collect();
        let out = std::process::Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("-cf")
            .arg("-")
            .args(&names)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn the_config_digest_is_found_whatever_the_order_and_the_write_sizes() {
        let config = br#"{"rootfs":{"diff_ids":["sha256:aa"]}}"#;
        let long = format!("{}/layer.tar", "d".repeat(120));
        let manifest = br#"[{"Config":"c0ffee.json","Layers":["x/layer.tar"]}]"#;
        let layer = vec![7u8; 3000];
        let want = format!("{:x}", Sha256::digest(config));
        for members in [
            vec![
                ("x/layer.tar", &layer[..]),
                (long.as_str(), &layer[..]),
                ("c0ffee.json", &config[..]),
                ("manifest.json", &manifest[..]),
            ],
            vec![
                ("manifest.json", &manifest[..]),
                ("c0ffee.json", &config[..]),
                ("x/layer.tar", &layer[..]),
            ],
        ] {
            let tar = tar_of(&members);
            for chunk in [1, 511, 512, 4096, tar.len()] {
                let mut a = Archive::default();
                for piece in tar.chunks(chunk) {
                    a.write_all(piece).unwrap();
                }
                assert_eq!(a.config_digest().as_deref(), Ok(want.as_str()), "{chunk}");
            }
        }
    }

    #[test]
    fn a_stream_that_is_not_one_image_is_named_for_what_it_lacks() {
        let mut a = Archive::default();
        a.write_all(&tar_of(&[("other.json", b"{}")])).unwrap();
        assert_eq!(a.config_digest(), Err("it has no manifest.json".into()));
        let mut a = Archive::default();
        a.write_all(&tar_of(&[("manifest.json", b"[{\"Config\":\"c.json\"}]")]))
            .unwrap();
        assert_eq!(a.config_digest(), Err("it has no c.json".into()));
    }
}
