//! Every kind at once (recordings, transcripts, contacts) through the one engine: killed at
//! any instant, faulted, reset by 410 Gone — nothing lost, nothing twice, every meeting index
//! complete.

use std::collections::BTreeMap;
use std::time::Duration;

use recarch_graph_sim::{ContentMode, RecordingInfo, Target, TranscriptInfo};

use super::util::{Env, last_report, manifest_of, manifest_path, sha256_hex};

/// Appended to the `[source]` section of the test config.
const ALL_KINDS: &str = "kinds = [\"recordings\", \"transcripts\", \"contacts\"]\ncontacts_page_size = 2\n";

/// What the simulated tenant holds, as the test made it.
#[derive(Default)]
struct Tenant {
    recordings: Vec<(String, RecordingInfo)>,
    transcripts: Vec<(String, TranscriptInfo)>,
    /// (user, folder, contact id) → the newest display name, or `None` once removed.
    contacts: BTreeMap<(String, String, String), Option<String>>,
}

fn json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

/// Whether `manifest` is listed in the index of `meeting_id`.
fn indexed(env: &Env, org: &str, meeting_id: &str, manifest: &str) -> bool {
    let path = env
        .archive()
        .join(format!("meetings/{org}/{}.json", sha256_hex(meeting_id.as_bytes())));
    path.exists()
        && json(&path)["entries"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["manifest"] == manifest))
}

/// Everything the tenant holds is archived once, indexed, and each contact's newest version
/// is its state in the tenant, with no version twice in a row.
fn assert_tenant_archived(env: &Env, tenant: &Tenant) {
    for (org, rec) in &tenant.recordings {
        let path = manifest_path(&env.archive(), org, &rec.id);
        let m = json(&path);
        assert_eq!(
            m["content"]["sha256"],
            env.sim.content_sha256(&rec.id).expect("known").as_str()
        );
        let key = format!("manifests/recordings/{org}/{}.json", sha256_hex(rec.id.as_bytes()));
        assert!(indexed(env, org, &rec.meeting_id, &key), "{key} in its meeting index");
    }
    for (org, t) in &tenant.transcripts {
        let m = manifest_of(env, "transcripts", org, &t.id).unwrap_or_else(|| panic!("no manifest for {}", t.id));
        let vtt = env.sim.transcript_content(&t.id).expect("content");
        assert_eq!(m["content"]["sha256"], sha256_hex(&vtt).as_str());
        let key = format!("manifests/transcripts/{org}/{}.json", sha256_hex(t.id.as_bytes()));
        assert!(indexed(env, org, &t.meeting_id, &key), "{key} in its meeting index");
    }
    for ((user, folder, id), name) in &tenant.contacts {
        let Some(m) = manifest_of(env, "contacts", user, id) else {
            // Added and removed before any round listed it: Graph never showed it live.
            assert!(
                name.is_none(),
                "no manifest for contact {id} ({name:?}) in folder {folder} of {user}"
            );
            continue;
        };
        let versions = m["versions"].as_array().expect("versions");
        for pair in versions.windows(2) {
            assert_ne!(pair[0]["sha256"], pair[1]["sha256"], "a version twice in a row: {m}");
        }
        let newest = versions.last().expect("a version");
        let blob = std::fs::read(env.archive().join(newest["blob"].as_str().expect("blob"))).expect("blob");
        let stored: serde_json::Value = serde_json::from_slice(&blob).expect("JSON");
        match name {
            Some(name) => assert_eq!(stored["displayName"], name.as_str(), "{m}"),
            None => assert!(newest["removed"]["reason"].is_string(), "a tombstone last: {m}"),
        }
    }
}

