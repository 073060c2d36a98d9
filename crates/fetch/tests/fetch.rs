//! The fetcher against the Graph simulator over real loopback HTTP.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use recarch_delta::auth::{ClientCredentials, ClientCredentialsConfig, Secret, scope_for};
use recarch_delta::retry::RetryPolicy;
use recarch_delta::{DeltaError, GraphHttp};
use recarch_fetch::{FetchError, Fetcher};
use recarch_graph_sim::{ContentMode, GraphSim, SimConfig};
use sha2::{Digest, Sha256};
use url::Url;

async fn setup(mode: ContentMode, concurrency: usize) -> (GraphSim, Fetcher) {
    let sim = GraphSim::start(SimConfig {
        content_mode: mode,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let base = Url::parse(&sim.base_url()).expect("base");
    let tokens = ClientCredentials::new(
        reqwest::Client::new(),
        ClientCredentialsConfig {
            authority_url: Url::parse(&sim.authority_url()).expect("authority"),
            tenant_id: sim.config().tenant_id.clone(),
            client_id: sim.config().client_id.clone(),
            proof: recarch_delta::credentials::ClientProof::Secret(Secret::new(sim.config().client_secret.clone())),
            scope: scope_for(&base),
            refresh_margin: Duration::from_secs(60),
            retry: recarch_delta::retry::RetryPolicy::default(),
        },
    )
    .expect("endpoint");
    let no_redirects = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    };
    let policy = RetryPolicy {
        base_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    };
    let http = GraphHttp::new(no_redirects(), Arc::new(tokens), &base, policy);
    (sim, Fetcher::new(http, no_redirects(), concurrency))
}

async fn fetch_all(fetcher: &Fetcher, url: &str) -> Result<(Vec<u8>, recarch_fetch::Fetched), FetchError> {
    let mut download = fetcher.open(url).await?;
    let mut body = Vec::new();
    while let Some(chunk) = download.try_next().await? {
        body.extend_from_slice(&chunk);
    }
    Ok((body, download.finish()?))
}

#[tokio::test]
async fn direct_and_redirected_content_hash_right_and_the_token_stays_home() {
    for mode in [ContentMode::Direct, ContentMode::Redirect] {
        let (sim, fetcher) = setup(mode, 4).await;
        let org = sim.add_organizer();
        let rec = sim.add_recording(&org, 1_000_003);
        let (body, fetched) = fetch_all(&fetcher, &rec.content_url).await.expect("download");
        assert_eq!(body, sim.content_bytes(&rec.id).expect("known"));
        assert_eq!(
            fetched.sha256.map(hex::encode),
            Some(hex::encode(Sha256::digest(&body)))
        );
        assert_eq!(fetched.size, rec.size);
        let stats = sim.stats();
        assert_eq!(
            stats.auth_header_on_download_origin, 0,
            "{mode:?}: token sent to the download origin"
        );
        assert_eq!(stats.download_requests > 0, mode == ContentMode::Redirect);
    }
}

#[tokio::test]
async fn media_type_is_reported() {
    let (sim, fetcher) = setup(ContentMode::Direct, 1).await;
    let rec = sim.add_recording(&sim.add_organizer(), 10);
    let download = fetcher.open(&rec.content_url).await.expect("open");
    assert_eq!(download.media_type(), Some("video/mp4"));
    assert_eq!(download.content_length(), Some(10));
}

#[tokio::test]
async fn off_origin_urls_are_never_fetched() {
    let (sim, fetcher) = setup(ContentMode::Direct, 1).await;
    let url = format!("{}/download/anything", sim.download_origin());
    let err = fetcher.open(&url).await.expect_err("refused");
    assert!(matches!(err, FetchError::OffOrigin { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(sim.stats().download_requests, 0);
    assert!(matches!(
        fetcher.open("file:///etc/passwd").await,
        Err(FetchError::InvalidUrl { .. })
    ));
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_never_a_digest() {
    for mode in [ContentMode::Direct, ContentMode::Redirect] {
        let (sim, fetcher) = setup(mode, 1).await;
        let rec = sim.add_recording(&sim.add_organizer(), 2_000_000);
        sim.faults().drop_mid_body(1);
        let err = fetch_all(&fetcher, &rec.content_url).await.expect_err("short body");
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            matches!(err, FetchError::Body { .. } | FetchError::Truncated { .. }),
            "{err:?}"
        );
        // The next attempt gets the whole body.
        let (body, _) = fetch_all(&fetcher, &rec.content_url).await.expect("retry succeeds");
        assert_eq!(body.len() as u64, rec.size);
    }
}

#[tokio::test]
async fn concurrency_is_bounded_by_permits_held_in_downloads() {
    let (sim, fetcher) = setup(ContentMode::Direct, 2).await;
    let org = sim.add_organizer();
    let recs: Vec<_> = (0..3).map(|_| sim.add_recording(&org, 100)).collect();
    let d1 = fetcher.open(&recs[0].content_url).await.expect("first");
    let d2 = fetcher.open(&recs[1].content_url).await.expect("second");
    assert_eq!(fetcher.available_permits(), 0);
    let third = fetcher.open(&recs[2].content_url);
    tokio::pin!(third);
    assert!(
        futures::poll!(third.as_mut()).is_pending(),
        "a third download must wait"
    );
    drop(d1);
    let d3 = third.await.expect("third after a permit came back");
    assert_eq!(fetcher.available_permits(), 0);
    drop((d2, d3));
    assert_eq!(fetcher.available_permits(), 2);
}

#[tokio::test]
async fn a_body_that_ended_returns_its_permit_before_the_download_is_dropped() {
    let (sim, fetcher) = setup(ContentMode::Direct, 1).await;
    let org = sim.add_organizer();
    let (a, b) = (sim.add_recording(&org, 300_000), sim.add_recording(&org, 2_000_000));
    let mut d = fetcher.open(&a.content_url).await.expect("first");
    assert_eq!(fetcher.available_permits(), 0);
    let first = d.try_next().await.expect("a chunk").expect("not empty yet");
    assert!(!first.is_empty());
    assert_eq!(fetcher.available_permits(), 0, "held while the body streams");
    while d.try_next().await.expect("body").is_some() {}
    // The caller still holds the download (to flush what it wrote) while the next one starts.
    assert_eq!(fetcher.available_permits(), 1, "returned at the end of the body");
    assert_eq!(d.finish().expect("complete").size, a.size);
    // A failed body returns it too.
    sim.faults().drop_mid_body(1);
    let mut d = fetcher.open(&b.content_url).await.expect("second");
    let mut failed = false;
    while let Some(chunk) = futures::StreamExt::next(&mut d).await {
        if chunk.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the cut body fails");
    assert_eq!(fetcher.available_permits(), 1);
    drop(d);
    assert_eq!(fetcher.available_permits(), 1);
}

#[tokio::test]
async fn closing_stops_waiting_and_new_downloads_but_not_open_ones() {
    let (sim, fetcher) = setup(ContentMode::Direct, 1).await;
    let org = sim.add_organizer();
    let (a, b) = (sim.add_recording(&org, 300_000), sim.add_recording(&org, 10));
    let mut open = fetcher.open(&a.content_url).await.expect("first");
    let waiting = fetcher.open(&b.content_url);
    tokio::pin!(waiting);
    assert!(futures::poll!(waiting.as_mut()).is_pending(), "no slot free");
    fetcher.clone().close();
    let err = waiting.await.expect_err("closed while waiting");
    assert!(matches!(err, FetchError::Closed) && !err.is_retryable(), "{err:?}");
    assert!(matches!(fetcher.open(&b.content_url).await, Err(FetchError::Closed)));
    // The download that was open streams on to its end.
    let mut size = 0;
    while let Some(chunk) = open.try_next().await.expect("body") {
        size += chunk.len() as u64;
    }
    assert_eq!(open.finish().expect("complete").size, a.size);
    assert_eq!(size, a.size);
}

#[tokio::test]
async fn payment_required_on_content_is_fatal() {
    let (sim, fetcher) = setup(ContentMode::Direct, 1).await;
    let rec = sim.add_recording(&sim.add_organizer(), 10);
    sim.faults().payment_required(true);
    let err = fetcher.open(&rec.content_url).await.expect_err("402");
    assert!(
        matches!(err, FetchError::Graph(DeltaError::PaymentRequired { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn without_hashing_lengths_are_still_checked() {
    let (sim, fetcher) = setup(ContentMode::Direct, 1).await;
    let fetcher = fetcher.hashing(false);
    let rec = sim.add_recording(&sim.add_organizer(), 2_000_000);
    let (body, fetched) = fetch_all(&fetcher, &rec.content_url).await.expect("download");
    assert_eq!((fetched.sha256, fetched.size), (None, rec.size));
    assert_eq!(body.len() as u64, rec.size);
    sim.faults().drop_mid_body(1);
    assert!(
        fetch_all(&fetcher, &rec.content_url).await.is_err(),
        "a short body is still an error"
    );
}

/// Every failure the content path meets has one class: what the queue does with the item.
#[tokio::test]
async fn every_failure_has_its_class() {
    use recarch_fetch::FailureClass::{Fatal, Permanent, Transient};
    let (sim, fetcher) = setup(ContentMode::Direct, 4).await;
    let org = sim.add_organizer();
    let class_of = |r: Result<(Vec<u8>, recarch_fetch::Fetched), FetchError>| r.expect_err("fails").class();

    // 403, 404 and 410 on content are permanent.
    for status in [403, 404, 410] {
        let rec = sim.add_recording(&org, 1_000);
        sim.faults().content_status(&rec.id, Some(status));
        assert_eq!(
            class_of(fetch_all(&fetcher, &rec.content_url).await),
            Permanent,
            "{status}"
        );
    }
    // 429, 500, 502, 503, 504 that outlast the retries are transient.
    for status in [429, 500, 502, 503, 504] {
        let rec = sim.add_recording(&org, 1_000);
        sim.faults().content_status(&rec.id, Some(status));
        let err = fetch_all(&fetcher, &rec.content_url).await.expect_err("fails");
        assert_eq!(err.class(), Transient, "{status}: {err}");
    }
    // A body cut mid-way, and its checks: transient (a body failing on every attempt is the
    // caller's call: see the pipeline).
    let rec = sim.add_recording(&org, 500_000);
    sim.faults().content_always_truncated(&rec.id, true);
    let err = fetch_all(&fetcher, &rec.content_url).await.expect_err("cut");
    assert_eq!(err.class(), Transient);
    assert!(err.is_body_failure(), "{err}");
    // Off-origin: permanent, never fetched.
    let err = fetch_all(&fetcher, "https://elsewhere.example/content")
        .await
        .expect_err("refused");
    assert_eq!(err.class(), Permanent);
    // 402: fatal.
    sim.faults().payment_required(true);
    let rec = sim.add_recording(&org, 1_000);
    assert_eq!(class_of(fetch_all(&fetcher, &rec.content_url).await), Fatal);
    sim.faults().payment_required(false);

    // Connection refused and timeouts: transient.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let refused_url = Url::parse(&format!("http://{}/v1.0/x", closed.local_addr().expect("addr"))).expect("url");
    drop(closed);
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_url = Url::parse(&format!("http://{}/v1.0/x", silent.local_addr().expect("addr"))).expect("url");
    let quick = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    for (url, client) in [
        (refused_url, reqwest::Client::new()),
        (
            silent_url,
            reqwest::Client::builder()
                .timeout(Duration::from_millis(200))
                .build()
                .expect("client"),
        ),
    ] {
        let http = GraphHttp::new(
            client,
            Arc::new(recarch_delta::auth::StaticToken::new("t")),
            &url,
            quick.clone(),
        );
        let fetcher = Fetcher::new(http, reqwest::Client::new(), 1);
        let err = fetch_all(&fetcher, url.as_str()).await.expect_err("no answer");
        assert_eq!(err.class(), Transient, "{err}");
    }
}
