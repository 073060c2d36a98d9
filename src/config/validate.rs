//! Validation: from the file as written (`raw`) to the [`Config`] the run uses, one function
//! per section. Every error names the key (or environment variable) at fault.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use recarch_store::OrganizerId;

use super::{LedgerConfig, RetentionConfig};
use url::Url;

use super::credentials::secret_source;
use super::raw::{RawConfig, RawFetch, RawGraph, RawLedger, RawMetrics, RawRetention, RawRun, RawSource, RawStore};
use super::{
    Cloud, Config, ConfigError, CredentialSource, DEFAULT_ADHOC_OVERLAP, DEFAULT_CONTACTS_PAGE_SIZE, FetchConfig,
    GraphConfig, MetricsConfig, RunConfig, SourceConfig, StoreConfig, err, redact_url,
};

pub(super) fn validate(raw: RawConfig, base_dir: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let graph = graph(&raw.graph, base_dir, env)?;
    let source = source(raw.source, base_dir)?;
    global_only(&graph, &source)?;
    let ledger = ledger(&raw.ledger, &graph, base_dir)?;
    let store = store(raw.store, base_dir)?;
    let retention = retention(&raw.retention, &store)?;
    Ok(Config {
        graph,
        source,
        store,
        retention,
        fetch: fetch(&raw.fetch)?,
        run: run(&raw.run)?,
        metrics: metrics(&raw.metrics)?,
        ledger,
    })
}

/// `[ledger]`: the origin of its checkpoints and the key that signs them. A key file that
/// cannot be read or is not an Ed25519 PKCS#8 PEM names the file, never what is in it.
fn ledger(raw: &RawLedger, graph: &GraphConfig, base_dir: &Path) -> Result<LedgerConfig, ConfigError> {
    let origin = match &raw.origin {
        Some(origin) => origin.trim().to_owned(),
        None => format!("recarch/{}", graph.tenant_id),
    };
    if origin.is_empty() || origin.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(err(format!(
            "[ledger].origin: {origin:?} must be one word without spaces or '+', e.g. \"archive.contoso.com/teams\""
        )));
    }
    let signer = match &raw.signing_key_file {
        None => None,
        Some(file) => {
            let path = base_dir.join(file);
            let signer = recarch_store::ledger::LedgerSigner::from_pkcs8_pem_file(&path, &origin)
                .map_err(|e| err(format!("[ledger].signing_key_file: {e}")))?;
            Some(std::sync::Arc::new(signer))
        }
    };
    Ok(LedgerConfig { origin, signer })
}

/// The longest retention period accepted: a hundred years.
const MAX_RETENTION: std::time::Duration = std::time::Duration::from_secs(100 * 366 * 86_400);

/// `[retention]`: a mode and a period (and per-kind periods). On S3 and Azure a mode other
/// than `none` makes the archive's bucket or container write-once, so the documents a run
/// rewrites need `[store].state_url` elsewhere: refused without it.
fn retention(raw: &RawRetention, store: &StoreConfig) -> Result<RetentionConfig, ConfigError> {
    use super::RetentionMode;
    let mode = match raw.mode.as_deref().map(str::trim) {
        None | Some("none") => RetentionMode::None,
        Some("governance") => RetentionMode::Governance,
        Some("compliance") => RetentionMode::Compliance,
        Some(other) => {
            return Err(err(format!(
                "[retention].mode: {other:?} is not none, governance or compliance"
            )));
        }
    };
    let period = |key: String, v: &toml::Value| {
        parse_duration(v)
            .filter(|d| !d.is_zero() && *d <= MAX_RETENTION)
            .ok_or_else(|| {
                err(format!(
                    "{key}: {v} is not a retention period (whole seconds, or e.g. \"2557d\" for 7 years, \"10s\"; at most 100 years)"
                ))
            })
    };
    if mode == RetentionMode::None {
        if raw.period.is_some() || !raw.kinds.is_empty() {
            return Err(err(
                "[retention]: a period is set but mode is \"none\"; set mode = \"governance\" or \"compliance\" to keep items, or remove the period",
            ));
        }
        return Ok(RetentionConfig::default());
    }
    let default = raw
        .period
        .as_ref()
        .map(|v| period("[retention].period".into(), v))
        .transpose()?;
    let mut periods = std::collections::BTreeMap::new();
    for kind in recarch_store::Kind::ALL {
        if let Some(d) = default {
            periods.insert(kind, d);
        }
    }
    for (name, v) in &raw.kinds {
        let kind = recarch_store::Kind::from_dirname(name.trim()).ok_or_else(|| {
            err(format!(
                "[retention.kinds]: {name:?} is not a kind (recordings, transcripts, contacts, adhoc_recordings or adhoc_transcripts)"
            ))
        })?;
        periods.insert(kind, period(format!("[retention.kinds].{name}"), v)?);
    }
    if periods.is_empty() {
        return Err(err(format!(
            "[retention].mode = \"{}\" needs a period: [retention].period (e.g. \"2557d\"), or one per kind under [retention.kinds]",
            mode.as_str()
        )));
    }
    if !store.url.starts_with("file://") && store.state_url.is_none() {
        return Err(err(format!(
            "[retention].mode = \"{}\" on {} requires [store].state_url: WORM retention makes that bucket or container write-once, and a run rewrites and deletes its checkpoints, queues, leases and run reports; set [store].state_url to a location outside it (another bucket or container, or a local directory)",
            mode.as_str(),
            recarch_store::redact_url(&store.url)
        )));
    }
    Ok(RetentionConfig { mode, periods })
}

