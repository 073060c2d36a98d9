//! A Microsoft Graph simulator on loopback HTTP, with fault injection.
//!
//! [`GraphSim::start`] binds two real HTTP servers on `127.0.0.1:0`:
//!
//! * the **graph origin**, serving
//!   * the Microsoft identity platform token endpoint
//!     (`POST /{tenant}/oauth2/v2.0/token`, client-credentials grant, AAD-shaped errors)
//!     with a client secret, a JWT client assertion signed with the key of a
//!     registered certificate ([`GraphSim::register_certificate`], checked like
//!     Entra checks it: see [`AssertionRejection`]) or a federated
//!     (workload identity) token ([`GraphSim::register_federated_token`]),
//!   * `GET /{beta|v1.0}/users/{org}/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{org}',startDateTime=..)/delta`
//!     (callRecording delta rounds with opaque, percent-escaped skip / delta tokens),
//!   * `GET /{beta|v1.0}/users/{org}/onlineMeetings/{meetingId}/recordings/{id}/content`
//!     (streamed `video/mp4`, or a `302` to the download origin, possibly over
//!     more hops: see [`RedirectStyle`]),
//!   * `GET /{beta|v1.0}/users/{org}/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='{org}',startDateTime=..)/delta`
//!     (callTranscript delta rounds, by the same machinery as recordings;
//!     see [`GraphSim::add_transcript`]),
//!   * `GET /{beta|v1.0}/users/{org}/onlineMeetings/{meetingId}/transcripts/{id}/content?$format=text/vtt`
//!     (a deterministic WebVTT script, `text/vtt`, served like recording
//!     content; `406 NotAcceptable` without `$format`, `400` for another
//!     format) and `…/transcripts/{id}/metadataContent` (`application/json`:
//!     one entry per cue, always direct),
//!   * `GET /{beta|v1.0}/users/{user}/contactFolders` (top-level folders),
//!     `…/contactFolders/{folder}` and `…/contactFolders/{folder}/childFolders`
//!     (paged by `$top` / `$skip`; `contacts` names the default folder; see
//!     [`GraphSim::add_contact_folder`]),
//!   * `GET /{beta|v1.0}/users/{user}/contactFolders/{folder}/contacts/delta`
//!     (`$select`, `Prefer: odata.maxpagesize`, `@removed` entries),
//!   * the directory, for organizer discovery ([`GraphSim::add_user`],
//!     [`GraphSim::add_group`], [`GraphSim::add_member`], ...):
//!     `GET /{beta|v1.0}/users/{id | userPrincipalName}?$select=id`,
//!     `GET /{beta|v1.0}/groups/{id}/transitiveMembers/microsoft.graph.user?$select=id`
//!     (every user reachable through nested groups, once; paged) and
//!     `GET /{beta|v1.0}/users/delta?$select=id,accountEnabled,userType`
//!     (a delta round over every user, then only the changes);
//! * the **download origin**, serving pre-authenticated content URLs (and
//!   rejecting any request that carries an `Authorization` header).
//!
//! Everything (ids, timestamps, tokens, content bytes) is deterministic from
//! [`SimConfig::seed`]. Content is generated on the fly in 256 KiB chunks by a
//! counter-based SplitMix64 generator, so multi-GB recordings stream at memory
//! speed without ever being held in memory. Faults are switched at run time
//! through [`Faults`]; every request is recorded in [`SimStats`].
//!
//! # Faults
//!
//! Each is deterministic: it applies to the requests it names, in order, and to
//! nothing else. [`Faults::clear`] switches all of them off.
//!
//! * Any endpoint: [`Faults::throttle`] / [`Faults::throttle_with`]: the next N
//!   requests answer 429, 500, 502, 503, 504 (any 4xx/5xx) with `Retry-After`
//!   in seconds, as an HTTP-date ([`RetryAfter`]) or none; Graph error bodies,
//!   AAD error bodies on the token endpoint.
//! * Token endpoint: [`Faults::token_connection_reset`] (connection reset
//!   without a response), [`Faults::reject_credentials`] (`invalid_client`,
//!   `unauthorized_client`, ... even for the right secret, see
//!   [`CredentialRejection`]); [`Faults::expire_access_tokens`] revokes issued
//!   tokens (401 on use).
//! * Delta (recordings, transcripts, contacts):
//!   [`Faults::expire_sync_state`] / [`Faults::expire_sync_state_with`]
//!   (410 Gone, with a `Location` that keeps or drops the round's options, see
//!   [`SyncLocation`]), [`Faults::empty_pages`], [`Faults::duplicate_items`];
//!   recordings and transcripts also [`Faults::organizer_forbidden`] (403 for
//!   one organizer), [`Faults::replay_older`], [`Faults::top_drops_next_link`].
//! * Content (recordings, transcripts and transcript metadata):
//!   [`Faults::content_status`] (403 / 404 / 410 ... for one recording or
//!   transcript, every time), [`Faults::content_always_truncated`] and
//!   [`Faults::drop_mid_body`] (body cut halfway), [`Faults::cut_delta_pages`] (a delta page
//!   cut halfway), [`Faults::redirect_style`]
//!   (relative, chained and bouncing redirects), [`Faults::content_rate`].
//! * Recording and transcript APIs: [`Faults::payment_required`] (402).
//! * Transcripts: [`Faults::transcripts_disabled`] (403 on every transcript
//!   request, the tenant's transcript access turned off; recordings go on).
//! * Contact folders: throttles on [`Target::ContactFolders`]; per user,
//!   [`Faults::mailbox`] (no mailbox, or the app kept out of it) on folders
//!   and contacts delta.
//! * Directory: [`Faults::directory_forbidden`] (403
//!   `Authorization_RequestDenied`, a missing `User.Read.All` /
//!   `GroupMember.Read.All`), throttles on [`Target::Directory`],
//!   [`Faults::expire_sync_state`] for `/users/delta` tokens.
//! * Sign-in: a refused client assertion answers like Entra (see
//!   [`AssertionRejection`] for the checks and their AADSTS codes).
//!
//! A downgrade from `https` to `http` cannot be simulated: both origins are
//! plain `http` on loopback.
//!
//! Key material for tests (RSA keys, self-signed certificates, PKCS#12 files,
//! signed assertions) comes from [`test_keys`], without `openssl`.
//!
//! The servers shut down when the last [`GraphSim`] clone is dropped or
//! [`GraphSim::shutdown`] is called.
//!
//! # Example
//!
//! ```no_run
//! use recarch_graph_sim::{GraphSim, SimConfig};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let sim = GraphSim::start(SimConfig::default()).await?;
//! let org = sim.add_organizer();
//! let rec = sim.add_recording(&org, 1024 * 1024);
//! assert!(rec.content_url.starts_with(&sim.base_url()));
//!
//! // Point the client under test at the simulator:
//! let token_url = sim.token_url(); // POST client_credentials here
//! let scope = sim.scope();         // "{graph_origin}/.default"
//! let delta = sim.recordings_delta_url(&org);
//! # let _ = (token_url, scope, delta);
//!
//! // Inject a fault: the next two delta requests answer 429 with Retry-After: 1.
//! sim.faults().throttle(recarch_graph_sim::Target::Delta, 429, Some(1), 2);
//!
//! // A transcript of the same meeting: GET its content with `$format=text/vtt`.
//! let tr = sim.add_transcript(&org, Some(&rec), 4096);
//! assert_eq!(tr.content_correlation_id, rec.content_correlation_id);
//! let vtt_url = format!("{}?$format=text/vtt", tr.transcript_content_url);
//! let first = sim.transcripts_delta_url(&org);
//! # let _ = (vtt_url, first);
//!
//! let sha = sim.content_sha256(&rec.id).expect("known recording");
//! assert_eq!(sha.len(), 64);
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

