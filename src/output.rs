//! What the commands print on stdout, line by line, with write errors handed back instead of
//! a panic.
//!
//! `println!` panics when stdout cannot be written, e.g. `recarch status | head -1` once
//! `head` has exited. Every line a command prints goes through [`outln!`](crate::outln) instead, which
//! returns a [`StdoutError`]; it travels up as an [`ExitError`] to `main`, which ends quietly
//! with exit 0 when the reader closed the pipe ([`StdoutError::is_closed`], as ripgrep does)
//! and names any other write error (exit 4). The error's own type marks it as stdout's: a
//! broken pipe anywhere else (a store's or Graph's connection) stays a failure.

use std::fmt;
use std::io::{self, Write as _};

use crate::exit::{Exit, ExitError};

/// Writing to stdout failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout")]
pub struct StdoutError(#[source] pub io::Error);

impl StdoutError {
    /// Whether the reader of stdout went away (a closed pipe): nothing is wrong, nobody reads.
    pub fn is_closed(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

impl From<StdoutError> for ExitError {
    fn from(e: StdoutError) -> ExitError {
        ExitError::new(Exit::Fatal, e)
    }
}

/// Whether `error` is stdout's reader going away ([`StdoutError::is_closed`]), which ends a
/// command quietly.
pub fn is_closed_stdout(error: &anyhow::Error) -> bool {
    error.downcast_ref::<StdoutError>().is_some_and(StdoutError::is_closed)
}

/// The end of a command that printed `printed` and otherwise ends with `exit`: its own exit
/// code when everything was printed or nobody was left to read it (a closed pipe ends the
/// output quietly, not the command's verdict: `recarch status | head -1` still says 1 when
/// the archive needs attention); any other write error is one.
pub fn finish(printed: Result<(), StdoutError>, exit: Exit) -> Result<Exit, ExitError> {
    match printed {
        Ok(()) => Ok(exit),
        Err(e) if e.is_closed() => Ok(exit),
        Err(e) => Err(e.into()),
    }
}

/// Writes `args` and a newline to stdout (locked, so the line is not interleaved), and
/// flushes it.
pub fn line(args: fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// `println!` that returns `Result<(), StdoutError>` instead of panicking when stdout cannot
/// be written: `outln!()?`, `outln!("{n} archived")?`.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::line(::std::format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(::std::format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_broken_pipe_of_stdout_is_a_closed_stdout() {
        let closed = anyhow::Error::new(StdoutError(io::Error::from(io::ErrorKind::BrokenPipe)));
        assert!(is_closed_stdout(&closed));
        assert!(is_closed_stdout(&closed.context("printing the summary")));
        let full = anyhow::Error::new(StdoutError(io::Error::from(io::ErrorKind::StorageFull)));
        assert!(!is_closed_stdout(&full));
        // A broken pipe elsewhere (a store's connection) is a failure, not a closed stdout.
        let elsewhere = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!is_closed_stdout(&elsewhere));
    }

    #[test]
    fn a_stdout_error_names_stdout_and_its_cause() {
        let e = ExitError::from(StdoutError(io::Error::other("disk full")));
        assert_eq!(e.exit, Exit::Fatal);
        assert_eq!(
            recarch_failure::error_chain(e.error.as_ref()),
            "cannot write to stdout: disk full"
        );
    }
}
