//! `--install-plugin [DIR]`: the Lectic plugin directory, a `lectic.yaml`
//! whose `sandbox:` runs this binary, so `imports: - plugin: nix-sandbox`
//! works. Idempotent: an up-to-date file is left alone.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil;

/// This binary as the user reaches it: the path it was run by, or where
/// PATH finds it (a profile link survives upgrades; the store path behind
/// it does not), else the executable itself.
fn this_binary() -> Result<PathBuf> {
    if let Some(argv0) = std::env::args_os().next() {
        let p = PathBuf::from(&argv0);
        if p.components().count() > 1 {
            let cwd = std::env::current_dir()
                .map_err(|e| Error::os("cannot read the current directory", e))?;
            return Ok(cwd.join(p));
        }
        if let Some(found) = fsutil::on_path(&argv0) {
            return Ok(found);
        }
    }
    std::env::current_exe().map_err(|e| Error::os("cannot find this executable", e))
}

/// Lectic splits the `sandbox:` string on whitespace; quotes group.
fn sandbox_line(bin: &str) -> Result<String> {
    if bin.contains(['\'', '"', '\n', '$']) {
        return Err(Error::usage(format!(
            "--install-plugin: Lectic cannot name {bin} in a sandbox line; install the binary under a plainer path"
        )));
    }
    Ok(if bin.contains(char::is_whitespace) {
        format!("sandbox: \"'{bin}'\"")
    } else {
        format!("sandbox: {bin}")
    })
}

pub fn install(cfg: &Config) -> Result<Value> {
    let dir = cfg.plugin_dir.clone().unwrap_or_default();
    let bin = this_binary()?;
    let line = sandbox_line(&bin.to_string_lossy())?;
    let text = format!(
        "# The lectic-nix-sandbox plugin for Lectic, written by\n\
         # `lectic-nix-sandbox --install-plugin`. With\n#\n#   imports:\n#     - plugin: nix-sandbox\n#\n\
         # in a lectic.yaml, every exec tool and local MCP server runs in the\n\
         # sandbox. Override per interlocutor or per tool with your own\n\
         # `sandbox:` line.\n{line}\n"
    );
    let file = dir.join("lectic.yaml");
    let changed = std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str());
    if changed {
        fsutil::ensure_dir(&dir)?;
        fsutil::write_atomic(&file, text.as_bytes())?;
    }
    Ok(json!({ "lectic_yaml": file, "sandbox": bin, "changed": changed }))
}

pub fn render(v: &Value) -> String {
    let file = v["lectic_yaml"].as_str().unwrap_or_default();
    let bin = v["sandbox"].as_str().unwrap_or_default();
    if v["changed"] == true {
        format!("wrote {file} (sandbox: {bin})\n")
    } else {
        format!("{file} is up to date (sandbox: {bin})\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lectic_cannot_split_right_are_quoted_or_refused() {
        assert_eq!(sandbox_line("/bin/x").unwrap(), "sandbox: /bin/x");
        assert_eq!(
            sandbox_line("/my bin/x").unwrap(),
            "sandbox: \"'/my bin/x'\""
        );
        assert!(sandbox_line("/it's/x").is_err());
    }
}
