//! Names, not only GUIDs: the meeting's subject and times and the organizer's names in the
//! manifests, the meeting index and the catalog; one lookup per meeting and per organizer per
//! run; a lookup that fails never stops archiving, and a later run fills the names in where
//! records may change (the index, new catalog entries), with the ledger logging every write.

use std::collections::BTreeMap;

use recarch_graph_sim::{AdhocCallKind, RecordingInfo};
use recarch_store::{Container, MeetingIndex, OrganizerId};
use serde_json::Value;

use super::util::{Env, last_report, manifest_of};

const KINDS: (&str, &str) = (
    "RECARCH_SOURCE__KINDS",
    "recordings,transcripts,adhoc_recordings,contacts",
);

/// `ls --json`, by item id.
async fn ls(env: &Env) -> BTreeMap<String, Value> {
    let out = env.recarch(&["ls", "--json"], &[KINDS]).await;
    out.assert_code(0);
    out.stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .map(|v| (v["id"].as_str().expect("an id").to_owned(), v))
        .collect()
}

async fn index(env: &Env, org: &str, meeting: &str) -> MeetingIndex {
    let org = OrganizerId::parse(org).expect("a guid");
    env.open_archive()
        .read_index(Container::Meeting, &org, meeting)
        .await
        .expect("the index reads")
        .expect("the meeting has an index")
}

async fn verify(env: &Env) {
    let out = env.recarch(&["verify"], &[KINDS]).await;
    assert_eq!(out.code, 0, "verify: {}\n{}", out.stdout, out.stderr);
}

