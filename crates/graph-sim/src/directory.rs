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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use crate::delta::{TokenParam, lookup_token, page_json, paginate, token_param};
use crate::faults::Target;
use crate::http::{
    ApiVersion, ODATA_JSON, RequestIds, bad_request, decode_query_value, encode_segment, graph_error, json_response,
    method_not_allowed, query_option, raw_query_pairs,
};
use crate::model::{Data, Removal, Round, Shared, SyncState, lock};
use crate::rng::{Rng, domain};
use crate::server::{authenticate, check_throttle};

/// A directory user's `userType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UserType {
    /// A member of the tenant (`"Member"`).
    #[default]
    Member,
    /// A guest (B2B) user (`"Guest"`).
    Guest,
}

impl UserType {
    /// The `userType` value Graph sends.
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Member => "Member",
            UserType::Guest => "Guest",
        }
    }
}

/// User properties `$select` may name (others are ignored).
const USER_PROPERTIES: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "accountEnabled",
    "userType",
];

/// Properties of a user when no `$select` is given (Graph's default set,
/// without the ones the simulator does not model).
const USER_DEFAULT: &[&str] = &["id", "displayName", "userPrincipalName", "mail"];

/// A directory user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) upn: String,
    pub(crate) enabled: bool,
    pub(crate) user_type: UserType,
    /// Directory change sequence numbers of its creation, of its last
    /// `accountEnabled` change and of its removal.
    created_seq: u64,
    enabled_seq: u64,
    removed: Option<(Removal, u64)>,
}

impl User {
    fn change_seq(&self) -> u64 {
        self.created_seq
            .max(self.enabled_seq)
            .max(self.removed.map_or(0, |(_, s)| s))
    }

    /// `first.last@…` → `First Last`; a guest's `bob_fabrikam.com#EXT#@…` → `Bob`.
    fn display_name(&self) -> String {
        let local = self.upn.split('@').next().unwrap_or_default();
        let local = match local.split_once("#EXT#") {
            Some((external, _)) => external.rsplit_once('_').map_or(external, |(name, _)| name),
            None => local,
        };
        local
            .split(['.', '_', '-'])
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The value of `property`, if the simulator models it.
    fn property(&self, property: &str) -> Option<Value> {
        Some(match property {
            "id" => self.id.clone().into(),
            "userPrincipalName" => self.upn.clone().into(),
            "displayName" => self.display_name().into(),
            "mail" => self.upn.clone().into(),
            "accountEnabled" => self.enabled.into(),
            "userType" => self.user_type.as_str().into(),
            _ => return None,
        })
    }

    /// The user object with the `select`ed properties (the default set when
    /// `None`), `@odata.type` first when `typed`.
    fn to_json(&self, select: Option<&[String]>, typed: bool) -> Value {
        let mut m = Map::new();
        if typed {
            m.insert("@odata.type".into(), "#microsoft.graph.user".into());
        }
        let props: Vec<&str> = match select {
            Some(s) => s.iter().map(String::as_str).collect(),
            None => USER_DEFAULT.to_vec(),
        };
        m.insert("id".into(), self.id.clone().into());
        for p in props {
            if let Some(v) = self.property(p) {
                m.insert(p.to_owned(), v);
            }
        }
        Value::Object(m)
    }
}

/// A group and its direct members (ids, in the order added).
#[derive(Debug, Clone)]
pub(crate) struct Group {
    name: String,
    members: Vec<String>,
}

/// Users, groups and devices.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    users: Vec<User>,
    /// Lowercase id → index in `users`.
    by_id: HashMap<String, usize>,
    /// Lowercase UPN → index in `users`, live users only.
    by_upn: HashMap<String, usize>,
    groups: HashMap<String, Group>,
    devices: HashMap<String, String>,
    /// Directory change sequence (creations, `accountEnabled` changes, removals).
    seq: u64,
    group_counter: u64,
    device_counter: u64,
}

impl Directory {
    /// Adds a user with id `id` (already unique) and returns it.
    fn insert_user(&mut self, id: String, upn: &str, enabled: bool, user_type: UserType) -> String {
        self.seq += 1;
        let index = self.users.len();
        self.by_id.insert(id.to_ascii_lowercase(), index);
        self.by_upn.insert(upn.to_lowercase(), index);
        self.users.push(User {
            id: id.clone(),
            upn: upn.to_owned(),
            enabled,
            user_type,
            created_seq: self.seq,
            enabled_seq: 0,
            removed: None,
        });
        id
    }

    /// The live user named by `key`: an id or a UPN (case-insensitive).
    pub(crate) fn live_user(&self, key: &str) -> Option<&User> {
        let i = self
            .by_id
            .get(&key.to_ascii_lowercase())
            .or_else(|| self.by_upn.get(&key.to_lowercase()))?;
        self.users.get(*i).filter(|u| u.removed.is_none())
    }

    fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        let i = *self.by_id.get(&id.to_ascii_lowercase())?;
        self.users.get_mut(i)
    }

    /// Whether `id` names a user, group or device.
    fn exists(&self, id: &str) -> bool {
        self.by_id.contains_key(&id.to_ascii_lowercase())
            || self.groups.contains_key(id)
            || self.devices.contains_key(id)
    }

    /// Everything reachable from `group` through nested groups, each once,
    /// depth first in the order members were added: users (live ones only),
    /// then, unless `users_only`, groups and devices too.
    fn transitive(&self, group: &str, users_only: bool, select: Option<&[String]>) -> Vec<Value> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut visited = HashSet::from([group.to_owned()]);
        // An explicit stack of member iterators: nesting depth is unbounded.
        let mut stack = vec![self.groups.get(group).map_or(&[][..], |g| g.members.as_slice()).iter()];
        while let Some(top) = stack.last_mut() {
            let Some(member) = top.next() else {
                stack.pop();
                continue;
            };
            if let Some(g) = self.groups.get(member) {
                if visited.insert(member.clone()) {
                    if !users_only {
                        out.push(serde_json::json!({
                            "@odata.type": "#microsoft.graph.group",
                            "id": member,
                            "displayName": g.name,
                        }));
                    }
                    stack.push(g.members.iter());
                }
            } else if let Some(name) = self.devices.get(member) {
                if !users_only && seen.insert(member.clone()) {
                    out.push(serde_json::json!({
                        "@odata.type": "#microsoft.graph.device",
                        "id": member,
                        "displayName": name,
                    }));
                }
            } else if let Some(u) = self.live_user(member) {
                if seen.insert(u.id.clone()) {
                    out.push(u.to_json(select, true));
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Changes, through `GraphSim`

impl Data {
    /// Adds a user (also an organizer, with no recordings yet) and returns its
    /// id; the existing id if a live user has that UPN.
    pub(crate) fn add_user(&mut self, seed: u64, upn: &str, enabled: bool, user_type: UserType) -> String {
        if let Some(u) = self.directory.live_user(upn) {
            return u.id.clone();
        }
        let id = self.new_organizer(seed);
        self.directory.insert_user(id, upn, enabled, user_type)
    }

    /// A new organizer, which is an enabled member user with UPN
    /// `user{n}@contoso.example`.
    pub(crate) fn add_organizer(&mut self, seed: u64) -> String {
        let id = self.new_organizer(seed);
        let upn = self.free_upn();
        self.directory.insert_user(id, &upn, true, UserType::Member)
    }

    /// Makes sure organizer `id` (lowercase) is a user, as [`Data::add_organizer`] would.
    pub(crate) fn ensure_user(&mut self, id: &str) {
        if !self.directory.by_id.contains_key(id) {
            let upn = self.free_upn();
            self.directory.insert_user(id.to_owned(), &upn, true, UserType::Member);
        }
    }

    fn free_upn(&self) -> String {
        (self.directory.users.len() + 1..)
            .map(|n| format!("user{n}@contoso.example"))
            .find(|upn| !self.directory.by_upn.contains_key(upn))
            .unwrap_or_default()
    }

    pub(crate) fn user_upn(&self, id: &str) -> Option<String> {
        self.directory.live_user(id).map(|u| u.upn.clone())
    }

    pub(crate) fn set_user_enabled(&mut self, id: &str, enabled: bool) {
        let seq = self.directory.seq + 1;
        if let Some(u) = self.directory.user_mut(id) {
            if u.removed.is_none() && u.enabled != enabled {
                u.enabled = enabled;
                u.enabled_seq = seq;
                self.directory.seq = seq;
            }
        }
    }

    pub(crate) fn remove_user(&mut self, id: &str, hard: bool) {
        let reason = if hard { Removal::Deleted } else { Removal::Changed };
        let d = &mut self.directory;
        let seq = d.seq + 1;
        let Some(&index) = d.by_id.get(&id.to_ascii_lowercase()) else {
            return;
        };
        let Some(u) = d.users.get_mut(index) else {
            return;
        };
        match u.removed {
            Some((Removal::Deleted, _)) => return,
            Some((r, _)) if r == reason => return,
            _ => u.removed = Some((reason, seq)),
        }
        d.seq = seq;
        // Its UPN is free again (unless a newer user already took it).
        let upn = u.upn.to_lowercase();
        if d.by_upn.get(&upn) == Some(&index) {
            d.by_upn.remove(&upn);
        }
    }

    pub(crate) fn add_group(&mut self, seed: u64, name: &str) -> String {
        let d = &mut self.directory;
        let id = loop {
            let g = Rng::derive(seed, domain::GROUP, d.group_counter).guid();
            d.group_counter += 1;
            if !d.exists(&g) {
                break g;
            }
        };
        d.groups.insert(
            id.clone(),
            Group {
                name: name.to_owned(),
                members: Vec::new(),
            },
        );
        id
    }

    pub(crate) fn add_device(&mut self, seed: u64, name: &str) -> String {
        let d = &mut self.directory;
        let id = loop {
            let g = Rng::derive(seed, domain::DEVICE, d.device_counter).guid();
            d.device_counter += 1;
            if !d.exists(&g) {
                break g;
            }
        };
        d.devices.insert(id.clone(), name.to_owned());
        id
    }

    /// Adds `member` (a user, group or device id) to `group`.
    pub(crate) fn add_member(&mut self, group: &str, member: &str) -> bool {
        let d = &mut self.directory;
        // Users are keyed case-insensitively, groups and devices by their lowercase GUIDs.
        let member = d
            .by_id
            .get(&member.to_ascii_lowercase())
            .and_then(|i| d.users.get(*i))
            .map_or_else(|| member.to_ascii_lowercase(), |u| u.id.clone());
        if !d.exists(&member) || member == group.to_ascii_lowercase() {
            return false;
        }
        match d.groups.get_mut(&group.to_ascii_lowercase()) {
            Some(g) if !g.members.contains(&member) => {
                g.members.push(member);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn remove_member(&mut self, group: &str, member: &str) -> bool {
        let Some(g) = self.directory.groups.get_mut(&group.to_ascii_lowercase()) else {
            return false;
        };
        let before = g.members.len();
        g.members.retain(|m| !m.eq_ignore_ascii_case(member));
        g.members.len() != before
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// What every directory request goes through first: the count, the method,
/// authentication, a pending throttle and the `directory_forbidden` switch.
fn admit(shared: &Shared, ids: &RequestIds, parts: &Parts) -> Result<(), Response> {
    shared.stat(|s| s.directory_requests += 1);
    if parts.method != Method::GET {
        return Err(method_not_allowed(ids, "GET"));
    }
    authenticate(shared, ids, &parts.headers)?;
    if let Some(resp) = check_throttle(shared, ids, Target::Directory) {
        return Err(resp);
    }
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
    if let Err(resp) = admit(shared, ids, parts) {
        return resp;
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
        Some(token) => match data.sync_tokens.get(token).map(|t| &t.state) {
            Some(SyncState::MemberSkip { round, offset })
                if round.group == group && round.users_only == users_only && round.version == version =>
            {
                (Arc::clone(round), *offset)
            }
            _ => return Some(bad_request(ids, "invalid skip token")),
        },
        None => {
            if !data.directory.groups.contains_key(&group) {
                return Some(not_found(ids, &group));
            }
            let top = match query_option(&pairs, "top").map(decode_query_value) {
                None => None,
                Some(v) => match v.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        return Some(bad_request(
                            ids,
                            &format!("Invalid value '{v}' for query option $top: a positive integer is required."),
                        ));
                    }
                },
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
        let token = data.issue_sync_token(
            shared.config.seed,
            SyncState::MemberSkip {
                round: Arc::clone(&round),
                offset: end,
            },
        );
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
    let (round, offset, empty_page) = match param {
        TokenParam::Skip(t) | TokenParam::Delta(t) => {
            let want_skip = matches!(param, TokenParam::Skip(_));
            let state = match lookup_token(shared, ids, &data, t, want_skip, |s, kind| {
                let q = match s {
                    SyncState::UserSkip { round, .. } => &round.query,
                    SyncState::UserDelta { query, .. } => query,
                    _ => return None,
                };
                Some(initial_url(shared, q, kind.keeps_options()))
            }) {
                Ok(s) => s,
                Err(resp) => return resp,
            };
            match state {
                SyncState::UserSkip {
                    round,
                    offset,
                    empty_page,
                } => (round, offset, empty_page),
                SyncState::UserDelta { query, high_water } => {
                    (Arc::new(round(&data, query, Some(high_water))), 0, false)
                }
                _ => {
                    let what = if want_skip { "skip" } else { "delta" };
                    return bad_request(ids, &format!("invalid {what} token"));
                }
            }
        }
        TokenParam::None => {
            let query = UserQuery {
                version,
                select: parse_select(query_option(&pairs, "select")),
            };
            (Arc::new(round(&data, Arc::new(query), None)), 0, false)
        }
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
    let link = match page.next {
        Some((offset, empty_page)) => {
            let state = SyncState::UserSkip {
                round: Arc::clone(&round),
                offset,
                empty_page,
            };
            let token = data.issue_sync_token(seed, state);
            ("@odata.nextLink", format!("{base}?$skiptoken={token}"))
        }
        None => {
            let state = SyncState::UserDelta {
                query: Arc::clone(&q),
                high_water: round.high_water,
            };
            let token = data.issue_sync_token(seed, state);
            ("@odata.deltaLink", format!("{base}?$deltatoken={token}"))
        }
    };
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
