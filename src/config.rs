//! The configuration file (TOML), its environment overrides and its validation.
//!
//! Only the binary reads files and the environment; the crates get plain values. Every error
//! names the key (or environment variable) that is wrong, and maps to exit code 2.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use recarch_delta::auth::Secret;
use recarch_store::OrganizerId;
pub use recarch_store::redact_url;
use serde::Deserialize;
use url::Url;

/// Prefix of environment overrides: `RECARCH_<SECTION>__<KEY>`.
const ENV_PREFIX: &str = "RECARCH_";

/// A configuration problem; the message names the key or value at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[graph]`.
    pub graph: GraphConfig,
    /// `[source]`, with the organizer list resolved and validated.
    pub source: SourceConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[fetch]`.
    pub fetch: FetchConfig,
    /// `[run]`.
    pub run: RunConfig,
    /// `[metrics]`, and the `--metrics-file` flag.
    pub metrics: MetricsConfig,
}

/// Where the run's metrics go.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// A Prometheus Pushgateway (`[metrics] pushgateway_url`).
    pub pushgateway_url: Option<Url>,
    /// A file in the text format (`--metrics-file`), for node-exporter's textfile collector.
    pub file: Option<PathBuf>,
}

/// `[run]`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// After SIGTERM/SIGINT, how long in-flight work may finish before it is abandoned
    /// (default 20 s).
    pub shutdown_grace: std::time::Duration,
}

/// `[graph]`: where Graph and the identity platform are, and who we are.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Graph base URL, e.g. `https://graph.microsoft.com/beta`.
    pub base_url: Url,
    /// Identity platform, e.g. `https://login.microsoftonline.com`.
    pub authority_url: Url,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// The national cloud whose endpoints are the defaults.
    pub cloud: Cloud,
    /// How the application proves its identity.
    pub credential: CredentialSource,
}

/// A Microsoft cloud: its Graph and identity-platform hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// graph.microsoft.com, login.microsoftonline.com.
    Global,
    /// graph.microsoft.us, login.microsoftonline.us (GCC High).
    UsGov,
    /// dod-graph.microsoft.us, login.microsoftonline.us.
    UsGovDod,
    /// microsoftgraph.chinacloudapi.cn, login.chinacloudapi.cn (21Vianet).
    China,
}

impl Cloud {
    fn parse(name: &str) -> Option<Cloud> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "global" | "public" => Cloud::Global,
            "usgov" => Cloud::UsGov,
            "usgovdod" => Cloud::UsGovDod,
            "china" => Cloud::China,
            _ => return None,
        })
    }

    /// The default `[graph].base_url` (v1.0, where getAllRecordings is generally available).
    pub fn graph_base_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com/v1.0",
            Cloud::UsGov => "https://graph.microsoft.us/v1.0",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us/v1.0",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn/v1.0",
        }
    }

    /// The default `[graph].authority_url`.
    pub fn authority_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }
}

/// How the application proves its identity (`[graph].auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `secret`: a client secret.
    Secret(SecretSource),
    /// `certificate`: a JWT client assertion signed with the certificate's key.
    Certificate {
        /// PEM (certificate, and the key unless `key_file`) or PKCS#12.
        certificate_file: PathBuf,
        /// A PEM key file of its own.
        key_file: Option<PathBuf>,
        /// The environment variable holding the PKCS#12 password.
        password_env: Option<String>,
    },
    /// `workload_identity`: the federated token file's content as the client assertion.
    WorkloadIdentity {
        /// The projected service-account token (`AZURE_FEDERATED_TOKEN_FILE`).
        token_file: PathBuf,
    },
}

/// Where to read the client secret from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable (`client_secret_env`).
    Env(String),
    /// A file (`client_secret_file`), e.g. a Kubernetes Secret volume.
    File(PathBuf),
}

/// `[source]`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Organizers given by id: validated GUIDs, deduplicated, in configured order.
    pub organizers: Vec<OrganizerId>,
    /// Organizers given by user principal name, resolved to ids at the start of each run.
    pub organizer_upns: Vec<String>,
    /// Every user in this group (nested groups included) is an organizer.
    pub organizers_group: Option<String>,
    /// Every enabled member user of the tenant is an organizer.
    pub organizers_all: bool,
    /// What is archived (`[source].kinds`, default recordings).
    pub kinds: Vec<recarch_store::Kind>,
    /// `$select` for contacts (`[source].contacts_select`).
    pub contacts_select: Vec<String>,
    /// `Prefer: odata.maxpagesize` for contacts (`[source].contacts_page_size`).
    pub contacts_page_size: u32,
    /// Optional `startDateTime` for the first round, verbatim.
    pub start_date_time: Option<String>,
}

/// `[store]`. Its `Debug` omits option values, which may be credentials.
#[derive(Clone)]
pub struct StoreConfig {
    /// `file:///…`, `s3://bucket/prefix` or `az://container/prefix`.
    pub url: String,
    /// Options passed to object_store (may hold credentials: never printed).
    pub options: Vec<(String, String)>,
    /// Where S3 and Azure downloads are spooled before their single upload (`None`: the
    /// system's temporary directory).
    pub spool_dir: Option<PathBuf>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("options", &keys)
            .field("spool_dir", &self.spool_dir)
            .finish()
    }
}

