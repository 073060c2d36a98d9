//! The public handles: [`GraphSim`] (start, stop, URLs, credentials, stats;
//! its test API per resource in the submodules) and [`Faults`].

mod adhoc;
mod contacts;
mod directory;
pub(crate) mod faults;
mod meetings;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::assertion::{CertificateError, RegisteredCert};
use crate::config::SimConfig;
use crate::conn::{ConnKill, KillableListener};
use crate::router;
use crate::sim::faults::Faults;
use crate::state::{Shared, lock};
use crate::stats::{SimStats, StatsData};

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
    /// `x5t`, base64url SHA-1) is accepted; see [`AssertionRejection`](crate::AssertionRejection) for
    /// every check. Several certificates can be registered at once (rotation),
    /// and a client secret keeps working alongside. Registering one again
    /// changes nothing. An expired certificate can be registered; assertions
    /// it signs are refused ([`AssertionRejection::KeyExpired`](crate::AssertionRejection::KeyExpired)).
    pub fn register_certificate(&self, cert: &[u8]) -> Result<String, CertificateError> {
        let cert = RegisteredCert::parse(cert)?;
        Ok(lock(&self.shared().identity).add_cert(cert))
    }

    /// Removes a certificate registered with [`GraphSim::register_certificate`]
    /// (DER or PEM): assertions it signs are refused as
    /// [`AssertionRejection::UnknownKey`](crate::AssertionRejection::UnknownKey) from now on. Returns whether it was
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
    /// ([`AssertionRejection::Expired`](crate::AssertionRejection::Expired)). Re-registering a revoked token
    /// accepts it again.
    pub fn register_federated_token(&self, token: &str) {
        lock(&self.shared().identity).add_federated(token);
    }

    /// Revokes a federated token registered with
    /// [`GraphSim::register_federated_token`], as when the kubelet rotates the
    /// token file: presenting it again is refused as expired
    /// ([`AssertionRejection::RevokedFederatedToken`](crate::AssertionRejection::RevokedFederatedToken),
    /// AADSTS700024). Returns whether it was registered.
    pub fn revoke_federated_token(&self, token: &str) -> bool {
        lock(&self.shared().identity).revoke_federated(token)
    }

    /// A handle to switch faults at run time.
    pub fn faults(&self) -> Faults {
        Faults::new(Arc::clone(&self.inner.shared))
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
