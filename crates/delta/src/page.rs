//! Delta pages: items, removed markers and the continuation link.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// An `@odata.nextLink`: more pages follow in this round. Opaque: followed verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NextLink(pub String);

/// An `@odata.deltaLink`: the round is complete; call it next run for what changed since.
/// Opaque: followed verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeltaLink(pub String);

/// Where the round goes after a page: the link to save as the checkpoint once every item of
/// the page is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continuation {
    /// More pages in this round.
    Next(NextLink),
    /// The round is complete.
    Delta(DeltaLink),
    /// A listing that is not a delta query ([`Paging::List`]) ended: no link to call next
    /// time.
    End,
}

/// How a collection is paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paging {
    /// A delta query: every page carries exactly one of `@odata.nextLink` and
    /// `@odata.deltaLink`.
    #[default]
    Delta,
    /// A plain collection (an ad hoc call's `getAllRecordings`): pages carry
    /// `@odata.nextLink` while more follow, and the last carries no link at all (an
    /// `@odata.deltaLink` there also ends the listing, and is not kept).
    List,
}

impl Continuation {
    /// The link, verbatim (`None` at the [`Continuation::End`] of a listing).
    pub fn link(&self) -> Option<&str> {
        match self {
            Continuation::Next(NextLink(link)) | Continuation::Delta(DeltaLink(link)) => Some(link),
            Continuation::End => None,
        }
    }

    /// Whether no page follows in this round (a deltaLink, or the end of a listing).
    pub fn is_last(&self) -> bool {
        !matches!(self, Continuation::Next(_))
    }
}

/// Why an item was reported as removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovedReason {
    /// `deleted`: permanently gone.
    Deleted,
    /// `changed`: removed from the collection but may be restored.
    Changed,
    /// A reason this client does not know yet, verbatim.
    Other(String),
}

/// One entry of a page's `value`.
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaItem<T> {
    /// A live item, with the raw JSON Graph sent (so that fields unknown to `T` survive).
    Present {
        /// The typed item.
        item: T,
        /// The item exactly as Graph returned it.
        raw: serde_json::Value,
    },
    /// `{"id": .., "@removed": {"reason": ..}}`.
    Removed {
        /// The removed item's id.
        id: String,
        /// Why.
        reason: RemovedReason,
        /// The entry exactly as Graph sent it (for kinds that archive removals).
        raw: serde_json::Value,
    },
    /// An entry that is not a valid `T` (e.g. no `id`): kept so that the caller can record
    /// it as failed instead of losing the whole page.
    Malformed {
        /// The entry as received.
        raw: serde_json::Value,
        /// Why it did not parse.
        error: String,
    },
}

/// One page of a delta round.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The entries, in the order Graph sent them (possibly none, possibly with duplicates).
    pub items: Vec<DeltaItem<T>>,
    /// The link to continue from.
    pub continuation: Continuation,
}

#[derive(Deserialize)]
struct RawPage {
    #[serde(default)]
    value: Option<Vec<serde_json::Value>>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    delta_link: Option<String>,
}

/// Parses a delta page. A page must have a `value` array and exactly one of
/// `@odata.nextLink` / `@odata.deltaLink`.
pub fn parse_page<T: DeserializeOwned>(body: &[u8]) -> Result<Page<T>, String> {
    parse_page_as(body, Paging::Delta)
}

/// Parses a page of a collection paged as `paging` says: a `value` array, and the links
/// [`Paging`] allows.
pub fn parse_page_as<T: DeserializeOwned>(body: &[u8], paging: Paging) -> Result<Page<T>, String> {
    let raw: RawPage = serde_json::from_slice(body).map_err(|e| format!("not a collection page: {e}"))?;
    let values = raw.value.ok_or("no `value` array")?;
    let continuation = match (raw.next_link, raw.delta_link, paging) {
        (Some(_), Some(_), _) => return Err("both @odata.nextLink and @odata.deltaLink".into()),
        (Some(next), None, _) => Continuation::Next(NextLink(next)),
        (None, Some(delta), Paging::Delta) => Continuation::Delta(DeltaLink(delta)),
        (None, None, Paging::Delta) => return Err("neither @odata.nextLink nor @odata.deltaLink".into()),
        // Nothing follows in this listing either way; a delta link a listing may carry is not
        // asked for (its windows are rebuilt from the watermark), so it is not kept.
        (None, _, Paging::List) => Continuation::End,
    };
    let items = values.into_iter().map(parse_item).collect();
    Ok(Page { items, continuation })
}

