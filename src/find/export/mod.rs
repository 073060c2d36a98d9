//! `recarch export`: a production a review platform (Relativity, Nuix, Purview Review) loads
//! as is. The items that pass the filters become documents `<prefix><8 digits>`, a recording
//! first and the transcripts paired with it right after it (its family). Every blob is
//! re-hashed while it is copied (SHA-256 against the manifest, MD5 for the load file, in the
//! same pass) into `NATIVES/`, a transcript's spoken text goes to `TEXT/`, and then come the
//! load files (`loadfile.dat`, `loadfile.opt`, `edrm.xml`), `hashes.sha256` and, last,
//! `custody.json`, which names the ledger record of the export.
//!
//! Everything is written under a hidden staging directory inside `DIR` and moved into place
//! only when every byte matched, `custody.json` last: a stopped or failed export never leaves
//! a directory that looks complete (a failed one leaves nothing).

mod dat;
mod edrm;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use md5::Md5;
use recarch_store::ledger::LedgerEvent;
use recarch_store::{Archive, BlobCopyError, CatalogEntry, Container, Kind, OrganizerId, Sha256Digest, StoreError};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::filter::Filters;
use super::find;
use crate::exit::{Exit, ExitError};
use crate::ledger::Ledger;
use crate::progress::Progress;
use recarch_failure::error_chain;

pub use dat::COLUMNS;

/// Blobs copied at once (each on a blocking thread: two keep two cores hashing, more keep an
/// object store's latency covered).
const COPIES: usize = 4;
/// Manifests and indexes read at once while the documents are assembled.
const READS: usize = 8;
/// The staging directory inside `DIR`.
const STAGING: &str = ".recarch-export-incomplete";

/// Which load files to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `loadfile.dat` (and the empty `loadfile.opt`).
    Dat,
    /// `edrm.xml`.
    Edrm,
    /// Both.
    Both,
}

/// What to export, and where.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The target directory (absent or empty).
    pub out: PathBuf,
    /// Which items.
    pub filters: Filters,
    /// The DOCID prefix.
    pub prefix: String,
    /// Which load files.
    pub format: Format,
    /// Print the summary as JSON.
    pub json: bool,
}

/// One document of the production.
#[derive(Debug, Clone)]
pub struct Doc {
    doc_id: String,
    parent: Option<String>,
    children: Vec<String>,
    custodian: String,
    kind: Kind,
    organizer_id: String,
    container_id: String,
    graph_id: String,
    created: String,
    subject: String,
    ext: &'static str,
    size: u64,
    media_type: String,
    sha256: Sha256Digest,
    manifest: String,
    /// For a contact version that records its deletion (Graph's `@removed`), why: its native
    /// is the deletion as Graph listed it, and its earlier versions hold what it said.
    removed: Option<String>,
    copied: Option<Copied>,
}

/// What copying a document found.
#[derive(Debug, Clone)]
struct Copied {
    sha256: Sha256Digest,
    md5: String,
    text: Option<TextFile>,
}

/// A transcript's text file.
#[derive(Debug, Clone)]
struct TextFile {
    size: u64,
    sha256: String,
    md5: String,
}

impl Doc {
    fn native_name(&self) -> String {
        format!("{}.{}", self.doc_id, self.ext)
    }

    fn native_path(&self) -> String {
        format!("NATIVES/{}", self.native_name())
    }

    fn text_name(&self) -> String {
        format!("{}.txt", self.doc_id)
    }

    fn text_path(&self) -> String {
        if self.copied.as_ref().is_some_and(|c| c.text.is_some()) {
            format!("TEXT/{}", self.text_name())
        } else {
            String::new()
        }
    }

    fn is_transcript(&self) -> bool {
        matches!(self.kind, Kind::Transcripts | Kind::AdhocTranscripts)
    }

