//! What every Graph request goes through before its endpoint serves it:
//! authentication, injected throttles, and the answers of the switches that
//! refuse whole APIs (402, 403).

use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use std::time::Instant;

use crate::api::ListCall;
use crate::data::artifact::{ArtifactKind, Place};
use crate::faults::{MailboxFault, TRANSCRIPTS_DISABLED_MESSAGE, Target};
use crate::http::{RequestIds, graph_error, method_not_allowed, set_header, throttled_error};
use crate::state::{Shared, lock};

/// What every Graph API request goes through first, in this order: `GET`
/// only (405), a valid bearer token (401), then a pending throttle for
/// `target`.
pub(crate) fn admit_get(shared: &Shared, ids: &RequestIds, parts: &Parts, target: Target) -> Result<(), Response> {
    if parts.method != Method::GET {
        return Err(method_not_allowed(ids, "GET"));
    }
    authenticate(shared, ids, &parts.headers)?;
    match check_throttle(shared, ids, target) {
        Some(resp) => Err(resp),
        None => Ok(()),
    }
}

/// What a request for a listing function goes through first, after it is
/// counted, in this order: [`admit_get`] (its target: [`Target::Delta`] for
/// a meeting's, [`Target::AdhocCalls`] for an ad hoc call's), then
/// [`forbidden_user`] for the user in the path and the one the function
/// names, then [`transcripts_disabled`] for a transcript listing.
pub(crate) fn admit_list(
    shared: &Shared,
    ids: &RequestIds,
    parts: &Parts,
    call: &ListCall<'_>,
) -> Result<(), Response> {
    shared.stat(|s| {
        let count = match (call.place, call.kind) {
            (Place::Meeting, ArtifactKind::Recording) => &mut s.delta_requests,
            (Place::Meeting, ArtifactKind::Transcript) => &mut s.transcript_delta_requests,
            (Place::AdhocCall, ArtifactKind::Recording) => &mut s.adhoc_recording_list_requests,
            (Place::AdhocCall, ArtifactKind::Transcript) => &mut s.adhoc_transcript_list_requests,
        };
        *count += 1;
    });
    let target = match call.place {
        Place::Meeting => Target::Delta,
        Place::AdhocCall => Target::AdhocCalls,
    };
    admit_get(shared, ids, parts, target)?;
    let named = call.param(call.user_param_name()).unwrap_or_default();
    if let Some(resp) = forbidden_user(shared, ids, &[call.user, named]) {
        return Err(resp);
    }
    if call.kind == ArtifactKind::Transcript && shared.transcripts_disabled() {
        return Err(transcripts_disabled(shared, ids));
    }
    Ok(())
}

/// Checks `Authorization: Bearer <valid token>`.
pub(crate) fn authenticate(shared: &Shared, ids: &RequestIds, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    let message = match token {
        None => "Access token is empty.",
        Some(t) => {
            if lock(&shared.data).access_tokens.is_valid(t, Instant::now()) {
                return Ok(());
            }
            "Access token has expired or is not yet valid."
        }
    };
    shared.stat(|s| s.unauthorized += 1);
    let mut resp = graph_error(ids, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message);
    set_header(
        resp.headers_mut(),
        WWW_AUTHENTICATE,
        &format!(
            "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
            shared.graph_origin
        ),
    );
    Err(resp)
}

/// Answers an injected throttle for `target`, if one is pending.
pub(crate) fn check_throttle(shared: &Shared, ids: &RequestIds, target: Target) -> Option<Response> {
    let (status, retry_after) = shared.take_throttle(target)?;
    shared.stat(|s| s.throttled += 1);
    Some(throttled_error(ids, status, retry_after))
}

/// The 402 answered while `payment_required` is on.
pub(crate) fn payment_required(ids: &RequestIds) -> Response {
    graph_error(
        ids,
        StatusCode::PAYMENT_REQUIRED,
        "PaymentRequired",
        "Evaluation mode capacity has been exceeded. This API is a metered API: use a valid billing model (model=A or model=B) and an Azure subscription linked to the application. See https://learn.microsoft.com/graph/teams-licenses for details.",
    )
}

/// The `403` of every transcript request while `transcripts_disabled` is on
/// (and counts it).
pub(crate) fn transcripts_disabled(shared: &Shared, ids: &RequestIds) -> Response {
    shared.stat(|s| s.transcript_forbidden += 1);
    graph_error(ids, StatusCode::FORBIDDEN, "Forbidden", TRANSCRIPTS_DISABLED_MESSAGE)
}

/// The `403` of [`crate::Faults::organizer_forbidden`] if it is on for any of
/// `users` (and counts it).
pub(crate) fn forbidden_user(shared: &Shared, ids: &RequestIds, users: &[&str]) -> Option<Response> {
    if !shared.organizer_forbidden(users) {
        return None;
    }
    shared.stat(|s| s.forbidden += 1);
    Some(graph_error(
        ids,
        StatusCode::FORBIDDEN,
        "Forbidden",
        "No application access policy found for this app.",
    ))
}

/// The answer of `user`'s mailbox fault ([`crate::Faults::mailbox`]), if
/// one is set.
pub(crate) fn mailbox_refused(shared: &Shared, ids: &RequestIds, user: &str) -> Option<Response> {
    let answer = match shared.mailbox_fault(user)? {
        MailboxFault::NotEnabled => graph_error(
            ids,
            StatusCode::NOT_FOUND,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ),
        MailboxFault::AccessDenied => graph_error(
            ids,
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access to OData is disabled: the application is not allowed to access this mailbox.",
        ),
    };
    Some(answer)
}
