//! The catalog against the manifests: `ls`, `show` and `export` find items only through the
//! catalog, so every entry a manifest derives ([`CatalogEntry::of_manifest`]) must be in a
//! segment (complete), and every entry in a segment must be one a manifest derives, with the
//! fields a search filters on as the manifest gives them (true).
//!
//! Constant memory, as the rest of verify: nothing is read twice. The entries the manifests
//! derive are collected while verify reads each manifest for its blob references; the
//! segments' entries while the ledger check reads every object under `catalog/` to hash it.
//! Both lists go through the external sort, by `(manifest, sha256)`, and are merge-joined one
//! manifest at a time: only one manifest's derived entries (one per version for a contact)
//! are held at once.
//!
//! A disposal marker (a line `{"disposed": …}`) hides the entries of its `(manifest, sha256)`
//! listed in segments before its own (see `recarch_store::DisposalMarker`): those entries are
//! not compared at all (their manifest is meant to be gone), and do not count as listing an
//! entry a manifest still derives, which is then reported missing, as `ls` cannot find it.
//!
//! Only the identity and the searched fields (kind, organizerId, id, meetingId, callId,
//! createdDateTime, size) are compared, not the `extra` members: entries of the same identity
//! may be added later carrying more of them (a subject, an organizer's name), and
//! `archivedAt` differs between a run's entry and a rebuild's.

use std::io::{self, BufRead, Write};

use std::collections::HashMap;

use recarch_store::{CatalogEntry, CatalogLine, StoreError, StoredManifest, catalog_segment_lines};

use super::sort::{Entry, Spill};
use super::{EVENT_QUEUE, Limits, VerifyReport, spill_failed};
use crate::exit::ExitError;
use crate::sort::{read_first, read_opt, read_str, read_u64, write_opt, write_str};
use recarch_failure::error_chain;

/// The fields of a catalog entry a search filters on, compared between a segment's entry and
/// the manifest's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Searched {
    kind: String,
    organizer_id: String,
    id: String,
    meeting_id: Option<String>,
    call_id: Option<String>,
    created_date_time: Option<String>,
    size: u64,
}

impl Searched {
    fn of(entry: &CatalogEntry) -> Self {
        Searched {
            kind: entry.kind.dirname().to_owned(),
            organizer_id: entry.organizer_id.clone(),
            id: entry.id.clone(),
            meeting_id: entry.meeting_id.clone(),
            call_id: entry.call_id.clone(),
            created_date_time: entry.created_date_time.clone(),
            size: entry.size,
        }
    }

    /// What differs from `manifest`'s, one phrase each (`size 9, the manifest says 11`).
    fn differences(&self, manifest: &Searched) -> Vec<String> {
        fn shown(value: Option<&str>) -> String {
            value.map_or_else(|| "absent".to_owned(), |v| format!("{v:?}"))
        }
        let mut found = Vec::new();
        let mut text = |name: &str, listed: Option<&str>, derived: Option<&str>| {
            if listed != derived {
                found.push(format!(
                    "{name} {}, the manifest says {}",
                    shown(listed),
                    shown(derived)
                ));
            }
        };
        text("kind", Some(&self.kind), Some(&manifest.kind));
        text("organizerId", Some(&self.organizer_id), Some(&manifest.organizer_id));
        text("id", Some(&self.id), Some(&manifest.id));
        text("meetingId", self.meeting_id.as_deref(), manifest.meeting_id.as_deref());
        text("callId", self.call_id.as_deref(), manifest.call_id.as_deref());
        text(
            "createdDateTime",
            self.created_date_time.as_deref(),
            manifest.created_date_time.as_deref(),
        );
        if self.size != manifest.size {
            found.push(format!("size {}, the manifest says {}", self.size, manifest.size));
        }
        found
    }
}

/// An entry a manifest derives; or, with no `searched`, a manifest that exists but derives
/// nothing verify can compare (it cannot be read or parsed: reported as a manifest problem).
/// Sorted by manifest, then sha256.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Derived {
    manifest: String,
    sha256: String,
    searched: Option<Searched>,
}

