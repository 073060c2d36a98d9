//! The S3 payload settings `recarch` picks: over https, bodies go as `UNSIGNED-PAYLOAD` with
//! an `x-amz-checksum-crc64nvme` header that the server verifies (TLS protects the bytes in
//! flight, and the payload signature would hash every byte a second time); over plain http
//! the payload stays signed. Each test runs the binary against SeaweedFS (which checks
//! signatures and checksums) through a recording proxy: TLS with a test CA trusted through
//! `SSL_CERT_FILE`, as a real CA would be through the system's trust store, or plain TCP.

use recarch_graph_sim::{ContentMode, SimConfig};

use crate::util::proxy::{RecordingProxy, Request, TestCa};
use crate::util::{Backend, Env, all_recordings, assert_store_archive, sha256_hex};

/// Two 5 MiB parts and a bit: a multipart upload.
const BIG: u64 = 2 * 5 * 1024 * 1024 + 4_321;
/// One PUT.
const SMALL: u64 = 100_000;

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

/// The PUTs that carried a body: parts and single uploads.
fn body_puts(requests: &[Request]) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.method == "PUT" && r.body_len() > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_sends_unsigned_payloads_with_a_checksum_the_server_verifies() {
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
        body_puts(&proxy.requests()).is_empty(),
        "nothing was uploaded untrusted"
    );

    // A hop that damages the bytes: the server refuses every part, the big recording fails,
    // the small one (one PUT, not damaged) is archived.
    proxy.corrupt_parts(true);
    let damaged = env.recarch(&["run"], &trust).await;
    proxy.corrupt_parts(false);
    damaged.assert_code(1);
    let recordings = all_recordings(&env);
    let big = recordings.iter().find(|(_, r)| r.size == BIG).expect("big").1.clone();
    let big_sha = env.sim.content_sha256(&big.id).expect("known");
    let parts_sent = proxy.requests().iter().filter(|r| r.is_part_upload()).count();
    assert!(parts_sent > 0, "the big recording went in parts");

    // The same bytes undamaged: everything is archived.
    env.recarch(&["run"], &trust).await.assert_code(0);
    let requests = proxy.requests();
    let puts = body_puts(&requests);
    assert!(puts.iter().any(|r| r.is_part_upload()), "{puts:#?}");
    let sent: u64 = puts.iter().map(|r| r.body_len()).sum();
    assert!(sent >= BIG + SMALL, "sent {sent} bytes: {puts:#?}");
    for put in &puts {
        assert_eq!(put.header("x-amz-content-sha256"), Some("UNSIGNED-PAYLOAD"), "{put:#?}");
        let crc = put
            .header("x-amz-checksum-crc64nvme")
            .unwrap_or_else(|| panic!("no checksum: {put:#?}"));
        assert_eq!(crc.len(), 12, "base64 of 8 bytes: {put:#?}");
    }
    let creates: Vec<&Request> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.target.ends_with("?uploads"))
        .collect();
    assert!(!creates.is_empty(), "{requests:#?}");
    for create in creates {
        assert_eq!(
            create.header("x-amz-checksum-algorithm"),
            Some("CRC64NVME"),
            "{create:#?}"
        );
    }

    env.store = direct;
    assert_store_archive(&env, &recordings).await;
    let blob = crate::util::raw_get(env.open_archive().object_store(), format!("blobs/sha256/{big_sha}")).await;
    assert_eq!(sha256_hex(&blob), big_sha);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_keeps_signed_payloads() {
    let Some((mut env, proxy, direct)) = tenant_behind_proxy(None).await else {
        return;
    };
    env.run().await.assert_code(0);
    let requests = proxy.requests();
    let puts = body_puts(&requests);
    assert!(puts.iter().any(|r| r.is_part_upload()), "{puts:#?}");
    let sent: u64 = puts.iter().map(|r| r.body_len()).sum();
    assert!(sent >= BIG + SMALL, "sent {sent} bytes: {puts:#?}");
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