    /// What a reviewer sees as the file's name: what it is, of which meeting, when.
    fn file_name(&self) -> String {
        let noun = match self.kind {
            Kind::Recordings | Kind::AdhocRecordings => "recording",
            Kind::Transcripts | Kind::AdhocTranscripts => "transcript",
            Kind::Contacts => "contact",
        };
        let when = self.created.replace(':', "-");
        let name = if self.subject.is_empty() {
            format!("{noun} {when}.{}", self.ext)
        } else {
            format!("{} - {noun} {when}.{}", self.subject, self.ext)
        };
        name.chars()
            .map(|c| {
                if "/\\:*?\"<>|".contains(c) || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    }

    /// The load file's row, in [`COLUMNS`] order.
    fn row(&self) -> [String; 19] {
        let copied = self.copied.as_ref();
        [
            self.doc_id.clone(),
            self.doc_id.clone(),
            self.doc_id.clone(),
            self.parent.clone().unwrap_or_default(),
            self.children.join(";"),
            self.custodian.clone(),
            self.kind.dirname().to_owned(),
            self.container_id.clone(),
            self.graph_id.clone(),
            self.created.clone(),
            self.file_name(),
            self.ext.to_owned(),
            self.size.to_string(),
            self.media_type.clone(),
            copied.map(|c| c.md5.clone()).unwrap_or_default(),
            copied.map(|c| c.sha256.to_hex()).unwrap_or_default(),
            self.native_path(),
            self.text_path(),
            self.manifest.clone(),
        ]
    }

    /// EDRM tags: name, data type, value.
    fn tags(&self) -> Vec<(&'static str, &'static str, String)> {
        let copied = self.copied.as_ref();
        vec![
            ("#DateCreated", "DateTime", self.created.clone()),
            ("#FileName", "Text", self.file_name()),
            ("#FileExtension", "Text", self.ext.to_owned()),
            ("#FileSize", "Integer", self.size.to_string()),
            ("#HashMD5", "Text", copied.map(|c| c.md5.clone()).unwrap_or_default()),
            ("#HashSHA256", "Text", self.sha256.to_hex()),
            ("#Subject", "Text", self.subject.clone()),
            ("#Kind", "Text", self.kind.dirname().to_owned()),
            ("#MeetingId", "Text", self.container_id.clone()),
            ("#GraphId", "Text", self.graph_id.clone()),
            ("#OrganizerId", "Text", self.organizer_id.clone()),
            ("#Manifest", "Text", self.manifest.clone()),
        ]
        .into_iter()
        .chain(self.removed.clone().map(|why| ("#Removed", "Text", why)))
        .collect()
    }
}

/// What an export wrote.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    out: String,
    documents: usize,
    families: usize,
    texts: usize,
    bytes: u64,
    seconds: f64,
    ledger_record: Option<String>,
    /// The load files written (`loadfile.dat`, `loadfile.opt`, `edrm.xml`, as `--format` asks).
    load_files: Vec<&'static str>,
}

/// `n` and its noun, plural unless one.
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Exports what `request.filters` select into `request.out`. Exit 0 when the production is
/// complete, 1 when a blob does not hold what its manifest says (or is missing), 2 for a
/// target that is not an empty directory, 4 when the archive or the target cannot be
/// read or written.
pub async fn export_cli(
    archive: &Archive,
    ledger: &Ledger,
    request: &ExportRequest,
    progress: Arc<dyn Progress>,
) -> Result<Exit, ExitError> {
    let started_at = Utc::now();
    let started = Instant::now();
    let out = prepare_out(&request.out)?;
    let staging = out.dir.join(STAGING);
    let result = async {
        create_dir(&staging)?;
        create_dir(&staging.join("NATIVES"))?;
        create_dir(&staging.join("TEXT"))?;
        let found = find(archive, ledger, &request.filters).await?;
        if found.unreadable > 0 {
            return Err(ExitError::new(
                Exit::Partial,
                anyhow::anyhow!(
                    "{} catalog entries cannot be read, so the production could miss items; run `recarch catalog rebuild` first",
                    found.unreadable
                ),
            ));
        }
        let mut docs = assemble(archive, &request.prefix, found.into_entries()?).await?;
        if docs.is_empty() {
            // Still a production (and a ledger event): the record that the search found nothing.
            tracing::warn!(
                filters = %serde_json::to_string(&request.filters).unwrap_or_default(),
                "no item matches the filters: the production is empty"
            );
        }
        progress.discovered(docs.len() as u64);
        copy_all(archive, &staging, &mut docs, progress.as_ref()).await?;
        write_production(archive, ledger, request, &out.dir, &staging, &docs, started_at, started).await
    }
    .await;
    progress.finish();
    match result {
        Ok(summary) => {
            let printed = if request.json {
                crate::outln!("{}", serde_json::to_string(&summary).unwrap_or_default())
            } else {
                crate::outln!(
                    "exported {} ({}, {}, {}) to {} in {:.1} s; load files {}; ledger record {}",
                    counted(summary.documents, "document", "documents"),
                    counted(summary.families, "family", "families"),
                    counted(summary.texts, "transcript text", "transcript texts"),
                    recarch_store::human_bytes(summary.bytes),
                    summary.out,
                    summary.seconds,
                    summary.load_files.join(", "),
                    summary.ledger_record.as_deref().unwrap_or("none")
                )
            };
            crate::output::finish(printed, Exit::Ok)
        }
        Err(e) => {
            // Nothing that looks like a production stays behind (a copy cut short may still
            // be closing a file on its thread: try again briefly).
            for _ in 0..5 {
                if std::fs::remove_dir_all(&staging).is_ok() || !staging.exists() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            if out.created {
                let _ = std::fs::remove_dir(&out.dir);
            }
            Err(e)
        }
    }
}

/// The target directory, and whether the export created it.
struct Out {
    dir: PathBuf,
    created: bool,
}

/// `DIR` must be absent or an empty directory (exit 2 otherwise): an export never mixes with
/// another production.
fn prepare_out(dir: &Path) -> Result<Out, ExitError> {
    let usage = |m: String| ExitError::new(Exit::Config, anyhow::anyhow!(m));
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(usage(format!(
                    "--out {}: the directory is not empty; an export writes only into an empty or absent directory, so that a production never mixes with another",
                    dir.display()
                )));
            }
            Ok(Out {
                dir: dir.to_owned(),
                created: false,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| {
                ExitError::new(
                    Exit::Fatal,
                    anyhow::anyhow!("--out {}: cannot create it: {e}", dir.display()),
                )
            })?;
            Ok(Out {
                dir: dir.to_owned(),
                created: true,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(usage(format!("--out {}: not a directory", dir.display())))
        }
        Err(e) => Err(ExitError::new(
            Exit::Fatal,
            anyhow::anyhow!("--out {}: cannot read it: {e}", dir.display()),
        )),
    }
}

fn create_dir(dir: &Path) -> Result<(), ExitError> {
    std::fs::create_dir(dir).map_err(|e| local_error(dir, "cannot create", &e))
}

fn local_error(path: &Path, what: &str, e: &std::io::Error) -> ExitError {
    ExitError::new(Exit::Fatal, anyhow::anyhow!("{what} {}: {e}", path.display()))
}

fn store_error(what: String, e: &StoreError) -> ExitError {
    ExitError::new(Exit::Fatal, anyhow::anyhow!("{what}: {}", error_chain(e)))
}

/// The documents of `entries` (in the order found), families together: a recording, then the
/// transcripts its meeting's or call's index pairs with it, each numbered in that order.
async fn assemble(archive: &Archive, prefix: &str, entries: Vec<CatalogEntry>) -> Result<Vec<Doc>, ExitError> {
    // Each manifest as archived (the catalog says where; the manifest says what).
    let docs: Vec<Doc> = futures::stream::iter(entries.into_iter().map(|entry| async move {
        let manifest = archive
            .manifest_at(&entry.manifest)
            .await
            .map_err(|e| store_error(format!("cannot read {}", entry.manifest), &e))?
            .ok_or_else(|| {
                ExitError::new(
                    Exit::Partial,
                    anyhow::anyhow!(
                        "the catalog names {}, which is not in the archive; `recarch verify` tells what happened to it",
                        entry.manifest
                    ),
                )
            })?;
        // A contact's version is the one the catalog entry names.
        let media_type = if entry.kind == Kind::Contacts {
            "application/json".to_owned()
        } else {
            manifest.content.media_type.clone()
        };
        let sha256 = Sha256Digest::from_hex(&entry.sha256).map_err(|e| {
            ExitError::new(
                Exit::Partial,
                anyhow::anyhow!("the catalog entry of {} names no SHA-256 ({e}); run `recarch catalog rebuild`", entry.manifest),
            )
        })?;
        let names_it = manifest.content.sha256 == sha256
            || manifest
                .extra
                .get(recarch_store::VERSIONS)
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|v| v.get("sha256").and_then(Value::as_str) == Some(&entry.sha256)));
        if !names_it {
            return Err(ExitError::new(
                Exit::Partial,
                anyhow::anyhow!(
                    "the catalog says {} holds blob {}, but the manifest does not name it; run `recarch verify`, then `recarch catalog rebuild`",
                    entry.manifest,
                    entry.sha256
                ),
            ));
        }
        let text = |name: &str| entry.extra.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        let created = entry
            .searched_time()
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default();
        let custodian = [text("organizerName"), text("organizerUpn")]
            .into_iter()
            .find(|n| !n.is_empty())
            .unwrap_or_else(|| entry.organizer_id.clone());
        Ok::<_, ExitError>(Doc {
            doc_id: String::new(),
            parent: None,
            children: Vec::new(),
            custodian,
            kind: entry.kind,
            organizer_id: entry.organizer_id.clone(),
            container_id: entry.meeting_id.clone().or(entry.call_id.clone()).unwrap_or_default(),
            graph_id: entry.id.clone(),
            created,
            subject: if entry.kind == Kind::Contacts {
                text("displayName")
            } else {
                text("subject")
            },
            ext: extension(&media_type, entry.kind),
            size: entry.size,
            media_type,
            sha256,
            removed: entry.extra.get("removed").map(|r| {
                r.get("reason")
                    .and_then(Value::as_str)
                    .map_or_else(|| r.to_string(), str::to_owned)
            }),
            manifest: entry.manifest,
            copied: None,
        })
    }))
    .buffered(READS)
    .try_collect()
    .await?;
    // Families, from the indexes of the meetings and calls the recordings belong to.
    let by_manifest: HashMap<&str, usize> = docs.iter().enumerate().map(|(i, d)| (d.manifest.as_str(), i)).collect();
    let mut containers = std::collections::BTreeSet::new();
    for d in &docs {
        let is_call = match d.kind {
            Kind::Recordings => false,
            Kind::AdhocRecordings => true,
            _ => continue,
        };
        if !d.container_id.is_empty() {
            containers.insert((is_call, d.organizer_id.clone(), d.container_id.clone()));
        }
    }
    let indexes: Vec<_> = futures::stream::iter(containers.into_iter().map(|(is_call, organizer, id)| async move {
        let container = if is_call { Container::Call } else { Container::Meeting };
        let Ok(org) = OrganizerId::parse(&organizer) else {
            return Ok(None);
        };
        archive
            .read_index(container, &org, &id)
            .await
            .map_err(|e| store_error(format!("cannot read the index of {id}"), &e))
    }))
    .buffered(READS)
    .try_collect()
    .await?;
    // Transcript (index in docs) -> its recording's.
    let mut parent_of: HashMap<usize, usize> = HashMap::new();
    for index in indexes.into_iter().flatten() {
        for pair in &index.pairs {
            if let (Some(&r), Some(&t)) = (
                by_manifest.get(pair.recording.as_str()),
                by_manifest.get(pair.transcript.as_str()),
            ) {
                if docs[t].is_transcript() {
                    parent_of.entry(t).or_insert(r);
                }
            }
        }
    }
    let mut children_of: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (&t, &r) in &parent_of {
        children_of.entry(r).or_default().push(t);
    }
    for kids in children_of.values_mut() {
        kids.sort_unstable();
    }
    // The order: as found, each family's children right after their parent.
    let mut order = Vec::with_capacity(docs.len());
    for i in 0..docs.len() {
        if parent_of.contains_key(&i) {
            continue;
        }
        order.push(i);
        if let Some(kids) = children_of.get(&i) {
            order.extend(kids.iter().copied());
        }
    }
    let mut doc_ids = vec![String::new(); docs.len()];
    for (n, &i) in order.iter().enumerate() {
        doc_ids[i] = format!("{prefix}{:08}", n + 1);
    }
    let mut slots: Vec<Option<Doc>> = docs.into_iter().map(Some).collect();
    let mut ordered = Vec::with_capacity(order.len());
    for &i in &order {
        let Some(mut doc) = slots[i].take() else { continue };
        doc.doc_id = doc_ids[i].clone();
        doc.parent = parent_of.get(&i).map(|&r| doc_ids[r].clone());
        doc.children = children_of
            .get(&i)
            .map(|kids| kids.iter().map(|&k| doc_ids[k].clone()).collect())
            .unwrap_or_default();
        ordered.push(doc);
    }
    Ok(ordered)
}

