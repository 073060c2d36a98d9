//! The fault switches: what the public [`Faults`](crate::Faults) handle
//! sets ([`FaultState`]) and the public types that describe them.

use std::collections::{HashMap, HashSet};

/// Which endpoint a throttle fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The token endpoint.
    Token,
    /// Delta requests (recordings, transcripts and contacts; `/users/delta`
    /// is [`Target::Directory`], ad hoc call lists [`Target::AdhocCalls`]).
    Delta,
    /// The content endpoints on the graph origin (recording content,
    /// transcript content and transcript metadata, of meetings and ad hoc
    /// calls alike).
    Content,
    /// The download origin.
    Download,
    /// The directory endpoints (`/users/{id}`, `/users/delta`,
    /// `/groups/{id}/transitiveMembers…`).
    Directory,
    /// The contact folder endpoints (`/users/{id}/contactFolders`,
    /// `…/contactFolders/{id}` and `…/contactFolders/{id}/childFolders`).
    ContactFolders,
    /// The ad hoc call lists (`/users/{id}/adhocCalls/getAllRecordings(…)`
    /// and `…/getAllTranscripts(…)`, first pages and nextLinks alike); their
    /// content is [`Target::Content`].
    AdhocCalls,
    /// One online meeting (`/users/{id}/onlineMeetings/{meetingId}`), as the
    /// archiver reads its subject and times.
    OnlineMeetings,
}

impl Target {
    pub(crate) fn index(self) -> usize {
        match self {
            Target::Token => 0,
            Target::Delta => 1,
            Target::Content => 2,
            Target::Download => 3,
            Target::Directory => 4,
            Target::ContactFolders => 5,
            Target::AdhocCalls => 6,
            Target::OnlineMeetings => 7,
        }
    }
}

/// How a throttle sends `Retry-After` (see [`Faults::throttle_with`](crate::Faults::throttle_with)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryAfter {
    /// No `Retry-After` header.
    #[default]
    None,
    /// `Retry-After: N` (delta-seconds).
    Seconds(u64),
    /// `Retry-After` as an HTTP-date (IMF-fixdate, e.g.
    /// `Wed, 21 Oct 2026 07:28:00 GMT`) at least `N` seconds after the answer
    /// is made: the instant is rounded up to the next whole second, so a client
    /// that waits until that date never waits less than `N` seconds.
    Date(u64),
}

/// What an expired sync token's `410 Gone` says in `Location` (see
/// [`Faults::expire_sync_state_with`](crate::Faults::expire_sync_state_with)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncLocation {
    /// No `Location` header.
    #[default]
    None,
    /// A fresh initial request that keeps every option the round was started
    /// with: `startDateTime` / `endDateTime` inside the function's parentheses
    /// (the same instants, written back in UTC), `$select` and `$top` for
    /// recordings; `$select` for contacts. Following it restarts the same sync.
    Fresh,
    /// A fresh initial request without any of those options (e.g.
    /// `getAllRecordings(meetingOrganizerUserId='…')/delta` without its
    /// `startDateTime`): a client that follows it widens its range. Equal to
    /// `Fresh` for a round that was started without options.
    DropsOptions,
    /// `Fresh` as a relative reference (`/v1.0/users/…`, without scheme and host), which a
    /// client resolves against the URL that answered 410.
    Relative,
}

impl SyncLocation {
    /// Whether the `Location` keeps the round's options (`Fresh` and `Relative`).
    pub(crate) fn keeps_options(self) -> bool {
        matches!(self, SyncLocation::Fresh | SyncLocation::Relative)
    }
}

/// How the graph content endpoint redirects (see
/// [`Faults::redirect_style`](crate::Faults::redirect_style)).
///
/// It only applies to recordings whose content the
/// [`ContentMode`](crate::ContentMode) redirects. Every hop is signed for its
/// recording, so a chain keeps working if the style changes while a client is
/// on it. Hops on the graph origin need no bearer token (they are
/// pre-authenticated by their signature), but do not mind one either, except
/// where
/// [`SimStats::auth_header_after_leaving_graph`](crate::SimStats::auth_header_after_leaving_graph)
/// says otherwise.
///
/// A downgrade (`https` → `http`) cannot be simulated: both origins are plain
/// `http` on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectStyle {
    /// `302` with an absolute `Location` on the download origin, which serves
    /// the bytes (one hop).
    #[default]
    Absolute,
    /// Two hops with relative `Location`s, both on the graph origin: the
    /// content endpoint answers `302 Location: stream?sig=…` (a path-relative
    /// reference: resolved against the content URL it names
    /// `…/recordings/{id}/stream?sig=…`), which answers
    /// `302 Location: /hops/…/bytes` (an absolute-path reference), which serves
    /// the bytes. A client that resolves either reference against anything but
    /// the URL of the hop that sent it (the origin, the API base, the download
    /// origin, or by appending) gets `404`.
    Relative,
    /// `n` hops (clamped to `1..=32`): `n - 1` absolute redirects on the graph
    /// origin (`/hops/…/chain/{remaining}`), then one to the download origin,
    /// which serves the bytes. `Chain(1)` is `Absolute`.
    Chain(u32),
    /// Graph origin → download origin (`/bounce/…`) → back to the graph origin
    /// (`/hops/…/bounced`), which serves the bytes without needing a token and
    /// counts an `Authorization` header in
    /// [`SimStats::auth_header_after_leaving_graph`](crate::SimStats::auth_header_after_leaving_graph)
    /// (the chain had left the graph origin, so a correct client no longer
    /// sends its token).
    Bounce,
}

