//! What an operator reads is true: every command that prints ends quietly when whoever reads
//! its stdout goes away (`recarch status | head -1`), each `--help` names what `recarch`
//! archives and only the options that apply, and the demo's story tells the counts it reports.

use std::process::Stdio;

use recarch_graph_sim::{ContentMode, SimConfig};
use tokio::io::AsyncBufReadExt as _;

use super::util::{Env, Run, last_report, recarch};

fn sim_config() -> SimConfig {
    SimConfig {
        content_mode: ContentMode::Direct,
        page_size: 3,
        ..SimConfig::default()
    }
}

/// How one invocation ended when its stdout was a pipe closed early.
#[derive(Debug)]
struct Closed {
    code: Option<i32>,
    /// The lines read before the pipe was closed.
    read: String,
    stderr: String,
}

impl Closed {
    /// Ended with the command's own exit code `code` (a closed stdout changes nothing about
    /// its verdict), and nothing on stderr about stdout (no panic, no "internal error", no
    /// "Broken pipe", no error line).
    fn assert_quiet(&self, what: &str, code: i32) {
        assert_eq!(self.code, Some(code), "{what}: exit code; stderr:\n{}", self.stderr);
        for needle in [
            "internal error",
            "Broken pipe",
            "broken pipe",
            "panicked",
            "stdout",
            "error:",
        ] {
            assert!(
                !self.stderr.contains(needle),
                "{what}: {needle:?} on stderr:\n{}",
                self.stderr
            );
        }
    }
}

