//! Reading the chain in order, in constant memory: [`Archive::read_ledger`].

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use object_store::ObjectStore as _;

use crate::layout::{self, path};
use crate::{Archive, StoreError};

/// Records fetched ahead of the one being yielded.
const READ_AHEAD: usize = 8;
/// Failed reads in a row after which the store is taken to be failing, not the records: the
/// stream ends with the last error (numbers past the end fail too when the store is down, so
/// without this it would never end).
const MAX_FAILURES_IN_A_ROW: u32 = 2 * READ_AHEAD as u32;

/// A ledger record as stored, not parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its key, `ledger/<seq>.json`.
    pub key: String,
    /// The sequence number its key names.
    pub seq: u64,
    /// Its bytes.
    pub bytes: Bytes,
}

/// What [`Archive::read_ledger`] finds, in sequence order.
#[derive(Debug)]
#[non_exhaustive]
pub enum LedgerItem {
    /// A record.
    Record(StoredRecord),
    /// A record that is there but could not be read.
    Unreadable {
        /// Its key.
        key: String,
        /// Its sequence number.
        seq: u64,
        /// Why.
        error: StoreError,
    },
    /// Records `from..=to` are absent, and a record after them exists: a hole in the chain.
    Missing {
        /// The first absent number.
        from: u64,
        /// The last absent number.
        to: u64,
    },
    /// An object under `ledger/` whose key is not a record's (`ledger/<20 digits>.json`),
    /// seen while looking for records past a hole or the end (so not every such object: a
    /// full listing of `ledger/` finds them all).
    Stray {
        /// Its key.
        key: String,
    },
}

/// Where the reader is.
enum Phase<'a> {
    /// Fetching records from a number on, [`READ_AHEAD`] at a time, in order; with the
    /// number of reads that failed in a row.
    Reading(BoxStream<'a, (u64, Result<Option<Bytes>, StoreError>)>, u32),
    /// Record `.0` is absent: list what comes after it.
    Listing(u64),
    /// Nothing more.
    Done,
}

impl Archive {
    /// Every ledger record from `from` on, in sequence order, in constant memory.
    ///
    /// Records are fetched by number (`ledger/<seq>.json`, a few ahead) until one is absent;
    /// then one listing of the keys after it tells the end of the chain from a hole in it
    /// ([`LedgerItem::Missing`], and reading goes on after the hole). Listings are not
    /// relied on for order (local disk lists in no order): only to find the next number
    /// present. A failure to read one record is [`LedgerItem::Unreadable`] and reading goes
    /// on, unless reads keep failing (then the store is failing, not the records: the stream
    /// ends with the last error); a failed listing ends the stream with its error.
    pub fn read_ledger(&self, from: u64) -> BoxStream<'_, Result<LedgerItem, StoreError>> {
        let start = (Phase::Reading(self.fetch_from(from), 0), Vec::<LedgerItem>::new());
        stream::unfold(start, move |(mut phase, mut queued)| async move {
            loop {
                if let Some(item) = queued.pop() {
                    return Some((Ok(item), (phase, queued)));
                }
                match phase {
                    Phase::Done => return None,
                    Phase::Reading(mut fetched, failures) => match fetched.next().await {
                        None => return None,
                        Some((seq, Ok(Some(bytes)))) => {
                            let key = layout::ledger_key(seq);
                            let item = LedgerItem::Record(StoredRecord { key, seq, bytes });
                            return Some((Ok(item), (Phase::Reading(fetched, 0), queued)));
                        }
                        Some((_, Err(error))) if failures + 1 >= MAX_FAILURES_IN_A_ROW => {
                            return Some((Err(error), (Phase::Done, Vec::new())));
                        }
                        Some((seq, Err(error))) => {
                            let key = layout::ledger_key(seq);
                            let item = LedgerItem::Unreadable { key, seq, error };
                            return Some((Ok(item), (Phase::Reading(fetched, failures + 1), queued)));
                        }
                        // Dropping `fetched` cancels the fetches in flight past the end.
                        Some((seq, Ok(None))) => phase = Phase::Listing(seq),
                    },
                    Phase::Listing(absent) => match self.after_absent(absent).await {
                        Err(e) => return Some((Err(e), (Phase::Done, Vec::new()))),
                        Ok((next, strays)) => {
                            // `queued` is a stack: what is yielded first goes in last.
                            queued = strays.into_iter().map(|key| LedgerItem::Stray { key }).collect();
                            phase = match next {
                                Some(next) => {
                                    queued.push(LedgerItem::Missing {
                                        from: absent,
                                        to: next - 1,
                                    });
                                    Phase::Reading(self.fetch_from(next), 0)
                                }
                                None => Phase::Done,
                            };
                        }
                    },
                }
            }
        })
        .boxed()
    }

    /// Records `from`, `from + 1`, … fetched [`READ_AHEAD`] at a time, in order; `None` for an
    /// absent one.
    fn fetch_from(&self, from: u64) -> BoxStream<'_, (u64, Result<Option<Bytes>, StoreError>)> {
        stream::iter(from..=u64::MAX)
            .map(move |seq| async move { (seq, self.get_bytes(&layout::ledger_key(seq)).await) })
            .buffered(READ_AHEAD)
            .boxed()
    }

    /// After record `absent` turned out absent, one listing of the keys after it: the lowest
    /// record number there, and the keys that are not records and sort before that record's
    /// (before the end, when there is none), in reverse order.
    async fn after_absent(&self, absent: u64) -> Result<(Option<u64>, Vec<String>), StoreError> {
        let mut listed = self
            .store
            .list_with_offset(Some(&path(layout::LEDGER)), &path(&layout::ledger_key(absent)));
        let mut next: Option<u64> = None;
        let mut strays = Vec::new();
        while let Some(meta) = listed.next().await {
            let key = meta
                .map_err(|e| StoreError::from_backend(layout::LEDGER, e))?
                .location
                .to_string();
            match layout::seq_of_ledger_key(&key) {
                Some(seq) if seq > absent => next = Some(next.map_or(seq, |n| n.min(seq))),
                Some(_) => {}
                None => strays.push(key),
            }
        }
        let bound = next.map(layout::ledger_key);
        strays.retain(|key| bound.as_ref().is_none_or(|bound| key < bound));
        strays.sort_unstable_by(|a, b| b.cmp(a));
        Ok((next, strays))
    }
}
