//! Ad hoc calls (1:1, group and PSTN) through the same engine: each user's time window from
//! the watermark less the overlap, every id archived once, late items inside the overlap
//! caught by the next run, a killed run repeating its window, a 403 failing one user's calls,
//! and a call index pairing each call's recordings and transcripts.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use recarch_graph_sim::{AdhocCallKind, ContentMode, SimConfig};

use super::util::{Env, files, last_report, manifest_of, sha256_hex};

const ADHOC: (&str, &str) = ("RECARCH_SOURCE__KINDS", "adhoc_recordings,adhoc_transcripts");

/// Every ad hoc manifest key of `org` on disk, by kind directory.
fn manifests(env: &Env, kind: &str, org: &str) -> BTreeSet<String> {
    files(&env.archive().join(format!("manifests/{kind}/{org}")))
        .into_iter()
        .map(|f| format!("manifests/{kind}/{org}/{f}"))
        .collect()
}

/// The call index of `call_id` for `user`, parsed.
fn call_index(env: &Env, user: &str, call_id: &str) -> serde_json::Value {
    let path = env
        .archive()
        .join(format!("calls/{user}/{}.json", sha256_hex(call_id.as_bytes())));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("call index {}: {e}", path.display()));
    serde_json::from_str(&text).expect("call index is JSON")
}

