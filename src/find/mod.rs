//! Find and produce: `ls`, `show`, `cat` and `export` read the archive without Graph. They
//! find items through the catalog (`catalog/`, see `recarch_store::CatalogEntry`), built from
//! the manifests the first time an archive made before it is searched.

pub mod cat;
pub mod export;
pub mod filter;
pub mod ls;
pub mod show;
pub mod text;

use futures::StreamExt;
use recarch_store::{Archive, CatalogEntry, CatalogLine, DisposalMarker, ManifestRead};

use crate::exit::{Exit, ExitError};
use crate::ledger::Ledger;
use crate::sort::{Entry, Limits, Sorted, Spill, at_end, read_bytes, read_first, write_bytes, write_str};
use filter::Filters;
use recarch_failure::error_chain;

/// Entries written per catalog segment by a rebuild.
const REBUILD_SEGMENT: usize = 10_000;
/// Manifests read at once when every manifest is read (a rebuild, `verify`, `dispose`).
const MANIFEST_READS: usize = 8;

/// Every manifest of `archive`, read [`MANIFEST_READS`] at a time (see
/// [`Archive::read_manifests`]). Exit 4 when `manifests/` itself cannot be listed.
pub(crate) async fn read_all_manifests(
    archive: &Archive,
) -> Result<futures::stream::BoxStream<'_, ManifestRead>, ExitError> {
    archive.read_manifests(MANIFEST_READS).await.map_err(|e| {
        ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!(
                "cannot list manifests/ in {}: {}",
                archive.display_url(),
                error_chain(&e)
            ),
        )
    })
}

/// Catalog lines (and results) a search holds in memory per sorted run; beyond that it sorts
/// through temporary files (`crate::sort`), so that searching a large archive, also with no
/// filter, takes flat memory: about this many entries at each of its two sorts.
const RUN_ENTRIES: usize = 4 * 1024;

/// The limits of a search's sorts.
const SEARCH_LIMITS: Limits = Limits {
    run_entries: RUN_ENTRIES,
    fan_in: 64,
    prefix: "recarch-find-",
};

/// What a search found: one entry per item (for a contact, its newest version that passes
/// the filters; entries of one `(manifest, sha256)` merged), oldest first (by the searched time,
/// then kind, organizer and manifest), and the items disposed of, read one at a time.
pub struct Found {
    entries: Sorted<Ordered>,
    disposed: Sorted<Ordered>,
    /// How many items [`Found::next_entry`] gives.
    pub count: u64,
    /// Catalog lines or segments that could not be read (logged).
    pub unreadable: u64,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("count", &self.count)
            .field("unreadable", &self.unreadable)
            .finish_non_exhaustive()
    }
}

impl Found {
    /// The next item, oldest first; `None` after the last.
    ///
    /// # Errors
    /// Exit 4 when the search's temporary files cannot be read back.
    pub fn next_entry(&mut self) -> Result<Option<CatalogEntry>, ExitError> {
        Ok(self.entries.next().map_err(sort_failed)?.map(|o| o.entry))
    }

    /// The next item that passed the filters but was disposed of (a disposal marker hides
    /// every entry of theirs), one per manifest, oldest first: what `show` reports as
    /// disposed.
    ///
    /// # Errors
    /// Exit 4 when the search's temporary files cannot be read back.
    pub fn next_disposed(&mut self) -> Result<Option<Disposed>, ExitError> {
        Ok(self
            .disposed
            .next()
            .map_err(sort_failed)?
            .and_then(|o| o.marker.map(|marker| Disposed { entry: o.entry, marker })))
    }

