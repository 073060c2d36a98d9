//! [`Faults`]: the public handle that switches the simulator's faults at run
//! time (the switches themselves are [`crate::faults::FaultState`]).

use std::fmt;
use std::sync::Arc;

use crate::faults::{
    CredentialRejection, FaultState, MailboxFault, RedirectStyle, RetryAfter, SyncLocation, Target, Throttle,
};
use crate::state::{Shared, lock};

/// Run-time fault switches, shared with the servers (cheap to clone).
#[derive(Clone)]
pub struct Faults {
    shared: Arc<Shared>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("state", &*lock(&self.shared.faults))
            .finish()
    }
}

impl Faults {
    /// A handle on `shared`'s switches.
    pub(crate) fn new(shared: Arc<Shared>) -> Faults {
        Faults { shared }
    }

    /// The next `count` requests to `target` answer `status` (429 or 503; any
    /// other 4xx/5xx is sent as is, anything else becomes 429) and, when
    /// `retry_after_secs` is `Some`, a `Retry-After` header in seconds. Same as
    /// [`Faults::throttle_with`] with [`RetryAfter::Seconds`] or
    /// [`RetryAfter::None`].
    pub fn throttle(&self, target: Target, status: u16, retry_after_secs: Option<u64>, count: u32) {
        let retry_after = retry_after_secs.map_or(RetryAfter::None, RetryAfter::Seconds);
        self.throttle_with(target, status, retry_after, count);
    }

    /// The next `count` requests to `target` answer `status` (any 4xx/5xx is
    /// sent as is, anything else becomes 429) with `Retry-After` as
    /// `retry_after` says. Replaces any pending throttle for `target`;
    /// `count == 0` cancels it.
    ///
    /// The body is a Graph error (`TooManyRequests` for 429,
    /// `ServiceUnavailable` for 503, `generalException` for 500, `UnknownError`
    /// for 502 and 504), except on [`Target::Token`], which answers like the
    /// Microsoft identity platform (`error`, `error_description` with an
    /// `AADSTS` code, `error_codes`, ...): `temporarily_unavailable` with
    /// AADSTS90033 for 429, 503 and 504, `server_error` with AADSTS50000 for
    /// other 5xx, `invalid_request` with AADSTS90100 for other 4xx. A throttled
    /// request changes nothing else: sent again, it is served as if nothing had
    /// happened (a delta link still works, a round goes on where it was).
    pub fn throttle_with(&self, target: Target, status: u16, retry_after: RetryAfter, count: u32) {
        lock(&self.shared.faults).throttle[target.index()] = (count > 0).then_some(Throttle {
            status,
            retry_after,
            remaining: count,
        });
    }

    /// Invalidates every skip / delta token issued so far (recordings,
    /// transcripts, contacts and `/users/delta`): using one answers `410 Gone` with error `code` (e.g.
    /// `SyncStateNotFound`, `syncStateNotFound`, `resyncRequired`) and, when
    /// `with_location`, a `Location` header with a fresh initial-request URL.
    /// Tokens issued later are valid. Same as [`Faults::expire_sync_state_with`]
    /// with [`SyncLocation::Fresh`] or [`SyncLocation::None`].
    pub fn expire_sync_state(&self, code: &str, with_location: bool) {
        let location = if with_location {
            SyncLocation::Fresh
        } else {
            SyncLocation::None
        };
        self.expire_sync_state_with(code, location);
    }

    /// Invalidates every skip / delta token issued so far (recordings,
    /// transcripts, contacts and `/users/delta`; not the skip tokens of group
    /// member pages or of ad hoc call lists, which are no sync state): using
    /// one answers `410 Gone` with error `code` and the
    /// `Location` that `location` says, built from the options the token's
    /// round was started with. Tokens issued later are valid.
    pub fn expire_sync_state_with(&self, code: &str, location: SyncLocation) {
        // Group member pages and ad hoc call lists are no delta query: their tokens stay valid.
        lock(&self.shared.data).sync_tokens.expire_all(code, location);
    }

    /// While `status` is `Some`, every request for the content of
    /// `recording_id` (a recording's or a transcript's id, of a meeting or an
    /// ad hoc call: then its VTT content and its metadata) answers that status (a status that is not 4xx/5xx is sent
    /// as 500) with a Graph error body: `accessDenied` for 403, `itemNotFound`
    /// for 404, `resourceGone` for 410, `invalidRequest` for other 4xx (the 5xx
    /// codes are those of [`Faults::throttle_with`]). That holds on the graph
    /// content endpoint (after authentication), on every redirect hop and on
    /// the download origin, so a URL handed out before the fault was set fails
    /// too. Counted in [`SimStats::content_refused_by_id`](crate::SimStats::content_refused_by_id). `None` clears it.
    pub fn content_status(&self, recording_id: &str, status: Option<u16>) {
        let mut f = lock(&self.shared.faults);
        match status {
            Some(s) => f.content_status.insert(recording_id.to_owned(), s),
            None => f.content_status.remove(recording_id),
        };
    }