/// Graph serves the ad hoc call kinds in the global cloud only: configured in a national
/// cloud they could never be listed.
fn global_only(graph: &GraphConfig, source: &SourceConfig) -> Result<(), ConfigError> {
    use recarch_store::Kind;
    if graph.cloud == Cloud::Global {
        return Ok(());
    }
    let adhoc = source
        .kinds
        .iter()
        .find(|k| matches!(k, Kind::AdhocRecordings | Kind::AdhocTranscripts));
    match adhoc {
        Some(kind) => Err(err(format!(
            "[source].kinds: {:?} is not available in the {} cloud ([graph].cloud): Microsoft Graph serves the recordings and transcripts of ad hoc calls in the global cloud only; remove it from [source].kinds",
            kind.dirname(),
            graph.cloud.name()
        ))),
        None => Ok(()),
    }
}

/// `[graph]`: the cloud and its endpoints, the tenant and client, and the credential (the
/// workload-identity webhook's `AZURE_*` variables fill what is left out).
fn graph(g: &RawGraph, base_dir: &Path, env: &[(String, String)]) -> Result<GraphConfig, ConfigError> {
    let env_var = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let cloud = match &g.cloud {
        None => Cloud::Global,
        Some(name) => Cloud::parse(name).ok_or_else(|| {
            err(format!(
                "[graph].cloud: {name:?} is not a cloud (global, usgov, usgovdod or china)"
            ))
        })?,
    };
    let auth = g.auth.as_deref().unwrap_or("secret").trim().to_ascii_lowercase();
    let workload_identity = auth == "workload_identity";
    // The workload-identity webhook's variables fill what the configuration leaves out.
    let webhook = |name: &str| if workload_identity { env_var(name) } else { None };
    let base_url = g.base_url.clone().unwrap_or_else(|| cloud.graph_base_url().to_owned());
    let base_url = parse_service_url("[graph].base_url", &base_url)?;
    let (authority_key, authority_text) = match (&g.authority_url, webhook("AZURE_AUTHORITY_HOST")) {
        (Some(url), _) => ("[graph].authority_url", url.clone()),
        (None, Some(url)) => ("AZURE_AUTHORITY_HOST", url),
        (None, None) => ("[graph].authority_url", cloud.authority_url().to_owned()),
    };
    let authority_url = parse_service_url(authority_key, &authority_text)?;
    let tenant_text = g
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
    let client_text = g
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
                g.client_secret_env.clone(),
                g.client_secret_file.clone(),
                base_dir,
            )?)
        }
        "certificate" => {
            only(&[
                "client_certificate_file",
                "client_private_key_file",
                "client_certificate_password_env",
            ])?;
            let certificate_file = g.client_certificate_file.as_ref().ok_or_else(|| {
                err("[graph].client_certificate_file: required with auth = \"certificate\" (PEM with the key, or PKCS#12)")
            })?;
            CredentialSource::Certificate {
                certificate_file: base_dir.join(certificate_file),
                key_file: g.client_private_key_file.as_ref().map(|k| base_dir.join(k)),
                password_env: g.client_certificate_password_env.clone(),
            }
        }
        "workload_identity" => {
            only(&["federated_token_file"])?;
            let token_file = match (&g.federated_token_file, env_var("AZURE_FEDERATED_TOKEN_FILE")) {
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

    Ok(GraphConfig {
        base_url,
        authority_url,
        tenant_id,
        client_id,
        cloud,
        credential,
    })
}

/// `[source]`: the organizers (ids and UPNs in the order given, each once; a group; the whole
/// tenant), the kinds, and the kinds' query options.
fn source(s: RawSource, base_dir: &Path) -> Result<SourceConfig, ConfigError> {
    let mut organizer_texts: Vec<(String, String)> = Vec::new();
    if let Some(list) = s.organizers {
        for (i, o) in list.into_iter().enumerate() {
            organizer_texts.push((format!("[source].organizers[{i}]"), o));
        }
    }
    if let Some(file) = s.organizers_file {
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
    let organizers_group = match &s.organizers_group {
        None => None,
        Some(g) => Some(
            OrganizerId::parse(g.trim())
                .map_err(|_| err(format!("[source].organizers_group: {g:?} is not a group id (a GUID)")))?
                .as_str()
                .to_owned(),
        ),
    };
    let mut kinds = Vec::new();
    for (i, name) in s
        .kinds
        .clone()
        .unwrap_or_else(|| vec!["recordings".into()])
        .iter()
        .enumerate()
    {
        let kind = recarch_store::Kind::from_dirname(name.trim()).ok_or_else(|| {
            err(format!(
                "[source].kinds[{i}]: {name:?} is not a kind (recordings, transcripts, contacts, adhoc_recordings or adhoc_transcripts)"
            ))
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err(err("[source].kinds: empty; list at least \"recordings\""));
    }
    let contacts_select = s.contacts_select.clone().unwrap_or_else(|| {
        ["displayName", "emailAddresses", "businessPhones", "companyName"]
            .map(String::from)
            .to_vec()
    });
    let contacts_page_size = s.contacts_page_size.unwrap_or(DEFAULT_CONTACTS_PAGE_SIZE);
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
    if organizers.is_empty() && organizer_upns.is_empty() && organizers_group.is_none() && !s.organizers_all {
        return Err(err(
            "[source]: no organizers; set [source].organizers, organizers_file, organizers_group or organizers_all",
        ));
    }
    if let Some(start) = &s.start_date_time {
        chrono::DateTime::parse_from_rfc3339(start).map_err(|e| {
            err(format!(
                "[source].start_date_time: {start:?} is not an RFC 3339 date-time ({e})"
            ))
        })?;
    }
    let adhoc_overlap = match &s.adhoc_overlap {
        None => DEFAULT_ADHOC_OVERLAP,
        Some(v) => parse_duration(v)
            .filter(|d| *d <= MAX_ADHOC_OVERLAP)
            .ok_or_else(|| {
                err(format!(
                    "[source].adhoc_overlap: {v} is not a duration of at most 7 days (whole seconds, or e.g. \"1h\", \"90m\", \"0s\")"
                ))
            })?,
    };

    Ok(SourceConfig {
        organizers,
        organizer_upns,
        organizers_group,
        organizers_all: s.organizers_all,
        kinds,
        contacts_select,
        contacts_page_size,
        start_date_time: s.start_date_time,
        adhoc_overlap,
    })
}

/// The kind of store a URL of a supported scheme names (`None`: no supported scheme).
fn store_kind(url: &str) -> Option<&'static str> {
    match url.split_once("://").map(|(s, _)| s).unwrap_or_default() {
        "file" => Some("file"),
        "s3" => Some("s3"),
        "az" | "azure" | "abfs" | "abfss" => Some("azure"),
        "memory" => Some("memory"),
        _ => None,
    }
}

/// `[store]`: the URL's scheme (the backend checks the rest when it opens), and the state
/// store's: never in the archive's bucket, container or directory.
fn store(raw: RawStore, base_dir: &Path) -> Result<StoreConfig, ConfigError> {
    let url = raw.url.trim().to_owned();
    let Some(kind) = store_kind(&url) else {
        return Err(err(format!(
            "[store].url: {:?} has no supported scheme (file://, s3://, az://)",
            redact_url(&url)
        )));
    };
    let options: Vec<(String, String)> = raw.options.into_iter().collect();
    let state_url = raw.state_url.map(|u| u.trim().to_owned());
    let state_options: Vec<(String, String)> = match (&state_url, raw.state_options) {
        (None, Some(_)) => {
            return Err(err(
                "[store.state_options]: set without [store].state_url; set state_url, or remove the table",
            ));
        }
        (None, None) => Vec::new(),
        (Some(_), Some(given)) => given.into_iter().collect(),
        // The same kind of store: most often another bucket or container of the same account.
        (Some(state), None) if store_kind(state) == Some(kind) => options.clone(),
        (Some(_), None) => Vec::new(),
    };
    if let Some(state) = &state_url {
        if store_kind(state).is_none() {
            return Err(err(format!(
                "[store].state_url: {:?} has no supported scheme (file://, s3://, az://)",
                redact_url(state)
            )));
        }
        recarch_store::routed::check_state_location(&url, &options, state, &state_options)
            .map_err(|e| err(format!("[store].state_url: {e}")))?;
    }

    let max_mib = recarch_store::MAX_SPOOL_MEMORY as u64 >> 20;
    let spool_memory = match raw.spool_memory_mib {
        Some(mib) if mib > max_mib => {
            return Err(err(format!(
                "[store].spool_memory_mib: {mib} is out of range (0 to {max_mib} MiB)"
            )));
        }
        Some(mib) => Some(usize::try_from(mib << 20).unwrap_or(recarch_store::MAX_SPOOL_MEMORY)),
        None => None,
    };

    Ok(StoreConfig {
        url,
        options,
        spool_dir: raw.spool_dir.map(|d| base_dir.join(d)),
        spool_memory,
        state_url,
        state_options,
    })
}

/// `[fetch]`: concurrency and attempts, in range.
fn fetch(raw: &RawFetch) -> Result<FetchConfig, ConfigError> {
    if raw.concurrency == 0 || raw.concurrency > 256 {
        return Err(err(format!(
            "[fetch].concurrency: {} is out of range (1 to 256)",
            raw.concurrency
        )));
    }
    if raw.max_attempts == 0 || raw.max_attempts > 100 {
        return Err(err(format!(
            "[fetch].max_attempts: {} is out of range (1 to 100)",
            raw.max_attempts
        )));
    }

    if raw.max_item_attempts == 0 || raw.max_item_attempts > 1000 {
        return Err(err(format!(
            "[fetch].max_item_attempts: {} is out of range (1 to 1000)",
            raw.max_item_attempts
        )));
    }
    Ok(FetchConfig {
        concurrency: raw.concurrency,
        max_attempts: raw.max_attempts,
        max_item_attempts: raw.max_item_attempts,
    })
}

/// `[run]`: the shutdown grace.
fn run(raw: &RawRun) -> Result<RunConfig, ConfigError> {
    let shutdown_grace = match &raw.shutdown_grace {
        None => std::time::Duration::from_secs(20),
        Some(v) => parse_duration(v)
            .filter(|d| *d <= std::time::Duration::from_secs(3600))
            .ok_or_else(|| {
                err(format!(
                    "[run].shutdown_grace: {v} is not a duration of at most an hour (whole seconds, or e.g. \"20s\", \"2m\", \"500ms\")"
                ))
            })?,
    };

    Ok(RunConfig { shutdown_grace })
}

/// `[metrics]`: the Pushgateway URL (the metrics file comes from the command line).
fn metrics(raw: &RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let pushgateway_url = match &raw.pushgateway_url {
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

    Ok(MetricsConfig {
        pushgateway_url,
        file: None,
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

/// The longest `[source].adhoc_overlap`: a window reaching further back lists a week of calls
/// again every run.
const MAX_ADHOC_OVERLAP: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A duration: whole seconds as a number, or a string with a unit (`ms`, `s`, `m`, `h`, `d`).
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
                "d" => n.checked_mul(86_400).map(Duration::from_secs),
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