/// The file extension for a document's native.
fn extension(media_type: &str, kind: Kind) -> &'static str {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "video/mp4" => "mp4",
        "audio/mp4" => "m4a",
        "text/vtt" => "vtt",
        "application/json" => "json",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "text/plain" => "txt",
        _ => match kind {
            Kind::Recordings | Kind::AdhocRecordings => "mp4",
            Kind::Transcripts | Kind::AdhocTranscripts => "vtt",
            Kind::Contacts => "json",
        },
    }
}

/// Copies every document's blob into `staging/NATIVES`, re-hashing it, and writes the
/// transcripts' text. Stops at the first blob that does not hold what its manifest says.
async fn copy_all(
    archive: &Archive,
    staging: &Path,
    docs: &mut [Doc],
    progress: &dyn Progress,
) -> Result<(), ExitError> {
    let copies = futures::stream::iter(docs.iter().enumerate().map(|(i, doc)| {
        let native = staging.join("NATIVES").join(doc.native_name());
        let text = doc.is_transcript().then(|| staging.join("TEXT").join(doc.text_name()));
        async move {
            let bar: Arc<dyn crate::progress::DownloadProgress> = Arc::from(progress.download(Some(doc.size)));
            let copied = copy_one(archive, doc, &native, text.as_deref(), bar).await;
            progress.settled();
            copied.map(|c| (i, c))
        }
    }))
    .buffer_unordered(COPIES);
    let copied: Vec<(usize, Copied)> = copies.try_collect().await?;
    for (i, copied) in copied {
        docs[i].copied = Some(copied);
    }
    Ok(())
}

