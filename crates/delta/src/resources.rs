//! Delta resources: where each round starts, and the item types.
//!
//! Adding a resource takes a first-request builder and an item type; paging, checkpoints,
//! removed markers and faults are the same for all.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

/// The first request of a delta round. Query options (`$select`, `$top`) and preferences
/// (`Prefer: odata.maxpagesize`) go here only: Graph encodes them in the links it returns.
#[derive(Debug, Clone)]
pub struct DeltaRequest {
    /// The URL of the first page.
    pub url: Url,
    /// Headers sent with the first request only.
    pub headers: HeaderMap,
}

/// `GET {base}/users/{organizer}/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{organizer}',startDateTime={t})/delta`.
///
/// `meetingOrganizerUserId` is mandatory; `startDateTime` is sent only when given.
/// `organizer` must already be validated (a GUID): it is placed in the path as is.
pub fn recordings_request(base_url: &Url, organizer: &str, start_date_time: Option<&str>) -> DeltaRequest {
    meeting_artifacts_request(base_url, organizer, "getAllRecordings", start_date_time)
}

/// `GET {base}/users/{organizer}/onlineMeetings/{function}(meetingOrganizerUserId='{organizer}'[,startDateTime={t}])/delta`:
/// the shape `getAllRecordings` and `getAllTranscripts` share.
fn meeting_artifacts_request(
    base_url: &Url,
    organizer: &str,
    function: &str,
    start_date_time: Option<&str>,
) -> DeltaRequest {
    let mut call = format!("{function}(meetingOrganizerUserId='{organizer}'");
    if let Some(start) = start_date_time {
        call.push_str(",startDateTime=");
        call.push_str(start);
    }
    call.push(')');
    DeltaRequest {
        url: join(base_url, &["users", organizer, "onlineMeetings", &call, "delta"]),
        headers: HeaderMap::new(),
    }
}

/// `GET {base}/users/{organizer}/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='{organizer}',startDateTime={t})/delta`
/// (permission `OnlineMeetingTranscript.Read.All`). Like [`recordings_request`].
pub fn transcripts_request(base_url: &Url, organizer: &str, start_date_time: Option<&str>) -> DeltaRequest {
    meeting_artifacts_request(base_url, organizer, "getAllTranscripts", start_date_time)
}

/// `GET {base}/users/{user}/adhocCalls/{function}(userId='{user}'[,startDateTime={t0}],endDateTime={t1})`:
/// the recordings (`getAllRecordings`, permission `CallRecordings.Read.All`) or transcripts
/// (`getAllTranscripts`, `CallTranscripts.Read.All`) of the ad hoc calls (1:1, group, PSTN)
/// `user` started, created in `[since, until)`. Not a delta query: its pages end without a link
/// ([`crate::Paging::List`]). Instants are sent in UTC to the second (`2025-01-01T00:00:00Z`),
/// unquoted, as the API reference writes them; `user` must already be validated (a GUID).
pub fn adhoc_request(
    base_url: &Url,
    user: &str,
    artifacts: AdhocArtifacts,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: chrono::DateTime<chrono::Utc>,
) -> DeltaRequest {
    let instant = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let function = match artifacts {
        AdhocArtifacts::Recordings => "getAllRecordings",
        AdhocArtifacts::Transcripts => "getAllTranscripts",
    };
    let mut call = format!("{function}(userId='{user}'");
    if let Some(since) = since {
        call.push_str(",startDateTime=");
        call.push_str(&instant(since));
    }
    call.push_str(",endDateTime=");
    call.push_str(&instant(until));
    call.push(')');
    DeltaRequest {
        url: join(base_url, &["users", user, "adhocCalls", &call]),
        headers: HeaderMap::new(),
    }
}

/// Which artifacts of ad hoc calls [`adhoc_request`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdhocArtifacts {
    /// `getAllRecordings`.
    Recordings,
    /// `getAllTranscripts`.
    Transcripts,
}

