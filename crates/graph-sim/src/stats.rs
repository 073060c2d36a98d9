//! What the simulator counts: the public [`SimStats`] snapshot, the request
//! log, and the counters behind them ([`StatsData`]).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::assertion::AssertionRejection;

/// Which of the two servers received a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The graph origin (Graph API and token endpoint).
    Graph,
    /// The download origin (pre-authenticated content URLs).
    Download,
}

/// One request as received by the simulator.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// When the request arrived.
    pub at: Instant,
    /// Which server received it.
    pub origin: Origin,
    /// The HTTP method.
    pub method: String,
    /// The raw request target (path and query) exactly as received.
    pub path_and_query: String,
    /// The response status; `0` when the connection was closed without a
    /// response ([`Faults::token_connection_reset`](crate::Faults::token_connection_reset)).
    pub status: u16,
    /// Whether the request carried an `Authorization` header (valid or not).
    pub authorization: bool,
}

/// A snapshot of the simulator's counters (see [`GraphSim::stats`](crate::GraphSim::stats)).
#[derive(Clone, Debug, Default)]
pub struct SimStats {
    /// Requests to the token endpoint (any outcome).
    pub token_requests: u64,
    /// Delta requests, recordings and contacts (any outcome); `/users/delta`
    /// counts in `directory_requests`, transcripts in
    /// `transcript_delta_requests`.
    pub delta_requests: u64,
    /// Requests to the recording content endpoint on the graph origin (any
    /// outcome); transcripts count in `transcript_content_requests_by_id`
    /// and `transcript_metadata_requests_by_id`.
    pub content_requests: u64,
    /// Requests to the download origin (any outcome).
    pub download_requests: u64,
    /// Content bytes handed to the network, both origins: recordings,
    /// transcripts and transcript metadata.
    pub content_bytes_sent: u64,
    /// Requests to the download origin that carried an `Authorization` header
    /// (a correct client keeps this at 0).
    pub auth_header_on_download_origin: u64,
    /// Per recording id: logical downloads started, counted once at the graph
    /// content endpoint when it answered `200`/`206` (direct) or `302`
    /// (redirect), whether or not the body completed.
    pub content_requests_by_id: BTreeMap<String, u64>,
    /// Every request, in order of completion of its response head.
    pub requests: Vec<RequestRecord>,
    /// Graph requests answered 401 (missing, unknown, expired or revoked bearer).
    pub unauthorized: u64,
    /// Requests answered by an injected throttle (429 / 503).
    pub throttled: u64,
    /// Delta requests answered 410 Gone.
    pub gone: u64,
    /// Per recording or transcript id: content (and transcript metadata)
    /// requests answered by a [`Faults::content_status`](crate::Faults::content_status) fault, on any origin
    /// and any redirect hop. These are not counted in
    /// `content_requests_by_id` or the transcript counts.
    pub content_refused_by_id: BTreeMap<String, u64>,
    /// Token requests whose connection was reset without a response
    /// ([`Faults::token_connection_reset`](crate::Faults::token_connection_reset)); also counted in `token_requests`.
    pub token_connections_reset: u64,
    /// Recordings and transcripts delta requests, and ad hoc call lists,
    /// answered 403 by [`Faults::organizer_forbidden`](crate::Faults::organizer_forbidden).
    pub forbidden: u64,
    /// Requests to the graph origin's redirect-hop endpoints (see
    /// [`RedirectStyle`](crate::RedirectStyle)), any outcome. The content endpoint itself and the
    /// download origin are not counted here.
    pub redirect_hops: u64,
    /// Requests that came back to the graph origin at the end of a
    /// [`RedirectStyle::Bounce`](crate::RedirectStyle::Bounce) chain (which had already left it) carrying an
    /// `Authorization` header. A correct client keeps this at 0.
    pub auth_header_after_leaving_graph: u64,
    /// Token requests whose `client_secret` was accepted.
    pub client_secrets_accepted: u64,
    /// Token requests whose certificate-signed `client_assertion` was
    /// accepted (see [`GraphSim::register_certificate`](crate::GraphSim::register_certificate)).
    pub client_assertions_accepted: u64,
    /// Token requests whose federated `client_assertion` was accepted (see
    /// [`GraphSim::register_federated_token`](crate::GraphSim::register_federated_token)).
    pub federated_assertions_accepted: u64,
    /// Refused `client_assertion`s (either kind), by reason.
    pub assertions_rejected: BTreeMap<AssertionRejection, u64>,
    /// The last accepted certificate-signed assertion, decoded:
    /// `{"header": {"alg", "typ", "x5t#S256", ...}, "claims": {"aud", "iss",
    /// "sub", "jti", "nbf", "iat", "exp", ...}}`, exactly as the client sent
    /// them.
    pub last_client_assertion: Option<serde_json::Value>,
    /// The last accepted federated token, verbatim.
    pub last_federated_assertion: Option<String>,
    /// Requests to the directory endpoints (`/users/{id}`, `/users/delta`,
    /// `/groups/{id}/transitiveMembers…`), any outcome.
    pub directory_requests: u64,
    /// Transcript delta requests (`getAllTranscripts(…)/delta`), any outcome.
    /// Not counted in `delta_requests`.
    pub transcript_delta_requests: u64,
    /// Per transcript id: logical downloads of its WebVTT content started,
    /// counted like `content_requests_by_id` (a `200`/`206` or a `302` from
    /// the graph content endpoint).
    pub transcript_content_requests_by_id: BTreeMap<String, u64>,
    /// Per transcript id (a meeting's or an ad hoc call's): metadata
    /// requests answered `200`/`206`.
    pub transcript_metadata_requests_by_id: BTreeMap<String, u64>,
    /// Transcript requests (delta, ad hoc lists, content, metadata, redirect
    /// hops and the download origin) answered 403 by [`Faults::transcripts_disabled`](crate::Faults::transcripts_disabled).
    pub transcript_forbidden: u64,
    /// Requests to the contact folder endpoints (`/contactFolders`,
    /// `/contactFolders/{id}`, `/childFolders`), any outcome.
    pub contact_folder_requests: u64,
    /// Requests to `adhocCalls/getAllRecordings(…)` (first pages and
    /// nextLinks), any outcome.
    pub adhoc_recording_list_requests: u64,
    /// Requests to `adhocCalls/getAllTranscripts(…)` (first pages and
    /// nextLinks), any outcome.
    pub adhoc_transcript_list_requests: u64,
    /// Requests for one ad hoc call or its artifacts
    /// (`adhocCalls/{callId}`, `…/{callId}/recordings`,
    /// `…/{callId}/transcripts`), which Graph refuses: any outcome.
    pub adhoc_per_call_requests: u64,
    /// Requests to the ad hoc call content endpoints on the graph origin
    /// (recordings', transcripts' and transcript metadata), any outcome.
    /// Not counted in `content_requests`.
    pub adhoc_content_requests: u64,
    /// Per ad hoc call recording id: logical downloads started, counted like
    /// `content_requests_by_id`.
    pub adhoc_recording_content_requests_by_id: BTreeMap<String, u64>,
    /// Per ad hoc call transcript id: logical downloads of its WebVTT content
    /// started, counted like `content_requests_by_id`.
    pub adhoc_transcript_content_requests_by_id: BTreeMap<String, u64>,
    /// Per meeting id (verbatim): requests for the online meeting itself
    /// (`/users/{o}/onlineMeetings/{meetingId}`), any outcome.
    pub online_meeting_requests_by_id: BTreeMap<String, u64>,
    /// Per user (the id or UPN in the path, lowercase): requests to
    /// `/users/{id}`, any outcome (also counted in `directory_requests`).
    pub user_requests_by_id: BTreeMap<String, u64>,
}

