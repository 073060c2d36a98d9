//! The archive backends the end-to-end tests (and the throughput benchmark) run on: local
//! disk, and the loopback S3 (moto, SeaweedFS) and Azure Blob (Azurite) servers that
//! `scripts/emulators.sh` starts.

// Also compiled into benches/throughput.rs, which uses only some of the backends.
#![allow(dead_code)]

use std::path::Path;

/// An archive location: URL and `[store.options]`.
#[derive(Clone, Debug)]
pub struct Store {
    pub url: String,
    pub options: Vec<(String, String)>,
}

impl Store {
    /// The `[store]` and `[store.options]` sections of a configuration file.
    pub fn toml(&self) -> String {
        let options: String = self.options.iter().map(|(k, v)| format!("{k} = \"{v}\"\n")).collect();
        format!("[store]\nurl = \"{}\"\n[store.options]\n{options}", self.url)
    }
}

/// The backends the end-to-end tests run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Local,
    /// S3 on moto.
    S3,
    /// S3 on SeaweedFS, a real distributed object store (signatures checked).
    SeaweedFs,
    Azure,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// An S3 archive on the server whose `RECARCH_TEST_<server>_*` variables are set.
fn s3_store(server: &str, prefix: &str) -> Option<Store> {
    let var = |suffix: &str| var(&format!("RECARCH_TEST_{server}_{suffix}"));
    Some(Store {
        url: format!("s3://{}/{prefix}", var("BUCKET")?),
        options: vec![
            ("aws_endpoint".into(), var("ENDPOINT")?),
            ("aws_region".into(), var("REGION")?),
            ("aws_access_key_id".into(), var("ACCESS_KEY_ID")?),
            ("aws_secret_access_key".into(), var("SECRET_ACCESS_KEY")?),
            ("aws_allow_http".into(), "true".into()),
            ("aws_virtual_hosted_style_request".into(), "false".into()),
            ("aws_copy_if_not_exists".into(), "multipart".into()),
            ("aws_conditional_put".into(), "etag".into()),
        ],
    })
}

impl Backend {
    /// The store for a fresh, unique prefix on this backend, or `None` when its emulator is
    /// not running (the `RECARCH_TEST_*` variables written by `scripts/emulators.sh`). With
    /// `RECARCH_REQUIRE_EMULATORS=1` (set by `scripts/test`) a missing emulator is a failure.
    pub fn store(self, local_root: &Path) -> Option<Store> {
        let unique = format!("e2e-{:016x}", fastrand::u64(..));
        let store = match self {
            Backend::Local => Some(Store {
                url: url::Url::from_directory_path(local_root)
                    .expect("absolute path")
                    .to_string(),
                options: Vec::new(),
            }),
            Backend::S3 => s3_store("S3", &unique),
            Backend::SeaweedFs => s3_store("SEAWEEDFS", &unique),
            Backend::Azure => (|| {
                Some(Store {
                    url: format!("az://{}/{unique}", var("RECARCH_TEST_AZURE_CONTAINER")?),
                    options: vec![
                        ("azure_storage_account_name".into(), var("RECARCH_TEST_AZURE_ACCOUNT")?),
                        (
                            "azure_storage_account_key".into(),
                            var("RECARCH_TEST_AZURE_ACCESS_KEY")?,
                        ),
                        ("azure_storage_endpoint".into(), var("RECARCH_TEST_AZURE_ENDPOINT")?),
                        ("azure_allow_http".into(), "true".into()),
                    ],
                })
            })(),
        };
        if store.is_none() {
            assert!(
                var("RECARCH_REQUIRE_EMULATORS").is_none(),
                "{self:?} emulator variables missing but RECARCH_REQUIRE_EMULATORS is set"
            );
            eprintln!("SKIPPED on {self:?}: no emulator (run ./scripts/test, which starts them)");
        }
        store
    }
}
