//! `recarch export`: a production read back by independent readers (Python's `csv` for the
//! Concordance DAT, `xml.etree` for EDRM XML, `hashlib` for every file, `sha256sum -c`), its
//! families, custody and ledger record, each filter's exact set, a non-empty target, and a
//! corrupted blob that stops it (and that `cat` names) without leaving anything that looks
//! complete, and `ls`, `show` and `cat` on the same archive; on local disk and on S3.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::util::{Backend, Env, sha256_hex};

const KINDS: (&str, &str) = ("RECARCH_SOURCE__KINDS", "recordings,transcripts,contacts");

/// The columns, as the load file must name them, in order.
const COLUMNS: [&str; 19] = [
    "DOCID",
    "BEGDOC",
    "ENDDOC",
    "PARENTID",
    "ATTACHIDS",
    "CUSTODIAN",
    "KIND",
    "MEETINGID",
    "GRAPHID",
    "DATECREATED",
    "FILENAME",
    "FILEEXT",
    "FILESIZE",
    "MIMETYPE",
    "MD5HASH",
    "SHA256HASH",
    "NATIVEPATH",
    "TEXTPATH",
    "MANIFEST",
];

/// Reads a production with Python's standard library: the DAT's raw framing, its rows (csv
/// with U+0014 and þ), every file's SHA-256, MD5 and size, and the EDRM XML.
const READER: &str = r#"
import csv, hashlib, json, os, sys
import xml.etree.ElementTree as ET
d = sys.argv[1]
raw = open(os.path.join(d, "loadfile.dat"), "rb").read()
rows = list(csv.reader(open(os.path.join(d, "loadfile.dat"), encoding="utf-8-sig", newline=""),
                       delimiter="\x14", quotechar="\u00fe"))
files = {}
for sub in ("NATIVES", "TEXT"):
    for name in sorted(os.listdir(os.path.join(d, sub))):
        b = open(os.path.join(d, sub, name), "rb").read()
        files[sub + "/" + name] = {"sha256": hashlib.sha256(b).hexdigest(),
                                   "md5": hashlib.md5(b).hexdigest(), "size": len(b)}
root = ET.parse(os.path.join(d, "edrm.xml")).getroot()
docs = {}
for doc in root.iter("Document"):
    docs[doc.get("DocID")] = {
        "mime": doc.get("MimeType"),
        "files": [{"type": f.get("FileType"), "path": e.get("FilePath"), "name": e.get("FileName"),
                   "size": e.get("FileSize"), "hash": e.get("Hash")}
                  for f in doc.iter("File") for e in f.iter("ExternalFile")],
        "custodian": [c.text for c in doc.iter("Custodian")],
        "tags": {t.get("TagName"): t.get("TagValue") for t in doc.iter("Tag")},
    }
edrm = {"root": root.tag, "major": root.get("MajorVersion"), "minor": root.get("MinorVersion"),
        "batches": len(root.findall("Batch")), "docs": docs,
        "rels": [[r.get("Type"), r.get("ParentDocId"), r.get("ChildDocId")] for r in root.iter("Relationship")]}
print(json.dumps({"bom": raw.startswith(b"\xef\xbb\xbf"), "crlf": raw.count(b"\r\n") == raw.count(b"\n"),
                  "lines": raw.count(b"\r\n"), "header": rows[0], "rows": rows[1:], "files": files, "edrm": edrm}))
"#;

/// A production as the independent readers see it.
struct Production {
    read: Value,
    /// Rows by GRAPHID, each as column -> value.
    rows: BTreeMap<String, BTreeMap<String, String>>,
}