/// A file being written while its bytes are hashed (SHA-256 and MD5) and counted.
struct HashingFile {
    file: BufWriter<std::fs::File>,
    sha256: Sha256,
    md5: Md5,
    size: u64,
    bar: Arc<dyn Fn(u64) + Send + Sync>,
}

impl std::io::Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.md5.update(&buf[..n]);
        self.size += n as u64;
        (self.bar)(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl HashingFile {
    fn create(path: &Path, bar: Arc<dyn Fn(u64) + Send + Sync>) -> std::io::Result<Self> {
        Ok(HashingFile {
            file: BufWriter::with_capacity(1024 * 1024, std::fs::File::create(path)?),
            sha256: Sha256::new(),
            md5: Md5::new(),
            size: 0,
            bar,
        })
    }

    /// Flushes and syncs the file; returns its SHA-256, MD5 (hex) and size.
    fn finish(self) -> std::io::Result<(Sha256Digest, String, u64)> {
        let file = self.file.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok((
            Sha256Digest::from_bytes(self.sha256.finalize().into()),
            hex::encode(self.md5.finalize()),
            self.size,
        ))
    }
}

async fn copy_one(
    archive: &Archive,
    doc: &Doc,
    native: &Path,
    text: Option<&Path>,
    bar: Arc<dyn crate::progress::DownloadProgress>,
) -> Result<Copied, ExitError> {
    let key = recarch_store::blob_key(&doc.sha256);
    // Advanced from the blocking thread, as the bytes are written.
    let sink = HashingFile::create(native, Arc::new(move |n| bar.advance(n)))
        .map_err(|e| local_error(native, "cannot create", &e))?;
    let copied = archive.copy_blob(&doc.sha256, sink).await;
    let (sink, _) = match copied {
        Ok(copied) => copied,
        Err(BlobCopyError::Read(StoreError::NotFound { .. })) => {
            return Err(ExitError::new(
                Exit::Partial,
                anyhow::anyhow!(
                    "{key} is missing: {} ({}) names it; the export was stopped and nothing was left in the target",
                    doc.manifest,
                    doc.graph_id
                ),
            ));
        }
        Err(BlobCopyError::Read(e)) => return Err(store_error(format!("cannot read {key}"), &e)),
        Err(BlobCopyError::Write(e)) => return Err(local_error(native, "cannot write", &e)),
    };
    let (sha256, md5, size) = tokio::task::spawn_blocking(move || sink.finish())
        .await
        .map_err(|e| ExitError::new(Exit::Fatal, anyhow::anyhow!("a copy stopped: {e}")))?
        .map_err(|e| local_error(native, "cannot write", &e))?;
    if sha256 != doc.sha256 || size != doc.size {
        return Err(ExitError::new(
            Exit::Partial,
            anyhow::anyhow!(
                "{key} does not hold what {} says: its {size} bytes hash to {sha256}, not {} ({} bytes); the blob was modified or damaged, so the export was stopped and nothing was left in the target (`recarch verify` checks the whole archive)",
                doc.manifest,
                doc.sha256,
                doc.size
            ),
        ));
    }
    let text = match text {
        Some(path) => Some(write_text(native, path).await?),
        None => None,
    };
    Ok(Copied { sha256, md5, text })
}

/// Writes the spoken text of the transcript at `native` to `path`.
async fn write_text(native: &Path, path: &Path) -> Result<TextFile, ExitError> {
    let (native, path) = (native.to_owned(), path.to_owned());
    let written = tokio::task::spawn_blocking(move || {
        let vtt = BufReader::new(std::fs::File::open(&native)?);
        let mut out = HashingFile::create(&path, Arc::new(|_| {}))?;
        super::text::vtt_to_text(vtt, &mut out)?;
        out.finish()
    })
    .await
    .map_err(|e| ExitError::new(Exit::Fatal, anyhow::anyhow!("a transcript's text stopped: {e}")))?;
    let (sha256, md5, size) =
        written.map_err(|e| ExitError::new(Exit::Fatal, anyhow::anyhow!("cannot write a transcript's text: {e}")))?;
    Ok(TextFile {
        size,
        sha256: sha256.to_hex(),
        md5,
    })
}

/// `custody.json`: its fields, then `documents`, one per DOCID.
#[derive(serde::Serialize)]
struct Custody<'a> {
    #[serde(flatten)]
    head: &'a Value,
    documents: Documents<'a>,
}

