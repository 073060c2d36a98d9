//! Exit codes, for CronJob alerting (the README's "Exit codes"), and the error that carries one.

use std::process::ExitCode;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: every discovered recording is archived.
    Ok = 0,
    /// 1: some items failed and stay queued (or the run was interrupted); the rest is archived
    /// and checkpointed. `verify`: problems found.
    Partial = 1,
    /// 2: configuration or usage error.
    Config = 2,
    /// 3: another run holds this shard's lease.
    LeaseHeld = 3,
    /// 4: fatal at run time (credentials refused, store unreachable, billing).
    Fatal = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error and the exit code it maps to.
#[derive(Debug)]
pub struct ExitError {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl ExitError {
    /// Wraps `error` with `exit`.
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> ExitError {
        ExitError {
            exit,
            error: error.into(),
        }
    }
}
