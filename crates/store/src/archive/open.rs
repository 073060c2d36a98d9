//! Opening an archive: the URL schemes and options of each backend, and how URLs are shown.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

use super::{Backend, DEFAULT_PART_CONCURRENCY, S3_MIN_PART_SIZE, SPOOL_PART_SIZE};
use crate::{Archive, StoreError};

/// Retries of [`Archive::probe`] on S3 and Azure: a few quick ones, so that a wrong
/// endpoint fails in seconds rather than after `object_store`'s default of ten retries
/// over up to three minutes.
fn probe_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(15),
    }
}

impl Archive {
    /// Opens the archive at `url`.
    ///
    /// Accepted URLs:
    /// - `file:///absolute/path`: a directory on local disk, created if missing;
    /// - `s3://bucket/prefix` (and `s3a://`, and `https://` S3 endpoint URLs): AWS S3 or a
    ///   compatible store, configured from the `AWS_*` environment variables, then
    ///   `options`;
    /// - `az://container/prefix` (and `azure://`, `abfs[s]://`, `adl://`, and
    ///   `https://<account>.blob.core.windows.net/container/prefix`): Azure Blob Storage,
    ///   configured from the `AZURE_*` environment variables, then `options`;
    /// - `memory://` (optionally with a prefix): a fresh in-memory store, for tests.
    ///
    /// `options` are `object_store` configuration keys and values, e.g.
    /// `("aws_endpoint", "http://localhost:9000")`, `("aws_allow_http", "true")`,
    /// `("azure_storage_account_name", "acct")`; keys are case-insensitive. `file://`
    /// and `memory://` take no options.
    ///
    /// Nothing is contacted here; call [`Archive::probe`] to check the store works.
    ///
    /// # Errors
    /// [`StoreError::InvalidUrl`] for an unsupported or malformed URL or a backend that
    /// cannot be configured from it; [`StoreError::InvalidOption`] for an option key the
    /// backend does not know.
    pub fn open(url: &str, options: &[(String, String)]) -> Result<Archive, StoreError> {
        let parsed = Url::parse(url).map_err(|e| StoreError::InvalidUrl {
            url: redact_unparsed(url),
            reason: e.to_string(),
        })?;
        let display = display_url(&parsed);
        let invalid = |reason: String| StoreError::InvalidUrl {
            url: display.clone(),
            reason,
        };

        match parsed.scheme() {
            "file" => open_local(&parsed, display.clone(), options),
            "memory" => {
                reject_options("memory://", options)?;
                let prefix = Path::from_url_path(parsed.path()).map_err(|e| invalid(format!("bad prefix: {e}")))?;
                Ok(Self::build(
                    prefixed(Arc::new(InMemory::new()), prefix),
                    display.clone(),
                    Backend::Multipart,
                ))
            }
            "s3" | "s3a" => open_s3(&parsed, display.clone(), options),
            "az" | "azure" | "abfs" | "abfss" | "adl" => open_azure(&parsed, display.clone(), options),
            "https" | "http" => match ObjectStoreScheme::parse(&parsed) {
                Ok((ObjectStoreScheme::AmazonS3, _)) => open_s3(&parsed, display.clone(), options),
                Ok((ObjectStoreScheme::MicrosoftAzure, _)) => open_azure(&parsed, display.clone(), options),
                _ => Err(invalid(
                    "not a recognised S3 or Azure endpoint; use s3://bucket/prefix or az://container/prefix".into(),
                )),
            },
            other => Err(invalid(format!(
                "unsupported scheme {other:?}; use file:///path, s3://bucket/prefix or az://container/prefix"
            ))),
        }
    }