/// `[fetch]`.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Downloads in flight, across all organizers.
    pub concurrency: usize,
    /// Attempts per recording and per request, within one run.
    pub max_attempts: u32,
    /// Failed runs after which an item moves to the dead-letter list (default 8).
    pub max_item_attempts: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    graph: RawGraph,
    source: RawSource,
    store: RawStore,
    #[serde(default)]
    fetch: RawFetch,
    #[serde(default)]
    run: RawRun,
    #[serde(default)]
    metrics: RawMetrics,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    pushgateway_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRun {
    /// Whole seconds, or a string like `"20s"`, `"1m"`, `"1500ms"`.
    shutdown_grace: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGraph {
    cloud: Option<String>,
    auth: Option<String>,
    base_url: Option<String>,
    authority_url: Option<String>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_certificate_file: Option<PathBuf>,
    client_private_key_file: Option<PathBuf>,
    client_certificate_password_env: Option<String>,
    federated_token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    organizers: Option<Vec<String>>,
    organizers_file: Option<PathBuf>,
    organizers_group: Option<String>,
    #[serde(default)]
    organizers_all: bool,
    kinds: Option<Vec<String>>,
    contacts_select: Option<Vec<String>>,
    contacts_page_size: Option<u32>,
    start_date_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: String,
    #[serde(default)]
    options: BTreeMap<String, String>,
    spool_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_max_item_attempts")]
    max_item_attempts: u32,
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
const INTEGER_KEYS: &[&str] = &[
    "fetch.concurrency",
    "fetch.max_attempts",
    "fetch.max_item_attempts",
    "source.contacts_page_size",
];
/// Keys whose environment overrides are numbers when they parse as one, else strings.
const NUMBER_OR_STRING_KEYS: &[&str] = &["run.shutdown_grace"];
/// Keys whose environment overrides are lists (comma-separated, or a TOML array).
const LIST_KEYS: &[&str] = &["source.organizers", "source.kinds", "source.contacts_select"];
/// Keys whose environment overrides are booleans (`true`/`false`).
const BOOL_KEYS: &[&str] = &["source.organizers_all"];

impl Config {
    /// Reads `path`, applies `RECARCH_<SECTION>__<KEY>` overrides from `env`, and validates.
    pub fn load(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read config file {}: {e}", path.display())))?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, env, base_dir).map_err(|e| err(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses TOML text, applies overrides, validates. Relative paths resolve against `base_dir`.
    pub fn parse(text: &str, env: &[(String, String)], base_dir: &Path) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(format!("invalid TOML: {}", e.message())))?;
        apply_env_overrides(&mut table, env)?;
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                err(inner.message().to_string())
            } else {
                err(format!("{}: {}", key_name(&path), inner.message()))
            }
        })?;
        validate(raw, base_dir, env)
    }
}

/// The process environment as UTF-8 pairs. A variable that is not valid UTF-8 is an error
/// when it is one of ours (`RECARCH_…`: an override that cannot be read must not be silently
/// ignored) and skipped otherwise. Never panics, whatever the environment holds.
pub fn environment() -> Result<Vec<(String, String)>, ConfigError> {
    let mut env = Vec::new();
    for (name, value) in std::env::vars_os() {
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => env.push((name, value)),
            (Ok(name), Err(_)) if name.starts_with(ENV_PREFIX) => {
                return Err(err(format!("environment variable {name} is not valid UTF-8")));
            }
            (Err(name), _) if name.to_string_lossy().starts_with(ENV_PREFIX) => {
                return Err(err(format!(
                    "environment variable {} has a name that is not valid UTF-8",
                    name.to_string_lossy()
                )));
            }
            _ => {}
        }
    }
    Ok(env)
}

/// `graph.tenant_id` → `[graph].tenant_id`, the way messages name keys.
fn key_name(path: &str) -> String {
    match path.split_once('.') {
        Some((section, key)) => format!("[{section}].{key}"),
        None => format!("[{path}]"),
    }
}

/// The proof of identity the configuration names, loaded and checked before any request:
/// the secret read, the certificate and key read and checked (readable, matching, not
/// expired), the federated token file readable. Errors name the key and file, and what is
/// wrong, never key material.
pub fn client_proof(source: &CredentialSource) -> Result<recarch_delta::credentials::ClientProof, ConfigError> {
    use recarch_delta::credentials::{CertificateAssertion, ClientProof, FederatedToken};
    use std::sync::Arc;
    Ok(match source {
        CredentialSource::Secret(secret) => ClientProof::Secret(read_secret(secret)?),
        CredentialSource::Certificate {
            certificate_file,
            key_file,
            password_env,
        } => {
            let password = match password_env {
                None => None,
                Some(name) => match std::env::var(name) {
                    Ok(v) => Some(Secret::new(v)),
                    Err(std::env::VarError::NotPresent) => {
                        return Err(err(format!(
                            "[graph].client_certificate_password_env: environment variable {name} is not set"
                        )));
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        return Err(err(format!(
                            "[graph].client_certificate_password_env: environment variable {name} is not valid UTF-8"
                        )));
                    }
                },
            };
            let key = if key_file.is_some() {
                "[graph].client_private_key_file or client_certificate_file"
            } else {
                "[graph].client_certificate_file"
            };
            let assertion = CertificateAssertion::new(certificate_file, key_file.clone(), password)
                .map_err(|e| err(format!("{key}: {e}")))?;
            tracing::info!(thumbprint = %assertion.thumbprint(), "signing in with a certificate");
            ClientProof::Assertion(Arc::new(assertion))
        }
        CredentialSource::WorkloadIdentity { token_file } => ClientProof::Assertion(Arc::new(
            FederatedToken::new(token_file).map_err(|e| err(format!("[graph].federated_token_file: {e}")))?,
        )),
    })
}