    /// While on, every body of `recording_id` (a recording's or a
    /// transcript's id: then its VTT content and its metadata; any origin,
    /// any range) announces the full `Content-Length`, sends about half of the bytes and
    /// then aborts the connection, like [`Faults::drop_mid_body`] but on every
    /// attempt (it does not use up a pending `drop_mid_body`).
    pub fn content_always_truncated(&self, recording_id: &str, on: bool) {
        let mut f = lock(&self.shared.faults);
        if on {
            f.truncated.insert(recording_id.to_owned());
        } else {
            f.truncated.remove(recording_id);
        }
    }

    /// The next `count` token requests are read in full and then get their
    /// connection reset (TCP RST) without any HTTP response: the client sees a
    /// connection reset or an incomplete message. Counted in
    /// [`SimStats::token_connections_reset`](crate::SimStats::token_connections_reset) and logged with status `0`.
    /// Replaces any pending count; `0` cancels it.
    pub fn token_connection_reset(&self, count: u32) {
        lock(&self.shared.faults).token_connection_reset = count;
    }

    /// While `Some`, every `POST` to the token endpoint (past any pending
    /// throttle) answers the given rejection with its AAD error body, even for
    /// the right tenant, client id and secret or assertion (an assertion's
    /// `jti` is not consumed). `None` accepts good credentials
    /// again.
    pub fn reject_credentials(&self, rejection: Option<CredentialRejection>) {
        lock(&self.shared.faults).reject_credentials = rejection;
    }

    /// While on, every recordings and transcripts delta request of
    /// `organizer` (the first request or any link, whether the user is in the
    /// path or in `meetingOrganizerUserId`; matched case-insensitively), and
    /// every ad hoc call list of that user (in the path or in `userId`),
    /// answers `403` with Graph's error for a missing application access
    /// policy (code `Forbidden`, message `No application access policy found
    /// for this app.`). Checked after authentication and throttles, before
    /// the token is looked up. Other organizers and contacts delta are not
    /// affected, nor is content.
    pub fn organizer_forbidden(&self, organizer: &str, on: bool) {
        let mut f = lock(&self.shared.faults);
        let key = organizer.to_ascii_lowercase();
        if on {
            f.forbidden_organizers.insert(key);
        } else {
            f.forbidden_organizers.remove(&key);
        }
    }

    /// How the content endpoint redirects from now on (default
    /// [`RedirectStyle::Absolute`]); see [`RedirectStyle`].
    pub fn redirect_style(&self, style: RedirectStyle) {
        lock(&self.shared.faults).redirect_style = style;
    }

    /// The next `count` content bodies (recordings, transcripts or transcript
    /// metadata, whichever origin serves the bytes) announce the full
    /// `Content-Length`, send about half of the bytes and
    /// then abort the connection.
    pub fn drop_mid_body(&self, count: u32) {
        lock(&self.shared.faults).drop_mid_body = count;
    }

    /// The next `count` successful delta pages (recordings, transcripts, contacts or
    /// `/users/delta`) announce their full `Content-Length`, send about half of the JSON and
    /// then abort the connection. Asked for again, a page is served whole, as if nothing had
    /// happened.
    pub fn cut_delta_pages(&self, count: u32) {
        lock(&self.shared.faults).cut_pages = count;
    }

    /// While on, contact folders are reachable only by their ids, as a more limited service
    /// would have them: the well-known name `contacts` answers 404 (the default folder is
    /// still every top-level folder's `parentFolderId`) and so does every `childFolders`
    /// listing.
    pub fn folder_ids_only(&self, on: bool) {
        lock(&self.shared.faults).folder_ids_only = on;
    }