/// An entry or a disposal marker as a segment lists it, and where. Sorted by manifest, then
/// sha256.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Listed {
    manifest: String,
    sha256: String,
    segment: String,
    line: u64,
    /// The entry's searched fields; `None` for a disposal marker.
    searched: Option<Searched>,
}

/// Collects both sides while verify reads the manifests and the ledgered objects, then joins
/// them ([`CatalogCheck::finish`]).
pub(super) struct CatalogCheck {
    derived: Spill<Derived>,
    listed: Spill<Listed>,
    /// Entries the manifests derive.
    derived_entries: u64,
    /// Segments read.
    segments: u64,
    /// Whether every segment was listed and read: otherwise entries absent from those read
    /// may be in the others, and are counted rather than reported as missing.
    complete: bool,
}

impl CatalogCheck {
    pub(super) fn new(limits: Limits) -> Self {
        // Entries some three times a blob reference's size (a manifest key, a Graph id, a
        // meeting id, ...), two lists, one alive beside the blob references and one beside
        // the ledger's: runs an eighth as long keep both within what one reference list took.
        let limits = Limits {
            run_entries: (limits.run_entries / 8).max(1),
            ..limits
        };
        CatalogCheck {
            derived: Spill::new(limits),
            listed: Spill::new(limits),
            derived_entries: 0,
            segments: 0,
            complete: true,
        }
    }

    /// A manifest as read: the entries it derives (none for one this version cannot parse,
    /// which is then only known to exist).
    pub(super) async fn manifest(&mut self, stored: &StoredManifest) -> Result<(), ExitError> {
        let Ok(manifest) = stored.parse() else {
            return self.exists(&stored.key).await;
        };
        for entry in CatalogEntry::of_manifest(&stored.key, &manifest) {
            let derived = Derived {
                manifest: entry.manifest.clone(),
                sha256: entry.sha256.clone(),
                searched: Some(Searched::of(&entry)),
            };
            self.derived.push(derived).await.map_err(spill_failed)?;
            self.derived_entries += 1;
        }
        Ok(())
    }

    /// A manifest listed but not read (its problem is reported by the manifest check): the
    /// catalog's entries naming it are not compared, and not reported as naming nothing.
    pub(super) async fn exists(&mut self, key: &str) -> Result<(), ExitError> {
        let marker = Derived {
            manifest: key.to_owned(),
            sha256: String::new(),
            searched: None,
        };
        self.derived.push(marker).await.map_err(spill_failed)
    }

    /// A segment as read: its entries; its unreadable lines are problems.
    pub(super) async fn segment(
        &mut self,
        key: &str,
        bytes: &[u8],
        report: &mut VerifyReport,
        on_problem: &mut impl FnMut(&str),
    ) -> Result<(), ExitError> {
        self.segments += 1;
        for (line, entry) in catalog_segment_lines(key, bytes) {
            match entry {
                Ok(CatalogLine::Entry(entry)) => {
                    report.catalog_entries += 1;
                    let listed = Listed {
                        searched: Some(Searched::of(&entry)),
                        manifest: entry.manifest,
                        sha256: entry.sha256,
                        segment: key.to_owned(),
                        line,
                    };
                    self.listed.push(listed).await.map_err(spill_failed)?;
                }
                Ok(CatalogLine::Disposed(marker)) => {
                    report.catalog_disposed += 1;
                    let listed = Listed {
                        searched: None,
                        manifest: marker.manifest,
                        sha256: marker.sha256,
                        segment: key.to_owned(),
                        line,
                    };
                    self.listed.push(listed).await.map_err(spill_failed)?;
                }
                Err(e) => {
                    let reason = match e {
                        StoreError::Corrupt { reason, .. } => reason,
                        other => error_chain(&other),
                    };
                    report.found(
                        format!(
                            "catalog: unreadable: {key} {reason}; an entry only it held is reported missing (recarch catalog rebuild writes every entry anew)"
                        ),
                        on_problem,
                    );
                }
            }
        }
        Ok(())
    }

    /// A segment that could not be read, or a listing of `catalog/` that ended early (both
    /// reported by the ledger check, which reads them).
    pub(super) fn incomplete(&mut self) {
        self.complete = false;
    }

