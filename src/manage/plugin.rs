//! `--install-plugin [DIR]`: the Lectic plugin directory, a `lectic.yaml`
//! whose `sandbox:` runs this binary, so `imports: - plugin: nix-sandbox`
//! works. Idempotent: an up-to-date file is left alone.
//!
//! The line carries the options typed with `--install-plugin`, and
//! `--config`/`--cache` where an MCP server would not find what an exec
//! tool finds: Lectic starts MCP servers without LECTIC_* and XDG_*.

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

/// One word as Lectic's tokenizer must see it: whitespace separates and
/// quotes group; `$VAR` is expanded everywhere, so a `$` cannot be said.
fn lectic_word(word: &str) -> Result<String> {
    let refuse = |why: &str| {
        Err(Error::usage(format!(
            "--install-plugin: Lectic cannot be given `{word}` in a sandbox line ({why}); use a path or value without it, or set it in the policy file"
        )))
    };
    if word.contains(['$', '\n', '\\']) {
        return refuse("it expands $ and has no escapes");
    }
    if word.is_empty() || word.contains(char::is_whitespace) || word.contains(['\'', '"']) {
        return match (word.contains('\''), word.contains('"')) {
            (false, _) => Ok(format!("'{word}'")),
            (true, false) => Ok(format!("\"{word}\"")),
            (true, true) => refuse("it holds both kinds of quote"),
        };
    }
    Ok(word.to_owned())
}

/// The `sandbox:` value: the words for Lectic, as a YAML scalar.
fn sandbox_line(words: &[String]) -> Result<String> {
    let line = words
        .iter()
        .map(|w| lectic_word(w))
        .collect::<Result<Vec<_>>>()?
        .join(" ");
    let yaml = serde_yaml::to_string(&line)
        .map_err(|e| Error::usage(format!("--install-plugin: cannot write {line}: {e}")))?;
    Ok(format!("sandbox: {}", yaml.trim_end()))
}

/// The words after the binary: what was typed, then --config and --cache
/// where an MCP server's call would not find them; and what cannot be
/// made to agree.
fn words(cfg: &Config) -> (Vec<String>, Vec<String>) {
    let mut words = cfg.plugin_words.clone();
    let mut notes = Vec::new();
    let sight = cfg.mcp.clone().unwrap_or_default();
    if let Some((here, there)) = &sight.config {
        match here {
            Some(file) => words.extend(["--config".into(), file.display().to_string()]),
            None => notes.push(format!(
                "an MCP server's sandbox reads {} (LECTIC_CONFIG is not set for it) while exec tools read no policy file; move that file or name one with --config",
                there.as_deref().unwrap_or_else(|| "?".as_ref()).display()
            )),
        }
    }
    if let Some((here, _)) = &sight.cache {
        words.extend(["--cache".into(), here.display().to_string()]);
    }
    (words, notes)
}

pub fn install(cfg: &Config) -> Result<Value> {
    let dir = cfg.plugin_dir.clone().unwrap_or_default();
    let bin = this_binary()?;
    let (args, notes) = words(cfg);
    let mut all = vec![bin.display().to_string()];
    all.extend(args.iter().cloned());
    let line = sandbox_line(&all)?;
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
    Ok(json!({
        "lectic_yaml": file,
        "sandbox": bin,
        "args": args,
        "changed": changed,
        "notes": notes,
    }))
}

pub fn render(v: &Value) -> String {
    let file = v["lectic_yaml"].as_str().unwrap_or_default();
    let mut line: Vec<&str> = vec![v["sandbox"].as_str().unwrap_or_default()];
    line.extend(super::items(v, "args").iter().filter_map(Value::as_str));
    let line = line.join(" ");
    let mut out = if v["changed"] == true {
        format!("wrote {file} (sandbox: {line})\n")
    } else {
        format!("{file} is up to date (sandbox: {line})\n")
    };
    for n in super::items(v, "notes") {
        out += &format!("note: {}\n", n.as_str().unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(words: &[&str]) -> String {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let text = sandbox_line(&words).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        v["sandbox"].as_str().unwrap().to_owned()
    }

    #[test]
    fn words_lectic_cannot_split_right_are_quoted_or_refused() {
        assert_eq!(sandbox_line(&["/bin/x".into()]).unwrap(), "sandbox: /bin/x");
        assert_eq!(
            parsed(&["/my bin/x", "--allow-net"]),
            "'/my bin/x' --allow-net"
        );
        assert_eq!(parsed(&["--env", "A=it's"]), "--env \"A=it's\"");
        assert_eq!(
            parsed(&[
                "/b",
                "--nixpkgs",
                "github:NixOS/nixpkgs/x",
                "--hide",
                "#x: y"
            ]),
            "/b --nixpkgs github:NixOS/nixpkgs/x --hide '#x: y'"
        );
        for bad in ["/it's \"x\"", "/a/$HOME", "a\\b"] {
            assert!(sandbox_line(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
