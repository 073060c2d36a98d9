//! The local-disk [`Extensions`]: a locked object's file is made read-only. Nothing stops
//! whoever can write the directory from deleting it (a directory is not WORM); recarch's own
//! commands honour the retention its manifests record and the hold records under `holds/`.

use std::path::PathBuf;

use futures::future::BoxFuture;

use super::Extensions;
use crate::StoreError;
use crate::worm::{ObjectLock, WormSupport};

/// Files under `root`, the archive's directory.
#[derive(Debug)]
pub(crate) struct LocalExtensions {
    root: PathBuf,
}

impl LocalExtensions {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }
}

impl Extensions for LocalExtensions {
    fn worm_support(&self) -> BoxFuture<'_, Result<WormSupport, StoreError>> {
        Box::pin(async { Ok(WormSupport::Local) })
    }

    fn set_retention<'a>(
        &'a self,
        key: &'a str,
        _version: Option<&'a str>,
        _lock: &'a ObjectLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let file = self.root.join(key);
        Box::pin(async move {
            let made = tokio::task::spawn_blocking(move || {
                let mut permissions = std::fs::metadata(&file)?.permissions();
                if !permissions.readonly() {
                    permissions.set_readonly(true);
                    std::fs::set_permissions(&file, permissions)?;
                }
                Ok::<_, std::io::Error>(())
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            made.map_err(|e| {
                let source = if e.kind() == std::io::ErrorKind::NotFound {
                    object_store::Error::NotFound {
                        path: key.to_owned(),
                        source: Box::new(e),
                    }
                } else {
                    object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    }
                };
                StoreError::from_backend(key, source)
            })
        })
    }
}
