//! Our containers as Podman sees them: those with our label *and* our name
//! prefix, nothing else of the store.

use serde_json::Value;

use crate::error::{Error, Result};

use super::PREFIX;

/// Labels a one-shot container with the call that runs it (`pid:start`),
/// so a container whose call was killed can be told from a live one.
pub const OWNER_LABEL: &str = "io.github.lectic.nix-sandbox.owner";
/// Labels a container of a root filesystem with its store path, which
/// Podman lists as no image at all.
pub const ROOTFS_LABEL: &str = "io.github.lectic.nix-sandbox.rootfs";

#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub state: String,
    pub image: String,
    pub owner: Option<String>,
}

impl Listed {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

pub(crate) fn parse(json: &str) -> Result<Vec<Listed>> {
    let items: Vec<Value> = serde_json::from_str(json).map_err(|e| Error::Podman {
        message: format!("cannot read podman's container list: {e}"),
        log: json.chars().take(400).collect(),
    })?;
    let mut out: Vec<Listed> = items
        .iter()
        .filter_map(|c| {
            let name = c.get("Names")?.as_array()?.first()?.as_str()?.to_owned();
            name.starts_with(PREFIX).then(|| Listed {
                state: str_field(c, "State"),
                image: c
                    .get("Labels")
                    .and_then(|l| l.get(ROOTFS_LABEL))
                    .and_then(Value::as_str)
                    .map_or_else(|| str_field(c, "Image"), str::to_owned),
                owner: c
                    .get("Labels")
                    .and_then(|l| l.get(OWNER_LABEL))
                    .and_then(Value::as_str)
                    .map(str::to_owned),

                name,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_prefix_counts_and_fields_are_read() {
        let json = r#"[
          {"Names":["lectic-nix-sandbox-0123456789abcdef"],"State":"running","Image":"i",
           "Labels":{"io.github.lectic.nix-sandbox":"1"},"Created":5},
          {"Names":["someone-else"],"State":"running","Image":"j","Labels":{}},
          {"Names":["lectic-nix-sandbox-once-x"],"State":"exited","Image":"i",
           "Labels":{"io.github.lectic.nix-sandbox.owner":"1:2"}}
        ]"#;
        let l = parse(json).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[0].running() && l[0].owner.is_none());
        assert_eq!(l[1].owner.as_deref(), Some("1:2"));
        assert!(parse("[]").unwrap().is_empty());
        assert!(parse("nope").is_err());
    }
}