/// Mutable statistics (the byte counter lives in an atomic in [`Shared`](crate::state::Shared)).
#[derive(Debug, Default)]
pub(crate) struct StatsData {
    pub(crate) token_requests: u64,
    pub(crate) delta_requests: u64,
    pub(crate) content_requests: u64,
    pub(crate) download_requests: u64,
    pub(crate) auth_header_on_download_origin: u64,
    pub(crate) content_requests_by_id: BTreeMap<String, u64>,
    pub(crate) requests: Vec<RequestRecord>,
    pub(crate) unauthorized: u64,
    pub(crate) throttled: u64,
    pub(crate) gone: u64,
    pub(crate) content_refused_by_id: BTreeMap<String, u64>,
    pub(crate) token_connections_reset: u64,
    pub(crate) forbidden: u64,
    pub(crate) redirect_hops: u64,
    pub(crate) auth_header_after_leaving_graph: u64,
    pub(crate) client_secrets_accepted: u64,
    pub(crate) client_assertions_accepted: u64,
    pub(crate) federated_assertions_accepted: u64,
    pub(crate) assertions_rejected: BTreeMap<AssertionRejection, u64>,
    pub(crate) last_client_assertion: Option<serde_json::Value>,
    pub(crate) last_federated_assertion: Option<String>,
    pub(crate) directory_requests: u64,
    pub(crate) transcript_delta_requests: u64,
    pub(crate) transcript_content_requests_by_id: BTreeMap<String, u64>,
    pub(crate) transcript_metadata_requests_by_id: BTreeMap<String, u64>,
    pub(crate) transcript_forbidden: u64,
    pub(crate) contact_folder_requests: u64,
    pub(crate) adhoc_recording_list_requests: u64,
    pub(crate) adhoc_transcript_list_requests: u64,
    pub(crate) adhoc_per_call_requests: u64,
    pub(crate) adhoc_content_requests: u64,
    pub(crate) adhoc_recording_content_requests_by_id: BTreeMap<String, u64>,
    pub(crate) adhoc_transcript_content_requests_by_id: BTreeMap<String, u64>,
    pub(crate) online_meeting_requests_by_id: BTreeMap<String, u64>,
    pub(crate) user_requests_by_id: BTreeMap<String, u64>,
}

