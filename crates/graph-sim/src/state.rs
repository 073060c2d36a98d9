//! The state the servers and the [`crate::GraphSim`] handle share: the
//! configuration and origins, the tenant data, the fault switches, the
//! counters, the identity platform's registered credentials, and the
//! signatures of pre-authenticated URLs.
//!
//! Locks are never nested: a handler takes the data lock or a fault or stats
//! lock, one at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::assertion::IdentityState;
use crate::body::Meter;
use crate::config::SimConfig;
use crate::data::Data;
use crate::data::artifact::Served;
use crate::faults::{
    CredentialRejection, FaultFlags, FaultState, MailboxFault, RedirectStyle, RetryAfter, Target, take_one,
};
use crate::http::ApiVersion;
use crate::rng::{Rng, domain, hex};
use crate::stats::{Origin, RequestRecord, StatsData};

/// Locks `m`, ignoring poisoning (no code path panics while holding a lock, and
/// the state stays consistent even if one did).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the servers and the [`crate::GraphSim`] handle share.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) graph_origin: String,
    pub(crate) download_origin: String,
    pub(crate) data: Mutex<Data>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) stats: Mutex<StatsData>,
    /// Registered certificates and federated tokens, and the `jti`s seen.
    pub(crate) identity: Mutex<IdentityState>,
    /// Content bytes handed to the HTTP layer (both origins), and whether
    /// shutdown has started: what every content body reports to and watches.
    pub(crate) meter: Arc<Meter>,
    request_counter: AtomicU64,
}

impl Shared {
    pub(crate) fn new(config: SimConfig, graph_origin: String, download_origin: String) -> Shared {
        Shared {
            config,
            graph_origin,
            download_origin,
            data: Mutex::new(Data::default()),
            faults: Mutex::new(FaultState::default()),
            stats: Mutex::new(StatsData::default()),
            identity: Mutex::new(IdentityState::default()),
            meter: Arc::new(Meter::default()),
            request_counter: AtomicU64::new(0),
        }
    }

    /// The API base for `version` (`beta` or `v1.0`).
    pub(crate) fn base(&self, version: ApiVersion) -> String {
        format!("{}/{}", self.graph_origin, version.as_str())
    }

    /// A fresh GUID for request / trace ids.
    pub(crate) fn request_guid(&self) -> String {
        let n = self.request_counter.fetch_add(1, Ordering::Relaxed);
        Rng::derive(self.config.seed, domain::REQUEST_ID, n).guid()
    }

    /// Records a finished request in the stats.
    pub(crate) fn record_request(
        &self,
        at: Instant,
        origin: Origin,
        method: String,
        path_and_query: String,
        status: u16,
        authorization: bool,
    ) {
        lock(&self.stats).requests.push(RequestRecord {
            at,
            origin,
            method,
            path_and_query,
            status,
            authorization,
        });
    }

    /// Runs `f` on the stats.
    pub(crate) fn stat(&self, f: impl FnOnce(&mut StatsData)) {
        f(&mut lock(&self.stats));
    }

    /// Consumes one pending throttle for `target`, if any: `(status, retry_after)`.
    pub(crate) fn take_throttle(&self, target: Target) -> Option<(u16, RetryAfter)> {
        let mut f = lock(&self.faults);
        let slot = &mut f.throttle[target.index()];
        let t = slot.as_mut()?;
        if t.remaining == 0 {
            *slot = None;
            return None;
        }
        t.remaining -= 1;
        let out = (t.status, t.retry_after);
        if t.remaining == 0 {
            *slot = None;
        }
        Some(out)
    }

    /// The content rate limit, if any.
    pub(crate) fn content_rate(&self) -> Option<u64> {
        lock(&self.faults).content_rate
    }

    /// Consumes one pending `drop_mid_body` fault, if any.
    pub(crate) fn take_drop_mid_body(&self) -> bool {
        take_one(&mut lock(&self.faults).drop_mid_body)
    }

    /// Consumes one pending `cut_delta_pages` fault, if any.
    pub(crate) fn take_cut_page(&self) -> bool {
        take_one(&mut lock(&self.faults).cut_pages)
    }

    /// Consumes one pending `token_connection_reset`, if any.
    pub(crate) fn take_token_connection_reset(&self) -> bool {
        take_one(&mut lock(&self.faults).token_connection_reset)
    }

