//! The filters `ls`, `export` (and holds) share: organizers, kinds, a time window and a
//! meeting.

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use recarch_store::{CatalogEntry, Kind, OrganizerId};

use crate::exit::{Exit, ExitError};

/// The filters as given on the command line.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Only this organizer's (user's) items: a user id (GUID); repeatable.
    #[arg(long, value_name = "ID")]
    pub organizer: Vec<String>,
    /// Only this kind: recordings, transcripts, contacts, adhoc_recordings or
    /// adhoc_transcripts; repeatable.
    #[arg(long, value_name = "KIND")]
    pub kind: Vec<String>,
    /// Items created at or after T (RFC 3339, or YYYY-MM-DD for midnight UTC); contacts by
    /// the version's archivedAt.
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// Items created before T (exclusive; RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
    /// Only this meeting's (or ad hoc call's) recordings and transcripts.
    #[arg(long, value_name = "MEETINGID")]
    pub meeting: Option<String>,
}

/// Validated filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    /// Organizers (none: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizers: Vec<OrganizerId>,
    /// Kinds (none: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<Kind>,
    /// From, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// To, exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// A meeting or call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting: Option<String>,
}

impl FilterArgs {
    /// Checks every filter; a bad one is a usage error (exit 2) naming the flag and value.
    pub fn parse(&self) -> Result<Filters, ExitError> {
        let usage = |message: String| ExitError::new(Exit::Config, anyhow::anyhow!(message));
        let mut organizers = Vec::new();
        for o in &self.organizer {
            let id = OrganizerId::parse(o.trim())
                .map_err(|_| usage(format!("--organizer {o:?} is not a user id (a GUID)")))?;
            if !organizers.contains(&id) {
                organizers.push(id);
            }
        }
        let mut kinds = Vec::new();
        for k in &self.kind {
            let kind = Kind::from_dirname(k.trim()).ok_or_else(|| {
                usage(format!(
                    "--kind {k:?} is not a kind (recordings, transcripts, contacts, adhoc_recordings or adhoc_transcripts)"
                ))
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let time = |flag: &str, value: &Option<String>| -> Result<Option<DateTime<Utc>>, ExitError> {
            value
                .as_deref()
                .map(|v| {
                    parse_time(v).ok_or_else(|| {
                        usage(format!(
                            "--{flag} {v:?} is neither an RFC 3339 date-time (2026-01-31T09:00:00Z) nor a date (2026-01-31)"
                        ))
                    })
                })
                .transpose()
        };
        let (from, to) = (time("from", &self.from)?, time("to", &self.to)?);
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(usage(format!(
                    "--from {} is not before --to {}: the window is empty",
                    f.to_rfc3339(),
                    t.to_rfc3339()
                )));
            }
        }
        // An empty id (an unset shell variable) would select everything: refused.
        let meeting = match self.meeting.as_deref().map(str::trim) {
            Some("") => {
                return Err(usage(
                    "--meeting is empty: give a meeting or call id, or leave the flag out to select every item".into(),
                ));
            }
            other => other.map(str::to_owned),
        };
        Ok(Filters {
            organizers,
            kinds,
            from,
            to,
            meeting,
        })
    }
}

/// RFC 3339, or `YYYY-MM-DD` for midnight UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

impl Filters {
    /// Whether `entry` passes every filter.
    pub fn matches(&self, entry: &CatalogEntry) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&entry.kind) {
            return false;
        }
        if !self.organizers.is_empty() && !self.organizers.iter().any(|o| o.as_str() == entry.organizer_id) {
            return false;
        }
        if let Some(meeting) = &self.meeting {
            let container = entry.meeting_id.as_deref().or(entry.call_id.as_deref());
            if container != Some(meeting.as_str()) {
                return false;
            }
        }
        if self.from.is_some() || self.to.is_some() {
            let Some(t) = entry.searched_time() else { return false };
            if self.from.is_some_and(|f| t < f) || self.to.is_some_and(|to| t >= to) {
                return false;
            }
        }
        true
    }

    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn dates_are_midnight_utc_and_windows_must_not_be_empty() {
        assert_eq!(
            parse_time("2026-01-31").unwrap().to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2026-01-31T10:00:00+02:00").unwrap().to_rfc3339(),
            "2026-01-31T08:00:00+00:00"
        );
        assert!(parse_time("31/01/2026").is_none());
        let args = FilterArgs {
            from: Some("2026-02-01".into()),
            to: Some("2026-01-01".into()),
            ..FilterArgs::default()
        };
        let e = args.parse().unwrap_err();
        assert!(e.error.to_string().contains("the window is empty"), "{}", e.error);
        let args = FilterArgs {
            kind: vec!["videos".into()],
            ..FilterArgs::default()
        };
        assert!(
            args.parse()
                .unwrap_err()
                .error
                .to_string()
                .contains("--kind \"videos\"")
        );
        for blank in ["", "  "] {
            let args = FilterArgs {
                meeting: Some(blank.into()),
                ..FilterArgs::default()
            };
            let e = args.parse().unwrap_err();
            assert_eq!(e.exit, Exit::Config);
            assert!(e.error.to_string().contains("--meeting is empty"), "{}", e.error);
        }
        let args = FilterArgs {
            meeting: Some(" 19:meeting_x@thread.v2 ".into()),
            ..FilterArgs::default()
        };
        assert_eq!(args.parse().unwrap().meeting.as_deref(), Some("19:meeting_x@thread.v2"));
    }
}
