//! The HTTP front: the two origins' entry points (request ids, the request
//! log, the cut-page fault) and the routes. Paths are matched by hand on
//! the raw request target, because Graph paths such as `users('x')` or
//! `getAllRecordings(meetingOrganizerUserId='x')` are not router-friendly;
//! every route hands the request to its endpoint in [`crate::api`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, HeaderName};
use axum::http::request::Parts;
use axum::response::Response;

use crate::api::content::ArtifactPath;
use crate::api::folders::FolderPath;
use crate::api::{ListCall, adhoc, auth, contacts, content, directory, folders, meetings};
use crate::body;
use crate::conn::ConnKill;
use crate::data::artifact::{ArtifactKind, Place};
use crate::http::{ApiVersion, RequestIds, decode, graph_error, set_header, strip_prefix_ci, unquote};
use crate::state::Shared;
use crate::stats::Origin;

static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
static CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");

/// Entry point of the graph origin.
pub(crate) async fn graph_entry(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let at = Instant::now();
    let method = req.method().to_string();
    let path_and_query = raw_target(&req);
    let authorization = req.headers().contains_key(AUTHORIZATION);
    // Always there (both servers run with connect info); a default switch would
    // only fail to kill anything.
    let kill = req
        .extensions()
        .get::<ConnectInfo<ConnKill>>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let request_id = shared.request_guid();
    let client_request_id = req
        .headers()
        .get(&CLIENT_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| request_id.clone(), str::to_owned);
    let ids = RequestIds {
        request_id,
        client_request_id,
    };
    let mut resp = route_graph(&shared, &ids, &kill, req).await;
    if resp.status() == StatusCode::OK && is_delta_target(&path_and_query) && shared.take_cut_page() {
        resp = body::cut_mid_body(resp).await;
    }
    set_header(resp.headers_mut(), REQUEST_ID.clone(), &ids.request_id);
    set_header(resp.headers_mut(), CLIENT_REQUEST_ID.clone(), &ids.client_request_id);
    let status = if kill.is_killed() { 0 } else { resp.status().as_u16() };
    shared.record_request(at, Origin::Graph, method, path_and_query, status, authorization);
    resp
}

/// Entry point of the download origin.
pub(crate) async fn download_entry(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let at = Instant::now();
    let method = req.method().to_string();
    let path_and_query = raw_target(&req);
    let authorization = req.headers().contains_key(AUTHORIZATION);
    let resp = content::download(&shared, &req);
    shared.record_request(
        at,
        Origin::Download,
        method,
        path_and_query,
        resp.status().as_u16(),
        authorization,
    );
    resp
}

/// Whether a request target is a delta query (its path ends in a `delta` segment).
fn is_delta_target(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or_default();
    path.rsplit('/').next().is_some_and(is_delta)
}

fn raw_target(req: &Request) -> String {
    req.uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned())
}

async fn route_graph(shared: &Arc<Shared>, ids: &RequestIds, kill: &ConnKill, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    match segs.as_slice() {
        [tenant, oauth, ver, token] if *oauth == "oauth2" && *ver == "v2.0" && token.eq_ignore_ascii_case("token") => {
            let tenant = decode(tenant).into_owned();
            auth::token_endpoint(shared, ids, kill, &tenant, &parts, body).await
        }
        ["hops", rest @ ..] => content::hop(shared, ids, rest, &parts).unwrap_or_else(|| not_found(ids, &path)),
        [version, rest @ ..] => {
            let version = match *version {
                "beta" => ApiVersion::Beta,
                "v1.0" => ApiVersion::V1,
                _ => return not_found(ids, &path),
            };
            graph_api(shared, ids, version, rest, &parts).unwrap_or_else(|| not_found(ids, &path))
        }
        [] => not_found(ids, &path),
    }
}

fn not_found(ids: &RequestIds, path: &str) -> Response {
    graph_error(
        ids,
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("Resource not found for the segment path '{}'.", path.escape_default()),
    )
}