fn read_production(dir: &Path) -> Production {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(READER)
        .arg(dir)
        .output()
        .expect("python3 runs (the emulators need it too)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read: Value = serde_json::from_slice(&out.stdout).expect("reader JSON");
    let mut rows = BTreeMap::new();
    for row in read["rows"].as_array().expect("rows") {
        let row: Vec<String> = serde_json::from_value(row.clone()).expect("strings");
        assert_eq!(row.len(), COLUMNS.len(), "{row:?}");
        let row: BTreeMap<String, String> = COLUMNS.iter().map(|c| (*c).to_owned()).zip(row).collect();
        rows.insert(row["GRAPHID"].clone(), row);
    }
    Production { read, rows }
}

async fn export(env: &Env, dir: &Path, filters: &[&str]) -> super::util::Run {
    let dir = dir.display().to_string();
    let mut args = vec!["export", "--json", "--out", dir.as_str()];
    args.extend_from_slice(filters);
    env.recarch(&args, &[KINDS]).await
}

async fn export_is_complete_and_checked(backend: Backend) {
    let Some(env) = Env::on(backend, recarch_graph_sim::SimConfig::default(), 2).await else {
        return;
    };
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    let ra = env.sim.add_recording(&a, 20_000);
    let ta = env.sim.add_transcript(&a, Some(&ra), 1_500);
    let ra2 = env.sim.add_recording(&a, 9_000);
    let rb = env.sim.add_recording(&b, 30_000);
    let tb = env.sim.add_transcript(&b, Some(&rb), 2_000);
    let tu = env.sim.add_transcript(&b, None, 1_200);
    let contact = env.sim.add_contact(&b, "contacts", "Ada Lovelace");
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);
    // A second version of the contact: the export carries the newest.
    env.sim
        .update_contact(&b, &env.sim.default_contact_folder(&b), &contact, "Ada King");
    // A contact deleted since: its newest version is the deletion.
    let gone = env.sim.add_contact(&a, "contacts", "Charles Babbage");
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);
    env.sim
        .remove_contact(&a, &env.sim.default_contact_folder(&a), &gone, true);
    env.recarch(&["run"], &[KINDS]).await.assert_code(0);
    let ids = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<String>>();

    // Everything.
    let dir = env.dir.path().join("production");
    let out = export(&env, &dir, &[]).await;
    out.assert_code(0);
    let summary: Value = serde_json::from_str(out.stdout.trim()).expect("summary JSON");
    assert_eq!(summary["documents"], 8, "{summary}");
    assert_eq!(summary["families"], 2, "{summary}");
    let p = read_production(&dir);
    assert_eq!(p.read["bom"], true);
    assert_eq!(p.read["crlf"], true);
    assert_eq!(p.read["lines"], 9, "header and 8 rows, each ending CRLF");
    assert_eq!(p.read["header"], serde_json::json!(COLUMNS));
    assert_eq!(
        p.rows.keys().cloned().collect::<BTreeSet<_>>(),
        ids(&[&ra.id, &ta.id, &ra2.id, &rb.id, &tb.id, &tu.id, &contact, &gone])
    );
    // Every native and text: the hashes and sizes the load file states, and the content
    // Graph served.
    let files = &p.read["files"];
    assert_eq!(
        files.as_object().expect("files").len(),
        8 + 3,
        "a native per document, a text per transcript: {files}"
    );
    for row in p.rows.values() {
        let native = &files[&row["NATIVEPATH"]];
        assert_eq!(native["sha256"], row["SHA256HASH"].as_str(), "{row:?}");
        assert_eq!(native["md5"], row["MD5HASH"].as_str(), "{row:?}");
        assert_eq!(native["size"].to_string(), row["FILESIZE"], "{row:?}");
        assert_eq!(row["DOCID"], row["BEGDOC"]);
        assert_eq!(row["DOCID"], row["ENDDOC"]);
        assert!(row["DOCID"].starts_with("REC") && row["DOCID"].len() == 11, "{row:?}");
        assert!(row["MANIFEST"].starts_with("manifests/"), "{row:?}");
        let ext = Path::new(&row["NATIVEPATH"]).extension().expect("extension");
        assert_eq!(ext.to_string_lossy(), row["FILEEXT"]);
        assert!(row["FILENAME"].ends_with(&format!(".{}", row["FILEEXT"])), "{row:?}");
    }
    for r in [&ra, &ra2, &rb] {
        let row = &p.rows[&r.id];
        assert_eq!(row["SHA256HASH"], env.sim.content_sha256(&r.id).expect("sha"));
        assert_eq!(row["FILEEXT"], "mp4");
        assert_eq!(row["MIMETYPE"], "video/mp4");
        assert_eq!(row["MEETINGID"], r.meeting_id);
        assert_eq!(row["KIND"], "recordings");
        assert_eq!(row["TEXTPATH"], "");
    }
    for t in [&ta, &tb, &tu] {
        let row = &p.rows[&t.id];
        let vtt = env.sim.transcript_content(&t.id).expect("vtt");
        assert_eq!(row["SHA256HASH"], sha256_hex(&vtt));
        assert_eq!(row["FILEEXT"], "vtt");
        // The spoken text: one `Speaker: words` line per turn, the VTT's speakers.
        let text = std::fs::read_to_string(dir.join(&row["TEXTPATH"])).expect("text");
        let vtt = String::from_utf8_lossy(&vtt);
        assert!(!text.is_empty());
        for line in text.split_terminator("\r\n") {
            let (speaker, words) = line.split_once(": ").expect("speaker: words");
            assert!(vtt.contains(&format!("<v {speaker}>")), "{speaker} speaks in the VTT");
            assert!(
                !words.is_empty() && !words.contains('<') && !words.contains("-->"),
                "{line}"
            );
        }
    }
    // The contact: its newest version, as JSON.
    let row = &p.rows[&contact];
    assert_eq!(row["FILEEXT"], "json");
    assert_eq!(row["KIND"], "contacts");
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join(&row["NATIVEPATH"])).expect("json")).expect("JSON");
    assert_eq!(json["displayName"], "Ada King", "{json}");
    // The deleted contact: its deletion as Graph listed it, flagged for the reviewer.
    let row = &p.rows[&gone];
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join(&row["NATIVEPATH"])).expect("json")).expect("JSON");
    assert!(json.get("@removed").is_some(), "{json}");
    // Families: each recording parents its paired transcript, which follows it.
    for (r, t) in [(&ra, &ta), (&rb, &tb)] {
        let (parent, child) = (&p.rows[&r.id], &p.rows[&t.id]);
        assert_eq!(child["PARENTID"], parent["DOCID"]);
        assert_eq!(parent["ATTACHIDS"], child["DOCID"]);
        let n = |row: &BTreeMap<String, String>| row["DOCID"][3..].parse::<u32>().expect("number");
        assert_eq!(n(child), n(parent) + 1, "a family's documents are consecutive");
    }
    for lone in [&ra2.id, &tu.id, &contact, &gone] {
        assert_eq!(p.rows[lone]["PARENTID"], "");
        assert_eq!(p.rows[lone]["ATTACHIDS"], "");
    }
    // `sha256sum -c` over NATIVES/ and TEXT/.
    let check = std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "hashes.sha256"])
        .current_dir(&dir)
        .output()
        .expect("sha256sum");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    assert_eq!(String::from_utf8_lossy(&check.stdout).matches(": OK").count(), 11);
    assert_eq!(std::fs::read(dir.join("loadfile.opt")).expect("opt"), b"");
    // EDRM XML: one Document per row, its native and text files, the families.
    let edrm = &p.read["edrm"];
    assert_eq!(
        (edrm["root"].as_str(), edrm["major"].as_str(), edrm["minor"].as_str()),
        (Some("Root"), Some("1"), Some("2"))
    );
    assert_eq!(edrm["batches"], 1);
    assert_eq!(edrm["docs"].as_object().expect("docs").len(), 8);
    for row in p.rows.values() {
        let doc = &edrm["docs"][&row["DOCID"]];
        assert_eq!(doc["mime"], row["MIMETYPE"].as_str());
        assert_eq!(doc["custodian"][0], row["CUSTODIAN"].as_str());
        let native = &doc["files"][0];
        assert_eq!(native["type"], "Native");
        assert_eq!(
            format!(
                "{}/{}",
                native["path"].as_str().unwrap_or_default(),
                native["name"].as_str().unwrap_or_default()
            ),
            row["NATIVEPATH"]
        );
        assert_eq!(native["hash"], row["MD5HASH"].as_str());
        let removed = (row["GRAPHID"] == gone).then_some("deleted");
        assert_eq!(doc["tags"]["#Removed"].as_str(), removed, "{doc}");
        assert_eq!(doc["tags"]["#HashSHA256"], row["SHA256HASH"].as_str());
        assert_eq!(
            doc["files"].as_array().map(Vec::len),
            Some(1 + usize::from(!row["TEXTPATH"].is_empty()))
        );
    }
    let rels: BTreeSet<(String, String)> = edrm["rels"]
        .as_array()
        .expect("rels")
        .iter()
        .map(|r| {
            assert_eq!(r[0], "Attachment");
            (
                r[1].as_str().unwrap_or_default().to_owned(),
                r[2].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let families: BTreeSet<(String, String)> = [(&ra, &ta), (&rb, &tb)]
        .iter()
        .map(|(r, t)| (p.rows[&r.id]["DOCID"].clone(), p.rows[&t.id]["DOCID"].clone()))
        .collect();
    assert_eq!(rels, families);
    // Custody: each document as archived and as re-read, and the export's ledger record,
    // which binds the load file's digest.
    let custody: Value =
        serde_json::from_slice(&std::fs::read(dir.join("custody.json")).expect("custody")).expect("JSON");
    assert_eq!(custody["archive"], env.open_archive().display_url());
    assert_eq!(custody["documents"].as_array().map(Vec::len), Some(8));
    for d in custody["documents"].as_array().expect("documents") {
        let row = &p.rows[d["graphId"].as_str().expect("graphId")];
        assert_eq!(d["docId"], row["DOCID"].as_str());
        assert_eq!(d["manifest"], row["MANIFEST"].as_str());
        assert_eq!(d["sha256Archived"], row["SHA256HASH"].as_str());
        assert_eq!(d["sha256Reread"], row["SHA256HASH"].as_str());
        let deleted = d["graphId"] == gone.as_str();
        assert_eq!(d["removed"].as_str(), deleted.then_some("deleted"), "{d}");
    }
    for field in ["host", "user", "startedAt", "finishedAt"] {
        assert!(custody[field].is_string(), "{field} in {custody}");
    }
    let record_key = custody["ledger"]["record"].as_str().expect("ledger record").to_owned();
    assert_eq!(summary["ledgerRecord"], record_key.as_str());
    let record: Value =
        serde_json::from_slice(&super::util::raw_get(env.open_archive().object_store().as_ref(), record_key).await)
            .expect("record");
    assert_eq!(record["event"], "export", "{record}");
    assert_eq!(record["details"]["documents"], 8);
    assert_eq!(
        record["details"]["files"]["loadfile.dat"],
        sha256_hex(&std::fs::read(dir.join("loadfile.dat")).expect("dat")).as_str()
    );
    assert!(!dir.join(".recarch-export-incomplete").exists());
    env.recarch(&["verify"], &[KINDS]).await.assert_code(0);
    // `ls`, `show` and `cat` on the same archive (local disk or S3).
    let listed = env.recarch(&["ls", "--json"], &[KINDS]).await;
    listed.assert_code(0);
    let listed: BTreeSet<String> = listed
        .stdout
        .lines()
        .map(|l| {
            let line = serde_json::from_str::<Value>(l).expect("JSON");
            // The members every line has (null for a contact's meeting and creation time).
            for key in super::util::LS_MEMBERS {
                assert!(line.get(key).is_some(), "{key} in {line}");
            }
            line["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(listed, p.rows.keys().cloned().collect::<BTreeSet<_>>());
    let shown = env.recarch(&["show", "--json", &rb.meeting_id], &[KINDS]).await;
    shown.assert_code(0);
    let shown: Value = serde_json::from_str(&shown.stdout).expect("JSON");
    assert_eq!(shown["items"].as_array().map(Vec::len), Some(2), "{shown}");
    let cat = tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"))
        .args(["cat", "--config"])
        .arg(env.config_path())
        .arg(&p.rows[&ra.id]["SHA256HASH"])
        .output()
        .await
        .expect("cat runs");
    assert_eq!(cat.status.code(), Some(0));
    assert_eq!(sha256_hex(&cat.stdout), p.rows[&ra.id]["SHA256HASH"]);

    // Each filter's exact set; a family is whole only when both are exported.
    let cases: Vec<(Vec<String>, BTreeSet<String>)> = vec![
        (
            vec!["--organizer".into(), b.clone(), "--kind".into(), "transcripts".into()],
            ids(&[&tb.id, &tu.id]),
        ),
        (vec!["--meeting".into(), ra.meeting_id.clone()], ids(&[&ra.id, &ta.id])),
        (vec!["--kind".into(), "contacts".into()], ids(&[&contact, &gone])),
        (
            vec!["--organizer".into(), a.clone(), "--kind".into(), "recordings".into()],
            ids(&[&ra.id, &ra2.id]),
        ),
    ];
    for (n, (filters, expected)) in cases.into_iter().enumerate() {
        let dir = env.dir.path().join(format!("filtered-{n}"));
        let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
        export(&env, &dir, &filters).await.assert_code(0);
        let p = read_production(&dir);
        assert_eq!(p.rows.keys().cloned().collect::<BTreeSet<_>>(), expected, "{filters:?}");
        let docids: Vec<&String> = p.rows.values().map(|r| &r["DOCID"]).collect();
        assert!(
            docids.iter().all(|d| d.as_str() <= "REC00000002"),
            "numbered from 1: {docids:?}"
        );
        if let Some(row) = p.rows.get(&tb.id) {
            assert_eq!(row["PARENTID"], "", "its recording is not in this production");
        }
    }

    // A non-empty target: exit 2, and what is there is left alone.
    let dat = std::fs::read(dir.join("loadfile.dat")).expect("dat");
    let again = export(&env, &dir, &[]).await;
    again.assert_code(2);
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
    assert_eq!(std::fs::read(dir.join("loadfile.dat")).expect("dat"), dat);

    // A corrupted blob stops the export with exit 1 naming it; the (empty) target stays empty.
    let sha = env.sim.content_sha256(&rb.id).expect("sha");
    let key = format!("blobs/sha256/{sha}");
    let store = env.open_archive().object_store().clone();
    let mut bytes = super::util::raw_get(store.as_ref(), key.clone()).await;
    bytes[1_000] ^= 0x20;
    if backend == Backend::Local {
        let path = env.archive().join(&key);
        let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644));
        std::fs::write(&path, &bytes).expect("corrupt");
    } else {
        super::util::raw_put(store.as_ref(), key.clone(), bytes).await;
    }
    let bad = env.dir.path().join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    let failed = export(&env, &bad, &[]).await;
    failed.assert_code(1);
    // `cat` says the same of that blob, after its bytes.
    let cat = tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"))
        .args(["cat", "--config"])
        .arg(env.config_path())
        .arg(&sha)
        .output()
        .await
        .expect("cat runs");
    assert_eq!(cat.status.code(), Some(1));
    assert_eq!(cat.stdout.len() as u64, rb.size);
    assert!(String::from_utf8_lossy(&cat.stderr).contains(&key));
    assert!(failed.stderr.contains(&key), "{}", failed.stderr);
    assert_eq!(
        std::fs::read_dir(&bad).expect("dir").count(),
        0,
        "nothing left in the target"
    );
    // Into an absent directory: it is not created.
    let absent = env.dir.path().join("absent");
    export(&env, &absent, &[]).await.assert_code(1);
    assert!(!absent.exists());
}

mod export_is_complete_and_checked {
    use super::super::util::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_local_disk() {
        super::export_is_complete_and_checked(Backend::Local).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_s3() {
        super::export_is_complete_and_checked(Backend::S3).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_usage_errors() {
    let env = Env::direct(1).await;
    let dir = env.dir.path().join("x");
    for (args, says) in [
        (vec!["--prefix", "A/B"], "--prefix"),
        (vec!["--kind", "videos"], "--kind"),
        (
            vec!["--from", "2026-02-01", "--to", "2026-01-01"],
            "the window is empty",
        ),
    ] {
        let out = export(&env, &dir, &args).await;
        out.assert_code(2);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(!dir.exists());
    }
    // A file where the directory should be.
    std::fs::write(&dir, b"x").expect("file");
    let out = export(&env, &dir, &[]).await;
    out.assert_code(2);
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
}
