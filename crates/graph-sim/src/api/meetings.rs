//! Meetings' recordings and transcripts:
//! `GET /users/{o}/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{o}',…)/delta`
//! and `…/getAllTranscripts(…)/delta`, one machinery for both kinds.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::api::ListCall;
use crate::api::guard::{admit_get, admit_list, forbidden_user, payment_required};
use crate::api::paging::continuation;
use crate::api::paging::{
    Resume, Round, TokenParam, apply_select, page_json, paginate, parse_select, parse_top, resume, token_param,
};
use crate::data::Data;
use crate::data::artifact::ArtifactKind;
use crate::faults::{FaultFlags, Target};
use crate::http::{
    ApiVersion, ODATA_JSON, RequestIds, bad_request, encode_segment, error_status, graph_error, graph_error_code,
    json_response, parse_datetime, query_option, raw_query_pairs, window_params,
};
use crate::state::{Shared, lock};

/// `GET /users/{o}/onlineMeetings/{meetingId}`: the meeting's `id`, `subject`,
/// `startDateTime`, `endDateTime` and `joinWebUrl` (or those `$select` names,
/// `id` always), for a meeting one of `o`'s recordings or transcripts names;
/// `404` otherwise. After authentication and throttles ([`Target::OnlineMeetings`]),
/// [`crate::Faults::organizer_forbidden`] (the same application access policy
/// as the recordings) and [`crate::Faults::online_meeting_status`] refuse it.
pub(crate) fn online_meeting(
    shared: &Shared,
    ids: &RequestIds,
    version: ApiVersion,
    organizer: &str,
    meeting_id: &str,
    parts: &Parts,
) -> Response {
    shared.stat(|s| {
        *s.online_meeting_requests_by_id
            .entry(meeting_id.to_owned())
            .or_insert(0) += 1;
    });
    if let Err(resp) = admit_get(shared, ids, parts, Target::OnlineMeetings) {
        return resp;
    }
    if let Some(resp) = forbidden_user(shared, ids, &[organizer]) {
        return resp;
    }
    if let Some(status) = shared.online_meeting_status(organizer, meeting_id) {
        let status = error_status(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (code, message) = graph_error_code(status);
        return graph_error(ids, status, code, message);
    }
    let Some(meeting) = lock(&shared.data).meetings.online_meeting(organizer, meeting_id) else {
        return graph_error(
            ids,
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested online meeting was not found.",
        );
    };
    let pairs = raw_query_pairs(parts.uri.query());
    let select: Option<Vec<String>> = query_option(&pairs, "select").map(|raw| {
        crate::http::decode_query_value(raw)
            .split(',')
            .map(|p| p.trim().to_owned())
            .collect()
    });
    let wanted = |p: &str| {
        select
            .as_ref()
            .is_none_or(|s| s.iter().any(|f| f.eq_ignore_ascii_case(p)))
    };
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        format!(
            "{}/$metadata#users('{}')/onlineMeetings/$entity",
            shared.base(version),
            encode_segment(organizer)
        )
        .into(),
    );
    body.insert("id".into(), meeting.id.clone().into());
    let join_url = format!(
        "https://teams.microsoft.com/l/meetup-join/{}",
        encode_segment(&meeting.id)
    );
    for (name, value) in [
        ("subject", meeting.subject),
        ("startDateTime", meeting.start),
        ("endDateTime", meeting.end),
        ("joinWebUrl", join_url),
    ] {
        if wanted(name) {
            body.insert(name.into(), value.into());
        }
    }
    json_response(StatusCode::OK, ODATA_JSON, &Value::Object(body))
}

/// The parameters of a recordings or transcripts delta round, carried inside
/// its tokens.
#[derive(Debug)]
pub(crate) struct ArtifactQuery {
    pub(crate) kind: ArtifactKind,
    pub(crate) version: ApiVersion,
    pub(crate) organizer: String,
    pub(crate) start: Option<DateTime<Utc>>,
    pub(crate) end: Option<DateTime<Utc>>,
    pub(crate) top: Option<usize>,
    /// `$select`, as given (property names in the order given).
    pub(crate) select: Option<Vec<String>>,
}