/// The documents of `custody.json`, each serialized as it is written (a production's are
/// never all in memory as JSON).
struct Documents<'a>(&'a [Doc]);

impl serde::Serialize for Documents<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|d| {
            json!({
                "docId": d.doc_id,
                "manifest": d.manifest,
                "graphId": d.graph_id,
                "kind": d.kind.dirname(),
                "organizerId": d.organizer_id,
                "size": d.size,
                "sha256Archived": d.sha256.to_hex(),
                "sha256Reread": d.copied.as_ref().map(|c| c.sha256.to_hex()),
                "md5": d.copied.as_ref().map(|c| c.md5.clone()),
                "nativePath": d.native_path(),
                "textPath": Some(d.text_path()).filter(|p| !p.is_empty()),
                "parentId": d.parent,
                "removed": d.removed,
            })
        }))
    }
}

/// Writes the load files, `hashes.sha256`, the ledger record and `custody.json`, then moves
/// the production into place.
#[allow(clippy::too_many_arguments)]
async fn write_production(
    archive: &Archive,
    ledger: &Ledger,
    request: &ExportRequest,
    dir: &Path,
    staging: &Path,
    docs: &[Doc],
    started_at: DateTime<Utc>,
    started: Instant,
) -> Result<Summary, ExitError> {
    let local = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| local_error(&path, "cannot write", &e)
    };
    // hashes.sha256: every native and text, relative paths, as `sha256sum` prints them.
    // Each file is written as it is made, hashed on the way, and synced.
    let write = |name: &str, fill: &mut dyn FnMut(&mut HashingFile) -> std::io::Result<()>| {
        let path = staging.join(name);
        HashingFile::create(&path, Arc::new(|_| {}))
            .and_then(|mut file| {
                fill(&mut file)?;
                file.finish()
            })
            .map(|(sha256, ..)| sha256.to_hex())
            .map_err(local(&path))
    };
    let hashes = write("hashes.sha256", &mut |out| {
        for doc in docs {
            let Some(copied) = &doc.copied else { continue };
            writeln!(out, "{}  {}", copied.sha256, doc.native_path())?;
            if let Some(text) = &copied.text {
                writeln!(out, "{}  {}", text.sha256, doc.text_path())?;
            }
        }
        Ok(())
    })?;
    let mut files = vec![("hashes.sha256", hashes)];
    if matches!(request.format, Format::Dat | Format::Both) {
        let dat = write("loadfile.dat", &mut |out| {
            dat::write_header(out)?;
            docs.iter().try_for_each(|doc| dat::write_row(out, &doc.row()))
        })?;
        files.push(("loadfile.dat", dat));
        files.push(("loadfile.opt", write("loadfile.opt", &mut |_| Ok(()))?));
    }
    if matches!(request.format, Format::Edrm | Format::Both) {
        let batch = dir
            .file_name()
            .map_or_else(|| "recarch export".to_owned(), |n| n.to_string_lossy().into_owned());
        files.push((
            "edrm.xml",
            write("edrm.xml", &mut |out| edrm::write(out, &batch, docs))?,
        ));
    }
    let bytes: u64 = docs.iter().map(|d| d.size).sum();
    let families = docs.iter().filter(|d| !d.children.is_empty()).count();
    let texts = docs
        .iter()
        .filter(|d| d.copied.as_ref().is_some_and(|c| c.text.is_some()))
        .count();
    let target = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    // The export is a ledger event: it binds the load files' and hash list's digests (and so
    // every byte produced) to the archive's history, under the actor who exported.
    let mut details = serde_json::Map::new();
    details.insert("out".into(), json!(target.display().to_string()));
    details.insert("documents".into(), json!(docs.len()));
    details.insert("bytes".into(), json!(bytes));
    details.insert(
        "filters".into(),
        serde_json::to_value(&request.filters).unwrap_or(Value::Null),
    );
    details.insert("prefix".into(), json!(request.prefix));
    details.insert(
        "files".into(),
        Value::Object(files.iter().map(|(n, h)| ((*n).to_owned(), json!(h))).collect()),
    );
    let record = ledger
        .log(Vec::new(), LedgerEvent::Export, details)
        .await
        .map_err(|e| store_error("cannot write the export's ledger record".into(), &e))?;
    let actor = crate::ledger::actor(ledger.shard());
    let finished_at = Utc::now();
    let custody = json!({
        "schema": "recarch.custody.v1",
        "tool": {"name": "recarch", "version": env!("CARGO_PKG_VERSION")},
        "host": actor.host,
        "user": actor.user,
        "startedAt": started_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "finishedAt": finished_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "archive": archive.display_url(),
        "out": target.display().to_string(),
        "filters": request.filters,
        "prefix": request.prefix,
        "format": format!("{:?}", request.format).to_ascii_lowercase(),
        "files": files.iter().map(|(n, h)| ((*n).to_owned(), json!(h))).collect::<serde_json::Map<_, _>>(),
        "ledger": record.as_ref().map(|r| json!({
            "record": r.key,
            "seq": r.seq,
            "sha256": r.sha256.to_hex(),
            "treeSize": r.tree_size,
            "root": r.root.to_string(),
        })),
    });
    // custody.json: the fields above, then each document, serialized as it is written.
    write("custody.json", &mut |out| {
        let custody = Custody {
            head: &custody,
            documents: Documents(docs),
        };
        serde_json::to_writer_pretty(&mut *out, &custody).map_err(std::io::Error::other)?;
        writeln!(out)
    })?;
    // Into place: the files and folders first, custody.json last, then the staging is gone.
    let mut names: Vec<&str> = vec!["NATIVES", "TEXT"];
    names.extend(files.iter().map(|(n, _)| *n));
    names.push("custody.json");
    for name in names {
        std::fs::rename(staging.join(name), dir.join(name))
            .map_err(|e| local_error(&dir.join(name), "cannot move into place", &e))?;
    }
    std::fs::remove_dir(staging).map_err(|e| local_error(staging, "cannot remove", &e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Summary {
        out: target.display().to_string(),
        documents: docs.len(),
        families,
        texts,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        ledger_record: record.map(|r| r.key),
        load_files: files
            .iter()
            .map(|(name, _)| *name)
            .filter(|n| *n != "hashes.sha256")
            .collect(),
    })
}
