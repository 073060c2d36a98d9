//! An archive whose mutable documents live in a second store: [`Archive::with_state_store`].
//!
//! Under WORM retention (S3 Object Lock, Azure immutability) the archive's bucket is
//! write-once, yet a run rewrites and deletes documents all the time: checkpoints, queues, dead
//! letters, ledger and upload intents (all under `state/`), leases (`locks/`) and run reports
//! (`runs/`). [`Archive::with_state_store`] puts those three prefixes in a store of their own
//! and leaves everything else (blobs, manifests, indexes, the catalog, holds, the ledger,
//! staging) in the archive's store. Every operation of [`Archive`] works unchanged on the
//! result: its store is a [`RoutedStore`], which sends each request to one store by the first
//! segment of its key.
//!
//! - Listing the root (or no prefix) merges both stores, each showing only the keys routed to
//!   it; every other listing names one of the prefixes and goes to one store.
//! - Copies and renames stay inside one store: the archive only moves `staging/` to `blobs/`;
//!   one from one store to the other is refused (`NotSupported`).
//! - The probe ([`Archive::probe`]) checks both stores and reports a guarantee only when both
//!   keep it; a failure in the state store names its URL (see `DualProbe`).
//! - The backend's extensions are asked about the store a key lives in; bucket-wide questions
//!   (incomplete multipart uploads, Object Lock) go to the archive's, since uploads and locked
//!   objects are the archive's.
//!
//! [`Archive::copy_state_to`] moves an archive that ran before it had a state store: it copies
//! the three prefixes across once, when the state store holds none of them.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UpdateVersion,
};
use url::Url;

use crate::extensions::{Encryption, Extensions, IncompleteUpload};
use crate::layout::{self, path};
use crate::worm::{LockState, ObjectLock, WormSupport};
use crate::{Archive, StoreError};

/// The first key segments that live in the state store; everything else is the archive's.
pub const STATE_PREFIXES: [&str; 3] = [layout::STATE_ROOT, layout::LOCKS, layout::RUNS];

/// Where the probe's objects go in the state store: `state/probe/…` (never `staging/`, which
/// is the archive's, so that nothing but `state/`, `locks/` and `runs/` is ever written there).
const STATE_PROBE: &str = "state/probe";

/// Whether `location` lives in the state store.
fn is_state(location: &Path) -> bool {
    location
        .parts()
        .next()
        .is_some_and(|first| STATE_PREFIXES.contains(&first.as_ref()))
}

/// Which stores a listing prefix reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Archive,
    State,
    Both,
}

fn reach(prefix: Option<&Path>) -> Reach {
    match prefix {
        None => Reach::Both,
        Some(p) if p.parts().next().is_none() => Reach::Both,
        Some(p) if is_state(p) => Reach::State,
        Some(_) => Reach::Archive,
    }
}

/// An [`ObjectStore`] that sends each request to one of two stores by the first segment of its
/// key: `state`, `locks` and `runs` to the state store, everything else to the archive's (see
/// the module docs). Both are already narrowed to their own prefix.
#[derive(Debug)]
pub struct RoutedStore {
    archive: Arc<dyn ObjectStore>,
    state: Arc<dyn ObjectStore>,
}

impl RoutedStore {
    /// Routes `state/`, `locks/` and `runs/` to `state`, the rest to `archive`.
    pub fn new(archive: Arc<dyn ObjectStore>, state: Arc<dyn ObjectStore>) -> Self {
        Self { archive, state }
    }

    fn to(&self, location: &Path) -> &Arc<dyn ObjectStore> {
        if is_state(location) { &self.state } else { &self.archive }
    }

    /// One store for a copy or rename, or `NotSupported` when it would cross stores.
    fn within(&self, from: &Path, to: &Path, what: &str) -> object_store::Result<&Arc<dyn ObjectStore>> {
        if is_state(from) == is_state(to) {
            Ok(self.to(from))
        } else {
            Err(object_store::Error::NotSupported {
                source: format!(
                    "{what} from {from} to {to} crosses the archive's store and the state store ([store].state_url); \
                     the archive never does that"
                )
                .into(),
            })
        }
    }

    /// Both listings, each keeping only the keys routed to its store.
    fn merged(
        &self,
        archive: BoxStream<'static, object_store::Result<ObjectMeta>>,
        state: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let archive = archive.try_filter(|meta| futures::future::ready(!is_state(&meta.location)));
        let state = state.try_filter(|meta| futures::future::ready(is_state(&meta.location)));
        archive.chain(state).boxed()
    }
}

impl fmt::Display for RoutedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Routed(archive: {}, state: {})", self.archive, self.state)
    }
}

