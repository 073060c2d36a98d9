//! `recarch show ID`: everything the archive holds about an item (a Graph id), a meeting or
//! call (its id), or a blob (its SHA-256): the manifests (every version of a contact), the
//! meeting's or call's items, which items a blob belongs to, the ledger record that logged
//! each manifest, and the legal holds on each. An item disposed of (`recarch dispose`) is
//! shown as such: its manifest, when and by which ledger record.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use recarch_store::ledger::{LedgerItem, LedgerRecord};
use recarch_store::{Archive, CatalogEntry, Container, OrganizerId, Sha256Digest};
use serde_json::{Value, json};

use super::filter::Filters;
use super::find_named;
use crate::exit::{Exit, ExitError};
use crate::ledger::Ledger;
use recarch_failure::error_chain;

/// Shows `id`. Exit 0 when something was found, 1 when nothing matches, 4 when the archive
/// cannot be read.
pub async fn show_cli(archive: &Archive, ledger: &Ledger, id: &str, json_out: bool) -> Result<Exit, ExitError> {
    let id = id.trim();
    let fatal = |what: &str, e: recarch_store::StoreError| {
        ExitError::new(Exit::Fatal, anyhow::anyhow!("{what}: {}", error_chain(&e)))
    };
    let blob = Sha256Digest::from_hex(&id.to_ascii_lowercase()).ok();
    // The items it names: by Graph id, by meeting or call id, or by content (an item's, a
    // transcript's metadata, or any version of a contact).
    let hex = blob.map(|b| b.to_hex());
    let names = |e: &CatalogEntry| {
        e.id == id
            || e.meeting_id.as_deref() == Some(id)
            || e.call_id.as_deref() == Some(id)
            || hex.as_ref().is_some_and(|b| {
                e.sha256 == *b
                    || e.extra
                        .get(recarch_store::CATALOG_METADATA_SHA256)
                        .and_then(Value::as_str)
                        == Some(b)
            })
    };
    let (matched, named_disposed) = find_named(archive, ledger, &Filters::default(), &names)
        .await?
        .into_all()?;
    let matching: Vec<&CatalogEntry> = matched.iter().collect();
    let disposed: Vec<Value> = named_disposed
        .iter()
        .map(|d| {
            json!({
                "manifest": d.entry.manifest,
                "kind": d.entry.kind.dirname(),
                "id": d.entry.id,
                "organizerId": d.entry.organizer_id,
                "sha256": d.entry.sha256,
                "disposedAt": d.marker.disposed_at,
                "record": d.marker.record,
            })
        })
        .collect();
    let mut out = json!({"id": id});
    if let Some(digest) = blob {
        let size = archive
            .blob_size(&digest)
            .await
            .map_err(|e| fatal("cannot read the blob", e))?;
        out["blob"] = json!({
            "key": recarch_store::blob_key(&digest),
            "size": size,
            "referredToBy": matching.iter().map(|e| &e.manifest).collect::<BTreeSet<_>>(),
        });
    }
    // Each meeting or call named, with its index.
    let mut containers = BTreeMap::new();
    for e in &matching {
        let named = [
            (Container::Meeting, e.meeting_id.as_deref()),
            (Container::Call, e.call_id.as_deref()),
        ];
        for (container, cid) in named {
            let (Some(cid), Ok(org)) = (cid, OrganizerId::parse(&e.organizer_id)) else {
                continue;
            };
            let key = recarch_store::index_key(container, &org, cid);
            if containers.contains_key(&key) {
                continue;
            }
            let index = archive
                .read_index(container, &org, cid)
                .await
                .map_err(|e| fatal("cannot read an index", e))?;
            containers.insert(key, serde_json::to_value(index).unwrap_or(Value::Null));
        }
    }
    // The manifests, and the newest record that logged each.
    let keys: BTreeSet<String> = matching.iter().map(|e| e.manifest.clone()).collect();
    let logged = logged_in(archive, &keys).await;
    let held = crate::holds::holding(archive, &matching).await?;
    let mut items = Vec::new();
    for key in &keys {
        let manifest = archive
            .manifest_at(key)
            .await
            .map_err(|e| fatal("cannot read a manifest", e))?;
        items.push(json!({
            "manifest": key,
            "content": manifest,
            "ledger": logged.get(key),
            "holds": held.get(key).cloned().unwrap_or_default(),
        }));
    }
    out["items"] = Value::Array(items);
    out["indexes"] = Value::Object(containers.into_iter().collect());
    let found = !keys.is_empty() || out["blob"]["size"].is_u64() || !disposed.is_empty();
    out["disposed"] = Value::Array(disposed);
    // Nothing found: the text is only the error (JSON still says what was looked up).
    if !found && !json_out {
        return Err(ExitError::new(
            Exit::Partial,
            anyhow::anyhow!(
                "nothing in {} is {id:?}: not a Graph id, meeting or call id, or blob of this archive",
                archive.display_url()
            ),
        ));
    }
    let printed = if json_out {
        crate::outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default())
    } else {
        print_text(&out)
    };
    let exit = if found { Exit::Ok } else { Exit::Partial };
    crate::output::finish(printed, exit)
}

