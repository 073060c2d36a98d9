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
//!   * `GET /{beta|v1.0}/users/{org}/onlineMeetings/{meetingId}` (the meeting
//!     a recording or transcript names: `id`, `subject`, `startDateTime`,
//!     `endDateTime`, `joinWebUrl`, or what `$select` names; deterministic
//!     subjects such as `Quarterly review 1`, see
//!     [`GraphSim::set_meeting_subject`]; `404` for a meeting no artifact of
//!     the organizer names),
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
//!   * `GET /{beta|v1.0}/users/{u}/adhocCalls/getAllRecordings(userId='{u}',startDateTime=..,endDateTime=..)`
//!     and `…/adhocCalls/getAllTranscripts(…)`: the recordings and transcripts
//!     of the user's ad hoc calls (1:1, group and PSTN) created in the window,
//!     paged by `$top` and opaque nextLinks, without delta (see
//!     [`GraphSim::add_adhoc_call`]); their content at
//!     `…/users/{u}/adhocCalls/{callId}/recordings/{id}/content` and
//!     `…/adhocCalls/{callId}/transcripts/{id}/content` (WebVTT with or
//!     without `$format=text/vtt`; and `…/metadataContent`), served like the
//!     meetings' artifacts; the artifacts of one call
//!     (`…/adhocCalls/{callId}/recordings`, `…/transcripts`) and the call
//!     itself are not listed but refused with `400 BadRequest`, as Graph
//!     does not enumerate them,
//!   * `GET /{beta|v1.0}/users/{user}/contactFolders` (top-level folders),
//!     `…/contactFolders/{folder}` and `…/contactFolders/{folder}/childFolders`
//!     (paged by `$top` / `$skip`; `contacts` names the default folder; see
//!     [`GraphSim::add_contact_folder`]),
//!   * `GET /{beta|v1.0}/users/{user}/contactFolders/{folder}/contacts/delta`
//!     (`$select`, `Prefer: odata.maxpagesize`, `@removed` entries),
//!   * the directory, for organizer discovery ([`GraphSim::add_user`],
//!     [`GraphSim::add_group`], [`GraphSim::add_member`], ...):
//!     `GET /{beta|v1.0}/users/{id | userPrincipalName}?$select=id` (and
//!     `displayName`, `userPrincipalName`, `mail`, `accountEnabled`,
//!     `userType` when `$select` names them),
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
//! * Ad hoc call lists: throttles on [`Target::AdhocCalls`],
//!   [`Faults::organizer_forbidden`] (403 for one user),
//!   [`Faults::transcripts_disabled`]; their nextLinks are no sync state
//!   ([`Faults::expire_sync_state`] leaves them valid).
//! * Content (recordings, transcripts and transcript metadata, of meetings and
//!   ad hoc calls):
//!   [`Faults::content_status`] (403 / 404 / 410 ... for one recording or
//!   transcript, every time), [`Faults::content_always_truncated`] and
//!   [`Faults::drop_mid_body`] (body cut halfway), [`Faults::cut_delta_pages`] (a delta page
//!   cut halfway), [`Faults::redirect_style`]
//!   (relative, chained and bouncing redirects), [`Faults::content_rate`].
//! * The meetings' recording and transcript APIs: [`Faults::payment_required`]
//!   (402; ad hoc calls are not metered).
//! * Transcripts: [`Faults::transcripts_disabled`] (403 on every transcript
//!   request, the tenant's transcript access turned off; recordings go on).
//! * Contact folders: throttles on [`Target::ContactFolders`]; per user,
//!   [`Faults::mailbox`] (no mailbox, or the app kept out of it) on folders
//!   and contacts delta.
//! * Directory: [`Faults::directory_forbidden`] (403
//!   `Authorization_RequestDenied`, a missing `User.Read.All` /
//!   `GroupMember.Read.All`), throttles on [`Target::Directory`],
//!   [`Faults::expire_sync_state`] for `/users/delta` tokens;
//!   [`Faults::user_status`] (403 / 404 / 500 ... for `GET /users/{id}` of one
//!   user, every time).
//! * Online meetings (`/users/{o}/onlineMeetings/{meetingId}`): throttles on
//!   [`Target::OnlineMeetings`], [`Faults::organizer_forbidden`], and
//!   [`Faults::online_meeting_status`] (403 / 404 / 500 ... for one meeting or
//!   every meeting of an organizer, every time); requests counted per meeting
//!   in [`SimStats::online_meeting_requests_by_id`].
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
mod sim;
mod state;
mod stats;
pub mod test_keys;
mod vtt;

pub use crate::assertion::{AssertionRejection, CertificateError};
pub use crate::config::{ContentMode, SimConfig};
pub use crate::data::adhoc::{AdhocCallKind, CallInfo};
pub use crate::data::artifact::{RecordingInfo, TranscriptInfo};
pub use crate::data::contacts::ContactFolderInfo;
pub use crate::data::directory::UserType;
pub use crate::faults::{
    CredentialRejection, MailboxFault, RedirectStyle, RetryAfter, SyncLocation, TRANSCRIPTS_DISABLED_MESSAGE, Target,
};
pub use crate::sim::GraphSim;
pub use crate::sim::faults::Faults;
pub use crate::stats::{Origin, RequestRecord, SimStats};