impl ArtifactQuery {
    /// Whether an item created at `created` is in the round's range.
    pub(crate) fn matches(&self, created: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| created >= s) && self.end.is_none_or(|e| created <= e)
    }
}

/// `GET /users/{user}/onlineMeetings/getAllRecordings(...)/delta` and
/// `…/getAllTranscripts(...)/delta`: one machinery for both kinds, which
/// differ only in their items, their function's name and the faults that
/// single one of them out (`transcripts_disabled`).
pub(crate) fn artifacts(shared: &Arc<Shared>, ids: &RequestIds, call: &ListCall<'_>, parts: &Parts) -> Response {
    if let Err(resp) = admit_list(shared, ids, parts, call) {
        return resp;
    }
    let kind = call.kind;
    let flags = shared.fault_flags();
    if flags.payment_required {
        return payment_required(ids);
    }
    let pairs = raw_query_pairs(parts.uri.query());
    let param = match token_param(ids, &pairs) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    match param {
        TokenParam::Skip(t) | TokenParam::Delta(t) => {
            let skip = matches!(param, TokenParam::Skip(_));
            let mut data = lock(&shared.data);
            let resumed = resume(
                shared,
                ids,
                &data.sync_tokens,
                t,
                skip,
                |q: &ArtifactQuery, location| Some(initial_url(shared, q, location.keeps_options())),
            );
            match resumed {
                Err(resp) => resp,
                // A token of the other kind on this path is as good as unknown.
                Ok(Resume::Page(p)) if p.round.query.kind == kind => {
                    artifact_page(shared, &mut data, &p.round, p.offset, p.empty_page, flags)
                }
                Ok(Resume::Round(d)) if d.query.kind == kind => {
                    // Never hold the data and fault locks at once.
                    drop(data);
                    let replay = shared.take_replay_older();
                    let mut data = lock(&shared.data);
                    let round = Arc::new(artifact_round(
                        &data,
                        Arc::clone(&d.query),
                        Some((d.high_water, replay)),
                    ));
                    artifact_page(shared, &mut data, &round, 0, false, flags)
                }
                Ok(_) => bad_request(
                    ids,
                    if skip {
                        "invalid skip token"
                    } else {
                        "invalid delta token"
                    },
                ),
            }
        }
        TokenParam::None => {
            let query = match artifact_query(ids, call, &pairs) {
                Ok(q) => q,
                Err(resp) => return resp,
            };
            let mut data = lock(&shared.data);
            if !data.meetings.organizers.contains_key(&query.organizer) {
                return graph_error(
                    ids,
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!(
                        "The meeting organizer '{}' was not found in tenant '{}'.",
                        query.organizer, shared.config.tenant_id
                    ),
                );
            }
            let round = Arc::new(artifact_round(&data, Arc::new(query), None));
            artifact_page(shared, &mut data, &round, 0, false, flags)
        }
    }
}

/// Parses the initial request's function parameters and query options.
fn artifact_query(ids: &RequestIds, call: &ListCall<'_>, pairs: &[(String, &str)]) -> Result<ArtifactQuery, Response> {
    let get = |name: &str| call.param(name);
    let organizer = get("meetingOrganizerUserId")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            bad_request(
                ids,
                "The function parameter 'meetingOrganizerUserId' is required and must be a user id.",
            )
        })?
        .to_ascii_lowercase();
    let time = |name: &str| match get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_datetime(v).map(Some).ok_or_else(|| {
            bad_request(
                ids,
                &format!("Invalid value for function parameter '{name}': '{v}' is not a valid ISO 8601 date-time."),
            )
        }),
    };
    let start = time("startDateTime")?;
    let end = time("endDateTime")?;
    let top = parse_top(ids, pairs)?;
    let select = match query_option(pairs, "select") {
        None => None,
        Some(raw) => Some(parse_select(ids, raw, &call.kind.properties(), call.kind.type_name())?),
    };
    Ok(ArtifactQuery {
        kind: call.kind,
        version: call.version,
        organizer,
        start,
        end,
        top,
        select,
    })
}

