//! Scale benchmark for `recarch verify` and `recarch status`, run as users run them: the built
//! binary in a fresh process, against a synthetic local-disk archive.
//!
//! `cargo bench --bench verify_status [-- --blobs N[,N...] --organizers N --dir PATH
//! --recarch PATH --baseline PATH]`
//!
//! - **verify**: writes `N` tiny blobs (16-64 bytes) and one recording manifest for each
//!   (the README's manifest shape, spread over 100 organizers) straight into the archive layout with
//!   `std::fs`, then runs `recarch verify --config …` and reports its wall time and peak RSS.
//!   Several sizes, ascending, grow one archive (`--blobs 100000,1000000`), which shows
//!   whether the peak RSS grows with the archive. Default 1 000 000.
//! - **status**: writes `--organizers` (default 10 000) organizer GUIDs to an
//!   `organizers_file` and a state document for each (`state/recordings/<org>.json`,
//!   serialized from `recarch_store::OrganizerState`: a delta checkpoint; and for one organizer
//!   in a hundred a queued item, as its own queue document), then runs
//!   `recarch status --config …` and reports its wall time and peak RSS.
//!
//! Peak RSS is the child's `ru_maxrss` as `/usr/bin/time -f %M` reports it, or, without GNU
//! time, `VmHWM` polled from `/proc/<pid>/status`. The binary is the one Cargo builds for this
//! benchmark (`CARGO_BIN_EXE_recarch`: the release profile under `cargo bench`); `--recarch
//! PATH` measures another build, and `--baseline PATH` a second one on the same archives
//! (an older commit's, say, for a before/after comparison). Files go to a temporary
//! directory, removed afterwards, or to `--dir`, kept. The blobs and manifests are in the page
//! cache when verify reads them. Under `cargo test` (no `--bench` argument) it runs at a smoke
//! size.
//! Results: `docs/benchmarks.md`.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::Instant;

use recarch_store::{Checkpoint, Kind, LinkKind, OrganizerId, OrganizerState, QueuedItem};
use sha2::{Digest, Sha256};

mod common;

/// Organizers the verify archive's manifests are spread over.
const MANIFEST_ORGANIZERS: u64 = 100;
/// Threads writing the synthetic archive.
const WRITERS: u64 = 2;

struct Args {
    /// Archive sizes to verify, ascending; 0 skips verify.
    blobs: Vec<u64>,
    /// Organizers for status; 0 skips status.
    organizers: u64,
    /// Where to build the archives (default: a temporary directory).
    dir: Option<PathBuf>,
    /// The binary measured.
    recarch: PathBuf,
    /// Another build measured on the same archives, for a before/after comparison.
    baseline: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let (raw, benching) = common::command_line();
    let mut args = Args {
        blobs: vec![if benching { 1_000_000 } else { 2_000 }],
        organizers: if benching { 10_000 } else { 50 },
        dir: None,
        recarch: PathBuf::from(env!("CARGO_BIN_EXE_recarch")),
        baseline: None,
    };
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| common::value(&mut it, name).cloned();
        let number = |name: &str, v: &str| v.trim().parse::<u64>().map_err(|e| format!("{name} {v}: {e}"));
        match a.as_str() {
            "--blobs" => {
                let v = value("--blobs")?;
                args.blobs = v.split(',').map(|n| number("--blobs", n)).collect::<Result<_, _>>()?;
                args.blobs.sort_unstable();
            }
            "--organizers" => args.organizers = number("--organizers", &value("--organizers")?)?,
            "--dir" => args.dir = Some(PathBuf::from(value("--dir")?)),
            "--recarch" => args.recarch = PathBuf::from(value("--recarch")?),
            "--baseline" => args.baseline = Some(PathBuf::from(value("--baseline")?)),
            _ => {}
        }
    }
    Ok(args)
}

fn main() {
    let args = common::args_or_exit(parse_args);
    let (work, _temp) = common::work_dir(args.dir.as_deref(), "recarch-bench-verify-");
    println!("recarch: {}", args.recarch.display());
    if args.blobs.iter().any(|&n| n > 0) {
        bench_verify(&args, &work);
    }
    if args.organizers > 0 {
        bench_status(&args, &work);
    }
    if args.dir.is_none() {
        println!("removing {} …", work.display());
    }
}

// ------------------------------------------------------------------- verify