/// Runs `recarch <args>` with its stdout a pipe whose reader reads `lines` lines and then
/// closes it; with `lines == 0` the reader is closed before the binary starts, so that its
/// very first write finds no reader.
async fn with_stdout_closed_after(args: &[String], lines: usize) -> Closed {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"));
    cmd.args(args)
        .env("RECARCH_LOG", "info")
        .env_remove("RECARCH_CLIENT_SECRET")
        .env_remove("RECARCH_PROGRESS")
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut read = String::new();
    let child = if lines == 0 {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        cmd.stdout(writer).spawn().expect("binary starts")
    } else {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("binary starts");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        for _ in 0..lines {
            if stdout.read_line(&mut read).await.expect("read stdout") == 0 {
                break;
            }
        }
        // The reader goes away, like `head` after its lines.
        drop(stdout);
        child
    };
    let out = child.wait_with_output().await.expect("binary ends");
    Closed {
        code: out.status.code(),
        read,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `args` then `--config <env's file>`.
fn with_config(env: &Env, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push("--config".into());
    all.push(env.config_path().display().to_string());
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_status_json_end_quietly_when_the_reader_goes_away() {
    let mut env = Env::new(sim_config(), 1).await;
    // Enough organizers that the status does not fit in a pipe's buffer (64 KiB on Linux):
    // its writes go on after the reader has gone.
    env.organizers
        .extend((1..4000u32).map(|i| format!("{i:08x}-0000-4000-8000-{:012x}", u64::from(i) * 7919)));
    env.write_config("");
    for args in [&["status"][..], &["status", "--json"]] {
        let whole = env.recarch(args, &[]).await;
        whole.assert_code(0);
        assert!(
            whole.stdout.len() > 4 * 64 * 1024,
            "{args:?} prints {} bytes: too few to outgrow a pipe's buffer",
            whole.stdout.len()
        );
        let closed = with_stdout_closed_after(&with_config(&env, args), 1).await;
        closed.assert_quiet(&format!("{args:?} | head -1"), 0);
        let first = whole.stdout.lines().next().expect("a first line");
        assert_eq!(
            closed.read.trim_end(),
            first,
            "{args:?}: the line read is the first one"
        );
        with_stdout_closed_after(&with_config(&env, args), 0)
            .await
            .assert_quiet(&format!("{args:?} > closed pipe"), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_verify_end_quietly_when_stdout_is_closed() {
    let env = Env::new(sim_config(), 1).await;
    let org = env.organizers[0].clone();
    let recordings: Vec<_> = (0..3).map(|i| env.sim.add_recording(&org, 20_000 + i)).collect();

    let run = with_stdout_closed_after(&with_config(&env, &["run"]), 0).await;
    run.assert_quiet("run > closed pipe", 0);
    // The pass itself was done: only its summary had nobody to read it.
    let report = last_report(&env);
    assert_eq!(
        (report["archived"].as_u64(), report["exitCode"].as_u64()),
        (Some(3), Some(0)),
        "{report}"
    );

    with_stdout_closed_after(&with_config(&env, &["verify"]), 0)
        .await
        .assert_quiet("verify > closed pipe", 0);

    // With problems to print as they are found, the first of them meets the closed pipe.
    let blob = env.archive().join(format!(
        "blobs/sha256/{}",
        env.sim.content_sha256(&recordings[0].id).expect("known")
    ));
    std::fs::remove_file(blob).expect("remove a blob");
    let whole = env.recarch(&["verify"], &[]).await;
    whole.assert_code(1);
    assert!(whole.stdout.starts_with("problem: missing blob"), "{}", whole.stdout);
    with_stdout_closed_after(&with_config(&env, &["verify"]), 0)
        .await
        .assert_quiet("verify with problems > closed pipe", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_ends_quietly_when_stdout_is_closed() {
    let env = Env::new(sim_config(), 1).await;
    let org = env.organizers[0].clone();
    // Content on another origin is refused (a permanent failure): queued by the first run,
    // dead-lettered by the second.
    let bad = [0, 1].map(|i| {
        let url = format!("{}/download/elsewhere-{i}", env.sim.download_origin());
        env.sim.add_recording_with_content_url(&org, 1_000, &url)
    });
    env.run().await.assert_code(1);
    env.run().await.assert_code(1);
    let status = env.recarch(&["status"], &[]).await;
    assert!(status.stdout.contains("2 dead letters"), "{}", status.stdout);

    let retry = with_stdout_closed_after(&with_config(&env, &["retry", "--all"]), 0).await;
    retry.assert_quiet("retry --all > closed pipe", 0);
    // What it did before it had to print is done: a dead letter moved back to the queue.
    let status = env.recarch(&["status", "--json"], &[]).await;
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("status --json is JSON");
    let queued = status["totals"]["queued"].as_u64().expect("queued count");
    assert!(queued >= 1, "nothing moved back: {status}");
    assert_eq!(
        queued + status["totals"]["deadLetters"].as_u64().expect("dead letter count"),
        bad.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_ends_quietly_when_stdout_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Before its first line.
    let out = dir.path().join("before").display().to_string();
    with_stdout_closed_after(&["demo".into(), "--out".into(), out], 0)
        .await
        .assert_quiet("demo > closed pipe", 0);
    // Mid-story: the first line read, the rest written to nobody (at the latest the first
    // run's summary, a second or so later).
    let out = dir.path().join("mid-story").display().to_string();
    let closed = with_stdout_closed_after(&["demo".into(), "--out".into(), out], 1).await;
    closed.assert_quiet("demo | head -1", 0);
    assert!(closed.read.starts_with("recarch demo: "), "{}", closed.read);
}

/// `recarch demo 2>&1 | head -8`: stdout and stderr are one pipe that closes while the demo
/// logs its warnings (the throttled request, the dropped connection). Writing a log line into
/// it must not panic (tracing's own report of the failed write was an `eprintln!` into the
/// same closed pipe, and the panic hook's message another: exit 134, an abort).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_ends_quietly_when_stdout_and_stderr_are_one_closed_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reader, writer) = std::io::pipe().expect("pipe");
    let stderr = writer.try_clone().expect("clone the pipe's writer");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"))
        .args(["demo", "--out"])
        .arg(dir.path().join("demo"))
        .env_remove("RECARCH_LOG")
        .stdout(writer)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    // Like `head -8`: eight lines (up to the second step's heading), then gone.
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut lines = std::io::BufReader::new(reader).lines();
        (0..8)
            .filter_map(|_| lines.next().and_then(Result::ok))
            .collect::<Vec<_>>()
    })
    .await
    .expect("reader");
    assert_eq!(lines.len(), 8, "{lines:?}");
    let status = child.wait().await.expect("demo ends");
    assert_eq!(status.code(), Some(0), "ended by {status}; read {lines:?}");
}

/// Any other failure to write stdout is an error, in one line naming stdout (exit 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stdout_is_a_one_line_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full (every write fails: no space left)");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"))
        .args(["demo", "--out"])
        .arg(dir.path().join("demo"))
        .env_remove("RECARCH_LOG")
        .stdout(full)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Not `output()`, which would pipe stdout instead.
        .spawn()
        .expect("binary starts")
        .wait_with_output()
        .await
        .expect("binary ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot write to stdout: ") && !stderr.contains("internal error"),
        "{stderr}"
    );
}

/// `recarch <command> --config /nonexistent.toml <more…>` with `envs`: what the binary does
/// before it reads a configuration.
async fn without_config(command: &str, more: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut args = vec![
        command.to_owned(),
        "--config".to_owned(),
        "/nonexistent.toml".to_owned(),
    ];
    args.extend(more.iter().map(|a| (*a).to_owned()));
    recarch(&args, envs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_names_every_kind_and_only_the_options_that_apply() {
    let help = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            let out = recarch(&args, &[]).await;
            out.assert_code(0);
            out.stdout
        }
    };
    let top = help(&["--help"]).await;
    let lower = top.to_lowercase();
    for kind in ["recordings", "transcripts", "contacts"] {
        assert!(lower.contains(kind), "--help does not name {kind}:\n{top}");
    }
    let run = help(&["run", "--help"]).await;
    for kind in ["recordings", "transcripts", "contacts"] {
        assert!(run.contains(kind), "run --help does not name {kind}:\n{run}");
    }
    for command in ["run", "verify"] {
        let text = help(&[command, "--help"]).await;
        assert!(
            text.contains("--progress"),
            "{command} --help lacks --progress:\n{text}"
        );
    }
    for command in ["status", "retry", "demo"] {
        let text = help(&[command, "--help"]).await;
        assert!(
            !text.contains("--progress"),
            "{command} --help lists --progress:\n{text}"
        );
        assert!(
            text.contains("--log ") && text.contains("--log-format"),
            "{command} --help lacks the logging options:\n{text}"
        );
    }
    assert!(!top.contains("--progress"), "--help lists --progress:\n{top}");

    let retry = help(&["retry", "--help"]).await;
    let usage = retry
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_else(|| panic!("no usage line:\n{retry}"));
    assert!(
        usage.contains("--all") && usage.contains("--id"),
        "retry's usage does not show the choice: {usage}"
    );
    let neither = without_config("retry", &[], &[]).await;
    neither.assert_code(2);
    assert!(
        neither.stderr.contains("--all") && neither.stderr.contains("--id"),
        "{}",
        neither.stderr
    );
    let both = without_config("retry", &["--all", "--id", "x"], &[]).await;
    both.assert_code(2);
    assert!(both.stderr.contains("cannot be used with"), "{}", both.stderr);

    // RECARCH_PROGRESS is read by run and verify (a bad value is refused there), and by no
    // other command.
    for command in ["run", "verify"] {
        let bad = without_config(command, &[], &[("RECARCH_PROGRESS", "sometimes")]).await;
        bad.assert_code(2);
        assert!(
            bad.stderr.contains("sometimes") && bad.stderr.contains("--progress"),
            "{command}: {}",
            bad.stderr
        );
    }
    let status = without_config("status", &[], &[("RECARCH_PROGRESS", "sometimes")]).await;
    status.assert_code(2);
    assert!(
        !status.stderr.contains("sometimes") && status.stderr.contains("/nonexistent.toml"),
        "{}",
        status.stderr
    );
}

/// The number just before `noun` in `text` (`"24 recordings"` → 24), skipping words such as
/// "new" in between.
fn count_before(text: &str, noun: &str) -> u64 {
    let at = text
        .find(&format!(" {noun}"))
        .unwrap_or_else(|| panic!("no {noun:?} in {text:?}"));
    text[..at]
        .split_whitespace()
        .rev()
        .take(3)
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count of {noun:?} in {text:?}"))
}

/// The `archived` count of `kind` in a summary's `by kind:` line (`recordings 6 archived`).
fn archived(by_kind: &str, kind: &str) -> u64 {
    let at = by_kind
        .find(&format!("{kind} "))
        .unwrap_or_else(|| panic!("no {kind} in {by_kind:?}"));
    by_kind[at + kind.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of {kind} in {by_kind:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tells_the_counts_it_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("demo").display().to_string();
    let demo = recarch(&["demo".into(), "--out".into(), out], &[]).await;
    demo.assert_code(0);
    let lines: Vec<&str> = demo.stdout.lines().collect();
    // A step's story, and the `by kind:` line of the summary of the run that follows it.
    let step = |prefix: &str| {
        let at = lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no step {prefix:?}:\n{}", demo.stdout));
        let by_kind = lines[at..]
            .iter()
            .find(|l| l.trim_start().starts_with("by kind:"))
            .unwrap_or_else(|| panic!("no summary after {prefix:?}:\n{}", demo.stdout));
        (lines[at], *by_kind)
    };

    let (story, by_kind) = step("1. ");
    for kind in ["recordings", "transcripts", "contacts"] {
        assert_eq!(
            count_before(story, kind),
            archived(by_kind, kind),
            "{kind}: the story says\n{story}\nthe run reports\n{by_kind}"
        );
    }
    assert!(count_before(story, "transcripts") > 0, "{story}");

    let (story, by_kind) = step("2. ");
    for kind in ["recordings", "transcripts"] {
        assert_eq!(
            count_before(story, kind),
            archived(by_kind, kind),
            "{kind}: the story says\n{story}\nthe run reports\n{by_kind}"
        );
    }
    // A contact renamed (a new version) and one deleted (a tombstone version).
    assert!(
        story.contains("a contact is renamed and one deleted")
            && by_kind.contains("contacts 2 archived (0 failed, 1 removed)"),
        "the story says\n{story}\nthe run reports\n{by_kind}"
    );

    let (story, by_kind) = step("3. ");
    assert!(story.contains("nothing new"), "{story}");
    for kind in ["recordings", "transcripts", "contacts"] {
        assert_eq!(archived(by_kind, kind), 0, "{by_kind}");
    }

    // 5. and 6.: an `ls` (a header and the organizer's items), then one meeting's production:
    // a recording and its transcript, as the summary says.
    let at = lines.iter().position(|l| l.starts_with("5. ")).expect("step 5");
    assert!(lines[at + 1].starts_with("KIND "), "{}", lines[at + 1]);
    let listed = lines[at + 2..].iter().take_while(|l| !l.is_empty()).count();
    assert!(listed >= 2, "{}", demo.stdout);
    let exported = lines
        .iter()
        .find(|l| l.starts_with("exported "))
        .expect("the export's summary");
    assert!(
        exported.starts_with("exported 2 documents (1 family, 1 transcript text"),
        "{exported}"
    );
    let dat = std::fs::read_to_string(dir.path().join("demo/production/loadfile.dat")).expect("load file");
    assert_eq!(dat.matches("\r\n").count(), 3, "a header and two rows");
    assert!(dir.path().join("demo/production/custody.json").is_file());
}