/// Routes a Graph API path (after the version segment); `None` if unknown.
fn graph_api(
    shared: &Arc<Shared>,
    ids: &RequestIds,
    version: ApiVersion,
    rest: &[&str],
    parts: &Parts,
) -> Option<Response> {
    if decode(rest.first()?).eq_ignore_ascii_case("groups") {
        let tail: Vec<String> = rest.iter().skip(1).map(|s| decode(s).into_owned()).collect();
        return directory::group_members(shared, ids, version, &tail, parts);
    }
    let (user, rest) = parse_user(rest)?;
    if rest.is_empty() {
        return Some(if is_delta(&user) {
            directory::users_delta(shared, ids, version, parts)
        } else {
            directory::user(shared, ids, version, &user, parts)
        });
    }
    let seg = |i: usize| rest.get(i).map(|s| decode(s));
    let is = |i: usize, name: &str| seg(i).is_some_and(|s| s.eq_ignore_ascii_case(name));
    let folder_path = |folder| FolderPath {
        version,
        user: &user,
        folder,
    };
    if let Some(place) = place(&seg(0)?) {
        return artifacts(shared, ids, version, place, &user, rest, parts);
    }
    match rest.len() {
        1 if is(0, "contactFolders") => Some(folders::list(shared, ids, version, &user, None, parts)),
        2 if is(0, "contactFolders") => Some(folders::get(shared, ids, folder_path(&seg(1)?), parts)),
        3 if is(0, "contactFolders") && is(2, "childFolders") => {
            Some(folders::list(shared, ids, version, &user, Some(&seg(1)?), parts))
        }
        4 if is(0, "contactFolders") && is(2, "contacts") && is_delta(&seg(3)?) => {
            Some(contacts::contacts(shared, ids, folder_path(&seg(1)?), parts))
        }
        _ => None,
    }
}

/// `onlineMeetings` or `adhocCalls` (any case).
fn place(segment: &str) -> Option<Place> {
    [Place::Meeting, Place::AdhocCall]
        .into_iter()
        .find(|p| segment.eq_ignore_ascii_case(p.segment()))
}