/// A token-endpoint answer that refuses the credentials themselves (see
/// [`Faults::reject_credentials`](crate::Faults::reject_credentials)), with the status, `error` and AADSTS code
/// the Microsoft identity platform sends for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialRejection {
    /// `401 invalid_client`, AADSTS7000215: invalid client secret.
    InvalidSecret,
    /// `401 invalid_client`, AADSTS7000222: the client secret has expired.
    ExpiredSecret,
    /// `400 unauthorized_client`, AADSTS700016: application not found in the
    /// directory.
    UnknownClient,
    /// `400 unauthorized_client`, AADSTS7000112: the application is disabled.
    DisabledClient,
    /// `400 invalid_request`, AADSTS90002: tenant not found.
    UnknownTenant,
}

/// The message of the `403 Forbidden` that every transcript request gets
/// while [`Faults::transcripts_disabled`](crate::Faults::transcripts_disabled) is on: what a tenant whose Teams
/// meeting policy turns transcription off answers.
pub const TRANSCRIPTS_DISABLED_MESSAGE: &str = "Application access to transcripts is disabled by tenant admin: transcription is turned off by the Teams meeting policy (AllowTranscription).";

/// What a user's mailbox answers (see [`Faults::mailbox`](crate::Faults::mailbox)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxFault {
    /// `404` `MailboxNotEnabledForRESTAPI`: a user with no Exchange Online
    /// mailbox (unlicensed, on-premises, soft-deleted).
    NotEnabled,
    /// `403` `ErrorAccessDenied`: an Exchange application access policy (or
    /// RBAC for Applications) keeps the app out of this mailbox.
    AccessDenied,
}

/// A pending throttle fault.
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    pub(crate) status: u16,
    pub(crate) retry_after: RetryAfter,
    pub(crate) remaining: u32,
}

/// Uses up one of `pending` faults: `false` when none is left.
pub(crate) fn take_one(pending: &mut u32) -> bool {
    let left = pending.checked_sub(1);
    if let Some(left) = left {
        *pending = left;
    }
    left.is_some()
}

/// Pending and switched-on faults.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub(crate) throttle: [Option<Throttle>; 8],
    pub(crate) drop_mid_body: u32,
    pub(crate) cut_pages: u32,
    pub(crate) folder_ids_only: bool,
    pub(crate) payment_required: bool,
    pub(crate) empty_pages: bool,
    pub(crate) duplicate_items: bool,
    pub(crate) replay_older: usize,
    pub(crate) top_drops_next_link: bool,
    /// Content bytes per second per response, when limited.
    pub(crate) content_rate: Option<u64>,
    /// Recording id → status answered for its content.
    pub(crate) content_status: HashMap<String, u16>,
    /// Recording ids whose every body is cut short.
    pub(crate) truncated: HashSet<String>,
    /// Token requests still to be reset without a response.
    pub(crate) token_connection_reset: u32,
    pub(crate) reject_credentials: Option<CredentialRejection>,
    /// Lowercase organizer ids whose recordings delta answers 403.
    pub(crate) forbidden_organizers: HashSet<String>,
    pub(crate) redirect_style: RedirectStyle,
    /// The directory endpoints answer 403.
    pub(crate) directory_forbidden: bool,
    /// Every transcript request answers 403.
    pub(crate) transcripts_disabled: bool,
    /// Lowercase user ids whose mailbox requests (contact folders, contacts delta) fail.
    pub(crate) mailbox_faults: HashMap<String, MailboxFault>,
    /// Meeting id or organizer id (verbatim) → status answered by
    /// `GET /users/{o}/onlineMeetings/{meetingId}`.
    pub(crate) online_meeting_status: HashMap<String, u16>,
    /// Lowercase user id or UPN → status answered by `GET /users/{id}`.
    pub(crate) user_status: HashMap<String, u16>,
}

/// The boolean fault switches at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultFlags {
    pub(crate) payment_required: bool,
    pub(crate) empty_pages: bool,
    pub(crate) duplicate_items: bool,
    pub(crate) top_drops_next_link: bool,
}