#[async_trait::async_trait]
impl ObjectStore for RoutedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.to(location).put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.to(location).put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.to(location).get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.to(location).get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let archive = Arc::clone(&self.archive);
        let state = Arc::clone(&self.state);
        // Whatever is ready, split by store, so that each store still deletes in batches.
        locations
            .ready_chunks(1000)
            .flat_map(move |chunk| {
                let (mut errors, mut to_archive, mut to_state) = (Vec::new(), Vec::new(), Vec::new());
                for location in chunk {
                    match location {
                        Ok(p) if is_state(&p) => to_state.push(Ok(p)),
                        Ok(p) => to_archive.push(Ok(p)),
                        Err(e) => errors.push(Err(e)),
                    }
                }
                let mut out = vec![stream::iter(errors).boxed()];
                for (store, batch) in [(&archive, to_archive), (&state, to_state)] {
                    if !batch.is_empty() {
                        out.push(store.delete_stream(stream::iter(batch).boxed()));
                    }
                }
                stream::iter(out).flatten()
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match reach(prefix) {
            Reach::Archive => self.archive.list(prefix),
            Reach::State => self.state.list(prefix),
            Reach::Both => self.merged(self.archive.list(prefix), self.state.list(prefix)),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match reach(prefix) {
            Reach::Archive => self.archive.list_with_offset(prefix, offset),
            Reach::State => self.state.list_with_offset(prefix, offset),
            Reach::Both => self.merged(
                self.archive.list_with_offset(prefix, offset),
                self.state.list_with_offset(prefix, offset),
            ),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        match reach(prefix) {
            Reach::Archive => self.archive.list_with_delimiter(prefix).await,
            Reach::State => self.state.list_with_delimiter(prefix).await,
            Reach::Both => {
                let archive = self.archive.list_with_delimiter(prefix).await?;
                let state = self.state.list_with_delimiter(prefix).await?;
                let mut common_prefixes: Vec<Path> = archive
                    .common_prefixes
                    .into_iter()
                    .filter(|p| !is_state(p))
                    .chain(state.common_prefixes.into_iter().filter(is_state))
                    .collect();
                common_prefixes.sort();
                common_prefixes.dedup();
                let objects = archive
                    .objects
                    .into_iter()
                    .filter(|m| !is_state(&m.location))
                    .chain(state.objects.into_iter().filter(|m| is_state(&m.location)))
                    .collect();
                Ok(ListResult {
                    common_prefixes,
                    objects,
                    extensions: archive.extensions,
                })
            }
        }
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.within(from, to, "a copy")?.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.within(from, to, "a rename")?.rename_opts(from, to, options).await
    }
}

/// A state store's failure, naming its URL (the probe's messages name the archive's).
#[derive(Debug, thiserror::Error)]
#[error("the state store at {url} ([store].state_url): {source}")]
struct StateStoreError {
    url: String,
    source: object_store::Error,
}

/// The store [`Archive::probe`] talks to when the archive has a state store: each request on a
/// probe object is made in the archive's store and, at `state/probe/…`, in the state store, so
/// that one probe checks both. The answers are combined so that a guarantee is reported only
/// when both stores keep it: a request refused (already exists, precondition failed) by one and
/// done by the other counts as done, that is, as the condition not honoured. Conditional
/// updates carry the state store's own version (recorded when the probe reads the metadata).
/// Any other failure of the state store names `state_url`.
///
/// Only for the probe: nothing else should use it.
#[derive(Debug)]
struct DualProbe {
    archive: Arc<dyn ObjectStore>,
    state: Arc<dyn ObjectStore>,
    /// The state store's URL, for messages.
    state_url: String,
    /// A local state directory, whose emptied probe directories are removed.
    state_root: Option<std::path::PathBuf>,
    /// The state store's version of the probe object, by the archive's ETag read at the same time.
    versions: Mutex<HashMap<String, UpdateVersion>>,
}

impl DualProbe {
    fn state_key(location: &Path) -> Path {
        let mut parts: Vec<String> = location.parts().skip(1).map(|p| p.as_ref().to_owned()).collect();
        parts.insert(0, STATE_PROBE.to_owned());
        Path::from(parts.join("/"))
    }

    fn wrap(&self, e: object_store::Error) -> object_store::Error {
        object_store::Error::Generic {
            store: "state",
            source: Box::new(StateStoreError {
                url: self.state_url.clone(),
                source: e,
            }),
        }
    }

    /// One answer from two (see the type's docs).
    fn combine<T>(&self, archive: object_store::Result<T>, state: object_store::Result<T>) -> object_store::Result<T> {
        fn refused(e: &object_store::Error) -> bool {
            matches!(
                e,
                object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
            )
        }
        let hard = |e: &object_store::Error| !refused(e) && !crate::probe::is_unsupported(e);
        match (archive, state) {
            (Err(e), _) if hard(&e) => Err(e),
            (_, Err(e)) if hard(&e) => Err(self.wrap(e)),
            (Err(e), _) if crate::probe::is_unsupported(&e) => Err(e),
            (_, Err(e)) if crate::probe::is_unsupported(&e) => Err(e),
            (Ok(v), _) | (Err(_), Ok(v)) => Ok(v),
            (Err(e), Err(_)) => Err(e),
        }
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, UpdateVersion>> {
        self.versions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Display for DualProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DualProbe(archive: {}, state: {})", self.archive, self.state)
    }
}

#[async_trait::async_trait]
impl ObjectStore for DualProbe {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let mut state_opts = opts.clone();
        if let PutMode::Update(version) = &opts.mode {
            if let Some(state_version) = version.e_tag.as_ref().and_then(|tag| self.versions().get(tag).cloned()) {
                state_opts.mode = PutMode::Update(state_version);
            }
        }
        let archive = self.archive.put_opts(location, payload.clone(), opts).await;
        if let Err(e) = &archive {
            if !matches!(
                e,
                object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
            ) && !crate::probe::is_unsupported(e)
            {
                return archive;
            }
        }
        let state = self
            .state
            .put_opts(&Self::state_key(location), payload, state_opts)
            .await;
        self.combine(archive, state)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(object_store::Error::NotSupported {
            source: format!("the probe writes no multipart upload ({location})").into(),
        })
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let state_key = Self::state_key(location);
        if options.head {
            let mut archive = self.archive.get_opts(location, options.clone()).await?;
            let state = self
                .state
                .get_opts(&state_key, options)
                .await
                .map_err(|e| self.wrap(e))?;
            match (&archive.meta.e_tag, state.meta.e_tag) {
                (Some(tag), Some(state_tag)) => {
                    self.versions().insert(
                        tag.clone(),
                        UpdateVersion {
                            e_tag: Some(state_tag),
                            version: state.meta.version,
                        },
                    );
                }
                // Conditional updates need a version in both stores.
                _ => archive.meta.e_tag = None,
            }
            return Ok(archive);
        }
        let archive = self.archive.get_opts(location, options.clone()).await?;
        let (meta, range, attributes) = (archive.meta.clone(), archive.range.clone(), archive.attributes.clone());
        let bytes = archive.bytes().await?;
        let state = async { self.state.get_opts(&state_key, options).await?.bytes().await }
            .await
            .map_err(|e| self.wrap(e))?;
        if state != bytes {
            return Err(self.wrap(object_store::Error::Generic {
                store: "state",
                source: "the content read back differs from what was written".into(),
            }));
        }
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed()),
            meta,
            range,
            attributes,
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let archive = Arc::clone(&self.archive);
        let state = Arc::clone(&self.state);
        let state_url = self.state_url.clone();
        let state_root = self.state_root.clone();
        locations
            .then(move |location| {
                let (archive, state, state_url, state_root) = (
                    Arc::clone(&archive),
                    Arc::clone(&state),
                    state_url.clone(),
                    state_root.clone(),
                );
                async move {
                    let location = location?;
                    match archive.delete(&location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    let state_key = Self::state_key(&location);
                    match state.delete(&state_key).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => {
                            return Err(object_store::Error::Generic {
                                store: "state",
                                source: Box::new(StateStoreError {
                                    url: state_url,
                                    source: e,
                                }),
                            });
                        }
                    }
                    if let Some(root) = state_root {
                        // Local disk keeps emptied directories: drop the probe's (up to
                        // `state/`), if empty.
                        let file = root.join(state_key.as_ref());
                        for dir in file.ancestors().skip(1).take(3) {
                            let _ = std::fs::remove_dir(dir);
                        }
                    }
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, _prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        stream::once(async {
            Err(object_store::Error::NotSupported {
                source: "the probe lists nothing".into(),
            })
        })
        .boxed()
    }

    async fn list_with_delimiter(&self, _prefix: Option<&Path>) -> object_store::Result<ListResult> {
        Err(object_store::Error::NotSupported {
            source: "the probe lists nothing".into(),
        })
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        let archive = self.archive.copy_opts(from, to, options.clone()).await;
        if let Err(e) = &archive {
            if !matches!(
                e,
                object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
            ) && !crate::probe::is_unsupported(e)
            {
                return archive;
            }
        }
        let state = self
            .state
            .copy_opts(&Self::state_key(from), &Self::state_key(to), options)
            .await;
        self.combine(archive, state)
    }
}

/// The extensions of an archive with a state store: a key's questions go to the store it lives
/// in; bucket-wide ones (incomplete multipart uploads, whether the bucket is WORM) to the
/// archive's, whose blobs they are about.
#[derive(Debug)]
struct RoutedExtensions {
    archive: Arc<dyn Extensions>,
    state: Arc<dyn Extensions>,
}

impl RoutedExtensions {
    fn to(&self, key: &str) -> &Arc<dyn Extensions> {
        if is_state(&path(key)) {
            &self.state
        } else {
            &self.archive
        }
    }
}

impl Extensions for RoutedExtensions {
    fn keeps_incomplete_uploads(&self) -> bool {
        self.archive.keeps_incomplete_uploads()
    }

    fn incomplete_uploads<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IncompleteUpload>>, StoreError>> {
        self.archive.incomplete_uploads(prefix)
    }

    fn abort_upload<'a>(&'a self, upload: &'a IncompleteUpload) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.archive.abort_upload(upload)
    }

    fn encryption<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Encryption>, StoreError>> {
        self.to(key).encryption(key)
    }

    fn worm_support(&self) -> BoxFuture<'_, Result<WormSupport, StoreError>> {
        self.archive.worm_support()
    }

    fn lock_state<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<LockState>, StoreError>> {
        self.to(key).lock_state(key)
    }

    fn set_retention<'a>(
        &'a self,
        key: &'a str,
        version: Option<&'a str>,
        lock: &'a ObjectLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.to(key).set_retention(key, version, lock)
    }

    fn set_legal_hold<'a>(
        &'a self,
        key: &'a str,
        version: Option<&'a str>,
        on: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.to(key).set_legal_hold(key, version, on)
    }

    fn delete_versions<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        self.to(key).delete_versions(key)
    }
}

