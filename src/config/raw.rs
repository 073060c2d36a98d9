//! The configuration file as written: every section and key, with serde's defaults, before
//! validation. A new key is added here (and, if its environment override is not a string, to
//! one of the type lists at the end), then validated in `validate.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) graph: RawGraph,
    pub(crate) source: RawSource,
    pub(crate) store: RawStore,
    #[serde(default)]
    pub(crate) fetch: RawFetch,
    #[serde(default)]
    pub(crate) run: RawRun,
    #[serde(default)]
    pub(crate) metrics: RawMetrics,
    #[serde(default)]
    pub(crate) ledger: RawLedger,
    #[serde(default)]
    pub(crate) retention: RawRetention,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetention {
    pub(crate) mode: Option<String>,
    /// Whole seconds, or a string like `"2557d"`, `"10s"`.
    pub(crate) period: Option<toml::Value>,
    #[serde(default)]
    pub(crate) kinds: std::collections::BTreeMap<String, toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLedger {
    pub(crate) signing_key_file: Option<std::path::PathBuf>,
    pub(crate) origin: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub(crate) pushgateway_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRun {
    /// Whole seconds, or a string like `"20s"`, `"1m"`, `"1500ms"`.
    pub(crate) shutdown_grace: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGraph {
    pub(crate) cloud: Option<String>,
    pub(crate) auth: Option<String>,
    pub(crate) base_url: Option<String>,
    pub(crate) authority_url: Option<String>,
    pub(crate) tenant_id: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret_env: Option<String>,
    pub(crate) client_secret_file: Option<PathBuf>,
    pub(crate) client_certificate_file: Option<PathBuf>,
    pub(crate) client_private_key_file: Option<PathBuf>,
    pub(crate) client_certificate_password_env: Option<String>,
    pub(crate) federated_token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub(crate) organizers: Option<Vec<String>>,
    pub(crate) organizers_file: Option<PathBuf>,
    pub(crate) organizers_group: Option<String>,
    #[serde(default)]
    pub(crate) organizers_all: bool,
    pub(crate) kinds: Option<Vec<String>>,
    pub(crate) contacts_select: Option<Vec<String>>,
    pub(crate) contacts_page_size: Option<u32>,
    pub(crate) start_date_time: Option<String>,
    pub(crate) adhoc_overlap: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) options: BTreeMap<String, String>,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) spool_memory_mib: Option<u64>,
    pub(crate) state_url: Option<String>,
    /// `None`: not given (the state store then takes `options` when it is the same kind of store).
    pub(crate) state_options: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFetch {
    #[serde(default = "default_concurrency")]
    pub(crate) concurrency: usize,
    #[serde(default = "default_max_attempts")]
    pub(crate) max_attempts: u32,
    #[serde(default = "default_max_item_attempts")]
    pub(crate) max_item_attempts: u32,
}

impl Default for RawFetch {
    fn default() -> Self {
        RawFetch {
            concurrency: default_concurrency(),
            max_attempts: default_max_attempts(),
            max_item_attempts: default_max_item_attempts(),
        }
    }
}

fn default_concurrency() -> usize {
    8
}
fn default_max_attempts() -> u32 {
    6
}
fn default_max_item_attempts() -> u32 {
    8
}

/// Contacts per delta page asked for (`Prefer: odata.maxpagesize`) by default.
pub const DEFAULT_CONTACTS_PAGE_SIZE: u32 = 100;

/// Keys whose environment overrides are numbers.
pub(crate) const INTEGER_KEYS: &[&str] = &[
    "fetch.concurrency",
    "fetch.max_attempts",
    "fetch.max_item_attempts",
    "source.contacts_page_size",
    "store.spool_memory_mib",
];
/// Keys whose environment overrides are numbers when they parse as one, else strings.
pub(crate) const NUMBER_OR_STRING_KEYS: &[&str] = &["run.shutdown_grace"];
/// Keys whose environment overrides are lists (comma-separated, or a TOML array).
pub(crate) const LIST_KEYS: &[&str] = &["source.organizers", "source.kinds", "source.contacts_select"];
/// Keys whose environment overrides are booleans (`true`/`false`).
pub(crate) const BOOL_KEYS: &[&str] = &["source.organizers_all"];