    /// Wraps a store that is already narrowed to the archive's root (e.g. with
    /// [`PrefixStore`]). `display_url` is what messages show; credentials and query in it
    /// are stripped.
    ///
    /// An archive built this way does not know the local directory behind a
    /// `LocalFileSystem`, so [`Archive::clean_staging`] cannot sweep the temporary files
    /// that backend leaves behind when killed; use [`Archive::open`] with a `file://` URL
    /// for that. Nor does it know the backend: [`Archive::probe`] uses the store's own
    /// retry settings, and for S3 keep the part size at least [`S3_MIN_PART_SIZE`] (the
    /// default [`DEFAULT_PART_SIZE`](crate::DEFAULT_PART_SIZE) is) when calling [`Archive::with_upload_parts`].
    pub fn from_store(store: Arc<dyn ObjectStore>, display_url: &str) -> Archive {
        let display = match Url::parse(display_url) {
            Ok(url) => self::display_url(&url),
            Err(_) => redact_unparsed(display_url),
        };
        Self::build(store, display, Backend::Multipart)
    }
}

fn prefixed(store: Arc<dyn ObjectStore>, prefix: Path) -> Arc<dyn ObjectStore> {
    if prefix.is_root() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

fn reject_options(what: &str, options: &[(String, String)]) -> Result<(), StoreError> {
    match options.first() {
        Some((key, _)) => Err(StoreError::InvalidOption {
            key: key.clone(),
            reason: format!("{what} archives take no options"),
        }),
        None => Ok(()),
    }
}

fn open_local(url: &Url, display: String, options: &[(String, String)]) -> Result<Archive, StoreError> {
    reject_options("file://", options)?;
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: display.clone(),
        reason,
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a file:// URL takes no query or fragment".into()));
    }
    let dir = url
        .to_file_path()
        .map_err(|()| invalid("not an absolute local path (use file:///absolute/path)".into()))?;
    // A valid path whose directory cannot be made or reached (permissions, a read-only or
    // missing mount) is an unreachable store, not a malformed URL.
    let unreachable = |e| crate::local::io_error(dir.display().to_string(), e);
    std::fs::create_dir_all(&dir).map_err(unreachable)?;
    let root = std::fs::canonicalize(&dir).map_err(unreachable)?;
    let store = LocalFileSystem::new_with_prefix(&root)
        .map_err(|e| invalid(e.to_string()))?
        // No automatic removal of emptied directories: with fsync on, LocalFileSystem's
        // delete fsyncs the file's parent directory after unlinking, and a concurrent delete
        // that emptied and removed that directory makes the first delete fail ("unable to
        // sync data", seen with two blob commits at once). Emptied staging directories are
        // removed by `clean_staging`, the lease directory by `release_lease`.
        .with_automatic_cleanup(false)
        // Archives are the system of record: make every completed write durable.
        .with_fsync(true);
    let extensions = crate::extensions::local::LocalExtensions::new(root.clone());
    Ok(Archive::build(Arc::new(store), display, Backend::Local { root }).with_extensions(Arc::new(extensions)))
}

fn open_s3(url: &Url, display: String, options: &[(String, String)]) -> Result<Archive, StoreError> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    let options = parse_options::<AmazonS3ConfigKey>(options, "an S3 option (see object_store's AmazonS3ConfigKey)")?;
    let mut user_keys: Vec<AmazonS3ConfigKey> = options.iter().map(|(key, _)| *key).collect();
    user_keys.extend(aws_env_keys());
    for (key, value) in options {
        builder = builder.with_config(key, value);
    }
    let builder = payload_defaults(builder, &user_keys);
    let invalid = |e: object_store::Error| StoreError::InvalidUrl {
        url: display.clone(),
        reason: e.to_string(),
    };
    let probe = builder.clone().with_retry(probe_retry()).build().map_err(invalid)?;
    let put = crate::extensions::PutConfig::from_builder(&builder);
    let (store, http, untimed) = crate::extensions::s3::build_s3(builder).map_err(invalid)?;
    let store = Arc::new(store);
    let prefix = url_prefix(url, &display)?;
    let extensions = crate::extensions::s3::S3Extensions::new(
        Arc::clone(&store),
        http,
        prefix.clone(),
        url.host_str().unwrap_or_default(),
        put,
        untimed,
    );
    Ok(
        Archive::build(prefixed(store, prefix.clone()), display.clone(), Backend::Multipart)
            .with_probe_store(prefixed(Arc::new(probe), prefix))
            .with_min_part_size(S3_MIN_PART_SIZE)
            .with_upload_parts(SPOOL_PART_SIZE, DEFAULT_PART_CONCURRENCY)
            .with_spool_dir(default_spool_dir())
            .with_extensions(Arc::new(extensions)),
    )
}