    /// Joins what the manifests derive with what the segments list. `manifests_complete`:
    /// whether every manifest was listed (otherwise an entry naming an unlisted one is
    /// counted, not reported as naming nothing).
    pub(super) async fn finish(
        self,
        manifests_complete: bool,
        report: &mut VerifyReport,
        on_problem: &mut impl FnMut(&str),
    ) -> Result<(), ExitError> {
        // No catalog at all (an archive written before it, or `catalog/` deleted): one
        // finding, not one per manifest.
        if self.segments == 0 && self.complete && self.derived_entries > 0 {
            report.found(
                format!(
                    "catalog: none: the manifests derive {} catalog entries but catalog/ has no segment, so ls, show and export find nothing; run recarch catalog rebuild (or any ls) to build it",
                    self.derived_entries
                ),
                on_problem,
            );
            return Ok(());
        }
        let trusted = Trusted {
            missing: self.complete,
            unnamed: manifests_complete,
        };
        let (events, mut received) = tokio::sync::mpsc::channel(EVENT_QUEUE);
        let joiner = tokio::task::spawn_blocking(move || join(self.derived, self.listed, trusted, &events));
        while let Some(problem) = received.recv().await {
            report.found(problem, on_problem);
        }
        joiner
            .await
            .map_err(|e| spill_failed(io::Error::other(e)))?
            .map_err(spill_failed)
    }
}

/// Which findings are listed one by one (those an incomplete listing cannot produce
/// falsely); the others are counted in one line.
#[derive(Debug, Clone, Copy)]
struct Trusted {
    /// Every segment was read: an entry in none of them is missing.
    missing: bool,
    /// Every manifest was listed: an entry naming none of them names nothing.
    unnamed: bool,
}

/// Walks the sorted derived and listed entries side by side, one manifest at a time
/// (blocking: reads the spilled runs), sending each problem.
fn join(
    derived: Spill<Derived>,
    listed: Spill<Listed>,
    trusted: Trusted,
    events: &tokio::sync::mpsc::Sender<String>,
) -> io::Result<()> {
    // The receiver goes away only when verify has stopped on an error of its own.
    let send = |problem: String| {
        events
            .blocking_send(problem)
            .map_err(|_| io::Error::other("verify stopped"))
    };
    let mut derived = derived.into_sorted()?;
    let mut listed = listed.into_sorted()?;
    let mut next_derived = derived.next()?;
    let mut next_listed = listed.next()?;
    let (mut untold_missing, mut untold_unnamed) = (0u64, 0u64);
    loop {
        let manifest = match (&next_derived, &next_listed) {
            (None, None) => break,
            (Some(d), None) => d.manifest.clone(),
            (None, Some(l)) => l.manifest.clone(),
            (Some(d), Some(l)) => d.manifest.as_str().min(l.manifest.as_str()).to_owned(),
        };
        // The manifest's entries (and whether each is listed): one manifest's at a time.
        let mut entries: Vec<(Derived, bool)> = Vec::new();
        while let Some(d) = next_derived.take_if(|d| d.manifest == manifest) {
            entries.push((d, false));
            next_derived = derived.next()?;
        }
        let exists = !entries.is_empty();
        let unread = entries.iter().any(|(d, _)| d.searched.is_none());
        // The manifest's lines, and the newest marker segment of each content disposed of.
        let mut lines: Vec<Listed> = Vec::new();
        while let Some(l) = next_listed.take_if(|l| l.manifest == manifest) {
            lines.push(l);
            next_listed = listed.next()?;
        }
        let mut marked: HashMap<&str, &str> = HashMap::new();
        for l in lines.iter().filter(|l| l.searched.is_none()) {
            let newest = marked.entry(l.sha256.as_str()).or_insert(l.segment.as_str());
            if *newest < l.segment.as_str() {
                *newest = l.segment.as_str();
            }
        }
        for l in &lines {
            let Some(searched) = &l.searched else { continue };
            // Cataloged before its disposal: hidden from readers, and meant to be gone.
            if marked.get(l.sha256.as_str()).is_some_and(|m| *m > l.segment.as_str()) {
                continue;
            }
            let at = format!("{} line {}", l.segment, l.line);
            if !exists {
                if trusted.unnamed {
                    send(format!(
                        "catalog: wrong: {at}: names {manifest}, which is not in the archive"
                    ))?;
                } else {
                    untold_unnamed += 1;
                }
            } else if !unread {
                let mut same = entries.iter_mut().filter(|(d, _)| d.sha256 == l.sha256).peekable();
                match same.peek() {
                    None => send(format!(
                        "catalog: wrong: {at}: names {manifest} with content {}, which that manifest does not have",
                        l.sha256
                    ))?,
                    Some((first, _)) => {
                        let first = first.searched.clone();
                        let mut right = false;
                        for (d, found) in same {
                            *found = true;
                            right |= d.searched.as_ref() == Some(searched);
                        }
                        if let (false, Some(first)) = (right, first) {
                            send(format!(
                                "catalog: wrong: {at}: {} ({manifest})",
                                searched.differences(&first).join("; ")
                            ))?;
                        }
                    }
                }
            }
        }
        for (d, _) in entries.iter().filter(|(d, found)| !found && d.searched.is_some()) {
            if trusted.missing {
                send(format!(
                    "catalog: missing: {} ({}): ls, show and export cannot find it; run recarch catalog rebuild",
                    d.manifest, d.sha256
                ))?;
            } else {
                untold_missing += 1;
            }
        }
    }
    if untold_missing > 0 {
        send(format!(
            "catalog: {untold_missing} entries the manifests derive are in no segment read; not reported as missing one by one, as a segment could not be read or listed"
        ))?;
    }
    if untold_unnamed > 0 {
        send(format!(
            "catalog: {untold_unnamed} entries name a manifest not listed; not reported as wrong one by one, as the manifest listing was incomplete"
        ))?;
    }
    Ok(())
}

