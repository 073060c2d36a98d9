//! Legal holds through the binary: a matter holds exactly what its filters select, including
//! what is archived later; release ends it without touching other matters; every action is a
//! ledger event with its actor; bad input writes nothing.

use std::collections::BTreeSet;

use serde_json::Value;

use super::util::Env;

const OFFICER: (&str, &str) = ("USER", "compliance-officer");

fn matters(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn holds_of(shown: &str) -> BTreeSet<String> {
    let shown: Value = serde_json::from_str(shown).expect("show JSON");
    shown["items"]
        .as_array()
        .expect("items")
        .iter()
        .flat_map(|i| i["holds"].as_array().cloned().unwrap_or_default())
        .map(|h| h.as_str().expect("a matter").to_owned())
        .collect()
}

fn records(env: &Env) -> Vec<Value> {
    let dir = env.archive().join("ledger");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("ledger")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().ends_with(".json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| serde_json::from_slice(&std::fs::read(dir.join(n)).expect("record")).expect("JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matter_holds_what_its_filters_select_until_released() {
    let env = Env::direct(2).await;
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    let ra = env.sim.add_recording(&a, 10_000);
    let ra2 = env.sim.add_recording(&a, 11_000);
    let rb = env.sim.add_recording(&b, 12_000);
    env.run().await.assert_code(0);

    // Bad input: exit 2, nothing written.
    for args in [
        vec!["hold", "place", "--matter", " ", "--organizer", a.as_str()],
        vec!["hold", "place", "--matter", "M", "--kind", "videos"],
        vec!["hold", "place", "--matter", "M", "--organizer", "not-a-guid"],
    ] {
        env.recarch(&args, &[]).await.assert_code(2);
    }
    assert!(!env.archive().join("holds").exists());

    let placed = env
        .recarch(
            &[
                "hold",
                "place",
                "--matter",
                "Acme v. Contoso",
                "--organizer",
                &a,
                "--reason",
                "counsel's letter",
            ],
            &[OFFICER],
        )
        .await;
    placed.assert_code(0);
    assert!(placed.stdout.contains("2 items now"), "{}", placed.stdout);
    let show = |id: String| {
        let env = &env;
        async move {
            let out = env.recarch(&["show", "--json", &id], &[]).await;
            out.assert_code(0);
            holds_of(&out.stdout)
        }
    };
    let acme: BTreeSet<String> = ["Acme v. Contoso".to_owned()].into();
    assert_eq!(show(ra.id.clone()).await, acme);
    let text = env.recarch(&["show", &ra.id], &[]).await;
    assert!(text.stdout.contains("\n  held by Acme v. Contoso\n"), "{}", text.stdout);
    assert_eq!(
        show(rb.id.clone()).await,
        BTreeSet::new(),
        "another custodian's item is not held"
    );

    // An item archived later that matches is held too.
    let ra3 = env.sim.add_recording(&a, 13_000);
    env.run().await.assert_code(0);
    assert_eq!(show(ra3.id.clone()).await, acme);
    let listed = env.recarch(&["hold", "ls", "--json"], &[]).await;
    listed.assert_code(0);
    let listed = matters(&listed.stdout);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "active");
    assert_eq!(listed[0]["items"], 3, "{}", listed[0]);
    assert_eq!(listed[0]["bytes"], 10_000 + 11_000 + 13_000);
    assert_eq!(listed[0]["by"]["user"], "compliance-officer");
    assert_eq!(listed[0]["reason"], "counsel's letter");

    // A second matter over every custodian's recordings.
    env.recarch(
        &["hold", "place", "--matter", "SEC 2026-17", "--kind", "recordings"],
        &[OFFICER],
    )
    .await
    .assert_code(0);
    let both: BTreeSet<String> = ["Acme v. Contoso".to_owned(), "SEC 2026-17".to_owned()].into();
    assert_eq!(show(ra2.id.clone()).await, both);

    // Release: the other matter still holds.
    let released = env
        .recarch(&["hold", "release", "--matter", "Acme v. Contoso"], &[OFFICER])
        .await;
    released.assert_code(0);
    let sec: BTreeSet<String> = ["SEC 2026-17".to_owned()].into();
    assert_eq!(show(ra.id.clone()).await, sec);
    assert_eq!(show(rb.id.clone()).await, sec);
    let again = env
        .recarch(&["hold", "release", "--matter", "Acme v. Contoso"], &[])
        .await;
    again.assert_code(1);
    assert!(again.stderr.contains("SEC 2026-17"), "{}", again.stderr);
    let text = env.recarch(&["hold", "ls"], &[]).await;
    text.assert_code(0);
    let line = |m: &str| {
        text.stdout
            .lines()
            .find(|l| l.starts_with(m))
            .map(str::to_owned)
            .expect("a line")
    };
    assert!(line("Acme v. Contoso").contains("released"), "{}", text.stdout);
    assert!(line("SEC 2026-17").contains("active"), "{}", text.stdout);
    let status = env.recarch(&["status", "--json"], &[]).await;
    let status: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(status["holds"], serde_json::json!(["SEC 2026-17"]), "{status}");

    // Each action is a ledger event, with its actor, logging its record.
    let events: Vec<Value> = records(&env)
        .into_iter()
        .filter(|r| r["event"].as_str().is_some_and(|e| e.starts_with("hold.")))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|r| r["event"].as_str().unwrap_or_default()).collect();
    assert_eq!(kinds, ["hold.place", "hold.place", "hold.release"]);
    for record in &events {
        assert_eq!(record["actor"]["user"], "compliance-officer", "{record}");
        let key = record["details"]["record"].as_str().expect("record key");
        assert!(key.starts_with("holds/"), "{key}");
        let leaves: Vec<&str> = record["leaves"]
            .as_array()
            .expect("leaves")
            .iter()
            .filter_map(|l| l["key"].as_str())
            .collect();
        assert!(leaves.contains(&key), "{record}");
        assert!(env.archive().join(key).is_file());
    }
    assert_eq!(events[0]["details"]["matter"], "Acme v. Contoso");
    assert_eq!(events[0]["details"]["items"], 2);
    env.recarch(&["verify"], &[]).await.assert_code(0);
}
