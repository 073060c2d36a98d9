//! The tenant directory: users, groups (nested) and devices, and the Graph
//! endpoints that discover organizers from it:
//!
//! * `GET /users/{id | userPrincipalName}` (`$select`),
//! * `GET /groups/{id}/transitiveMembers/microsoft.graph.user` (every user
//!   reachable through nested groups, once each; paged by `$skiptoken`), and
//!   `GET /groups/{id}/transitiveMembers` (users, groups and devices),
//! * `GET /users/delta` (a delta round over every user, then only changes;
//!   the same snapshot, paging and token machinery as the other delta queries).
//!
//! Organizers and users are one population: every organizer is a user and
//! every user can organize meetings.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{Map, Value};

use crate::api::guard::admit_get;
use crate::api::paging::continuation;
use crate::api::paging::{Round, page_json, paginate, parse_top, start, token_param};
use crate::data::Data;
use crate::data::directory::{USER_PROPERTIES, User};
use crate::data::tokens::TokenKind;
use crate::faults::{SyncLocation, Target};
use crate::http::{
    ApiVersion, ODATA_JSON, RequestIds, bad_request, decode_query_value, encode_segment, error_status, graph_error,
    graph_error_code, json_response, query_option, raw_query_pairs,
};
use crate::state::{Shared, lock};

// ---------------------------------------------------------------------------
// HTTP

/// What every directory request goes through first: the count, the method,
/// authentication, a pending throttle and the `directory_forbidden` switch.
fn admit(shared: &Shared, ids: &RequestIds, parts: &Parts) -> Result<(), Response> {
    shared.stat(|s| s.directory_requests += 1);
    admit_get(shared, ids, parts, Target::Directory)?;
    if lock(&shared.faults).directory_forbidden {
        return Err(graph_error(
            ids,
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ));
    }
    Ok(())
}

fn not_found(ids: &RequestIds, key: &str) -> Response {
    graph_error(
        ids,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{}' does not exist or one of its queried reference-property objects are not present.",
            key.escape_default()
        ),
    )
}

/// The known properties a raw `$select` names, in its order, `id` always
/// included; unknown ones are ignored.
fn parse_select(raw: Option<&str>) -> Option<Vec<String>> {
    let raw = raw?;
    let mut fields = vec!["id".to_owned()];
    for f in decode_query_value(raw).split(',').map(str::trim) {
        if let Some(p) = USER_PROPERTIES.iter().find(|p| p.eq_ignore_ascii_case(f)) {
            if !fields.iter().any(|x| x == p) {
                fields.push((*p).to_owned());
            }
        }
    }
    Some(fields)
}

