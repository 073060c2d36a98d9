//! Finding without Graph: `ls` (each filter's exact result set, text and JSON Lines), `cat`
//! (a good blob, a corrupted one), `show` (an item, a meeting, a blob) and the catalog (built
//! on first use).

use std::collections::BTreeSet;

use recarch_graph_sim::{AdhocCallKind, ContentMode};

use super::util::{Env, sha256_hex};

const KINDS: (&str, &str) = ("RECARCH_SOURCE__KINDS", "recordings,transcripts,adhoc_recordings");

fn ids(out: &str) -> BTreeSet<String> {
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_cat_and_show_find_what_was_archived() {
    let env = Env::paged(ContentMode::Direct, 3, 2).await;
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    let ra = env.sim.add_recording(&a, 20_000);
    let ta = env.sim.add_transcript(&a, Some(&ra), 1_500);
    let rb = env.sim.add_recording(&b, 30_000);
    let call = env.sim.add_adhoc_call(&b, AdhocCallKind::Pstn);
    let cb = env.sim.add_adhoc_recording(&b, &call, 7_000, None);
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);
    let env = &env;
    let ls = |args: &'static [&'static str]| {
        let mut all = vec!["ls", "--json"];
        all.extend_from_slice(args);
        async move { env_ls(env, &all).await }
    };
    async fn env_ls(env: &Env, args: &[&str]) -> BTreeSet<String> {
        let out = env.recarch(args, &[KINDS]).await;
        out.assert_code(0);
        ids(&out.stdout)
    }
    let all: BTreeSet<String> = [&ra.id, &ta.id, &rb.id, &cb.id].into_iter().cloned().collect();
    assert_eq!(ls(&[]).await, all);
    let json = env.recarch(&["ls", "--json", "--kind", "transcripts"], &[KINDS]).await;
    let line: serde_json::Value = serde_json::from_str(json.stdout.lines().next().expect("a line")).expect("JSON");
    for field in super::util::LS_MEMBERS {
        assert!(!line[field].is_null(), "{field} in {line}");
    }
    assert_eq!(
        line["sha256"],
        sha256_hex(&env.sim.transcript_content(&ta.id).expect("vtt")).as_str()
    );
    assert_eq!(
        ls(&["--kind", "recordings"]).await,
        [&ra.id, &rb.id].into_iter().cloned().collect()
    );
    assert_eq!(
        env_ls(env, &["ls", "--json", "--organizer", &b]).await,
        [&rb.id, &cb.id].into_iter().cloned().collect()
    );
    assert_eq!(
        env_ls(env, &["ls", "--json", "--meeting", &ra.meeting_id]).await,
        [&ra.id, &ta.id].into_iter().cloned().collect()
    );
    assert_eq!(
        env_ls(env, &["ls", "--json", "--meeting", &call.id]).await,
        [&cb.id].into_iter().cloned().collect()
    );
    // A window on createdDateTime: from inclusive, to exclusive.
    let created = |c: &str| c.to_owned();
    let exact = created(&rb.created);
    assert!(
        env_ls(env, &["ls", "--json", "--from", &exact, "--kind", "recordings"])
            .await
            .contains(&rb.id)
    );
    assert!(
        !env_ls(
            env,
            &[
                "ls",
                "--json",
                "--to",
                &exact,
                "--kind",
                "recordings",
                "--organizer",
                &b
            ]
        )
        .await
        .contains(&rb.id)
    );
    assert!(ls(&["--from", "2099-01-01"]).await.is_empty());
    // Text columns, a header first; piping into head ends quietly.
    let text = env.recarch(&["ls"], &[KINDS]).await;
    text.assert_code(0);
    assert!(text.stdout.starts_with("KIND"), "{}", text.stdout);
    assert_eq!(text.stdout.lines().count(), 5);
    // Bad filters: exit 2 naming them.
    for (flag, value) in [("--kind", "videos"), ("--organizer", "bob"), ("--from", "yesterday")] {
        let bad = env.recarch(&["ls", flag, value], &[KINDS]).await;
        bad.assert_code(2);
        assert!(bad.stderr.contains(flag), "{}", bad.stderr);
    }

    // cat: the bytes, re-hashed.
    let sha = env.sim.content_sha256(&ra.id).expect("sha");
    // `cat`'s stdout as bytes (the helpers read it as text).
    let cat = |sha: String| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"))
            .args(["cat", "--config"])
            .arg(env.config_path())
            .arg(&sha)
            .output()
            .await
            .expect("runs")
    };
    let out = cat(sha.clone()).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(sha256_hex(&out.stdout), sha);
    assert_eq!(out.stdout.len() as u64, ra.size);
    // A corrupted blob: its bytes, then exit 1 and a message naming it.
    let path = env.archive().join(format!("blobs/sha256/{sha}"));
    let mut bytes = std::fs::read(&path).expect("blob");
    bytes[100] ^= 1;
    let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644));
    std::fs::write(&path, &bytes).expect("corrupt");
    let out = cat(sha.clone()).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, bytes);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("blobs/sha256/{sha}")));
    for (arg, code) in [("0".repeat(64), 1), ("xyz".to_owned(), 2)] {
        env.recarch(&["cat", &arg], &[]).await.assert_code(code);
    }
    // Upper-case hex names the same blob.
    let upper = cat(env.sim.content_sha256(&rb.id).expect("sha").to_ascii_uppercase()).await;
    assert_eq!(upper.status.code(), Some(0));
    assert_eq!(upper.stdout.len() as u64, rb.size);

    // show: a meeting, its items and the records that logged them.
    let shown = env.recarch(&["show", "--json", &ra.meeting_id], &[KINDS]).await;
    shown.assert_code(0);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).expect("JSON");
    let items = shown["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{shown}");
    for item in items {
        assert!(
            item["ledger"]["record"]
                .as_str()
                .expect("logged")
                .starts_with("ledger/"),
            "{item}"
        );
        assert_eq!(item["content"]["meetingId"], ra.meeting_id.as_str());
    }
    let index = shown["indexes"].as_object().expect("indexes");
    assert_eq!(index.len(), 1);
    // A blob: the items naming it.
    let blob = env
        .recarch(
            &["show", "--json", &env.sim.content_sha256(&rb.id).expect("sha")],
            &[KINDS],
        )
        .await;
    blob.assert_code(0);
    let blob: serde_json::Value = serde_json::from_str(&blob.stdout).expect("JSON");
    assert_eq!(blob["blob"]["size"], rb.size);
    assert_eq!(blob["items"][0]["content"]["id"], rb.id.as_str());
    env.recarch(&["show", "not-an-id"], &[KINDS]).await.assert_code(1);
    // A digest of no blob: exit 1, said once, on stderr.
    let absent = env.recarch(&["show", &"0".repeat(64)], &[KINDS]).await;
    absent.assert_code(1);
    assert_eq!(absent.stdout, "");
    assert!(absent.stderr.contains("nothing in"), "{}", absent.stderr);
    // The text says what holds and retention apply, also when none do.
    let text = env.recarch(&["show", &ra.id], &[KINDS]).await;
    text.assert_code(0);
    assert!(
        text.stdout.starts_with("manifest manifests/recordings/"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("\n  legal holds: none\n"), "{}", text.stdout);
    assert!(
        text.stdout.contains("\n  retention: none (kept forever"),
        "{}",
        text.stdout
    );
    // A transcript's metadata blob: its transcript names it.
    let transcript = env.recarch(&["show", "--json", &ta.id], &[KINDS]).await;
    transcript.assert_code(0);
    let transcript: serde_json::Value = serde_json::from_str(&transcript.stdout).expect("JSON");
    let metadata = transcript["items"][0]["content"]["metadata"]["sha256"]
        .as_str()
        .expect("the transcript's metadata blob")
        .to_owned();
    let shown = env.recarch(&["show", "--json", &metadata], &[KINDS]).await;
    shown.assert_code(0);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).expect("JSON");
    assert_eq!(shown["items"][0]["content"]["id"], ta.id.as_str(), "{shown}");
    assert_eq!(
        shown["blob"]["referredToBy"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    // JSON Lines carry every listed member, null where an item has none.
    let calls = env
        .recarch(&["ls", "--json", "--kind", "adhoc_recordings"], &[KINDS])
        .await;
    let line: serde_json::Value = serde_json::from_str(calls.stdout.lines().next().expect("a line")).expect("JSON");
    assert!(line["meetingId"].is_null() && line.get("meetingId").is_some(), "{line}");
    assert_eq!(line["callId"], call.id.as_str());

    // The catalog is built on first use from the manifests when it is gone.
    std::fs::remove_dir_all(env.archive().join("catalog")).expect("remove");
    assert_eq!(ls(&[]).await, all);
    assert!(env.archive().join("catalog").exists());
}
