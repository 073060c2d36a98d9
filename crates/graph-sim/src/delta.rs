//! Delta queries: `getAllRecordings(...)/delta`, `getAllTranscripts(...)/delta`
//! and `contactFolders/{id}/contacts/delta`.
//!
//! A round snapshots its items when it starts; its pages are addressed by opaque
//! skip tokens and its end by a delta token that continues from the snapshot's
//! high-water mark. Tokens are looked up by their *raw* query text.

use std::sync::Arc;

use axum::http::header::{HeaderName, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::data::Data;
use crate::data::artifact::ArtifactKind;
use crate::data::contacts::CONTACT_PROPERTIES;
use crate::data::tokens::{SyncTokens, TokenKind};
use crate::faults::{FaultFlags, SyncLocation, TRANSCRIPTS_DISABLED_MESSAGE, Target};
use crate::http::{
    ApiVersion, ODATA_JSON, RequestIds, bad_request, decode_query_value, encode_segment, format_datetime, graph_error,
    json_response, mailbox_error, method_not_allowed, parse_datetime, query_option, raw_query_pairs, set_header,
};
use crate::server::{authenticate, check_throttle, payment_required};
use crate::state::{Shared, lock};

static PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// Which kind of state token a request carried.
pub(crate) enum TokenParam<'a> {
    None,
    Skip(&'a str),
    Delta(&'a str),
}

/// Extracts the skip / delta token (raw) from the query, or answers 400.
pub(crate) fn token_param<'a>(ids: &RequestIds, pairs: &[(String, &'a str)]) -> Result<TokenParam<'a>, Response> {
    match (query_option(pairs, "skiptoken"), query_option(pairs, "deltatoken")) {
        (Some(_), Some(_)) => Err(bad_request(
            ids,
            "Only one of $skiptoken and $deltatoken may be specified.",
        )),
        (Some(t), None) => Ok(TokenParam::Skip(t)),
        (None, Some(t)) => Ok(TokenParam::Delta(t)),
        (None, None) => Ok(TokenParam::None),
    }
}

/// A snapshot of the items of one round.
#[derive(Debug)]
pub(crate) struct Round<Q, I> {
    pub(crate) query: Arc<Q>,
    pub(crate) items: Vec<I>,
    /// The high-water mark the round's deltaLink continues from.
    pub(crate) high_water: u64,
}

/// What a skip token of a delta round stands for: the round and where its
/// next page starts.
#[derive(Debug)]
pub(crate) struct Skip<Q, I> {
    pub(crate) round: Arc<Round<Q, I>>,
    pub(crate) offset: usize,
    /// Whether that page is an extra empty one ([`crate::Faults::empty_pages`]).
    pub(crate) empty_page: bool,
}

/// What a delta token stands for: the round's query and the high-water mark
/// the next round continues from.
#[derive(Debug)]
pub(crate) struct Delta<Q> {
    pub(crate) query: Arc<Q>,
    pub(crate) high_water: u64,
}

/// Where a request with a skip or delta token goes on.
pub(crate) enum Resume<Q, I> {
    /// The next page of a round.
    Page(Arc<Skip<Q, I>>),
    /// A new round from a high-water mark.
    Round(Arc<Delta<Q>>),
}

impl<Q, I> Resume<Q, I> {
    fn query(&self) -> &Q {
        match self {
            Resume::Page(s) => &s.round.query,
            Resume::Round(d) => &d.query,
        }
    }
}

/// Looks up a raw skip (`skip`) or delta token of a delta round whose query
/// is a `Q` and items are `I`s. `Ok` if valid; otherwise the 400 (unknown, or
/// another endpoint's) or 410 (expired) answer. `location` builds the
/// `Location` of an expired token's 410 from the round's query and the kind
/// of location the fault asks for.
pub(crate) fn resume<Q: Send + Sync + 'static, I: Send + Sync + 'static>(
    shared: &Shared,
    ids: &RequestIds,
    tokens: &SyncTokens,
    token: &str,
    skip: bool,
    location: impl FnOnce(&Q, SyncLocation) -> Option<String>,
) -> Result<Resume<Q, I>, Response> {
    let what = if skip { "skip" } else { "delta" };
    let invalid = || bad_request(ids, &format!("invalid {what} token"));
    let Some(tok) = tokens.get(token).filter(|t| t.is_skip() == skip) else {
        return Err(invalid());
    };
    let resume = if skip {
        tok.state::<Skip<Q, I>>().map(Resume::Page)
    } else {
        tok.state::<Delta<Q>>().map(Resume::Round)
    };
    if let Some((code, kind)) = &tok.expired {
        shared.stat(|s| s.gone += 1);
        let message = if code.eq_ignore_ascii_case("resyncRequired") {
            "Resync is required as the delta token is no longer valid. Restart the sync from the initial request."
        } else {
            "The sync state generation is not found or has expired. Resync required: restart from the initial request."
        };
        let mut resp = graph_error(ids, StatusCode::GONE, code, message);
        if *kind != SyncLocation::None {
            if let Some(url) = resume.as_ref().and_then(|r| location(r.query(), *kind)) {
                let url = match kind {
                    // The path and query alone: scheme and host dropped.
                    SyncLocation::Relative => url
                        .split_once("://")
                        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
                        .unwrap_or(url),
                    _ => url,
                };
                set_header(resp.headers_mut(), LOCATION, &url);
            }
        }
        return Err(resp);
    }
    resume.ok_or_else(invalid)
}

