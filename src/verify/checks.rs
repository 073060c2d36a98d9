//! One manifest's checks: its schema, where it is stored, and the blob references it holds.

use recarch_store::{MANIFEST_SCHEMA, OrganizerId, Sha256Digest, StoredManifest, blob_key};
use serde_json::{Map, Value};

/// The blob references of a manifest as stored, `(digest, size)` each, with the problems
/// found in them; `Err` with the problem line when the manifest cannot be used.
///
/// Parsed as plain JSON so that every kind (recordings, transcripts, kinds added later) is
/// checked alike: a blob reference is any top-level member shaped `{sha256, size, blob, …}`,
/// or an array of those.
#[allow(clippy::type_complexity)] // a private helper: the pair reads plainly
pub(crate) fn check_manifest(stored: &StoredManifest) -> Result<(Vec<(Sha256Digest, u64)>, Vec<String>), String> {
    let key = stored.key.as_str();
    let unreadable = |reason: String| format!("unreadable manifest {key}: {reason}");
    let value: Value = serde_json::from_slice(&stored.bytes).map_err(|e| unreadable(format!("not JSON: {e}")))?;
    let Value::Object(manifest) = value else {
        return Err(unreadable("not a JSON object".into()));
    };
    match manifest.get("schema") {
        Some(Value::String(schema)) if schema == MANIFEST_SCHEMA => {}
        Some(other) => {
            return Err(unreadable(format!(
                "unsupported schema {other} (this version reads {MANIFEST_SCHEMA:?})"
            )));
        }
        None => return Err(unreadable(format!("no schema member (expected {MANIFEST_SCHEMA:?})"))),
    }
    let id = manifest
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| unreadable("no string member id".into()))?;
    let organizer = manifest
        .get("organizerId")
        .and_then(Value::as_str)
        .ok_or_else(|| unreadable("no string member organizerId".into()))?;
    let organizer = OrganizerId::parse(organizer).map_err(|e| unreadable(e.to_string()))?;
    // Where the store would keep it, in the kind directory it was found in.
    let expected = stored.expected_key(&organizer, id);
    if key != expected {
        return Err(format!(
            "manifest {key} is misplaced: its id and organizerId belong at {expected}"
        ));
    }

    let mut refs = Vec::new();
    let mut problems = Vec::new();
    for (name, member) in &manifest {
        match member {
            Value::Object(entry) if is_blob_ref(entry) => {
                blob_ref(key, name, entry, &mut refs, &mut problems);
            }
            Value::Array(items) => {
                let entries = items.iter().enumerate().filter_map(|(i, item)| match item {
                    Value::Object(entry) if is_blob_ref(entry) => Some((i, entry)),
                    _ => None,
                });
                for (i, entry) in entries {
                    blob_ref(key, &format!("{name}[{i}]"), entry, &mut refs, &mut problems);
                }
            }
            _ => {}
        }
    }
    if refs.is_empty() && problems.is_empty() {
        return Err(unreadable(
            "it names no blob (no member with sha256, size and blob)".into(),
        ));
    }
    Ok((refs, problems))
}

fn is_blob_ref(entry: &Map<String, Value>) -> bool {
    ["sha256", "size", "blob"].iter().all(|m| entry.contains_key(*m))
}

fn blob_ref(
    key: &str,
    name: &str,
    entry: &Map<String, Value>,
    refs: &mut Vec<(Sha256Digest, u64)>,
    problems: &mut Vec<String>,
) {
    let digest = match entry["sha256"].as_str().map(Sha256Digest::from_hex) {
        Some(Ok(digest)) => digest,
        Some(Err(e)) => return problems.push(format!("manifest {key}: {name}.sha256: {e}")),
        None => return problems.push(format!("manifest {key}: {name}.sha256 is not a string")),
    };
    let Some(size) = entry["size"].as_u64() else {
        return problems.push(format!("manifest {key}: {name}.size is not a byte count"));
    };
    let blob = entry["blob"].as_str().unwrap_or_default();
    if blob != blob_key(&digest) {
        problems.push(format!("manifest {key} names blob {blob} but its sha256 is {digest}"));
    }
    refs.push((digest, size));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use recarch_store::Archive;

    use super::super::testing::{ORG, blob_json, manifest_json};
    use super::*;

    #[allow(clippy::type_complexity)]
    fn check(key: &str, bytes: &[u8]) -> Result<(Vec<(Sha256Digest, u64)>, Vec<String>), String> {
        check_manifest(&StoredManifest {
            key: key.to_owned(),
            bytes: bytes::Bytes::copy_from_slice(bytes),
        })
    }

    #[test]
    fn every_blob_reference_of_any_kind_is_collected() {
        let (key, bytes) = manifest_json(
            "transcripts",
            "t/1",
            serde_json::json!({"content": blob_json(b"vtt"), "metadata": blob_json(b"meta")}),
        );
        let (refs, problems) = check(&key, &bytes).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            refs,
            vec![(Sha256Digest::of(b"vtt"), 3), (Sha256Digest::of(b"meta"), 4)]
        );
        // The recordings key is the store's own.
        let (key, _) = manifest_json("recordings", "r/1+=", serde_json::json!({}));
        assert_eq!(key, Archive::manifest_key(&OrganizerId::parse(ORG).unwrap(), "r/1+="));
        // Arrays of references count too (a list of versions, say).
        let (key, bytes) = manifest_json(
            "contacts",
            "c",
            serde_json::json!({"versions": [blob_json(b"v1"), {"removed": true}, blob_json(b"v2")]}),
        );
        assert_eq!(check(&key, &bytes).unwrap().0.len(), 2);
    }

    #[test]
    fn unusable_manifests_are_problems() {
        let (key, good) = manifest_json("recordings", "r", serde_json::json!({"content": blob_json(b"x")}));
        assert!(check(&key, b"{ not json").unwrap_err().contains("unreadable manifest"));
        let other_key = key.replace(ORG, "99999999-2222-3333-4444-555555555555");
        assert!(check(&other_key, &good).unwrap_err().contains("is misplaced"));
        let loose = format!("manifests/{}", key.rsplit('/').next().unwrap());
        assert!(check(&loose, &good).unwrap_err().contains("is misplaced"));
        let no_blob = manifest_json("recordings", "r", serde_json::json!({})).1;
        assert!(check(&key, &no_blob).unwrap_err().contains("names no blob"));
        let mut wrong_blob = blob_json(b"x");
        wrong_blob["blob"] = Value::from("blobs/sha256/00");
        let bytes = manifest_json("recordings", "r", serde_json::json!({"content": wrong_blob})).1;
        let (refs, problems) = check(&key, &bytes).unwrap();
        assert_eq!(refs.len(), 1);
        assert!(
            problems[0].contains("names blob blobs/sha256/00 but its sha256 is"),
            "{problems:?}"
        );
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        v["schema"] = Value::from("recarch.manifest.v9");
        let err = check(&key, &serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.contains("unsupported schema \"recarch.manifest.v9\""), "{err}");
    }
}