/// For each of `keys`, the newest ledger record that logs it: its key, time, event and actor.
/// Reads the whole ledger once; an unreadable record is skipped (`verify` reports it).
async fn logged_in(archive: &Archive, keys: &BTreeSet<String>) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    if keys.is_empty() {
        return found;
    }
    let mut records = archive.read_ledger(0);
    while let Some(Ok(item)) = records.next().await {
        let LedgerItem::Record(stored) = item else { continue };
        let Ok(record) = LedgerRecord::parse(&stored.key, &stored.bytes) else {
            continue;
        };
        for leaf in &record.leaves {
            if keys.contains(&leaf.key) {
                found.insert(
                    leaf.key.clone(),
                    json!({
                        "record": stored.key,
                        "time": record.time,
                        "event": record.event,
                        "actor": record.actor,
                        "sha256": leaf.sha256.to_hex(),
                    }),
                );
            }
        }
    }
    found
}

fn print_text(out: &Value) -> Result<(), crate::output::StdoutError> {
    if let Some(blob) = out.get("blob") {
        match blob["size"].as_u64() {
            Some(size) => crate::outln!("blob {} ({size} bytes)", blob["key"].as_str().unwrap_or_default())?,
            None => crate::outln!("blob {}: not in the archive", blob["key"].as_str().unwrap_or_default())?,
        }
        for m in blob["referredToBy"].as_array().into_iter().flatten() {
            crate::outln!("  named by {}", m.as_str().unwrap_or_default())?;
        }
    }
    for item in out["items"].as_array().into_iter().flatten() {
        crate::outln!("manifest {}", item["manifest"].as_str().unwrap_or_default())?;
        if let Some(l) = item.get("ledger").filter(|l| !l.is_null()) {
            crate::outln!(
                "  logged in {} ({} by {}@{}, shard {}, {})",
                l["record"].as_str().unwrap_or_default(),
                l["event"].as_str().unwrap_or_default(),
                l["actor"]["user"].as_str().unwrap_or_default(),
                l["actor"]["host"].as_str().unwrap_or_default(),
                l["actor"]["shard"].as_str().unwrap_or_default(),
                l["time"].as_str().unwrap_or_default()
            )?;
        }
        let holds: Vec<&str> = item["holds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if holds.is_empty() {
            crate::outln!("  legal holds: none")?;
        } else {
            crate::outln!("  held by {}", holds.join(", "))?;
        }
        let retention = &item["content"]["retention"];
        match (retention["mode"].as_str(), retention["retainUntil"].as_str()) {
            (Some(mode), Some(until)) => crate::outln!("  retention: {mode} until {until}")?,
            _ => crate::outln!("  retention: none (kept forever: `dispose` never deletes it)")?,
        }
        let text = serde_json::to_string_pretty(&item["content"]).unwrap_or_default();
        for line in text.lines() {
            crate::outln!("  {line}")?;
        }
    }
    for d in out["disposed"].as_array().into_iter().flatten() {
        crate::outln!(
            "disposed of: {} {} of {} (content {}), {}, in ledger record {}: {}",
            d["kind"].as_str().unwrap_or_default(),
            d["id"].as_str().unwrap_or_default(),
            d["organizerId"].as_str().unwrap_or_default(),
            d["sha256"].as_str().unwrap_or_default(),
            d["disposedAt"].as_str().unwrap_or_default(),
            d["record"].as_str().unwrap_or_default(),
            d["manifest"].as_str().unwrap_or_default()
        )?;
    }
    for (key, index) in out["indexes"].as_object().into_iter().flatten() {
        let entries = index["entries"].as_array().map_or(0, Vec::len);
        crate::outln!("index {key}: {entries} items")?;
        for e in index["entries"].as_array().into_iter().flatten() {
            crate::outln!(
                "  {} {} {}",
                e["kind"].as_str().unwrap_or_default(),
                e["id"].as_str().unwrap_or_default(),
                e["manifest"].as_str().unwrap_or_default()
            )?;
        }
        for p in index["pairs"].as_array().into_iter().flatten() {
            crate::outln!(
                "  pair {}: {} + {}",
                p["contentCorrelationId"].as_str().unwrap_or_default(),
                p["recording"].as_str().unwrap_or_default(),
                p["transcript"].as_str().unwrap_or_default()
            )?;
        }
    }
    Ok(())
}