/// The manifest keys a call index lists.
fn listed(index: &serde_json::Value) -> BTreeSet<String> {
    index["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["manifest"].as_str().map(str::to_owned))
        .collect()
}

/// Each call's index lists exactly the manifests that name the call, and every ad hoc manifest
/// is in its call's index.
fn assert_call_indexes_complete(env: &Env) {
    for user in &env.organizers {
        let mut by_call: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for kind in ["adhoc_recordings", "adhoc_transcripts"] {
            for key in manifests(env, kind, user) {
                let m: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(env.archive().join(&key)).expect("manifest"))
                        .expect("JSON");
                let call = m["callId"].as_str().expect("callId").to_owned();
                by_call.entry(call).or_default().insert(key);
            }
        }
        for (call, keys) in by_call {
            let index = call_index(env, user, &call);
            assert_eq!(index["schema"], "recarch.call.v1");
            assert_eq!(index["callId"], call.as_str());
            assert_eq!(listed(&index), keys, "call {call} of {user}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_archived_once_across_overlapping_windows_with_a_complete_call_index() {
    let env = Env::paged(ContentMode::Alternate, 2, 2).await;
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    // Calls of the last half hour: inside the next run's window (the default hour of overlap).
    let ago = |minutes| Some(Utc::now() - Duration::minutes(minutes));
    let one_to_one = env.sim.add_adhoc_call(&a, AdhocCallKind::OneToOne);
    let rec = env.sim.add_adhoc_recording(&a, &one_to_one, 40_000, ago(30));
    let transcript = env
        .sim
        .add_adhoc_transcript(&a, &one_to_one, Some(&rec), 3_000, ago(29));
    let group = env.sim.add_adhoc_call(&a, AdhocCallKind::Group);
    let group_rec = env.sim.add_adhoc_recording(&a, &group, 25_000, ago(20));
    let pstn = env.sim.add_adhoc_call(&b, AdhocCallKind::Pstn);
    let pstn_rec = env.sim.add_adhoc_recording(&b, &pstn, 30_000, ago(15));
    let pstn_transcript = env.sim.add_adhoc_transcript(&b, &pstn, Some(&pstn_rec), 2_000, ago(14));
    // And one of long ago, which only the first window (all history) lists.
    let old_call = env.sim.add_adhoc_call(&b, AdhocCallKind::OneToOne);
    let old = env.sim.add_adhoc_recording(&b, &old_call, 8_000, None);

    let out = env.recarch(&["run"], &[ADHOC]).await;
    out.assert_code(0);
    for (user, r) in [(&a, &rec), (&a, &group_rec), (&b, &pstn_rec), (&b, &old)] {
        let m =
            manifest_of(&env, "adhoc_recordings", user, &r.id).unwrap_or_else(|| panic!("no manifest for {}", r.id));
        assert_eq!(m["kind"], "callRecording");
        assert_eq!(m["source"], "adhocCall");
        assert_eq!(m["callId"], r.call_id.as_str());
        assert_eq!(m["organizerId"], user.as_str());
        assert_eq!(m["createdDateTime"], r.created.as_str());
        let sha = env.sim.content_sha256(&r.id).expect("sim knows it");
        assert_eq!(m["content"]["sha256"], sha.as_str());
        assert_eq!(m["content"]["size"], r.size);
        assert_eq!(m["content"]["mediaType"], "video/mp4");
        assert_eq!(m["graph"]["id"], r.id.as_str());
        assert!(m.get("meetingId").is_none(), "{m}");
    }
    for (user, t) in [(&a, &transcript), (&b, &pstn_transcript)] {
        let m =
            manifest_of(&env, "adhoc_transcripts", user, &t.id).unwrap_or_else(|| panic!("no manifest for {}", t.id));
        assert_eq!(m["kind"], "callTranscript");
        assert_eq!(m["source"], "adhocCall");
        assert_eq!(m["callId"], t.call_id.as_str());
        let vtt = env.sim.transcript_content(&t.id).expect("content");
        assert_eq!(m["content"]["sha256"], sha256_hex(&vtt).as_str());
        assert_eq!(m["content"]["mediaType"], "text/vtt");
    }
    // Nothing of the meetings' surface was asked for, and no meeting index written.
    assert!(!env.archive().join("manifests/recordings").exists());
    assert!(!env.archive().join("meetings").exists());
    // The 1:1 call's index pairs its recording and transcript.
    let index = call_index(&env, &a, &one_to_one.id);
    assert_eq!(index["organizerId"], a.as_str());
    assert_eq!(
        index["pairs"][0]["recording"],
        format!("manifests/adhoc_recordings/{a}/{}.json", sha256_hex(rec.id.as_bytes()))
    );
    assert_eq!(
        index["pairs"][0]["transcript"],
        format!(
            "manifests/adhoc_transcripts/{a}/{}.json",
            sha256_hex(transcript.id.as_bytes())
        )
    );
    assert_eq!(
        index["pairs"][0]["contentCorrelationId"],
        rec.content_correlation_id.as_str()
    );
    assert_call_indexes_complete(&env);
    env.recarch(&["verify"], &[ADHOC]).await.assert_code(0);

    // The next run lists each user's window again from the watermark less the overlap: the
    // overlap's items come back, and none is downloaded again.
    let status = env.recarch(&["status", "--json"], &[ADHOC]).await;
    status.assert_code(0);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let organizers = status["organizers"].as_array().expect("organizers");
    assert_eq!(organizers.len(), 4, "{status}");
    for o in organizers {
        assert_eq!(o["round"], "up to date", "{o}");
        let watermark = o["watermark"].as_str().expect("a watermark");
        let at = chrono::DateTime::parse_from_rfc3339(watermark).expect("RFC 3339");
        assert!((Utc::now() - at.with_timezone(&Utc)).num_seconds() < 120, "{watermark}");
    }
    env.sim.reset_stats();
    env.recarch(&["run"], &[ADHOC]).await.assert_code(0);
    let stats = env.sim.stats();
    assert_eq!(stats.adhoc_content_requests, 0, "nothing downloaded twice");
    assert_eq!(
        (
            stats.adhoc_recording_list_requests,
            stats.adhoc_transcript_list_requests
        ),
        (2, 2),
        "one page per user and kind"
    );
    let report = last_report(&env);
    // The overlap's five items came back and were recognised; the old one was not listed.
    assert_eq!(
        (&report["discovered"], &report["archived"], &report["alreadyArchived"]),
        (&serde_json::json!(5), &serde_json::json!(0), &serde_json::json!(5)),
        "{report}"
    );
    assert_call_indexes_complete(&env);
    // An overlap out of range is a configuration error naming the key.
    let out = env
        .recarch(&["run"], &[ADHOC, ("RECARCH_SOURCE__ADHOC_OVERLAP", "30d")])
        .await;
    out.assert_code(2);
    assert!(out.stderr.contains("[source].adhoc_overlap"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_item_inside_the_overlap_is_archived_by_the_next_run() {
    let env = Env::paged(ContentMode::Direct, 3, 1).await;
    let a = env.organizers[0].clone();
    let call = env.sim.add_adhoc_call(&a, AdhocCallKind::OneToOne);
    env.sim.add_adhoc_recording(&a, &call, 10_000, None);
    env.recarch(&["run"], &[ADHOC]).await.assert_code(0);
    // Items that show up after the window covering their creation was listed: one created
    // 20 minutes ago (inside the default hour of overlap), one created 3 hours ago (outside it).
    let late_call = env.sim.add_adhoc_call(&a, AdhocCallKind::Group);
    let late = env
        .sim
        .add_adhoc_recording(&a, &late_call, 12_000, Some(Utc::now() - Duration::minutes(20)));
    let late_transcript = env.sim.add_adhoc_transcript(
        &a,
        &late_call,
        Some(&late),
        1_000,
        Some(Utc::now() - Duration::minutes(19)),
    );
    let too_late = env
        .sim
        .add_adhoc_recording(&a, &late_call, 9_000, Some(Utc::now() - Duration::hours(3)));
    env.recarch(&["run"], &[ADHOC]).await.assert_code(0);
    assert!(manifest_of(&env, "adhoc_recordings", &a, &late.id).is_some());
    assert!(manifest_of(&env, "adhoc_transcripts", &a, &late_transcript.id).is_some());
    assert!(
        manifest_of(&env, "adhoc_recordings", &a, &too_late.id).is_none(),
        "an item older than the watermark less the overlap is not listed again"
    );
    // A wider overlap reaches it.
    env.recarch(&["run"], &[ADHOC, ("RECARCH_SOURCE__ADHOC_OVERLAP", "4h")])
        .await
        .assert_code(0);
    assert!(manifest_of(&env, "adhoc_recordings", &a, &too_late.id).is_some());
    let index = call_index(&env, &a, &late_call.id);
    assert_eq!(listed(&index).len(), 3, "{index}");
    assert_eq!(index["pairs"].as_array().map(Vec::len), Some(1), "{index}");
    assert_call_indexes_complete(&env);
    env.recarch(&["verify"], &[ADHOC]).await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_window_is_repeated_losing_and_duplicating_nothing() {
    let config = SimConfig {
        content_mode: ContentMode::Alternate,
        page_size: 2,
        ..SimConfig::default()
    };
    let env = Env::new(config, 2).await;
    env.write_config("\n[fetch]\nconcurrency = 1\n");
    // A slow network, so that the run is killed mid-window.
    env.sim.faults().content_rate(Some(4 << 20));
    let mut all = Vec::new();
    for user in &env.organizers {
        for i in 0..6 {
            let call = env.sim.add_adhoc_call(user, AdhocCallKind::OneToOne);
            let rec = env.sim.add_adhoc_recording(user, &call, 400_000 + i * 10_000, None);
            all.push((user.clone(), rec.id));
        }
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"))
        .args(["run", "--config"])
        .arg(env.config_path())
        .env("RECARCH_LOG", "warn")
        .env(ADHOC.0, ADHOC.1)
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    // Killed once some, not all, are archived.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let done: usize = env
            .organizers
            .iter()
            .map(|u| manifests(&env, "adhoc_recordings", u).len())
            .sum();
        if done >= 2 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.start_kill().expect("kill");
    let status = child.wait().await.expect("child ends");
    assert!(status.code().is_none(), "killed mid-window, not finished: {status:?}");
    let archived_before: Vec<String> = all
        .iter()
        .filter(|(u, id)| manifest_of(&env, "adhoc_recordings", u, id).is_some())
        .map(|(_, id)| id.clone())
        .collect();
    assert!(
        !archived_before.is_empty() && archived_before.len() < all.len(),
        "{} of {}",
        archived_before.len(),
        all.len()
    );
    // No watermark moved past a window that was not walked to its end.
    let status = env.recarch(&["status", "--json"], &[ADHOC]).await;
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let incomplete = status["organizers"]
        .as_array()
        .expect("organizers")
        .iter()
        .filter(|o| o["kind"] == "adhoc_recordings" && o.get("watermark").is_none())
        .count();
    assert!(incomplete >= 1, "{status}");

    env.sim.faults().content_rate(None);
    env.sim.reset_stats();
    env.recarch(&["run"], &[ADHOC]).await.assert_code(0);
    for (user, id) in &all {
        assert!(manifest_of(&env, "adhoc_recordings", user, id).is_some(), "{id} lost");
    }
    let requests = env.sim.stats().adhoc_recording_content_requests_by_id;
    for id in &archived_before {
        assert!(!requests.contains_key(id), "{id} downloaded again");
    }
    assert_call_indexes_complete(&env);
    env.recarch(&["verify"], &[ADHOC]).await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_the_policy_forbids_fails_only_that_users_calls() {
    let env = Env::paged(ContentMode::Direct, 5, 2).await;
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    let ok = env.sim.add_adhoc_call(&a, AdhocCallKind::Group);
    let ok_rec = env.sim.add_adhoc_recording(&a, &ok, 5_000, None);
    let denied = env.sim.add_adhoc_call(&b, AdhocCallKind::Pstn);
    let denied_rec = env.sim.add_adhoc_recording(&b, &denied, 5_000, None);
    env.sim.faults().organizer_forbidden(&b, true);
    let out = env.recarch(&["run"], &[ADHOC]).await;
    out.assert_code(1);
    assert!(out.stdout.contains("CallRecordings.Read.All"), "{}", out.stdout);
    assert!(manifest_of(&env, "adhoc_recordings", &a, &ok_rec.id).is_some());
    assert!(manifest_of(&env, "adhoc_recordings", &b, &denied_rec.id).is_none());
    // The policy fixed, the next run archives the user's calls from the start of history.
    env.sim.faults().organizer_forbidden(&b, false);
    env.recarch(&["run"], &[ADHOC]).await.assert_code(0);
    assert!(manifest_of(&env, "adhoc_recordings", &b, &denied_rec.id).is_some());
    assert_call_indexes_complete(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_cloud_with_ad_hoc_kinds_is_a_configuration_error() {
    let env = Env::paged(ContentMode::Direct, 5, 1).await;
    let out = env.recarch(&["run"], &[ADHOC, ("RECARCH_GRAPH__CLOUD", "usgov")]).await;
    out.assert_code(2);
    assert!(out.stderr.contains("usgov"), "{}", out.stderr);
    assert!(out.stderr.contains("adhoc_recordings"), "{}", out.stderr);
    assert!(!env.archive().exists(), "nothing written");
}