/// Routes the artifacts of a user's meetings or ad hoc calls, `rest` being
/// the path after `users/{user}`:
///
/// * `onlineMeetings/{getAllRecordings|getAllTranscripts}(…)/delta`,
/// * `onlineMeetings/{meetingId}` (the meeting's subject and times),
/// * `adhocCalls/{getAllRecordings|getAllTranscripts}(…)` (no delta),
/// * `adhocCalls/{callId}` and `adhocCalls/{callId}/{recordings|transcripts}`,
///   refused ([`adhoc::per_call`]),
/// * `{onlineMeetings|adhocCalls}/{container}/{recordings|transcripts}/{id}/{content|stream}`
///   and `…/transcripts/{id}/metadataContent`.
///
/// `None` (404) for anything else.
fn artifacts(
    shared: &Arc<Shared>,
    ids: &RequestIds,
    version: ApiVersion,
    place: Place,
    user: &str,
    rest: &[&str],
    parts: &Parts,
) -> Option<Response> {
    let seg = |i: usize| rest.get(i).map(|s| decode(s));
    let is = |i: usize, name: &str| seg(i).is_some_and(|s| s.eq_ignore_ascii_case(name));
    let list_call = || {
        let func = seg(1)?;
        let (kind, params) = parse_function(&func, "getAllRecordings")
            .map(|p| (ArtifactKind::Recording, p))
            .or_else(|| parse_function(&func, "getAllTranscripts").map(|p| (ArtifactKind::Transcript, p)))?;
        Some(ListCall {
            place,
            version,
            kind,
            user,
            params,
        })
    };
    match (place, rest.len()) {
        (Place::Meeting, 3) if is_delta(&seg(2)?) => Some(meetings::artifacts(shared, ids, &list_call()?, parts)),
        // `onlineMeetings/{meetingId}`: the meeting itself (a listing function without its
        // `/delta` stays unknown).
        (Place::Meeting, 2) if !seg(1)?.contains('(') => {
            Some(meetings::online_meeting(shared, ids, version, user, &seg(1)?, parts))
        }
        (Place::AdhocCall, 2) => match list_call() {
            Some(call) => Some(adhoc::list(shared, ids, &call, parts)),
            // `adhocCalls/{callId}`; a malformed function call stays unknown.
            None if is_call_id(&seg(1)?) => Some(adhoc::per_call(shared, ids, parts)),
            None => None,
        },
        (Place::AdhocCall, 3) if ArtifactKind::ALL.iter().any(|k| is(2, k.collection())) => {
            Some(adhoc::per_call(shared, ids, parts))
        }
        (_, 5) => {
            let kind = ArtifactKind::ALL.into_iter().find(|k| is(2, k.collection()))?;
            let (container, id) = (seg(1)?, seg(3)?);
            let path = ArtifactPath {
                place,
                kind,
                user,
                container: &container,
                id: &id,
            };
            if is(4, "content") {
                Some(content::content(shared, ids, path, parts))
            } else if is(4, "stream") {
                content::relative_hop(shared, ids, path, parts)
            } else if is(4, "metadataContent") && kind == ArtifactKind::Transcript {
                Some(content::metadata(shared, ids, path, parts))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Whether a path segment after `adhocCalls/` can be a call id: no
/// function call, nor a listing function's name without its parameters.
fn is_call_id(s: &str) -> bool {
    let function = strip_prefix_ci(s, "microsoft.graph.").unwrap_or(s);
    !s.contains('(')
        && !ArtifactKind::ALL
            .iter()
            .any(|k| function.eq_ignore_ascii_case(k.function()))
}

fn is_delta(s: &str) -> bool {
    ["delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"]
        .iter()
        .any(|d| s.eq_ignore_ascii_case(d))
}

/// Splits `users/{id}/...` or `users('{id}')/...` into the user and the rest.
fn parse_user<'a, 'b>(rest: &'a [&'b str]) -> Option<(String, &'a [&'b str])> {
    let first = decode(rest.first()?);
    if first.eq_ignore_ascii_case("users") {
        let user = decode(rest.get(1)?).into_owned();
        if user.is_empty() {
            return None;
        }
        return Some((user, rest.get(2..).unwrap_or(&[])));
    }
    let inner = strip_prefix_ci(&first, "users(")?.strip_suffix(')')?;
    let user = unquote(inner.trim()).to_owned();
    if user.is_empty() {
        return None;
    }
    Some((user, rest.get(1..).unwrap_or(&[])))
}

/// Parses `name(k1=v1,k2='v2')` (name compared case-insensitively, optionally
/// namespace-qualified) into its `(key, value)` parameters, values unquoted.
fn parse_function(s: &str, name: &str) -> Option<Vec<(String, String)>> {
    let open = s.find('(')?;
    let fname = s.get(..open)?;
    let fname = strip_prefix_ci(fname, "microsoft.graph.").unwrap_or(fname);
    if !fname.eq_ignore_ascii_case(name) {
        return None;
    }
    let inner = s.get(open + 1..)?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.trim().to_owned(), unquote(v.trim()).to_owned())
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions() {
        let p = parse_function(
            "getAllRecordings(meetingOrganizerUserId='abc',startDateTime=2024-01-01T00:00:00Z)",
            "getAllRecordings",
        )
        .expect("parses");
        assert_eq!(
            p,
            vec![
                ("meetingOrganizerUserId".to_owned(), "abc".to_owned()),
                ("startDateTime".to_owned(), "2024-01-01T00:00:00Z".to_owned())
            ]
        );
        assert_eq!(parse_function("getAllRecordings()", "getAllRecordings"), Some(vec![]));
        assert_eq!(parse_function("getAllRecordings(", "getAllRecordings"), None);
        assert_eq!(parse_function("other()", "getAllRecordings"), None);
        assert_eq!(parse_function("é(", "getAllRecordings"), None);
    }

    #[test]
    fn users() {
        let segs = ["users('x%40y')", "a"];
        let (u, rest) = parse_user(&segs).expect("parses");
        assert_eq!(u, "x@y");
        assert_eq!(rest, ["a"]);
        let segs = ["users", "abc"];
        let (u, rest) = parse_user(&segs).expect("parses");
        assert_eq!(u, "abc");
        assert!(rest.is_empty());
        assert!(parse_user(&["users"]).is_none());
        assert!(parse_user(&["users()"]).is_none());
        assert!(parse_user(&["groups", "x"]).is_none());
    }
}