/// Adds a little of everything: a recording with its transcript per organizer, a contact in
/// one of the organizer's folders, a rename and now and then a removal.
fn grow(
    env: &Env,
    tenant: &mut Tenant,
    folders: &BTreeMap<String, Vec<String>>,
    rng: &mut fastrand::Rng,
    round: usize,
) {
    for org in &env.organizers {
        let rec = env.sim.add_recording(org, rng.u64(200_000..1_200_000));
        let t = env.sim.add_transcript(org, Some(&rec), rng.u64(2_000..30_000));
        tenant.recordings.push((org.clone(), rec));
        tenant.transcripts.push((org.clone(), t));
        let user_folders = &folders[org];
        let folder = user_folders[rng.usize(..user_folders.len())].clone();
        let name = format!("Contact {round} of {}", &org[..8]);
        let live: Vec<_> = tenant
            .contacts
            .iter()
            .filter(|((u, _, _), n)| u == org && n.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        let id = env.sim.add_contact(org, &folder, &name);
        tenant.contacts.insert((org.clone(), folder, id), Some(name));
        if live.is_empty() {
            continue;
        }
        let pick = live[rng.usize(..live.len())].clone();
        if round % 4 == 3 {
            env.sim.remove_contact(org, &pick.1, &pick.2, round % 8 == 3);
            tenant.contacts.insert(pick, None);
        } else {
            let renamed = format!("Renamed {round} {}", &pick.2[..6]);
            env.sim.update_contact(org, &pick.1, &pick.2, &renamed);
            tenant.contacts.insert(pick, Some(renamed));
        }
    }
}

fn folders_of(env: &Env) -> BTreeMap<String, Vec<String>> {
    env.organizers
        .iter()
        .map(|org| {
            let default = env.sim.default_contact_folder(org);
            let top = env.sim.add_contact_folder(org, "Clients", None);
            let nested = env.sim.add_contact_folder(org, "Key accounts", Some(&top));
            (org.clone(), vec![default, top, nested])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_killed_at_any_instant_then_rerun_archives_everything_exactly_once() {
    let env = Env::paged(ContentMode::Alternate, 2, 2).await;
    // One download at a time and a slow network (8 MiB/s), so that kills land while paging,
    // mid-download, between blob and manifest, between manifest and index, and while versions
    // and checkpoints are written.
    env.write_config(&format!("{ALL_KINDS}\n[fetch]\nconcurrency = 1\nmax_attempts = 1\n"));
    env.sim.faults().content_rate(Some(8 << 20));
    let folders = folders_of(&env);
    let mut tenant = Tenant::default();
    let mut rng = fastrand::Rng::with_seed(0x6b1d5);
    grow(&env, &mut tenant, &folders, &mut rng, 0);
    let rounds = 12;
    let mut killed = 0;
    for round in 1..=rounds {
        grow(&env, &mut tenant, &folders, &mut rng, round);
        let mut child = env.spawn_run();
        tokio::time::sleep(Duration::from_millis(rng.u64(5..300))).await;
        let _ = child.start_kill();
        let out = child.wait_with_output().await.expect("child ends");
        assert!(
            out.status.code().is_none() || out.status.code() == Some(0),
            "round {round}: {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        killed += usize::from(out.status.code().is_none());
    }
    eprintln!("{killed} of {rounds} runs killed mid-way");
    assert!(
        killed >= rounds / 2,
        "too few runs were killed mid-way ({killed}) for the test to mean anything"
    );
    let last = env.run().await;
    last.assert_code(0);
    assert_tenant_archived(&env, &tenant);
    env.recarch(&["verify"], &[]).await.assert_code(0);
    // Everything is archived once: one more run downloads and appends nothing.
    env.sim.reset_stats();
    env.run().await.assert_code(0);
    let stats = env.sim.stats();
    assert_eq!(stats.content_requests, 0, "{:?}", stats.content_requests_by_id);
    assert!(
        stats.transcript_content_requests_by_id.is_empty(),
        "{:?}",
        stats.transcript_content_requests_by_id
    );
    let report = last_report(&env);
    for kind in ["recordings", "transcripts", "contacts"] {
        assert_eq!(report["kinds"][kind]["archived"], 0, "{kind}: {report}");
    }
}

/// Faults on transcripts and contacts fail only their own items or folders: recordings go on,
/// the failed ones are queued and archived once the fault is gone; a 410 Gone on every kind at
/// once restarts each round without downloading or appending anything twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_transcripts_and_contacts_stay_with_their_items() {
    let env = Env::paged(ContentMode::Direct, 2, 2).await;
    // Three attempts per request: the two throttled answers below may both fall on one
    // organizer's folder listing (whichever asks first), and must still be waited out.
    env.write_config(&format!(
        "{ALL_KINDS}\n[fetch]\nmax_attempts = 3\nmax_item_attempts = 3\n"
    ));
    let folders = folders_of(&env);
    let mut tenant = Tenant::default();
    let mut rng = fastrand::Rng::with_seed(0xfa17);
    grow(&env, &mut tenant, &folders, &mut rng, 0);
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    // A transcript whose content keeps failing (503) and one that is gone (404).
    let rec = env.sim.add_recording(&a, 5_000);
    let flaky = env.sim.add_transcript(&a, Some(&rec), 3_000);
    let gone = env.sim.add_transcript(&b, None, 3_000);
    env.sim.faults().content_status(&flaky.id, Some(503));
    env.sim.faults().content_status(&gone.id, Some(404));
    // The contact folder listing is throttled twice (Retry-After 1 s): waited out, not failed.
    env.sim.faults().throttle(Target::ContactFolders, 429, Some(1), 2);
    let out = env.run().await;
    out.assert_code(1);
    let report = last_report(&env);
    assert_eq!(report["kinds"]["transcripts"]["failed"], 2, "{report}");
    assert_eq!(report["kinds"]["recordings"]["failed"], 0, "{report}");
    assert_eq!(report["kinds"]["contacts"]["failed"], 0, "{report}");
    assert_eq!(report["kinds"]["transcripts"]["queued"], 2, "{report}");
    assert!(report["throttledRequests"].as_u64() >= Some(2), "{report}");
    // Everything else is archived.
    assert_tenant_archived(&env, &tenant);
    assert!(manifest_path(&env.archive(), &a, &rec.id).exists());

    // The 404 is dead-lettered at its second failure; the 503 stays queued.
    grow(&env, &mut tenant, &folders, &mut rng, 1);
    env.run().await.assert_code(1);
    let report = last_report(&env);
    assert_eq!(report["kinds"]["transcripts"]["deadLetters"], 1, "{report}");
    assert_eq!(report["kinds"]["transcripts"]["queued"], 1, "{report}");
    assert_tenant_archived(&env, &tenant);

    // Fixed at the source: the queue archives the flaky one, `retry` brings the dead letter back.
    env.sim.faults().content_status(&flaky.id, None);
    env.sim.faults().content_status(&gone.id, None);
    env.recarch(&["retry", "--all"], &[]).await.assert_code(0);
    grow(&env, &mut tenant, &folders, &mut rng, 2);
    env.run().await.assert_code(0);
    tenant.transcripts.push((a.clone(), flaky));
    tenant.transcripts.push((b.clone(), gone));
    tenant.recordings.push((a.clone(), rec));
    assert_tenant_archived(&env, &tenant);

    // 410 Gone on every delta query at once: full rounds, nothing downloaded or appended twice.
    grow(&env, &mut tenant, &folders, &mut rng, 3);
    env.sim.faults().expire_sync_state("resyncRequired", true);
    env.sim.reset_stats();
    env.run().await.assert_code(0);
    let stats = env.sim.stats();
    // Only what `grow` added: a recording and a transcript per organizer.
    assert_eq!(
        stats.content_requests, 2,
        "only the new recordings: {:?}",
        stats.content_requests_by_id
    );
    assert_eq!(
        stats.transcript_content_requests_by_id.len(),
        2,
        "only the new transcripts: {:?}",
        stats.transcript_content_requests_by_id
    );
    assert!(stats.transcript_content_requests_by_id.values().all(|n| *n == 1));
    let report = last_report(&env);
    for kind in ["recordings", "transcripts", "contacts"] {
        assert!(report["kinds"][kind]["resyncs"].as_u64() >= Some(1), "{kind}: {report}");
    }
    // A new contact and a changed one per organizer; nothing else appended.
    assert_eq!(report["kinds"]["contacts"]["archived"], 4, "{report}");
    assert_tenant_archived(&env, &tenant);
    env.recarch(&["verify"], &[]).await.assert_code(0);
}