fn open_azure(url: &Url, display: String, options: &[(String, String)]) -> Result<Archive, StoreError> {
    let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
    for (key, value) in parse_options::<AzureConfigKey>(options, "an Azure option (see object_store's AzureConfigKey)")?
    {
        builder = builder.with_config(key, value);
    }
    let invalid = |e: object_store::Error| StoreError::InvalidUrl {
        url: display.clone(),
        reason: e.to_string(),
    };
    let probe = builder.clone().with_retry(probe_retry()).build().map_err(invalid)?;
    let (store, http) = crate::extensions::azure::build_azure(builder.clone()).map_err(invalid)?;
    let store = Arc::new(store);
    let prefix = url_prefix(url, &display)?;
    // Immutability policies, legal holds and version deletes: requests object_store lacks,
    // authorized with the store's own credential and sent through its own client.
    let extensions =
        crate::extensions::azure::AzureExtensions::new(Arc::clone(&store), http, &builder, url, prefix.clone())
            .map_err(|reason| StoreError::InvalidUrl {
                url: display.clone(),
                reason,
            })?;
    Ok(
        Archive::build(prefixed(store, prefix.clone()), display.clone(), Backend::Multipart)
            .with_probe_store(prefixed(Arc::new(probe), prefix))
            .with_upload_parts(SPOOL_PART_SIZE, DEFAULT_PART_CONCURRENCY)
            .with_spool_dir(default_spool_dir())
            .with_extensions(Arc::new(extensions)),
    )
}

/// The payload settings recarch picks for S3, where the user set none: over https (an
/// `https://` endpoint, or none, which is AWS itself) the body is sent as `UNSIGNED-PAYLOAD`
/// with an `x-amz-checksum-crc64nvme` header, which the server verifies before it stores the
/// part. TLS already protects the bytes in flight, and SigV4's payload signature would hash
/// every byte a second time (SHA-256, after the content hash that names the blob); CRC64NVME
/// costs next to nothing. Over plain http the signed payload is the only end-to-end check of
/// the body, so nothing changes there.
///
/// `user_keys` are the keys set in `[store.options]` or `AWS_*` variables: a user's
/// `aws_unsigned_payload` or `aws_checksum_algorithm` wins over the default, and a user's
/// `aws_unsigned_payload = "false"` (a signed payload, which is checked) adds no checksum either.
fn payload_defaults(mut builder: AmazonS3Builder, user_keys: &[AmazonS3ConfigKey]) -> AmazonS3Builder {
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
    let https = endpoint.is_none_or(|e| e.get(..8).is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://")));
    if !https {
        return builder;
    }
    let user_set = |key| user_keys.contains(&key);
    if !user_set(AmazonS3ConfigKey::UnsignedPayload) {
        builder = builder.with_unsigned_payload(true);
    }
    // As object_store parses booleans; a value it cannot parse fails the build anyway.
    let signed = builder
        .get_config_value(&AmazonS3ConfigKey::UnsignedPayload)
        .is_some_and(|v| crate::extensions::option_flag(&v) == Some(false));
    if !signed && !user_set(AmazonS3ConfigKey::Checksum) {
        builder = builder.with_checksum_algorithm(Checksum::CRC64NVME);
    }
    builder
}

/// The S3 config keys set through `AWS_*` environment variables, which
/// [`AmazonS3Builder::from_env`] reads the same way.
fn aws_env_keys() -> Vec<AmazonS3ConfigKey> {
    std::env::vars_os()
        .filter_map(|(key, _)| {
            let key = key.to_str().filter(|key| key.starts_with("AWS_"))?;
            key.to_ascii_lowercase().parse().ok()
        })
        .collect()
}

/// `<system temporary directory>/recarch-spool`.
fn default_spool_dir() -> PathBuf {
    std::env::temp_dir().join("recarch-spool")
}

/// Parses `[store.options]` keys (case-insensitive) into a backend's config keys; values are
/// never echoed in errors, as they may be credentials.
fn parse_options<K: std::str::FromStr>(
    options: &[(String, String)],
    what: &str,
) -> Result<Vec<(K, String)>, StoreError> {
    options
        .iter()
        .map(|(key, value)| {
            let parsed = key
                .to_ascii_lowercase()
                .parse()
                .map_err(|_| StoreError::InvalidOption {
                    key: key.clone(),
                    reason: format!("not {what}"),
                })?;
            Ok((parsed, value.clone()))
        })
        .collect()
}

/// The path inside the bucket/container that the archive lives under.
fn url_prefix(url: &Url, display: &str) -> Result<Path, StoreError> {
    ObjectStoreScheme::parse(url)
        .map(|(_, prefix)| prefix)
        .map_err(|e| StoreError::InvalidUrl {
            url: display.to_owned(),
            reason: e.to_string(),
        })
}

/// `url` without password (and without user name when a password came with it), query
/// or fragment.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Failures only happen for URLs that cannot carry credentials anyway.
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
    }
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// A URL (or something meant to be one) for messages: user info replaced by `[redacted]`, no
/// query or fragment (signatures, SAS tokens). Works on text that does not parse as a URL too.
pub fn redact_url(text: &str) -> String {
    let no_query = text.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = no_query.split_once("://") else {
        return no_query.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://[redacted]@{host}{path}"),
        None => no_query.to_owned(),
    }
}

