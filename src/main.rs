//! `recarch`: archives Microsoft Teams meeting recordings and transcripts, and Outlook
//! contacts, from Microsoft Graph into content-addressed blobs and JSON manifests on local
//! disk, S3 or Azure Blob.
//!
//! This binary is the edge: it reads the command line, the environment and the configuration
//! file, sets up logging and signals, and maps outcomes to the documented exit codes. The work
//! itself lives in the `recarch` library (`run`, `verify`, `status`, `dispose`, `demo`), on top of the
//! `recarch-delta`, `recarch-fetch` and `recarch-store` crates.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use recarch::config::Config;
use recarch::exit::{Exit, ExitError};
use recarch::{retry, run, status, verify};

/// Archives Microsoft Teams meeting recordings and transcripts, and Outlook contacts, from
/// Microsoft Graph (the text shown is the package's description, in Cargo.toml).
#[derive(Debug, Parser)]
#[command(name = "recarch", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr: `text` for terminals, `json` (one object per line) for machines.
    #[arg(long, global = true, value_enum, env = "RECARCH_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `recarch=debug,warn` [default: `info`; `warn` for
    /// `demo`, which tells its own story on stdout].
    #[arg(long, global = true, env = "RECARCH_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// `--progress`, of the commands that draw bars (`run` and `verify`).
