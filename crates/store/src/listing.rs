//! Listing a prefix and reading what it lists: [`Archive::list_and_read`], the one place that
//! decides what an object listed, then gone, means.
//!
//! # The rule
//!
//! A listing is a snapshot: an object may be deleted between the LIST that names it and the
//! GET that reads it (a queue entry settled or moved to the dead letters, a lease released).
//! **An object listed, then gone when read, is skipped, as if the listing had been taken a
//! moment later**: it is neither an entry nor an error. Any other failure to read an object is
//! that object's own (an inner error, and the others are still read); a listing that fails
//! ends the stream with its error (every backend's listing stops at its first error anyway).
//!
//! Every reader of listed documents goes through here: manifests ([`Archive::manifests_of`],
//! [`Archive::list_manifests`], [`Archive::read_manifests`]), organizer states
//! ([`Archive::list_states`]), queue entries and dead letters ([`Archive::list_queued`],
//! [`Archive::list_dead_letters`]), meeting and call indexes ([`Archive::indexes`]) and leases
//! ([`Archive::leases`]).

use bytes::Bytes;
use futures::future::ready;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::layout::path;
use crate::{Archive, StoreError};

/// An object listed and not gone: its key, and its bytes or why they could not be read.
pub(crate) type ReadObject = (String, Result<Bytes, StoreError>);

impl Archive {
    /// Lists `prefix` and reads each object whose key `wanted` accepts, `concurrency` at a
    /// time, in no particular order, following the rule in the module docs: objects gone since
    /// they were listed are left out, read failures are inner errors, and a listing failure is
    /// an outer error that ends the stream.
    pub(crate) fn list_and_read<'a>(
        &'a self,
        prefix: &str,
        wanted: impl Fn(&str) -> bool + Send + 'a,
        concurrency: usize,
    ) -> BoxStream<'a, Result<ReadObject, StoreError>> {
        self.listed_keys(prefix, wanted)
            .map(move |item| async move { Ok(self.read_listed(item?).await) })
            .buffer_unordered(concurrency.max(1))
            .try_filter_map(|read| ready(Ok(read)))
            .boxed()
    }

    /// The keys under `prefix` that `wanted` accepts, as listed; a listing failure is the last
    /// item.
    pub(crate) fn listed_keys<'a>(
        &'a self,
        prefix: &str,
        wanted: impl Fn(&str) -> bool + Send + 'a,
    ) -> BoxStream<'a, Result<String, StoreError>> {
        let listed = prefix.to_owned();
        let mut failed = false;
        self.store
            .list(Some(&path(prefix)))
            // Backends end a listing at its first error; make sure nothing follows one here.
            .take_while(move |item| {
                let go = !failed;
                failed |= item.is_err();
                ready(go)
            })
            .filter_map(move |item| {
                ready(match item {
                    Err(e) => Some(Err(StoreError::from_backend(&listed, e))),
                    Ok(meta) => {
                        let key = meta.location.to_string();
                        wanted(&key).then_some(Ok(key))
                    }
                })
            })
            .boxed()
    }

    /// Reads an object a listing named: `None` when it is gone since (the rule in the module
    /// docs), else its bytes or the error reading them.
    pub(crate) async fn read_listed(&self, key: String) -> Option<ReadObject> {
        match self.get_bytes(&key).await {
            Ok(Some(bytes)) => Some((key, Ok(bytes))),
            Ok(None) => {
                tracing::debug!(key = %key, "listed, then gone before it was read: skipped");
                None
            }
            Err(e) => Some((key, Err(e))),
        }
    }
}