impl Searched {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        write_str(out, &self.kind)?;
        write_str(out, &self.organizer_id)?;
        write_str(out, &self.id)?;
        write_opt(out, self.meeting_id.as_deref())?;
        write_opt(out, self.call_id.as_deref())?;
        write_opt(out, self.created_date_time.as_deref())?;
        out.write_all(&self.size.to_le_bytes())
    }

    /// A flag byte, then the fields when there are some.
    fn write_optional(searched: Option<&Self>, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&[u8::from(searched.is_some())])?;
        match searched {
            Some(searched) => searched.write_to(out),
            None => Ok(()),
        }
    }

    /// What [`Searched::write_optional`] wrote.
    fn read_optional(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        let mut flag = [0u8; 1];
        input.read_exact(&mut flag)?;
        if flag[0] != 0 {
            Searched::read_from(input).map(Some)
        } else {
            Ok(None)
        }
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Self> {
        Ok(Searched {
            kind: read_str(input)?,
            organizer_id: read_str(input)?,
            id: read_str(input)?,
            meeting_id: read_opt(input)?,
            call_id: read_opt(input)?,
            created_date_time: read_opt(input)?,
            size: read_u64(input)?,
        })
    }
}

impl Entry for Derived {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        write_str(out, &self.manifest)?;
        write_str(out, &self.sha256)?;
        Searched::write_optional(self.searched.as_ref(), out)
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        let Some(manifest) = read_first(input)? else {
            return Ok(None);
        };
        let sha256 = read_str(input)?;
        let searched = Searched::read_optional(input)?;
        Ok(Some(Derived {
            manifest,
            sha256,
            searched,
        }))
    }
}

