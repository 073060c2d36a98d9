//! `recarch retry`: moves dead letters back to the retry queue, so the next run tries them
//! again with a fresh attempt count (after the cause was fixed: a policy granted, a blob
//! removed, a recording restored).

use recarch_store::{Archive, Kind, OrganizerId};

use crate::config::Config;
use crate::exit::{Exit, ExitError};
use recarch_failure::error_chain;

/// Which dead letters to move.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every dead letter of the selected organizers.
    All,
    /// The dead letter of this Graph item id.
    Id(String),
}

/// Moves the selected dead letters of `organizer` (or of every configured organizer) back to
/// the queue. Exit 0; exit 2 when `--id` matched no dead letter.
pub async fn retry_cli(
    config: &Config,
    archive: &Archive,
    ledger: &crate::ledger::Ledger,
    organizer: Option<OrganizerId>,
    selection: Selection,
) -> Result<Exit, ExitError> {
    // The kinds and organizers `status` shows: configured ones, and every one with state.
    let known = crate::organizers::known(config, archive).await.map_err(|e| {
        ExitError::new(
            Exit::Fatal,
            anyhow::Error::new(e).context("cannot list the organizers' state"),
        )
    })?;
    let passes: Vec<(Kind, OrganizerId)> = known
        .into_iter()
        .flat_map(|k| {
            let kind = k.kind;
            let organizers = match &organizer {
                Some(o) => vec![o.clone()],
                None => k.organizers,
            };
            organizers.into_iter().map(move |o| (kind, o))
        })
        .collect();
    let mut moved = 0usize;
    // What the ledger's `retry` record says was moved.
    let mut revived: Vec<serde_json::Value> = Vec::new();
    for &(kind, ref org) in &passes {
        let letters = archive.list_dead_letters(kind, org).await.map_err(|e| {
            ExitError::new(
                Exit::Fatal,
                anyhow::Error::new(e).context(format!("cannot list the dead letters of organizer {org}")),
            )
        })?;
        for letter in letters {
            let letter = match letter {
                Ok(letter) => letter,
                Err(e) => {
                    eprintln!("warning: skipping an unreadable dead letter: {}", error_chain(&e));
                    continue;
                }
            };
            if let Selection::Id(id) = &selection {
                if &letter.item.id != id {
                    continue;
                }
            }
            let id = letter.item.id.clone();
            archive.revive_dead_letter(kind, org, letter).await.map_err(|e| {
                ExitError::new(
                    Exit::Fatal,
                    anyhow::Error::new(e).context(format!("cannot move {id} back to the queue")),
                )
            })?;
            revived.push(serde_json::json!({"organizerId": org.as_str(), "kind": kind, "id": id}));
            crate::outln!("organizer {org} {kind}: {id} moved back to the queue")?;
            moved += 1;
        }
    }
    if let Selection::Id(id) = &selection {
        if moved == 0 {
            return Err(ExitError::new(
                Exit::Config,
                anyhow::anyhow!("no dead letter with id {id:?}; `recarch status` lists them"),
            ));
        }
    }
    if moved > 0 {
        let mut details = serde_json::Map::new();
        details.insert("moved".into(), serde_json::Value::from(moved));
        details.insert("items".into(), serde_json::Value::Array(revived));
        ledger
            .log(Vec::new(), recarch_store::ledger::LedgerEvent::Retry, details)
            .await
            .map_err(|e| {
                ExitError::new(
                    Exit::Fatal,
                    anyhow::Error::new(e)
                        .context("the dead letters were moved, but the ledger record of it cannot be written"),
                )
            })?;
    }
    crate::outln!("{moved} dead letters moved back to the queue; the next run retries them first")?;
    Ok(Exit::Ok)
}