fn bench_verify(args: &Args, work: &Path) {
    let archive = work.join("verify-archive");
    let config = work.join("verify.toml");
    write_config(
        &config,
        &archive,
        "organizers = [\"00000000-0000-4000-8000-000000000000\"]",
    );
    let mut made = 0;
    for &n in args.blobs.iter().filter(|&&n| n > 0) {
        let started = Instant::now();
        write_recordings(&archive, made, n);
        println!(
            "wrote {} blobs and manifests in {:.1} s ({} in all)",
            n - made,
            started.elapsed().as_secs_f64(),
            n
        );
        made = n;
        // The ledger and catalog of an archive written by hand: logged anew (a `recover`
        // record per 10 000 objects, and catalog segments), as the first run of an archive
        // made before the ledger does.
        for dir in ["ledger", "catalog"] {
            let _ = std::fs::remove_dir_all(archive.join(dir));
        }
        let logged = common::measure(
            &args.recarch,
            &["catalog", "--config", &config.display().to_string(), "rebuild"],
        );
        assert!(
            logged.output.status.success(),
            "catalog rebuild at {n}: {}",
            String::from_utf8_lossy(&logged.output.stderr)
        );
        println!(
            "ledger + catalog of {n} manifests written in {:.2} s, peak RSS {:.1} MiB",
            logged.wall.as_secs_f64(),
            logged.peak_kib as f64 / 1024.0
        );
        let binaries = std::iter::once(("verify", &args.recarch)).chain(args.baseline.iter().map(|b| ("baseline", b)));
        for (label, recarch) in binaries {
            let run = common::measure(recarch, &["verify", "--config", &config.display().to_string()]);
            let summary = String::from_utf8_lossy(&run.output.stdout);
            let expected = format!("{n} manifests, {n} blobs, {n} re-hashed");
            assert!(
                run.output.status.success() && summary.contains(&expected) && summary.contains(" 0 problems"),
                "{label} at {n}: {:?}\n{summary}\n{}",
                run.output.status,
                String::from_utf8_lossy(&run.output.stderr)
            );
            println!(
                "{label:<8} {n:>9} blobs + manifests: {:>7.2} s wall, {:>7.0} items/s, peak RSS {:>6.1} MiB ({})",
                run.wall.as_secs_f64(),
                n as f64 / run.wall.as_secs_f64(),
                run.peak_kib as f64 / 1024.0,
                run.rss_source
            );
        }
    }
}

/// Blob `i`: 16 to 64 bytes, unique to `i`.
fn blob_bytes(i: u64) -> Vec<u8> {
    let mut bytes = format!("rec {i:>11}:").into_bytes();
    bytes.resize(16 + (i % 49) as usize, b'.');
    bytes
}

fn organizer(n: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", n >> 16, n & 0xffff)
}

/// Writes blobs and manifests `from..to` in the archive layout, on [`WRITERS`] threads.
fn write_recordings(archive: &Path, from: u64, to: u64) {
    let blobs = archive.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blobs dir");
    for o in 0..MANIFEST_ORGANIZERS {
        std::fs::create_dir_all(archive.join(format!("manifests/recordings/{}", organizer(o)))).expect("manifests dir");
    }
    std::thread::scope(|scope| {
        for t in 0..WRITERS {
            let blobs = &blobs;
            scope.spawn(move || {
                for i in (from..to).filter(|i| i % WRITERS == t) {
                    let body = blob_bytes(i);
                    let sha = hex::encode(Sha256::digest(&body));
                    std::fs::write(blobs.join(&sha), &body).expect("write blob");
                    let org = organizer(i % MANIFEST_ORGANIZERS);
                    let id = format!("MSO{i:010}/rec+{i}=");
                    let key = hex::encode(Sha256::digest(id.as_bytes()));
                    let manifest = manifest_json(&id, &org, &sha, body.len());
                    let path = archive.join(format!("manifests/recordings/{org}/{key}.json"));
                    std::fs::write(path, manifest).expect("write manifest");
                }
            });
        }
    });
}

