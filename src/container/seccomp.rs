//! The seccomp profile of our containers: Podman's default, plus rules that
//! refuse setting the setuid or setgid bit. Without them a command that
//! runs as root (rootful; no capabilities needed) can `chmod 4755` a file
//! it wrote into the workdir and leave a setuid-root program on the host,
//! where `no-new-privileges` and `nosuid` do not reach.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::state::Bucket;

/// Podman's default profile (containers-common), which ours extends.
const DEFAULT: &str = "/usr/share/containers/seccomp.json";

/// Where our profile goes under the cache, if Podman's default is there
/// to extend (else Podman's built-in default applies, unextended).
pub fn path(cache: &Path) -> Option<PathBuf> {
    Path::new(DEFAULT)
        .is_file()
        .then(|| cache.join(Bucket::PodmanConf.name()).join("seccomp.json"))
}

/// Writes our profile to `path` unless it is there already.
pub fn ensure(path: &Path) -> Result<()> {
    let Some(bytes) = fsutil::read_root_file(Path::new(DEFAULT))? else {
        return Err(Error::failed(format!(
            "{DEFAULT} is gone; reinstall containers-common"
        )));
    };
    let mut profile: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::failed(format!("{DEFAULT}: {e}; reinstall containers-common")))?;
    let Some(syscalls) = profile.get_mut("syscalls").and_then(Value::as_array_mut) else {
        return Err(Error::failed(format!(
            "{DEFAULT} has no syscalls list; reinstall containers-common"
        )));
    };
    // libseccomp lets an unconditional rule shadow every conditional rule
    // of the same syscall: ours are taken out of the default's allow-all
    // lists and allowed again only on conditions (see `rules`).
    for rule in syscalls.iter_mut() {
        let unconditional = rule
            .get("args")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if unconditional
            && rule["action"] == "SCMP_ACT_ALLOW"
            && let Some(names) = rule.get_mut("names").and_then(Value::as_array_mut)
        {
            names.retain(|n| !GUARDED.iter().any(|(g, _, _)| n == g) && n != "openat2");
        }
    }
    syscalls.extend(rules());
    let text = serde_json::to_string(&profile).unwrap_or_default();
    if std::fs::read(path).is_ok_and(|b| b == text.as_bytes()) {
        return Ok(());
    }
    fsutil::write_atomic(path, text.as_bytes())
}

/// The syscalls that can give a file a mode: (name, index of its mode
/// argument, index of its flags argument when only some calls create).
const GUARDED: &[(&str, u32, Option<u32>)] = &[
    ("chmod", 1, None),
    ("fchmod", 1, None),
    ("fchmodat", 2, None),
    ("mknod", 1, None),
    ("mknodat", 2, None),
    ("creat", 1, None),
    ("open", 2, Some(1)),
    ("openat", 3, Some(2)),
];

/// Each guarded syscall allowed when its mode has neither the setuid nor
/// the setgid bit (or, for open, when it creates nothing), and EPERM
/// otherwise; openat2, whose mode seccomp cannot see, is ENOSYS.
fn rules() -> Vec<Value> {
    let suid_sgid = u64::from(libc::S_ISUID | libc::S_ISGID);
    let masked = |index: u32, mask: u64, value: u64| json!({"index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"});
    let rule = |name: &str, action: &str, args: Vec<Value>| json!({"names": [name], "action": action, "errnoRet": libc::EPERM, "args": args});
    // O_TMPFILE without O_DIRECTORY's bits: the flag that makes a file.
    let tmpfile = (libc::O_TMPFILE & !libc::O_DIRECTORY) as u64;
    let creating = [libc::O_CREAT as u64, tmpfile];
    let mut out = Vec::new();
    for &(name, mode, flags) in GUARDED {
        out.push(rule(
            name,
            "SCMP_ACT_ALLOW",
            vec![masked(mode, suid_sgid, 0)],
        ));
        match flags {
            None => {
                for bit in [libc::S_ISUID, libc::S_ISGID].map(u64::from) {
                    out.push(rule(name, "SCMP_ACT_ERRNO", vec![masked(mode, bit, bit)]));
                }
            }
            Some(flags) => {
                // Opening without creating: any mode argument (it is unused).
                out.push(rule(
                    name,
                    "SCMP_ACT_ALLOW",
                    vec![masked(flags, creating[0] | creating[1], 0)],
                ));
                for c in creating {
                    for bit in [libc::S_ISUID, libc::S_ISGID].map(u64::from) {
                        out.push(rule(
                            name,
                            "SCMP_ACT_ERRNO",
                            vec![masked(flags, c, c), masked(mode, bit, bit)],
                        ));
                    }
                }
            }
        }
    }
    // Its mode is in a struct seccomp cannot read: callers fall back to
    // openat when it is missing.
    out.push(json!({"names": ["openat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS, "args": []}));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_to_a_setuid_file_is_refused() {
        let r = rules();
        let names: Vec<&str> = r.iter().filter_map(|v| v["names"][0].as_str()).collect();
        for n in [
            "chmod", "fchmod", "fchmodat", "mknod", "mknodat", "creat", "open", "openat", "openat2",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        let chmod: Vec<&Value> = r.iter().filter(|v| v["names"][0] == "chmod").collect();
        assert_eq!(
            chmod.len(),
            3,
            "allowed without the bits, refused with either"
        );
        assert_eq!(chmod[0]["args"][0]["value"], 0o6000);
        assert_eq!(chmod[1]["args"][0]["valueTwo"], 0o4000);
    }
}