/// Reads the client secret from its source. Errors name the variable or file, never the value.
pub fn read_secret(source: &SecretSource) -> Result<Secret, ConfigError> {
    let value = match source {
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => {
                return Err(err(format!(
                    "[graph].client_secret_env: environment variable {name} is not set; export the client secret in it or set [graph].client_secret_file"
                )));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(err(format!(
                    "[graph].client_secret_env: environment variable {name} is not valid UTF-8"
                )));
            }
        },
        SecretSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            err(format!(
                "[graph].client_secret_file: cannot read {}: {}",
                path.display(),
                e.kind()
            ))
        })?,
    };
    let value = value.trim();
    if value.is_empty() {
        let from = match source {
            SecretSource::Env(name) => format!("[graph].client_secret_env: environment variable {name}"),
            SecretSource::File(path) => format!("[graph].client_secret_file: {}", path.display()),
        };
        return Err(err(format!("{from} is empty")));
    }
    Ok(Secret::new(value))
}

fn apply_env_overrides(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if parts.len() < 2 {
            // e.g. RECARCH_CLIENT_SECRET, RECARCH_LOG: not config overrides.
            continue;
        }
        if parts.iter().any(String::is_empty) {
            return Err(err(format!("environment variable {name}: empty key segment")));
        }
        let key = parts.join(".");
        let parsed = if INTEGER_KEYS.contains(&key.as_str()) {
            let n: i64 = value.trim().parse().map_err(|_| {
                err(format!(
                    "environment variable {name}: {value:?} is not a whole number (for [{key}])"
                ))
            })?;
            toml::Value::Integer(n)
        } else if NUMBER_OR_STRING_KEYS.contains(&key.as_str()) {
            match value.trim().parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => toml::Value::String(value.clone()),
            }
        } else if BOOL_KEYS.contains(&key.as_str()) {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" => toml::Value::Boolean(false),
                _ => {
                    return Err(err(format!(
                        "environment variable {name}: {value:?} is not true or false (for [{key}])"
                    )));
                }
            }
        } else if LIST_KEYS.contains(&key.as_str()) {
            if value.trim_start().starts_with('[') {
                // A TOML array, as in the file: `["a", "b"]`.
                match toml::from_str::<toml::Table>(&format!("v = {value}")) {
                    Ok(mut t) => match t.remove("v") {
                        Some(array @ toml::Value::Array(_)) => array,
                        _ => return Err(err(format!("environment variable {name}: not a list"))),
                    },
                    Err(_) => {
                        return Err(err(format!(
                            "environment variable {name}: not a TOML array of strings, nor a comma-separated list"
                        )));
                    }
                }
            } else {
                let items = value.split(',').map(str::trim).filter(|s| !s.is_empty());
                toml::Value::Array(items.map(|s| toml::Value::String(s.to_owned())).collect())
            }
        } else {
            toml::Value::String(value.clone())
        };
        let (leaf, sections) = parts.split_last().unwrap_or((&parts[0], &[]));
        let mut cursor = &mut *table;
        for section in sections {
            let entry = cursor
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cursor = match entry {
                toml::Value::Table(t) => t,
                _ => return Err(err(format!("environment variable {name}: [{section}] is not a table"))),
            };
        }
        cursor.insert(leaf.clone(), parsed);
    }
    Ok(())
}