// Handlers return `Result<_, Response>` where the error *is* the HTTP answer;
// boxing it would only add allocations on the error path.
#![allow(clippy::result_large_err)]

mod api;
mod assertion;
mod body;
mod config;
mod conn;
mod data;
mod faults;
mod http;
mod rng;
mod router;
mod state;
mod stats;
pub mod test_keys;
mod vtt;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::assertion::RegisteredCert;
pub use crate::assertion::{AssertionRejection, CertificateError};
pub use crate::config::{ContentMode, SimConfig};
use crate::conn::{ConnKill, KillableListener};
use crate::data::common::Removal;
pub use crate::data::contacts::ContactFolderInfo;
use crate::data::contacts::{Contact, ContactFolder};
pub use crate::data::directory::UserType;
pub use crate::data::meetings::{RecordingInfo, TranscriptInfo};
pub use crate::faults::{
    CredentialRejection, MailboxFault, RedirectStyle, RetryAfter, SyncLocation, TRANSCRIPTS_DISABLED_MESSAGE, Target,
};
use crate::faults::{FaultState, Throttle};
use crate::http::ApiVersion;
use crate::http::encode_segment;
use crate::rng::{content_piece, fill_content};
use crate::state::{Shared, lock};
use crate::stats::StatsData;
pub use crate::stats::{Origin, RequestRecord, SimStats};

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
    /// member pages): using one answers `410 Gone` with error `code` and the
    /// `Location` that `location` says, built from the options the token's
    /// round was started with. Tokens issued later are valid.
    pub fn expire_sync_state_with(&self, code: &str, location: SyncLocation) {
        // Group member pages are not a delta query: their tokens stay valid.
        lock(&self.shared.data).sync_tokens.expire_all(code, location);
    }

    /// While `status` is `Some`, every request for the content of
    /// `recording_id` (a recording's or a transcript's id: then its VTT
    /// content and its metadata) answers that status (a status that is not 4xx/5xx is sent
    /// as 500) with a Graph error body: `accessDenied` for 403, `itemNotFound`
    /// for 404, `resourceGone` for 410, `invalidRequest` for other 4xx (the 5xx
    /// codes are those of [`Faults::throttle_with`]). That holds on the graph
    /// content endpoint (after authentication), on every redirect hop and on
    /// the download origin, so a URL handed out before the fault was set fails
    /// too. Counted in [`SimStats::content_refused_by_id`]. `None` clears it.
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
    /// [`SimStats::token_connections_reset`] and logged with status `0`.
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
    /// path or in `meetingOrganizerUserId`; matched case-insensitively)
    /// answers `403` with Graph's error for a missing application access
    /// policy (code `Forbidden`, message `No application access policy found
    /// for this app.`). Checked after authentication and throttles, before
    /// the token is looked up. Other organizers and contacts delta are not
    /// affected.
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

    /// While on, the recording and transcript APIs (delta, content and
    /// metadata) answer `402 PaymentRequired` (metered APIs without a billing
    /// model).
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
    /// transcript request (delta, content, metadata, and their redirect hops
    /// and download URLs) answers `403` with the Graph error code `Forbidden`
    /// and the message [`TRANSCRIPTS_DISABLED_MESSAGE`]. Checked after
    /// authentication, throttles and [`Faults::organizer_forbidden`].
    /// Recordings are not affected. Counted in
    /// [`SimStats::transcript_forbidden`].
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

    /// Clears every pending fault and switch. Tokens already expired or
    /// revoked stay invalid.
    pub fn clear(&self) {
        *lock(&self.shared.faults) = FaultState::default();
    }
}