impl Archive {
    /// This archive with its mutable documents in `state`: everything under `state/`
    /// (checkpoints, queues, dead letters, ledger and upload intents), `locks/` (leases) and
    /// `runs/` (run reports) is read and written there, everything else stays here (see the
    /// module docs). The probe checks both stores. Messages keep naming this archive's URL;
    /// the state store's own failures in the probe name its URL.
    ///
    /// An archive that ran before it had a state store keeps its state here, where it is no
    /// longer read: call [`Archive::copy_state_to`] first, on the archive as it was opened.
    ///
    /// # Errors
    /// [`StoreError::InvalidUrl`] when `state` is this archive's own store (the same URL).
    pub fn with_state_store(mut self, state: Archive) -> Result<Archive, StoreError> {
        if Arc::ptr_eq(&self.store, &state.store)
            || (!self.display_url().starts_with("memory:") && self.display_url() == state.display_url())
        {
            return Err(StoreError::InvalidUrl {
                url: state.display_url().to_owned(),
                reason: "the state store is the archive itself; give [store].state_url a location of its own".into(),
            });
        }
        let probe = DualProbe {
            archive: Arc::clone(self.probe_store()),
            state: Arc::clone(state.probe_store()),
            state_url: state.display_url().to_owned(),
            state_root: state.local_root().map(std::path::Path::to_path_buf),
            versions: Mutex::default(),
        };
        self.store = Arc::new(RoutedStore::new(Arc::clone(&self.store), Arc::clone(&state.store)));
        self.extensions = Arc::new(RoutedExtensions {
            archive: Arc::clone(&self.extensions),
            state: Arc::clone(&state.extensions),
        });
        Ok(self.with_probe_store(Arc::new(probe)))
    }

