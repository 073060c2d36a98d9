//! Transcripts through the same engine: VTT content and metadata as two blobs, a
//! `callTranscript` manifest, paired with its recording by `contentCorrelationId`; a tenant
//! with transcripts turned off fails the transcripts only.

use recarch_graph_sim::ContentMode;

use super::util::{Env, manifest_of as manifest, sha256_hex};

const BOTH: (&str, &str) = ("RECARCH_SOURCE__KINDS", "recordings,transcripts");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_are_archived_beside_their_recordings() {
    let env = Env::paged(ContentMode::Direct, 2, 2).await;
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    let rec = env.sim.add_recording(&a, 50_000);
    let paired = env.sim.add_transcript(&a, Some(&rec), 4_000);
    let alone = env.sim.add_transcript(&b, None, 2_000);
    let out = env.recarch(&["run"], &[BOTH]).await;
    out.assert_code(0);
    assert!(manifest(&env, "recordings", &a, &rec.id).is_some());
    for (org, t) in [(&a, &paired), (&b, &alone)] {
        let m = manifest(&env, "transcripts", org, &t.id).unwrap_or_else(|| panic!("no manifest for {}", t.id));
        assert_eq!(m["schema"], "recarch.manifest.v1");
        assert_eq!(m["kind"], "callTranscript");
        assert_eq!(m["id"], t.id.as_str());
        assert_eq!(m["organizerId"], org.as_str());
        assert_eq!(m["meetingId"], t.meeting_id.as_str());
        assert_eq!(m["contentCorrelationId"], t.content_correlation_id.as_str());
        let vtt = env.sim.transcript_content(&t.id).expect("content");
        assert!(vtt.starts_with(b"WEBVTT"));
        assert_eq!(m["content"]["sha256"], sha256_hex(&vtt).as_str());
        assert_eq!(m["content"]["size"], vtt.len());
        assert_eq!(m["content"]["mediaType"], "text/vtt");
        let meta = env.sim.transcript_metadata(&t.id).expect("metadata");
        assert_eq!(m["metadata"]["sha256"], sha256_hex(&meta).as_str());
        assert_eq!(m["metadata"]["size"], meta.len());
        for blob in [&m["content"]["blob"], &m["metadata"]["blob"]] {
            let bytes = std::fs::read(env.archive().join(blob.as_str().expect("blob key"))).expect("blob");
            assert_eq!(
                format!("blobs/sha256/{}", sha256_hex(&bytes)),
                blob.as_str().expect("key")
            );
        }
        assert_eq!(m["graph"]["id"], t.id.as_str());
    }
    // Paired with its recording.
    let rm = manifest(&env, "recordings", &a, &rec.id).expect("recording manifest");
    assert_eq!(rm["graph"]["contentCorrelationId"], rec.content_correlation_id.as_str());
    assert_eq!(
        manifest(&env, "transcripts", &a, &paired.id).expect("manifest")["contentCorrelationId"],
        rec.content_correlation_id.as_str()
    );
    // One index per meeting lists both manifests and pairs them.
    let index_path = env
        .archive()
        .join(format!("meetings/{a}/{}.json", sha256_hex(rec.meeting_id.as_bytes())));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).expect("meeting index")).expect("JSON");
    assert_eq!(index["schema"], "recarch.meeting.v1");
    assert_eq!(index["meetingId"], rec.meeting_id.as_str());
    let recording_manifest = format!("manifests/recordings/{a}/{}.json", sha256_hex(rec.id.as_bytes()));
    let transcript_manifest = format!("manifests/transcripts/{a}/{}.json", sha256_hex(paired.id.as_bytes()));
    let listed: Vec<&str> = index["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["manifest"].as_str())
        .collect();
    assert!(
        listed.contains(&recording_manifest.as_str()) && listed.contains(&transcript_manifest.as_str()),
        "{index}"
    );
    assert_eq!(index["pairs"][0]["recording"], recording_manifest.as_str());
    assert_eq!(index["pairs"][0]["transcript"], transcript_manifest.as_str());
    assert_eq!(
        index["pairs"][0]["contentCorrelationId"],
        rec.content_correlation_id.as_str()
    );
    // An index lost (or never written, a run killed in between) is rebuilt when the items come
    // round again: a full round after a 410.
    std::fs::remove_file(&index_path).expect("remove");
    env.sim.faults().expire_sync_state("resyncRequired", false);
    env.recarch(&["run"], &[BOTH]).await.assert_code(0);
    let rebuilt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).expect("rebuilt")).expect("JSON");
    assert_eq!(rebuilt["pairs"], index["pairs"]);
    // verify checks every blob a manifest names; nothing downloaded twice.
    env.recarch(&["verify"], &[BOTH]).await.assert_code(0);
    // An index entry pointing at no manifest is a finding.
    let stray = env
        .archive()
        .join(format!("meetings/{a}/{}.json", sha256_hex(b"another meeting")));
    std::fs::write(
        &stray,
        serde_json::json!({"schema": "recarch.meeting.v1", "entries": [{"kind": "callRecording", "id": "x", "manifest": "manifests/recordings/nowhere.json"}]})
            .to_string(),
    )
    .expect("write");
    let found = env.recarch(&["verify"], &[BOTH]).await;
    found.assert_code(1);
    assert!(
        found.stdout.contains("manifests/recordings/nowhere.json"),
        "{}",
        found.stdout
    );
    std::fs::remove_file(&stray).expect("remove");
    env.sim.reset_stats();
    env.recarch(&["run"], &[BOTH]).await.assert_code(0);
    assert!(env.sim.stats().transcript_content_requests_by_id.is_empty());

    // Transcripts turned off in the tenant: those passes fail with the admin setting named;
    // recordings go on.
    env.sim.faults().transcripts_disabled(true);
    let later = env.sim.add_recording(&a, 10_000);
    env.sim.add_transcript(&a, Some(&later), 1_000);
    let out = env.recarch(&["run"], &[BOTH]).await;
    out.assert_code(1);
    assert!(out.stdout.contains("AllowTranscription"), "{}", out.stdout);
    assert!(manifest(&env, "recordings", &a, &later.id).is_some());
    let status = env.recarch(&["status", "--json"], &[BOTH]).await;
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert!(
        json["organizers"]
            .as_array()
            .expect("organizers")
            .iter()
            .any(|o| o["kind"] == "transcripts" && o["organizerId"] == a.as_str()),
        "{json}"
    );
}