impl Entry for Listed {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        write_str(out, &self.manifest)?;
        write_str(out, &self.sha256)?;
        write_str(out, &self.segment)?;
        out.write_all(&self.line.to_le_bytes())?;
        Searched::write_optional(self.searched.as_ref(), out)
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        let Some(manifest) = read_first(input)? else {
            return Ok(None);
        };
        let sha256 = read_str(input)?;
        let segment = read_str(input)?;
        let line = read_u64(input)?;
        let searched = Searched::read_optional(input)?;
        Ok(Some(Listed {
            manifest,
            sha256,
            segment,
            line,
            searched,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use recarch_store::{Archive, ContentRef, Manifest, OrganizerId, Sha256Digest};

    use super::super::testing::ORG;
    use super::*;

    /// A recording's manifest as stored, and the entries it derives.
    fn recording(n: u32) -> (StoredManifest, Vec<CatalogEntry>) {
        let org = OrganizerId::parse(ORG).unwrap();
        let id = format!("r{n}");
        let body = format!("recording {n}");
        let mut m = Manifest::new(
            "callRecording",
            &id,
            org.clone(),
            ContentRef::new(Sha256Digest::of(body.as_bytes()), body.len() as u64, "video/mp4"),
        );
        m.extra.insert("meetingId".into(), format!("m{n}").into());
        let key = Archive::manifest_key(&org, &id);
        let entries = CatalogEntry::of_manifest(&key, &m);
        let stored = StoredManifest {
            key,
            bytes: serde_json::to_vec(&m).unwrap().into(),
        };
        (stored, entries)
    }

    fn segment(entries: &[CatalogEntry]) -> Vec<u8> {
        let mut body = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut body, e).unwrap();
            body.push(b'\n');
        }
        body
    }

    async fn run(check: CatalogCheck, manifests_complete: bool, report: &mut VerifyReport) -> Vec<String> {
        let mut printed = Vec::new();
        check
            .finish(manifests_complete, report, &mut |p: &str| printed.push(p.to_owned()))
            .await
            .unwrap();
        printed
    }

    /// Every finding of the join, each once, with lists small enough to spill and merge in
    /// several levels; duplicates and annotations are not findings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_join_finds_missing_and_wrong_entries_while_spilling() {
        let mut check = CatalogCheck::new(Limits::TINY);
        let mut report = VerifyReport::default();
        let mut listed = Vec::new();
        let mut keys = Vec::new();
        for n in 0..12 {
            let (stored, entries) = recording(n);
            check.manifest(&stored).await.unwrap();
            keys.push(stored.key);
            listed.extend(entries);
        }
        // Manifest 0 is not cataloged; 1 twice, once annotated; 2 with another meeting.
        let missing = listed.remove(0);
        let mut annotated = listed[0].clone();
        annotated.extra.insert("subject".into(), "Review".into());
        listed.push(annotated);
        listed.push(listed[0].clone());
        listed[1].meeting_id = Some("elsewhere".into());
        // An entry naming a manifest that does not exist, and one naming a manifest that
        // exists but cannot be read (not compared: the manifest check reports it).
        let mut nowhere = listed[2].clone();
        nowhere.manifest = format!("manifests/recordings/{ORG}/{}.json", "0".repeat(64));
        listed.push(nowhere.clone());
        let unread = format!("manifests/recordings/{ORG}/{}.json", "1".repeat(64));
        check.exists(&unread).await.unwrap();
        let mut of_unread = listed[2].clone();
        of_unread.manifest = unread;
        listed.push(of_unread);
        let mut bytes = segment(&listed);
        bytes.extend_from_slice(b"\n[1]\n");
        let printed = &mut Vec::new();
        let mut note = |p: &str| printed.push(p.to_owned());
        check
            .segment("catalog/s.jsonl", &bytes, &mut report, &mut note)
            .await
            .unwrap();
        assert_eq!(report.catalog_entries, listed.len() as u64);
        let lines = listed.len() + 2;
        let mut printed = std::mem::take(printed);
        printed.extend(run(check, true, &mut report).await);
        assert_eq!(printed.len(), 4, "{printed:#?}");
        assert!(
            printed[0].starts_with(&format!(
                "catalog: unreadable: catalog/s.jsonl line {lines}: not a catalog entry"
            )),
            "{printed:#?}"
        );
        let expected = [
            format!(
                "catalog: missing: {} ({}): ls, show and export cannot find it; run recarch catalog rebuild",
                missing.manifest, missing.sha256
            ),
            format!(
                "catalog: wrong: catalog/s.jsonl line 2: meetingId \"elsewhere\", the manifest says \"m2\" ({})",
                keys[2]
            ),
            format!(
                "catalog: wrong: catalog/s.jsonl line {}: names {}, which is not in the archive",
                listed.len() - 1,
                nowhere.manifest
            ),
        ];
        for e in expected {
            assert!(printed.contains(&e), "{e} in {printed:#?}");
        }
        assert_eq!(report.problem_count, 4);
    }