/// Adds `$top` to a first request. Off by default: with `$top` Graph may drop the nextLink (a
/// documented known issue), ending the round early.
pub fn with_top(mut request: DeltaRequest, top: u32) -> DeltaRequest {
    append_option(&mut request.url, "$top", &top.to_string());
    request
}

/// `GET {base}/users/{user}/contactFolders/{folder}/contacts/delta`, with `$select` when
/// `select` is not empty and `Prefer: odata.maxpagesize=N` when `max_page_size` is given.
pub fn contacts_request(
    base_url: &Url,
    user: &str,
    folder: &str,
    select: &[&str],
    max_page_size: Option<u32>,
) -> DeltaRequest {
    let mut url = join(
        base_url,
        &["users", user, "contactFolders", folder, "contacts", "delta"],
    );
    if !select.is_empty() {
        append_option(&mut url, "$select", &select.join(","));
    }
    let mut headers = HeaderMap::new();
    if let Some(n) = max_page_size {
        if let Ok(value) = HeaderValue::from_str(&format!("odata.maxpagesize={n}")) {
            headers.insert(HeaderName::from_static("prefer"), value);
        }
    }
    DeltaRequest { url, headers }
}

/// Appends an OData system query option, keeping `$` and `,` literal as the API reference
/// writes them (other reserved characters in `value` are percent-encoded).
pub(crate) fn append_option(url: &mut Url, name: &str, value: &str) {
    const VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b',')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b':');
    let value = percent_encoding::utf8_percent_encode(value, VALUE);
    let query = match url.query() {
        Some(q) if !q.is_empty() => format!("{q}&{name}={value}"),
        _ => format!("{name}={value}"),
    };
    url.set_query(Some(&query));
}

/// Appends path segments to the base URL, percent-encoding each as a path segment.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// A `callRecording` as listed by `getAllRecordings`. Only what the archiver needs is typed;
/// the raw JSON travels alongside (see [`crate::DeltaItem::Present`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecording {
    /// The recording id: standard base64, may contain `/`, `+` and `=`.
    pub id: String,
    /// The meeting the recording belongs to.
    #[serde(default)]
    pub meeting_id: Option<String>,
    /// When the recording was created, verbatim (Graph uses 7 fractional digits).
    #[serde(default)]
    pub created_date_time: Option<String>,
    /// Where the bytes are.
    #[serde(default)]
    pub recording_content_url: Option<String>,
    /// Who organised the meeting (who started the call, for an ad hoc call; `null` for a
    /// PSTN call).
    #[serde(default)]
    pub meeting_organizer: Option<IdentitySet>,
    /// The ad hoc call the recording belongs to (`adhocCalls/getAllRecordings`).
    #[serde(default)]
    pub call_id: Option<String>,
    /// Pairs the recording with its transcripts.
    #[serde(default)]
    pub content_correlation_id: Option<String>,
}

impl CallRecording {
    /// `meetingOrganizer.user.id`, if present.
    pub fn organizer_id(&self) -> Option<&str> {
        self.meeting_organizer.as_ref()?.user.as_ref()?.id.as_deref()
    }
}

/// A `callTranscript` as listed by `getAllTranscripts`; the raw JSON travels alongside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallTranscript {
    /// The transcript id.
    pub id: String,
    /// The meeting the transcript belongs to.
    #[serde(default)]
    pub meeting_id: Option<String>,
    /// The ad hoc call the transcript belongs to (`adhocCalls/getAllTranscripts`).
    #[serde(default)]
    pub call_id: Option<String>,
    /// When the transcript was created, verbatim.
    #[serde(default)]
    pub created_date_time: Option<String>,
    /// Pairs the transcript with its recording.
    #[serde(default)]
    pub content_correlation_id: Option<String>,
    /// Where the transcript is (fetched with `$format=text/vtt`); its metadata is beside it,
    /// at `…/metadataContent` (Graph names no URL for that).
    #[serde(default)]
    pub transcript_content_url: Option<String>,
}