    /// Every item, in memory: for a caller that holds them anyway (a production, a matter).
    ///
    /// # Errors
    /// Exit 4 when the search's temporary files cannot be read back.
    pub fn into_entries(mut self) -> Result<Vec<CatalogEntry>, ExitError> {
        let mut entries = Vec::with_capacity(usize::try_from(self.count).unwrap_or(0).min(RUN_ENTRIES));
        while let Some(entry) = self.next_entry()? {
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Every item and every item disposed of, in memory: for a search that names a few
    /// (`show`).
    ///
    /// # Errors
    /// Exit 4 when the search's temporary files cannot be read back.
    pub fn into_all(mut self) -> Result<(Vec<CatalogEntry>, Vec<Disposed>), ExitError> {
        let mut disposed = Vec::new();
        while let Some(d) = self.next_disposed()? {
            disposed.push(d);
        }
        Ok((self.into_entries()?, disposed))
    }
}

/// An item disposed of: its last catalog entry and the marker that hides it.
#[derive(Debug, Clone)]
pub struct Disposed {
    /// The entry, as cataloged before the disposal.
    pub entry: CatalogEntry,
    /// The disposal.
    pub marker: DisposalMarker,
}

fn sort_failed(e: std::io::Error) -> ExitError {
    ExitError::new(
        Exit::Fatal,
        anyhow::Error::new(e).context(format!(
            "cannot keep the search's sorted runs in {}; set TMPDIR to a writable directory with room for them",
            std::env::temp_dir().display()
        )),
    )
}

/// `Eq` and `Ord` of a type by what its `key()` gives.
macro_rules! ordered_by_key {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.key() == other.key()
            }
        }
        impl Eq for $t {}
        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $t {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.key().cmp(&other.key())
            }
        }
    };
}

/// A catalog line as a search sorts it: by the `(manifest, sha256)` it is about, then by its
/// segment (add-only segments are named by time, so later segments sort later), entries before
/// markers.
struct Line {
    segment: String,
    line: CatalogLine,
}

impl Line {
    fn key(&self) -> (&str, &str, &str, u8) {
        match &self.line {
            CatalogLine::Entry(e) => (&e.manifest, &e.sha256, &self.segment, 0),
            CatalogLine::Disposed(m) => (&m.manifest, &m.sha256, &self.segment, 1),
        }
    }
}

ordered_by_key!(Line);

fn json_error(e: serde_json::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl Entry for Line {
    fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        write_str(out, &self.segment)?;
        let (tag, json) = match &self.line {
            CatalogLine::Entry(e) => (0u8, serde_json::to_vec(e)),
            CatalogLine::Disposed(m) => (1u8, serde_json::to_vec(m)),
        };
        out.write_all(&[tag])?;
        write_bytes(out, &json.map_err(json_error)?)
    }

    fn read_from(input: &mut impl std::io::BufRead) -> std::io::Result<Option<Self>> {
        let Some(segment) = read_first(input)? else {
            return Ok(None);
        };
        let mut tag = [0u8; 1];
        input.read_exact(&mut tag)?;
        let json = read_bytes(input)?;
        let line = if tag[0] == 0 {
            CatalogLine::Entry(serde_json::from_slice(&json).map_err(json_error)?)
        } else {
            CatalogLine::Disposed(serde_json::from_slice(&json).map_err(json_error)?)
        };
        Ok(Some(Line { segment, line }))
    }
}

/// A result in the order a search gives them: by the searched time (`createdDateTime`, or a
/// contact version's `archivedAt`), kind, organizer and manifest; with the marker that hides it,
/// for an item disposed of.
struct Ordered {
    time: Option<chrono::DateTime<chrono::Utc>>,
    entry: CatalogEntry,
    marker: Option<DisposalMarker>,
}

impl Ordered {
    fn new(entry: CatalogEntry, marker: Option<DisposalMarker>) -> Self {
        Ordered {
            time: entry.searched_time(),
            entry,
            marker,
        }
    }

    fn key(&self) -> (Option<chrono::DateTime<chrono::Utc>>, recarch_store::Kind, &str, &str) {
        (
            self.time,
            self.entry.kind,
            &self.entry.organizer_id,
            &self.entry.manifest,
        )
    }
}

ordered_by_key!(Ordered);

impl Entry for Ordered {
    fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        write_bytes(out, &serde_json::to_vec(&self.entry).map_err(json_error)?)?;
        let marker = match &self.marker {
            Some(m) => serde_json::to_vec(m).map_err(json_error)?,
            None => Vec::new(),
        };
        write_bytes(out, &marker)
    }

    fn read_from(input: &mut impl std::io::BufRead) -> std::io::Result<Option<Self>> {
        if at_end(input)? {
            return Ok(None);
        }
        let entry: CatalogEntry = serde_json::from_slice(&read_bytes(input)?).map_err(json_error)?;
        let marker = read_bytes(input)?;
        let marker = if marker.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&marker).map_err(json_error)?)
        };
        Ok(Some(Ordered::new(entry, marker)))
    }
}

