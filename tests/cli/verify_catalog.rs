//! `verify` checks the catalog against the manifests, through the binary: a run's catalog is
//! complete and true; a deleted segment's entries are missing (and the whole catalog gone is
//! one finding) until `catalog rebuild`; planted lines that are wrong, name nothing or are
//! not entries are reported by segment and line, while an annotation (the same entry with
//! more `extra` members) is not.

use recarch_graph_sim::ContentMode;

use super::util::{Env, files, raw_put};

const KINDS: (&str, &str) = ("RECARCH_SOURCE__KINDS", "recordings,transcripts");

/// The problem lines of a verify's output that concern the catalog.
fn catalog_problems(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("problem: "))
        .filter(|p| p.starts_with("catalog: "))
        .map(str::to_owned)
        .collect()
}

/// The segments on disk (`catalog/<name>`), and each one's entries.
fn segments(env: &Env) -> Vec<(String, Vec<serde_json::Value>)> {
    let dir = env.archive().join("catalog");
    let mut names = files(&dir);
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(&name)).expect("segment");
            let entries = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).expect("an entry"))
                .collect();
            (format!("catalog/{name}"), entries)
        })
        .collect()
}

async fn rebuild(env: &Env) {
    let config = env.config_path().display().to_string();
    let args: Vec<String> = ["catalog", "--config", &config, "rebuild"].map(str::to_owned).into();
    super::util::recarch(&args, &[KINDS]).await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_the_catalog_incomplete_or_untrue() {
    // Pages of two items: the run writes several segments.
    let env = Env::paged(ContentMode::Direct, 2, 2).await;
    for org in env.organizers.clone() {
        for _ in 0..3 {
            let rec = env.sim.add_recording(&org, 10_000);
            env.sim.add_transcript(&org, Some(&rec), 800);
        }
    }
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);
    let clean = env.recarch(&["verify"], &[KINDS]).await;
    clean.assert_code(0);
    assert!(
        clean.stdout.contains("12 catalog entries, 0 problems"),
        "{}",
        clean.stdout
    );
    let written = segments(&env);
    assert!(written.len() >= 2, "several segments: {written:?}");

    // A segment deleted: each of its entries is missing (the ledger names the deletion too).
    let (gone, gone_entries) = written[0].clone();
    std::fs::remove_file(env.archive().join(&gone)).expect("remove");
    let found = env.recarch(&["verify"], &[KINDS]).await;
    found.assert_code(1);
    let problems = catalog_problems(&found.stdout);
    assert_eq!(problems.len(), gone_entries.len(), "{}", found.stdout);
    for e in &gone_entries {
        let missing = format!(
            "catalog: missing: {} ({}): ls, show and export cannot find it; run recarch catalog rebuild",
            e["manifest"].as_str().expect("manifest"),
            e["sha256"].as_str().expect("sha256")
        );
        assert!(problems.contains(&missing), "{missing} in {problems:#?}");
    }
    assert!(
        found.stdout.contains(&format!("problem: deleted: {gone}")),
        "{}",
        found.stdout
    );

    // The whole catalog gone: one finding, not one per manifest.
    for (key, _) in &written[1..] {
        std::fs::remove_file(env.archive().join(key)).expect("remove");
    }
    let none = env.recarch(&["verify"], &[KINDS]).await;
    none.assert_code(1);
    let problems = catalog_problems(&none.stdout);
    assert_eq!(problems.len(), 1, "{}", none.stdout);
    assert!(
        problems[0].starts_with("catalog: none: the manifests derive 12 catalog entries but catalog/ has no segment")
            && problems[0].ends_with("run recarch catalog rebuild (or any ls) to build it"),
        "{problems:#?}"
    );

    // A rebuild makes it complete again (the ledger still names the deleted segments).
    rebuild(&env).await;
    let rebuilt = env.recarch(&["verify"], &[KINDS]).await;
    assert_eq!(
        catalog_problems(&rebuilt.stdout),
        Vec::<String>::new(),
        "{}",
        rebuilt.stdout
    );
    assert!(rebuilt.stdout.contains("12 catalog entries"), "{}", rebuilt.stdout);

    // Lines planted in a new segment, as anything with write access could.
    let entry = segments(&env)[0].1[0].clone();
    let manifest = entry["manifest"].as_str().expect("manifest").to_owned();
    let size = entry["size"].as_u64().expect("size");
    let mut wrong_size = entry.clone();
    wrong_size["size"] = (size + 1).into();
    let mut nowhere = entry.clone();
    let absent = format!("manifests/recordings/{}/{}.json", env.organizers[0], "0".repeat(64));
    nowhere["manifest"] = absent.as_str().into();
    let mut other_content = entry.clone();
    other_content["sha256"] = "f".repeat(64).into();
    // An annotation: the same entry, later, with a member the manifest does not have.
    let mut annotation = entry.clone();
    annotation["subject"] = "Quarterly review".into();
    annotation["archivedAt"] = "2030-01-01T00:00:00Z".into();
    let mut body = String::new();
    for line in [&wrong_size, &nowhere, &other_content] {
        body.push_str(&line.to_string());
        body.push('\n');
    }
    body.push_str("{ not an entry\n");
    body.push_str(&annotation.to_string());
    body.push('\n');
    let planted = "catalog/20990101T000000.000Z-0-of-1-00000000000000aa.jsonl".to_owned();
    raw_put(
        env.open_archive().object_store().as_ref(),
        planted.clone(),
        body.into_bytes(),
    )
    .await;
    let found = env.recarch(&["verify"], &[KINDS]).await;
    found.assert_code(1);
    let problems = catalog_problems(&found.stdout);
    assert_eq!(problems.len(), 4, "{}", found.stdout);
    assert!(
        problems.contains(&format!(
            "catalog: wrong: {planted} line 1: size {}, the manifest says {size} ({manifest})",
            size + 1
        )),
        "{problems:#?}"
    );
    assert!(
        problems.contains(&format!(
            "catalog: wrong: {planted} line 2: names {absent}, which is not in the archive"
        )),
        "{problems:#?}"
    );
    assert!(
        problems.contains(&format!(
            "catalog: wrong: {planted} line 3: names {manifest} with content {}, which that manifest does not have",
            "f".repeat(64)
        )),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("catalog: unreadable: {planted} line 4: not a catalog entry: "))),
        "{problems:#?}"
    );
    assert!(!found.stdout.contains("line 5"), "{}", found.stdout);
    assert!(
        found.stdout.contains(&format!("problem: inserted: {planted}")),
        "{}",
        found.stdout
    );
}