impl StatsData {
    pub(crate) fn snapshot(&self, bytes: u64) -> SimStats {
        SimStats {
            token_requests: self.token_requests,
            delta_requests: self.delta_requests,
            content_requests: self.content_requests,
            download_requests: self.download_requests,
            content_bytes_sent: bytes,
            auth_header_on_download_origin: self.auth_header_on_download_origin,
            content_requests_by_id: self.content_requests_by_id.clone(),
            requests: self.requests.clone(),
            unauthorized: self.unauthorized,
            throttled: self.throttled,
            gone: self.gone,
            content_refused_by_id: self.content_refused_by_id.clone(),
            token_connections_reset: self.token_connections_reset,
            forbidden: self.forbidden,
            redirect_hops: self.redirect_hops,
            auth_header_after_leaving_graph: self.auth_header_after_leaving_graph,
            client_secrets_accepted: self.client_secrets_accepted,
            client_assertions_accepted: self.client_assertions_accepted,
            federated_assertions_accepted: self.federated_assertions_accepted,
            assertions_rejected: self.assertions_rejected.clone(),
            last_client_assertion: self.last_client_assertion.clone(),
            last_federated_assertion: self.last_federated_assertion.clone(),
            directory_requests: self.directory_requests,
            transcript_delta_requests: self.transcript_delta_requests,
            transcript_content_requests_by_id: self.transcript_content_requests_by_id.clone(),
            transcript_metadata_requests_by_id: self.transcript_metadata_requests_by_id.clone(),
            transcript_forbidden: self.transcript_forbidden,
            contact_folder_requests: self.contact_folder_requests,
            adhoc_recording_list_requests: self.adhoc_recording_list_requests,
            adhoc_transcript_list_requests: self.adhoc_transcript_list_requests,
            adhoc_per_call_requests: self.adhoc_per_call_requests,
            adhoc_content_requests: self.adhoc_content_requests,
            adhoc_recording_content_requests_by_id: self.adhoc_recording_content_requests_by_id.clone(),
            adhoc_transcript_content_requests_by_id: self.adhoc_transcript_content_requests_by_id.clone(),
            online_meeting_requests_by_id: self.online_meeting_requests_by_id.clone(),
            user_requests_by_id: self.user_requests_by_id.clone(),
        }
    }
}
