//! A simulated tenant with every kind (recordings, their transcripts, contacts in nested
//! folders), archived by the `recarch` binary as users run it: a fresh process per pass
//! against the Graph simulator (here in the bench's process, on loopback), into a fresh
//! local-disk archive. Passes: the first full round, an incremental round after new meetings
//! and contact changes (renames and deletions), a round with nothing new, then `verify`. For
//! each: wall time, CPU (user + system) and peak RSS of the child, and what it archived per
//! kind.
//!
//! `cargo bench --bench tenant [-- --organizers N --recordings R --size BYTES --contacts C]`;
//! under `cargo test` (no `--bench`) a tiny tenant keeps the benchmark working. Results:
//! `docs/benchmarks.md`.

use std::path::Path;

use recarch_graph_sim::{ContentMode, GraphSim, SimConfig};

mod common;

struct Args {
    organizers: usize,
    recordings: usize,
    size: u64,
    contacts: usize,
    concurrency: usize,
}

fn parse_args() -> Result<Args, String> {
    let (raw, benching) = common::command_line();
    let mut args = if benching {
        Args {
            organizers: 100,
            recordings: 4,
            size: 1 << 20,
            contacts: 20,
            concurrency: 8,
        }
    } else {
        Args {
            organizers: 3,
            recordings: 2,
            size: 64 << 10,
            contacts: 4,
            concurrency: 2,
        }
    };
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| common::number(&mut it, name);
        match a.as_str() {
            "--organizers" => args.organizers = value(a)? as usize,
            "--recordings" => args.recordings = value(a)? as usize,
            "--size" => args.size = value(a)?,
            "--contacts" => args.contacts = value(a)? as usize,
            "--concurrency" => args.concurrency = value(a)? as usize,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// What one `recarch` process cost.
struct Cost {
    wall: f64,
    cpu: f64,
    peak_rss_mib: f64,
    code: i32,
    stdout: String,
}

/// Measures one child with `os.wait4` (the workspace forbids `unsafe`, so no FFI here): wall
/// time, user + system CPU and peak RSS of that process alone; the child's stdout passes
/// through, the figures follow on the last line.
const MEASURE: &str = r#"
import os, subprocess, sys, time
start = time.monotonic()
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
wall = time.monotonic() - start
sys.stdout.flush()
print("MEASURED", os.waitstatus_to_exitcode(status), wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
"#;

/// Runs `recarch <args>` and measures it.
fn measure(args: &[&str]) -> Cost {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(MEASURE)
        .arg(env!("CARGO_BIN_EXE_recarch"))
        .args(args)
        .env("RECARCH_LOG", "warn")
        .output()
        .expect("python3 runs (it measures the child)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let figures: Vec<f64> = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("MEASURED "))
        .expect("the measurement line")
        .split(' ')
        .map(|v| v.parse().expect("a number"))
        .collect();
    Cost {
        code: figures[0] as i32,
        wall: figures[1],
        cpu: figures[2],
        peak_rss_mib: figures[3] / 1024.0,
        stdout: stdout
            .lines()
            .filter(|l| !l.starts_with("MEASURED "))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The newest run report (by `finishedAt`: names of runs within one second may not sort).
fn last_report(archive: &Path) -> serde_json::Value {
    std::fs::read_dir(archive.join("runs"))
        .expect("runs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .map(|p| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(p).expect("read")).expect("JSON"))
        .max_by(|a, b| a["finishedAt"].as_str().cmp(&b["finishedAt"].as_str()))
        .expect("a report")
}

/// Files and bytes under `dir` (one level: `ledger/`, `catalog/`).
fn files_and_bytes(dir: &Path) -> (u64, u64) {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
        })
        .unwrap_or((0, 0))
}

fn main() {
    let args = common::args_or_exit(parse_args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = rt
        .block_on(GraphSim::start(SimConfig {
            content_mode: ContentMode::Alternate,
            page_size: 50,
            ..SimConfig::default()
        }))
        .expect("simulator");
    let organizers: Vec<String> = (0..args.organizers).map(|_| sim.add_organizer()).collect();
    let mut contacts = Vec::new();
    for org in &organizers {
        for _ in 0..args.recordings {
            let recording = sim.add_recording(org, args.size);
            sim.add_transcript(org, Some(&recording), 20_000);
        }
        let default = sim.default_contact_folder(org);
        let top = sim.add_contact_folder(org, "Clients", None);
        let nested = sim.add_contact_folder(org, "Key accounts", Some(&top));
        let folders = [default, top, nested];
        for i in 0..args.contacts {
            let folder = &folders[i % folders.len()];
            let id = sim.add_contact(org, folder, &format!("Contact {i} of {}", &org[..8]));
            contacts.push((org.clone(), folder.clone(), id));
        }
    }
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).expect("archive dir");
    std::fs::write(dir.path().join("secret"), &sim.config().client_secret).expect("secret");
    let config = dir.path().join("recarch.toml");
    let list = organizers
        .iter()
        .map(|o| format!("\"{o}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &config,
        format!(
            "{}\n[source]\norganizers = [{list}]\nkinds = [\"recordings\", \"transcripts\", \"contacts\"]\n\n[store]\nurl = \"file://{}\"\n\n[fetch]\nconcurrency = {}\n",
            common::graph_section(&sim),
            archive.display(),
            args.concurrency,
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    println!(
        "tenant: {} organizers, each {} recordings of {} KiB with a transcript, {} contacts in 3 folders; concurrency {}",
        args.organizers,
        args.recordings,
        args.size >> 10,
        args.contacts,
        args.concurrency
    );
    println!(
        "| pass | exit | wall s | CPU s | peak RSS MiB | recordings | transcripts | contacts (removed) | graph requests | ledger records (KiB) | ledger s (summed) | catalog segments (KiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    // What the ledger and the catalog had before the pass, to show what it added.
    let before = std::cell::Cell::new(((0u64, 0u64), (0u64, 0u64)));
    let row = |name: &str, cost: &Cost| {
        let r = last_report(&archive);
        let kind = |k: &str, f: &str| r["kinds"][k][f].as_u64().unwrap_or(0);
        let (ledger, catalog) = (
            files_and_bytes(&archive.join("ledger")),
            files_and_bytes(&archive.join("catalog")),
        );
        let (old_ledger, old_catalog) = before.replace((ledger, catalog));
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.1} | {} | {} | {} ({}) | {} | {} ({:.0}) | {:.2} | {} ({:.0}) |",
            cost.code,
            cost.wall,
            cost.cpu,
            cost.peak_rss_mib,
            kind("recordings", "archived"),
            kind("transcripts", "archived"),
            kind("contacts", "archived"),
            kind("contacts", "removed"),
            r["graphRequests"],
            ledger.0 - old_ledger.0,
            (ledger.1 - old_ledger.1) as f64 / 1024.0,
            r["ledger"]["seconds"].as_f64().unwrap_or(0.0),
            catalog.0 - old_catalog.0,
            (catalog.1 - old_catalog.1) as f64 / 1024.0,
        );
        cost.code
    };
    let first = measure(&["run", "--config", &config]);
    let mut codes = vec![row("first (full rounds)", &first)];
    // New meetings for every organizer, and contact changes: a rename per organizer and a
    // deletion every other organizer.
    for (i, org) in organizers.iter().enumerate() {
        let recording = sim.add_recording(org, args.size);
        sim.add_transcript(org, Some(&recording), 20_000);
        let (_, folder, id) = &contacts[i * args.contacts];
        sim.update_contact(org, folder, id, "Renamed");
        if i % 2 == 0 && args.contacts > 1 {
            let (_, folder, id) = &contacts[i * args.contacts + 1];
            sim.remove_contact(org, folder, id, true);
        }
    }
    let second = measure(&["run", "--config", &config]);
    codes.push(row("incremental", &second));
    let third = measure(&["run", "--config", &config]);
    codes.push(row("nothing new", &third));
    let verify = measure(&["verify", "--config", &config]);
    println!(
        "| verify | {} | {:.2} | {:.2} | {:.1} | {} |  |  |  |  |  |  |",
        verify.code,
        verify.wall,
        verify.cpu,
        verify.peak_rss_mib,
        verify.stdout.lines().last().unwrap_or_default()
    );
    codes.push(verify.code);
    if codes.iter().any(|c| *c != 0) {
        eprintln!("a pass did not exit 0: {codes:?}");
        std::process::exit(1);
    }
}
