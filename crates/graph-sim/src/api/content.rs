//! Content: what recording and transcript content URLs serve, directly or
//! through redirects ([`RedirectStyle`]): the graph content endpoints,
//! transcript metadata, the graph origin's pre-authenticated hops, and the
//! download origin (with its plain file index).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    ACCEPT_RANGES, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, LOCATION,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::guard::{admit_get, payment_required, transcripts_disabled};
use crate::body::{ByteRange, ContentStream, parse_range};
use crate::config::ContentMode;
use crate::data::artifact::{ADHOC_TAG, ArtifactKind, Place, Served, TRANSCRIPT_TAG};
use crate::faults::{RedirectStyle, TRANSCRIPTS_DISABLED_MESSAGE, Target};
use crate::http::{
    RequestIds, bad_request, decode_query_value, error_status, graph_error, graph_error_code, json_response,
    method_not_allowed, query_option, raw_query_pairs, set_header, throttled_error,
};
use crate::state::{Shared, lock};

/// Longest [`RedirectStyle::Chain`].
const MAX_CHAIN: u32 = 32;

/// The artifact a content path names:
/// `users/{user}/{onlineMeetings|adhocCalls}/{container}/{recordings|transcripts}/{id}/…`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArtifactPath<'a> {
    pub(crate) place: Place,
    pub(crate) kind: ArtifactKind,
    pub(crate) user: &'a str,
    /// The meeting id or call id.
    pub(crate) container: &'a str,
    pub(crate) id: &'a str,
}

/// Counts a request to a graph content endpoint (any outcome): recording
/// content of meetings, any content of ad hoc calls.
fn count_request(shared: &Shared, path: ArtifactPath<'_>) {
    match (path.place, path.kind) {
        (Place::Meeting, ArtifactKind::Recording) => shared.stat(|s| s.content_requests += 1),
        (Place::Meeting, ArtifactKind::Transcript) => {}
        (Place::AdhocCall, _) => shared.stat(|s| s.adhoc_content_requests += 1),
    }
}

/// The switches that refuse a content request of `path` before its artifact
/// is looked up: `transcripts_disabled` for a transcript, then
/// `payment_required` for a meeting's (the metered meeting APIs).
fn switched_off(shared: &Shared, ids: &RequestIds, path: ArtifactPath<'_>) -> Option<Response> {
    if path.kind == ArtifactKind::Transcript && shared.transcripts_disabled() {
        return Some(transcripts_disabled(shared, ids));
    }
    if path.place == Place::Meeting && shared.fault_flags().payment_required {
        return Some(payment_required(ids));
    }
    None
}

/// `GET …/{onlineMeetings/{meetingId}|adhocCalls/{callId}}/{recordings|transcripts}/{id}/content`:
/// the bytes (`ContentMode::Direct`, or `Alternate` for an even serial) or a
/// redirect to them. A meeting transcript's needs `$format=text/vtt` (see
/// [`vtt_format`]).
pub(crate) fn content(shared: &Arc<Shared>, ids: &RequestIds, path: ArtifactPath<'_>, parts: &Parts) -> Response {
    count_request(shared, path);
    if let Err(resp) = admit_get(shared, ids, parts, Target::Content) {
        return resp;
    }
    if let Some(resp) = switched_off(shared, ids, path) {
        return resp;
    }
    if path.kind == ArtifactKind::Transcript {
        if let Err(resp) = vtt_format(ids, parts, path.place) {
            return resp;
        }
    }
    let served = lock(&shared.data).served_content(path.place, path.kind, path.user, path.container, path.id);
    let Some(served) = served else {
        return artifact_not_found(ids, path.kind);
    };
    if let Some((status, code, message)) = refused(shared, &served) {
        return graph_error(ids, status, code, message);
    }
    let direct = match shared.config.content_mode {
        ContentMode::Direct => true,
        ContentMode::Redirect => false,
        ContentMode::Alternate => served.serial % 2 == 0,
    };
    if direct {
        let resp = serve_payload(shared, &served, &parts.headers);
        if resp.status().is_success() {
            count_content(shared, &served);
        }
        resp
    } else {
        count_content(shared, &served);
        let signed = shared.signed(served.signed_serial);
        let location = match shared.redirect_style() {
            RedirectStyle::Absolute => download_url(shared, &signed),
            RedirectStyle::Chain(n) => chain_url(shared, &signed, n.clamp(1, MAX_CHAIN)),
            // Relative to this very URL: `…/{recordings|transcripts}/{id}/stream?sig=…`.
            RedirectStyle::Relative => format!("stream?sig={signed}"),
            RedirectStyle::Bounce => format!("{}/bounce/{signed}", shared.download_origin),
        };
        found(&location)
    }
}

