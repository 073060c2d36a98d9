//! An external sort: entries pushed in any order come back sorted, with a bounded number in
//! memory and the rest in sorted runs on disk, merged back k ways. `verify` joins its lists
//! through it and `find` sorts a search's results with it, so that neither holds the archive
//! in memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

/// Read buffer of each run being merged.
const RUN_READ_BUFFER: usize = 32 * 1024;
/// Entries of one list held in memory before they are sorted and spilled to a file (verify's
/// small fixed-size entries).
const RUN_ENTRIES: usize = 64 * 1024;
/// Sorted runs merged at once (each holds an open file and a read buffer).
const MERGE_FAN_IN: usize = 64;

/// An entry of a list sorted on disk, with its binary encoding.
pub(crate) trait Entry: Ord + Send + Sized + 'static {
    /// Writes the entry.
    fn write_to(&self, out: &mut impl Write) -> io::Result<()>;
    /// The next entry, or `None` at the clean end of the input.
    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>>;
}

/// The memory knobs of a [`Spill`] ([`RUN_ENTRIES`], [`MERGE_FAN_IN`] by default), small in
/// tests so that spilling and multi-level merges are exercised.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Entries held in memory before a run is sorted and written to a file.
    pub(crate) run_entries: usize,
    /// Runs merged at once.
    pub(crate) fan_in: usize,
    /// The name prefix of the temporary directory the runs are written to.
    pub(crate) prefix: &'static str,
}

impl Limits {
    /// `verify`'s limits.
    pub(crate) const DEFAULT: Limits = Limits {
        run_entries: RUN_ENTRIES,
        fan_in: MERGE_FAN_IN,
        prefix: "recarch-verify-",
    };

    /// Runs a quarter as long (at least one entry), for lists of larger entries.
    pub(crate) fn quartered(self) -> Limits {
        Limits {
            run_entries: (self.run_entries / 4).max(1),
            ..self
        }
    }

    /// Limits so small that a few entries spill to files and merge in several levels.
    #[cfg(test)]
    pub(crate) const TINY: Limits = Limits {
        run_entries: 3,
        fan_in: 2,
        prefix: "recarch-test-",
    };
}

/// Writes `s` as its length (`u32`, little-endian) and its bytes.
pub(crate) fn write_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    write_bytes(out, s.as_bytes())
}

/// Writes `bytes` as their length (`u32`, little-endian) and themselves.
pub(crate) fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

/// Writes an optional string: `None` as the length `u32::MAX`, which no string read here
/// reaches.
pub(crate) fn write_opt(out: &mut impl Write, s: Option<&str>) -> io::Result<()> {
    match s {
        Some(s) => write_str(out, s),
        None => out.write_all(&u32::MAX.to_le_bytes()),
    }
}

/// Reads a little-endian `u32`.
pub(crate) fn read_u32(input: &mut impl BufRead) -> io::Result<u32> {
    let mut n = [0u8; 4];
    input.read_exact(&mut n)?;
    Ok(u32::from_le_bytes(n))
}

/// Reads a little-endian `u64`.
pub(crate) fn read_u64(input: &mut impl BufRead) -> io::Result<u64> {
    let mut n = [0u8; 8];
    input.read_exact(&mut n)?;
    Ok(u64::from_le_bytes(n))
}

/// Reads what [`write_bytes`] wrote.
pub(crate) fn read_bytes(input: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let len = read_u32(input)?;
    read_exactly(input, len)
}