fn parse_item<T: DeserializeOwned>(raw: serde_json::Value) -> DeltaItem<T> {
    if let Some(removed) = raw.get("@removed") {
        let Some(id) = raw.get("id").and_then(|v| v.as_str()) else {
            return DeltaItem::Malformed {
                error: "removed entry without an id".into(),
                raw,
            };
        };
        let reason = match removed.get("reason").and_then(|v| v.as_str()) {
            Some("deleted") => RemovedReason::Deleted,
            Some("changed") => RemovedReason::Changed,
            Some(other) => RemovedReason::Other(other.to_owned()),
            None => RemovedReason::Other(String::new()),
        };
        return DeltaItem::Removed {
            id: id.to_owned(),
            reason,
            raw,
        };
    }
    match T::deserialize(&raw) {
        Ok(item) => DeltaItem::Present { item, raw },
        Err(e) => DeltaItem::Malformed {
            error: e.to_string(),
            raw,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{CallRecording, Contact};

    #[test]
    fn page_needs_exactly_one_link() {
        assert!(parse_page::<Contact>(br#"{"value":[]}"#).is_err());
        assert!(parse_page::<Contact>(br#"{"value":[],"@odata.nextLink":"a","@odata.deltaLink":"b"}"#).is_err());
        assert!(parse_page::<Contact>(br#"{"@odata.nextLink":"a"}"#).is_err());
        assert!(parse_page::<Contact>(b"<html>").is_err());
        let page = parse_page::<Contact>(br#"{"value":[],"@odata.nextLink":"https://x/a?$skiptoken=b%3D"}"#)
            .expect("valid empty page");
        assert!(page.items.is_empty());
        assert_eq!(
            page.continuation,
            Continuation::Next(NextLink("https://x/a?$skiptoken=b%3D".into()))
        );
    }

    #[test]
    fn a_listing_ends_without_a_link() {
        let end = parse_page_as::<CallRecording>(br#"{"value":[]}"#, Paging::List).expect("last page");
        assert_eq!(end.continuation, Continuation::End);
        assert!(end.continuation.is_last());
        assert_eq!(end.continuation.link(), None);
        let next = parse_page_as::<CallRecording>(br#"{"value":[],"@odata.nextLink":"n"}"#, Paging::List)
            .expect("a page with more to come");
        assert_eq!(next.continuation.link(), Some("n"));
        assert!(!next.continuation.is_last());
        let delta = parse_page_as::<CallRecording>(br#"{"value":[],"@odata.deltaLink":"d"}"#, Paging::List)
            .expect("a delta link ends a listing too");
        assert_eq!(delta.continuation, Continuation::End);
        assert!(
            parse_page_as::<CallRecording>(
                br#"{"value":[],"@odata.nextLink":"n","@odata.deltaLink":"d"}"#,
                Paging::List
            )
            .is_err()
        );
    }

    #[test]
    fn removed_and_malformed_items() {
        let body = br##"{"value":[
            {"@odata.type":"#microsoft.graph.contact","id":"AA+/=","@removed":{"reason":"deleted"}},
            {"id":"BB","@removed":{"reason":"changed"}},
            {"id":"CC","@removed":{}},
            {"displayName":"no id"},
            {"id":"DD","displayName":"Ada","futureField":1}
        ],"@odata.deltaLink":"d"}"##;
        let page = parse_page::<Contact>(body).expect("valid page");
        assert!(
            matches!(&page.items[0], DeltaItem::Removed { id, reason: RemovedReason::Deleted, .. } if id == "AA+/=")
        );
        assert!(matches!(
            &page.items[1],
            DeltaItem::Removed {
                reason: RemovedReason::Changed,
                ..
            }
        ));
        assert!(matches!(&page.items[2], DeltaItem::Removed { reason: RemovedReason::Other(r), .. } if r.is_empty()));
        assert!(matches!(&page.items[3], DeltaItem::Malformed { .. }));
        match &page.items[4] {
            DeltaItem::Present { item, raw } => {
                assert_eq!(item.id, "DD");
                assert_eq!(raw["futureField"], 1);
            }
            other => panic!("expected a contact, got {other:?}"),
        }
    }

    #[test]
    fn call_recording_keeps_unknown_fields() {
        let body = br#"{"value":[{"id":"x+/=","meetingId":"m","createdDateTime":"2024-01-01T00:00:00.1234567Z",
            "recordingContentUrl":"https://g/c","meetingOrganizer":{"user":{"id":"u","tenantId":"t"}},
            "callId":"c","contentCorrelationId":"cc"}],"@odata.deltaLink":"d"}"#;
        let page = parse_page::<CallRecording>(body).expect("valid page");
        let DeltaItem::Present { item, raw } = &page.items[0] else {
            panic!("expected a recording")
        };
        assert_eq!(item.id, "x+/=");
        assert_eq!(item.organizer_id(), Some("u"));
        assert_eq!(item.created_date_time.as_deref(), Some("2024-01-01T00:00:00.1234567Z"));
        assert_eq!(raw["contentCorrelationId"], "cc");
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_page::<CallRecording>(&body);
        }

        #[test]
        fn links_survive_verbatim(link in "[ -~]{1,200}") {
            let body = serde_json::json!({"value": [], "@odata.nextLink": link}).to_string();
            let page = parse_page::<Contact>(body.as_bytes()).expect("valid page");
            proptest::prop_assert_eq!(page.continuation.link(), Some(link.as_str()));
        }
    }
}
