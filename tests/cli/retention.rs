//! `[retention]`: every manifest records its mode and retain-until (its kind's period from its
//! archiving; a contact's from its newest version); modes the store cannot enforce are refused.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::util::{Backend, Env};

const KINDS: (&str, &str) = ("RECARCH_SOURCE__KINDS", "recordings,contacts");

fn manifests(env: &Env, kind: &str) -> Vec<Value> {
    let dir = env.archive().join("manifests").join(kind);
    let mut out = Vec::new();
    for org in std::fs::read_dir(&dir).expect("kind dir") {
        for file in std::fs::read_dir(org.expect("org").path()).expect("org dir") {
            let bytes = std::fs::read(file.expect("file").path()).expect("manifest");
            out.push(serde_json::from_slice(&bytes).expect("JSON"));
        }
    }
    out
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_record_their_retention() {
    let env = Env::direct(1).await;
    env.write_config("[retention]\nmode = \"compliance\"\nperiod = \"2557d\"\n[retention.kinds]\ncontacts = \"10s\"\n");
    let org = env.organizers[0].clone();
    env.sim.add_recording(&org, 10_000);
    let contact = env.sim.add_contact(&org, "contacts", "Ada Lovelace");
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);
    let recordings = manifests(&env, "recordings");
    assert_eq!(recordings.len(), 1);
    for m in &recordings {
        assert_eq!(m["retention"]["mode"], "compliance", "{m}");
        let kept = time(&m["retention"]["retainUntil"]) - time(&m["archivedAt"]);
        assert!((kept - chrono::Duration::days(2557)).num_seconds().abs() <= 1, "{m}");
    }
    let first = manifests(&env, "contacts").pop().expect("a contact");
    let first_until = time(&first["retention"]["retainUntil"]);
    assert!(
        (first_until - time(&first["archivedAt"])).num_seconds().abs() <= 11,
        "{first}"
    );
    // A new version extends the contact's retention from its own archiving.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    env.sim
        .update_contact(&org, &env.sim.default_contact_folder(&org), &contact, "Ada King");
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);
    let second = manifests(&env, "contacts").pop().expect("a contact");
    assert!(time(&second["retention"]["retainUntil"]) > first_until, "{second}");
    env.recarch(&["verify"], &[]).await.assert_code(0);
    let status = env.recarch(&["status", "--json"], &[KINDS]).await;
    let status: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(status["retention"]["mode"], "compliance", "{status}");
    assert_eq!(status["retention"]["periodSeconds"]["contacts"], 10);
    assert_eq!(status["retention"]["periodSeconds"]["recordings"], 2557 * 86_400);
    let text = env.recarch(&["status"], &[KINDS]).await;
    assert!(text.stdout.contains("local disk is not WORM"), "{}", text.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_that_cannot_be_kept_is_refused() {
    let env = Env::direct(1).await;
    for (config, says) in [
        ("[retention]\nmode = \"forever\"\nperiod = \"1d\"\n", "[retention].mode"),
        ("[retention]\nmode = \"governance\"\n", "needs a period"),
        (
            "[retention]\nmode = \"governance\"\nperiod = \"0s\"\n",
            "[retention].period",
        ),
        ("[retention]\nperiod = \"1d\"\n", "mode is \"none\""),
        (
            "[retention]\nmode = \"governance\"\nperiod = \"1d\"\n[retention.kinds]\nvideos = \"1d\"\n",
            "\"videos\"",
        ),
    ] {
        env.write_config(config);
        let out = env.run().await;
        out.assert_code(2);
        assert!(out.stderr.contains(says), "{config}: {}", out.stderr);
    }
    assert!(!env.archive().join("manifests").exists(), "nothing written");
    // On S3 without a state store (the bucket becomes write-once): refused, naming the store.
    let Some(s3) = Env::on(Backend::S3, recarch_graph_sim::SimConfig::default(), 1).await else {
        return;
    };
    s3.write_config("[retention]\nmode = \"governance\"\nperiod = \"10s\"\n");
    let out = s3.run().await;
    out.assert_code(2);
    assert!(
        out.stderr.contains("s3://") && out.stderr.contains("requires [store].state_url"),
        "{}",
        out.stderr
    );
    let keys = crate::util::raw_keys(s3.open_archive().object_store().as_ref()).await;
    assert!(keys.is_empty(), "nothing written: {keys:#?}");
}