/// Best effort for strings that do not parse as URLs: drop everything from `?`/`#` and
/// any `user:password@`.
fn redact_unparsed(raw: &str) -> String {
    let cut = raw.find(['?', '#']).map_or(raw, |i| &raw[..i]);
    match (cut.find("://"), cut.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://{}", &cut[..scheme_end], &cut[at + 1..])
        }
        _ => cut.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_url_strips_credentials_and_query() {
        let url = Url::parse("s3://user:secret@bucket/prefix?sig=abc#frag").expect("valid");
        assert_eq!(display_url(&url), "s3://bucket/prefix");
        assert_eq!(
            redact_unparsed("s3://user:secret@bu cket/prefix?sig=abc"),
            "s3://bu cket/prefix"
        );
    }

    #[test]
    fn open_rejects_bad_urls_and_options() {
        assert!(matches!(
            Archive::open("ftp://host/x", &[]),
            Err(StoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Archive::open("not a url", &[]),
            Err(StoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Archive::open("memory://", &[("aws_region".into(), "x".into())]),
            Err(StoreError::InvalidOption { .. })
        ));
        assert!(matches!(
            Archive::open(
                "s3://bucket/prefix",
                &[("no_such_option".into(), "secret-value".into())]
            ),
            Err(StoreError::InvalidOption { key, .. }) if key == "no_such_option"
        ));
        let err = Archive::open("file://remotehost/x", &[]).expect_err("remote host");
        assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err}");
    }

    /// `aws_unsigned_payload` and `aws_checksum_algorithm` of `payload_defaults` for a builder
    /// with `options` set (all of them counted as the user's).
    fn payload_settings(url: &str, options: &[(&str, &str)]) -> (Option<String>, Option<String>) {
        let mut builder = AmazonS3Builder::new().with_url(url);
        let mut keys = Vec::new();
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key.parse().expect("an S3 key");
            builder = builder.with_config(key, *value);
            keys.push(key);
        }
        let builder = payload_defaults(builder, &keys);
        (
            builder.get_config_value(&AmazonS3ConfigKey::UnsignedPayload),
            builder.get_config_value(&AmazonS3ConfigKey::Checksum),
        )
    }

    #[test]
    fn payload_defaults_unsigned_with_checksum_over_https_only() {
        let unsigned = (Some("true".to_owned()), Some("crc64nvme".to_owned()));
        let signed = (Some("false".to_owned()), None);
        // No endpoint: AWS itself, always https.
        assert_eq!(payload_settings("s3://bucket/prefix", &[]), unsigned);
        assert_eq!(
            payload_settings("https://s3.eu-west-1.amazonaws.com/bucket", &[]),
            unsigned
        );
        assert_eq!(
            payload_settings("s3://bucket/p", &[("aws_endpoint", "HTTPS://s3.example.net")]),
            unsigned
        );
        assert_eq!(
            payload_settings("s3://bucket/p", &[("aws_endpoint", "http://127.0.0.1:9000")]),
            signed
        );
        // The S3-specific endpoint is the one used, as in object_store's build.
        assert_eq!(
            payload_settings(
                "s3://bucket/p",
                &[
                    ("aws_endpoint", "https://s3.example.net"),
                    ("aws_endpoint_url_s3", "http://127.0.0.1:9000")
                ]
            ),
            signed
        );

        // The user's settings win; a signed payload gets no checksum added.
        let https = ("aws_endpoint", "https://s3.example.net");
        assert_eq!(
            payload_settings("s3://bucket/p", &[https, ("aws_unsigned_payload", "false")]),
            signed
        );
        assert_eq!(
            payload_settings("s3://bucket/p", &[https, ("unsigned_payload", "No")]),
            (Some("No".to_owned()), None)
        );
        assert_eq!(
            payload_settings("s3://bucket/p", &[https, ("aws_checksum_algorithm", "sha256")]),
            (Some("true".to_owned()), Some("sha256".to_owned()))
        );
        assert_eq!(
            payload_settings("s3://bucket/p", &[https, ("aws_unsigned_payload", "true")]),
            unsigned
        );
        // Over http the user may still choose unsigned payloads, with or without a checksum.
        assert_eq!(
            payload_settings(
                "s3://bucket/p",
                &[
                    ("aws_endpoint", "http://127.0.0.1:9000"),
                    ("aws_unsigned_payload", "true")
                ]
            ),
            (Some("true".to_owned()), None)
        );
    }

    #[test]
    fn open_s3_and_azure_without_network() {
        let s3 = Archive::open(
            "s3://bucket/some/prefix?x=1",
            &[
                ("AWS_REGION".into(), "eu-west-1".into()),
                ("aws_access_key_id".into(), "AKIDEXAMPLE".into()),
                ("aws_secret_access_key".into(), "secret".into()),
            ],
        )
        .expect("s3 archive");
        assert_eq!(s3.display_url(), "s3://bucket/some/prefix");
        let az = Archive::open(
            "az://container/prefix",
            &[
                ("azure_storage_account_name".into(), "acct".into()),
                ("azure_storage_account_key".into(), "a2V5".into()),
            ],
        )
        .expect("azure archive");
        assert_eq!(az.display_url(), "az://container/prefix");
        assert!(!format!("{az:?}").contains("a2V5"));

        assert_eq!(s3.staged_uploads_per_download(), 1);
        assert_eq!(az.staged_uploads_per_download(), 1);

        // S3 parts are never below 5 MiB; other backends take what is asked.
        assert_eq!(s3.part_size(), SPOOL_PART_SIZE);
        assert_eq!(az.part_size(), SPOOL_PART_SIZE);
        assert_eq!(s3.with_upload_parts(64 * 1024, 2).part_size(), S3_MIN_PART_SIZE);
        assert_eq!(az.with_upload_parts(64 * 1024, 2).part_size(), 64 * 1024);
        let memory = Archive::open("memory://", &[]).expect("memory archive");
        assert_eq!(memory.with_upload_parts(0, 0).part_size(), 1);
        let dir = tempfile::tempdir().expect("tempdir");
        let url = url::Url::from_directory_path(dir.path()).expect("absolute path");
        let local = Archive::open(url.as_str(), &[]).expect("local archive");
        // Overlapping uploads pays only where finishing one is waiting, not sending.
        assert_eq!(local.staged_uploads_per_download(), 2);
    }
}