/// One page of a round: its items and where the next page starts
/// (`Some((offset, empty_page))`), or `None` when the round ends.
pub(crate) struct Page {
    pub(crate) value: Vec<Value>,
    pub(crate) next: Option<(usize, bool)>,
}

pub(crate) fn paginate<I>(
    items: &[I],
    offset: usize,
    empty_page: bool,
    page_size: usize,
    flags: FaultFlags,
    render: impl Fn(&I) -> Value,
) -> Page {
    let len = items.len();
    if empty_page {
        return Page {
            value: Vec::new(),
            next: Some((offset.min(len), false)),
        };
    }
    let start = offset.min(len);
    let end = start.saturating_add(page_size.max(1)).min(len);
    let mut value = Vec::with_capacity(end - start + 1);
    if flags.duplicate_items && start > 0 {
        if let Some(prev) = items.get(start - 1) {
            value.push(render(prev));
        }
    }
    value.extend(items.get(start..end).unwrap_or(&[]).iter().map(&render));
    let next = (end < len).then_some((end, flags.empty_pages && end > start));
    Page { value, next }
}

/// Builds the page JSON: context, nextLink before / deltaLink after `value`.
pub(crate) fn page_json(context: String, value: Vec<Value>, link: (&str, String)) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("@odata.context".into(), context.into());
    let next = link.0 == "@odata.nextLink";
    if next {
        m.insert(link.0.into(), link.1.clone().into());
    }
    m.insert("value".into(), Value::Array(value));
    if !next {
        m.insert(link.0.into(), link.1.into());
    }
    Value::Object(m)
}

// ---------------------------------------------------------------------------
// Recordings and transcripts

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

/// The parameters of a contacts delta round, carried inside its tokens.
#[derive(Debug)]
pub(crate) struct ContactQuery {
    pub(crate) version: ApiVersion,
    pub(crate) user: String,
    pub(crate) folder: String,
    pub(crate) select: Option<Vec<String>>,
    pub(crate) page_size: Option<usize>,
}

/// `GET /users/{user}/onlineMeetings/getAllRecordings(...)/delta` and
/// `…/getAllTranscripts(...)/delta`: one machinery for both kinds, which
/// differ only in their items, their function's name and the faults that
/// single one of them out (`transcripts_disabled`).
pub(crate) fn artifacts(
    shared: &Arc<Shared>,
    ids: &RequestIds,
    version: ApiVersion,
    kind: ArtifactKind,
    user: &str,
    params: &[(String, String)],
    parts: &Parts,
) -> Response {
    shared.stat(|s| match kind {
        ArtifactKind::Recording => s.delta_requests += 1,
        ArtifactKind::Transcript => s.transcript_delta_requests += 1,
    });
    if parts.method != Method::GET {
        return method_not_allowed(ids, "GET");
    }
    if let Err(resp) = authenticate(shared, ids, &parts.headers) {
        return resp;
    }
    if let Some(resp) = check_throttle(shared, ids, Target::Delta) {
        return resp;
    }
    let param_organizer = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("meetingOrganizerUserId"))
        .map_or("", |(_, v)| v.as_str());
    if shared.organizer_forbidden(&[user, param_organizer]) {
        shared.stat(|s| s.forbidden += 1);
        return graph_error(
            ids,
            StatusCode::FORBIDDEN,
            "Forbidden",
            "No application access policy found for this app.",
        );
    }
    if kind == ArtifactKind::Transcript && shared.transcripts_disabled() {
        return transcripts_disabled(shared, ids);
    }
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
            let query = match artifact_query(ids, version, kind, params, &pairs) {
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

/// The `403` of every transcript request while `transcripts_disabled` is on
/// (and counts it).
pub(crate) fn transcripts_disabled(shared: &Shared, ids: &RequestIds) -> Response {
    shared.stat(|s| s.transcript_forbidden += 1);
    graph_error(ids, StatusCode::FORBIDDEN, "Forbidden", TRANSCRIPTS_DISABLED_MESSAGE)
}

/// Parses the initial request's function parameters and query options.
fn artifact_query(
    ids: &RequestIds,
    version: ApiVersion,
    kind: ArtifactKind,
    params: &[(String, String)],
    pairs: &[(String, &str)],
) -> Result<ArtifactQuery, Response> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
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
    let top = match query_option(pairs, "top") {
        None => None,
        Some(raw) => {
            let v = decode_query_value(raw);
            match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(bad_request(
                        ids,
                        &format!("Invalid value '{v}' for query option $top: a positive integer is required."),
                    ));
                }
            }
        }
    };
    let select = match query_option(pairs, "select") {
        None => None,
        Some(raw) => Some(parse_select(ids, raw, kind.properties(), kind.type_name())?),
    };
    Ok(ArtifactQuery {
        kind,
        version,
        organizer,
        start,
        end,
        top,
        select,
    })
}