/// A running Graph simulator. Clones share the same servers and state.
#[derive(Clone)]
pub struct GraphSim {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.meter.shut_down();
        self.shutdown.send_replace(true);
    }
}

impl fmt::Debug for GraphSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphSim")
            .field("graph_origin", &self.inner.shared.graph_origin)
            .field("download_origin", &self.inner.shared.download_origin)
            .finish_non_exhaustive()
    }
}

/// How long [`GraphSim::shutdown`] waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl GraphSim {
    /// Binds the graph and download origins on `127.0.0.1:0` and spawns their
    /// servers on the current Tokio runtime.
    pub async fn start(config: SimConfig) -> std::io::Result<GraphSim> {
        let graph = TcpListener::bind(("127.0.0.1", 0)).await?;
        let download = TcpListener::bind(("127.0.0.1", 0)).await?;
        let graph_origin = format!("http://{}", graph.local_addr()?);
        let download_origin = format!("http://{}", download.local_addr()?);
        let shared = Arc::new(Shared::new(config, graph_origin, download_origin));
        let (tx, rx) = watch::channel(false);
        let graph_app = Router::new()
            .fallback(router::graph_entry)
            .with_state(Arc::clone(&shared));
        let download_app = Router::new()
            .fallback(router::download_entry)
            .with_state(Arc::clone(&shared));
        let tasks = vec![
            tokio::spawn(serve(KillableListener(graph), graph_app, rx.clone(), "graph")),
            tokio::spawn(serve(KillableListener(download), download_app, rx, "download")),
        ];
        tracing::debug!(
            graph = %shared.graph_origin,
            download = %shared.download_origin,
            "graph simulator started"
        );
        Ok(GraphSim {
            inner: Arc::new(Inner {
                shared,
                shutdown: tx,
                tasks: Mutex::new(tasks),
            }),
        })
    }

    /// Stops both servers: no new connections, streaming bodies abort, and
    /// waits (up to 5 s) for the servers to finish. Idempotent. The simulated
    /// data and stats stay readable.
    pub async fn shutdown(&self) {
        self.inner.shared.meter.shut_down();
        self.inner.shutdown.send_replace(true);
        let tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimConfig {
        &self.shared().config
    }

    /// The Graph API base, `http://127.0.0.1:PORT/beta` (`/v1.0` is served too).
    pub fn base_url(&self) -> String {
        format!("{}/beta", self.shared().graph_origin)
    }

    /// The identity-platform authority, `http://127.0.0.1:PORT` (the graph origin).
    pub fn authority_url(&self) -> String {
        self.shared().graph_origin.clone()
    }

    /// The graph origin, `http://127.0.0.1:PORT`.
    pub fn graph_origin(&self) -> String {
        self.shared().graph_origin.clone()
    }

    /// The download origin, `http://127.0.0.1:OTHERPORT`.
    pub fn download_origin(&self) -> String {
        self.shared().download_origin.clone()
    }

    /// The token endpoint, `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.shared().graph_origin,
            self.shared().config.tenant_id
        )
    }

    /// The scope the token endpoint accepts, `{graph_origin}/.default`.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.shared().graph_origin)
    }

    /// The initial recordings delta URL for `organizer` (no `startDateTime`).
    pub fn recordings_delta_url(&self, organizer: &str) -> String {
        let org = encode_segment(&organizer.to_ascii_lowercase());
        format!(
            "{}/users/{org}/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{org}')/delta",
            self.base_url()
        )
    }

    /// The initial transcripts delta URL for `organizer` (no `startDateTime`):
    /// `{base}/users/{o}/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='{o}')/delta`.
    pub fn transcripts_delta_url(&self, organizer: &str) -> String {
        let org = encode_segment(&organizer.to_ascii_lowercase());
        format!(
            "{}/users/{org}/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='{org}')/delta",
            self.base_url()
        )
    }

    /// `{base}/users/{user}/contactFolders`: the first page of `user`'s
    /// top-level contact folders.
    pub fn contact_folders_url(&self, user: &str) -> String {
        format!("{}/users/{}/contactFolders", self.base_url(), encode_segment(user))
    }

    /// `{base}/users/{user}/contactFolders/{folder}/childFolders`: the first
    /// page of `folder`'s direct child folders.
    pub fn child_folders_url(&self, user: &str, folder: &str) -> String {
        format!(
            "{}/users/{}/contactFolders/{}/childFolders",
            self.base_url(),
            encode_segment(user),
            encode_segment(folder)
        )
    }

    /// The initial contacts delta URL for `user`'s `folder`.
    pub fn contacts_delta_url(&self, user: &str, folder: &str) -> String {
        format!(
            "{}/users/{}/contactFolders/{}/contacts/delta",
            self.base_url(),
            encode_segment(user),
            encode_segment(folder)
        )
    }

    /// Issues a valid access token directly (no HTTP round trip, not counted
    /// in `token_requests`).
    pub fn issue_access_token(&self) -> String {
        self.shared().issue_access_token()
    }

    /// Registers the X.509 certificate `cert` (DER, or PEM: its first
    /// `CERTIFICATE` block) as a credential of the client, like uploading it
    /// to the app registration, and returns its `x5t#S256` thumbprint
    /// (base64url SHA-256 of the DER). From now on a `client_assertion`
    /// signed with its RSA key and naming it by `x5t#S256` (or the legacy
    /// `x5t`, base64url SHA-1) is accepted; see [`AssertionRejection`] for
    /// every check. Several certificates can be registered at once (rotation),
    /// and a client secret keeps working alongside. Registering one again
    /// changes nothing. An expired certificate can be registered; assertions
    /// it signs are refused ([`AssertionRejection::KeyExpired`]).
    pub fn register_certificate(&self, cert: &[u8]) -> Result<String, CertificateError> {
        let cert = RegisteredCert::parse(cert)?;
        Ok(lock(&self.shared().identity).add_cert(cert))
    }

    /// Removes a certificate registered with [`GraphSim::register_certificate`]
    /// (DER or PEM): assertions it signs are refused as
    /// [`AssertionRejection::UnknownKey`] from now on. Returns whether it was
    /// registered.
    pub fn remove_certificate(&self, cert: &[u8]) -> Result<bool, CertificateError> {
        let cert = RegisteredCert::parse(cert)?;
        Ok(lock(&self.shared().identity).remove_cert(&cert))
    }

    /// Accepts `token` (verbatim) as a federated `client_assertion` for the
    /// client: workload identity, where the assertion is the content of the
    /// projected service-account token file. Real Entra verifies the token's
    /// signature with its issuer's keys and matches its issuer and subject
    /// against the app's federated credentials; here an exact match with a
    /// registered token is enough. A registered token may be used any number
    /// of times until it expires: when it is a JWT with an `exp` claim (read
    /// without verification), not after that
    /// ([`AssertionRejection::Expired`]). Re-registering a revoked token
    /// accepts it again.
    pub fn register_federated_token(&self, token: &str) {
        lock(&self.shared().identity).add_federated(token);
    }

    /// Revokes a federated token registered with
    /// [`GraphSim::register_federated_token`], as when the kubelet rotates the
    /// token file: presenting it again is refused as expired
    /// ([`AssertionRejection::RevokedFederatedToken`], AADSTS700024). Returns
    /// whether it was registered.
    pub fn revoke_federated_token(&self, token: &str) -> bool {
        lock(&self.shared().identity).revoke_federated(token)
    }

    /// Registers a new organizer with a deterministic lowercase GUID and returns it.
    ///
    /// The organizer is also a directory user: enabled, `Member`, with the UPN
    /// `user{n}@contoso.example` (`n` counts users; see [`GraphSim::user_upn`]).
    pub fn add_organizer(&self) -> String {
        lock(&self.shared().data).add_organizer(self.shared().config.seed)
    }

    /// Adds a directory user with the user principal name `upn` and returns
    /// its id (a deterministic lowercase GUID). The user is an organizer too
    /// (with no recordings yet): every user can organize meetings. If a user
    /// with that UPN exists (UPNs compare case-insensitively), its id is
    /// returned and nothing changes.
    pub fn add_user(&self, upn: &str, enabled: bool, user_type: UserType) -> String {
        lock(&self.shared().data).add_user(self.shared().config.seed, upn, enabled, user_type)
    }

    /// The user principal name of the user with id `id` (or `None` if there is
    /// no such user, or it was removed).
    pub fn user_upn(&self, id: &str) -> Option<String> {
        lock(&self.shared().data).directory.user_upn(id)
    }

    /// Enables or disables a user (`accountEnabled`); the next `/users/delta`
    /// round reports the change. No-op for unknown or removed users, or when
    /// nothing changes.
    pub fn set_user_enabled(&self, id: &str, enabled: bool) {
        lock(&self.shared().data).directory.set_user_enabled(id, enabled);
    }

    /// Removes a user from the directory: `GET /users/{id}` answers 404, it
    /// leaves every group's transitive members, and the next `/users/delta`
    /// round reports `{"id": …, "@removed": {"reason": "changed"}}` when soft
    /// (Graph's shape for a deleted user, which stays restorable for 30 days)
    /// or `"deleted"` when `hard` (permanently deleted). Its recordings and
    /// its organizer entry stay. No-op for unknown users; a soft-removed user
    /// can still be hard-removed.
    pub fn remove_user(&self, id: &str, hard: bool) {
        lock(&self.shared().data).directory.remove_user(id, hard);
    }

    /// Adds a group named `name` and returns its id (a deterministic lowercase GUID).
    pub fn add_group(&self, name: &str) -> String {
        lock(&self.shared().data)
            .directory
            .add_group(self.shared().config.seed, name)
    }

    /// Adds a device (`#microsoft.graph.device`, a directory object that is
    /// not a user) and returns its id; groups can hold devices.
    pub fn add_device(&self, name: &str) -> String {
        lock(&self.shared().data)
            .directory
            .add_device(self.shared().config.seed, name)
    }

    /// Adds `member` (the id of a user, a group, nesting it, or a device) to
    /// `group`. Returns `false`, changing nothing, if either is unknown, the
    /// member is already a direct member, or it is the group itself. Cycles
    /// through nested groups are allowed (Graph forbids them; a client must not
    /// loop on them anyway).
    pub fn add_member(&self, group: &str, member: &str) -> bool {
        lock(&self.shared().data).directory.add_member(group, member)
    }

    /// Removes `member` from `group`'s direct members; whether it was one.
    pub fn remove_member(&self, group: &str, member: &str) -> bool {
        lock(&self.shared().data).directory.remove_member(group, member)
    }

    /// `{base}/users/delta?$select=id,accountEnabled,userType`: the first
    /// request of a directory delta round.
    pub fn users_delta_url(&self) -> String {
        format!("{}/users/delta?$select=id,accountEnabled,userType", self.base_url())
    }

    /// `{base}/groups/{group}/transitiveMembers/microsoft.graph.user?$select=id`:
    /// the first page of a group's users, nested groups included.
    pub fn group_users_url(&self, group: &str) -> String {
        format!(
            "{}/groups/{}/transitiveMembers/microsoft.graph.user?$select=id",
            self.base_url(),
            encode_segment(group)
        )
    }

    /// The known organizers (lowercase), sorted: every directory user
    /// (removed ones included) and every id recordings were added for.
    pub fn organizers(&self) -> Vec<String> {
        lock(&self.shared().data).meetings.organizers.keys().cloned().collect()
    }

    /// Appends a recording of `size` bytes to `organizer` (registered if unknown;
    /// ids are matched case-insensitively and stored lowercase).
    pub fn add_recording(&self, organizer: &str, size: u64) -> RecordingInfo {
        self.add_recording_to(organizer, size, None)
    }

    /// Like [`GraphSim::add_recording`] but advertises `url` as its
    /// `recordingContentUrl` (e.g. an off-origin URL a client must refuse).
    /// The regular content path keeps working.
    pub fn add_recording_with_content_url(&self, organizer: &str, size: u64, url: &str) -> RecordingInfo {
        self.add_recording_to(organizer, size, Some(url))
    }

    /// The recordings of `organizer`, oldest first.
    pub fn recordings(&self, organizer: &str) -> Vec<RecordingInfo> {
        lock(&self.shared().data).meetings.recordings_of(organizer)
    }

    fn add_recording_to(&self, organizer: &str, size: u64, url: Option<&str>) -> RecordingInfo {
        let shared = self.shared();
        let base = shared.base(ApiVersion::Beta);
        lock(&shared.data).add_recording(shared.config.seed, &base, organizer, size, url)
    }

    fn content_key(&self, recording_id: &str) -> Option<(u64, u64)> {
        let data = lock(&self.shared().data);
        let r = data.meetings.recording(recording_id)?;
        Some((r.content_key, r.size))
    }

    /// Lowercase hex SHA-256 of a recording's content, computed by hashing the whole
    /// stream (CPU-bound: about half a second per GiB in release builds).
    pub fn content_sha256(&self, recording_id: &str) -> Option<String> {
        let (key, size) = self.content_key(recording_id)?;
        let mut hasher = Sha256::new();
        let mut pos = 0u64;
        while pos < size {
            let piece = content_piece(key, pos, size);
            hasher.update(&piece);
            pos += piece.len() as u64;
        }
        Some(rng::hex(&hasher.finalize()))
    }

    /// The whole content of a recording (for tests with small sizes).
    pub fn content_bytes(&self, recording_id: &str) -> Option<Vec<u8>> {
        let (key, size) = self.content_key(recording_id)?;
        let mut v = vec![0u8; usize::try_from(size).ok()?];
        fill_content(key, 0, &mut v);
        Some(v)
    }

    /// Adds a transcript of about `size` bytes of WebVTT (see
    /// [`TranscriptInfo::size`]) to `organizer` (registered if unknown, like
    /// [`GraphSim::add_recording`]) and returns its info. With `recording`,
    /// it is a transcript of that recording's meeting: the same `meetingId`,
    /// `callId` and `contentCorrelationId`, created a minute or two after the
    /// recording (a recording the simulator does not know is ignored);
    /// without, of a fresh meeting.
    pub fn add_transcript(&self, organizer: &str, recording: Option<&RecordingInfo>, size: u64) -> TranscriptInfo {
        let shared = self.shared();
        let base = shared.base(ApiVersion::Beta);
        let recording = recording.map(|r| r.id.as_str());
        lock(&shared.data).add_transcript(shared.config.seed, &base, organizer, recording, size)
    }

    /// The transcripts of `organizer`, oldest first.
    pub fn transcripts(&self, organizer: &str) -> Vec<TranscriptInfo> {
        lock(&self.shared().data).meetings.transcripts_of(organizer)
    }

    /// The WebVTT body of transcript `id`, as its content URL serves it.
    pub fn transcript_content(&self, id: &str) -> Option<Vec<u8>> {
        Some(lock(&self.shared().data).meetings.transcript(id)?.vtt())
    }

    /// The metadata body of transcript `id`, as its metadata URL serves it
    /// (`application/json`): an array with one entry per cue of the VTT body
    /// (`id`, `startOffset`, `endOffset`, `speakerName`, `speakerId`,
    /// `spokenLanguage`, `spokenText`). The shape is the simulator's own, not
    /// Graph's: clients should keep it as opaque bytes.
    pub fn transcript_metadata(&self, id: &str) -> Option<Vec<u8>> {
        Some(lock(&self.shared().data).meetings.transcript(id)?.metadata())
    }

    /// A handle to switch faults at run time.
    pub fn faults(&self) -> Faults {
        Faults {
            shared: Arc::clone(&self.inner.shared),
        }
    }

    /// A snapshot of the counters and the request log.
    pub fn stats(&self) -> SimStats {
        let bytes = self.shared().meter.bytes_sent();
        lock(&self.shared().stats).snapshot(bytes)
    }

    /// Zeroes every counter and clears the request log.
    pub fn reset_stats(&self) {
        let mut s = lock(&self.shared().stats);
        *s = StatsData::default();
        self.shared().meter.reset();
    }

    /// Adds a contact named `display_name` to `user`'s `folder` and returns
    /// its id. `folder` is a folder id, or `contacts` (the well-known name of
    /// the default folder). The user gets a mailbox with its default
    /// `Contacts` folder on its first contact or folder; an unknown `folder`
    /// is created as a top-level folder (a child of the default folder) whose
    /// id and display name are `folder`.
    pub fn add_contact(&self, user: &str, folder: &str, display_name: &str) -> String {
        let seed = self.shared().config.seed;
        lock(&self.shared().data)
            .contacts
            .add_contact(seed, user, folder, display_name)
    }

    /// Adds a contact folder named `name` to `user`'s mailbox and returns its
    /// id (deterministic, standard base64 with `+`, `/` and `=` like real
    /// folder ids). `parent`: `None` for a top-level folder (a child of the
    /// default folder, listed by `/contactFolders`), else the id of its parent
    /// folder (or `contacts`), which is made as by [`GraphSim::add_contact`]
    /// if unknown. A nested folder is only found through its parent's
    /// `childFolders`.
    pub fn add_contact_folder(&self, user: &str, name: &str, parent: Option<&str>) -> String {
        let seed = self.shared().config.seed;
        lock(&self.shared().data)
            .contacts
            .add_contact_folder(seed, user, name, parent)
    }

    /// The id of `user`'s default `Contacts` folder (the mailbox is made if
    /// the user has none yet).
    pub fn default_contact_folder(&self, user: &str) -> String {
        let seed = self.shared().config.seed;
        lock(&self.shared().data).contacts.ensure_mailbox(seed, user).default_id
    }

    /// Every contact folder of `user` (the default one first, nested ones
    /// included), in order of creation; empty for a user without a mailbox.
    pub fn contact_folders(&self, user: &str) -> Vec<ContactFolderInfo> {
        let data = lock(&self.shared().data);
        data.contacts
            .all_folders(user)
            .into_iter()
            .map(ContactFolder::info)
            .collect()
    }

    /// Renames a live contact (no-op for unknown or removed contacts); the next
    /// delta round reports it.
    pub fn update_contact(&self, user: &str, folder: &str, id: &str, display_name: &str) {
        self.change_contact(user, folder, id, |c| {
            if c.removed.is_some() {
                return false;
            }
            c.display_name = display_name.to_owned();
            true
        });
    }

    /// Removes a contact: `hard` → the next delta round reports
    /// `@removed: {"reason": "deleted"}`, soft → `"changed"`. No-op for unknown
    /// contacts; a soft-removed contact can still be hard-removed.
    pub fn remove_contact(&self, user: &str, folder: &str, id: &str, hard: bool) {
        let reason = if hard { Removal::Deleted } else { Removal::Changed };
        self.change_contact(user, folder, id, |c| {
            if c.removed == Some(reason) || c.removed == Some(Removal::Deleted) {
                return false;
            }
            c.removed = Some(reason);
            true
        });
    }

    fn change_contact(&self, user: &str, folder: &str, id: &str, f: impl FnOnce(&mut Contact) -> bool) {
        lock(&self.shared().data).contacts.change_contact(user, folder, id, f);
    }
}

/// Runs one axum server until shutdown is signalled (or the sender is dropped).
async fn serve(listener: KillableListener, app: Router, mut rx: watch::Receiver<bool>, name: &str) {
    let result = axum::serve(listener, app.into_make_service_with_connect_info::<ConnKill>())
        .with_graceful_shutdown(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(server = name, error = %e, "graph simulator server failed");
    }
}