    /// Revokes every access token issued so far: using one answers
    /// `401 InvalidAuthenticationToken`.
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.data).access_tokens.revoke_all();
    }

    /// While on, the meetings' recording and transcript APIs (delta, content
    /// and metadata) answer `402 PaymentRequired` (metered APIs without a
    /// billing model). Ad hoc calls' are not affected.
    pub fn payment_required(&self, on: bool) {
        lock(&self.shared.faults).payment_required = on;
    }

    /// While on, every non-empty delta page that is followed by more items
    /// links to an extra empty page, which itself carries a `nextLink`.
    pub fn empty_pages(&self, on: bool) {
        lock(&self.shared.faults).empty_pages = on;
    }

    /// While on, each delta page after the first repeats the last item of the
    /// previous page.
    pub fn duplicate_items(&self, on: bool) {
        lock(&self.shared.faults).duplicate_items = on;
    }

    /// The next recordings or transcripts delta round started from a
    /// deltaLink (whichever comes first) also re-includes the `n` oldest
    /// (matching) items of that organizer,
    /// like the documented known issue "delta queries might return older
    /// artifacts".
    pub fn replay_older(&self, n: usize) {
        lock(&self.shared.faults).replay_older = n;
    }

    /// While on (documented known issue), when `$top` was given, the first page
    /// of a recordings or transcripts round carries a `deltaLink` instead of its `nextLink`:
    /// the rest of that round is skipped (the deltaLink continues after the
    /// round's snapshot).
    pub fn top_drops_next_link(&self, on: bool) {
        lock(&self.shared.faults).top_drops_next_link = on;
    }

    /// Limits every content response (either origin) to `bytes_per_sec`, like a slow
    /// network; `None` serves at full speed again.
    pub fn content_rate(&self, bytes_per_sec: Option<u64>) {
        lock(&self.shared.faults).content_rate = bytes_per_sec;
    }

    /// While on, the directory endpoints (`/users/{id}`, `/users/delta`,
    /// `/groups/{id}/transitiveMembers…`) answer `403
    /// Authorization_RequestDenied`, "Insufficient privileges to complete the
    /// operation.", as a tenant does when the app lacks `User.Read.All` /
    /// `GroupMember.Read.All`. Checked after authentication and throttles.
    pub fn directory_forbidden(&self, on: bool) {
        lock(&self.shared.faults).directory_forbidden = on;
    }

    /// While on, the tenant's transcript access is turned off: every
    /// transcript request, of meetings and ad hoc calls (delta, ad hoc lists,
    /// content, metadata, and their redirect hops and download URLs) answers `403` with the Graph error code `Forbidden`
    /// and the message [`TRANSCRIPTS_DISABLED_MESSAGE`](crate::TRANSCRIPTS_DISABLED_MESSAGE). Checked after
    /// authentication, throttles and [`Faults::organizer_forbidden`].
    /// Recordings are not affected. Counted in
    /// [`SimStats::transcript_forbidden`](crate::SimStats::transcript_forbidden).
    pub fn transcripts_disabled(&self, on: bool) {
        lock(&self.shared.faults).transcripts_disabled = on;
    }

    /// Sets (or, with `None`, clears) a fault on `user`'s mailbox: every
    /// contact folder request and contacts delta request of that user answers
    /// it (after authentication and throttles).
    pub fn mailbox(&self, user: &str, fault: Option<MailboxFault>) {
        let mut f = lock(&self.shared.faults);
        let key = user.to_ascii_lowercase();
        match fault {
            Some(fault) => f.mailbox_faults.insert(key, fault),
            None => f.mailbox_faults.remove(&key),
        };
    }

    /// Sets (or, with `None`, clears) the status that
    /// `GET /users/{o}/onlineMeetings/{meetingId}` answers, every time, for the
    /// meeting `key` (its id, verbatim) or for every meeting of the organizer
    /// `key` (a user id, any case): a `403` says Graph's `accessDenied` as a
    /// tenant does when the app lacks `OnlineMeetings.Read.All` or no
    /// application access policy covers the organizer; any other 4xx/5xx is
    /// answered with its usual Graph error (a non-error status means `500`).
    /// Checked after authentication, throttles and
    /// [`Faults::organizer_forbidden`]. Counted in
    /// [`SimStats::online_meeting_requests_by_id`](crate::SimStats::online_meeting_requests_by_id) like any request.
    pub fn online_meeting_status(&self, key: &str, status: Option<u16>) {
        let mut f = lock(&self.shared.faults);
        match status {
            Some(status) => f.online_meeting_status.insert(key.to_owned(), status),
            None => f.online_meeting_status.remove(key),
        };
    }

    /// Sets (or, with `None`, clears) the status that `GET /users/{user}`
    /// answers, every time, for `user` (the id or the UPN it is asked by, any
    /// case): a `403` says `Authorization_RequestDenied` as a tenant does when
    /// the app lacks `User.Read.All`; any other 4xx/5xx its usual Graph error.
    /// Checked after authentication, throttles and
    /// [`Faults::directory_forbidden`]; other directory endpoints are not
    /// affected.
    pub fn user_status(&self, user: &str, status: Option<u16>) {
        let mut f = lock(&self.shared.faults);
        let key = user.to_lowercase();
        match status {
            Some(status) => f.user_status.insert(key, status),
            None => f.user_status.remove(&key),
        };
    }

    /// Clears every pending fault and switch. Tokens already expired or
    /// revoked stay invalid.
    pub fn clear(&self) {
        *lock(&self.shared.faults) = FaultState::default();
    }
}
