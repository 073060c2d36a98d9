//! Meeting and call indexes: every entry must name a manifest that exists, or one that a
//! `dispose` ledger record removed. Indexes are add-only: disposal leaves them as they are, as
//! evidence of what the meeting or call held, and the ledger says which of their manifests
//! were disposed of.
//!
//! Constant memory: entries naming an absent manifest go through the external sort by
//! manifest key and are merge-joined with the keys disposed of (sorted by the ledger check).

use std::io::{self, BufRead, Write};

use futures::StreamExt;
use recarch_store::{Archive, Container, StoreError};

use super::ledger::DisposedKeys;
use super::sort::{Entry, Spill};
use super::{Limits, VerifyReport, spill_failed};
use crate::exit::ExitError;
use crate::sort::{at_end, read_str, write_str};
use recarch_failure::error_chain;

/// An index entry naming a manifest that does not exist. Sorted by manifest, then index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Absent {
    manifest: String,
    index: String,
    noun: String,
}

impl Entry for Absent {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        write_str(out, &self.manifest)?;
        write_str(out, &self.index)?;
        write_str(out, &self.noun)
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        if at_end(input)? {
            return Ok(None);
        }
        Ok(Some(Absent {
            manifest: read_str(input)?,
            index: read_str(input)?,
            noun: read_str(input)?,
        }))
    }
}

/// Manifests of one index looked up at once.
const LOOKUPS: usize = 8;

/// Every entry of a meeting index (`meetings/`) and of a call index (`calls/`) must point at
/// a manifest that exists, or at one of `disposed` (removed by a `dispose` record).
pub(super) async fn check_indexes(
    archive: &Archive,
    disposed: DisposedKeys,
    limits: Limits,
    report: &mut VerifyReport,
    on_problem: &mut impl FnMut(&str),
) -> Result<(), ExitError> {
    let mut absent = Spill::<Absent>::new(limits.quartered());
    for container in Container::ALL {
        check_indexes_of(archive, container, &mut absent, report, on_problem).await?;
    }
    let problems = tokio::task::spawn_blocking(move || not_disposed(absent, disposed))
        .await
        .map_err(|e| spill_failed(io::Error::other(e)))?
        .map_err(spill_failed)?;
    for problem in problems {
        report.found(problem, on_problem);
    }
    Ok(())
}

/// The entries of `absent` whose manifest is not among `disposed` (both in key order), as
/// problem lines.
fn not_disposed(absent: Spill<Absent>, mut disposed: DisposedKeys) -> io::Result<Vec<String>> {
    let mut absent = absent.into_sorted()?;
    let mut problems = Vec::new();
    let mut gone = disposed.next()?;
    while let Some(entry) = absent.next()? {
        while gone.as_ref().is_some_and(|k| *k < entry.manifest) {
            gone = disposed.next()?;
        }
        if gone.as_ref() != Some(&entry.manifest) {
            problems.push(format!(
                "{} index {} lists manifest {}, which does not exist",
                entry.noun, entry.index, entry.manifest
            ));
        }
    }
    Ok(problems)
}

/// The indexes of `container`. Streams: a few indexes read at a time ([`Archive::indexes`]),
/// each checked before the next, with a bounded number of lookups in flight.
async fn check_indexes_of(
    archive: &Archive,
    container: Container,
    absent: &mut Spill<Absent>,
    report: &mut VerifyReport,
    on_problem: &mut impl FnMut(&str),
) -> Result<(), ExitError> {
    let noun = container.noun();
    let mut indexes = archive.indexes(container);
    while let Some(item) = indexes.next().await {
        let (key, index) = match item {
            Ok(read) => read,
            Err(e) => {
                report.found(
                    format!("cannot list {}/: {}", container.prefix(), error_chain(&e)),
                    on_problem,
                );
                return Ok(());
            }
        };
        let index = match index {
            Ok(index) => index,
            Err(StoreError::Corrupt { reason, .. }) => {
                report.found(format!("unreadable {noun} index {key}: {reason}"), on_problem);
                continue;
            }
            Err(e) => {
                report.found(
                    format!("cannot read {noun} index {key}: {}", error_chain(&e)),
                    on_problem,
                );
                continue;
            }
        };
        let mut lookups = std::pin::pin!(
            futures::stream::iter(index.entries)
                .map(|entry| async move {
                    let exists = archive.manifest_exists_at(&entry.manifest).await;
                    (entry.manifest, exists)
                })
                .buffer_unordered(LOOKUPS)
        );
        while let Some((manifest, exists)) = lookups.next().await {
            match exists {
                Ok(true) => {}
                Ok(false) => {
                    let entry = Absent {
                        manifest,
                        index: key.clone(),
                        noun: noun.to_owned(),
                    };
                    absent.push(entry).await.map_err(spill_failed)?;
                }
                Err(e) => report.found(
                    format!(
                        "cannot check manifest {manifest} of {noun} index {key}: {}",
                        error_chain(&e)
                    ),
                    on_problem,
                ),
            }
        }
    }
    Ok(())
}