fn artifact_not_found(ids: &RequestIds, kind: ArtifactKind) -> Response {
    let what = match kind {
        ArtifactKind::Recording => "recording",
        ArtifactKind::Transcript => "transcript",
    };
    graph_error(
        ids,
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("The requested {what} was not found."),
    )
}

/// Checks the `$format` query option of a transcript content request of
/// `place`. The simulator serves WebVTT only: another value is answered
/// `400 BadRequest`.
///
/// For a meeting's transcript the reference documents `$format=text/vtt`,
/// and a client that leaves it out should fail visibly: without it (an
/// `Accept: text/vtt` header is not enough) the answer is
/// `406 NotAcceptable`. An ad hoc call's transcript content is requested
/// without the option in the reference, and WebVTT is its default: it is
/// served with or without `$format=text/vtt`.
fn vtt_format(ids: &RequestIds, parts: &Parts, place: Place) -> Result<(), Response> {
    let pairs = raw_query_pairs(parts.uri.query());
    match query_option(&pairs, "format") {
        None if place == Place::AdhocCall => Ok(()),
        None => Err(graph_error(
            ids,
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "The transcript content format must be given with the $format query option: $format=text/vtt.",
        )),
        Some(raw) if decode_query_value(raw).trim().eq_ignore_ascii_case("text/vtt") => Ok(()),
        Some(raw) => Err(bad_request(
            ids,
            &format!(
                "Invalid value '{}' for query option $format: the supported value is 'text/vtt'.",
                decode_query_value(raw).escape_default()
            ),
        )),
    }
}

/// `GET …/{onlineMeetings/{meetingId}|adhocCalls/{callId}}/transcripts/{id}/metadataContent`
/// (`path.kind` is a transcript): always served directly, as
/// `application/json`.
pub(crate) fn metadata(shared: &Arc<Shared>, ids: &RequestIds, path: ArtifactPath<'_>, parts: &Parts) -> Response {
    if path.place == Place::AdhocCall {
        count_request(shared, path);
    }
    if let Err(resp) = admit_get(shared, ids, parts, Target::Content) {
        return resp;
    }
    if let Some(resp) = switched_off(shared, ids, path) {
        return resp;
    }
    let served = lock(&shared.data).served_metadata(path.place, path.user, path.container, path.id);
    let Some(served) = served else {
        return artifact_not_found(ids, ArtifactKind::Transcript);
    };
    if let Some((status, code, message)) = refused(shared, &served) {
        return graph_error(ids, status, code, message);
    }
    let resp = serve_payload(shared, &served, &parts.headers);
    if resp.status().is_success() {
        shared.stat(|s| *s.transcript_metadata_requests_by_id.entry(served.id).or_insert(0) += 1);
    }
    resp
}

/// Counts a logical download of `served`'s content.
fn count_content(shared: &Shared, served: &Served) {
    let id = served.id.clone();
    shared.stat(|s| {
        let by_id = match (served.place, served.kind) {
            (Place::Meeting, ArtifactKind::Recording) => &mut s.content_requests_by_id,
            (Place::Meeting, ArtifactKind::Transcript) => &mut s.transcript_content_requests_by_id,
            (Place::AdhocCall, ArtifactKind::Recording) => &mut s.adhoc_recording_content_requests_by_id,
            (Place::AdhocCall, ArtifactKind::Transcript) => &mut s.adhoc_transcript_content_requests_by_id,
        };
        *by_id.entry(id).or_insert(0) += 1;
    });
}

/// A `302 Found` to `location`.
fn found(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    set_header(resp.headers_mut(), LOCATION, location);
    resp
}

/// The pre-authenticated URL on the download origin that serves the bytes.
fn download_url(shared: &Shared, signed: &str) -> String {
    format!("{}/download/{signed}", shared.download_origin)
}

/// Where a [`RedirectStyle::Chain`] hop with `remaining` redirects still to
/// come (its own included) sends the client: the next graph hop, or the
/// download origin for the last one.
fn chain_url(shared: &Shared, signed: &str, remaining: u32) -> String {
    if remaining <= 1 {
        download_url(shared, signed)
    } else {
        format!("{}/hops/{signed}/chain/{}", shared.graph_origin, remaining - 1)
    }
}

