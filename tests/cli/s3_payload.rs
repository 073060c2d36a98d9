//! How `recarch` sends blob bodies to S3, and that the server checks them:
//! - a blob uploaded in one PUT (held in memory, or a spool file of one part) is signed with
//!   the SHA-256 the spool computed, which is the blob's name: `x-amz-content-sha256` in hex,
//!   and over https also `x-amz-checksum-sha256`, which SeaweedFS verifies;
//! - a multipart upload's parts go over https as `UNSIGNED-PAYLOAD` with an
//!   `x-amz-checksum-crc64nvme` header the server verifies; over plain http they stay signed.
//!
//! Each test runs the binary against SeaweedFS (which checks signatures and checksums) through a
//! recording proxy: TLS with a test CA trusted through `SSL_CERT_FILE`, as a real CA would be
//! through the system's trust store, or plain TCP.

use recarch_graph_sim::{ContentMode, SimConfig};

use crate::util::proxy::{RecordingProxy, Request, TestCa};
use crate::util::{Backend, Env, all_recordings, assert_store_archive, sha256_hex};

/// Two 5 MiB parts and a bit: a multipart upload from a spool file, one PUT from memory.
const BIG: u64 = 2 * 5 * 1024 * 1024 + 4_321;
/// One PUT.
const SMALL: u64 = 100_000;
/// Another big recording, added for the second pass of a test.
const BIG2: u64 = BIG + 777;

/// A tenant with one big and one small recording on SeaweedFS, its config pointing at a
/// recording proxy in front of SeaweedFS (https with a test CA when `ca` is given). Returns
/// the tenant, the proxy, and the store options that reach SeaweedFS directly.
async fn tenant_behind_proxy(ca: Option<&TestCa>) -> Option<(Env, RecordingProxy, crate::util::Store)> {
    let config = SimConfig {
        content_mode: ContentMode::Direct,
        ..SimConfig::default()
    };
    let mut env = Env::on(Backend::SeaweedFs, config, 1).await?;
    env.sim.add_recording(&env.organizers[0], BIG);
    env.sim.add_recording(&env.organizers[0], SMALL);
    let direct = env.store.clone();
    let endpoint = option(&direct, "aws_endpoint").expect("an endpoint");
    let upstream = endpoint.strip_prefix("http://").expect("a plain http emulator");
    let proxy = RecordingProxy::start(upstream, ca).await;
    let scheme = if ca.is_some() { "https" } else { "http" };
    env.store
        .options
        .retain(|(k, _)| k != "aws_endpoint" && k != "aws_allow_http");
    env.store.options.push((
        "aws_endpoint".into(),
        format!("{scheme}://127.0.0.1:{}", proxy.addr.port()),
    ));
    if ca.is_none() {
        env.store.options.push(("aws_allow_http".into(), "true".into()));
    }
    env.write_config("");
    Some((env, proxy, direct))
}

fn option(store: &crate::util::Store, key: &str) -> Option<String> {
    store.options.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The PUTs of blob bodies: parts and blobs sent in one PUT (not the start-up probe's).
fn blob_puts(requests: &[Request]) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.blob_digest().is_some() && (r.is_part_upload() || r.is_blob_put()))
        .collect()
}

/// Writes the tenant's config with `[store].spool_memory_mib = mib` (`None`: the default).
fn set_spool_memory(env: &Env, mib: Option<u64>) {
    let store = env.store.toml();
    let store = match mib {
        Some(mib) => store.replacen("[store]\n", &format!("[store]\nspool_memory_mib = {mib}\n"), 1),
        None => store,
    };
    env.write_config_with(&store);
}

/// Runs recarch and returns the outcome with the requests the proxy saw during the run.
async fn run_seen(env: &Env, proxy: &RecordingProxy, vars: &[(&str, &str)]) -> (crate::util::Run, Vec<Request>) {
    let before = proxy.requests().len();
    let out = env.recarch(&["run"], vars).await;
    (out, proxy.requests().split_off(before))
}

