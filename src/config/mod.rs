//! The configuration file (TOML), its environment overrides and its validation.
//!
//! Only the binary reads files and the environment; the crates get plain values. Every error
//! names the key (or environment variable) that is wrong, and maps to exit code 2.

use std::path::{Path, PathBuf};

use recarch_store::OrganizerId;
pub use recarch_store::redact_url;
use url::Url;

mod credentials;
mod overrides;
mod raw;
mod validate;

pub use credentials::{client_proof, read_secret};
pub use raw::DEFAULT_CONTACTS_PAGE_SIZE;
use raw::RawConfig;

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
    /// `[ledger]`.
    pub ledger: LedgerConfig,
    /// `[retention]`.
    pub retention: RetentionConfig,
}

/// `[retention]`: how long archived items are kept unalterable, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `none` (the default), `governance` or `compliance`.
    pub mode: RetentionMode,
    /// Each kind's period (`[retention.kinds]`, else `[retention].period`); empty for `none`.
    pub periods: std::collections::BTreeMap<recarch_store::Kind, std::time::Duration>,
}

/// `[retention].mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RetentionMode {
    /// No retention.
    #[default]
    None,
    /// Retention that an administrator with the right permission may lift (S3 governance,
    /// Azure unlocked).
    Governance,
    /// Retention nobody can lift or shorten (S3 compliance, Azure locked).
    Compliance,
}

impl RetentionMode {
    /// The name in the configuration and in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::None => "none",
            RetentionMode::Governance => "governance",
            RetentionMode::Compliance => "compliance",
        }
    }
}

impl RetentionConfig {
    /// The store's lock policy: the mode, and the longest period for objects that are not
    /// one item's; `None` for mode `none`.
    pub fn worm_policy(&self) -> Option<recarch_store::WormPolicy> {
        let mode = match self.mode {
            RetentionMode::None => return None,
            RetentionMode::Governance => recarch_store::LockMode::Governance,
            RetentionMode::Compliance => recarch_store::LockMode::Compliance,
        };
        let longest = self.periods.values().max()?;
        Some(recarch_store::WormPolicy {
            mode,
            longest: chrono::Duration::from_std(*longest).ok()?,
        })
    }

    /// The `retention` member of a manifest of `kind` archived at `archived_at`:
    /// `{"mode", "retainUntil"}`, or `None` without retention.
    pub fn manifest_member(
        &self,
        kind: recarch_store::Kind,
        archived_at: chrono::DateTime<chrono::Utc>,
    ) -> Option<serde_json::Value> {
        let period = self.periods.get(&kind)?;
        let until = chrono::Duration::from_std(*period)
            .ok()
            .and_then(|p| archived_at.checked_add_signed(p))?;
        Some(serde_json::json!({
            "mode": self.mode.as_str(),
            "retainUntil": until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }))
    }
}

/// `[ledger]`: how the ledger's records are signed.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// The checkpoints' origin and key name (`[ledger].origin`, default `recarch/<tenant>`).
    pub origin: String,
    /// The key read from `[ledger].signing_key_file` (an Ed25519 PKCS#8 PEM), if set.
    pub signer: Option<std::sync::Arc<recarch_store::ledger::LedgerSigner>>,
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

    /// Its name in `[graph].cloud`.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usgov",
            Cloud::UsGovDod => "usgovdod",
            Cloud::China => "china",
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
    /// How far back each window of the ad hoc call kinds reaches before the previous one's
    /// end, for items that arrive late (`[source].adhoc_overlap`, default 1 h).
    pub adhoc_overlap: std::time::Duration,
}

/// The default `[source].adhoc_overlap`.
pub const DEFAULT_ADHOC_OVERLAP: std::time::Duration = std::time::Duration::from_secs(3600);

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
    /// `spool_memory_mib`: how many bytes of S3 and Azure downloads may be held in memory at
    /// once instead of spool files (`None`: the store's default; 0: none).
    pub spool_memory: Option<usize>,
    /// Where the mutable documents live (`state/`, `locks/`, `runs/`), outside the archive's
    /// bucket, container or directory; `None`: in the archive.
    pub state_url: Option<String>,
    /// Options of the state store: `[store.state_options]`, or `[store.options]` when that
    /// table is absent and `state_url` is the same kind of store as `url` (may hold
    /// credentials: never printed).
    pub state_options: Vec<(String, String)>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        let state_keys: Vec<&str> = self.state_options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("options", &keys)
            .field("spool_dir", &self.spool_dir)
            .field("spool_memory", &self.spool_memory)
            .field("state_url", &self.state_url.as_deref().map(redact_url))
            .field("state_options", &state_keys)
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
        overrides::apply_env_overrides(&mut table, env)?;
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                err(inner.message().to_string())
            } else {
                err(format!("{}: {}", key_name(&path), inner.message()))
            }
        })?;
        validate::validate(raw, base_dir, env)
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
                ("RECARCH_STORE__SPOOL_MEMORY_MIB", "16"),
            ],
        )
        .expect("valid overrides");
        assert_eq!(c.store.url, "s3://bucket/p");
        assert_eq!(c.fetch.concurrency, 3);
        assert_eq!(c.store.spool_memory, Some(16 << 20));
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
            (
                GOOD,
                &[("RECARCH_STORE__SPOOL_MEMORY_MIB", "4097")],
                "[store].spool_memory_mib: 4097 is out of range (0 to 4096 MiB)",
            ),
            (GOOD, &[("RECARCH_STORE__SPOOL_MEMORY_MIB", "-1")], "spool_memory_mib"),
        ];
        for (text, env, needle) in cases {
            let e = parse(text, env).expect_err("must be rejected");
            assert!(e.0.contains(needle), "{needle:?} not in {:?}", e.0);
        }
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let text = include_str!("../../config/recarch.example.toml");
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