/// The status, code and message every request for `served` is refused with,
/// if any (and counts it): `transcripts_disabled` for a transcript, then a
/// `content_status` fault.
fn refused(shared: &Shared, served: &Served) -> Option<(StatusCode, &'static str, &'static str)> {
    if served.kind == ArtifactKind::Transcript && shared.transcripts_disabled() {
        shared.stat(|s| s.transcript_forbidden += 1);
        return Some((StatusCode::FORBIDDEN, "Forbidden", TRANSCRIPTS_DISABLED_MESSAGE));
    }
    let status = error_status(shared.content_status(&served.id)?, StatusCode::INTERNAL_SERVER_ERROR);
    shared.stat(|s| *s.content_refused_by_id.entry(served.id.clone()).or_insert(0) += 1);
    let (code, message) = graph_error_code(status);
    Some((status, code, message))
}

/// `GET …/{recordings|transcripts}/{id}/stream?sig=…` on the graph origin:
/// the target of the first, path-relative redirect of
/// [`RedirectStyle::Relative`]. The path must name the signed recording or
/// transcript exactly, so only a client that resolved the reference against
/// the content URL gets here; it answers the second, absolute-path redirect.
/// `None` (404) for anything that does not fit.
pub(crate) fn relative_hop(
    shared: &Arc<Shared>,
    ids: &RequestIds,
    path: ArtifactPath<'_>,
    parts: &Parts,
) -> Option<Response> {
    shared.stat(|s| s.redirect_hops += 1);
    if parts.method != Method::GET {
        return Some(method_not_allowed(ids, "GET"));
    }
    let pairs = raw_query_pairs(parts.uri.query());
    let signed = query_option(&pairs, "sig")?;
    let (serial, true) = shared.parse_signed(signed)? else {
        return None;
    };
    let served = shared.served(serial)?;
    let matches =
        served.kind == path.kind && served.id == path.id && served.is_at(path.place, path.user, path.container);
    if !matches {
        return None;
    }
    if let Some((status, code, message)) = refused(shared, &served) {
        return Some(graph_error(ids, status, code, message));
    }
    Some(found(&format!("/hops/{signed}/bytes")))
}

/// `GET /hops/{signed}/…` on the graph origin: the pre-authenticated redirect
/// hops of [`RedirectStyle`] (`chain/{remaining}`, `bytes`, `bounced`). No
/// bearer token is needed. `None` (404) for anything that does not fit.
pub(crate) fn hop(shared: &Arc<Shared>, ids: &RequestIds, rest: &[&str], parts: &Parts) -> Option<Response> {
    shared.stat(|s| s.redirect_hops += 1);
    let (signed, kind) = rest.split_first()?;
    let (serial, true) = shared.parse_signed(signed)? else {
        return None;
    };
    let served = shared.served(serial)?;
    if parts.method != Method::GET {
        return Some(method_not_allowed(ids, "GET"));
    }
    if let Some((status, code, message)) = refused(shared, &served) {
        return Some(graph_error(ids, status, code, message));
    }
    match kind {
        ["chain", remaining] => {
            let remaining = remaining.parse::<u32>().ok().filter(|r| (1..MAX_CHAIN).contains(r))?;
            Some(found(&chain_url(shared, signed, remaining)))
        }
        ["bytes"] => Some(serve_payload(shared, &served, &parts.headers)),
        ["bounced"] => {
            // This chain went through the download origin: a correct client
            // sends no token any more, even back on the graph origin.
            if parts.headers.contains_key(AUTHORIZATION) {
                shared.stat(|s| s.auth_header_after_leaving_graph += 1);
            }
            Some(serve_payload(shared, &served, &parts.headers))
        }
        _ => None,
    }
}