/// A manifest as `recarch run` writes it (README, "The archive"), with a Graph item of
/// realistic size.
fn manifest_json(id: &str, org: &str, sha: &str, size: usize) -> Vec<u8> {
    let created = "2026-11-02T09:30:00.1234567Z";
    let graph = serde_json::json!({
        "id": id,
        "meetingId": format!("MSp{id}"),
        "meetingOrganizer": {"user": {"id": org, "tenantId": "2f6c2a4e-0000-4000-8000-7d8e9f0a1b2c"}},
        "createdDateTime": created,
        "endDateTime": "2026-11-02T10:30:00.1234567Z",
        "recordingContentUrl": format!("https://graph.microsoft.com/v1.0/users/{org}/onlineMeetings/MSp{id}/recordings/{id}/content"),
        "contentCorrelationId": "c0ffee00-0000-4000-8000-000000000000",
    });
    let manifest = serde_json::json!({
        "schema": "recarch.manifest.v1",
        "kind": "callRecording",
        "id": id,
        "meetingId": format!("MSp{id}"),
        "organizerId": org,
        "createdDateTime": created,
        "content": {"sha256": sha, "size": size, "mediaType": "video/mp4", "blob": format!("blobs/sha256/{sha}")},
        "archivedAt": "2026-11-02T11:00:00Z",
        "graph": graph,
    });
    serde_json::to_vec_pretty(&manifest).expect("json")
}

// ------------------------------------------------------------------- status

fn bench_status(args: &Args, work: &Path) {
    let archive = work.join("status-archive");
    let states = archive.join("state/recordings");
    std::fs::create_dir_all(&states).expect("state dir");
    let list = work.join("organizers.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&list).expect("organizers file"));
    writeln!(file, "# {} organizers", args.organizers).expect("write");
    let started = Instant::now();
    for n in 0..args.organizers {
        let org = OrganizerId::parse(&organizer(1_000_000 + n)).expect("valid GUID");
        writeln!(file, "{org}").expect("write");
        let mut state = OrganizerState::new(Kind::Recordings, org.clone());
        state.set_checkpoint(None, Some(Checkpoint {
            kind: LinkKind::Delta,
            link: format!(
                "https://graph.microsoft.com/v1.0/users/{org}/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{org}')/delta?$deltatoken=Dt{n:040}"
            ),
        }));
        state.rounds_completed = 12;
        if n % 100 == 0 {
            // One queued item per hundred organizers, as its own queue document.
            let id = format!("MSO{n:010}");
            let item = QueuedItem::first_failure(
                id.clone(),
                serde_json::json!({"id": id}),
                recarch_store::FailureClass::Transient,
                "503 Service Unavailable",
            );
            let mut doc = serde_json::to_value(&item).expect("json");
            doc["schema"] = "recarch.queued.v1".into();
            doc["kind"] = "recordings".into();
            doc["organizerId"] = org.as_str().into();
            let queue = states.join(org.as_str()).join("queue");
            std::fs::create_dir_all(&queue).expect("queue dir");
            std::fs::write(
                queue.join(format!("{}.json", recarch_store::item_key(&id))),
                serde_json::to_vec_pretty(&doc).expect("json"),
            )
            .expect("write queue entry");
        }
        let json = serde_json::to_vec_pretty(&state).expect("json");
        std::fs::write(states.join(format!("{org}.json")), json).expect("write state");
    }
    file.flush().expect("flush");
    drop(file);
    println!(
        "wrote {} organizer states in {:.1} s",
        args.organizers,
        started.elapsed().as_secs_f64()
    );
    let config = work.join("status.toml");
    write_config(&config, &archive, &format!("organizers_file = \"{}\"", list.display()));
    let run = common::measure(&args.recarch, &["status", "--config", &config.display().to_string()]);
    assert!(
        run.output.status.success(),
        "status: {:?}\n{}",
        run.output.status,
        String::from_utf8_lossy(&run.output.stderr)
    );
    let lines = run.output.stdout.iter().filter(|&&b| b == b'\n').count();
    println!(
        "status  {:>9} organizers:         {:>7.2} s wall, peak RSS {:>6.1} MiB ({}), {lines} lines of output",
        args.organizers,
        run.wall.as_secs_f64(),
        run.peak_kib as f64 / 1024.0,
        run.rss_source
    );
}

// ---------------------------------------------------------------- measuring

fn write_config(path: &Path, archive: &Path, organizers: &str) {
    std::fs::create_dir_all(archive).expect("archive dir");
    let url = url::Url::from_directory_path(archive).expect("absolute archive path");
    let toml = format!(
        "[graph]\ntenant_id = \"2f6c2a4e-0000-4000-8000-7d8e9f0a1b2c\"\nclient_id = \"3a7d3b5f-0000-4000-8000-8e9f0a1b2c3d\"\n\n[source]\n{organizers}\n\n[store]\nurl = \"{url}\"\n"
    );
    std::fs::write(path, toml).expect("write config");
}