/// The lines of one `(manifest, sha256)`, folded as they come in segment order.
#[derive(Default)]
struct Identity {
    /// Its entries merged, with the newest segment listing it.
    entry: Option<(CatalogEntry, String)>,
    /// Its newest marker, with its segment.
    marker: Option<(String, DisposalMarker)>,
}

impl Identity {
    fn add(&mut self, line: Line) {
        match line.line {
            CatalogLine::Entry(mut entry) => {
                // The same item (or version) listed again: a later run's entry adds the names an
                // earlier one could not read (`crate::enrich`), so members absent from one are
                // taken from the other, the newer's first. The filters read no `extra` member,
                // so they passed or failed both alike.
                if let Some((older, _)) = self.entry.take() {
                    for (name, value) in older.extra {
                        entry.extra.entry(name).or_insert(value);
                    }
                }
                self.entry = Some((entry, line.segment));
            }
            CatalogLine::Disposed(marker) => self.marker = Some((line.segment, marker)),
        }
    }
}

/// The identities of one manifest, folded: its newest listed version, or else its newest
/// version disposed of.
#[derive(Default)]
struct Item {
    listed: Option<CatalogEntry>,
    disposed: Option<(CatalogEntry, DisposalMarker)>,
}

impl Item {
    fn add(&mut self, identity: Identity) {
        let Some((entry, newest)) = identity.entry else {
            return;
        };
        match identity.marker {
            // A marker written after every segment listing it hides it.
            Some((marked_in, marker)) if marked_in > newest => {
                if !matches!(&self.disposed, Some((kept, _)) if kept.archived_at >= entry.archived_at) {
                    self.disposed = Some((entry, marker));
                }
            }
            _ => {
                if !matches!(&self.listed, Some(kept) if kept.archived_at >= entry.archived_at) {
                    self.listed = Some(entry);
                }
            }
        }
    }

    /// Sends the item where it belongs: an item archived again after its disposal is listed,
    /// not disposed.
    async fn finish(self, entries: &mut Spill<Ordered>, disposed: &mut Spill<Ordered>) -> std::io::Result<()> {
        match (self.listed, self.disposed) {
            (Some(entry), _) => entries.push(Ordered::new(entry, None)).await,
            (None, Some((entry, marker))) => disposed.push(Ordered::new(entry, Some(marker))).await,
            (None, None) => Ok(()),
        }
    }
}

/// The items that pass `filters`, through the catalog (built first if the archive has none).
/// Entries a disposal marker hides (those listed in segments before the marker's) are left
/// out, and given by [`Found::next_disposed`]. Memory stays flat whatever the archive's size
/// and the filters: the catalog's lines are sorted by item, folded, and sorted again in order,
/// through temporary files beyond 4096 entries at a time.
///
/// # Errors
/// Exit 4 when the store cannot be listed, the catalog cannot be built, or the temporary
/// files cannot be written.
pub async fn find(archive: &Archive, ledger: &Ledger, filters: &Filters) -> Result<Found, ExitError> {
    find_with(archive, ledger, filters, &|_| true, SEARCH_LIMITS).await
}

/// [`find`] of the entries `named` accepts, as well as the filters; applied to each catalog
/// line before the lines of an item are folded, so that, say, a contact's earlier version is
/// found by its content.
///
/// # Errors
/// As [`find`].
pub async fn find_named(
    archive: &Archive,
    ledger: &Ledger,
    filters: &Filters,
    named: &(dyn Fn(&CatalogEntry) -> bool + Sync),
) -> Result<Found, ExitError> {
    find_with(archive, ledger, filters, named, SEARCH_LIMITS).await
}

