//! Progress on a terminal: items settled of discovered (with an ETA), bytes and rate, and a bar
//! per large download. A `Progress` is handed to the run; `NoProgress` when stderr is not a
//! terminal or with `--progress never`, so piped output and log collectors never see a bar.
//! Log lines go through `LogWriter`, which suspends the bars while it writes, so the two never
//! garble each other.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Downloads at least this large get a bar of their own.
const LARGE_DOWNLOAD: u64 = 64 * 1024 * 1024;

/// What the run reports as it goes.
pub trait Progress: Send + Sync {
    /// `n` more items are known (listed on a page, or queued from an earlier run).
    fn discovered(&self, _n: u64) {}
    /// One item is settled (archived, already archived, failed).
    fn settled(&self) {}
    /// A download of `size` bytes (if announced) starts.
    fn download(&self, _size: Option<u64>) -> Box<dyn DownloadProgress> {
        Box::new(NoProgress)
    }
    /// The run is over: clear the bars (the summary line follows).
    fn finish(&self) {}
    /// Runs `print` with the bars hidden, so that a line printed on the same terminal does
    /// not garble them.
    fn suspend(&self, print: &mut dyn FnMut()) {
        print();
    }
}

/// One download's progress.
pub trait DownloadProgress: Send + Sync {
    /// `bytes` more arrived.
    fn advance(&self, _bytes: u64) {}
}

/// No progress shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
impl DownloadProgress for NoProgress {}

/// Bars on the terminal.
#[derive(Debug, Clone)]
pub struct Bars {
    multi: MultiProgress,
    items: ProgressBar,
    bytes: ProgressBar,
}

impl Bars {
    /// The bars of a run, drawn by `multi` (shared with the [`LogWriter`]).
    pub fn new(multi: MultiProgress, what: &str) -> Self {
        Bars::with_bytes(multi, what, "stored")
    }

    /// Bars whose bytes line says what happened to the bytes (`stored`, `copied`).
    pub fn with_bytes(multi: MultiProgress, what: &str, bytes_done: &str) -> Self {
        let items = multi.add(ProgressBar::new(0));
        items.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {what} {{pos}}/{{len}} items [{{bar:30}}] {{percent}}% eta {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let bytes = multi.add(ProgressBar::no_length());
        bytes.set_style(
            ProgressStyle::with_template(&format!(
                "  {{bytes}} {bytes_done}, {{binary_bytes_per_sec}}, {{elapsed}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        items.enable_steady_tick(Duration::from_millis(200));
        Bars { multi, items, bytes }
    }
}

impl Progress for Bars {
    fn suspend(&self, print: &mut dyn FnMut()) {
        self.multi.suspend(print);
    }

    fn finish(&self) {
        self.items.finish_and_clear();
        self.bytes.finish_and_clear();
    }

    fn discovered(&self, n: u64) {
        self.items.inc_length(n);
    }

    fn settled(&self) {
        self.items.inc(1);
    }

    fn download(&self, size: Option<u64>) -> Box<dyn DownloadProgress> {
        let own = size.filter(|s| *s >= LARGE_DOWNLOAD).map(|size| {
            let bar = self.multi.add(ProgressBar::new(size));
            bar.set_style(
                ProgressStyle::with_template(
                    "  download [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Box::new(Download {
            total: self.bytes.clone(),
            own,
        })
    }
}

struct Download {
    total: ProgressBar,
    own: Option<ProgressBar>,
}

impl DownloadProgress for Download {
    fn advance(&self, bytes: u64) {
        self.total.inc(bytes);
        if let Some(own) = &self.own {
            own.inc(bytes);
        }
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(own) = &self.own {
            own.finish_and_clear();
        }
    }
}

/// A `tracing` writer to stderr that suspends the bars while a log line is written.
#[derive(Clone)]
pub struct LogWriter {
    multi: Option<MultiProgress>,
}

impl LogWriter {
    /// Writes around `multi`'s bars (or straight to stderr with `None`).
    pub fn new(multi: Option<MultiProgress>) -> Self {
        LogWriter { multi }
    }
}

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.multi {
            Some(multi) => multi.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The progress of a run: bars when `multi` draws somewhere, else nothing.
pub fn for_run(multi: Option<&MultiProgress>, what: &str) -> Arc<dyn Progress> {
    match multi {
        Some(multi) => Arc::new(Bars::new(multi.clone(), what)),
        None => Arc::new(NoProgress),
    }
}

/// The progress of an export: bars of documents and bytes copied when `multi` draws
/// somewhere, else nothing.
pub fn for_export(multi: Option<&MultiProgress>) -> Arc<dyn Progress> {
    match multi {
        Some(multi) => Arc::new(Bars::with_bytes(multi.clone(), "exporting", "copied")),
        None => Arc::new(NoProgress),
    }
}
