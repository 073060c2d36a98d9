//! The merge-join of the sorted blob references and blobs: missing blobs, orphans, size
//! mismatches, and which blobs to re-hash.

use std::io;

use recarch_store::{Sha256Digest, StoreError, blob_key};

use super::sort::{BlobEntry, RefEntry, Spill};

/// What the join found, in digest order.
#[derive(Debug)]
pub(super) enum Event {
    Problem(String),
    Hash(Sha256Digest),
}

pub(super) enum Outcome {
    Problem(String),
    Hashed(Sha256Digest, Result<(Sha256Digest, u64), StoreError>),
}

/// Picks `wanted` of the next `left` items uniformly at random, one decision at a time
/// (selection sampling, Knuth's algorithm S): no list of the candidates is kept.
pub(super) struct Sampler {
    pub(super) wanted: u64,
    pub(super) left: u64,
}

impl Sampler {
    fn pick(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        let take = fastrand::u64(..self.left) < self.wanted;
        self.left -= 1;
        if take {
            self.wanted -= 1;
        }
        take
    }
}

/// Which findings of the join are listed one by one (those an incomplete listing cannot
/// produce falsely); the others are counted in one line.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reported {
    pub(super) orphans: bool,
    pub(super) missing: bool,
}

/// Walks the sorted references and blobs side by side (blocking: reads the spilled runs).
pub(super) fn join(
    refs: Spill<RefEntry>,
    blobs: Spill<BlobEntry>,
    mut sampler: Sampler,
    reported: Reported,
    events: &tokio::sync::mpsc::Sender<Event>,
) -> io::Result<()> {
    // The receiver goes away only when the async side has stopped on an error of its own.
    let send = |event| {
        events
            .blocking_send(event)
            .map_err(|_| io::Error::other("verify stopped"))
    };
    let mut refs = refs.into_sorted()?;
    let mut blobs = blobs.into_sorted()?;
    let mut next_ref = refs.next()?;
    let mut next_blob = blobs.next()?;
    let (mut unlisted_orphans, mut unlisted_missing) = (0u64, 0u64);
    loop {
        let digest = match (&next_ref, &next_blob) {
            (None, None) => break,
            (Some(r), None) => r.digest,
            (None, Some(b)) => b.digest,
            (Some(r), Some(b)) => r.digest.min(b.digest),
        };
        let blob = next_blob.take_if(|b| b.digest == digest);
        if blob.is_some() {
            next_blob = blobs.next()?;
        }
        // Every manifest naming the digest is compared with the blob, and with the first of
        // them (the least key).
        let mut first: Option<RefEntry> = None;
        while let Some(r) = next_ref.take_if(|r| r.digest == digest) {
            if let Some(b) = blob.as_ref().filter(|b| b.size != r.size) {
                send(Event::Problem(format!(
                    "blob {} has {} bytes, manifest {} says {}",
                    blob_key(&digest),
                    b.size,
                    r.key,
                    r.size
                )))?;
            }
            match &first {
                None => first = Some(r),
                Some(f) if f.size != r.size => send(Event::Problem(format!(
                    "manifests {} and {} give blob {digest} different sizes ({} and {})",
                    f.key, r.key, f.size, r.size
                )))?,
                Some(_) => {}
            }
            next_ref = refs.next()?;
        }
        match (&first, &blob) {
            (Some(_), None) if !reported.missing => unlisted_missing += 1,
            (Some(f), None) => send(Event::Problem(format!(
                "missing blob {} (named by {})",
                blob_key(&digest),
                f.key
            )))?,
            (None, Some(_)) if !reported.orphans => unlisted_orphans += 1,
            (None, Some(_)) => send(Event::Problem(format!(
                "orphan blob {}: no manifest names it",
                blob_key(&digest)
            )))?,
            _ => {}
        }
        if blob.is_some() && sampler.pick() {
            send(Event::Hash(digest))?;
        }
    }
    if unlisted_orphans > 0 {
        send(Event::Problem(format!(
            "{unlisted_orphans} blobs are named by no manifest listed; not reported as orphans, as the manifest listing was incomplete"
        )))?;
    }
    if unlisted_missing > 0 {
        send(Event::Problem(format!(
            "{unlisted_missing} blobs named by manifests were not listed; not reported as missing, as the blob listing was incomplete"
        )))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_picks_exactly_the_sample() {
        for (wanted, left) in [(0, 10), (3, 10), (10, 10), (0, 0)] {
            let mut s = Sampler { wanted, left };
            let picked = (0..left).filter(|_| s.pick()).count() as u64;
            assert_eq!(picked, wanted);
        }
    }
}
