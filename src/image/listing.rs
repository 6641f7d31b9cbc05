//! Our images as Podman sees them: those whose every tag is in our
//! repository (after a load only our tag stays; see load.rs).

use serde_json::Value;

use crate::error::{Error, Result};

use super::load::REPOSITORY;

#[derive(Debug, Clone)]
pub struct StoredImage {
    pub id: String,
    pub tags: Vec<String>,
    pub size: u64,
    /// Seconds since the epoch.
    pub created: i64,
}

pub(crate) fn parse(json: &str) -> Result<Vec<StoredImage>> {
    let items: Vec<Value> = serde_json::from_str(json).map_err(|e| Error::Podman {
        message: format!("cannot read podman's image list: {e}"),
        log: json.chars().take(400).collect(),
    })?;
    let mut out: Vec<StoredImage> = Vec::new();
    for i in &items {
        let Some(id) = i.get("Id").and_then(Value::as_str) else {
            continue;
        };
        // Podman lists an image once per tag; one entry per image here.
        if out.iter().any(|o| o.id == id) {
            continue;
        }
        let tags: Vec<String> = i
            .get("Names")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let prefix = format!("{REPOSITORY}:");
        if tags.is_empty() || !tags.iter().all(|t| t.starts_with(&prefix)) {
            continue;
        }
        out.push(StoredImage {
            id: id.to_owned(),
            tags,
            size: i.get("Size").and_then(Value::as_u64).unwrap_or(0),
            created: i.get("Created").and_then(Value::as_i64).unwrap_or(0),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_with_a_foreign_tag_or_none_are_not_ours() {
        let json = r#"[
          {"Id":"a","Names":["localhost/lectic-nix-sandbox:x"],"Size":5,"Created":1},
          {"Id":"a","Names":["localhost/lectic-nix-sandbox:x"],"Size":5,"Created":1},
          {"Id":"b","Names":["localhost/lectic-nix-sandbox:y","docker.io/library/alpine:3"]},
          {"Id":"c","Names":null}
        ]"#;
        let l = parse(json).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].id.as_str(), l[0].size), ("a", 5));
    }
}