fn read_exactly(input: &mut impl BufRead, len: u32) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len as usize];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn utf8(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads what [`write_str`] wrote.
pub(crate) fn read_str(input: &mut impl BufRead) -> io::Result<String> {
    utf8(read_bytes(input)?)
}

/// Reads what [`write_opt`] wrote.
pub(crate) fn read_opt(input: &mut impl BufRead) -> io::Result<Option<String>> {
    match read_u32(input)? {
        u32::MAX => Ok(None),
        len => utf8(read_exactly(input, len)?).map(Some),
    }
}

/// Whether the input is at its clean end (before an entry).
pub(crate) fn at_end(input: &mut impl BufRead) -> io::Result<bool> {
    Ok(input.fill_buf()?.is_empty())
}

/// The first string of an entry, or `None` at the clean end of the input.
pub(crate) fn read_first(input: &mut impl BufRead) -> io::Result<Option<String>> {
    if at_end(input)? {
        return Ok(None);
    }
    read_str(input).map(Some)
}

/// An external sort: entries pushed in any order come back sorted from
/// [`Spill::into_sorted`], with at most `run_entries` of them in memory. Each full run is
/// sorted and written to a file in a temporary directory, created on the first spill and
/// removed on drop.
pub(crate) struct Spill<T> {
    limits: Limits,
    run: Vec<T>,
    dir: Option<tempfile::TempDir>,
    runs: Vec<PathBuf>,
    files_made: usize,
    /// Entries pushed.
    pub(crate) len: u64,
}

impl<T: Entry> Spill<T> {
    /// An empty list; its temporary directory (made on the first spill) is named with
    /// `limits`' prefix.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                run_entries: limits.run_entries.max(1),
                fan_in: limits.fan_in.max(2),
                ..limits
            },
            run: Vec::new(),
            dir: None,
            runs: Vec::new(),
            files_made: 0,
            len: 0,
        }
    }

    /// Adds `entry`; a full run is sorted and written to a file (on a blocking thread).
    pub(crate) async fn push(&mut self, entry: T) -> io::Result<()> {
        self.run.push(entry);
        self.len += 1;
        if self.run.len() >= self.limits.run_entries {
            let path = self.new_file()?;
            let run = std::mem::take(&mut self.run);
            let written = path.clone();
            tokio::task::spawn_blocking(move || write_run(&written, run))
                .await
                .map_err(io::Error::other)??;
            self.runs.push(path);
        }
        Ok(())
    }

    fn new_file(&mut self) -> io::Result<PathBuf> {
        if self.dir.is_none() {
            self.dir = Some(tempfile::Builder::new().prefix(self.limits.prefix).tempdir()?);
        }
        self.files_made += 1;
        let dir = self.dir.as_ref().map(|d| d.path()).unwrap_or(std::path::Path::new("."));
        Ok(dir.join(format!("run-{}", self.files_made)))
    }

    /// Every entry, sorted (blocking). Runs beyond the merge fan-in are first merged in
    /// groups into longer runs, so the final merge holds at most `fan_in` files open.
    pub(crate) fn into_sorted(mut self) -> io::Result<Sorted<T>> {
        let mut last = std::mem::take(&mut self.run);
        last.sort_unstable();
        while self.runs.len() > self.limits.fan_in {
            let group: Vec<PathBuf> = self.runs.drain(..self.limits.fan_in).collect();
            let path = self.new_file()?;
            let mut merge = Merge::new(group.iter().map(|p| open_run::<T>(p)).collect::<io::Result<_>>()?)?;
            let mut out = BufWriter::with_capacity(256 * 1024, File::create_new(&path)?);
            while let Some(entry) = merge.next()? {
                entry.write_to(&mut out)?;
            }
            out.into_inner().map_err(|e| e.into_error())?;
            for p in &group {
                std::fs::remove_file(p)?;
            }
            self.runs.push(path);
        }
        let mut sources: Vec<Source<T>> = self.runs.iter().map(|p| open_run(p)).collect::<io::Result<_>>()?;
        sources.push(Source::Memory(last.into_iter()));
        Ok(Sorted {
            merge: Merge::new(sources)?,
            _dir: self.dir,
        })
    }
}