    /// Copies this archive's `state/`, `locks/` and `runs/` into `state`, when `state` holds
    /// none of them and this archive does: the first run of an archive given a state store
    /// carries on from its checkpoints, queues, dead letters and leases instead of starting
    /// over. Call it on the archive as opened, before [`Archive::with_state_store`]. Returns
    /// how many objects were copied (0: nothing to do).
    ///
    /// Each object is written create-only, so a copy never replaces what a run (or another
    /// copy) wrote there first. The originals are left where they are, no longer read.
    ///
    /// Costs one listing of `state/` when the state store already holds state (the usual
    /// case); up to six listings when it is empty.
    ///
    /// # Errors
    /// Store failures, in either store.
    pub async fn copy_state_to(&self, state: &Archive) -> Result<usize, StoreError> {
        for prefix in STATE_PREFIXES {
            if let Some(first) = state.store.list(Some(&path(prefix))).next().await {
                first.map_err(|e| StoreError::from_backend(prefix, e))?;
                return Ok(0);
            }
        }
        let mut copied = 0;
        for prefix in STATE_PREFIXES {
            let listed: Vec<ObjectMeta> = self
                .store
                .list(Some(&path(prefix)))
                .try_collect()
                .await
                .map_err(|e| StoreError::from_backend(prefix, e))?;
            for meta in listed {
                let key = meta.location.to_string();
                // Gone since the listing: as if listed a moment later.
                let Some(bytes) = self.get_bytes(&key).await? else {
                    continue;
                };
                match state
                    .store
                    .put_opts(&meta.location, PutPayload::from_bytes(bytes), PutMode::Create.into())
                    .await
                {
                    Ok(_) => copied += 1,
                    Err(object_store::Error::AlreadyExists { .. }) => {}
                    Err(e) => return Err(StoreError::from_backend(&key, e)),
                }
            }
        }
        Ok(copied)
    }
}

/// Whether `state_url` (with `state_options`) names a location that would put the state store
/// in the archive's own bucket or container, or its own directory; `Ok` when it is elsewhere.
/// Nothing is contacted. The environment's `AWS_*` / `AZURE_*` variables count as they do when
/// the stores are opened.
///
/// - S3: the same bucket on the same endpoint (a different bucket on the same endpoint is
///   fine; a bucket's prefix is no separation, since retention is the bucket's);
/// - Azure: the same container of the same account on the same endpoint;
/// - local disk: the same directory, or one inside the other;
/// - across kinds (e.g. a local state directory for an S3 archive): always fine.
///
/// # Errors
/// [`StoreError::InvalidUrl`] naming the state URL and the shared bucket, container or
/// directory; never an option value.
pub fn check_state_location(
    archive_url: &str,
    archive_options: &[(String, String)],
    state_url: &str,
    state_options: &[(String, String)],
) -> Result<(), StoreError> {
    let conflict = |reason: String| StoreError::InvalidUrl {
        url: crate::redact_url(state_url),
        reason,
    };
    let (Ok(archive), Ok(state)) = (Url::parse(archive_url), Url::parse(state_url)) else {
        // Malformed URLs are refused when the stores are opened.
        return Ok(());
    };
    match (
        Location::of(&archive, archive_options),
        Location::of(&state, state_options),
    ) {
        (Location::Dir(a), Location::Dir(s)) => {
            let (a, s) = (resolved(&a), resolved(&s));
            if s.starts_with(&a) || a.starts_with(&s) {
                return Err(conflict(format!(
                    "the state directory {} and the archive's directory {} contain one another; give the state a directory of its own, outside the archive",
                    s.display(),
                    a.display()
                )));
            }
        }
        (
            Location::S3 { bucket, endpoint },
            Location::S3 {
                bucket: b2,
                endpoint: e2,
            },
        ) if bucket == b2 && endpoint == e2 => {
            return Err(conflict(format!(
                "the state would be in the archive's own bucket {bucket:?}: under WORM retention that bucket is write-once; use another bucket (on the same endpoint is fine)"
            )));
        }
        (
            Location::Azure {
                account,
                container,
                endpoint,
            },
            Location::Azure {
                account: a2,
                container: c2,
                endpoint: e2,
            },
        ) if container == c2 && account == a2 && endpoint == e2 => {
            return Err(conflict(format!(
                "the state would be in the archive's own container {container:?}: under WORM retention that container is write-once; use another container"
            )));
        }
        _ => {}
    }
    Ok(())
}

