//! Contacts: `GET /users/{user}/contactFolders/{folder}/contacts/delta`
//! (`$select`, `Prefer: odata.maxpagesize`, `@removed` entries).

use std::sync::Arc;

use axum::http::header::HeaderName;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use crate::api::folders::{FolderPath, folder_not_found};
use crate::api::guard::{admit_get, mailbox_refused};
use crate::api::paging::continuation;
use crate::api::paging::{Round, page_json, paginate, parse_select, start, token_param};
use crate::data::Data;
use crate::data::contacts::CONTACT_PROPERTIES;
use crate::faults::{SyncLocation, Target};
use crate::http::{
    ApiVersion, ODATA_JSON, RequestIds, encode_segment, json_response, query_option, raw_query_pairs, set_header,
};
use crate::state::{Shared, lock};

static PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");
/// The parameters of a contacts delta round, carried inside its tokens.
#[derive(Debug)]
pub(crate) struct ContactQuery {
    pub(crate) version: ApiVersion,
    pub(crate) user: String,
    pub(crate) folder: String,
    pub(crate) select: Option<Vec<String>>,
    pub(crate) page_size: Option<usize>,
}

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

/// `GET /users/{user}/contactFolders/{folder}/contacts/delta`.
pub(crate) fn contacts(shared: &Arc<Shared>, ids: &RequestIds, path: FolderPath<'_>, parts: &Parts) -> Response {
    let FolderPath { version, user, folder } = path;
    shared.stat(|s| s.delta_requests += 1);
    if let Err(resp) = admit_get(shared, ids, parts, Target::Delta) {
        return resp;
    }
    if let Some(resp) = mailbox_refused(shared, ids, user) {
        return resp;
    }
    let flags = shared.fault_flags();
    let prefer = prefer_max_page_size(&parts.headers);
    let pairs = raw_query_pairs(parts.uri.query());
    let param = match token_param(ids, &pairs) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let mut data = lock(&shared.data);
    let location = |q: &ContactQuery, kind: SyncLocation| {
        Some(if kind.keeps_options() {
            contact_initial_url(shared, q)
        } else {
            contact_initial_base(shared, q)
        })
    };
    let initial = |data: &Data| {
        let select = match query_option(&pairs, "select") {
            None => None,
            Some(raw) => Some(parse_select(ids, raw, CONTACT_PROPERTIES, "contact")?),
        };
        // The well-known `contacts` names the default folder; links carry its id.
        let Some(found) = data.contacts.folder(user, folder) else {
            return Err(folder_not_found(ids));
        };
        Ok(ContactQuery {
            version,
            user: user.to_owned(),
            folder: found.folder.clone(),
            select,
            page_size: prefer,
        })
    };
    let (round, offset, empty_page) = match start(shared, ids, &data, param, location, contact_round, initial) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let q = Arc::clone(&round.query);
    let page_size = prefer.or(q.page_size).unwrap_or(shared.config.page_size).max(1);
    let page = paginate(&round.items, offset, empty_page, page_size, flags, Value::clone);
    let seed = shared.config.seed;
    let base_link = contact_initial_base(shared, &q);
    let next = continuation(&mut data.sync_tokens, seed, &round, page.next);
    let link = (next.property(), format!("{base_link}?{}={}", next.param(), next.token));
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
