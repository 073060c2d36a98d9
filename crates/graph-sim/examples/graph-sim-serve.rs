//! The Graph simulator as a stand-alone process, for benchmarks that run `recarch` as users
//! run it (`scripts/bench-cold.py`).
//!
//! ```text
//! cargo run --release -p recarch-graph-sim --example graph-sim-serve -- \
//!     --organizers N --recordings M --files K --file-url http://127.0.0.1:PORT/ \
//!     --info info.json [--organizers-file orgs.txt] [--size BYTES] [--page-size P]
//! ```
//!
//! It starts a [`GraphSim`] with `N` organizers of `M` recordings each, and a front server on
//! another loopback port that is the Graph origin the client sees: recording content URLs are
//! `{front}/content/{serial}` and answer `302 Found` to `{file-url}r{serial % K:06}.bin` (a
//! static file server run as its own process, e.g. nginx); every other request (token, delta
//! pages) is passed to the simulator, with the front's origin put in place of the simulator's
//! (scope, links) both ways. When ready it writes `--info` (base_url, authority_url, tenant_id,
//! client_id, client_secret and the organizers, or the path of `--organizers-file` holding one
//! id per line), prints `ready` and serves until killed or its standard input closes.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HOST, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use recarch_graph_sim::{GraphSim, SimConfig};

struct Front {
    sim_origin: String,
    front_origin: String,
    file_url: String,
    files: u64,
    client: reqwest::Client,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

const USAGE: &str = "usage: graph-sim-serve --file-url http://HOST:PORT/ --info PATH [--organizers N] \
[--recordings M] [--files K] [--size BYTES] [--page-size P] [--organizers-file PATH]";

/// Says what is wrong with the command line, and the usage, then exits with 2.
fn usage(problem: &str) -> ! {
    eprintln!("graph-sim-serve: {problem}\n{USAGE}");
    std::process::exit(2)
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| usage(&format!("{name}: {v:?} is not a whole number")))
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let organizers = num(&args, "--organizers", 1);
    let recordings = num(&args, "--recordings", 32);
    let files = num(&args, "--files", organizers * recordings).max(1);
    let size = num(&args, "--size", 1);
    let page_size = num(&args, "--page-size", 100) as usize;
    let file_url = arg(&args, "--file-url")
        .unwrap_or_else(|| usage("--file-url (the static file server's http://HOST:PORT/) is missing"));
    let info_path = arg(&args, "--info").unwrap_or_else(|| usage("--info PATH is missing"));
    let orgs_file = arg(&args, "--organizers-file");

    let sim = GraphSim::start(SimConfig {
        page_size,
        ..SimConfig::default()
    })
    .await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let front_origin = format!("http://{}", listener.local_addr()?);
    let mut orgs = Vec::with_capacity(organizers as usize);
    let mut serial = 0u64;
    for _ in 0..organizers {
        let org = sim.add_organizer();
        for _ in 0..recordings {
            sim.add_recording_with_content_url(&org, size, &format!("{front_origin}/content/{serial}"));
            serial += 1;
        }
        orgs.push(org);
    }
    let front = Arc::new(Front {
        sim_origin: sim.graph_origin(),
        front_origin: front_origin.clone(),
        file_url,
        files,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client"),
    });
    let config = sim.config();
    let mut info = serde_json::json!({
        "base_url": format!("{front_origin}/v1.0"),
        "authority_url": front_origin,
        "tenant_id": config.tenant_id,
        "client_id": config.client_id,
        "client_secret": config.client_secret,
        "recordings": serial,
    });
    if let Some(path) = orgs_file {
        std::fs::write(&path, orgs.join("\n") + "\n")?;
        info["organizers_file"] = path.into();
    } else {
        info["organizers"] = orgs.into();
    }
    std::fs::write(&info_path, serde_json::to_vec_pretty(&info)?)?;
    println!("ready");

    let app = Router::new().fallback(handle).with_state(front);
    let server = axum::serve(listener, app);
    // Stop when the parent closes our standard input (or kills us).
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed_tx.send(());
    });
    tokio::select! {
        r = server => r,
        _ = closed_rx => Ok(()),
    }
}

async fn handle(State(front): State<Arc<Front>>, req: Request) -> Response {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    if let Some(serial) = target.strip_prefix("/content/") {
        if !req.headers().contains_key(AUTHORIZATION) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let Ok(serial) = serial.parse::<u64>() else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let location = format!("{}r{:06}.bin", front.file_url, serial % front.files);
        let Ok(location) = HeaderValue::from_str(&location) else {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "--file-url is not a valid header value",
            )
                .into_response();
        };
        let mut resp = StatusCode::FOUND.into_response();
        resp.headers_mut().insert(LOCATION, location);
        return resp;
    }
    match proxy(&front, req, &target).await {
        Ok(resp) => resp,
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Passes a request to the simulator: origins swapped in bodies (raw and form-encoded) and in
/// `Location`.
async fn proxy(front: &Front, req: Request, target: &str) -> Result<Response, Box<dyn std::error::Error>> {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, 1 << 20).await?;
    let enc = |s: &str| s.replace(':', "%3A").replace('/', "%2F");
    let body = String::from_utf8_lossy(&body)
        .replace(&front.front_origin, &front.sim_origin)
        .replace(&enc(&front.front_origin), &enc(&front.sim_origin));
    let mut out = front
        .client
        .request(parts.method, format!("{}{target}", front.sim_origin))
        .body(body);
    for (name, value) in &parts.headers {
        if name != HOST && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let resp = out.send().await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await?;
    let text = String::from_utf8_lossy(&bytes).replace(&front.sim_origin, &front.front_origin);
    let mut answer = Response::new(Body::from(text));
    *answer.status_mut() = status;
    for (name, value) in &headers {
        if name == "content-length" || name == "transfer-encoding" {
            continue;
        }
        if name == LOCATION {
            let swapped = value
                .to_str()
                .unwrap_or("")
                .replace(&front.sim_origin, &front.front_origin);
            answer.headers_mut().insert(LOCATION, HeaderValue::from_str(&swapped)?);
        } else {
            answer.headers_mut().append(name, value.clone());
        }
    }
    Ok(answer)
}
