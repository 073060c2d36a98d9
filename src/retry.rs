//! `recarch retry`: moves dead letters back to the retry queue, so the next run tries them
//! again with a fresh attempt count (after the cause was fixed: a policy granted, a blob
//! removed, a recording restored).

use recarch_store::{Archive, Kind, OrganizerId};

use crate::config::Config;
use crate::exit::{Exit, ExitError};
use crate::pipeline::error_chain;

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
    organizer: Option<OrganizerId>,
    selection: Selection,
) -> Result<Exit, ExitError> {
    let organizers: Vec<OrganizerId> = match organizer {
        Some(o) => vec![o],
        None => {
            // The configured ids, and every organizer with state of any kind (discovered ones).
            let mut all: std::collections::BTreeSet<OrganizerId> = config.source.organizers.iter().cloned().collect();
            for kind in Kind::ALL {
                let overview = archive.state_overview(kind).await.map_err(|e| {
                    ExitError::new(
                        Exit::Fatal,
                        anyhow::Error::new(e).context("cannot list the organizers' state"),
                    )
                })?;
                all.extend(overview.into_keys());
            }
            all.into_iter().collect()
        }
    };
    let mut moved = 0usize;
    for org in &organizers {
        for kind in Kind::ALL {
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
                crate::outln!("organizer {org} {kind}: {id} moved back to the queue")?;
                moved += 1;
            }
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
    crate::outln!("{moved} dead letters moved back to the queue; the next run retries them first")?;
    Ok(Exit::Ok)
}
