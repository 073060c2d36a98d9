//! `recarch verify`: every manifest checked against its blob, blobs re-hashed (all, or a
//! random sample), orphans and unreadable files reported.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use recarch_store::{Archive, Sha256Digest};
use serde::Serialize;

use crate::exit::{Exit, ExitError};

/// How many blobs are re-hashed at once.
const HASH_PARALLELISM: usize = 4;

/// What `verify` found.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Manifests read.
    pub manifests: u64,
    /// Blobs listed.
    pub blobs: u64,
    /// Blobs re-hashed.
    pub rehashed: u64,
    /// Bytes re-hashed.
    pub rehashed_bytes: u64,
    /// Everything wrong, one line each.
    pub problems: Vec<String>,
}

/// Checks the archive. `sample`: re-hash only that many randomly chosen blobs.
pub async fn verify(archive: &Archive, sample: Option<usize>) -> Result<VerifyReport, ExitError> {
    let fatal = |e: recarch_store::StoreError| {
        ExitError::new(Exit::Fatal, anyhow::Error::new(e).context("cannot list the archive"))
    };
    let mut report = VerifyReport::default();
    // digest → (size per manifest, a manifest key naming it)
    let mut referenced: BTreeMap<Sha256Digest, (u64, String)> = BTreeMap::new();
    let mut manifests = archive.list_manifests();
    while let Some((key, manifest)) = manifests.try_next().await.map_err(fatal)? {
        report.manifests += 1;
        let m = match manifest {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(format!("unreadable manifest {key}: {e}"));
                continue;
            }
        };
        let expected_key = Archive::manifest_key(&m.organizer_id, &m.id);
        if key != expected_key {
            report
                .problems
                .push(format!("manifest {key} is misplaced: its id belongs at {expected_key}"));
        }
        let blob_key = format!("blobs/sha256/{}", m.content.sha256);
        if m.content.blob != blob_key {
            report.problems.push(format!(
                "manifest {key} names blob {} but its sha256 is {}",
                m.content.blob, m.content.sha256
            ));
        }
        match referenced.get(&m.content.sha256) {
            Some((size, other)) if *size != m.content.size => report.problems.push(format!(
                "manifests {other} and {key} give blob {} different sizes ({size} and {})",
                m.content.sha256, m.content.size
            )),
            Some(_) => {}
            None => {
                referenced.insert(m.content.sha256, (m.content.size, key));
            }
        }
    }
    drop(manifests);

    let mut blobs: BTreeMap<Sha256Digest, u64> = BTreeMap::new();
    let mut listing = archive.list_blobs();
    while let Some(entry) = listing.next().await {
        match entry {
            Ok((digest, size)) => {
                blobs.insert(digest, size);
            }
            Err(e) => report.problems.push(format!("bad blob entry: {e}")),
        }
    }
    drop(listing);
    report.blobs = blobs.len() as u64;

    for (digest, (size, key)) in &referenced {
        match blobs.get(digest) {
            None => report
                .problems
                .push(format!("missing blob blobs/sha256/{digest} (named by {key})")),
            Some(actual) if actual != size => report.problems.push(format!(
                "blob blobs/sha256/{digest} has {actual} bytes, manifest {key} says {size}"
            )),
            Some(_) => {}
        }
    }
    for digest in blobs.keys() {
        if !referenced.contains_key(digest) {
            report
                .problems
                .push(format!("orphan blob blobs/sha256/{digest}: no manifest names it"));
        }
    }

    let mut to_hash: Vec<Sha256Digest> = blobs.keys().copied().collect();
    if let Some(n) = sample {
        fastrand::shuffle(&mut to_hash);
        to_hash.truncate(n);
    }
    let total = to_hash.len();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut hashed = futures::stream::iter(to_hash)
        .map(|digest| async move { (digest, archive.hash_blob(&digest).await) })
        .buffer_unordered(HASH_PARALLELISM);
    let mut seen = 0usize;
    while let Some((digest, result)) = hashed.next().await {
        seen += 1;
        match result {
            Ok((actual, size)) => {
                report.rehashed += 1;
                report.rehashed_bytes += size;
                if actual != digest {
                    report.problems.push(format!(
                        "blob blobs/sha256/{digest} is corrupt: its bytes hash to {actual}"
                    ));
                }
            }
            Err(e) => report
                .problems
                .push(format!("cannot read blob blobs/sha256/{digest}: {e}")),
        }
        // Progress every 5 seconds on large archives, and once at the end.
        if last_progress.elapsed() >= Duration::from_secs(5) || seen == total {
            last_progress = Instant::now();
            let rate = report.rehashed_bytes as f64 / started.elapsed().as_secs_f64().max(0.001) / 1048576.0;
            tracing::info!(
                done = seen,
                total,
                mib_per_sec = format!("{rate:.0}"),
                "re-hashing blobs"
            );
        }
    }
    Ok(report)
}

/// `recarch verify`: prints the findings; exit 0 when clean, 1 when anything is wrong.
pub async fn verify_cli(archive: &Archive, sample: Option<usize>) -> Result<Exit, ExitError> {
    let report = verify(archive, sample).await?;
    for p in &report.problems {
        println!("problem: {p}");
    }
    println!(
        "verify {}: {} manifests, {} blobs, {} re-hashed ({:.1} MiB), {} problems",
        archive.display_url(),
        report.manifests,
        report.blobs,
        report.rehashed,
        report.rehashed_bytes as f64 / 1048576.0,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Partial
    })
}