    /// The mailbox fault set for `user`, if any.
    pub(crate) fn mailbox_fault(&self, user: &str) -> Option<MailboxFault> {
        lock(&self.faults)
            .mailbox_faults
            .get(&user.to_ascii_lowercase())
            .copied()
    }

    /// Whether `transcripts_disabled` is on.
    pub(crate) fn transcripts_disabled(&self) -> bool {
        lock(&self.faults).transcripts_disabled
    }

    /// The `content_status` fault set for recording or transcript `id`, if any.
    pub(crate) fn content_status(&self, id: &str) -> Option<u16> {
        lock(&self.faults).content_status.get(id).copied()
    }

    /// The `online_meeting_status` fault for `meeting_id` of `organizer`, if any.
    pub(crate) fn online_meeting_status(&self, organizer: &str, meeting_id: &str) -> Option<u16> {
        let f = lock(&self.faults);
        f.online_meeting_status.get(meeting_id).copied().or_else(|| {
            f.online_meeting_status
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(organizer))
                .map(|(_, status)| *status)
        })
    }

    /// The `user_status` fault for `user` (an id or a UPN), if any.
    pub(crate) fn user_status(&self, user: &str) -> Option<u16> {
        lock(&self.faults).user_status.get(&user.to_lowercase()).copied()
    }

    /// Whether every body of recording or transcript `id` is cut short.
    pub(crate) fn always_truncated(&self, id: &str) -> bool {
        lock(&self.faults).truncated.contains(id)
    }

    /// The `reject_credentials` switch.
    pub(crate) fn credential_rejection(&self) -> Option<CredentialRejection> {
        lock(&self.faults).reject_credentials
    }

    /// Whether any of `organizers` is switched to `403` by `organizer_forbidden`.
    pub(crate) fn organizer_forbidden(&self, organizers: &[&str]) -> bool {
        let f = lock(&self.faults);
        organizers
            .iter()
            .any(|o| f.forbidden_organizers.contains(&o.to_ascii_lowercase()))
    }

    /// The current redirect style.
    pub(crate) fn redirect_style(&self) -> RedirectStyle {
        lock(&self.faults).redirect_style
    }

    /// A snapshot of the boolean fault switches.
    pub(crate) fn fault_flags(&self) -> FaultFlags {
        let f = lock(&self.faults);
        FaultFlags {
            payment_required: f.payment_required,
            empty_pages: f.empty_pages,
            duplicate_items: f.duplicate_items,
            top_drops_next_link: f.top_drops_next_link,
        }
    }

    /// Consumes the pending `replay_older` count.
    pub(crate) fn take_replay_older(&self) -> usize {
        std::mem::take(&mut lock(&self.faults).replay_older)
    }

    /// The signature of pre-authenticated URLs for the artifact with `serial`
    /// (tagged with its kind: see [`crate::data::artifact`]).
    fn download_signature(&self, serial: u64) -> String {
        let mut r = Rng::derive(self.config.seed, domain::SIGNATURE, serial);
        hex(&r.bytes(16))
    }

    /// `{serial:016x}{signature}`: the signed part of every pre-authenticated
    /// URL (download origin and redirect hops) of the artifact with `serial`
    /// (tagged with its kind: see [`crate::data::artifact`]).
    pub(crate) fn signed(&self, serial: u64) -> String {
        format!("{serial:016x}{}", self.download_signature(serial))
    }

    /// Parses a signed part: `None` if malformed, else `(serial, signature valid)`.
    pub(crate) fn parse_signed(&self, token: &str) -> Option<(u64, bool)> {
        if token.len() != 48 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let serial = u64::from_str_radix(token.get(..16)?, 16).ok()?;
        Some((serial, token.get(16..)? == self.download_signature(serial)))
    }

    /// What the pre-authenticated URLs of the artifact with (tagged) `serial` serve.
    pub(crate) fn served(&self, serial: u64) -> Option<Served> {
        lock(&self.data).served(serial)
    }

    /// Issues an access token valid for the configured lifetime.
    pub(crate) fn issue_access_token(&self) -> String {
        let expires_at = Instant::now().checked_add(self.config.token_lifetime);
        lock(&self.data).access_tokens.issue(self.config.seed, expires_at)
    }
}
