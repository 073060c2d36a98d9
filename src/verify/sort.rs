//! An external sort: entries pushed in any order come back sorted, with a bounded number in
//! memory and the rest in sorted runs on disk, merged back k ways.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use recarch_store::Sha256Digest;

use super::Limits;

/// Read buffer of each run being merged.
const RUN_READ_BUFFER: usize = 32 * 1024;

/// An entry of a list sorted on disk, with its fixed binary encoding.
pub(super) trait Entry: Ord + Send + Sized + 'static {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()>;
    /// The next entry, or `None` at the clean end of the input.
    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>>;
}

/// A blob as listed. Sorted by digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct BlobEntry {
    pub(super) digest: Sha256Digest,
    pub(super) size: u64,
}

/// A manifest's reference to a blob. Sorted by digest, then manifest key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RefEntry {
    pub(super) digest: Sha256Digest,
    pub(super) key: String,
    pub(super) size: u64,
}

fn read_digest_and_size(input: &mut impl BufRead) -> io::Result<Option<(Sha256Digest, u64)>> {
    if input.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let mut digest = [0u8; 32];
    input.read_exact(&mut digest)?;
    let mut size = [0u8; 8];
    input.read_exact(&mut size)?;
    Ok(Some((Sha256Digest::from_bytes(digest), u64::from_le_bytes(size))))
}

impl Entry for BlobEntry {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.digest.as_bytes())?;
        out.write_all(&self.size.to_le_bytes())
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        Ok(read_digest_and_size(input)?.map(|(digest, size)| BlobEntry { digest, size }))
    }
}

impl Entry for RefEntry {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.digest.as_bytes())?;
        out.write_all(&self.size.to_le_bytes())?;
        let len = u32::try_from(self.key.len()).map_err(io::Error::other)?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(self.key.as_bytes())
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        let Some((digest, size)) = read_digest_and_size(input)? else {
            return Ok(None);
        };
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut key)?;
        let key = String::from_utf8(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Some(RefEntry { digest, key, size }))
    }
}

/// An external sort: entries pushed in any order come back sorted from
/// [`Spill::into_sorted`], with at most `run_entries` of them in memory. Each full run is
/// sorted and written to a file in a temporary directory, created on the first spill and
/// removed on drop.
pub(super) struct Spill<T> {
    limits: Limits,
    run: Vec<T>,
    dir: Option<tempfile::TempDir>,
    runs: Vec<PathBuf>,
    files_made: usize,
    /// Entries pushed.
    pub(super) len: u64,
}

impl<T: Entry> Spill<T> {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                run_entries: limits.run_entries.max(1),
                fan_in: limits.fan_in.max(2),
            },
            run: Vec::new(),
            dir: None,
            runs: Vec::new(),
            files_made: 0,
            len: 0,
        }
    }

    pub(super) async fn push(&mut self, entry: T) -> io::Result<()> {
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
            self.dir = Some(tempfile::Builder::new().prefix("recarch-verify-").tempdir()?);
        }
        self.files_made += 1;
        let dir = self.dir.as_ref().map(|d| d.path()).unwrap_or(std::path::Path::new("."));
        Ok(dir.join(format!("run-{}", self.files_made)))
    }

    /// Every entry, sorted (blocking). Runs beyond the merge fan-in are first merged in
    /// groups into longer runs, so the final merge holds at most `fan_in` files open.
    pub(super) fn into_sorted(mut self) -> io::Result<Sorted<T>> {
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
pub(super) struct Sorted<T> {
    merge: Merge<T>,
    _dir: Option<tempfile::TempDir>,
}

impl<T: Entry> Sorted<T> {
    pub(super) fn next(&mut self) -> io::Result<Option<T>> {
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

    fn digest(n: u64) -> Sha256Digest {
        Sha256Digest::of(&n.to_le_bytes())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spill_sorts_through_files_and_multi_level_merges() {
        let mut refs = Spill::<RefEntry>::new(Limits::TINY);
        let mut blobs = Spill::<BlobEntry>::new(Limits::TINY);
        let mut expected_refs = Vec::new();
        let mut expected_blobs = Vec::new();
        for n in 0..50u64 {
            let r = RefEntry {
                digest: digest(n % 17),
                key: format!("manifests/recordings/x/{n:03}.json"),
                size: n,
            };
            refs.push(r.clone()).await.unwrap();
            expected_refs.push(r);
            let b = BlobEntry {
                digest: digest(n),
                size: n,
            };
            blobs.push(b.clone()).await.unwrap();
            expected_blobs.push(b);
        }
        assert!(refs.runs.len() > Limits::TINY.fan_in, "spilled into several runs");
        let dir = refs.dir.as_ref().unwrap().path().to_owned();
        expected_refs.sort();
        expected_blobs.sort();
        let drain = |mut s: Sorted<RefEntry>| {
            let mut out = Vec::new();
            while let Some(e) = s.next().unwrap() {
                out.push(e);
            }
            out
        };
        assert_eq!(drain(refs.into_sorted().unwrap()), expected_refs);
        assert!(!dir.exists(), "temporary runs removed");
        let mut sorted = blobs.into_sorted().unwrap();
        let mut got = Vec::new();
        while let Some(e) = sorted.next().unwrap() {
            got.push(e);
        }
        assert_eq!(got, expected_blobs);
        // Nothing pushed: nothing comes back, and no file was made.
        let empty = Spill::<BlobEntry>::new(Limits::TINY);
        assert!(empty.dir.is_none());
        assert!(empty.into_sorted().unwrap().next().unwrap().is_none());
    }
}