    /// A disposal marker hides the entries of its `(manifest, sha256)` in segments before its
    /// own: those are not compared (their manifest is gone on purpose), and do not make a
    /// manifest that still exists complete; entries in later segments count as usual.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn markers_hide_what_segments_before_them_list() {
        let mut check = CatalogCheck::new(Limits::TINY);
        let mut report = VerifyReport::default();
        let (gone, gone_entries) = recording(0);
        let (kept, kept_entries) = recording(1);
        let (back, back_entries) = recording(2);
        check.manifest(&kept).await.unwrap();
        check.manifest(&back).await.unwrap();
        let marker = |e: &CatalogEntry| {
            format!(
                "{{\"disposed\":{{\"manifest\":\"{}\",\"sha256\":\"{}\",\"disposedAt\":\"2026-01-01T00:00:00Z\",\"record\":\"ledger/x.json\"}}}}\n",
                e.manifest, e.sha256
            )
        };
        // Every item cataloged in segment 1; 0 (gone) and 1 (still there) marked in segment
        // 2; 2 marked too, then cataloged again in segment 3 (archived again).
        let mut all = gone_entries.clone();
        all.extend(kept_entries.clone());
        all.extend(back_entries.clone());
        let mut printed = Vec::new();
        let mut note = |p: &str| printed.push(p.to_owned());
        check
            .segment("catalog/1.jsonl", &segment(&all), &mut report, &mut note)
            .await
            .unwrap();
        let markers = [&gone_entries[0], &kept_entries[0], &back_entries[0]]
            .map(marker)
            .concat();
        check
            .segment("catalog/2.jsonl", markers.as_bytes(), &mut report, &mut note)
            .await
            .unwrap();
        check
            .segment("catalog/3.jsonl", &segment(&back_entries), &mut report, &mut note)
            .await
            .unwrap();
        assert_eq!((report.catalog_entries, report.catalog_disposed), (4, 3));
        printed.extend(run(check, true, &mut report).await);
        assert_eq!(
            printed,
            [format!(
                "catalog: missing: {} ({}): ls, show and export cannot find it; run recarch catalog rebuild",
                kept.key, kept_entries[0].sha256
            )],
            "{}",
            gone.key
        );
    }

    /// With a segment unread, entries in no segment read are counted, not listed; with the
    /// manifest listing incomplete, entries naming no manifest listed likewise. No segment
    /// at all is one finding.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn incomplete_listings_count_and_no_catalog_is_one_finding() {
        let mut check = CatalogCheck::new(Limits::TINY);
        let mut report = VerifyReport::default();
        let (stored, entries) = recording(0);
        check.manifest(&stored).await.unwrap();
        let mut nowhere = entries[0].clone();
        nowhere.manifest = format!("manifests/recordings/{ORG}/{}.json", "0".repeat(64));
        check
            .segment("catalog/s.jsonl", &segment(&[nowhere]), &mut report, &mut |_| {})
            .await
            .unwrap();
        check.incomplete();
        let printed = run(check, false, &mut report).await;
        assert_eq!(
            printed,
            [
                "catalog: 1 entries the manifests derive are in no segment read; not reported as missing one by one, as a segment could not be read or listed",
                "catalog: 1 entries name a manifest not listed; not reported as wrong one by one, as the manifest listing was incomplete",
            ]
        );

        let mut check = CatalogCheck::new(Limits::TINY);
        for n in 0..3 {
            check.manifest(&recording(n).0).await.unwrap();
        }
        let printed = run(check, true, &mut VerifyReport::default()).await;
        assert_eq!(printed.len(), 1, "{printed:#?}");
        assert!(
            printed[0].starts_with("catalog: none: the manifests derive 3 catalog entries"),
            "{printed:#?}"
        );
        // No manifest and no catalog (an empty archive): nothing to say.
        let printed = run(CatalogCheck::new(Limits::TINY), true, &mut VerifyReport::default()).await;
        assert!(printed.is_empty(), "{printed:#?}");
    }
}