/// The download origin: pre-authenticated, signed URLs; no `Authorization`.
/// `/download/{signed}` serves the bytes; `/bounce/{signed}` sends a
/// [`RedirectStyle::Bounce`] chain back to the graph origin.
pub(crate) fn download(shared: &Arc<Shared>, req: &Request) -> Response {
    shared.stat(|s| s.download_requests += 1);
    let ids = RequestIds {
        request_id: shared.request_guid(),
        client_request_id: String::new(),
    };
    if req.headers().contains_key(AUTHORIZATION) {
        shared.stat(|s| s.auth_header_on_download_origin += 1);
        return download_error(
            StatusCode::BAD_REQUEST,
            "invalidRequest",
            "Pre-authenticated download URLs must not be sent an Authorization header.",
        );
    }
    if let Some((status, retry_after)) = shared.take_throttle(Target::Download) {
        shared.stat(|s| s.throttled += 1);
        return throttled_error(&ids, status, retry_after);
    }
    let path = req.uri().path();
    if let Some(name) = path.strip_prefix("/files/") {
        return file_index(shared, name, req);
    }
    let (bounce, signed) = if let Some(t) = path.strip_prefix("/download/") {
        (false, t)
    } else if let Some(t) = path.strip_prefix("/bounce/") {
        (true, t)
    } else {
        return download_error(StatusCode::NOT_FOUND, "itemNotFound", "Not found.");
    };
    let Some((serial, valid)) = shared.parse_signed(signed) else {
        return download_error(StatusCode::NOT_FOUND, "itemNotFound", "Not found.");
    };
    if !valid {
        return download_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "The pre-authenticated URL signature is invalid.",
        );
    }
    if req.method() != Method::GET {
        return download_error(StatusCode::METHOD_NOT_ALLOWED, "notSupported", "Only GET is supported.");
    }
    let Some(served) = shared.served(serial) else {
        return download_error(StatusCode::NOT_FOUND, "itemNotFound", "Not found.");
    };
    if let Some((status, code, message)) = refused(shared, &served) {
        return download_error(status, code, message);
    }
    if bounce {
        return found(&format!("{}/hops/{signed}/bounced", shared.graph_origin));
    }
    serve_payload(shared, &served, req.headers())
}

/// A plain web-server view of every recording on the download origin (`/files/` lists
/// `rec-<serial>.mp4` links; each serves the same bytes as the recording), so that generic
/// tools such as `rclone copy --http-url` can copy the very same content for comparison.
fn file_index(shared: &Arc<Shared>, name: &str, req: &Request) -> Response {
    if name.is_empty() {
        let data = lock(&shared.data);
        let mut html = String::from("<!DOCTYPE html>\n<html><body><pre>\n");
        for (serial, r) in data.meetings.artifacts.of(ArtifactKind::Recording).iter().enumerate() {
            html.push_str(&format!(
                "<a href=\"rec-{serial:06}.mp4\">rec-{serial:06}.mp4</a> {}\n",
                r.size
            ));
        }
        html.push_str("</pre></body></html>\n");
        let mut resp = Response::new(Body::from(html));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        return resp;
    }
    let known = name
        .strip_prefix("rec-")
        .and_then(|n| n.strip_suffix(".mp4"))
        .and_then(|n| n.parse::<u64>().ok())
        // Meeting recordings only.
        .filter(|serial| serial & (TRANSCRIPT_TAG | ADHOC_TAG) == 0)
        .and_then(|serial| shared.served(serial));
    let Some(served) = known else {
        return download_error(StatusCode::NOT_FOUND, "itemNotFound", "Not found.");
    };
    if req.method() == Method::HEAD {
        let mut resp = Response::new(Body::empty());
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(served.size));
        return resp;
    }
    serve_payload(shared, &served, req.headers())
}

/// An error of the download origin: `{"error":{"code","message"}}`.
fn download_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        "application/json",
        &serde_json::json!({ "error": { "code": code, "message": message } }),
    )
}

/// Streams what `served` names (or the requested range of it) with its media
/// type.
fn serve_payload(shared: &Arc<Shared>, served: &Served, headers: &HeaderMap) -> Response {
    let size = served.size;
    let (status, start, end) = match parse_range(headers, size) {
        ByteRange::Full => (StatusCode::OK, 0, size),
        ByteRange::Partial(first, last) => (StatusCode::PARTIAL_CONTENT, first, last + 1),
        ByteRange::Unsatisfiable => {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            set_header(resp.headers_mut(), CONTENT_RANGE, &format!("bytes */{size}"));
            return resp;
        }
    };
    let len = end - start;
    let body = if len == 0 {
        Body::empty()
    } else {
        // A permanently truncated body does not use up a pending drop.
        let cut = shared.always_truncated(&served.id) || shared.take_drop_mid_body();
        let abort_at = cut.then(|| start + len / 2);
        let stream = ContentStream::new(Arc::clone(&shared.meter), served.source.clone(), start, end, abort_at);
        match shared.content_rate() {
            None => Body::from_stream(stream),
            // A slow network: each chunk is held back as long as the rate says it takes.
            Some(rate) => Body::from_stream(futures::StreamExt::then(stream, move |chunk| async move {
                let len = chunk.as_ref().map_or(0, |c| c.len() as u64);
                tokio::time::sleep(std::time::Duration::from_secs_f64(len as f64 / rate.max(1) as f64)).await;
                chunk
            })),
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(served.media_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        set_header(h, CONTENT_RANGE, &format!("bytes {start}-{}/{size}", end - 1));
    }
    resp
}