/// Every blob sent in one PUT is signed with its content's SHA-256, which is its name, and
/// (with `checksum`) carries it as `x-amz-checksum-sha256`; it is create-only.
fn assert_signed_with_its_name(puts: &[&Request], checksum: bool) {
    use base64::Engine as _;
    for put in puts.iter().filter(|r| r.is_blob_put()) {
        let name = put.blob_digest().expect("a blob name");
        assert_eq!(put.header("x-amz-content-sha256"), Some(name), "{put:#?}");
        assert_eq!(put.header("if-none-match"), Some("*"), "{put:#?}");
        let expected = hex::decode(name)
            .map(|d| base64::engine::general_purpose::STANDARD.encode(d))
            .ok();
        if checksum {
            assert_eq!(put.header("x-amz-checksum-sha256"), expected.as_deref(), "{put:#?}");
        } else {
            assert!(put.header("x-amz-checksum-sha256").is_none(), "{put:#?}");
        }
        assert!(put.header("x-amz-checksum-crc64nvme").is_none(), "{put:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_blobs_carry_a_checksum_the_server_verifies() {
    let ca = TestCa::new();
    let Some((mut env, proxy, direct)) = tenant_behind_proxy(Some(&ca)).await else {
        return;
    };
    let ca_file = env.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).expect("write CA");
    let ca_file = ca_file.display().to_string();
    let trust = [("SSL_CERT_FILE", ca_file.as_str())];

    // Without the CA trusted, the store's certificate is refused: the TLS is real.
    let untrusted = env.recarch(&["run"], &[("SSL_CERT_FILE", "/dev/null")]).await;
    assert_ne!(untrusted.code, 0, "{untrusted:?}");
    assert!(
        blob_puts(&proxy.requests()).is_empty(),
        "nothing was uploaded untrusted"
    );

    // Spool files only: the big recording goes in parts (CRC64NVME), the small one in one PUT
    // signed with its digest. A hop that damages the bytes: the server refuses both, every
    // write is refused, and the run stops as for a store that is down (exit 4).
    set_spool_memory(&env, Some(0));
    proxy.corrupt_blobs(true);
    let (damaged, seen) = run_seen(&env, &proxy, &trust).await;
    proxy.corrupt_blobs(false);
    damaged.assert_code(4);
    assert!(damaged.stderr.contains("BadDigest"), "{}", damaged.stderr);
    let seen = blob_puts(&seen);
    assert!(seen.iter().any(|r| r.is_part_upload()), "{seen:#?}");
    assert!(seen.iter().any(|r| r.is_blob_put()), "{seen:#?}");
    let blobs = stored_blobs(&direct).await;
    assert!(blobs.is_empty(), "damaged bodies were stored: {blobs:?}");

    // The same bytes undamaged: both archived.
    let (clean, seen) = run_seen(&env, &proxy, &trust).await;
    clean.assert_code(0);
    let puts = blob_puts(&seen);
    let parts: Vec<&&Request> = puts.iter().filter(|r| r.is_part_upload()).collect();
    assert!(parts.len() >= 3, "{puts:#?}");
    for part in parts {
        assert_eq!(
            part.header("x-amz-content-sha256"),
            Some("UNSIGNED-PAYLOAD"),
            "{part:#?}"
        );
        let crc = part
            .header("x-amz-checksum-crc64nvme")
            .unwrap_or_else(|| panic!("no checksum: {part:#?}"));
        assert_eq!(crc.len(), 12, "base64 of 8 bytes: {part:#?}");
    }
    let creates: Vec<&Request> = seen
        .iter()
        .filter(|r| r.method == "POST" && r.target.ends_with("?uploads"))
        .collect();
    assert!(!creates.is_empty(), "{seen:#?}");
    for create in creates {
        assert_eq!(
            create.header("x-amz-checksum-algorithm"),
            Some("CRC64NVME"),
            "{create:#?}"
        );
    }
    assert_eq!(puts.iter().filter(|r| r.is_blob_put()).count(), 1, "{puts:#?}");
    assert_signed_with_its_name(&puts, true);

    // Held in memory (the default): the next big recording goes in one PUT, signed with its
    // digest; damaged on the way, it is refused.
    env.sim.add_recording(&env.organizers[0], BIG2);
    set_spool_memory(&env, None);
    proxy.corrupt_blobs(true);
    let (damaged, seen) = run_seen(&env, &proxy, &trust).await;
    proxy.corrupt_blobs(false);
    assert_ne!(damaged.code, 0, "{damaged:?}");
    assert!(damaged.stderr.contains("BadDigest"), "{}", damaged.stderr);
    assert!(blob_puts(&seen).iter().any(|r| r.is_blob_put()), "{seen:#?}");
    let (clean, seen) = run_seen(&env, &proxy, &trust).await;
    clean.assert_code(0);
    let puts = blob_puts(&seen);
    assert!(puts.iter().all(|r| r.is_blob_put()), "no parts: {puts:#?}");
    let sent: u64 = puts.iter().map(|r| r.body_len()).sum();
    assert_eq!(sent, BIG2, "{puts:#?}");
    assert_signed_with_its_name(&puts, true);

    let recordings = all_recordings(&env);
    assert_eq!(recordings.len(), 3);
    env.store = direct;
    assert_store_archive(&env, &recordings).await;
    for (_, recording) in &recordings {
        let sha = env.sim.content_sha256(&recording.id).expect("known");
        let blob = crate::util::raw_get(env.open_archive().object_store(), format!("blobs/sha256/{sha}")).await;
        assert_eq!(sha256_hex(&blob), sha);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_keeps_signed_payloads() {
    let Some((mut env, proxy, direct)) = tenant_behind_proxy(None).await else {
        return;
    };
    // From memory: every blob in one PUT, signed with its digest, no checksum header.
    let (out, seen) = run_seen(&env, &proxy, &[]).await;
    out.assert_code(0);
    let puts = blob_puts(&seen);
    assert_eq!(puts.len(), 2, "{puts:#?}");
    assert_signed_with_its_name(&puts, false);

    // From a spool file: the next big recording in parts, each signed with its own SHA-256.
    env.sim.add_recording(&env.organizers[0], BIG2);
    set_spool_memory(&env, Some(0));
    let (out, seen) = run_seen(&env, &proxy, &[]).await;
    out.assert_code(0);
    let puts = blob_puts(&seen);
    assert!(puts.iter().all(|r| r.is_part_upload()) && puts.len() >= 3, "{puts:#?}");
    for put in &puts {
        let digest = put.header("x-amz-content-sha256").unwrap_or_default();
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "a signed payload's SHA-256: {put:#?}"
        );
        assert!(
            !put.headers.iter().any(|(n, _)| n.starts_with("x-amz-checksum-")),
            "{put:#?}"
        );
    }
    env.store = direct;
    assert_store_archive(&env, &all_recordings(&env)).await;
}

/// The blob keys SeaweedFS holds, listed directly (not through the proxy).
async fn stored_blobs(direct: &crate::util::Store) -> Vec<String> {
    let archive = recarch_store::Archive::open(&direct.url, &direct.options).expect("open the archive directly");
    crate::util::raw_keys_under(archive.object_store().as_ref(), Some("blobs")).await
}
