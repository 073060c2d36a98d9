//! A recording proxy in front of a loopback S3 server, over plain TCP or over TLS with a test
//! CA: it forwards every byte and notes each HTTP/1.1 request's method, path, query keys and
//! payload headers (never a credential, a signature or a query value), so that tests can see
//! what `recarch` sent. It can also flip a byte in every multipart part's body, as a faulty
//! hop would, to show that the server checks what it receives.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority made for one test, and a server certificate it issued for
/// `localhost` and `127.0.0.1`.
pub struct TestCa {
    /// The CA certificate, PEM: what a client must trust (e.g. through `SSL_CERT_FILE`).
    pub ca_pem: String,
    server: Arc<ServerConfig>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "recarch test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("CA key"))
            .expect("CA certificate");

        let key = rcgen::KeyPair::generate().expect("server key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca).expect("server certificate");

        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), CertificateDer::from(ca.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server TLS config");
        TestCa {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The path, and the query's keys without their values (`/b/k?partNumber&uploadId`).
    pub target: String,
    /// Header names (lower case) with their values for `content-length`, `if-none-match` and
    /// the `x-amz-content-sha256` / `x-amz-checksum-*` / `x-amz-sdk-checksum-*` /
    /// `x-amz-trailer` headers; other values (credentials, signatures) are replaced by `-`.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn body_len(&self) -> u64 {
        self.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    pub fn is_part_upload(&self) -> bool {
        self.method == "PUT" && self.target.contains("partNumber")
    }

    /// A blob uploaded in one PUT (not a part).
    pub fn is_blob_put(&self) -> bool {
        self.method == "PUT" && self.target.contains("/blobs/sha256/") && !self.target.contains('?')
    }

    /// The blob digest a blob PUT or part names.
    pub fn blob_digest(&self) -> Option<&str> {
        let after = self.target.split("/blobs/sha256/").nth(1)?;
        Some(after.split('?').next().unwrap_or(after))
    }
}

/// The proxy; it stops when dropped.
pub struct RecordingProxy {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    corrupt_parts: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream` (`host:port`), over TLS
    /// with `ca`'s server certificate when given.
    pub async fn start(upstream: &str, ca: Option<&TestCa>) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let corrupt_parts = Arc::new(AtomicBool::new(false));
        let acceptor = ca.map(|ca| TlsAcceptor::from(Arc::clone(&ca.server)));
        let upstream = upstream.to_owned();
        let (seen, corrupt) = (Arc::clone(&requests), Arc::clone(&corrupt_parts));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, upstream, seen, corrupt) = (
                    acceptor.clone(),
                    upstream.clone(),
                    Arc::clone(&seen),
                    Arc::clone(&corrupt),
                );
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(client) = acceptor.accept(client).await {
                                relay(client, server, seen, corrupt).await;
                            }
                        }
                        None => relay(client, server, seen, corrupt).await,
                    }
                });
            }
        });
        RecordingProxy {
            addr,
            requests,
            corrupt_parts,
            task,
        }
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// While on, one byte of every blob's body is flipped on its way to the server: each
    /// multipart part, and each blob sent in one PUT.
    pub fn corrupt_blobs(&self, on: bool) {
        self.corrupt_parts.store(on, Ordering::SeqCst);
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards both ways; parses the client's requests (heads and `Content-Length` bodies) to
/// record them, and falls back to copying bytes when a request is not one it can delimit.
async fn relay<C>(client: C, server: TcpStream, seen: Arc<Mutex<Vec<Request>>>, corrupt: Arc<AtomicBool>)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let (mut server_rd, mut server_wr) = server.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_rd, &mut client_wr).await;
        let _ = client_wr.shutdown().await;
    });
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    'requests: loop {
        // The head.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match client_rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break 'requests,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head: Vec<u8> = buf.drain(..end).collect();
        let Some(request) = parse_head(&head) else {
            // Not a request this proxy understands: pass the rest through untouched.
            if server_wr.write_all(&head).await.is_err() || server_wr.write_all(&buf).await.is_err() {
                break;
            }
            let _ = tokio::io::copy(&mut client_rd, &mut server_wr).await;
            break;
        };
        let chunked = request.header("transfer-encoding").is_some();
        let mut left = request.body_len();
        let flip = corrupt.load(Ordering::SeqCst) && (request.is_part_upload() || request.is_blob_put()) && left > 0;
        seen.lock().expect("lock").push(request);
        if server_wr.write_all(&head).await.is_err() {
            break;
        }
        if chunked {
            if server_wr.write_all(&buf).await.is_err() {
                break;
            }
            let _ = tokio::io::copy(&mut client_rd, &mut server_wr).await;
            break;
        }
        // The body.
        let mut first = true;
        while left > 0 {
            if buf.is_empty() {
                match client_rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break 'requests,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let mut body: Vec<u8> = buf.drain(..n).collect();
            if flip && first {
                body[0] ^= 0x01;
            }
            first = false;
            left -= n as u64;
            if server_wr.write_all(&body).await.is_err() {
                break 'requests;
            }
        }
    }
    let _ = server_wr.shutdown().await;
    let _ = back.await;
}

fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let uri = request_line.next()?;
    if !request_line.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let keys: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split('=').next().unwrap_or_default())
        .collect();
    let target = if keys.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", keys.join("&"))
    };
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| {
            let name = name.trim().to_ascii_lowercase();
            let shown = name == "content-length"
                || name == "transfer-encoding"
                || name == "x-amz-content-sha256"
                || name == "x-amz-trailer"
                || name == "if-none-match"
                || name.starts_with("x-amz-checksum-")
                || name.starts_with("x-amz-sdk-checksum-");
            let value = if shown { value.trim().to_owned() } else { "-".to_owned() };
            (name, value)
        })
        .collect();
    Some(Request {
        method,
        target,
        headers,
    })
}