fn write_run<T: Entry>(path: &std::path::Path, mut run: Vec<T>) -> io::Result<()> {
    run.sort_unstable();
    let mut out = BufWriter::with_capacity(256 * 1024, File::create_new(path)?);
    for entry in &run {
        entry.write_to(&mut out)?;
    }
    out.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

fn open_run<T>(path: &std::path::Path) -> io::Result<Source<T>> {
    Ok(Source::File(BufReader::with_capacity(
        RUN_READ_BUFFER,
        File::open(path)?,
    )))
}

/// The sorted entries of a [`Spill`]; keeps its temporary directory until dropped.
pub(crate) struct Sorted<T> {
    merge: Merge<T>,
    _dir: Option<tempfile::TempDir>,
}

impl<T: Entry> Sorted<T> {
    /// The next entry in order, or `None` after the last.
    pub(crate) fn next(&mut self) -> io::Result<Option<T>> {
        self.merge.next()
    }
}

/// One sorted run: a file, or the last run still in memory.
enum Source<T> {
    File(BufReader<File>),
    Memory(std::vec::IntoIter<T>),
}

impl<T: Entry> Source<T> {
    fn next(&mut self) -> io::Result<Option<T>> {
        match self {
            Source::File(input) => T::read_from(input),
            Source::Memory(entries) => Ok(entries.next()),
        }
    }
}

/// A k-way merge of sorted sources: a min-heap of each source's next entry.
struct Merge<T> {
    sources: Vec<Source<T>>,
    heads: BinaryHeap<Reverse<(T, usize)>>,
}

impl<T: Entry> Merge<T> {
    fn new(mut sources: Vec<Source<T>>) -> io::Result<Self> {
        let mut heads = BinaryHeap::with_capacity(sources.len());
        for (i, source) in sources.iter_mut().enumerate() {
            if let Some(entry) = source.next()? {
                heads.push(Reverse((entry, i)));
            }
        }
        Ok(Self { sources, heads })
    }

    fn next(&mut self) -> io::Result<Option<T>> {
        let Some(Reverse((entry, i))) = self.heads.pop() else {
            return Ok(None);
        };
        if let Some(following) = self.sources[i].next()? {
            self.heads.push(Reverse((following, i)));
        }
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A number and a name, sorted by both.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    struct Numbered {
        n: u64,
        name: String,
    }

    impl Entry for Numbered {
        fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
            out.write_all(&self.n.to_le_bytes())?;
            write_str(out, &self.name)
        }

        fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
            if at_end(input)? {
                return Ok(None);
            }
            Ok(Some(Numbered {
                n: read_u64(input)?,
                name: read_str(input)?,
            }))
        }
    }

    fn drain<T: Entry>(mut sorted: Sorted<T>) -> Vec<T> {
        let mut out = Vec::new();
        while let Some(e) = sorted.next().unwrap() {
            out.push(e);
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spill_sorts_through_files_and_multi_level_merges() {
        let mut list = Spill::<Numbered>::new(Limits::TINY);
        let mut expected = Vec::new();
        for n in 0..50u64 {
            let e = Numbered {
                n: n % 17,
                name: format!("manifests/recordings/x/{n:03}.json"),
            };
            list.push(e.clone()).await.unwrap();
            expected.push(e);
        }
        assert!(list.runs.len() > Limits::TINY.fan_in, "spilled into several runs");
        let dir = list.dir.as_ref().unwrap().path().to_owned();
        assert!(
            dir.file_name().unwrap().to_string_lossy().starts_with("recarch-test-"),
            "{dir:?}"
        );
        expected.sort();
        assert_eq!(list.len, 50);
        assert_eq!(drain(list.into_sorted().unwrap()), expected);
        assert!(!dir.exists(), "temporary runs removed");
        // Nothing pushed: nothing comes back, and no file was made.
        let empty = Spill::<Numbered>::new(Limits::TINY);
        assert!(empty.dir.is_none());
        assert!(drain(empty.into_sorted().unwrap()).is_empty());
    }

    #[test]
    fn strings_and_optional_strings_read_back() {
        let mut out = Vec::new();
        write_str(&mut out, "ä").unwrap();
        write_opt(&mut out, None).unwrap();
        write_opt(&mut out, Some("")).unwrap();
        write_bytes(&mut out, b"\x00\xff").unwrap();
        let mut input = io::Cursor::new(out);
        assert_eq!(read_first(&mut input).unwrap().as_deref(), Some("ä"));
        assert_eq!(read_opt(&mut input).unwrap(), None);
        assert_eq!(read_opt(&mut input).unwrap().as_deref(), Some(""));
        assert_eq!(read_bytes(&mut input).unwrap(), b"\x00\xff");
        assert!(read_first(&mut input).unwrap().is_none(), "clean end");
        // A string that is not UTF-8 is an error, not a panic.
        let mut bad = Vec::new();
        write_bytes(&mut bad, &[0xff, 0xfe]).unwrap();
        assert!(read_str(&mut io::Cursor::new(bad)).is_err());
    }
}
