//! How a simulator is set up: [`SimConfig`] and [`ContentMode`].

use std::time::Duration;

/// Configuration of a [`GraphSim`](crate::GraphSim).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The tenant id accepted by the token endpoint
    /// (default `9188040d-6c67-4c5b-b112-36a304b66dad`).
    pub tenant_id: String,
    /// The application (client) id accepted by the token endpoint
    /// (default `00000000-0000-0000-0000-0000000000c1`).
    pub client_id: String,
    /// The client secret accepted by the token endpoint (default `sim-secret`).
    pub client_secret: String,
    /// Lifetime (`expires_in`) of issued access tokens, enforced on use
    /// (default 3600 s).
    pub token_lifetime: Duration,
    /// Default page size of delta pages (default 10; 0 is treated as 1).
    pub page_size: usize,
    /// How recording and transcript content is served (default
    /// [`ContentMode::Redirect`]).
    pub content_mode: ContentMode,
    /// Seed of every generated id, timestamp, token and content byte (default 42).
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tenant_id: "9188040d-6c67-4c5b-b112-36a304b66dad".to_owned(),
            client_id: "00000000-0000-0000-0000-0000000000c1".to_owned(),
            client_secret: "sim-secret".to_owned(),
            token_lifetime: Duration::from_secs(3600),
            page_size: 10,
            content_mode: ContentMode::Redirect,
            seed: 42,
        }
    }
}

/// How the graph content endpoints serve recording and transcript bytes
/// (transcript metadata is always served directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentMode {
    /// `200 OK` with the bytes, straight from the graph origin.
    Direct,
    /// `302 Found` to a pre-authenticated URL on the download origin.
    #[default]
    Redirect,
    /// Recordings with an even serial number (0, 2, ... in order of creation
    /// across all organizers) direct, odd ones redirect; the same for
    /// transcripts, and for ad hoc calls' recordings and transcripts, each
    /// counted on their own.
    Alternate,
}
