//! HTTP helpers every endpoint shares: percent-encoding, raw query and
//! path parsing, date-times, the API version segment, and Graph's response
//! and error shapes.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::header::{ALLOW, CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::faults::RetryAfter;

/// Everything but RFC 3986 unreserved characters: a safe path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one path segment (`+` → `%2B`, `/` → `%2F`, `=` → `%3D`, ...).
pub(crate) fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Percent-encodes a base64 token for use as a raw query value.
pub(crate) fn encode_token(s: &str) -> String {
    encode_segment(s)
}

/// `s` without the ASCII-case-insensitive `prefix`.
pub(crate) fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// `s` without surrounding single quotes, if it has them.
pub(crate) fn unquote(s: &str) -> &str {
    s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')).unwrap_or(s)
}

/// Percent-decodes (lossily: invalid UTF-8 becomes U+FFFD, malformed escapes
/// are kept literally).
pub(crate) fn decode(s: &str) -> Cow<'_, str> {
    percent_decode_str(s).decode_utf8_lossy()
}

/// The `(decoded key, raw value)` pairs of a raw query string.
pub(crate) fn raw_query_pairs(query: Option<&str>) -> Vec<(String, &str)> {
    let Some(q) = query else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k).into_owned(), v)
        })
        .collect()
}

/// The raw value of the first query option named `name` (compared
/// case-insensitively, with or without the `$` prefix).
pub(crate) fn query_option<'a>(pairs: &[(String, &'a str)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.strip_prefix('$').unwrap_or(k).eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Decodes a query value (`+` means space, then percent-decoding).
pub(crate) fn decode_query_value(v: &str) -> String {
    decode(&v.replace('+', " ")).into_owned()
}

/// Parses an ISO 8601 date-time as Graph accepts it in function parameters.
pub(crate) fn parse_datetime(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    let v = v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')).unwrap_or(v);
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Formats a date-time the way the simulator writes it back into links: UTC,
/// with the fraction of a second only when there is one, so that the instant
/// given on the first request is kept exactly.
pub(crate) fn format_datetime(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
}

/// The `,startDateTime=…,endDateTime=…` parameters of a listing function's
/// window, each only when given, as [`format_datetime`] writes them.
pub(crate) fn window_params(start: Option<&DateTime<Utc>>, end: Option<&DateTime<Utc>>) -> String {
    let mut params = String::new();
    for (name, t) in [("startDateTime", start), ("endDateTime", end)] {
        if let Some(t) = t {
            params.push_str(&format!(",{name}={}", format_datetime(t)));
        }
    }
    params
}

/// API version segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    Beta,
    V1,
}

impl ApiVersion {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ApiVersion::Beta => "beta",
            ApiVersion::V1 => "v1.0",
        }
    }
}

/// The `Content-Type` of successful Graph JSON pages.
pub(crate) const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, content_type: &'static str, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Body::from(bytes),
    )
        .into_response()
}

/// Inserts a header whose value is computed at run time (skipped if invalid).
pub(crate) fn set_header(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Per-request ids echoed by Graph.
#[derive(Debug, Clone)]
pub(crate) struct RequestIds {
    pub(crate) request_id: String,
    pub(crate) client_request_id: String,
}

/// A Graph error: `{"error":{"code","message","innerError":{...}}}`.
pub(crate) fn graph_error(ids: &RequestIds, status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": ids.request_id,
                "client-request-id": ids.client_request_id,
            }
        }
    });
    json_response(status, "application/json", &body)
}