/// [`find_named`] with the sorts' `limits`.
async fn find_with(
    archive: &Archive,
    ledger: &Ledger,
    filters: &Filters,
    named: &(dyn Fn(&CatalogEntry) -> bool + Sync),
    limits: Limits,
) -> Result<Found, ExitError> {
    let fatal = |what: &str, e: recarch_store::StoreError| {
        ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!("{what} in {}: {}", archive.display_url(), error_chain(&e)),
        )
    };
    if !archive
        .has_catalog()
        .await
        .map_err(|e| fatal("cannot list catalog/", e))?
    {
        let built = rebuild(archive, ledger).await?;
        tracing::info!(
            entries = built,
            "the archive had no catalog: built it from the manifests"
        );
    }
    // Every entry that passes and every marker, sorted by what it is about.
    let mut unreadable = 0;
    let mut by_item = Spill::<Line>::new(limits);
    let mut lines = archive.catalog_entries();
    while let Some(item) = lines.next().await {
        let (segment, line) = match item.map_err(|e| fatal("cannot list catalog/", e))? {
            Ok(line) => line,
            Err(e) => {
                unreadable += 1;
                tracing::warn!(error = %error_chain(&e), "a catalog entry cannot be read; `recarch catalog rebuild` writes it anew from the manifests");
                continue;
            }
        };
        if let CatalogLine::Entry(entry) = &line
            && !(filters.matches(entry) && named(entry))
        {
            continue;
        }
        by_item.push(Line { segment, line }).await.map_err(sort_failed)?;
    }
    drop(lines);
    // Folded per identity, then per manifest, into the results' order.
    let mut entries = Spill::<Ordered>::new(limits);
    let mut disposed = Spill::<Ordered>::new(limits);
    let mut sorted = by_item.into_sorted().map_err(sort_failed)?;
    let mut item: Option<(String, Item)> = None;
    let mut identity: Option<(String, Identity)> = None;
    while let Some(line) = sorted.next().map_err(sort_failed)? {
        let (manifest, sha256, ..) = line.key();
        let same_item = item.as_ref().is_some_and(|(m, _)| m == manifest);
        let same_identity = same_item && identity.as_ref().is_some_and(|(s, _)| s == sha256);
        if !same_identity && let Some((_, done)) = identity.take() {
            if let Some((_, folded)) = item.as_mut() {
                folded.add(done);
            }
        }
        if !same_item && let Some((_, done)) = item.take() {
            done.finish(&mut entries, &mut disposed).await.map_err(sort_failed)?;
        }
        if !same_item {
            item = Some((manifest.to_owned(), Item::default()));
        }
        if !same_identity {
            identity = Some((sha256.to_owned(), Identity::default()));
        }
        if let Some((_, lines)) = identity.as_mut() {
            lines.add(line);
        }
    }
    if let Some((_, folded)) = item.as_mut()
        && let Some((_, done)) = identity.take()
    {
        folded.add(done);
    }
    if let Some((_, done)) = item.take() {
        done.finish(&mut entries, &mut disposed).await.map_err(sort_failed)?;
    }
    drop(sorted);
    let count = entries.len;
    let sort = |spill: Spill<Ordered>| spill.into_sorted().map_err(sort_failed);
    Ok(Found {
        entries: sort(entries)?,
        disposed: sort(disposed)?,
        count,
        unreadable,
    })
}

/// Writes catalog segments for every manifest (`recarch catalog rebuild`, and the first
/// search of an archive without a catalog); returns how many entries were written. The
/// catalog is add-only: what was there stays, and readers keep one entry per manifest and
/// content.
///
/// # Errors
/// Exit 4 when `manifests/` cannot be listed or a segment cannot be written.
pub async fn rebuild(archive: &Archive, ledger: &Ledger) -> Result<u64, ExitError> {
    let fatal = |e: anyhow::Error| ExitError::new(Exit::Fatal, e);
    // Objects written before the ledger are logged as they are before segments are added.
    crate::ledger::genesis(archive, ledger).await?;
    let catalog = crate::catalog::CatalogWriter::new(archive.clone(), ledger.shard().clone());
    let mut listing = read_all_manifests(archive).await?;
    let mut written = 0u64;
    while let Some(read) = listing.next().await {
        match read {
            ManifestRead::Stored(stored) => match stored.parse() {
                Ok(manifest) => catalog.record(&manifest),
                Err(e) => {
                    tracing::warn!(key = %stored.key, error = %error_chain(&e), "not cataloged: not a manifest (`recarch verify` reports it)")
                }
            },
            ManifestRead::Unreadable { key, error } => {
                return Err(fatal(anyhow::anyhow!(
                    "cannot read manifest {key}: {}; the catalog was not completed",
                    error_chain(&error)
                )));
            }
            ManifestRead::Unlisted { prefix, error, .. } => {
                return Err(fatal(anyhow::anyhow!(
                    "cannot list {prefix}: {}; the catalog was not completed",
                    error_chain(&error)
                )));
            }
            _ => {}
        }
        if catalog.pending() >= REBUILD_SEGMENT {
            written += flush(&catalog, ledger, "catalogRebuild").await?;
        }
    }
    written += flush(&catalog, ledger, "catalogRebuild").await?;
    Ok(written)
}