/// Snapshots a round. `since = Some((high_water, replay))` for a delta round.
fn artifact_round(data: &Data, query: Arc<ArtifactQuery>, since: Option<(u64, usize)>) -> Round<ArtifactQuery, usize> {
    let data = &data.meetings;
    let kind = query.kind;
    let high_water = data.artifact_count(kind) as u64;
    let serials = data.artifact_serials(kind, &query.organizer);
    let matching = |s: &&usize| data.artifact_created(kind, **s).is_some_and(|c| query.matches(c));
    let items = match since {
        None => serials.iter().filter(matching).copied().collect(),
        Some((k, replay)) => {
            let mut items: Vec<usize> = serials
                .iter()
                .filter(|s| (**s as u64) < k)
                .filter(matching)
                .take(replay)
                .copied()
                .collect();
            items.extend(serials.iter().filter(|s| (**s as u64) >= k).filter(matching).copied());
            items
        }
    };
    Round {
        query,
        items,
        high_water,
    }
}

fn artifact_page(
    shared: &Shared,
    data: &mut Data,
    round: &Arc<Round<ArtifactQuery, usize>>,
    offset: usize,
    empty_page: bool,
    flags: FaultFlags,
) -> Response {
    let q = &round.query;
    let page_size = q.top.unwrap_or(shared.config.page_size).max(1);
    let tenant = shared.config.tenant_id.as_str();
    let select = q.select.as_deref();
    let mut page = {
        let data: &Data = data;
        paginate(&round.items, offset, empty_page, page_size, flags, |s| {
            data.meetings
                .artifact_json(q.kind, *s, tenant)
                .map_or(Value::Null, |item| apply_select(item, select))
        })
    };
    if flags.top_drops_next_link && q.top.is_some() && offset == 0 && !empty_page {
        page.next = None;
    }
    let seed = shared.config.seed;
    let next = continuation(&mut data.sync_tokens, seed, round, page.next);
    let link = (next.property(), link(shared, data, q, next.skip, &next.token));
    let context = format!(
        "{}/$metadata#Collection({})",
        shared.base(q.version),
        q.kind.type_name()
    );
    json_response(StatusCode::OK, ODATA_JSON, &page_json(context, page.value, link))
}

/// The `getAllRecordings(...)` / `getAllTranscripts(...)` function segment:
/// its long form (with the round's `startDateTime` / `endDateTime`) when
/// `with_options`.
fn function(q: &ArtifactQuery, with_options: bool) -> String {
    let org = encode_segment(&q.organizer);
    let window = if with_options {
        window_params(q.start.as_ref(), q.end.as_ref())
    } else {
        String::new()
    };
    format!("{}(meetingOrganizerUserId='{org}'{window})", q.kind.function())
}

/// A next / delta link; the shape alternates like real Graph's do.
fn link(shared: &Shared, data: &mut Data, q: &ArtifactQuery, skip: bool, token: &str) -> String {
    let counter = if skip {
        &mut data.meetings.next_shape
    } else {
        &mut data.meetings.delta_shape
    };
    let shape = *counter % 2;
    *counter = counter.wrapping_add(1);
    let base = shared.base(q.version);
    let org = encode_segment(&q.organizer);
    if shape == 0 {
        let name = if skip { "$skiptoken" } else { "$deltatoken" };
        format!(
            "{base}/users/{org}/onlineMeetings/{}/delta?{name}={token}",
            function(q, true)
        )
    } else {
        let name = if skip { "skipToken" } else { "deltaToken" };
        format!(
            "{base}/users('{org}')/onlineMeetings/{}(meetingOrganizerUserId='{org}')/delta?{name}={token}",
            q.kind.function()
        )
    }
}

/// A fresh initial-request URL for the query (used in `Location` of a 410):
/// with every option the round was started with when `with_options`, with
/// none of them otherwise.
fn initial_url(shared: &Shared, q: &ArtifactQuery, with_options: bool) -> String {
    let mut url = format!(
        "{}/users/{}/onlineMeetings/{}/delta",
        shared.base(q.version),
        encode_segment(&q.organizer),
        function(q, with_options)
    );
    if with_options {
        let mut options = Vec::new();
        if let Some(sel) = &q.select {
            options.push(format!("$select={}", sel.join(",")));
        }
        if let Some(top) = q.top {
            options.push(format!("$top={top}"));
        }
        if !options.is_empty() {
            url.push('?');
            url.push_str(&options.join("&"));
        }
    }
    url
}