fn validate(raw: RawConfig, base_dir: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let env_var = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let cloud = match &raw.graph.cloud {
        None => Cloud::Global,
        Some(name) => Cloud::parse(name).ok_or_else(|| {
            err(format!(
                "[graph].cloud: {name:?} is not a cloud (global, usgov, usgovdod or china)"
            ))
        })?,
    };
    let auth = raw
        .graph
        .auth
        .as_deref()
        .unwrap_or("secret")
        .trim()
        .to_ascii_lowercase();
    let workload_identity = auth == "workload_identity";
    // The workload-identity webhook's variables fill what the configuration leaves out.
    let webhook = |name: &str| if workload_identity { env_var(name) } else { None };
    let base_url = raw
        .graph
        .base_url
        .clone()
        .unwrap_or_else(|| cloud.graph_base_url().to_owned());
    let base_url = parse_service_url("[graph].base_url", &base_url)?;
    let (authority_key, authority_text) = match (&raw.graph.authority_url, webhook("AZURE_AUTHORITY_HOST")) {
        (Some(url), _) => ("[graph].authority_url", url.clone()),
        (None, Some(url)) => ("AZURE_AUTHORITY_HOST", url),
        (None, None) => ("[graph].authority_url", cloud.authority_url().to_owned()),
    };
    let authority_url = parse_service_url(authority_key, &authority_text)?;
    let tenant_text = raw
        .graph
        .tenant_id
        .clone()
        .or_else(|| webhook("AZURE_TENANT_ID"))
        .ok_or_else(|| {
            err(if workload_identity {
                "[graph].tenant_id: missing (set it, or AZURE_TENANT_ID as the workload-identity webhook does)"
            } else {
                "[graph].tenant_id: missing"
            })
        })?;
    let client_text = raw
        .graph
        .client_id
        .clone()
        .or_else(|| webhook("AZURE_CLIENT_ID"))
        .ok_or_else(|| {
            err(if workload_identity {
                "[graph].client_id: missing (set it, or AZURE_CLIENT_ID as the workload-identity webhook does)"
            } else {
                "[graph].client_id: missing"
            })
        })?;
    // Ids sent in token requests: letters, digits, '-', '.' and '_' (GUIDs, domain names).
    let is_id = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    let tenant_id = tenant_text.trim().to_owned();
    if !is_id(&tenant_id) {
        return Err(err(format!(
            "[graph].tenant_id: {tenant_text:?} is not a tenant id (a GUID or a domain name)"
        )));
    }
    // Entra's application ids are GUIDs, but the contract asks only for a value: any token
    // endpoint's own ids are accepted, and a wrong one is refused there (exit 4).
    let client_id = client_text.trim().to_owned();
    if !is_id(&client_id) {
        return Err(err(format!(
            "[graph].client_id: {client_text:?} is not a client id (letters, digits, '-', '.' and '_', like an application id GUID)"
        )));
    }
    let g = &raw.graph;
    let only = |allowed: &[&str]| -> Result<(), ConfigError> {
        let set = [
            ("client_secret_env", g.client_secret_env.is_some()),
            ("client_secret_file", g.client_secret_file.is_some()),
            ("client_certificate_file", g.client_certificate_file.is_some()),
            ("client_private_key_file", g.client_private_key_file.is_some()),
            (
                "client_certificate_password_env",
                g.client_certificate_password_env.is_some(),
            ),
            ("federated_token_file", g.federated_token_file.is_some()),
        ];
        match set.iter().find(|(key, on)| *on && !allowed.contains(key)) {
            Some((key, _)) => Err(err(format!(
                "[graph].{key}: not used with auth = {auth:?}; remove it or change [graph].auth"
            ))),
            None => Ok(()),
        }
    };
    let credential = match auth.as_str() {
        "secret" => {
            only(&["client_secret_env", "client_secret_file"])?;
            CredentialSource::Secret(secret_source(
                raw.graph.client_secret_env.clone(),
                raw.graph.client_secret_file.clone(),
                base_dir,
            )?)
        }
        "certificate" => {
            only(&[
                "client_certificate_file",
                "client_private_key_file",
                "client_certificate_password_env",
            ])?;
            let certificate_file = raw.graph.client_certificate_file.as_ref().ok_or_else(|| {
                err("[graph].client_certificate_file: required with auth = \"certificate\" (PEM with the key, or PKCS#12)")
            })?;
            CredentialSource::Certificate {
                certificate_file: base_dir.join(certificate_file),
                key_file: raw.graph.client_private_key_file.as_ref().map(|k| base_dir.join(k)),
                password_env: raw.graph.client_certificate_password_env.clone(),
            }
        }
        "workload_identity" => {
            only(&["federated_token_file"])?;
            let token_file = match (&raw.graph.federated_token_file, env_var("AZURE_FEDERATED_TOKEN_FILE")) {
                (Some(file), _) => base_dir.join(file),
                (None, Some(file)) => PathBuf::from(file),
                (None, None) => {
                    return Err(err(
                        "[graph].federated_token_file: missing (set it, or AZURE_FEDERATED_TOKEN_FILE as the workload-identity webhook does)",
                    ));
                }
            };
            CredentialSource::WorkloadIdentity { token_file }
        }
        other => {
            return Err(err(format!(
                "[graph].auth: {other:?} is not secret, certificate or workload_identity"
            )));
        }
    };

    let mut organizer_texts: Vec<(String, String)> = Vec::new();
    if let Some(list) = raw.source.organizers {
        for (i, o) in list.into_iter().enumerate() {
            organizer_texts.push((format!("[source].organizers[{i}]"), o));
        }
    }
    if let Some(file) = raw.source.organizers_file {
        let path = base_dir.join(&file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            err(format!(
                "[source].organizers_file: cannot read {}: {}",
                path.display(),
                e.kind()
            ))
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if !line.is_empty() {
                organizer_texts.push((
                    format!("[source].organizers_file {} line {}", path.display(), n + 1),
                    line.to_owned(),
                ));
            }
        }
    }
    // In the order given, each once; the sets keep a list of 10 000 linear to check.
    let mut organizers: Vec<OrganizerId> = Vec::new();
    let mut organizer_upns: Vec<String> = Vec::new();
    let mut seen_ids: HashSet<OrganizerId> = HashSet::new();
    let mut seen_upns: HashSet<String> = HashSet::new();
    for (where_, text) in organizer_texts {
        let text = text.trim();
        if let Ok(id) = OrganizerId::parse(text) {
            if seen_ids.insert(id.clone()) {
                organizers.push(id);
            }
        } else if is_upn(text) {
            let upn = text.to_ascii_lowercase();
            if seen_upns.insert(upn.clone()) {
                organizer_upns.push(upn);
            }
        } else {
            return Err(err(format!(
                "{where_}: {text:?} is not an organizer (a user id GUID like 8b081ef6-4792-4def-b2c9-c363a1bf41d5, or a user principal name like alice@contoso.com)"
            )));
        }
    }
    let organizers_group = match &raw.source.organizers_group {
        None => None,
        Some(g) => Some(
            OrganizerId::parse(g.trim())
                .map_err(|_| err(format!("[source].organizers_group: {g:?} is not a group id (a GUID)")))?
                .as_str()
                .to_owned(),
        ),
    };
    let mut kinds = Vec::new();
    for (i, name) in raw
        .source
        .kinds
        .clone()
        .unwrap_or_else(|| vec!["recordings".into()])
        .iter()
        .enumerate()
    {
        let kind = recarch_store::Kind::from_dirname(name.trim()).ok_or_else(|| {
            err(format!(
                "[source].kinds[{i}]: {name:?} is not a kind (recordings, transcripts or contacts)"
            ))
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err(err("[source].kinds: empty; list at least \"recordings\""));
    }
    let contacts_select = raw.source.contacts_select.clone().unwrap_or_else(|| {
        ["displayName", "emailAddresses", "businessPhones", "companyName"]
            .map(String::from)
            .to_vec()
    });
    let contacts_page_size = raw.source.contacts_page_size.unwrap_or(DEFAULT_CONTACTS_PAGE_SIZE);
    if !(1..=1000).contains(&contacts_page_size) {
        return Err(err(format!(
            "[source].contacts_page_size: {contacts_page_size} is out of range (1 to 1000)"
        )));
    }
    for (i, property) in contacts_select.iter().enumerate() {
        if property.is_empty()
            || !property
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/')
        {
            return Err(err(format!(
                "[source].contacts_select[{i}]: {property:?} is not a contact property name"
            )));
        }
    }
    if organizers.is_empty() && organizer_upns.is_empty() && organizers_group.is_none() && !raw.source.organizers_all {
        return Err(err(
            "[source]: no organizers; set [source].organizers, organizers_file, organizers_group or organizers_all",
        ));
    }
    if let Some(start) = &raw.source.start_date_time {
        chrono::DateTime::parse_from_rfc3339(start).map_err(|e| {
            err(format!(
                "[source].start_date_time: {start:?} is not an RFC 3339 date-time ({e})"
            ))
        })?;
    }

    let url = raw.store.url.trim().to_owned();
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    if !matches!(scheme, "file" | "s3" | "az" | "azure" | "abfs" | "abfss" | "memory") {
        return Err(err(format!(
            "[store].url: {:?} has no supported scheme (file://, s3://, az://)",
            redact_url(&url)
        )));
    }

    if raw.fetch.concurrency == 0 || raw.fetch.concurrency > 256 {
        return Err(err(format!(
            "[fetch].concurrency: {} is out of range (1 to 256)",
            raw.fetch.concurrency
        )));
    }
    if raw.fetch.max_attempts == 0 || raw.fetch.max_attempts > 100 {
        return Err(err(format!(
            "[fetch].max_attempts: {} is out of range (1 to 100)",
            raw.fetch.max_attempts
        )));
    }

    if raw.fetch.max_item_attempts == 0 || raw.fetch.max_item_attempts > 1000 {
        return Err(err(format!(
            "[fetch].max_item_attempts: {} is out of range (1 to 1000)",
            raw.fetch.max_item_attempts
        )));
    }
    let shutdown_grace = match &raw.run.shutdown_grace {
        None => std::time::Duration::from_secs(20),
        Some(v) => parse_duration(v)
            .filter(|d| *d <= std::time::Duration::from_secs(3600))
            .ok_or_else(|| {
                err(format!(
                    "[run].shutdown_grace: {v} is not a duration of at most an hour (whole seconds, or e.g. \"20s\", \"2m\", \"500ms\")"
                ))
            })?,
    };

    let pushgateway_url = match &raw.metrics.pushgateway_url {
        None => None,
        Some(text) => {
            let url = Url::parse(text.trim()).map_err(|e| {
                err(format!(
                    "[metrics].pushgateway_url: {:?} is not a URL ({e})",
                    redact_url(text)
                ))
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
                return Err(err(format!(
                    "[metrics].pushgateway_url: {:?} must be an http(s) URL without a query, e.g. http://pushgateway:9091",
                    redact_url(text)
                )));
            }
            Some(url)
        }
    };

    Ok(Config {
        run: RunConfig { shutdown_grace },
        metrics: MetricsConfig {
            pushgateway_url,
            file: None,
        },
        graph: GraphConfig {
            base_url,
            authority_url,
            tenant_id,
            client_id,
            cloud,
            credential,
        },
        source: SourceConfig {
            organizers,
            organizer_upns,
            organizers_group,
            organizers_all: raw.source.organizers_all,
            kinds,
            contacts_select,
            contacts_page_size,
            start_date_time: raw.source.start_date_time,
        },
        store: StoreConfig {
            url,
            options: raw.store.options.into_iter().collect(),
            spool_dir: raw.store.spool_dir.map(|d| base_dir.join(d)),
        },
        fetch: FetchConfig {
            concurrency: raw.fetch.concurrency,
            max_attempts: raw.fetch.max_attempts,
            max_item_attempts: raw.fetch.max_item_attempts,
        },
    })
}

/// Whether `text` looks like a user principal name (`local@domain.tld`, no spaces or
/// slashes: it becomes a URL path segment).
fn is_upn(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '-' | '_' | '\'' | '+' | '#' | '~'))
        && text.matches('@').count() == 1
}

/// `[graph].client_secret_env` / `client_secret_file`: one of them, default the variable
/// `RECARCH_CLIENT_SECRET`.
fn secret_source(env: Option<String>, file: Option<PathBuf>, base_dir: &Path) -> Result<SecretSource, ConfigError> {
    match (env, file) {
        (Some(_), Some(_)) => Err(err(
            "[graph]: set either client_secret_env or client_secret_file, not both",
        )),
        (Some(name), None) => {
            if name.trim().is_empty() {
                return Err(err("[graph].client_secret_env: empty variable name"));
            }
            Ok(SecretSource::Env(name))
        }
        (None, Some(file)) => Ok(SecretSource::File(base_dir.join(file))),
        (None, None) => Ok(SecretSource::Env("RECARCH_CLIENT_SECRET".into())),
    }
}

/// A duration: whole seconds as a number, or a string with a unit (`ms`, `s`, `m`, `h`).
fn parse_duration(value: &toml::Value) -> Option<std::time::Duration> {
    use std::time::Duration;
    match value {
        toml::Value::Integer(n) => u64::try_from(*n).ok().map(Duration::from_secs),
        toml::Value::String(text) => {
            let text = text.trim();
            let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
            let (number, unit) = text.split_at(split);
            let n: u64 = number.parse().ok()?;
            match unit.trim() {
                "ms" => Some(Duration::from_millis(n)),
                "" | "s" => Some(Duration::from_secs(n)),
                "m" => n.checked_mul(60).map(Duration::from_secs),
                "h" => n.checked_mul(3600).map(Duration::from_secs),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Parses a service URL: absolute, https (plain http only for loopback hosts, i.e. simulators
/// and test servers), no credentials or query.
fn parse_service_url(key: &str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text.trim()).map_err(|e| err(format!("{key}: {:?} is not a URL ({e})", redact_url(text))))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(err(format!(
                "{key}: {text:?} must use https (plain http is allowed for loopback test servers only)"
            )));
        }
        other => return Err(err(format!("{key}: scheme {other:?} is not https"))),
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(err(format!("{key}: must not carry credentials, a query or a fragment")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[graph]
tenant_id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-0000000000c1"
[source]
organizers = ["8B081EF6-4792-4def-b2c9-c363a1bf41d5"]
[store]
url = "file:///tmp/x"
"#;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::parse(text, &env, Path::new("/nonexistent"))
    }

    #[test]
    fn defaults_apply() {
        let c = parse(GOOD, &[]).expect("valid config");
        assert_eq!(c.graph.base_url.as_str(), "https://graph.microsoft.com/v1.0");
        assert_eq!(c.graph.authority_url.as_str(), "https://login.microsoftonline.com/");
        assert_eq!(
            c.graph.credential,
            CredentialSource::Secret(SecretSource::Env("RECARCH_CLIENT_SECRET".into()))
        );
        assert_eq!(c.source.organizers[0].as_str(), "8b081ef6-4792-4def-b2c9-c363a1bf41d5");
        assert_eq!((c.fetch.concurrency, c.fetch.max_attempts), (8, 6));
        assert_eq!(c.fetch.max_item_attempts, 8);
        assert_eq!(c.run.shutdown_grace, std::time::Duration::from_secs(20));
    }

    #[test]
    fn organizers_are_deduplicated_in_the_order_given() {
        let text = GOOD.replace(
            r#"organizers = ["8B081EF6-4792-4def-b2c9-c363a1bf41d5"]"#,
            r#"organizers = ["cf9590fb-952a-4975-b6b9-1327685894fc", "Bob@Contoso.com", "8B081EF6-4792-4def-b2c9-c363a1bf41d5", "CF9590FB-952A-4975-B6B9-1327685894FC", "alice@contoso.com", "bob@contoso.com", "8b081ef6-4792-4def-b2c9-c363a1bf41d5"]"#,
        );
        let c = parse(&text, &[]).expect("valid config");
        let ids: Vec<&str> = c.source.organizers.iter().map(OrganizerId::as_str).collect();
        assert_eq!(
            ids,
            [
                "cf9590fb-952a-4975-b6b9-1327685894fc",
                "8b081ef6-4792-4def-b2c9-c363a1bf41d5"
            ]
        );
        assert_eq!(c.source.organizer_upns, ["bob@contoso.com", "alice@contoso.com"]);
    }

    #[test]
    fn list_overrides_are_comma_separated_or_toml_arrays() {
        let kinds = |v: &str| parse(GOOD, &[("RECARCH_SOURCE__KINDS", v)]).map(|c| c.source.kinds);
        let both = kinds("recordings, transcripts").expect("comma-separated");
        assert_eq!(kinds(r#"["recordings", "transcripts"]"#).expect("a TOML array"), both);
        assert_eq!(both.len(), 2);
        let e = kinds(r#"["recordings", "#).expect_err("not an array");
        assert!(e.0.contains("RECARCH_SOURCE__KINDS"), "{}", e.0);
    }

    #[test]
    fn a_client_id_need_not_be_a_guid() {
        let c = parse(GOOD, &[("RECARCH_GRAPH__CLIENT_ID", "emulator-client_1.0")]).expect("valid");
        assert_eq!(c.graph.client_id, "emulator-client_1.0");
    }

    #[test]
    fn env_overrides_win() {
        let c = parse(
            GOOD,
            &[
                ("RECARCH_STORE__URL", "s3://bucket/p"),
                ("RECARCH_FETCH__CONCURRENCY", "3"),
                ("RECARCH_STORE__OPTIONS__AWS_REGION", "eu-west-1"),
                ("RECARCH_CLIENT_SECRET", "not-an-override"),
            ],
        )
        .expect("valid overrides");
        assert_eq!(c.store.url, "s3://bucket/p");
        assert_eq!(c.fetch.concurrency, 3);
        assert_eq!(c.store.options, vec![("aws_region".to_owned(), "eu-west-1".to_owned())]);
    }

    #[test]
    fn errors_name_the_key() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                GOOD,
                &[("RECARCH_FETCH__CONCURRENCY", "lots")],
                "RECARCH_FETCH__CONCURRENCY",
            ),
            (GOOD, &[("RECARCH_FETCH__CONCURRENCY", "0")], "[fetch].concurrency"),
            (
                GOOD,
                &[("RECARCH_SOURCE__ORGANIZERS", "nope")],
                "[source].organizers[0]",
            ),
            (GOOD, &[("RECARCH_STORE__URL", "ftp://x")], "[store].url"),
            (
                GOOD,
                &[("RECARCH_GRAPH__BASE_URL", "http://graph.example.com")],
                "[graph].base_url",
            ),
            (GOOD, &[("RECARCH_GRAPH__SURPRISE", "1")], "surprise"),
            (&GOOD.replace("tenant_id", "tenant"), &[], "tenant"),
            (
                &GOOD.replace("[fetch]", ""),
                &[
                    ("RECARCH_GRAPH__CLIENT_SECRET_FILE", "a"),
                    ("RECARCH_GRAPH__CLIENT_SECRET_ENV", "B"),
                ],
                "not both",
            ),
            ("[graph]\ntenant_id = 3", &[], "[graph].tenant_id"),
            (GOOD, &[("RECARCH_GRAPH__CLIENT_ID", "my app")], "[graph].client_id"),
            (GOOD, &[("RECARCH_GRAPH__CLIENT_ID", " ")], "[graph].client_id"),
            ("not toml =", &[], "invalid TOML"),
            (GOOD, &[("RECARCH_RUN__SHUTDOWN_GRACE", "soon")], "[run].shutdown_grace"),
            (
                GOOD,
                &[("RECARCH_FETCH__MAX_ITEM_ATTEMPTS", "0")],
                "[fetch].max_item_attempts",
            ),
        ];
        for (text, env, needle) in cases {
            let e = parse(text, env).expect_err("must be rejected");
            assert!(e.0.contains(needle), "{needle:?} not in {:?}", e.0);
        }
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let text = include_str!("../config/recarch.example.toml");
        let c = parse(text, &[]).expect("the shipped example parses");
        assert_eq!(c.fetch.max_item_attempts, 8);
        assert_eq!(c.graph.base_url.as_str(), "https://graph.microsoft.com/v1.0");
    }

    #[test]
    fn kinds() {
        let c = parse(GOOD, &[]).expect("valid");
        assert_eq!(c.source.kinds, vec![recarch_store::Kind::Recordings]);
        let c = parse(&GOOD.replace("[source]\n", "[source]\nkinds = [\"recordings\"]\n"), &[]).expect("valid");
        assert_eq!(c.source.kinds, vec![recarch_store::Kind::Recordings]);
        let c = parse(GOOD, &[("RECARCH_SOURCE__KINDS", "recordings,transcripts")]).expect("valid");
        assert_eq!(
            c.source.kinds,
            vec![recarch_store::Kind::Recordings, recarch_store::Kind::Transcripts]
        );
        let e = parse(GOOD, &[("RECARCH_SOURCE__KINDS", "recordings,videos")]).expect_err("unknown kind");
        assert!(e.0.contains("[source].kinds[1]"), "{}", e.0);
    }

    #[test]
    fn clouds_and_explicit_urls() {
        let c = parse(&GOOD.replace("[graph]\n", "[graph]\ncloud = \"usgovdod\"\n"), &[]).expect("valid");
        assert_eq!(c.graph.base_url.as_str(), "https://dod-graph.microsoft.us/v1.0");
        assert_eq!(c.graph.authority_url.as_str(), "https://login.microsoftonline.us/");
        let c = parse(
            &GOOD.replace(
                "[graph]\n",
                "[graph]\ncloud = \"china\"\nbase_url = \"https://example.test/beta\"\n",
            ),
            &[],
        )
        .expect("valid");
        assert_eq!(
            c.graph.base_url.as_str(),
            "https://example.test/beta",
            "explicit URLs win"
        );
        assert_eq!(c.graph.authority_url.as_str(), "https://login.chinacloudapi.cn/");
        let e = parse(&GOOD.replace("[graph]\n", "[graph]\ncloud = \"mars\"\n"), &[]).expect_err("unknown cloud");
        assert!(e.0.contains("[graph].cloud"), "{}", e.0);
    }

    #[test]
    fn workload_identity_takes_the_webhook_variables() {
        let text = "[graph]\nauth = \"workload_identity\"\n[source]\norganizers = [\"8b081ef6-4792-4def-b2c9-c363a1bf41d5\"]\n[store]\nurl = \"file:///tmp/x\"\n";
        let webhook = [
            ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-0000000000c1"),
            ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                "/var/run/secrets/azure/tokens/azure-identity-token",
            ),
        ];
        let c = parse(text, &webhook).expect("valid");
        assert_eq!(c.graph.client_id, "00000000-0000-0000-0000-0000000000c1");
        assert_eq!(c.graph.tenant_id, "contoso.onmicrosoft.com");
        assert_eq!(c.graph.authority_url.as_str(), "https://login.microsoftonline.us/");
        assert_eq!(
            c.graph.credential,
            CredentialSource::WorkloadIdentity {
                token_file: "/var/run/secrets/azure/tokens/azure-identity-token".into()
            }
        );
        // The configuration wins over the webhook.
        let c = parse(
            &text.replace("[graph]\n", "[graph]\ntenant_id = \"fabrikam.example\"\n"),
            &webhook,
        )
        .expect("valid");
        assert_eq!(c.graph.tenant_id, "fabrikam.example");
        // Without them: the missing key is named.
        let e = parse(text, &webhook[..1]).expect_err("no tenant");
        assert!(
            e.0.contains("[graph].tenant_id") && e.0.contains("AZURE_TENANT_ID"),
            "{}",
            e.0
        );
        let e = parse(text, &webhook[..3]).expect_err("no token file");
        assert!(e.0.contains("federated_token_file"), "{}", e.0);
        // Other auth modes ignore the webhook's variables, and keys of other modes are refused.
        let e = parse(&text.replace("workload_identity", "secret"), &webhook).expect_err("no ids");
        assert!(e.0.contains("[graph].tenant_id: missing"), "{}", e.0);
        let e = parse(
            &GOOD.replace("[graph]\n", "[graph]\nclient_certificate_file = \"c.pem\"\n"),
            &[],
        )
        .expect_err("certificate key with a secret");
        assert!(
            e.0.contains("client_certificate_file") && e.0.contains("auth"),
            "{}",
            e.0
        );
        let e = parse(&GOOD.replace("[graph]\n", "[graph]\nauth = \"certificate\"\n"), &[]).expect_err("no file");
        assert!(e.0.contains("[graph].client_certificate_file: required"), "{}", e.0);
        let e = parse(&GOOD.replace("[graph]\n", "[graph]\nauth = \"kerberos\"\n"), &[]).expect_err("unknown");
        assert!(e.0.contains("[graph].auth"), "{}", e.0);
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        let grace = |env: &[(&str, &str)]| parse(GOOD, env).expect("valid").run.shutdown_grace;
        assert_eq!(grace(&[("RECARCH_RUN__SHUTDOWN_GRACE", "5")]), Duration::from_secs(5));
        assert_eq!(
            grace(&[("RECARCH_RUN__SHUTDOWN_GRACE", "2m")]),
            Duration::from_secs(120)
        );
        assert_eq!(
            grace(&[("RECARCH_RUN__SHUTDOWN_GRACE", "1500ms")]),
            Duration::from_millis(1500)
        );
        let c = parse(&format!("{GOOD}\n[run]\nshutdown_grace = \"30s\"\n"), &[]).expect("valid");
        assert_eq!(c.run.shutdown_grace, Duration::from_secs(30));
        assert!(parse(&format!("{GOOD}\n[run]\nshutdown_grace = -1\n"), &[]).is_err());
        assert!(parse(&format!("{GOOD}\n[run]\nshutdown_grace = \"2h\"\n"), &[]).is_err());
    }

    #[test]
    fn secrets_are_read_and_never_echoed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cr3t\n").expect("write secret");
        assert_eq!(
            read_secret(&SecretSource::File(file.clone()))
                .expect("readable")
                .expose(),
            "s3cr3t"
        );
        std::fs::write(&file, "  \n").expect("write secret");
        let e = read_secret(&SecretSource::File(file)).expect_err("empty");
        assert!(e.0.contains("is empty"), "{}", e.0);
        let e = read_secret(&SecretSource::File(dir.path().join("missing"))).expect_err("missing");
        assert!(e.0.contains("client_secret_file"), "{}", e.0);
        let e = read_secret(&SecretSource::Env("RECARCH_TEST_UNSET_SECRET_VAR".into())).expect_err("unset");
        assert!(e.0.contains("RECARCH_TEST_UNSET_SECRET_VAR is not set"), "{}", e.0);
    }

    #[test]
    fn debug_output_hides_store_credentials() {
        let c = parse(
            GOOD,
            &[
                ("RECARCH_STORE__OPTIONS__AWS_SECRET_ACCESS_KEY", "hunter2"),
                ("RECARCH_STORE__URL", "s3://b/p?sig=x"),
            ],
        )
        .expect("valid");
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2") && !text.contains("sig=x"), "{text}");
        assert!(text.contains("aws_secret_access_key"), "{text}");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("s3://b/p?secret=1"), "s3://b/p");
        assert_eq!(redact_url("https://user:pw@host/x"), "https://[redacted]@host/x");
        assert_eq!(redact_url("https://host/x@y"), "https://host/x@y");
        assert_eq!(redact_url("no scheme"), "no scheme");
    }
}
