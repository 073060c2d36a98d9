//! Paging, shared by every list and delta endpoint: the skip / delta token
//! a request carries, the round snapshots and what their tokens stand for,
//! pages, and `$select`.
//!
//! A delta round snapshots its items when it starts; its pages are addressed
//! by opaque skip tokens and its end by a delta token that continues from
//! the snapshot's high-water mark. Tokens are looked up by their *raw* query
//! text.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::Response;
use serde_json::Value;

use crate::data::Data;
use crate::data::tokens::{SyncTokens, TokenKind};
use crate::faults::{FaultFlags, SyncLocation};
use crate::http::{RequestIds, bad_request, decode_query_value, graph_error, query_option, set_header};
use crate::state::Shared;

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

/// Where a page of a delta round starts: the round, the page's offset in
/// it, and whether the page is an extra empty one.
pub(crate) type Start<Q, I> = (Arc<Round<Q, I>>, usize, bool);

/// Where a request of a delta endpoint starts (`param`: the token it
/// carried): at the page a skip token stands for, at the start of a new
/// round from a delta token's high-water mark, or, without a token, at the
/// start of a new round of the query `initial` makes. `round` snapshots a
/// round (from a high-water mark, for a delta token); `location` is
/// [`resume`]'s. Errors: [`resume`]'s answers, and `initial`'s.
pub(crate) fn start<Q: Send + Sync + 'static, I: Send + Sync + 'static>(
    shared: &Shared,
    ids: &RequestIds,
    data: &Data,
    param: TokenParam<'_>,
    location: impl FnOnce(&Q, SyncLocation) -> Option<String>,
    round: impl FnOnce(&Data, Arc<Q>, Option<u64>) -> Round<Q, I>,
    initial: impl FnOnce(&Data) -> Result<Q, Response>,
) -> Result<Start<Q, I>, Response> {
    let resumed = match param {
        TokenParam::Skip(t) => resume(shared, ids, &data.sync_tokens, t, true, location)?,
        TokenParam::Delta(t) => resume(shared, ids, &data.sync_tokens, t, false, location)?,
        TokenParam::None => return Ok((Arc::new(round(data, Arc::new(initial(data)?), None)), 0, false)),
    };
    Ok(match resumed {
        Resume::Page(p) => (Arc::clone(&p.round), p.offset, p.empty_page),
        Resume::Round(d) => (
            Arc::new(round(data, Arc::clone(&d.query), Some(d.high_water))),
            0,
            false,
        ),
    })
}

/// Where a page of a delta round leads, as a token of [`SyncTokens`]: the round's next page
/// (a skip token), or at the round's end the next round from its high-water mark (a delta
/// token). Each endpoint builds its own link around the token.
pub(crate) struct Continuation {
    /// A skip token (`true`) or a delta token.
    pub(crate) skip: bool,
    /// The token, URL-safe as issued.
    pub(crate) token: String,
}

impl Continuation {
    /// `@odata.nextLink` or `@odata.deltaLink`.
    pub(crate) fn property(&self) -> &'static str {
        if self.skip {
            "@odata.nextLink"
        } else {
            "@odata.deltaLink"
        }
    }

    /// `$skiptoken` or `$deltatoken`.
    pub(crate) fn param(&self) -> &'static str {
        if self.skip { "$skiptoken" } else { "$deltatoken" }
    }
}

/// Issues the token a page of `round` continues with; `next` is [`Page::next`].
pub(crate) fn continuation<Q: Send + Sync + 'static, I: Send + Sync + 'static>(
    tokens: &mut SyncTokens,
    seed: u64,
    round: &Arc<Round<Q, I>>,
    next: Option<(usize, bool)>,
) -> Continuation {
    match next {
        Some((offset, empty_page)) => {
            let skip = Skip {
                round: Arc::clone(round),
                offset,
                empty_page,
            };
            Continuation {
                skip: true,
                token: tokens.issue(seed, TokenKind::Skip, skip),
            }
        }
        None => {
            let delta = Delta {
                query: Arc::clone(&round.query),
                high_water: round.high_water,
            };
            Continuation {
                skip: false,
                token: tokens.issue(seed, TokenKind::Delta, delta),
            }
        }
    }
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

/// Builds the page JSON of a list that is no delta query: context, the
/// nextLink if there is a next page, `value`.
pub(crate) fn list_json(context: String, value: Vec<Value>, next_link: Option<String>) -> Value {
    match next_link {
        Some(link) => page_json(context, value, ("@odata.nextLink", link)),
        None => {
            let mut m = serde_json::Map::new();
            m.insert("@odata.context".into(), context.into());
            m.insert("value".into(), Value::Array(value));
            Value::Object(m)
        }
    }
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

/// Parses a raw `$select` value against the properties of `type_name`.
pub(crate) fn parse_select(
    ids: &RequestIds,
    raw: &str,
    known: &[&str],
    type_name: &str,
) -> Result<Vec<String>, Response> {
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
pub(crate) fn apply_select(item: Value, select: Option<&[String]>) -> Value {
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

/// The `$top` query option: a positive integer, or the 400 naming it.
pub(crate) fn parse_top(ids: &RequestIds, pairs: &[(String, &str)]) -> Result<Option<usize>, Response> {
    let Some(raw) = query_option(pairs, "top") else {
        return Ok(None);
    };
    let v = decode_query_value(raw);
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(bad_request(
            ids,
            &format!("Invalid value '{v}' for query option $top: a positive integer is required."),
        )),
    }
}