/// The names a meeting item must carry (manifest, index, catalog): the meeting's from the
/// simulator, the organizer's as the directory has them.
fn assert_named(what: &str, item: &Value, env: &Env, org: &str, rec: &RecordingInfo) {
    let subject = env.sim.meeting_subject(org, &rec.meeting_id).expect("a known meeting");
    assert_eq!(item["subject"], subject.as_str(), "{what}: {item}");
    let start = item["startDateTime"].as_str().expect("startDateTime");
    let end = item["endDateTime"].as_str().expect("endDateTime");
    assert!(
        start < rec.created.as_str() && rec.created.as_str() < end,
        "{what}: {item}"
    );
    assert_eq!(
        item["organizerUpn"],
        env.sim.user_upn(org).expect("a user").as_str(),
        "{what}: {item}"
    );
    assert!(
        item["organizerName"].as_str().is_some_and(|n| !n.is_empty()),
        "{what}: {item}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_recorded_in_manifests_the_index_and_the_catalog_with_one_lookup_each() {
    let env = Env::direct(2).await;
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    let r1 = env.sim.add_recording(&a, 20_000);
    let t1 = env.sim.add_transcript(&a, Some(&r1), 1_500);
    let r2 = env.sim.add_recording(&a, 10_000);
    env.sim.set_meeting_subject(&r2.meeting_id, "Board meeting: Q3 numbers");
    let rb = env.sim.add_recording(&b, 5_000);
    let call = env.sim.add_adhoc_call(&b, AdhocCallKind::Pstn);
    let cb = env.sim.add_adhoc_recording(&b, &call, 7_000, None);
    let contact = env.sim.add_contact(&b, "contacts", "Ada Lovelace");
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);

    // The manifests.
    let m1 = manifest_of(&env, "recordings", &a, &r1.id).expect("r1 archived");
    assert_named("r1's manifest", &m1, &env, &a, &r1);
    let mt = manifest_of(&env, "transcripts", &a, &t1.id).expect("t1 archived");
    assert_named("t1's manifest", &mt, &env, &a, &r1);
    let m2 = manifest_of(&env, "recordings", &a, &r2.id).expect("r2 archived");
    assert_eq!(m2["subject"], "Board meeting: Q3 numbers");
    assert_named(
        "rb's manifest",
        &manifest_of(&env, "recordings", &b, &rb.id).expect("rb"),
        &env,
        &b,
        &rb,
    );
    // An ad hoc call and a contact have no meeting: the user's names only.
    let upn_b = env.sim.user_upn(&b).expect("a user");
    for (what, manifest) in [
        (
            "the call's recording",
            manifest_of(&env, "adhoc_recordings", &b, &cb.id),
        ),
        ("the contact", manifest_of(&env, "contacts", &b, &contact)),
    ] {
        let manifest = manifest.unwrap_or_else(|| panic!("{what} archived"));
        assert_eq!(manifest["organizerUpn"], upn_b.as_str(), "{what}: {manifest}");
        assert!(manifest["organizerName"].is_string(), "{what}: {manifest}");
        for absent in ["subject", "startDateTime", "endDateTime"] {
            assert!(manifest.get(absent).is_none(), "{what}: {absent} in {manifest}");
        }
    }

    // The meeting index.
    let i1 = index(&env, &a, &r1.meeting_id).await;
    assert_eq!(i1.entries.len(), 2);
    let i1 = serde_json::to_value(&i1).expect("an index");
    assert_named("r1's index", &i1, &env, &a, &r1);

    // The catalog, as `ls` shows it.
    let listed = ls(&env).await;
    assert_eq!(listed.len(), 6, "{listed:?}");
    assert_named("r1 in ls", &listed[&r1.id], &env, &a, &r1);
    assert_named("t1 in ls", &listed[&t1.id], &env, &a, &r1);
    assert_eq!(listed[&r2.id]["subject"], "Board meeting: Q3 numbers");
    assert_eq!(listed[&contact]["organizerUpn"], upn_b.as_str());
    let text = env.recarch(&["ls"], &[KINDS]).await;
    text.assert_code(0);
    assert!(text.stdout.contains("Board meeting: Q3 numbers"), "{}", text.stdout);

    // One GET per meeting and per organizer, whatever the number of items and kinds.
    let stats = env.sim.stats();
    assert_eq!(
        stats.online_meeting_requests_by_id.get(&r1.meeting_id),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(stats.online_meeting_requests_by_id.get(&r2.meeting_id), Some(&1));
    assert_eq!(stats.online_meeting_requests_by_id.len(), 3, "r1, r2 and rb's meetings");
    assert_eq!(stats.user_requests_by_id.get(&a), Some(&1));
    assert_eq!(stats.user_requests_by_id.get(&b), Some(&1));
    verify(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_cannot_be_read_never_stop_archiving_and_the_next_run_fills_them_in() {
    let env = Env::direct(2).await;
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    let r1 = env.sim.add_recording(&a, 20_000);
    let t1 = env.sim.add_transcript(&a, Some(&r1), 1_500);
    let r2 = env.sim.add_recording(&a, 10_000);
    let rb = env.sim.add_recording(&b, 5_000);
    let contact = env.sim.add_contact(&b, "contacts", "Ada Lovelace");
    // a's meetings are not readable (no OnlineMeetings.Read.All); b's names are not (no
    // User.Read.All).
    env.sim.faults().online_meeting_status(&a, Some(403));
    env.sim.faults().user_status(&b, Some(403));
    let first = env.recarch(&["run"], &[KINDS]).await;
    first.assert_code(0);
    let report = last_report(&env);
    assert_eq!(report["archived"], 5, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    // Each failure logged once, naming what to grant.
    let said = |text: &str| first.stderr.matches(text).count();
    assert_eq!(
        said("cannot read the meeting's subject and times"),
        2,
        "{}",
        first.stderr
    );
    assert!(said("OnlineMeetings.Read.All") >= 1, "{}", first.stderr);
    assert!(said("application access policy") >= 1, "{}", first.stderr);
    assert_eq!(said("cannot read the organizer's names"), 1, "{}", first.stderr);
    assert!(said("User.Read.All") >= 1, "{}", first.stderr);
    // Archived without what could not be read, with what could.
    let m1 = manifest_of(&env, "recordings", &a, &r1.id).expect("r1 archived");
    assert!(m1.get("subject").is_none() && m1.get("startDateTime").is_none(), "{m1}");
    assert!(m1["organizerUpn"].is_string(), "{m1}");
    let mb = manifest_of(&env, "recordings", &b, &rb.id).expect("rb archived");
    assert!(mb["subject"].is_string(), "{mb}");
    assert!(
        mb.get("organizerName").is_none() && mb.get("organizerUpn").is_none(),
        "{mb}"
    );
    assert!(manifest_of(&env, "transcripts", &a, &t1.id).is_some());
    assert!(manifest_of(&env, "contacts", &b, &contact).is_some());
    let i1 = index(&env, &a, &r1.meeting_id).await;
    assert_eq!((i1.subject.as_deref(), i1.entries.len()), (None, 2));
    assert!(index(&env, &b, &rb.meeting_id).await.organizer_name.is_none());
    let listed = ls(&env).await;
    assert!(listed[&r1.id].get("subject").is_none(), "{}", listed[&r1.id]);
    assert!(listed[&contact].get("organizerName").is_none());
    // One attempt each: a 403 is not retried.
    let stats = env.sim.stats();
    assert_eq!(stats.online_meeting_requests_by_id.get(&r1.meeting_id), Some(&1));
    assert_eq!(stats.user_requests_by_id.get(&b), Some(&1));
    verify(&env).await;

    // Granted: the next run, with nothing new to archive, fills the names in.
    env.sim.faults().clear();
    env.sim.reset_stats();
    let second = env.recarch(&["run"], &[KINDS]).await;
    second.assert_code(0);
    let report = last_report(&env);
    assert_eq!(report["archived"], 0, "{report}");
    let i1 = serde_json::to_value(index(&env, &a, &r1.meeting_id).await).expect("an index");
    assert_named("r1's index", &i1, &env, &a, &r1);
    let i2 = index(&env, &a, &r2.meeting_id).await;
    assert_eq!(i2.subject, env.sim.meeting_subject(&a, &r2.meeting_id));
    let ib = serde_json::to_value(index(&env, &b, &rb.meeting_id).await).expect("an index");
    assert_named("rb's index", &ib, &env, &b, &rb);
    let listed = ls(&env).await;
    assert_eq!(listed.len(), 5);
    assert_named("r1 in ls", &listed[&r1.id], &env, &a, &r1);
    assert_named("t1 in ls", &listed[&t1.id], &env, &a, &r1);
    assert_named("rb in ls", &listed[&rb.id], &env, &b, &rb);
    assert_eq!(
        listed[&contact]["organizerUpn"],
        env.sim.user_upn(&b).expect("a user").as_str()
    );
    assert_eq!(listed[&contact]["displayName"], "Ada Lovelace");
    // The manifests stay as written.
    assert_eq!(manifest_of(&env, "recordings", &a, &r1.id), Some(m1));
    // Looked up once more each, shared by both kinds' passes.
    let stats = env.sim.stats();
    assert_eq!(stats.online_meeting_requests_by_id.get(&r1.meeting_id), Some(&1));
    assert_eq!(stats.user_requests_by_id.get(&b), Some(&1));
    verify(&env).await;

    // Nothing is pending any more: a third run looks nothing up and writes no names.
    env.sim.reset_stats();
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);
    let stats = env.sim.stats();
    assert!(stats.online_meeting_requests_by_id.is_empty(), "{stats:?}");
    assert!(stats.user_requests_by_id.is_empty(), "{stats:?}");
    verify(&env).await;
}