/// Parses a raw `$select` value against the properties of `type_name`.
fn parse_select(ids: &RequestIds, raw: &str, known: &[&str], type_name: &str) -> Result<Vec<String>, Response> {
    let fields: Vec<String> = decode_query_value(raw)
        .split(',')
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect();
    if let Some(bad) = fields.iter().find(|f| !known.iter().any(|p| p.eq_ignore_ascii_case(f))) {
        return Err(graph_error(
            ids,
            StatusCode::BAD_REQUEST,
            "RequestBroker--ParseUri",
            &format!("Could not find a property named '{bad}' on type 'microsoft.graph.{type_name}'."),
        ));
    }
    Ok(fields)
}

/// Keeps only the `select`ed properties of `item` (and its `@odata.type` and `id`).
fn apply_select(item: Value, select: Option<&[String]>) -> Value {
    let (Some(select), Value::Object(m)) = (select, &item) else {
        return item;
    };
    let kept = m
        .iter()
        .filter(|(k, _)| {
            k.as_str() == "@odata.type" || k.as_str() == "id" || select.iter().any(|f| f.eq_ignore_ascii_case(k))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
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
    let link = match page.next {
        Some((offset, empty_page)) => {
            let skip = Skip {
                round: Arc::clone(round),
                offset,
                empty_page,
            };
            let token = data.sync_tokens.issue(seed, TokenKind::Skip, skip);
            ("@odata.nextLink", link(shared, data, q, true, &token))
        }
        None => {
            let delta = Delta {
                query: Arc::clone(q),
                high_water: round.high_water,
            };
            let token = data.sync_tokens.issue(seed, TokenKind::Delta, delta);
            ("@odata.deltaLink", link(shared, data, q, false, &token))
        }
    };
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
    let mut f = format!("{}(meetingOrganizerUserId='{org}'", q.kind.function());
    if with_options {
        if let Some(s) = &q.start {
            f.push_str(",startDateTime=");
            f.push_str(&format_datetime(s));
        }
        if let Some(e) = &q.end {
            f.push_str(",endDateTime=");
            f.push_str(&format_datetime(e));
        }
    }
    f.push(')');
    f
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

// ---------------------------------------------------------------------------
// Contacts

/// `odata.maxpagesize=N` from the `Prefer` header(s).
fn prefer_max_page_size(headers: &HeaderMap) -> Option<usize> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("odata.maxpagesize"))
        .and_then(|(_, v)| v.trim().trim_matches('"').parse::<usize>().ok())
        .filter(|n| *n > 0)
}

/// `GET /users/{user}/contactFolders/{folder}/contacts/delta` (`folder` an
/// id or the well-known `contacts`).
pub(crate) fn contacts(
    shared: &Arc<Shared>,
    ids: &RequestIds,
    version: ApiVersion,
    user: &str,
    folder: &str,
    parts: &Parts,
) -> Response {
    shared.stat(|s| s.delta_requests += 1);
    if parts.method != Method::GET {
        return method_not_allowed(ids, "GET");
    }
    if let Err(resp) = authenticate(shared, ids, &parts.headers) {
        return resp;
    }
    if let Some(resp) = check_throttle(shared, ids, Target::Delta) {
        return resp;
    }
    if let Some(fault) = shared.mailbox_fault(user) {
        return mailbox_error(ids, fault);
    }
    let flags = shared.fault_flags();
    let prefer = prefer_max_page_size(&parts.headers);
    let pairs = raw_query_pairs(parts.uri.query());
    let param = match token_param(ids, &pairs) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let mut data = lock(&shared.data);
    let (round, offset, empty_page) = match param {
        TokenParam::Skip(t) | TokenParam::Delta(t) => {
            let skip = matches!(param, TokenParam::Skip(_));
            let resumed = resume(shared, ids, &data.sync_tokens, t, skip, |q: &ContactQuery, kind| {
                Some(if kind.keeps_options() {
                    contact_initial_url(shared, q)
                } else {
                    contact_initial_base(shared, q)
                })
            });
            match resumed {
                Err(resp) => return resp,
                Ok(Resume::Page(p)) => (Arc::clone(&p.round), p.offset, p.empty_page),
                Ok(Resume::Round(d)) => (
                    Arc::new(contact_round(&data, Arc::clone(&d.query), Some(d.high_water))),
                    0,
                    false,
                ),
            }
        }
        TokenParam::None => {
            let select = match query_option(&pairs, "select") {
                None => None,
                Some(raw) => match parse_select(ids, raw, CONTACT_PROPERTIES, "contact") {
                    Ok(fields) => Some(fields),
                    Err(resp) => return resp,
                },
            };
            // The well-known `contacts` names the default folder; links carry its id.
            let folder = data.contacts.resolve_folder(user, folder);
            let key = (user.to_ascii_lowercase(), folder.clone());
            if !data.contacts.folders.contains_key(&key) {
                return graph_error(
                    ids,
                    StatusCode::NOT_FOUND,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            }
            let query = Arc::new(ContactQuery {
                version,
                user: user.to_owned(),
                folder,
                select,
                page_size: prefer,
            });
            (Arc::new(contact_round(&data, query, None)), 0, false)
        }
    };
    let q = Arc::clone(&round.query);
    let page_size = prefer.or(q.page_size).unwrap_or(shared.config.page_size).max(1);
    let page = paginate(&round.items, offset, empty_page, page_size, flags, Value::clone);
    let seed = shared.config.seed;
    let base_link = contact_initial_base(shared, &q);
    let link = match page.next {
        Some((offset, empty_page)) => {
            let skip = Skip {
                round: Arc::clone(&round),
                offset,
                empty_page,
            };
            let token = data.sync_tokens.issue(seed, TokenKind::Skip, skip);
            ("@odata.nextLink", format!("{base_link}?$skiptoken={token}"))
        }
        None => {
            let delta = Delta {
                query: Arc::clone(&q),
                high_water: round.high_water,
            };
            let token = data.sync_tokens.issue(seed, TokenKind::Delta, delta);
            ("@odata.deltaLink", format!("{base_link}?$deltatoken={token}"))
        }
    };
    drop(data);
    let context = format!("{}/$metadata#Collection(contact)", shared.base(q.version));
    let mut resp = json_response(StatusCode::OK, ODATA_JSON, &page_json(context, page.value, link));
    if let Some(n) = prefer {
        set_header(
            resp.headers_mut(),
            PREFERENCE_APPLIED.clone(),
            &format!("odata.maxpagesize={n}"),
        );
    }
    resp
}

/// Snapshots a contacts round (`since = Some(high_water)` for a delta round).
fn contact_round(data: &Data, query: Arc<ContactQuery>, since: Option<u64>) -> Round<ContactQuery, Value> {
    let key = (query.user.to_ascii_lowercase(), query.folder.clone());
    let select = query.select.as_deref();
    let items = match data.contacts.folders.get(&key) {
        None => Vec::new(),
        Some(f) => match since {
            None => f
                .contacts
                .iter()
                .filter(|c| c.removed.is_none())
                .map(|c| c.to_json(&f.folder, select))
                .collect(),
            Some(k) => {
                let mut changed: Vec<_> = f.contacts.iter().filter(|c| c.change_seq > k).collect();
                changed.sort_by_key(|c| c.change_seq);
                changed.into_iter().map(|c| c.to_json(&f.folder, select)).collect()
            }
        },
    };
    Round {
        query,
        items,
        high_water: data.contacts.seq,
    }
}

fn contact_initial_base(shared: &Shared, q: &ContactQuery) -> String {
    format!(
        "{}/users/{}/contactFolders/{}/contacts/delta",
        shared.base(q.version),
        encode_segment(&q.user),
        encode_segment(&q.folder)
    )
}

/// A fresh initial-request URL for the query (used in `Location` of a 410).
fn contact_initial_url(shared: &Shared, q: &ContactQuery) -> String {
    let mut url = contact_initial_base(shared, q);
    if let Some(sel) = &q.select {
        url.push_str("?$select=");
        url.push_str(&sel.join(","));
    }
    url
}
