//! Helpers shared by the store's integration tests (a directory, so cargo builds no test
//! binary of its own from it).

use std::collections::BTreeSet;
use std::sync::Mutex;

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

/// An in-memory store whose GETs of the keys in `failing` (`*`: of every key) fail with the
/// error `fail` makes of the key; everything else reaches the store untouched.
#[derive(Debug)]
pub struct FailingGets {
    inner: InMemory,
    /// Keys whose GET fails; `*` for every key.
    pub failing: Mutex<BTreeSet<String>>,
    /// What it calls itself (`Display`, as stores name themselves in errors).
    name: &'static str,
    fail: fn(&Path) -> object_store::Error,
    /// Create-only writes onto an existing key fail with a generic error rather than
    /// `AlreadyExists` (as a local write whose temporary another process swept does).
    pub mask_conflicts: std::sync::atomic::AtomicBool,
    /// The next write is stored, then reported failed (a response lost after the fact).
    pub lose_next_response: std::sync::atomic::AtomicBool,
}

impl FailingGets {
    /// An empty store called `name`, failing no GET yet.
    pub fn new(name: &'static str, fail: fn(&Path) -> object_store::Error) -> Self {
        Self {
            inner: InMemory::new(),
            failing: Mutex::default(),
            name,
            fail,
            mask_conflicts: Default::default(),
            lose_next_response: Default::default(),
        }
    }
}

impl std::fmt::Display for FailingGets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FailingGets {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        options: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        use std::sync::atomic::Ordering::SeqCst;
        let generic = || object_store::Error::Generic {
            store: "test",
            source: "Unable to rename file: No such file or directory".into(),
        };
        let written = self.inner.put_opts(location, payload, options).await;
        match written {
            Err(object_store::Error::AlreadyExists { .. }) if self.mask_conflicts.load(SeqCst) => Err(generic()),
            Ok(_) if self.lose_next_response.swap(false, SeqCst) => Err(generic()),
            other => other,
        }
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        options: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, options).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        let fails = {
            let failing = self.failing.lock().unwrap();
            failing.contains("*") || failing.contains(location.as_ref())
        };
        if fails {
            return Err((self.fail)(location));
        }
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: object_store::CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