/// Writes what `catalog` holds as a segment (named in a ledger intent first) and logs it right
/// after, its record's details saying `why`; returns how many entries it held.
async fn flush(catalog: &crate::catalog::CatalogWriter, ledger: &Ledger, why: &str) -> Result<u64, ExitError> {
    let n = catalog.pending() as u64;
    let written = async {
        let intent = catalog.flush(ledger).await?;
        if intent.is_none() {
            return Ok(None);
        }
        let mut details = serde_json::Map::new();
        details.insert(why.into(), serde_json::Value::Bool(true));
        ledger
            .log(
                intent.into_iter().collect(),
                recarch_store::ledger::LedgerEvent::Run,
                details,
            )
            .await
    }
    .await;
    written.map_err(|e| {
        ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!("cannot write a catalog segment: {}", error_chain(&e)),
        )
    })?;
    Ok(n)
}

/// Catalogs the manifests among `keys` (what an interrupted run wrote, as the ledger's
/// recovery found it): a run killed after writing a manifest and before writing its catalog
/// segment left an item that the next run finds archived and would never catalog. Entries
/// already in the catalog are written again, which readers tolerate (one per identity).
///
/// # Errors
/// Exit 4 when a manifest cannot be read or the segment cannot be written.
pub async fn recatalog(archive: &Archive, ledger: &Ledger, keys: &[String]) -> Result<u64, ExitError> {
    let catalog = crate::catalog::CatalogWriter::new(archive.clone(), ledger.shard().clone());
    for key in keys.iter().filter(|k| k.starts_with("manifests/")) {
        match archive.manifest_at(key).await {
            Ok(Some(manifest)) => catalog.record(&manifest),
            Ok(None) => {}
            Err(e) => {
                return Err(ExitError::new(
                    Exit::Fatal,
                    anyhow::anyhow!("cannot read {key} to catalog it: {}", error_chain(&e)),
                ));
            }
        }
    }
    flush(&catalog, ledger, "catalogRecovered").await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use recarch_store::{Kind, ShardId};
    use serde_json::json;

    const ORG: &str = "8b081ef6-4792-4def-b2c9-c363a1bf41d5";

    /// A catalog entry of `kind` for the manifest `m`, its content `sha`, created (or for a
    /// contact archived) at minute `minute` of 2026-01-01.
    fn entry(kind: &str, m: &str, sha: &str, minute: u32, extra: serde_json::Value) -> serde_json::Value {
        let at = format!("2026-01-01T{:02}:{:02}:00Z", minute / 60, minute % 60);
        let mut e = json!({
            "kind": kind, "organizerId": ORG, "id": m, "archivedAt": at, "size": 1,
            "sha256": sha, "manifest": format!("manifests/{kind}/{ORG}/{m}.json"),
        });
        if kind != "contacts" {
            e["createdDateTime"] = json!(at);
            e["meetingId"] = json!("meeting");
        }
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    }

    fn marker(kind: &str, m: &str, sha: &str) -> serde_json::Value {
        json!({"disposed": {"manifest": format!("manifests/{kind}/{ORG}/{m}.json"), "sha256": sha,
                            "disposedAt": "2026-02-01T00:00:00Z", "record": "ledger/00000000000000000009.json"}})
    }

    /// Writes `lines` as the segment `catalog/<name>.jsonl` of the archive in `dir`.
    fn segment(dir: &std::path::Path, name: &str, lines: &[serde_json::Value]) {
        let path = dir.join("catalog").join(format!("{name}.jsonl"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(path, text).unwrap();
    }

    fn drain(found: Found) -> (Vec<CatalogEntry>, Vec<Disposed>) {
        found.into_all().unwrap()
    }

    /// A search folds the catalog's lines alike whether it sorts in memory or through files:
    /// entries of one item merged (names from either), a contact's newest version that
    /// passes, items a later marker hides set apart, an item archived again after its
    /// disposal listed, and everything in order of time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_search_folds_and_orders_alike_in_memory_and_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(url::Url::from_directory_path(dir.path()).unwrap().as_str(), &[]).unwrap();
        let ledger = Ledger::new(archive.clone(), ShardId::new(0, 1), None);
        let sha = |n: u32| format!("{n:064x}");
        // 40 recordings, listed newest first across two segments.
        let many: Vec<serde_json::Value> = (0..40u32)
            .rev()
            .map(|n| entry("recordings", &format!("r{n:02}"), &sha(n), 100 + n, json!({})))
            .collect();
        segment(dir.path(), "20260101T000000.000Z-0-of-1-a", &many[..20]);
        segment(dir.path(), "20260101T000001.000Z-0-of-1-b", &many[20..]);
        // One item listed twice: first without a subject, then with it (and without the name).
        segment(
            dir.path(),
            "20260101T000002.000Z-0-of-1-c",
            &[
                entry("recordings", "named", &sha(900), 5, json!({"organizerName": "Ada"})),
                entry("contacts", "c", &sha(901), 10, json!({"displayName": "v1"})),
                entry("recordings", "gone", &sha(902), 6, json!({})),
                entry("recordings", "back", &sha(903), 7, json!({})),
                marker("recordings", "back", &sha(903)),
            ],
        );
        segment(
            dir.path(),
            "20260101T000003.000Z-0-of-1-d",
            &[
                entry("recordings", "named", &sha(900), 5, json!({"subject": "Budget"})),
                entry("contacts", "c", &sha(904), 20, json!({"displayName": "v2"})),
                marker("recordings", "gone", &sha(902)),
            ],
        );
        // Archived again after its disposal: listed.
        segment(
            dir.path(),
            "20260101T000004.000Z-0-of-1-e",
            &[entry("recordings", "back", &sha(903), 7, json!({}))],
        );
        let tiny = Limits {
            prefix: "recarch-find-test-",
            ..Limits::TINY
        };
        for limits in [SEARCH_LIMITS, tiny] {
            let found = find_with(&archive, &ledger, &Filters::default(), &|_| true, limits)
                .await
                .unwrap();
            assert_eq!(found.count, 43, "{limits:?}");
            let (entries, disposed) = drain(found);
            let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            let mut expected = vec!["named", "back", "c"];
            let numbered: Vec<String> = (0..40).map(|n| format!("r{n:02}")).collect();
            expected.extend(numbered.iter().map(String::as_str));
            // By time: minute 5, 7, the contact's newest version at 20, then 100-139.
            assert_eq!(ids, expected, "{limits:?}");
            let named = &entries[0];
            assert_eq!(named.extra["subject"], "Budget");
            assert_eq!(named.extra["organizerName"], "Ada");
            assert_eq!(entries[2].extra["displayName"], "v2");
            assert_eq!(entries[2].kind, Kind::Contacts);
            assert_eq!(disposed.len(), 1, "{limits:?}");
            assert_eq!(disposed[0].entry.id, "gone");
            assert_eq!(disposed[0].marker.record, "ledger/00000000000000000009.json");
            // Filters apply before folding: the contact's first version, before the second.
            let to = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:15:00Z")
                .unwrap()
                .to_utc();
            let filters = Filters {
                kinds: vec![Kind::Contacts],
                to: Some(to),
                ..Filters::default()
            };
            let (entries, _) = drain(find_with(&archive, &ledger, &filters, &|_| true, limits).await.unwrap());
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].extra["displayName"], "v1");
            // A named search finds an earlier version by its content, which the folded
            // results no longer show.
            let first = sha(901);
            let named = |e: &CatalogEntry| e.sha256 == first;
            let (entries, _) = drain(
                find_with(&archive, &ledger, &Filters::default(), &named, limits)
                    .await
                    .unwrap(),
            );
            assert_eq!(entries.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["c"]);
            assert_eq!(entries[0].extra["displayName"], "v1");
        }
        // With the tiny limits the results went through files, which are gone afterwards.
        let leftovers = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(tiny.prefix))
            .count();
        assert_eq!(leftovers, 0);
    }
}