/// A store's location, as far as telling two apart goes.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Dir(std::path::PathBuf),
    S3 {
        bucket: String,
        endpoint: Option<String>,
    },
    Azure {
        account: Option<String>,
        container: String,
        endpoint: Option<String>,
    },
    Other,
}

impl Location {
    fn of(url: &Url, options: &[(String, String)]) -> Location {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        let host = url.host_str().unwrap_or_default().to_owned();
        let trim = |s: String| s.trim_end_matches('/').to_owned();
        let s3 = |bucket: String| {
            let mut builder = AmazonS3Builder::from_env();
            for (key, value) in options {
                if let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                    builder = builder.with_config(key, value);
                }
            }
            Location::S3 {
                bucket,
                endpoint: builder.get_config_value(&AmazonS3ConfigKey::Endpoint).map(trim),
            }
        };
        let azure = |account: Option<String>, container: String| {
            let mut builder = MicrosoftAzureBuilder::from_env();
            for (key, value) in options {
                if let Ok(key) = key.to_ascii_lowercase().parse::<AzureConfigKey>() {
                    builder = builder.with_config(key, value);
                }
            }
            Location::Azure {
                account: account.or_else(|| builder.get_config_value(&AzureConfigKey::AccountName)),
                container,
                endpoint: builder.get_config_value(&AzureConfigKey::Endpoint).map(trim),
            }
        };
        let first_segment = || {
            url.path_segments()
                .and_then(|mut s| s.next())
                .unwrap_or_default()
                .to_owned()
        };
        match url.scheme() {
            "file" => url.to_file_path().map_or(Location::Other, Location::Dir),
            "s3" | "s3a" => s3(host),
            "az" | "azure" | "abfs" | "abfss" | "adl" if url.username().is_empty() => azure(None, host),
            "az" | "abfs" | "abfss" => {
                let account = host.split('.').next().map(str::to_owned);
                azure(account, url.username().to_owned())
            }
            "https" | "http" => match object_store::ObjectStoreScheme::parse(url) {
                Ok((object_store::ObjectStoreScheme::AmazonS3, _)) => {
                    // `<bucket>.s3[.<region>].amazonaws.com/…` or `s3.<region>.amazonaws.com/<bucket>/…`.
                    match host.split_once(".s3") {
                        Some((bucket, _)) if !bucket.is_empty() => s3(bucket.to_owned()),
                        _ => s3(first_segment()),
                    }
                }
                Ok((object_store::ObjectStoreScheme::MicrosoftAzure, _)) => {
                    let account = host.split('.').next().map(str::to_owned);
                    azure(account, first_segment())
                }
                _ => Location::Other,
            },
            _ => Location::Other,
        }
    }
}

