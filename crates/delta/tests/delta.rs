//! The delta client against the Graph simulator over real loopback HTTP.

use std::collections::HashSet;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use recarch_delta::auth::{
    AuthError, ClientCredentials, ClientCredentialsConfig, Secret, StaticToken, TokenProvider, scope_for,
};
use recarch_delta::retry::RetryPolicy;
use recarch_delta::{
    CallRecording, Contact, Continuation, DeltaClient, DeltaError, DeltaItem, GraphHttp, Page, PageRequest,
    RemovedReason, resources,
};
use recarch_graph_sim::{GraphSim, SimConfig, Target};
use url::Url;

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(2),
        max_total: Duration::from_secs(30),
    }
}

async fn sim(page_size: usize) -> GraphSim {
    GraphSim::start(SimConfig {
        page_size,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn credentials(sim: &GraphSim, secret: &str) -> ClientCredentials {
    let base = Url::parse(&sim.base_url()).expect("base url");
    ClientCredentials::new(
        reqwest::Client::new(),
        ClientCredentialsConfig {
            authority_url: Url::parse(&sim.authority_url()).expect("authority"),
            tenant_id: sim.config().tenant_id.clone(),
            client_id: sim.config().client_id.clone(),
            proof: recarch_delta::credentials::ClientProof::Secret(Secret::new(secret)),
            scope: scope_for(&base),
            refresh_margin: Duration::from_secs(60),
            retry: fast_policy(),
        },
    )
    .expect("valid endpoint")
}

fn client(sim: &GraphSim, tokens: Arc<dyn TokenProvider>) -> (DeltaClient, Url) {
    let base = Url::parse(&sim.base_url()).expect("base url");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    (
        DeltaClient::new(GraphHttp::new(http, tokens, &base, fast_policy())),
        base,
    )
}

/// A simulator with pages of `page_size` and one organizer, a client signed in with the right
/// secret, its base URL, and the request for the organizer's first page of recordings.
async fn one_organizer(page_size: usize) -> (GraphSim, String, DeltaClient, Url, PageRequest) {
    let sim = sim(page_size).await;
    let org = sim.add_organizer();
    let (client, base) = client(&sim, Arc::new(credentials(&sim, "sim-secret")));
    let first = PageRequest::First(resources::recordings_request(&base, &org, None));
    (sim, org, client, base, first)
}

/// The link the last of `pages` ends in.
fn last_link<T>(pages: &[Page<T>]) -> String {
    pages
        .last()
        .expect("page")
        .continuation
        .link()
        .expect("a link")
        .to_owned()
}

fn ids<T>(pages: &[Page<T>], id: impl Fn(&T) -> String) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.items.iter())
        .filter_map(|i| match i {
            DeltaItem::Present { item, .. } => Some(id(item)),
            _ => None,
        })
        .collect()
}

async fn round(client: &DeltaClient, start: PageRequest) -> Vec<Page<CallRecording>> {
    client
        .pages::<CallRecording>(start)
        .try_collect()
        .await
        .expect("round completes")
}

#[tokio::test]
async fn a_round_pages_to_its_delta_link_and_the_next_round_has_only_new_items() {
    let (sim, org, client, _, first) = one_organizer(3).await;
    let initial: Vec<String> = (0..8).map(|_| sim.add_recording(&org, 10).id).collect();

    let pages = round(&client, first).await;
    assert_eq!(ids(&pages, |r| r.id.clone()), initial);
    assert_eq!(pages.len(), 3);
    assert!(
        pages[..2]
            .iter()
            .all(|p| matches!(p.continuation, Continuation::Next(_)))
    );
    let Continuation::Delta(delta) = &pages[2].continuation else {
        panic!("last page carries the deltaLink")
    };
    // The links Graph hands out vary in shape; all are followed verbatim.
    let links: Vec<&str> = pages.iter().filter_map(|p| p.continuation.link()).collect();
    assert!(links.iter().any(|l| l.contains("users('")), "{links:?}");
    assert!(links.iter().any(|l| l.contains("/users/")), "{links:?}");
    assert!(
        links.iter().any(|l| l.contains('%')),
        "tokens carry percent-escapes: {links:?}"
    );
    for id in &initial {
        assert!(id.contains('/') || id.contains('+'), "ids look like Graph's: {id}");
    }

    // Nothing new: the deltaLink yields an empty round.
    let again = round(&client, PageRequest::Link(delta.0.clone())).await;
    assert!(ids(&again, |r| r.id.clone()).is_empty());
    let Continuation::Delta(delta2) = &again.last().expect("a page").continuation else {
        panic!("round ends in a deltaLink")
    };
    let added = sim.add_recording(&org, 10).id;
    let next = round(&client, PageRequest::Link(delta2.0.clone())).await;
    assert_eq!(ids(&next, |r| r.id.clone()), vec![added]);
}

#[tokio::test]
async fn resuming_from_a_saved_next_link_finishes_the_round() {
    let (sim, org, client, _, first) = one_organizer(2).await;
    let all: Vec<String> = (0..7).map(|_| sim.add_recording(&org, 10).id).collect();
    let (p1, p2) = {
        let mut pages = pin!(client.pages::<CallRecording>(first));
        let p1 = pages.next().await.expect("page").expect("ok");
        let p2 = pages.next().await.expect("page").expect("ok");
        (p1, p2)
    };
    let checkpoint = p2.continuation.link().expect("a link").to_owned();
    // A later process resumes from the checkpoint alone.
    let rest = round(&client, PageRequest::Link(checkpoint)).await;
    let mut seen = ids(&[p1, p2], |r| r.id.clone());
    seen.extend(ids(&rest, |r| r.id.clone()));
    assert_eq!(seen, all);
}

#[tokio::test]
async fn empty_pages_and_duplicates_are_passed_through() {
    let (sim, org, client, _, first) = one_organizer(2).await;
    let all: HashSet<String> = (0..5).map(|_| sim.add_recording(&org, 10).id).collect();
    sim.faults().empty_pages(true);
    sim.faults().duplicate_items(true);
    let pages = round(&client, first).await;
    assert!(
        pages
            .iter()
            .any(|p| p.items.is_empty() && matches!(p.continuation, Continuation::Next(_)))
    );
    let seen = ids(&pages, |r| r.id.clone());
    assert!(seen.len() > all.len(), "duplicates present");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), all);
}

