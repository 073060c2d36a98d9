//! A user's contact folders: `GET /users/{id}/contactFolders`,
//! `GET /users/{id}/contactFolders/{folderId}` and
//! `GET /users/{id}/contactFolders/{folderId}/childFolders`.
//!
//! As in Graph, `/contactFolders` lists the folders *in* the default
//! `Contacts` folder (the top-level folders), not the default folder itself:
//! that one is reachable by its well-known name
//! (`/contactFolders/contacts`) and is the `parentFolderId` of every
//! top-level folder. Nested folders are only found through their parent's
//! `childFolders`. Lists are paged like other Outlook resources: `$top`
//! (default [`crate::SimConfig::page_size`]) and `$skip`, the
//! `@odata.nextLink` carrying both; no snapshot and no deltaLink.

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::Value;

use crate::api::guard::{admit_get, mailbox_refused};
use crate::api::paging::list_json;
use crate::faults::Target;
use crate::http::{
    ApiVersion, ODATA_JSON, RequestIds, bad_request, decode_query_value, encode_segment, graph_error, json_response,
    query_option, raw_query_pairs,
};
use crate::state::{Shared, lock};

/// The count, the method, authentication and a pending throttle.
fn admit(shared: &Shared, ids: &RequestIds, parts: &Parts, user: &str) -> Result<(), Response> {
    shared.stat(|s| s.contact_folder_requests += 1);
    admit_get(shared, ids, parts, Target::ContactFolders)?;
    if let Some(resp) = mailbox_refused(shared, ids, user) {
        return Err(resp);
    }
    Ok(())
}

/// A contact folder as a request's path names it:
/// `/{version}/users/{user}/contactFolders/{folder}/…`, `folder` an id or
/// the well-known `contacts`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FolderPath<'a> {
    pub(crate) version: ApiVersion,
    pub(crate) user: &'a str,
    pub(crate) folder: &'a str,
}

/// The `404` of a folder the user does not have.
pub(crate) fn folder_not_found(ids: &RequestIds) -> Response {
    graph_error(
        ids,
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn invalid_user(ids: &RequestIds, user: &str) -> Response {
    graph_error(
        ids,
        StatusCode::NOT_FOUND,
        "ErrorInvalidUser",
        &format!("The requested user '{}' is invalid.", user.escape_default()),
    )
}

/// A non-negative integer query option, or the 400 naming it.
fn number(ids: &RequestIds, pairs: &[(String, &str)], name: &str, min: usize) -> Result<Option<usize>, Response> {
    let Some(raw) = query_option(pairs, name) else {
        return Ok(None);
    };
    let v = decode_query_value(raw);
    match v.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(Some(n)),
        _ => Err(bad_request(
            ids,
            &format!("Invalid value '{v}' for query option ${name}: an integer of at least {min} is required."),
        )),
    }
}

/// `GET /users/{user}/contactFolders` (`parent` = `None`) or
/// `GET /users/{user}/contactFolders/{parent}/childFolders`.
pub(crate) fn list(
    shared: &Shared,
    ids: &RequestIds,
    version: ApiVersion,
    user: &str,
    parent: Option<&str>,
    parts: &Parts,
) -> Response {
    if let Err(resp) = admit(shared, ids, parts, user) {
        return resp;
    }
    if parent.is_some() && lock(&shared.faults).folder_ids_only {
        return folder_not_found(ids);
    }
    let pairs = raw_query_pairs(parts.uri.query());
    let (top, skip) = match (number(ids, &pairs, "top", 1), number(ids, &pairs, "skip", 0)) {
        (Ok(t), Ok(s)) => (t.unwrap_or(shared.config.page_size).max(1), s.unwrap_or(0)),
        (Err(resp), _) | (_, Err(resp)) => return resp,
    };
    let data = lock(&shared.data);
    let folders = match (data.contacts.mailboxes.get(&user.to_ascii_lowercase()), parent) {
        (Some(m), None) => data.contacts.child_folders(user, &m.default_id),
        (Some(_), Some(p)) => match data.contacts.folder(user, p) {
            Some(f) => data.contacts.child_folders(user, &f.folder),
            None => return folder_not_found(ids),
        },
        // A directory user without contacts: an empty default folder.
        (None, None) if data.directory.live_user(user).is_some() => Vec::new(),
        (None, Some(_)) if data.directory.live_user(user).is_some() => return folder_not_found(ids),
        (None, _) => return invalid_user(ids, user),
    };
    let value: Vec<Value> = folders.iter().skip(skip).take(top).map(|f| f.to_json()).collect();
    let base = shared.base(version);
    let path = match parent {
        None => format!("users/{}/contactFolders", encode_segment(user)),
        Some(p) => format!(
            "users/{}/contactFolders/{}/childFolders",
            encode_segment(user),
            encode_segment(p)
        ),
    };
    let context = format!("{base}/$metadata#{path}");
    let next = skip.saturating_add(top);
    let next_link = (next < folders.len()).then(|| format!("{base}/{path}?$top={top}&$skip={next}"));
    let body = list_json(context, value, next_link);
    json_response(StatusCode::OK, ODATA_JSON, &body)
}

/// `GET /users/{user}/contactFolders/{folder}`.
pub(crate) fn get(shared: &Shared, ids: &RequestIds, path: FolderPath<'_>, parts: &Parts) -> Response {
    let FolderPath { version, user, folder } = path;
    if let Err(resp) = admit(shared, ids, parts, user) {
        return resp;
    }
    if folder.eq_ignore_ascii_case("contacts") && lock(&shared.faults).folder_ids_only {
        return folder_not_found(ids);
    }
    let data = lock(&shared.data);
    if !data.contacts.mailboxes.contains_key(&user.to_ascii_lowercase()) && data.directory.live_user(user).is_none() {
        return invalid_user(ids, user);
    }
    let Some(f) = data.contacts.folder(user, folder) else {
        return folder_not_found(ids);
    };
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        format!(
            "{}/$metadata#users('{}')/contactFolders/$entity",
            shared.base(version),
            encode_segment(user)
        )
        .into(),
    );
    if let Value::Object(m) = f.to_json() {
        body.extend(m);
    }
    json_response(StatusCode::OK, ODATA_JSON, &Value::Object(body))
}