#[derive(Debug, Clone, Copy, Args)]
struct Progress {
    /// Progress bars on stderr: `auto` draws them when stderr is a terminal, `never` does not.
    #[arg(long, value_enum, env = "RECARCH_PROGRESS", default_value = "auto")]
    progress: ProgressMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    Auto,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One archive pass: discover what is new (meeting recordings and transcripts, Outlook
    /// contacts, as configured), download, store, checkpoint.
    Run {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// This run's shard, from 0 (with --shard-count).
        #[arg(long, value_name = "I", requires = "shard_count")]
        shard_index: Option<u32>,
        /// How many shards split the organizers; this run's shard is --shard-index, or
        /// `$JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job) when that is not given.
        #[arg(long, value_name = "N")]
        shard_count: Option<u32>,
        /// Also write the run's metrics to this file, in the Prometheus text format (for
        /// node-exporter's textfile collector).
        #[arg(long, value_name = "PATH")]
        metrics_file: Option<PathBuf>,
        #[command(flatten)]
        progress: Progress,
    },
    /// Re-hash blobs and check every manifest against them.
    Verify {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Re-hash only N randomly chosen blobs (manifests are all checked).
        #[arg(long, value_name = "N")]
        sample: Option<usize>,
        /// Check every ledger record's signed checkpoint with this Ed25519 public key (SPKI
        /// PEM); the key name is `[ledger].origin`.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// A checkpoint kept elsewhere (a record's `checkpoint`, or the JSON status's
        /// `ledger.checkpoint`): the ledger must still begin with the tree it states;
        /// repeatable.
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
        #[command(flatten)]
        progress: Progress,
    },
    /// Per-organizer state: checkpoint, queued items and why they failed.
    Status {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Moves dead letters back to the retry queue (the next run tries them first).
    #[command(group(ArgGroup::new("which").required(true).args(["all", "id"])))]
    Retry {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Only this organizer's dead letters (default: every configured organizer).
        #[arg(long, value_name = "ID")]
        organizer: Option<String>,
        /// Every dead letter of the selected organizers.
        #[arg(long)]
        all: bool,
        /// The dead letter of this Graph item id.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
    /// One line per archived item that passes the filters (no Graph credentials needed).
    Ls {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        filters: recarch::find::filter::FilterArgs,
        /// JSON Lines instead of text columns.
        #[arg(long)]
        json: bool,
    },
    /// Everything about an item (Graph id), a meeting or call (its id) or a blob (SHA-256):
    /// manifests, the meeting's or call's items, the items of a blob, the ledger record.
    Show {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// A Graph item id, a meeting or call id, or a blob's SHA-256.
        #[arg(value_name = "ID")]
        id: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A blob's bytes to stdout, re-hashed on the way (exit 1 and a message when they do not
    /// match its name).
    Cat {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The blob's SHA-256 (64 hex digits).
        #[arg(value_name = "SHA256")]
        sha256: String,
    },
    /// A production for review platforms: natives, transcript text, a Concordance DAT and an
    /// EDRM XML load file, hashes and a chain of custody, of the items that pass the filters.
    Export {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The directory to write (absent or empty).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        filters: recarch::find::filter::FilterArgs,
        /// DOCID prefix: letters, digits, `-` or `_` (DOCIDs are the prefix and 8 digits).
        #[arg(long, value_name = "P", default_value = "REC")]
        prefix: String,
        /// Which load files: dat (loadfile.dat and loadfile.opt), edrm (edrm.xml) or both.
        #[arg(long, value_enum, default_value = "both")]
        format: recarch::find::export::Format,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        progress: Progress,
    },
    /// Legal holds: place one on what the filters select, release it, list them.
    Hold {
        #[command(subcommand)]
        action: HoldCommand,
    },
    /// Deletes the items whose retain-until has passed and that no active legal hold covers
    /// (the manifest, and each blob no remaining manifest names); a dry run unless --yes.
    #[command(group(ArgGroup::new("mode").args(["dry_run", "yes"])))]
    Dispose {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Say what would be deleted, and delete nothing (the default).
        #[arg(long)]
        dry_run: bool,
        /// Delete: log the disposal in the ledger, then delete.
        #[arg(long)]
        yes: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The catalog `ls` searches (`catalog/`).
    Catalog {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Offline end-to-end run on the built-in Graph simulator, into a local directory.
    Demo {
        /// Where to put the demo archive (must be empty or absent); default: a new directory
        /// under the system's temporary directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum HoldCommand {
    /// The matter holds the items that pass the filters, and each item archived later that
    /// passes them, until it is released: nothing it holds is disposed of.
    Place {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The matter's name (a case, an inquiry).
        #[arg(long, value_name = "NAME")]
        matter: String,
        #[command(flatten)]
        filters: recarch::find::filter::FilterArgs,
        /// Why, for the record.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// The matter holds nothing any more (what other matters hold stays held).
    Release {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The matter's name.
        #[arg(long, value_name = "NAME")]
        matter: String,
        /// Why, for the record.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Every matter, active or released, and what it holds now.
    Ls {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// JSON Lines instead of text columns.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogAction {
    /// Writes catalog segments anew from every manifest (the catalog is add-only: nothing is
    /// removed; searches keep one entry per item).
    Rebuild,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Config.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    // A bug prints one line, not a stack trace, and exits 4 like any fatal error.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        // Written, not `eprintln!`ed: a panic while stderr is a closed pipe must not panic
        // again in here (that aborts).
        let _ = writeln!(
            std::io::stderr(),
            "error: internal error{location}: {message}; please report it"
        );
        std::process::exit(Exit::Fatal as i32);
    }));
    // Bars only for `run` and `verify`, on a terminal, unless turned off; logs are written
    // around them.
    let progress = match &cli.command {
        Command::Run { progress, .. } | Command::Verify { progress, .. } | Command::Export { progress, .. } => {
            progress.progress
        }
        Command::Status { .. }
        | Command::Retry { .. }
        | Command::Demo { .. }
        | Command::Ls { .. }
        | Command::Cat { .. }
        | Command::Show { .. }
        | Command::Hold { .. }
        | Command::Dispose { .. }
        | Command::Catalog { .. } => ProgressMode::Never,
    };
    let bars = (progress == ProgressMode::Auto && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
    init_logging(&cli, bars.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Fatal.into();
        }
    };
    let result = runtime.block_on(dispatch(cli.command, bars));
    // Do not wait for lingering connections or timers.
    runtime.shutdown_background();
    match result {
        Ok(exit) => exit.into(),
        // Whoever read stdout has gone (`recarch status | head -1`): nothing is wrong.
        Err(e) if recarch::output::is_closed_stdout(&e.error) => Exit::Ok.into(),
        Err(e) => {
            // Nowhere to say it when stderr is gone too; the exit code still does.
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                recarch_failure::error_chain(e.error.as_ref())
            );
            e.exit.into()
        }
    }
}

fn init_logging(cli: &Cli, bars: Option<indicatif::MultiProgress>) {
    let default = if matches!(cli.command, Command::Demo { .. }) {
        "warn"
    } else {
        "info"
    };
    let directives = cli.log.as_deref().unwrap_or(default);
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(recarch::progress::LogWriter::new(bars))
        // A log line that cannot be written (stderr a closed pipe: `recarch demo 2>&1 | head`)
        // has nowhere to be reported either; tracing's own report of it would be an
        // `eprintln!` into the same closed pipe, which panics.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}

async fn dispatch(command: Command, bars: Option<indicatif::MultiProgress>) -> Result<Exit, ExitError> {
    match command {
        Command::Run {
            config,
            shard_index,
            shard_count,
            metrics_file,
            progress: _,
        } => {
            let shard_index = match (shard_index, shard_count) {
                (None, Some(_)) => Some(job_completion_index()?),
                (index, _) => index,
            };
            let shard = match (shard_index, shard_count) {
                (Some(index), Some(count)) => {
                    if count == 0 || index >= count {
                        return Err(ExitError::new(
                            Exit::Config,
                            anyhow::anyhow!(
                                "--shard-index {index} must be below --shard-count {count} (and the count at least 1)"
                            ),
                        ));
                    }
                    run::Shard { index, count }
                }
                _ => run::Shard { index: 0, count: 1 },
            };
            let mut config = load_config(&config)?;
            config.metrics.file = metrics_file;
            let shutdown = shutdown_on_signals();
            let progress = recarch::progress::for_run(bars.as_ref(), "archiving");
            let result = run::run_with_progress(&config, shard, shutdown, progress.clone()).await;
            progress.finish();
            let report = result?;
            let exit = if report.exit_code == 0 { Exit::Ok } else { Exit::Partial };
            recarch::output::finish(recarch::report::print_summary(&report), exit)
        }
        Command::Verify {
            config,
            sample,
            public_key,
            checkpoint,
            progress: _,
        } => {
            let config = load_config(&config)?;
            let verifier = public_key
                .map(|path| {
                    recarch_store::ledger::LedgerVerifier::from_spki_pem_file(&path)
                        .and_then(|v| v.with_name(&config.ledger.origin))
                        .map_err(|e| ExitError::new(Exit::Config, anyhow::anyhow!("--public-key: {e}")))
                })
                .transpose()?;
            let mut kept = Vec::new();
            for path in checkpoint {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ExitError::new(
                        Exit::Config,
                        anyhow::anyhow!("--checkpoint {}: cannot read it: {}", path.display(), e.kind()),
                    )
                })?;
                let source = path.display().to_string();
                kept.push(
                    verify::KeptCheckpoint::parse(&source, &text, verifier.as_ref())
                        .map_err(|e| ExitError::new(Exit::Config, anyhow::anyhow!("--checkpoint {e}")))?,
                );
            }
            let archive = run::open_archive(&config)?;
            verify::verify_cli(
                &archive,
                sample,
                recarch::progress::for_run(bars.as_ref(), "verifying"),
                verifier,
                &kept,
            )
            .await
        }
        Command::Status { config, json } => {
            let config = load_config(&config)?;
            let archive = run::open_archive(&config)?;
            status::status_cli(&config, &archive, json).await
        }
        Command::Retry {
            config,
            organizer,
            all,
            id,
        } => {
            let config = load_config(&config)?;
            let organizer = organizer
                .map(|o| {
                    recarch_store::OrganizerId::parse(o.trim()).map_err(|_| {
                        ExitError::new(
                            Exit::Config,
                            anyhow::anyhow!("--organizer {o:?} is not an organizer id (a GUID)"),
                        )
                    })
                })
                .transpose()?;
            let selection = match (all, id) {
                (_, Some(id)) => retry::Selection::Id(id),
                (true, None) => retry::Selection::All,
                (false, None) => {
                    return Err(ExitError::new(Exit::Config, anyhow::anyhow!("give --all or --id ID")));
                }
            };
            let archive = run::open_archive(&config)?;
            let ledger = command_ledger(&config, &archive);
            retry::retry_cli(&config, &archive, &ledger, organizer, selection).await
        }
        Command::Ls { config, filters, json } => {
            let filters = filters.parse()?;
            let config = load_config(&config)?;
            let archive = run::open_archive(&config)?;
            let ledger = command_ledger(&config, &archive);
            recarch::find::ls::ls_cli(&archive, &ledger, &filters, json).await
        }
        Command::Show { config, id, json } => {
            let config = load_config(&config)?;
            let archive = run::open_archive(&config)?;
            let ledger = command_ledger(&config, &archive);
            recarch::find::show::show_cli(&archive, &ledger, &id, json).await
        }
        Command::Cat { config, sha256 } => {
            let config = load_config(&config)?;
            let archive = run::open_archive(&config)?;
            recarch::find::cat::cat_cli(&archive, &sha256).await
        }
        Command::Export {
            config,
            out,
            filters,
            prefix,
            format,
            json,
            progress: _,
        } => {
            let filters = filters.parse()?;
            let prefix = prefix.trim().to_owned();
            if prefix.is_empty()
                || prefix.len() > 32
                || !prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ExitError::new(
                    Exit::Config,
                    anyhow::anyhow!(
                        "--prefix {prefix:?}: a DOCID prefix is 1 to 32 letters, digits, '-' or '_' (it names files)"
                    ),
                ));
            }
            let config = load_config(&config)?;
            let archive = run::open_archive(&config)?;
            let ledger = command_ledger(&config, &archive);
            let request = recarch::find::export::ExportRequest {
                out,
                filters,
                prefix,
                format,
                json,
            };
            recarch::find::export::export_cli(
                &archive,
                &ledger,
                &request,
                recarch::progress::for_export(bars.as_ref()),
            )
            .await
        }
        Command::Hold { action } => {
            let (HoldCommand::Place { config, .. }
            | HoldCommand::Release { config, .. }
            | HoldCommand::Ls { config, .. }) = &action;
            let filters = match &action {
                HoldCommand::Place { filters, .. } => Some(filters.parse()?),
                _ => None,
            };
            let config = load_config(config)?;
            let archive = run::open_archive(&config)?;
            let ledger = command_ledger(&config, &archive);
            match action {
                HoldCommand::Place { matter, reason, .. } => {
                    recarch::holds::place_cli(&archive, &ledger, &matter, &filters.unwrap_or_default(), reason).await
                }
                HoldCommand::Release { matter, reason, .. } => {
                    recarch::holds::release_cli(&archive, &ledger, &matter, reason).await
                }
                HoldCommand::Ls { json, .. } => recarch::holds::ls_cli(&archive, &ledger, json).await,
            }
        }
        Command::Dispose {
            config,
            dry_run: _,
            yes,
            json,
        } => {
            let config = load_config(&config)?;
            let archive = run::open_archive(&config)?;
            let ledger = command_ledger(&config, &archive);
            let request = recarch::dispose::DisposeRequest { apply: yes, json };
            recarch::dispose::dispose_cli(&archive, &ledger, request).await
        }
        Command::Catalog {
            config,
            action: CatalogAction::Rebuild,
        } => {
            let config = load_config(&config)?;
            let archive = run::open_archive(&config)?;
            let ledger = command_ledger(&config, &archive);
            let written = recarch::find::rebuild(&archive, &ledger).await?;
            recarch::output::finish(
                recarch::outln!("catalog: {written} entries written from the manifests"),
                Exit::Ok,
            )
        }
        Command::Demo { out } => demo(out).await,
    }
}

/// `recarch demo`, in builds with the `demo` feature (the default).
#[cfg(feature = "demo")]
async fn demo(out: Option<PathBuf>) -> Result<Exit, ExitError> {
    recarch::demo::demo(out).await
}

/// `recarch demo` in a build without the simulator (the container image): say so, exit 2.
#[cfg(not(feature = "demo"))]
async fn demo(_out: Option<PathBuf>) -> Result<Exit, ExitError> {
    Err(ExitError::new(
        Exit::Config,
        anyhow::anyhow!(
            "this recarch was built without the demo (cargo feature `demo`, on by default; the container image leaves it out); run the demo from a source checkout: cargo run --release -- demo"
        ),
    ))
}

/// `$JOB_COMPLETION_INDEX`, which Kubernetes sets in each pod of an Indexed Job.
fn job_completion_index() -> Result<u32, ExitError> {
    let config_error = |m: String| ExitError::new(Exit::Config, anyhow::anyhow!(m));
    match std::env::var("JOB_COMPLETION_INDEX") {
        Ok(v) => v.trim().parse().map_err(|_| {
            config_error(format!(
                "JOB_COMPLETION_INDEX {v:?} is not a shard index (a whole number)"
            ))
        }),
        Err(_) => Err(config_error(
            "--shard-count needs --shard-index, or JOB_COMPLETION_INDEX (set in Kubernetes Indexed Jobs)".into(),
        )),
    }
}

/// The ledger a command other than `run` logs its writes and actions in, as shard `0-of-1`
/// (whose next run recovers what a killed command left unlogged).
fn command_ledger(config: &Config, archive: &recarch_store::Archive) -> recarch::ledger::Ledger {
    recarch::ledger::Ledger::new(
        archive.clone(),
        recarch_store::ShardId::new(0, 1),
        config.ledger.signer.clone(),
    )
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitError> {
    let env = recarch::config::environment().map_err(|e| ExitError::new(Exit::Config, e))?;
    Config::load(path, &env).map_err(|e| ExitError::new(Exit::Config, e))
}

/// The first SIGTERM or SIGINT stops new work; a second one exits at once.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        for n in 0.. {
            if wait_for_signal().await.is_err() {
                return;
            }
            if n == 0 {
                tracing::warn!(
                    "signal received: finishing in-flight downloads, then stopping (send again to stop at once)"
                );
                trigger.cancel();
            } else {
                eprintln!("error: stopped by a second signal; unfinished items run again next time");
                std::process::exit(Exit::Partial as i32);
            }
        }
    });
    token
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