/// `dir`, with symbolic links resolved as far as it exists, and lexically normalised.
fn resolved(dir: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut normal = std::path::PathBuf::new();
    for part in dir.components() {
        match part {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    // The longest existing ancestor, canonicalised, then the rest as written.
    let mut existing = normal.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use object_store::memory::InMemory;

    use super::*;
    use crate::ShardId;

    fn stores() -> (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>) {
        (Arc::new(InMemory::new()), Arc::new(InMemory::new()))
    }

    async fn keys(store: &dyn ObjectStore) -> Vec<String> {
        let mut keys: Vec<String> = store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .expect("list");
        keys.sort();
        keys
    }

    async fn put(store: &dyn ObjectStore, key: &str) {
        store.put(&path(key), PutPayload::from_static(b"x")).await.expect("put");
    }

    #[tokio::test]
    async fn requests_go_to_the_store_of_the_first_segment() {
        let (archive, state) = stores();
        let routed = RoutedStore::new(Arc::clone(&archive), Arc::clone(&state));
        for key in [
            "state/recordings/o.json",
            "locks/0-of-1.json",
            "runs/r.json",
            "blobs/sha256/ab",
            "manifests/recordings/o/k.json",
            "staging/0-of-1/x",
            "stateful/x",
            "ledger/00000000000000000001.json",
        ] {
            put(&routed, key).await;
        }
        assert_eq!(
            keys(archive.as_ref()).await,
            [
                "blobs/sha256/ab",
                "ledger/00000000000000000001.json",
                "manifests/recordings/o/k.json",
                "staging/0-of-1/x",
                "stateful/x"
            ]
        );
        assert_eq!(
            keys(state.as_ref()).await,
            ["locks/0-of-1.json", "runs/r.json", "state/recordings/o.json"]
        );
        // Reads and heads follow the same rule.
        assert!(routed.head(&path("runs/r.json")).await.is_ok());
        assert!(archive.head(&path("runs/r.json")).await.is_err());
        // The root merges both, each store showing only its own keys (a stale state/ object
        // left in the archive is not listed: it is not what a read would return).
        put(archive.as_ref(), "state/stale.json").await;
        put(state.as_ref(), "blobs/stray").await;
        let all = keys(&routed).await;
        assert_eq!(all.len(), 8, "{all:?}");
        assert!(!all.contains(&"state/stale.json".to_owned()) && !all.contains(&"blobs/stray".to_owned()));
        assert_eq!(
            routed
                .list(Some(&Path::from("state")))
                .try_collect::<Vec<_>>()
                .await
                .expect("list")
                .len(),
            1
        );
        let offset: Vec<ObjectMeta> = routed
            .list_with_offset(None, &path("m"))
            .try_collect()
            .await
            .expect("list");
        let mut offset: Vec<String> = offset.into_iter().map(|m| m.location.to_string()).collect();
        offset.sort();
        assert_eq!(
            offset,
            [
                "manifests/recordings/o/k.json",
                "runs/r.json",
                "staging/0-of-1/x",
                "state/recordings/o.json",
                "stateful/x"
            ]
        );
        let top = routed.list_with_delimiter(None).await.expect("list");
        let top: Vec<String> = top.common_prefixes.iter().map(ToString::to_string).collect();
        assert_eq!(
            top,
            [
                "blobs",
                "ledger",
                "locks",
                "manifests",
                "runs",
                "staging",
                "state",
                "stateful"
            ]
        );
        // Deletes, one at a time and in a batch spanning both stores.
        routed.delete(&path("locks/0-of-1.json")).await.expect("delete");
        let batch = ["runs/r.json", "staging/0-of-1/x"].map(|k| Ok(path(k)));
        let deleted: Vec<Path> = routed
            .delete_stream(stream::iter(batch).boxed())
            .try_collect()
            .await
            .expect("delete");
        assert_eq!(deleted.len(), 2);
        assert_eq!(keys(state.as_ref()).await, ["blobs/stray", "state/recordings/o.json"]);
    }

    #[tokio::test]
    async fn copies_stay_inside_one_store() {
        let (archive, state) = stores();
        let routed = RoutedStore::new(Arc::clone(&archive), Arc::clone(&state));
        put(&routed, "staging/0-of-1/x").await;
        put(&routed, "state/a.json").await;
        routed
            .copy_if_not_exists(&path("staging/0-of-1/x"), &path("blobs/sha256/x"))
            .await
            .expect("copy inside the archive");
        routed
            .rename(&path("state/a.json"), &path("state/b.json"))
            .await
            .expect("rename inside the state store");
        assert_eq!(keys(state.as_ref()).await, ["state/b.json"]);
        for (from, to) in [("staging/0-of-1/x", "state/x"), ("state/b.json", "blobs/sha256/y")] {
            let err = routed.copy(&path(from), &path(to)).await.expect_err("across stores");
            assert!(
                matches!(err, object_store::Error::NotSupported { .. }) && err.to_string().contains("state_url"),
                "{err}"
            );
            let err = routed.rename(&path(from), &path(to)).await.expect_err("across stores");
            assert!(matches!(err, object_store::Error::NotSupported { .. }), "{err}");
        }
    }

    #[tokio::test]
    async fn an_archive_with_a_state_store_keeps_its_mutable_documents_there() {
        let archive = Archive::open("memory://", &[]).expect("archive");
        let state = Archive::open("memory://", &[]).expect("state");
        let (archive_store, state_store) = (Arc::clone(&archive.store), Arc::clone(&state.store));
        let routed = archive.with_state_store(state).expect("routed");
        let report = routed.probe().await.expect("probe");
        assert!(
            report.create_only && report.conditional_update && report.create_only_copy,
            "{report}"
        );
        let shard = ShardId::new(0, 1);
        let report_at = chrono::Utc::now();
        routed.probe_in(&shard).await.expect("probe");
        let lease = routed
            .acquire_lease(&shard, "test", Duration::from_secs(60))
            .await
            .expect("lease");
        let body = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"recording"))]);
        let staged = routed.stage(&shard, body).await.expect("stage");
        let digest = staged.digest();
        routed.commit_blob(staged, &digest).await.expect("commit");
        routed
            .put_run_report(&shard, report_at, &serde_json::json!({"exitCode": 0}))
            .await
            .expect("report");
        let held = keys(state_store.as_ref()).await;
        assert_eq!(held.len(), 2, "{held:?}");
        assert!(
            held[0] == "locks/0-of-1.json" && held[1].starts_with("runs/"),
            "{held:?}"
        );
        routed.release_lease(lease).await.expect("release");
        let archive_keys = keys(archive_store.as_ref()).await;
        assert_eq!(
            archive_keys,
            [format!("blobs/sha256/{digest}")],
            "no probe debris, no state"
        );
        let state_keys = keys(state_store.as_ref()).await;
        assert_eq!(state_keys.len(), 1, "{state_keys:?}");
        assert!(state_keys[0].starts_with("runs/"), "{state_keys:?}");
        assert_eq!(routed.newest_run_reports().await.expect("reports").len(), 1);
    }

    #[tokio::test]
    async fn the_probe_checks_the_state_store_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = |name: &str| {
            Url::from_directory_path(dir.path().join(name))
                .expect("absolute")
                .to_string()
        };
        let archive = Archive::open(&url("archive"), &[]).expect("archive");
        let state = Archive::open(&url("state"), &[]).expect("state");
        let routed = archive.with_state_store(state).expect("routed");
        // Local disk has no conditional updates, and reports so through both.
        let report = routed.probe().await.expect("probe");
        assert!(report.create_only && !report.conditional_update, "{report}");
        let mut left = Vec::new();
        let mut dirs = vec![dir.path().to_path_buf()];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
                if entry.path().is_dir() {
                    dirs.push(entry.path());
                }
                left.push(entry.path());
            }
        }
        left.sort();
        assert_eq!(
            left,
            [dir.path().join("archive"), dir.path().join("state")],
            "the probe leaves nothing behind in either directory"
        );
        // A state directory that cannot be written: the probe fails, naming it.
        std::fs::write(dir.path().join("state").join("state"), b"a file where a directory goes").expect("write");
        let err = routed.probe().await.expect_err("state store unusable");
        let text = recarch_failure::error_chain(&err);
        assert!(text.contains("state_url") && text.contains("/state/"), "{text}");
        // The memory backend honours everything; a local state store does not update
        // conditionally, and the combined report says so.
        let routed = Archive::open("memory://", &[])
            .expect("archive")
            .with_state_store(Archive::open(&url("state2"), &[]).expect("state"))
            .expect("routed");
        let report = routed.probe().await.expect("probe");
        assert!(
            report.create_only && !report.conditional_update && report.create_only_copy,
            "{report}"
        );
    }

    /// An in-memory store that counts the requests made of it.
    #[derive(Debug, Default)]
    struct Counting {
        inner: InMemory,
        requests: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Counting {
        fn count(&self) {
            self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        fn requests(&self) -> usize {
            self.requests.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    impl fmt::Display for Counting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Counting")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Counting {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.count();
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.count();
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
            self.count();
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            // One request per object (an empty batch sends none).
            let requests = Arc::clone(&self.requests);
            let counted = locations
                .inspect(move |_| {
                    requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .boxed();
            self.inner.delete_stream(counted)
        }
        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.count();
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
            self.count();
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
            self.count();
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// What a run's start asks of the store: lease, probe, staging clean-up, a checkpoint, a
    /// blob, a run report, the lease released.
    async fn a_run(archive: &Archive) {
        let shard = ShardId::new(0, 1);
        let lease = archive
            .acquire_lease(&shard, "test", Duration::from_secs(60))
            .await
            .expect("lease");
        archive.probe_in(&shard).await.expect("probe");
        archive.clean_staging(&shard).await.expect("clean");
        let body = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"recording"))]);
        let staged = archive.stage(&shard, body).await.expect("stage");
        let digest = staged.digest();
        archive.commit_blob(staged, &digest).await.expect("commit");
        archive
            .put_run_report(&shard, chrono::Utc::now(), &serde_json::json!({"exitCode": 0}))
            .await
            .expect("report");
        archive.newest_run_reports().await.expect("reports");
        archive.release_lease(lease).await.expect("release");
    }

    #[tokio::test]
    async fn routing_adds_no_request_but_the_probe_of_the_state_store() {
        let plain = Arc::new(Counting::default());
        a_run(&Archive::from_store(
            Arc::clone(&plain) as Arc<dyn ObjectStore>,
            "memory://plain",
        ))
        .await;
        let probe_alone = Arc::new(Counting::default());
        Archive::from_store(Arc::clone(&probe_alone) as Arc<dyn ObjectStore>, "memory://probe")
            .probe_in(&ShardId::new(0, 1))
            .await
            .expect("probe");

        let (archive, state) = (Arc::new(Counting::default()), Arc::new(Counting::default()));
        let routed = Archive::from_store(Arc::clone(&archive) as Arc<dyn ObjectStore>, "memory://archive")
            .with_state_store(Archive::from_store(
                Arc::clone(&state) as Arc<dyn ObjectStore>,
                "memory://state",
            ))
            .expect("routed");
        a_run(&routed).await;
        assert!(probe_alone.requests() >= 8, "{}", probe_alone.requests());
        // Every request of the run went to one store; the probe's, to both.
        assert_eq!(
            archive.requests() + state.requests(),
            plain.requests() + probe_alone.requests(),
            "plain run {}, probe {}, archive {}, state {}",
            plain.requests(),
            probe_alone.requests(),
            archive.requests(),
            state.requests()
        );
        eprintln!(
            "requests: plain run {}, its probe {}; routed: archive {}, state {}",
            plain.requests(),
            probe_alone.requests(),
            archive.requests(),
            state.requests()
        );
    }

    #[test]
    fn the_archive_is_not_its_own_state_store() {
        let archive = Archive::open("memory://", &[]).expect("archive");
        let err = archive.clone().with_state_store(archive).expect_err("itself");
        assert!(err.to_string().contains("state_url"), "{err}");
    }

    #[tokio::test]
    async fn an_archive_that_ran_before_copies_its_state_once() {
        let archive = Archive::open("memory://", &[]).expect("archive");
        let state = Archive::open("memory://", &[]).expect("state");
        for key in [
            "state/recordings/o.json",
            "runs/r.json",
            "locks/0-of-1.json",
            "blobs/sha256/ab",
        ] {
            put(archive.store.as_ref(), key).await;
        }
        assert_eq!(archive.copy_state_to(&state).await.expect("copy"), 3);
        assert_eq!(
            keys(state.store.as_ref()).await,
            ["locks/0-of-1.json", "runs/r.json", "state/recordings/o.json"]
        );
        // Once the state store holds state, nothing is copied again (nor overwritten).
        state
            .store
            .put(&path("state/recordings/o.json"), PutPayload::from_static(b"newer"))
            .await
            .expect("put");
        put(archive.store.as_ref(), "state/recordings/p.json").await;
        assert_eq!(archive.copy_state_to(&state).await.expect("copy"), 0);
        assert_eq!(
            state.get_bytes("state/recordings/o.json").await.expect("read"),
            Some(Bytes::from_static(b"newer"))
        );
        // An empty archive: nothing to copy.
        let fresh = Archive::open("memory://", &[]).expect("archive");
        let empty = Archive::open("memory://", &[]).expect("state");
        assert_eq!(fresh.copy_state_to(&empty).await.expect("copy"), 0);
    }

    #[test]
    fn the_state_is_never_in_the_archives_bucket_or_directory() {
        let opts = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let moto = opts(&[
            ("aws_endpoint", "http://127.0.0.1:9000"),
            ("aws_secret_access_key", "hunter2"),
        ]);
        let other = opts(&[("AWS_ENDPOINT", "http://127.0.0.1:9001/")]);
        let check =
            |a: &str, ao: &[(String, String)], s: &str, so: &[(String, String)]| check_state_location(a, ao, s, so);
        // S3: the same bucket (any prefix) on the same endpoint is refused, naming the bucket.
        let err = check("s3://archive/recordings", &moto, "s3://archive/state", &moto).expect_err("same bucket");
        let text = err.to_string();
        assert!(text.contains("\"archive\"") && !text.contains("hunter2"), "{text}");
        assert!(check("s3://archive/a", &moto, "s3a://archive", &moto).is_err());
        assert!(
            check("s3://archive/a", &moto, "s3://archive-state/a", &moto).is_ok(),
            "another bucket"
        );
        assert!(
            check("s3://archive/a", &moto, "s3://archive/a", &other).is_ok(),
            "another endpoint"
        );
        assert!(
            check(
                "s3://archive/a",
                &[],
                "https://archive.s3.eu-west-1.amazonaws.com/state",
                &[]
            )
            .is_err()
        );
        assert!(
            check(
                "s3://archive/a",
                &[],
                "https://s3.eu-west-1.amazonaws.com/archive/state",
                &[]
            )
            .is_err()
        );
        // Azure: the same container of the same account.
        let account = opts(&[("azure_storage_account_name", "contoso")]);
        let other_account = opts(&[("azure_storage_account_name", "fabrikam")]);
        let err =
            check("az://recordings/a", &account, "azure://recordings/state", &account).expect_err("same container");
        assert!(err.to_string().contains("\"recordings\""), "{err}");
        assert!(
            check(
                "az://recordings/a",
                &account,
                "abfss://recordings@contoso.dfs.core.windows.net/s",
                &[]
            )
            .is_err()
        );
        assert!(
            check(
                "az://recordings/a",
                &account,
                "https://contoso.blob.core.windows.net/recordings/s",
                &[]
            )
            .is_err()
        );
        assert!(check("az://recordings/a", &account, "az://state/a", &account).is_ok());
        assert!(check("az://recordings/a", &account, "az://recordings/a", &other_account).is_ok());
        // Local disk: the same directory or one inside the other.
        let dir = tempfile::tempdir().expect("tempdir");
        let url = |p: &str| {
            Url::from_directory_path(dir.path().join(p))
                .expect("absolute")
                .to_string()
        };
        assert!(check(&url("archive"), &[], &url("archive"), &[]).is_err());
        assert!(check(&url("archive"), &[], &url("archive/state"), &[]).is_err());
        assert!(check(&url("archive"), &[], &url("archive/x/../../archive/y"), &[]).is_err());
        assert!(check(&url("archive/inner"), &[], &url("archive"), &[]).is_err());
        assert!(check(&url("archive"), &[], &url("archive-state"), &[]).is_ok());
        // Across kinds: a local state directory for an S3 archive is fine.
        assert!(check("s3://archive/a", &moto, &url("state"), &[]).is_ok());
        assert!(check("s3://archive/a", &moto, "memory://", &[]).is_ok());
    }
}
