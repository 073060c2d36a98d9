//! Issued tokens: access tokens (checked on every Graph request) and the
//! opaque skip / delta tokens of paged lists and delta rounds.
//!
//! A skip or delta token stands for the state of the endpoint that issued
//! it (a round's snapshot and offset, a delta round's high-water mark), kept
//! here type-erased: only that endpoint knows the type, and a token of
//! another endpoint simply does not downcast to it (see [`SyncToken::state`]).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::faults::SyncLocation;
use crate::http::encode_token;
use crate::rng::{Rng, domain};

/// An issued access token.
#[derive(Debug)]
struct AccessToken {
    /// `None`: never expires (lifetime beyond what `Instant` can represent).
    expires_at: Option<Instant>,
    revoked: bool,
}

impl AccessToken {
    /// Not revoked and not expired at `now`.
    fn is_valid(&self, now: Instant) -> bool {
        !self.revoked && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Every access token issued.
#[derive(Debug, Default)]
pub(crate) struct AccessTokens {
    tokens: HashMap<String, AccessToken>,
    counter: u64,
}

impl AccessTokens {
    /// Issues a new access token valid until `expires_at`.
    pub(crate) fn issue(&mut self, seed: u64, expires_at: Option<Instant>) -> String {
        if self.tokens.len() > 4096 {
            let now = Instant::now();
            self.tokens.retain(|_, t| t.is_valid(now));
        }
        loop {
            let n = self.counter;
            self.counter += 1;
            let mut r = Rng::derive(seed, domain::ACCESS_TOKEN, n);
            let token = format!("sim.{}", URL_SAFE_NO_PAD.encode(r.bytes(48)));
            if !self.tokens.contains_key(&token) {
                self.tokens.insert(
                    token.clone(),
                    AccessToken {
                        expires_at,
                        revoked: false,
                    },
                );
                return token;
            }
        }
    }

    /// Whether `token` was issued, is not revoked and has not expired at `now`.
    pub(crate) fn is_valid(&self, token: &str, now: Instant) -> bool {
        self.tokens.get(token).is_some_and(|t| t.is_valid(now))
    }

    /// Revokes every token issued so far.
    pub(crate) fn revoke_all(&mut self) {
        for t in self.tokens.values_mut() {
            t.revoked = true;
        }
    }
}

/// What kind of token to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A delta round's next page (`$skiptoken`); expired by
    /// [`SyncTokens::expire_all`].
    Skip,
    /// A delta round's continuation (`$deltatoken`); expired by
    /// [`SyncTokens::expire_all`].
    Delta,
    /// The next page of a list that is no delta query (a `$skiptoken`
    /// too): never expired.
    Page,
}

/// An issued skip / delta token.
pub(crate) struct SyncToken {
    state: Arc<dyn Any + Send + Sync>,
    kind: TokenKind,
    /// Set by [`SyncTokens::expire_all`]: `(code, location)`.
    pub(crate) expired: Option<(String, SyncLocation)>,
}

impl fmt::Debug for SyncToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncToken")
            .field("kind", &self.kind)
            .field("expired", &self.expired)
            .finish_non_exhaustive()
    }
}

impl SyncToken {
    /// Whether it names a next page (a skip token) rather than a next round.
    pub(crate) fn is_skip(&self) -> bool {
        self.kind != TokenKind::Delta
    }

    /// The state it stands for, if it is an `S` (a token of another
    /// endpoint, or of another kind, is not).
    pub(crate) fn state<S: Any + Send + Sync>(&self) -> Option<Arc<S>> {
        Arc::clone(&self.state).downcast::<S>().ok()
    }
}

/// Every skip / delta token issued, by its raw text.
#[derive(Debug, Default)]
pub(crate) struct SyncTokens {
    tokens: HashMap<String, SyncToken>,
    counter: u64,
}

impl SyncTokens {
    /// Issues a new opaque token (raw, percent-escaped as it appears in URLs)
    /// that stands for `state`.
    pub(crate) fn issue<S: Any + Send + Sync>(&mut self, seed: u64, kind: TokenKind, state: S) -> String {
        let state: Arc<dyn Any + Send + Sync> = Arc::new(state);
        loop {
            let n = self.counter;
            self.counter += 1;
            let mut r = Rng::derive(seed, domain::SYNC_TOKEN, n);
            let mut raw = r.bytes(35); // 35 = 3*11 + 2 → one '=' of padding
            raw[..3].copy_from_slice(b"DSp");
            raw[6..9].copy_from_slice(&[0xFB, 0xFF, 0xBF]); // "+/+/"
            raw[12..20].copy_from_slice(&n.to_be_bytes());
            let token = encode_token(&STANDARD.encode(&raw));
            if !self.tokens.contains_key(&token) {
                let issued = SyncToken {
                    state: Arc::clone(&state),
                    kind,
                    expired: None,
                };
                self.tokens.insert(token.clone(), issued);
                return token;
            }
        }
    }

    /// The token with this raw text.
    pub(crate) fn get(&self, token: &str) -> Option<&SyncToken> {
        self.tokens.get(token)
    }

    /// Expires every skip and delta token issued so far (not
    /// [`TokenKind::Page`] ones): using one answers `410 Gone` with `code`
    /// and the `Location` that `location` says.
    pub(crate) fn expire_all(&mut self, code: &str, location: SyncLocation) {
        for t in self.tokens.values_mut() {
            if t.kind != TokenKind::Page {
                t.expired = Some((code.to_owned(), location));
            }
        }
    }
}