/// A `400 BadRequest` with `message`.
pub(crate) fn bad_request(ids: &RequestIds, message: &str) -> Response {
    graph_error(ids, StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// Answers 405 for anything but `allowed`.
pub(crate) fn method_not_allowed(ids: &RequestIds, allowed: &'static str) -> Response {
    let mut resp = graph_error(
        ids,
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "The HTTP method is not supported for this resource.",
    );
    resp.headers_mut().insert(ALLOW, HeaderValue::from_static(allowed));
    resp
}

/// `status` if it is a 4xx or 5xx, else `fallback`.
pub(crate) fn error_status(status: u16, fallback: StatusCode) -> StatusCode {
    StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(fallback)
}

/// The Graph error `code` and `message` the simulator sends with `status`.
pub(crate) fn graph_error_code(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        403 => (
            "accessDenied",
            "The caller does not have permission to perform the action.",
        ),
        404 => ("itemNotFound", "The resource could not be found."),
        410 => (
            "resourceGone",
            "The requested resource is no longer available at the server.",
        ),
        429 => (
            "TooManyRequests",
            "Too many requests. The application or user has been throttled; retry after the interval given in the Retry-After header.",
        ),
        500 => ("generalException", "An unspecified error has occurred."),
        502 | 504 => (
            "UnknownError",
            "The gateway did not receive a timely or valid response from the upstream service.",
        ),
        503 => (
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        s if s >= 500 => ("generalException", "An unspecified error has occurred."),
        _ => ("invalidRequest", "The request is malformed or incorrect."),
    }
}

/// The `Retry-After` header value for `retry_after`, if any.
pub(crate) fn retry_after_value(retry_after: RetryAfter) -> Option<String> {
    match retry_after {
        RetryAfter::None => None,
        RetryAfter::Seconds(secs) => Some(secs.to_string()),
        RetryAfter::Date(secs) => {
            let now = Utc::now();
            // Round up to the next whole second: the date never means less than `secs`.
            let whole = now
                .timestamp()
                .saturating_add(i64::from(now.timestamp_subsec_nanos() > 0));
            let at = whole.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
            let at = DateTime::from_timestamp(at, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
            Some(http_date(&at))
        }
    }
}

/// An HTTP-date in the IMF-fixdate form (`Wed, 21 Oct 2026 07:28:00 GMT`).
pub(crate) fn http_date(t: &DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A Graph throttling / unavailability answer for `status` (any 4xx or 5xx,
/// else 429).
pub(crate) fn throttled_error(ids: &RequestIds, status: u16, retry_after: RetryAfter) -> Response {
    let status = error_status(status, StatusCode::TOO_MANY_REQUESTS);
    let (code, message) = graph_error_code(status);
    let mut resp = graph_error(ids, status, code, message);
    if let Some(v) = retry_after_value(retry_after) {
        set_header(resp.headers_mut(), axum::http::header::RETRY_AFTER, &v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_keep_raw_values() {
        let p = raw_query_pairs(Some("%24skiptoken=a%2Bb&$top=3&x"));
        assert_eq!(query_option(&p, "skiptoken"), Some("a%2Bb"));
        assert_eq!(query_option(&p, "top"), Some("3"));
        assert_eq!(query_option(&p, "x"), Some(""));
        assert_eq!(query_option(&p, "deltatoken"), None);
    }

    #[test]
    fn datetimes() {
        assert!(parse_datetime("2024-01-01T00:00:00Z").is_some());
        assert!(parse_datetime("2024-01-01T00:00:00.123+01:00").is_some());
        assert!(parse_datetime("'2024-01-01T00:00:00Z'").is_some());
        assert!(parse_datetime("2024-01-01").is_some());
        assert!(parse_datetime("yesterday").is_none());
        assert!(parse_datetime("").is_none());
    }

    #[test]
    fn datetimes_keep_their_instant() {
        for v in [
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.5Z",
            "2024-01-01T00:00:00.1234567Z",
        ] {
            let t = parse_datetime(v).expect("parses");
            assert_eq!(parse_datetime(&format_datetime(&t)), Some(t), "{v}");
        }
        let t = parse_datetime("2024-01-01T01:00:00+01:00").expect("parses");
        assert_eq!(format_datetime(&t), "2024-01-01T00:00:00Z");
    }

    #[test]
    fn http_dates() {
        let t = parse_datetime("2026-10-21T07:28:00Z").expect("parses");
        assert_eq!(http_date(&t), "Wed, 21 Oct 2026 07:28:00 GMT");
        assert_eq!(retry_after_value(RetryAfter::Seconds(7)).as_deref(), Some("7"));
        assert_eq!(retry_after_value(RetryAfter::None), None);
        let v = retry_after_value(RetryAfter::Date(60)).expect("a date");
        let at = DateTime::parse_from_rfc2822(&v).expect("an HTTP-date");
        let ahead = at.with_timezone(&Utc) - Utc::now();
        assert!((59..=61).contains(&ahead.num_seconds()), "{v}: {ahead}");
    }

    #[test]
    fn segments_escape_base64() {
        assert_eq!(encode_segment("a+b/c="), "a%2Bb%2Fc%3D");
    }
}