/// What a [`CallRecording`] and a [`CallTranscript`] alike carry: an id, the ad hoc call it
/// belongs to, and where its content is.
pub trait CallItem: Clone {
    /// The Graph id.
    fn id(&self) -> &str;

    /// The ad hoc call it belongs to.
    fn call_id(&self) -> Option<&str>;

    /// Its content URL, as listed.
    fn content_url(&self) -> Option<&str>;

    /// The item with `url` as its content URL.
    fn with_content_url(&self, url: String) -> Self;
}

/// Implements [`CallItem`] for a call artifact whose content URL is its field `$url`.
macro_rules! call_item {
    ($item:ty, $url:ident) => {
        impl CallItem for $item {
            fn id(&self) -> &str {
                &self.id
            }

            fn call_id(&self) -> Option<&str> {
                self.call_id.as_deref()
            }

            fn content_url(&self) -> Option<&str> {
                self.$url.as_deref()
            }

            fn with_content_url(&self, url: String) -> Self {
                Self {
                    $url: Some(url),
                    ..self.clone()
                }
            }
        }
    };
}

call_item!(CallRecording, recording_content_url);
call_item!(CallTranscript, transcript_content_url);

/// An `identitySet` (only the user part is typed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentitySet {
    /// The user identity.
    #[serde(default)]
    pub user: Option<Identity>,
}

/// A user identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The user id.
    #[serde(default)]
    pub id: Option<String>,
    /// The user's tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// An Outlook contact, as returned by contacts delta (with or without `$select`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// The contact id.
    pub id: String,
    /// The display name, when selected.
    #[serde(default)]
    pub display_name: Option<String>,
    /// E-mail addresses, when selected.
    #[serde(default)]
    pub email_addresses: Option<Vec<EmailAddress>>,
    /// The folder it is in, when selected.
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    /// `@removed` (`{"reason": "deleted"|"changed"}`) when the delta reports it gone.
    #[serde(default, rename = "@removed", skip_serializing_if = "Option::is_none")]
    pub removed: Option<serde_json::Value>,
}

/// An e-mail address of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailAddress {
    /// The display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The address.
    #[serde(default)]
    pub address: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://graph.microsoft.com/beta").expect("static url")
    }

    #[test]
    fn recordings_first_request() {
        let r = recordings_request(&base(), "8b081ef6-4792-4def-b2c9-c363a1bf41d5", None);
        assert_eq!(
            r.url.as_str(),
            "https://graph.microsoft.com/beta/users/8b081ef6-4792-4def-b2c9-c363a1bf41d5/onlineMeetings/getAllRecordings(meetingOrganizerUserId='8b081ef6-4792-4def-b2c9-c363a1bf41d5')/delta"
        );
        let r = recordings_request(
            &base(),
            "8b081ef6-4792-4def-b2c9-c363a1bf41d5",
            Some("2024-01-01T00:00:00Z"),
        );
        assert!(
            r.url.as_str().ends_with(",startDateTime=2024-01-01T00:00:00Z)/delta"),
            "{}",
            r.url
        );
        assert!(r.url.query().is_none());
        let r = with_top(r, 5);
        assert_eq!(r.url.query(), Some("$top=5"));
        let t = transcripts_request(&base(), "8b081ef6-4792-4def-b2c9-c363a1bf41d5", None);
        assert!(
            t.url.as_str().ends_with(
                "/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='8b081ef6-4792-4def-b2c9-c363a1bf41d5')/delta"
            ),
            "{}",
            t.url
        );
    }

    #[test]
    fn contacts_first_request() {
        let r = contacts_request(&base(), "u1", "f1", &["displayName", "emailAddresses"], Some(2));
        assert_eq!(
            r.url.as_str(),
            "https://graph.microsoft.com/beta/users/u1/contactFolders/f1/contacts/delta?$select=displayName,emailAddresses"
        );
        assert_eq!(r.headers["prefer"], "odata.maxpagesize=2");
        let r = contacts_request(&base(), "u1", "f1", &[], None);
        assert!(r.url.query().is_none() && r.headers.is_empty());
    }
}
