//! `recarch demo`: the whole job, offline, against the built-in Graph simulator.
//!
//! Starts `recarch-graph-sim` on loopback with a small tenant — recordings, their transcripts,
//! contacts in a few folders, and recorded ad hoc calls — writes a real configuration file
//! archiving every kind, and drives the same code paths as `recarch run` and `recarch verify`: a first full
//! round, an incremental round after new recordings and transcripts appear and contacts
//! change (with a throttled request and a dropped connection on the way), a round with
//! nothing new, and a verification.

use std::path::{Path, PathBuf};

use recarch_graph_sim::{AdhocCallKind, ContentMode, GraphSim, SimConfig, Target};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::exit::{Exit, ExitError};
use crate::run::{self, Shard};
use crate::verify;

/// Organizers in the demo tenant.
const ORGANIZERS: usize = 3;
/// Recordings per organizer in the first round.
const FIRST_ROUND: usize = 8;
/// Recordings per organizer added before the incremental round.
const ADDED: usize = 2;

/// What was added to the simulated tenant: the numbers the story tells.
#[derive(Debug, Default)]
struct Added {
    recordings: usize,
    transcripts: usize,
    /// Ad hoc calls, and their recordings and transcripts.
    calls: usize,
    call_artifacts: usize,
}

/// Runs the demo into `out` (or a new temporary directory).
pub async fn demo(out: Option<PathBuf>) -> Result<Exit, ExitError> {
    let config_err = |e: anyhow::Error| ExitError::new(Exit::Config, e);
    let fatal = |e: anyhow::Error| ExitError::new(Exit::Fatal, e);
    let out = match out {
        Some(dir) => {
            if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
                return Err(config_err(anyhow::anyhow!(
                    "--out {}: the demo needs an empty or absent directory",
                    dir.display()
                )));
            }
            std::fs::create_dir_all(&dir)
                .map_err(|e| config_err(anyhow::anyhow!("--out {}: cannot create it: {e}", dir.display())))?;
            dir
        }
        None => tempfile::Builder::new()
            .prefix("recarch-demo-")
            .tempdir()
            .map_err(|e| fatal(anyhow::anyhow!("cannot create a temporary directory: {e}")))?
            .keep(),
    };
    let out = std::path::absolute(&out).unwrap_or(out);

    let sim = GraphSim::start(SimConfig {
        content_mode: ContentMode::Alternate,
        page_size: 5,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| fatal(anyhow::anyhow!("cannot start the graph simulator: {e}")))?;
    let organizers: Vec<String> = (0..ORGANIZERS).map(|_| sim.add_organizer()).collect();
    let mut n = 0u64;
    // Adds `count` meetings per organizer; what it added is what the story tells.
    let mut add = |sim: &GraphSim, count: usize| {
        let mut added = Added::default();
        for org in &organizers {
            for _ in 0..count {
                n += 1;
                // 1 to 4 MiB, varied so sizes differ.
                let size = (1 << 20) + (n * 389_231 % (3 << 20));
                let recording = sim.add_recording(org, size);
                added.recordings += 1;
                // Every other meeting was transcribed.
                if n.is_multiple_of(2) {
                    sim.add_transcript(org, Some(&recording), 4_000 + n * 733 % 20_000);
                    added.transcripts += 1;
                }
            }
            // A recorded call per organizer and round, of the last few minutes (inside the
            // window the next run lists): a transcribed 1:1 call, then a group or PSTN call.
            n += 1;
            let kind = match (count, n % 2) {
                (FIRST_ROUND, _) => AdhocCallKind::OneToOne,
                (_, 0) => AdhocCallKind::Group,
                _ => AdhocCallKind::Pstn,
            };
            let call = sim.add_adhoc_call(org, kind);
            let created = chrono::Utc::now() - chrono::Duration::minutes(5);
            let recording = sim.add_adhoc_recording(org, &call, (1 << 20) + n * 104_729 % (1 << 20), Some(created));
            added.calls += 1;
            added.call_artifacts += 1;
            if kind == AdhocCallKind::OneToOne {
                sim.add_adhoc_transcript(org, &call, Some(&recording), 3_000, Some(created));
                added.call_artifacts += 1;
            }
        }
        added
    };
    let first_added = add(&sim, FIRST_ROUND);
    // Each organizer's mailbox: the default contact folder, a folder in it and one below that.
    let mut contacts: Vec<(String, String, String)> = Vec::new();
    let mut folders = 0;
    for (i, org) in organizers.iter().enumerate() {
        let clients = sim.add_contact_folder(org, "Clients", None);
        let key = sim.add_contact_folder(org, "Key accounts", Some(&clients));
        folders += 3;
        for (folder, name) in [
            ("contacts", "Ada Lovelace"),
            ("contacts", "Alan Turing"),
            (clients.as_str(), "Grace Hopper"),
            (key.as_str(), "Edsger Dijkstra"),
        ] {
            let folder = if folder == "contacts" {
                sim.default_contact_folder(org)
            } else {
                folder.to_owned()
            };
            let id = sim.add_contact(org, &folder, &format!("{name} {}", i + 1));
            contacts.push((org.clone(), folder, id));
        }
    }

    let config_path = write_config(&out, &sim, &organizers).map_err(fatal)?;
    let env: Vec<(String, String)> = Vec::new();
    let config = Config::load(&config_path, &env).map_err(|e| config_err(e.into()))?;
    let shard = Shard { index: 0, count: 1 };

    crate::outln!(
        "recarch demo: graph simulator at {} (downloads redirected to {})",
        sim.base_url(),
        sim.download_origin()
    )?;
    crate::outln!("recarch demo: archive in {}", out.join("archive").display())?;
    crate::outln!()?;
    crate::outln!(
        "1. first run: a full delta round over {ORGANIZERS} organizers: {} recordings, {} transcripts, {} contacts in {folders} folders; {} ad hoc calls with {} recordings and transcripts",
        first_added.recordings,
        first_added.transcripts,
        contacts.len(),
        first_added.calls,
        first_added.call_artifacts,
    )?;
    let first = run::run(&config, shard, CancellationToken::new()).await?;
    crate::report::print_summary(&first)?;

    let added = add(&sim, ADDED);
    // A contact renamed and one deleted: a new version and a tombstone version.
    let (org, folder, id) = &contacts[0];
    sim.update_contact(org, folder, id, "Ada King");
    let (org, folder, id) = &contacts[1];
    sim.remove_contact(org, folder, id, true);
    sim.faults().throttle(Target::Content, 429, Some(1), 1);
    sim.faults().drop_mid_body(1);
    crate::outln!()?;
    crate::outln!(
        "2. {} new recordings and {} transcripts appear, {} calls are recorded, a contact is renamed and one deleted; graph throttles one request (429, Retry-After: 1) and drops one connection mid-body",
        added.recordings,
        added.transcripts,
        added.calls
    )?;
    let second = run::run(&config, shard, CancellationToken::new()).await?;
    crate::report::print_summary(&second)?;

    crate::outln!()?;
    crate::outln!(
        "3. nothing new: the saved deltaLinks return nothing; the calls' windows (an hour of overlap) list the last calls again, and nothing is downloaded"
    )?;
    let third = run::run(&config, shard, CancellationToken::new()).await?;
    crate::report::print_summary(&third)?;

    crate::outln!()?;
    crate::outln!("4. verify: every manifest checked, every blob re-hashed")?;
    let archive = run::open_archive(&config)?;
    let report = verify::verify(&archive, None).await?;
    for p in &report.problems {
        crate::outln!("problem: {p}")?;
    }
    crate::outln!(
        "verify: {} manifests, {} blobs re-hashed ({:.1} MiB), {} problems",
        report.manifests,
        report.rehashed,
        report.rehashed_bytes as f64 / 1048576.0,
        report.problems.len()
    )?;
    let stats = sim.stats();
    crate::outln!()?;
    crate::outln!(
        "graph saw {} token requests, {} delta requests, {} call listings, {} meeting recording downloads, {} call downloads; the download host saw {} requests carrying a token",
        stats.token_requests,
        stats.delta_requests + stats.transcript_delta_requests,
        stats.adhoc_recording_list_requests + stats.adhoc_transcript_list_requests,
        stats.content_requests,
        stats.adhoc_content_requests,
        stats.auth_header_on_download_origin
    )?;
    crate::outln!()?;
    crate::outln!("Look around:")?;
    crate::outln!(
        "  {}/archive/blobs/sha256/        content (recordings, transcripts, contact versions), named by its SHA-256",
        out.display()
    )?;
    crate::outln!(
        "  {}/archive/manifests/recordings/ one JSON manifest per recording (transcripts/ alike)",
        out.display()
    )?;
    crate::outln!(
        "  {}/archive/manifests/contacts/   one manifest per contact, every version listed",
        out.display()
    )?;
    crate::outln!(
        "  {}/archive/meetings/             one index per meeting: its recordings and transcripts, paired",
        out.display()
    )?;
    crate::outln!(
        "  {}/archive/calls/                one index per ad hoc call: its recordings and transcripts, paired",
        out.display()
    )?;
    crate::outln!(
        "  {}/archive/state/                delta checkpoints, call watermarks and retry queues, per kind",
        out.display()
    )?;
    crate::outln!("  {}/archive/runs/                 one report per run", out.display())?;
    // The binary as it was started (under `cargo run` it is not on PATH), so these work as printed.
    let me = std::env::current_exe()
        .ok()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "recarch".into());
    crate::outln!("  {me} status --config {}", config_path.display())?;
    crate::outln!("  {me} verify --config {}", config_path.display())?;
    // Every item names its meeting's subject and its organizer (see `crate::enrich`).
    crate::outln!(
        "  {me} ls --config {}      meeting subjects and organizer names, not only GUIDs",
        config_path.display()
    )?;

    let all_good = first.exit_code == 0
        && second.exit_code == 0
        && third.exit_code == 0
        && third.counts.archived == 0
        && report.problems.is_empty()
        && stats.auth_header_on_download_origin == 0;
    Ok(if all_good { Exit::Ok } else { Exit::Partial })
}

/// Writes the demo's configuration file (and the simulator's client secret beside it).
fn write_config(out: &Path, sim: &GraphSim, organizers: &[String]) -> anyhow::Result<PathBuf> {
    let secret_path = out.join("client-secret");
    std::fs::write(&secret_path, &sim.config().client_secret)?;
    let archive = out.join("archive");
    std::fs::create_dir_all(&archive)?;
    let url = url::Url::from_directory_path(&archive)
        .map_err(|()| anyhow::anyhow!("{} is not an absolute path", archive.display()))?;
    let organizers = organizers
        .iter()
        .map(|o| format!("\"{o}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        r#"# Written by `recarch demo`: the built-in Graph simulator, a local-disk archive.
[graph]
base_url = "{base}"
authority_url = "{authority}"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret_file = "client-secret"

[source]
organizers = [{organizers}]
kinds = ["recordings", "transcripts", "contacts", "adhoc_recordings", "adhoc_transcripts"]

[store]
url = "{url}"

[fetch]
concurrency = 8
max_attempts = 6
"#,
        base = sim.base_url(),
        authority = sim.authority_url(),
        tenant = sim.config().tenant_id,
        client = sim.config().client_id,
    );
    let path = out.join("recarch.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}