/// `GET /users/{id | userPrincipalName}`.
pub(crate) fn user(shared: &Shared, ids: &RequestIds, version: ApiVersion, key: &str, parts: &Parts) -> Response {
    shared.stat(|s| *s.user_requests_by_id.entry(key.to_lowercase()).or_insert(0) += 1);
    if let Err(resp) = admit(shared, ids, parts) {
        return resp;
    }
    if let Some(status) = shared.user_status(key) {
        let status = error_status(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (code, message) = match status {
            StatusCode::FORBIDDEN => (
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            status => graph_error_code(status),
        };
        return graph_error(ids, status, code, message);
    }
    let pairs = raw_query_pairs(parts.uri.query());
    let select = parse_select(query_option(&pairs, "select"));
    let data = lock(&shared.data);
    let Some(u) = data.directory.live_user(key) else {
        return not_found(ids, key);
    };
    let mut body = Map::new();
    let context = match &select {
        Some(s) => format!("{}/$metadata#users({})/$entity", shared.base(version), s.join(",")),
        None => format!("{}/$metadata#users/$entity", shared.base(version)),
    };
    body.insert("@odata.context".into(), context.into());
    if let Value::Object(m) = u.to_json(select.as_deref(), false) {
        body.extend(m);
    }
    json_response(StatusCode::OK, ODATA_JSON, &Value::Object(body))
}

/// A snapshot of a group's transitive members, paged by skip tokens.
#[derive(Debug)]
pub(crate) struct MemberRound {
    version: ApiVersion,
    group: String,
    users_only: bool,
    select: Option<Vec<String>>,
    page_size: usize,
    items: Vec<Value>,
}

/// What the skip token of a group member page stands for (a list, not a
/// delta: never expired by [`crate::Faults::expire_sync_state`]).
#[derive(Debug)]
struct MemberPage {
    round: Arc<MemberRound>,
    offset: usize,
}

/// `GET /groups/{id}/transitiveMembers[/microsoft.graph.user]`; `None` (404)
/// for other group paths.
pub(crate) fn group_members(
    shared: &Shared,
    ids: &RequestIds,
    version: ApiVersion,
    rest: &[String],
    parts: &Parts,
) -> Option<Response> {
    let (group, users_only) = match rest {
        [g, t] if t.eq_ignore_ascii_case("transitiveMembers") => (g, false),
        [g, t, cast]
            if t.eq_ignore_ascii_case("transitiveMembers") && cast.eq_ignore_ascii_case("microsoft.graph.user") =>
        {
            (g, true)
        }
        _ => return None,
    };
    if let Err(resp) = admit(shared, ids, parts) {
        return Some(resp);
    }
    let group = group.to_ascii_lowercase();
    let pairs = raw_query_pairs(parts.uri.query());
    let mut data = lock(&shared.data);
    let (round, offset) = match query_option(&pairs, "skiptoken") {
        Some(token) => match data.sync_tokens.get(token).and_then(|t| t.state::<MemberPage>()) {
            Some(page)
                if page.round.group == group
                    && page.round.users_only == users_only
                    && page.round.version == version =>
            {
                (Arc::clone(&page.round), page.offset)
            }
            _ => return Some(bad_request(ids, "invalid skip token")),
        },
        None => {
            if !data.directory.groups.contains_key(&group) {
                return Some(not_found(ids, &group));
            }
            let top = match parse_top(ids, &pairs) {
                Ok(top) => top,
                Err(resp) => return Some(resp),
            };
            let select = parse_select(query_option(&pairs, "select"));
            let items = data.directory.transitive(&group, users_only, select.as_deref());
            let round = MemberRound {
                version,
                group,
                users_only,
                select,
                page_size: top.unwrap_or(shared.config.page_size).max(1),
                items,
            };
            (Arc::new(round), 0)
        }
    };
    let start = offset.min(round.items.len());
    let end = start.saturating_add(round.page_size).min(round.items.len());
    let value = round.items.get(start..end).unwrap_or(&[]).to_vec();
    let mut body = Map::new();
    let entity = if users_only { "users" } else { "directoryObjects" };
    let context = match &round.select {
        Some(s) => format!("{}/$metadata#{entity}({})", shared.base(version), s.join(",")),
        None => format!("{}/$metadata#{entity}", shared.base(version)),
    };
    body.insert("@odata.context".into(), context.into());
    if end < round.items.len() {
        let page = MemberPage {
            round: Arc::clone(&round),
            offset: end,
        };
        let token = data.sync_tokens.issue(shared.config.seed, TokenKind::Page, page);
        let mut link = format!(
            "{}/groups/{}/transitiveMembers{}?",
            shared.base(version),
            encode_segment(&round.group),
            if users_only { "/microsoft.graph.user" } else { "" }
        );
        if let Some(s) = &round.select {
            link.push_str(&format!("$select={}&", s.join(",")));
        }
        link.push_str(&format!("$top={}&$skiptoken={token}", round.page_size));
        body.insert("@odata.nextLink".into(), link.into());
    }
    drop(data);
    body.insert("value".into(), Value::Array(value));
    Some(json_response(StatusCode::OK, ODATA_JSON, &Value::Object(body)))
}

/// The parameters of a `/users/delta` round, carried inside its tokens.
#[derive(Debug)]
pub(crate) struct UserQuery {
    version: ApiVersion,
    select: Option<Vec<String>>,
}

/// `GET /users/delta`.
pub(crate) fn users_delta(shared: &Shared, ids: &RequestIds, version: ApiVersion, parts: &Parts) -> Response {
    if let Err(resp) = admit(shared, ids, parts) {
        return resp;
    }
    let flags = shared.fault_flags();
    let pairs = raw_query_pairs(parts.uri.query());
    let param = match token_param(ids, &pairs) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let mut data = lock(&shared.data);
    let location = |q: &UserQuery, kind: SyncLocation| Some(initial_url(shared, q, kind.keeps_options()));
    let initial = |_: &Data| {
        Ok(UserQuery {
            version,
            select: parse_select(query_option(&pairs, "select")),
        })
    };
    let (round, offset, empty_page) = match start(shared, ids, &data, param, location, round, initial) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let q = Arc::clone(&round.query);
    let page = paginate(
        &round.items,
        offset,
        empty_page,
        shared.config.page_size.max(1),
        flags,
        Value::clone,
    );
    let seed = shared.config.seed;
    let base = format!("{}/users/delta()", shared.base(q.version));
    let next = continuation(&mut data.sync_tokens, seed, &round, page.next);
    let link = (next.property(), format!("{base}?{}={}", next.param(), next.token));
    drop(data);
    let context = match &q.select {
        Some(s) => format!("{}/$metadata#users({})", shared.base(q.version), s.join(",")),
        None => format!("{}/$metadata#users", shared.base(q.version)),
    };
    json_response(StatusCode::OK, ODATA_JSON, &page_json(context, page.value, link))
}

/// Snapshots a `/users/delta` round: every live user in order of creation,
/// or (`since = Some(high_water)`) every user changed since, in order of
/// change: a new one with every selected property, an enabled or disabled
/// one with `id` and `accountEnabled` (if selected), a removed one as
/// `{"id", "@removed": {"reason"}}`.
fn round(data: &Data, query: Arc<UserQuery>, since: Option<u64>) -> Round<UserQuery, Value> {
    let users = &data.directory.users;
    let select = query.select.as_deref();
    let items = match since {
        None => users
            .iter()
            .filter(|u| u.removed.is_none())
            .map(|u| u.to_json(select, false))
            .collect(),
        Some(k) => {
            let mut changed: Vec<&User> = users.iter().filter(|u| u.change_seq() > k).collect();
            changed.sort_by_key(|u| u.change_seq());
            changed
                .into_iter()
                .map(|u| match u.removed {
                    Some((reason, _)) => serde_json::json!({
                        "id": u.id,
                        "@removed": { "reason": reason.reason() },
                    }),
                    None if u.created_seq > k => u.to_json(select, false),
                    None => {
                        let wanted = |p: &str| select.is_none_or(|s| s.iter().any(|f| f == p));
                        let mut m = Map::new();
                        m.insert("id".into(), u.id.clone().into());
                        if u.enabled_seq > k && wanted("accountEnabled") {
                            m.insert("accountEnabled".into(), u.enabled.into());
                        }
                        Value::Object(m)
                    }
                })
                .collect()
        }
    };
    Round {
        query,
        items,
        high_water: data.directory.seq,
    }
}

/// A fresh initial `/users/delta` request (for the `Location` of a 410):
/// with the round's `$select` when `with_options`.
fn initial_url(shared: &Shared, q: &UserQuery, with_options: bool) -> String {
    let mut url = format!("{}/users/delta", shared.base(q.version));
    if let (true, Some(s)) = (with_options, &q.select) {
        url.push_str("?$select=");
        url.push_str(&s.join(","));
    }
    url
}
