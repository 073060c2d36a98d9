//! `recarch ls`: one line per archived item that passes the filters: aligned columns, or
//! JSON Lines with `--json`.

use std::io::{BufWriter, Write as _};

use recarch_store::{Archive, CatalogEntry};

use super::filter::Filters;
use super::{Found, find};
use crate::exit::{Exit, ExitError};
use crate::output::StdoutError;

/// Characters of the SHA-256 shown in the text columns.
const SHA_PREFIX: usize = 12;
/// Members of every JSON line, null when the item has none.
const ALWAYS: [&str; 3] = ["meetingId", "callId", "createdDateTime"];
/// Rows whose cells set the text columns' widths; later rows are printed as they come, in
/// flat memory (a wider cell there pushes its row's later columns right).
const WIDTH_ROWS: usize = 10_000;

/// Lists the items `filters` select. Exit 0 (also when nothing matches), 4 when the archive
/// cannot be read.
pub async fn ls_cli(
    archive: &Archive,
    ledger: &crate::ledger::Ledger,
    filters: &Filters,
    json: bool,
) -> Result<Exit, ExitError> {
    let mut found = find(archive, ledger, filters).await?;
    let printed = if json {
        print_json(&mut found)?
    } else {
        print_text(&mut found)?
    };
    crate::output::finish(printed, Exit::Ok)
}

/// What printing gives: an error of the search's temporary files (exit 4) at once, and
/// stdout's as the output layer judges it.
type Printed = Result<Result<(), StdoutError>, ExitError>;

fn print_json(found: &mut Found) -> Printed {
    let mut out = BufWriter::new(std::io::stdout().lock());
    while let Some(entry) = found.next_entry()? {
        let mut line = serde_json::to_value(&entry).unwrap_or_default();
        // Every line has these members, null where the item has none (a contact's meeting
        // and creation time, a meeting's call), so that a reader can count on the keys.
        if let Some(members) = line.as_object_mut() {
            for name in ALWAYS {
                members.entry(name).or_insert(serde_json::Value::Null);
            }
        }
        let written = serde_json::to_writer(&mut out, &line)
            .map_err(|e| StdoutError(e.into()))
            .and_then(|()| out.write_all(b"\n").map_err(StdoutError));
        if let Err(e) = written {
            return Ok(Err(e));
        }
    }
    Ok(out.flush().map_err(StdoutError))
}

/// The text columns of an entry: kind, organizer, meeting (or call, or contact), created,
/// size, sha256 prefix, id.
fn columns(entry: &CatalogEntry) -> [String; 7] {
    let text = |name: &str| entry.extra.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let organizer = text("organizerName").unwrap_or_else(|| entry.organizer_id.clone());
    let about = text("subject")
        .or_else(|| text("displayName"))
        .or_else(|| entry.meeting_id.clone())
        .or_else(|| entry.call_id.as_ref().map(|c| format!("call {c}")))
        .unwrap_or_default();
    let when = entry
        .created_date_time
        .clone()
        .unwrap_or_else(|| entry.archived_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    [
        entry.kind.to_string(),
        organizer,
        truncate(&about, 40),
        when,
        entry.size.to_string(),
        entry.sha256.chars().take(SHA_PREFIX).collect(),
        entry.id.clone(),
    ]
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn print_text(found: &mut Found) -> Printed {
    const HEADER: [&str; 7] = ["KIND", "ORGANIZER", "MEETING", "CREATED", "SIZE", "SHA256", "ID"];
    let mut rows: Vec<[String; 7]> = Vec::new();
    while rows.len() < WIDTH_ROWS {
        match found.next_entry()? {
            Some(entry) => rows.push(columns(&entry)),
            None => break,
        }
    }
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    let line = |out: &mut BufWriter<std::io::StdoutLock<'_>>, cells: &[&str]| -> Result<(), StdoutError> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                // The size column is right-aligned, the others left-aligned.
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i == 4 {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad));
                }
                text.push_str("  ");
            }
        }
        writeln!(out, "{}", text.trim_end()).map_err(StdoutError)
    };
    let print = |out: &mut BufWriter<std::io::StdoutLock<'_>>, row: &[String; 7]| {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(out, &cells)
    };
    let mut printed = line(&mut out, &HEADER);
    for row in &rows {
        printed = printed.and_then(|()| print(&mut out, row));
    }
    while printed.is_ok()
        && let Some(entry) = found.next_entry()?
    {
        printed = print(&mut out, &columns(&entry));
    }
    Ok(printed.and_then(|()| out.flush().map_err(StdoutError)))
}