#[tokio::test]
async fn expired_sync_state_is_a_sync_reset() {
    for (code, with_location) in [
        ("SyncStateNotFound", false),
        ("syncStateNotFound", true),
        ("resyncRequired", true),
    ] {
        let (sim, org, client, _, first) = one_organizer(2).await;
        for _ in 0..3 {
            sim.add_recording(&org, 10);
        }
        let pages = round(&client, first).await;
        let delta = last_link(&pages);
        sim.faults().expire_sync_state(code, with_location);
        match client.page::<CallRecording>(&PageRequest::Link(delta)).await {
            Err(DeltaError::SyncReset {
                code: got, location, ..
            }) => {
                assert_eq!(got, code);
                assert_eq!(location.is_some(), with_location);
                if let Some(location) = location {
                    // The fresh query Graph offers works.
                    let restarted = round(&client, PageRequest::Link(location)).await;
                    assert_eq!(ids(&restarted, |r| r.id.clone()).len(), 3);
                }
            }
            other => panic!("expected SyncReset, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after_and_bounded() {
    let (sim, org, client, _, first) = one_organizer(10).await;
    sim.add_recording(&org, 10);
    sim.faults().throttle(Target::Delta, 429, Some(1), 2);
    let started = std::time::Instant::now();
    let page = client
        .page::<CallRecording>(&first)
        .await
        .expect("succeeds after two 429s");
    assert_eq!(page.items.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(sim.stats().throttled, 2);

    // Without Retry-After: jittered backoff, and a bounded number of attempts.
    sim.faults().throttle(Target::Delta, 503, None, 100);
    match client.page::<CallRecording>(&first).await {
        Err(DeltaError::Throttled { attempts, .. }) => assert_eq!(attempts, 4),
        other => panic!("expected Throttled, got {other:?}"),
    }
}

#[tokio::test]
async fn an_expired_token_is_replaced_once() {
    let (sim, org, client, _, first) = one_organizer(10).await;
    sim.add_recording(&org, 10);
    client.page::<CallRecording>(&first).await.expect("first page");
    assert_eq!(sim.stats().token_requests, 1, "token cached");
    sim.faults().expire_access_tokens();
    client.page::<CallRecording>(&first).await.expect("refreshed after 401");
    assert_eq!(sim.stats().token_requests, 2);

    // A token Graph keeps refusing: one refresh, then Unauthorized.
    let (bad, _) = client_with_static(&sim, "forged");
    match bad.page::<CallRecording>(&first).await {
        Err(DeltaError::Unauthorized { body, .. }) => assert_eq!(body.code, "InvalidAuthenticationToken"),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

fn client_with_static(sim: &GraphSim, token: &str) -> (DeltaClient, Url) {
    client(sim, Arc::new(StaticToken::new(token)))
}

#[tokio::test]
async fn refused_credentials_carry_the_server_code_and_not_the_secret() {
    let sim = sim(10).await;
    let provider = credentials(&sim, "definitely-wrong");
    match provider.token().await {
        Err(e @ AuthError::Rejected { .. }) => {
            let text = e.to_string();
            assert!(text.contains("invalid_client"), "{text}");
            assert!(!text.contains("definitely-wrong"), "{text}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn payment_required_is_its_own_error() {
    let (sim, _, client, _, first) = one_organizer(10).await;
    sim.faults().payment_required(true);
    let err = client.page::<CallRecording>(&first).await.expect_err("402");
    assert!(matches!(err, DeltaError::PaymentRequired { .. }), "{err:?}");
    assert!(err.is_fatal());
}

#[tokio::test]
async fn links_off_the_graph_origin_are_refused() {
    let sim = sim(10).await;
    let (client, _) = client(&sim, Arc::new(credentials(&sim, "sim-secret")));
    let evil = format!("{}/users/x/onlineMeetings/delta", sim.download_origin());
    let err = client
        .page::<CallRecording>(&PageRequest::Link(evil))
        .await
        .expect_err("refused");
    assert!(matches!(err, DeltaError::OffOrigin { .. }), "{err:?}");
    assert_eq!(sim.stats().download_requests, 0);
    let err = client
        .page::<CallRecording>(&PageRequest::Link("not a url".into()))
        .await
        .expect_err("refused");
    assert!(matches!(err, DeltaError::InvalidLink { .. }), "{err:?}");
}

#[tokio::test]
async fn start_date_time_filters_the_first_round() {
    let (sim, org, client, base, _) = one_organizer(10).await;
    let recs: Vec<_> = (0..4).map(|_| sim.add_recording(&org, 10)).collect();
    let cut = &recs[2].created;
    let pages = round(
        &client,
        PageRequest::First(resources::recordings_request(&base, &org, Some(cut))),
    )
    .await;
    let got = ids(&pages, |r| r.id.clone());
    assert_eq!(got, vec![recs[2].id.clone(), recs[3].id.clone()]);
}

#[tokio::test]
async fn contacts_delta_with_select_page_size_and_removed_items() {
    let sim = sim(10).await;
    let (user, folder) = ("5f1c0e2a-1111-4222-8333-944455556666", "AAMkAGI2TG93AAA=");
    let a = sim.add_contact(user, folder, "Ada Lovelace");
    let b = sim.add_contact(user, folder, "Charles Babbage");
    let c = sim.add_contact(user, folder, "Grace Hopper");
    let (client, base) = client(&sim, Arc::new(credentials(&sim, "sim-secret")));
    let first = resources::contacts_request(&base, user, folder, &["displayName"], Some(2));
    let pages: Vec<Page<Contact>> = client
        .pages(PageRequest::First(first))
        .try_collect()
        .await
        .expect("round");
    assert_eq!(pages.len(), 2, "odata.maxpagesize=2 over 3 contacts");
    assert_eq!(ids(&pages, |c| c.id.clone()), vec![a.clone(), b.clone(), c.clone()]);
    for p in &pages {
        for item in &p.items {
            let DeltaItem::Present { item, raw } = item else {
                panic!("live contacts")
            };
            assert!(item.display_name.is_some());
            assert!(raw.get("emailAddresses").is_none(), "$select applied: {raw}");
        }
    }
    let delta = last_link(&pages);
    sim.remove_contact(user, folder, &a, true);
    sim.remove_contact(user, folder, &b, false);
    sim.update_contact(user, folder, &c, "Rear Admiral Hopper");
    let changes: Vec<Page<Contact>> = client
        .pages(PageRequest::Link(delta))
        .try_collect()
        .await
        .expect("round");
    let items: Vec<&DeltaItem<Contact>> = changes.iter().flat_map(|p| p.items.iter()).collect();
    assert!(
        items
            .iter()
            .any(|i| matches!(i, DeltaItem::Removed { id, reason: RemovedReason::Deleted, .. } if *id == a)),
        "{items:?}"
    );
    assert!(
        items
            .iter()
            .any(|i| matches!(i, DeltaItem::Removed { id, reason: RemovedReason::Changed, .. } if *id == b)),
        "{items:?}"
    );
    assert!(
        items.iter().any(|i| matches!(i, DeltaItem::Present { item, .. } if item.display_name.as_deref() == Some("Rear Admiral Hopper"))),
        "{items:?}"
    );
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    let sim = GraphSim::start(SimConfig {
        token_lifetime: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let org = sim.add_organizer();
    let (client, base) = client(&sim, Arc::new(credentials(&sim, "sim-secret")));
    let first = PageRequest::First(resources::recordings_request(&base, &org, None));
    client.page::<CallRecording>(&first).await.expect("page");
    client.page::<CallRecording>(&first).await.expect("page");
    assert_eq!(sim.stats().token_requests, 1, "cached while fresh");
    // Renewal happens before expiry (here: at half the 2 s lifetime), so Graph never sees an
    // expired token.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.page::<CallRecording>(&first).await.expect("page");
    let stats = sim.stats();
    assert_eq!(stats.token_requests, 2, "renewed");
    assert_eq!(stats.unauthorized, 0, "no request went out with an expired token");
}

#[tokio::test]
async fn gateway_timeouts_are_retried_too() {
    let (sim, org, client, _, first) = one_organizer(10).await;
    sim.add_recording(&org, 10);
    sim.faults().throttle(Target::Delta, 504, None, 2);
    let page = client
        .page::<CallRecording>(&first)
        .await
        .expect("succeeds after two 504s");
    assert_eq!(page.items.len(), 1);
    assert_eq!(sim.stats().throttled, 2);
}

#[tokio::test]
async fn a_retry_after_pauses_every_request_not_just_the_throttled_one() {
    let sim = sim(10).await;
    let orgs: Vec<String> = (0..3).map(|_| sim.add_organizer()).collect();
    let (client, base) = client(&sim, Arc::new(credentials(&sim, "sim-secret")));
    // Warm the token so the token endpoint does not interleave.
    client
        .page::<CallRecording>(&PageRequest::First(resources::recordings_request(
            &base, &orgs[0], None,
        )))
        .await
        .expect("page");
    sim.reset_stats();
    sim.faults().throttle(Target::Delta, 429, Some(1), 1);
    let requests: Vec<PageRequest> = orgs
        .iter()
        .map(|o| PageRequest::First(resources::recordings_request(&base, o, None)))
        .collect();
    let first = client.page::<CallRecording>(&requests[0]);
    let others = async {
        // Sent once the 429 has been seen: they must wait for the same Retry-After.
        tokio::time::sleep(Duration::from_millis(200)).await;
        futures::future::join(
            client.page::<CallRecording>(&requests[1]),
            client.page::<CallRecording>(&requests[2]),
        )
        .await
    };
    let (a, (b, c)) = futures::future::join(first, others).await;
    a.and(b).and(c).expect("all succeed");
    let requests = sim.stats().requests;
    let throttled_at = requests.iter().find(|r| r.status == 429).expect("a 429").at;
    for r in requests.iter().filter(|r| r.status == 200) {
        let after = r.at.duration_since(throttled_at);
        assert!(
            after >= Duration::from_millis(950),
            "a request went out {after:?} after the 429"
        );
    }
}

#[tokio::test]
async fn oversized_pages_are_refused_not_buffered() {
    // A hostile server announcing a 1 GiB JSON page.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{\"value\":[")
                .await;
        }
    });
    let base = Url::parse(&format!("http://{addr}/beta")).expect("url");
    let http = GraphHttp::new(
        reqwest::Client::new(),
        Arc::new(StaticToken::new("t")),
        &base,
        fast_policy(),
    );
    let client = DeltaClient::new(http);
    let err = client
        .page::<CallRecording>(&PageRequest::First(resources::recordings_request(&base, "o", None)))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, DeltaError::Protocol { reason, .. } if reason.contains("larger than")),
        "{err:?}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Whatever the page size, number of recordings and quirks, a round yields every
    /// recording, and resuming from any page's checkpoint loses nothing.
    #[test]
    fn paging_yields_every_item_from_any_checkpoint(
        page_size in 1usize..7,
        count in 0usize..20,
        empty in proptest::bool::ANY,
        resume_after in 0usize..8,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        rt.block_on(async {
            let (sim, org, client, _, first) = one_organizer(page_size).await;
            let all: Vec<String> = (0..count).map(|_| sim.add_recording(&org, 1).id).collect();
            sim.faults().empty_pages(empty);
            let pages = round(&client, first).await;
            assert_eq!(ids(&pages, |r| r.id.clone()), all);
            // Resume from the checkpoint after page `resume_after` (if it is mid-round).
            if let Some(cut) = pages.get(resume_after) {
                if let Continuation::Next(link) = &cut.continuation {
                    let rest = round(&client, PageRequest::Link(link.0.clone())).await;
                    let mut seen = ids(&pages[..=resume_after], |r| r.id.clone());
                    seen.extend(ids(&rest, |r| r.id.clone()));
                    assert_eq!(seen, all);
                }
            }
        });
    }
}

/// A certificate credential re-reads its files when they change (rotation without a restart),
/// and keeps the last good material while a rotation is half-written.
#[test]
fn certificate_files_are_reloaded_when_rotated() {
    use recarch_delta::credentials::{AssertionSource, CertificateAssertion};
    use recarch_graph_sim::test_keys::test_certificate;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tls.pem");
    let (first, second) = (test_certificate(11), test_certificate(12));
    std::fs::write(&file, first.pem_bundle()).expect("write");
    let credential = CertificateAssertion::new(&file, None, None).expect("valid");
    let header = |jwt: &str| -> serde_json::Value {
        use base64::Engine as _;
        let head = jwt.split('.').next().expect("header");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(head)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    let a = credential
        .assertion("client", "https://login.example/t/oauth2/v2.0/token")
        .expect("signs");
    assert_eq!(header(a.expose())["x5t#S256"], first.x5t_s256().as_str());
    // Rotated: a different size (or mtime) makes the next assertion use the new certificate.
    std::fs::write(&file, second.pem_bundle() + "\n").expect("write");
    let b = credential.assertion("client", "aud").expect("signs");
    assert_eq!(header(b.expose())["x5t#S256"], second.x5t_s256().as_str());
    // Half-written: the last good material stays in use.
    std::fs::write(&file, "-----BEGIN CERTIFICATE-----\ntruncated").expect("write");
    let c = credential.assertion("client", "aud").expect("still signs");
    assert_eq!(header(c.expose())["x5t#S256"], second.x5t_s256().as_str());
}
