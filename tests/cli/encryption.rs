//! Encryption at rest on S3: SSE-KMS through `[store.options]`, applied by the server (moto) to
//! every object the run writes, and reported by `status`.

use serde_json::Value;

use super::util::{Backend, Env};

/// The KMS key the archive's objects are encrypted with (moto keeps what it is given).
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/0b5c3f7e-7a4e-4c1f-9d1e-recarch00001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_kms_is_applied_and_reported() {
    let Some(mut env) = Env::on(Backend::S3, recarch_graph_sim::SimConfig::default(), 1).await else {
        return;
    };
    env.store.options.extend([
        ("aws_server_side_encryption".to_owned(), "aws:kms".to_owned()),
        ("aws_sse_kms_key_id".to_owned(), KEY.to_owned()),
    ]);
    env.write_config("");
    let org = env.organizers[0].clone();
    env.sim.add_recording(&org, 50_000);
    env.run().await.assert_code(0);
    // The next run says at start what the store applies.
    let again = env.run().await;
    again.assert_code(0);
    assert!(
        again.stderr.contains("encryption at rest") && again.stderr.contains(KEY),
        "{}",
        again.stderr
    );
    let status = env.recarch(&["status", "--json"], &[]).await;
    status.assert_code(0);
    let status: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(status["encryption"]["algorithm"], "aws:kms", "{status}");
    assert_eq!(status["encryption"]["kmsKeyId"], KEY, "{status}");
    let text = env.recarch(&["status"], &[]).await;
    assert!(
        text.stdout.contains(&format!("encryption: aws:kms with KMS key {KEY}")),
        "{}",
        text.stdout
    );
    // Every object the run wrote, not only the record `status` asks about.
    let archive = env.open_archive();
    let keys = super::util::raw_keys(archive.object_store().as_ref()).await;
    assert!(keys.iter().any(|k| k.starts_with("blobs/")), "{keys:?}");
    for key in &keys {
        let encryption = archive.encryption_of(key).await.expect("HEAD");
        assert_eq!(
            encryption
                .as_ref()
                .map(|e| (e.algorithm.as_str(), e.kms_key_id.as_deref())),
            Some(("aws:kms", Some(KEY))),
            "{key}"
        );
    }
    env.recarch(&["verify"], &[]).await.assert_code(0);
}
