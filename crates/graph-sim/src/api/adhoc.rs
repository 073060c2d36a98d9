//! Ad hoc calls' recordings and transcripts:
//! `GET /users/{u}/adhocCalls/getAllRecordings(userId='{u}',startDateTime=…,endDateTime=…)`
//! and `…/getAllTranscripts(…)`.
//!
//! No delta: the first request snapshots the user's items created in
//! `[startDateTime, endDateTime)` (either bound optional), oldest first, and
//! pages them by `$top` (default [`crate::SimConfig::page_size`]); every page
//! but the last carries an opaque `@odata.nextLink` (the function with the
//! window, and a skip token), the last carries no link at all. Their content
//! is served by [`crate::api::content`]. The artifacts of one call are not
//! listed ([`per_call`]).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::api::ListCall;
use crate::api::guard::{admit_get, admit_list};
use crate::api::paging::{TokenParam, list_json, parse_top, token_param};
use crate::data::artifact::ArtifactKind;
use crate::data::tokens::TokenKind;
use crate::faults::Target;
use crate::http::{
    ApiVersion, ODATA_JSON, RequestIds, bad_request, encode_segment, graph_error, json_response, parse_datetime,
    raw_query_pairs, window_params,
};
use crate::state::{Shared, lock};

/// The parameters of a listing, carried inside its skip tokens.
#[derive(Debug)]
struct AdhocQuery {
    kind: ArtifactKind,
    version: ApiVersion,
    /// Lowercase.
    user: String,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    page_size: usize,
}

/// A listing's snapshot (the serials of its items, in order) and where its
/// next page starts: what a nextLink's skip token stands for.
#[derive(Debug)]
struct AdhocPage {
    query: Arc<AdhocQuery>,
    items: Arc<Vec<usize>>,
    offset: usize,
}

/// `GET /users/{user}/adhocCalls/getAllRecordings(…)` and
/// `…/getAllTranscripts(…)` (`params`: the function's parameters).
pub(crate) fn list(shared: &Shared, ids: &RequestIds, call: &ListCall<'_>, parts: &Parts) -> Response {
    if let Err(resp) = admit_list(shared, ids, parts, call) {
        return resp;
    }
    let (version, kind, user) = (call.version, call.kind, call.user);
    let get = |name: &str| call.param(name);
    let param_user = get("userId").unwrap_or_default();
    if param_user.is_empty() {
        return bad_request(
            ids,
            "The function parameter 'userId' is required and must be the id of the user in the request path.",
        );
    }
    if !param_user.eq_ignore_ascii_case(user) {
        return bad_request(
            ids,
            &format!(
                "The function parameter 'userId' ('{}') does not match the user in the request path ('{}').",
                param_user.escape_default(),
                user.escape_default()
            ),
        );
    }
    let pairs = raw_query_pairs(parts.uri.query());
    let param = match token_param(ids, &pairs) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let mut data = lock(&shared.data);
    let page = match param {
        TokenParam::Skip(t) => {
            let found = data.sync_tokens.get(t).and_then(|t| t.state::<AdhocPage>());
            match found {
                Some(p)
                    if p.query.kind == kind
                        && p.query.user == user.to_ascii_lowercase()
                        && p.query.version == version =>
                {
                    p
                }
                _ => return bad_request(ids, "invalid skip token"),
            }
        }
        TokenParam::Delta(_) => {
            return bad_request(
                ids,
                "$deltatoken is not supported: ad hoc call artifacts are listed by time window, without delta.",
            );
        }
        TokenParam::None => {
            let time = |name: &str| match get(name).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => parse_datetime(v).map(Some).ok_or_else(|| {
                    bad_request(
                        ids,
                        &format!(
                            "Invalid value for function parameter '{name}': '{}' is not a valid ISO 8601 date-time.",
                            v.escape_default()
                        ),
                    )
                }),
            };
            let window = time("startDateTime").and_then(|s| Ok((s, time("endDateTime")?)));
            let top = parse_top(ids, &pairs);
            let ((start, end), top) = match (window, top) {
                (Ok(w), Ok(t)) => (w, t),
                (Err(resp), _) | (_, Err(resp)) => return resp,
            };
            let user = user.to_ascii_lowercase();
            if !data.meetings.organizers.contains_key(&user) {
                return graph_error(
                    ids,
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!(
                        "The user '{}' was not found in tenant '{}'.",
                        user.escape_default(),
                        shared.config.tenant_id
                    ),
                );
            }
            let items = data.adhoc.listed(kind, &user, start, end);
            let query = AdhocQuery {
                kind,
                version,
                user,
                start,
                end,
                page_size: top.unwrap_or(shared.config.page_size).max(1),
            };
            Arc::new(AdhocPage {
                query: Arc::new(query),
                items: Arc::new(items),
                offset: 0,
            })
        }
    };
    let q = &page.query;
    let tenant = shared.config.tenant_id.as_str();
    let start = page.offset.min(page.items.len());
    let end = start.saturating_add(q.page_size).min(page.items.len());
    let value: Vec<Value> = page
        .items
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .filter_map(|&s| data.adhoc.artifacts.by_serial(kind, s))
        .map(|item| item.to_json(tenant))
        .collect();
    let next = (end < page.items.len()).then(|| {
        let next = AdhocPage {
            query: Arc::clone(q),
            items: Arc::clone(&page.items),
            offset: end,
        };
        let token = data.sync_tokens.issue(shared.config.seed, TokenKind::Page, next);
        format!("{}?$skiptoken={token}", function_url(shared, q))
    });
    drop(data);
    let context = format!("{}/$metadata#Collection({})", shared.base(q.version), kind.type_name());
    json_response(StatusCode::OK, ODATA_JSON, &list_json(context, value, next))
}

/// `GET /users/{user}/adhocCalls/{callId}`, `…/adhocCalls/{callId}/recordings`
/// and `…/adhocCalls/{callId}/transcripts`: refused, never a list. Graph
/// enumerates the artifacts of a user's ad hoc calls only through
/// `getAllRecordings` / `getAllTranscripts` ("Enumeration of artifacts for a
/// particular call isn't available"), and serves no ad hoc call itself.
///
/// The answer is `400 BadRequest` (after the usual 405 / 401 / throttle
/// checks), not `404`: the path is well-formed and names what Graph's schema
/// has (an `adhocCall` with `recordings` and `transcripts` relationships), so
/// the request is an unsupported operation rather than a missing resource;
/// and a `404` would tell a client that the call, or the user, does not
/// exist, which an archiver may take for an item deleted at the source.
pub(crate) fn per_call(shared: &Shared, ids: &RequestIds, parts: &Parts) -> Response {
    shared.stat(|s| s.adhoc_per_call_requests += 1);
    if let Err(resp) = admit_get(shared, ids, parts, Target::AdhocCalls) {
        return resp;
    }
    bad_request(
        ids,
        "Enumeration of artifacts for a particular ad hoc call isn't available: list the user's with adhocCalls/getAllRecordings(…) or adhocCalls/getAllTranscripts(…).",
    )
}

/// `{base}/users/{u}/adhocCalls/{function}(userId='{u}'[,startDateTime=…][,endDateTime=…])`:
/// the listing's function with its window (the instants given, in UTC).
fn function_url(shared: &Shared, q: &AdhocQuery) -> String {
    let user = encode_segment(&q.user);
    format!(
        "{}/users/{user}/adhocCalls/{}(userId='{user}'{})",
        shared.base(q.version),
        q.kind.function(),
        window_params(q.start.as_ref(), q.end.as_ref())
    )
}
