//! Integration tests: real HTTP against the simulator with reqwest.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use recarch_graph_sim::test_keys::{self, TestCertificate};
use recarch_graph_sim::{
    AssertionRejection, CertificateError, ContentMode, CredentialRejection, GraphSim, Origin, RecordingInfo,
    RedirectStyle, RetryAfter, SimConfig, SyncLocation, Target, TranscriptInfo, UserType,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn sim_with(f: impl FnOnce(&mut SimConfig)) -> GraphSim {
    let mut cfg = SimConfig::default();
    f(&mut cfg);
    GraphSim::start(cfg).await.expect("sim starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A simulator configured by `f`, a [`client`] (redirects not followed)
/// and an access token it issued.
async fn signed_in(f: impl FnOnce(&mut SimConfig)) -> (GraphSim, reqwest::Client, String) {
    signed_in_with(client(), f).await
}

/// Like [`signed_in`], with the client `c`.
async fn signed_in_with(c: reqwest::Client, f: impl FnOnce(&mut SimConfig)) -> (GraphSim, reqwest::Client, String) {
    let sim = sim_with(f).await;
    let t = token(&sim, &c).await;
    (sim, c, t)
}

fn form(sim: &GraphSim) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", sim.config().client_id.clone()),
        ("client_secret", sim.config().client_secret.clone()),
        ("scope", sim.scope()),
    ]
}

async fn post_token(c: &reqwest::Client, url: &str, form: &[(&'static str, String)]) -> (StatusCode, Value) {
    let r = c.post(url).form(form).send().await.expect("token request");
    let status = r.status();
    (status, r.json().await.expect("json body"))
}

async fn token(sim: &GraphSim, c: &reqwest::Client) -> String {
    let (status, body) = post_token(c, &sim.token_url(), &form(sim)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().expect("access_token").to_owned()
}

/// `GET url` with the bearer token, not yet read.
async fn send(c: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    c.get(url).bearer_auth(token).send().await.expect("request")
}

/// `GET url` with the bearer token, if any, and one more header, not yet
/// read.
async fn send_with(c: &reqwest::Client, url: &str, token: Option<&str>, header: (&str, &str)) -> reqwest::Response {
    let r = c.get(url).header(header.0, header.1);
    let r = match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    r.send().await.expect("request")
}

/// The whole body of `GET url` with the bearer token.
async fn whole_body(c: &reqwest::Client, url: &str, token: &str) -> bytes::Bytes {
    send(c, url, token).await.bytes().await.expect("complete body")
}

/// `GET url` with the bearer token by a client that follows redirects the
/// standard way: the final answer, which must be `200 OK`, not yet read.
async fn follow_redirects(url: &str, token: &str) -> reqwest::Response {
    let r = send(&reqwest::Client::new(), url, token).await;
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r
}

async fn get(c: &reqwest::Client, url: &str, token: &str) -> (StatusCode, HeaderMap, Value) {
    let r = send(c, url, token).await;
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("json ({e}): {text}"))
    };
    (status, headers, v)
}

/// The `@odata.nextLink` of a page.
fn next_link(body: &Value) -> String {
    body["@odata.nextLink"].as_str().expect("nextLink").to_owned()
}

/// The names of an object's properties.
fn keys(item: &Value) -> HashSet<&str> {
    item.as_object().expect("object").keys().map(String::as_str).collect()
}

/// Every page of a listing from `url` (each `200 OK` JSON), following
/// each `@odata.nextLink` verbatim until a page has none: the pages' bodies,
/// and the nextLinks followed.
async fn follow(c: &reqwest::Client, url: &str, token: &str) -> (Vec<Value>, Vec<String>) {
    let mut bodies = Vec::new();
    let mut links = Vec::new();
    let mut url = url.to_owned();
    for _ in 0..1000 {
        let (status, headers, body) = get(c, &url, token).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        let content_type = headers["content-type"].to_str().expect("ascii");
        assert!(content_type.starts_with("application/json"), "{headers:?}");
        assert!(body["@odata.context"].is_string(), "{body}");
        let next = body.get("@odata.nextLink").and_then(Value::as_str).map(str::to_owned);
        bodies.push(body);
        match next {
            Some(n) => {
                links.push(n.clone());
                url = n;
            }
            None => return (bodies, links),
        }
    }
    panic!("paging did not end");
}

/// Each page's `value`.
fn values(bodies: &[Value]) -> Vec<Vec<Value>> {
    bodies
        .iter()
        .map(|b| b["value"].as_array().expect("value").clone())
        .collect()
}

/// Follows a round to its deltaLink (every page but the last has a nextLink
/// and no deltaLink): (items, nextLinks, deltaLink).
async fn round(c: &reqwest::Client, url: &str, token: &str) -> (Vec<Value>, Vec<String>, String) {
    let (bodies, nexts) = follow(c, url, token).await;
    let (last, before) = bodies.split_last().expect("a page");
    assert!(
        before.iter().all(|b| b.get("@odata.deltaLink").is_none()),
        "exactly one link expected: {before:?}"
    );
    let delta = last["@odata.deltaLink"].as_str().expect("a deltaLink or a nextLink");
    (values(&bodies).concat(), nexts, delta.to_owned())
}

/// Every page of a listing that is no delta round (no page has a
/// deltaLink): each page's items, and the nextLinks followed.
async fn pages(c: &reqwest::Client, url: &str, token: &str) -> (Vec<Vec<Value>>, Vec<String>) {
    let (bodies, links) = follow(c, url, token).await;
    for body in &bodies {
        assert!(body.get("@odata.deltaLink").is_none(), "{body}");
    }
    (values(&bodies), links)
}

/// Like [`pages`], with the items of every page in order.
async fn all_pages(c: &reqwest::Client, url: &str, token: &str) -> (Vec<Value>, Vec<String>) {
    let (pages, links) = pages(c, url, token).await;
    (pages.concat(), links)
}

#[path = "sim/adhoc.rs"]
mod adhoc;

/// The ids of recordings the simulator created.
fn ids_of(recs: &[RecordingInfo]) -> Vec<String> {
    recs.iter().map(|r| r.id.clone()).collect()
}

/// The ids of transcripts the simulator created.
fn tids(ts: &[TranscriptInfo]) -> Vec<String> {
    ts.iter().map(|t| t.id.clone()).collect()
}

/// A new organizer with `n` recordings of one byte, oldest first.
fn organizer_with(sim: &GraphSim, n: usize) -> (String, Vec<RecordingInfo>) {
    let org = sim.add_organizer();
    let recs = (0..n).map(|_| sim.add_recording(&org, 1)).collect();
    (org, recs)
}

/// Checks a listed `microsoft.graph.{type_name}` against what the simulator
/// created: an id a client must escape, its meeting and creation time.
fn assert_item(item: &Value, type_name: &str, meeting_id: &str, created: &str) {
    let id = item["id"].as_str().expect("id");
    assert!(id.contains('+') && id.contains('/') && id.ends_with('='), "{id}");
    assert_eq!(item["@odata.type"], format!("#microsoft.graph.{type_name}"));
    assert_eq!(item["meetingId"], meeting_id, "{item}");
    assert_eq!(item["createdDateTime"], created, "{item}");
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["id"].as_str().expect("id").to_owned()).collect()
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_grant_and_errors() {
    let sim = sim_with(|_| {}).await;
    let c = client();
    let (status, body) = post_token(&c, &sim.token_url(), &form(&sim)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["ext_expires_in"], 3600);
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() > 20));

    // Unknown tenant.
    let url = format!("{}/contoso-tenant/oauth2/v2.0/token", sim.authority_url());
    let (status, body) = post_token(&c, &url, &form(&sim)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["error_codes"][0], 90002);
    let desc = body["error_description"].as_str().expect("description");
    assert!(
        desc.starts_with("AADSTS90002: Tenant 'contoso-tenant' not found."),
        "{desc}"
    );
    for f in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[f].is_string(), "{f} missing: {body}");
    }

    let cases: [(&str, &str, StatusCode, &str, u64); 4] = [
        (
            "client_id",
            "someone-else",
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
        ),
        (
            "client_secret",
            "wrong",
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
        ),
        (
            "scope",
            "https://graph.microsoft.com/.default",
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
        ),
        (
            "grant_type",
            "password",
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
        ),
    ];
    for (field, value, status, error, code) in cases {
        let mut f = form(&sim);
        for (k, v) in &mut f {
            if *k == field {
                *v = value.to_owned();
            }
        }
        let (s, body) = post_token(&c, &sim.token_url(), &f).await;
        assert_eq!(s, status, "{field}: {body}");
        assert_eq!(body["error"], error, "{field}: {body}");
        assert_eq!(body["error_codes"][0], code, "{field}: {body}");
        let desc = body["error_description"].as_str().expect("description");
        assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    }
    let mut f = form(&sim);
    f.retain(|(k, _)| *k != "client_secret");
    let (s, body) = post_token(&c, &sim.token_url(), &f).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    // JSON instead of a form: parameters are not seen.
    let r = c
        .post(sim.token_url())
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error_codes"][0], 900144);
    assert_eq!(sim.stats().token_requests, 8);
}

#[tokio::test]
async fn unauthorized_without_or_with_expired_token() {
    let sim = sim_with(|c| c.token_lifetime = Duration::from_secs(1)).await;
    let c = client();
    let org = sim.add_organizer();
    let url = sim.recordings_delta_url(&org);

    let r = c.get(&url).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["innerError"]["request-id"].is_string());
    assert!(body["error"]["innerError"]["date"].is_string());

    let t = token(&sim, &c).await;
    let (status, _, body) = get(&c, &url, &t).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = get(&c, &url, "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = get(&c, &url, &t).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["error"]["message"],
        "Access token has expired or is not yet valid."
    );

    // Revocation by fault.
    let sim = sim_with(|_| {}).await;
    let org = sim.add_organizer();
    let url = sim.recordings_delta_url(&org);
    let t = token(&sim, &c).await;
    assert_eq!(get(&c, &url, &t).await.0, StatusCode::OK);
    sim.faults().expire_access_tokens();
    assert_eq!(get(&c, &url, &t).await.0, StatusCode::UNAUTHORIZED);
    let t2 = token(&sim, &c).await;
    assert_eq!(get(&c, &url, &t2).await.0, StatusCode::OK);
    assert_eq!(sim.stats().unauthorized, 1);
}

#[tokio::test]
async fn paging_link_shapes_and_incremental_rounds() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let org = sim.add_organizer();
    let other = sim.add_organizer();
    assert_ne!(org, other);
    assert!(is_guid(&org), "{org}");
    let mut expected = Vec::new();
    for i in 0..25 {
        expected.push(sim.add_recording(&org, 1000 + i).id);
        sim.add_recording(&other, 10);
    }

    let (items, nexts, delta) = round(&c, &sim.recordings_delta_url(&org), &t).await;
    assert_eq!(nexts.len(), 2, "25 items in pages of 10");
    assert_eq!(ids(&items), expected);
    let created: Vec<&str> = items
        .iter()
        .map(|i| i["createdDateTime"].as_str().expect("created"))
        .collect();
    assert!(created.windows(2).all(|w| w[0] < w[1]), "{created:?}");
    for (item, info) in items.iter().zip(sim.recordings(&org)) {
        assert_item(item, "callRecording", &info.meeting_id, &info.created);
        assert_eq!(item["recordingContentUrl"], info.content_url.as_str());
        assert_eq!(item["meetingOrganizer"]["user"]["id"], org.as_str());
        assert_eq!(
            item["meetingOrganizer"]["user"]["tenantId"],
            sim.config().tenant_id.as_str()
        );
        assert!(info.content_url.contains("%2B") && info.content_url.contains("%3D"));
    }
    // Both nextLink shapes, raw percent-escapes in tokens.
    assert!(nexts[0].contains(&format!("/users/{org}/onlineMeetings/getAllRecordings(")));
    assert!(nexts[0].contains("/delta?$skiptoken="), "{}", nexts[0]);
    assert!(nexts[1].contains(&format!("/users('{org}')/onlineMeetings/")));
    assert!(nexts[1].contains("/delta?skipToken="), "{}", nexts[1]);
    for l in nexts.iter().chain([&delta]) {
        assert!(l.starts_with(&sim.base_url()), "{l}");
        assert!(l.contains("%2B") && l.contains("%2F") && l.contains("%3D"), "{l}");
    }
    assert!(delta.contains("?$deltatoken="), "{delta}");

    // Nothing new: an empty round.
    let (items, nexts, delta2) = round(&c, &delta, &t).await;
    assert!(items.is_empty() && nexts.is_empty());
    assert!(delta2.contains("?deltaToken="), "{delta2}");
    assert!(delta2.contains(&format!("/users('{org}')/")));

    // New recordings only; one added mid-round shows up in the following round.
    let new: Vec<String> = (0..3).map(|_| sim.add_recording(&org, 5).id).collect();
    let (first_page_status, _, first_page) = get(&c, &delta2, &t).await;
    assert_eq!(first_page_status, StatusCode::OK);
    let late = sim.add_recording(&org, 5).id;
    assert_eq!(ids(first_page["value"].as_array().expect("value")), new);
    let delta3 = first_page["@odata.deltaLink"].as_str().expect("deltaLink");
    let (items, _, _) = round(&c, delta3, &t).await;
    assert_eq!(ids(&items), vec![late]);

    // A deltaLink can be reused.
    let (items, _, _) = round(&c, &delta2, &t).await;
    assert_eq!(items.len(), 4);

    // Same API under v1.0, with `users('..')` and $top.
    let url = format!(
        "{}/v1.0/users('{org}')/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{org}')/delta?$top=7",
        sim.graph_origin()
    );
    let (items, nexts, delta) = round(&c, &url, &t).await;
    assert_eq!(items.len(), 29);
    assert_eq!(nexts.len(), 4, "29 items in pages of 7");
    assert!(delta.contains("/v1.0/"));
    assert!(!nexts.iter().any(|n| n.contains("top")), "$top is carried in tokens");

    // The request log keeps raw targets.
    let stats = sim.stats();
    assert!(
        stats
            .requests
            .iter()
            .any(|r| r.origin == Origin::Graph && r.path_and_query.contains("%2B"))
    );
    assert_eq!(stats.delta_requests, 3 + 1 + 1 + 1 + 1 + 5);
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[tokio::test]
async fn start_date_time_filter_and_bad_requests() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let (org, recs) = organizer_with(&sim, 5);
    // Filter from the third recording's creation time (second precision).
    let cut = &recs[2].created[..19];
    let url = format!(
        "{}/users/{org}/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{org}',startDateTime={cut}Z)/delta",
        sim.base_url()
    );
    let (items, _, delta) = round(&c, &url, &t).await;
    assert_eq!(ids(&items), ids_of(&recs[2..]));
    // Percent-encoded parameters work too, and the filter is carried on.
    let url = format!(
        "{}/users/{org}/onlineMeetings/getAllRecordings(meetingOrganizerUserId=%27{org}%27,startDateTime={}Z)/delta",
        sim.base_url(),
        cut.replace(':', "%3A")
    );
    let (items, _, _) = round(&c, &url, &t).await;
    assert_eq!(items.len(), 3);
    assert!(delta.contains("startDateTime="));

    let bad = [
        (
            format!("{}/users/{org}/onlineMeetings/getAllRecordings()/delta", sim.base_url()),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!(
                "{}/users/{org}/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{org}',startDateTime=yesterday)/delta",
                sim.base_url()
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{}?$top=abc", sim.recordings_delta_url(&org)),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{}?$top=0", sim.recordings_delta_url(&org)),
            StatusCode::BAD_REQUEST,
        ),
        (
            sim.recordings_delta_url("11111111-2222-4333-8444-555555555555"),
            StatusCode::NOT_FOUND,
        ),
        (format!("{}/me/nothing", sim.base_url()), StatusCode::NOT_FOUND),
        (format!("{}/nothing", sim.graph_origin()), StatusCode::NOT_FOUND),
        (
            format!("{}/users/{org}/onlineMeetings/x/recordings/y/content", sim.base_url()),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (url, status) in bad {
        let (s, headers, body) = get(&c, &url, &t).await;
        assert_eq!(s, status, "{url}: {body}");
        assert!(body["error"]["code"].is_string(), "{url}: {body}");
        assert!(
            headers["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("application/json")
        );
    }
}

#[tokio::test]
async fn unknown_and_reencoded_tokens_are_rejected() {
    let (sim, c, t) = signed_in(|c| c.page_size = 2).await;
    let (org, _) = organizer_with(&sim, 5);
    let next = next_link(&get(&c, &sim.recordings_delta_url(&org), &t).await.2);
    assert!(next.contains("%2B"));

    let decoded = next.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=");
    let lowercase = next.replace("%2B", "%2b");
    let double = next.replace("%2B", "%252B");
    let garbage = format!("{}?$skiptoken=bogus", sim.recordings_delta_url(&org));
    let delta_as_skip = next.replace("$skiptoken", "$deltatoken");
    for url in [decoded, lowercase, double, garbage, delta_as_skip] {
        let (s, _, body) = get(&c, &url, &t).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["error"]["code"], "BadRequest");
    }
    let (s, _, body) = get(&c, &next, &t).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn expired_sync_state_answers_410() {
    let (sim, c, t) = signed_in(|c| c.page_size = 2).await;
    let (org, _) = organizer_with(&sim, 3);
    let next = next_link(&get(&c, &sim.recordings_delta_url(&org), &t).await.2);
    let (_, _, body) = get(&c, &next, &t).await;
    let delta = body["@odata.deltaLink"].as_str().expect("deltaLink").to_owned();

    sim.faults().expire_sync_state("resyncRequired", true);
    for url in [&next, &delta] {
        let (s, headers, body) = get(&c, url, &t).await;
        assert_eq!(s, StatusCode::GONE);
        assert_eq!(body["error"]["code"], "resyncRequired");
        let location = headers["location"].to_str().expect("location");
        assert!(location.starts_with(&sim.base_url()), "{location}");
        assert!(!location.contains("token"), "{location}");
        let (items, _, _) = round(&c, location, &t).await;
        assert_eq!(items.len(), 3, "the Location restarts the sync");
    }
    assert_eq!(sim.stats().gone, 2);

    let (_, _, body) = get(&c, &sim.recordings_delta_url(&org), &t).await;
    let fresh = next_link(&body);
    sim.faults().expire_sync_state("SyncStateNotFound", false);
    let (s, headers, body) = get(&c, &fresh, &t).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(body["error"]["code"], "SyncStateNotFound");
    assert!(headers.get("location").is_none());
}

async fn content_bytes(c: &reqwest::Client, url: &str, token: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = c.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.expect("body").to_vec())
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn content_direct_is_deterministic() {
    let (sim, c, t) = signed_in(|c| c.content_mode = ContentMode::Direct).await;
    let org = sim.add_organizer();
    let size = 1_000_003; // several chunks, odd tail
    let rec = sim.add_recording(&org, size);
    let (s, headers, body) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(headers["content-length"], size.to_string().as_str());
    assert_eq!(body.len() as u64, size);
    assert_eq!(Some(body.clone()), sim.content_bytes(&rec.id));
    assert_eq!(Some(sha(&body)), sim.content_sha256(&rec.id));
    assert!(body.iter().any(|&b| b != 0));

    // Same seed → same ids and bytes; other seed → different.
    let same = sim_with(|c| c.content_mode = ContentMode::Direct).await;
    let org2 = same.add_organizer();
    assert_eq!(org2, org);
    let rec2 = same.add_recording(&org2, size);
    assert_eq!(rec2, rec.clone().with_url_base(&sim.base_url(), &same.base_url()));
    assert_eq!(same.content_sha256(&rec2.id), sim.content_sha256(&rec.id));
    let other = sim_with(|c| c.seed = 7).await;
    let rec3 = other.add_recording(&org, size);
    assert_ne!(rec3.id, rec.id);
    assert_ne!(other.content_sha256(&rec3.id), sim.content_sha256(&rec.id));

    // Range requests.
    let r = send_with(&c, &rec.content_url, Some(&t), ("range", "bytes=10-19")).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], format!("bytes 10-19/{size}").as_str());
    assert_eq!(&r.bytes().await.expect("body")[..], &body[10..20]);

    // Without a token: 401.
    let (s, _, _) = content_bytes(&c, &rec.content_url, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let stats = sim.stats();
    assert_eq!(stats.content_requests, 3);
    assert_eq!(stats.content_requests_by_id.get(&rec.id), Some(&2));
    assert_eq!(stats.download_requests, 0);
    assert_eq!(stats.content_bytes_sent, size + 10);
}

trait WithUrlBase {
    fn with_url_base(self, from: &str, to: &str) -> Self;
}

impl WithUrlBase for recarch_graph_sim::RecordingInfo {
    fn with_url_base(mut self, from: &str, to: &str) -> Self {
        self.content_url = self.content_url.replace(from, to);
        self
    }
}

#[tokio::test]
async fn content_redirect_to_download_origin() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 300_000);
    let (s, headers, body) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    assert_eq!(s, StatusCode::FOUND);
    assert!(body.is_empty());
    let location = headers["location"].to_str().expect("location").to_owned();
    assert!(location.starts_with(&format!("{}/download/", sim.download_origin())));

    // The download origin refuses (and counts) Authorization headers.
    let (s, _, _) = content_bytes(&c, &location, Some(&t)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, headers, body) = content_bytes(&c, &location, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(Some(sha(&body)), sim.content_sha256(&rec.id));

    // A tampered signature is refused.
    let mut tampered = location.clone();
    let last = tampered.pop().expect("non-empty");
    tampered.push(if last == '0' { '1' } else { '0' });
    assert_eq!(content_bytes(&c, &tampered, None).await.0, StatusCode::UNAUTHORIZED);

    let stats = sim.stats();
    assert_eq!(stats.auth_header_on_download_origin, 1);
    assert_eq!(stats.download_requests, 3);
    assert_eq!(stats.content_requests, 1);
    assert_eq!(stats.content_requests_by_id.get(&rec.id), Some(&1));
    assert_eq!(stats.content_bytes_sent, 300_000);
    assert_eq!(
        stats.requests.iter().filter(|r| r.origin == Origin::Download).count(),
        3
    );

    // A client following redirects the standard way (reqwest strips the
    // Authorization header across origins) gets the bytes.
    let r = follow_redirects(&rec.content_url, &t).await;
    assert_eq!(r.bytes().await.expect("body").len(), 300_000);
    assert_eq!(sim.stats().auth_header_on_download_origin, 1);

    // Alternate mode: even serials direct, odd redirect.
    let alt = sim_with(|c| c.content_mode = ContentMode::Alternate).await;
    let t = token(&alt, &c).await;
    let a = alt.add_recording("someone", 10);
    let b = alt.add_recording("someone", 10);
    assert_eq!(content_bytes(&c, &a.content_url, Some(&t)).await.0, StatusCode::OK);
    assert_eq!(content_bytes(&c, &b.content_url, Some(&t)).await.0, StatusCode::FOUND);

    // Overridden content URL.
    let off = sim.add_recording_with_content_url(&org, 10, "https://evil.example/x");
    assert_eq!(off.content_url, "https://evil.example/x");
    assert!(sim.content_sha256(&off.id).is_some());
}

#[tokio::test]
async fn drop_mid_body_yields_a_short_body() {
    for mode in [ContentMode::Direct, ContentMode::Redirect] {
        let (sim, c, t) = signed_in_with(reqwest::Client::new(), |c| c.content_mode = mode).await; // c follows redirects
        let size = 2_000_000u64;
        let rec = sim.add_recording("org", size);
        sim.faults().drop_mid_body(1);
        let mut r = send(&c, &rec.content_url, &t).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.content_length(), Some(size));
        let mut got = 0u64;
        let err = loop {
            match r.chunk().await {
                Ok(Some(b)) => got += b.len() as u64,
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        assert!(err.is_some(), "{mode:?}: the body must end in an error");
        assert!(got < size, "{mode:?}: got {got}");
        // The next download is complete.
        let r = send(&c, &rec.content_url, &t).await;
        let body = r.bytes().await.expect("complete body");
        assert_eq!(body.len() as u64, size);
        assert_eq!(sim.stats().content_requests_by_id.get(&rec.id), Some(&2));
    }
}

#[tokio::test]
async fn throttling_then_success() {
    let sim = sim_with(|c| c.content_mode = ContentMode::Direct).await;
    let c = client();
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 10);

    sim.faults().throttle(Target::Token, 503, None, 1);
    let (s, body) = post_token(&c, &sim.token_url(), &form(&sim)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "temporarily_unavailable", "AAD-shaped: {body}");
    let t = token(&sim, &c).await;

    sim.faults().throttle(Target::Delta, 429, Some(3), 2);
    for _ in 0..2 {
        let (s, headers, body) = get(&c, &sim.recordings_delta_url(&org), &t).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "3");
        assert_eq!(body["error"]["code"], "TooManyRequests");
    }
    assert_eq!(get(&c, &sim.recordings_delta_url(&org), &t).await.0, StatusCode::OK);

    sim.faults().throttle(Target::Content, 503, Some(1), 1);
    let (s, headers, _) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(content_bytes(&c, &rec.content_url, Some(&t)).await.0, StatusCode::OK);
    assert_eq!(sim.stats().throttled, 4);
    assert_eq!(sim.stats().content_requests_by_id.get(&rec.id), Some(&1));

    // Download origin throttling.
    let sim = sim_with(|_| {}).await;
    let t = token(&sim, &c).await;
    let rec = sim.add_recording("org", 10);
    let (_, headers, _) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    let location = headers["location"].to_str().expect("location").to_owned();
    sim.faults().throttle(Target::Download, 429, Some(2), 1);
    let (s, headers, _) = content_bytes(&c, &location, None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(content_bytes(&c, &location, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn payment_required() {
    let (sim, c, t) = signed_in(|c| c.content_mode = ContentMode::Direct).await;
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 10);
    sim.faults().payment_required(true);
    let (s, _, body) = get(&c, &sim.recordings_delta_url(&org), &t).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["error"]["code"], "PaymentRequired");
    assert!(body["error"]["message"].as_str().expect("message").contains("metered"));
    assert_eq!(
        content_bytes(&c, &rec.content_url, Some(&t)).await.0,
        StatusCode::PAYMENT_REQUIRED
    );
    sim.faults().clear();
    assert_eq!(get(&c, &sim.recordings_delta_url(&org), &t).await.0, StatusCode::OK);
}

#[tokio::test]
async fn paging_quirks() {
    let (sim, c, t) = signed_in(|c| c.page_size = 3).await;
    let (org, recs) = organizer_with(&sim, 7);
    let all = ids_of(&recs);

    // Empty pages between non-empty ones, still carrying nextLinks.
    sim.faults().empty_pages(true);
    let mut url = sim.recordings_delta_url(&org);
    let mut sizes = Vec::new();
    let delta = loop {
        let (_, _, body) = get(&c, &url, &t).await;
        sizes.push(body["value"].as_array().expect("value").len());
        if let Some(n) = body["@odata.nextLink"].as_str() {
            url = n.to_owned();
        } else {
            break body["@odata.deltaLink"].as_str().expect("deltaLink").to_owned();
        }
    };
    assert_eq!(sizes, [3, 0, 3, 0, 1]);
    sim.faults().clear();

    // Duplicates: each page after the first repeats the previous last item.
    sim.faults().duplicate_items(true);
    let (items, _, _) = round(&c, &sim.recordings_delta_url(&org), &t).await;
    let got = ids(&items);
    assert_eq!(got.len(), 9);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 7);
    assert_eq!(got[3], all[2]);
    sim.faults().clear();

    // Replay of older recordings in the next delta round.
    let newer = sim.add_recording(&org, 1).id;
    sim.faults().replay_older(2);
    let (items, _, delta2) = round(&c, &delta, &t).await;
    assert_eq!(ids(&items), vec![all[0].clone(), all[1].clone(), newer]);
    let (items, _, _) = round(&c, &delta2, &t).await;
    assert!(items.is_empty(), "replay is one-shot");

    // $top drops the first nextLink.
    sim.faults().top_drops_next_link(true);
    let url = format!("{}?$top=2", sim.recordings_delta_url(&org));
    let (_, _, body) = get(&c, &url, &t).await;
    assert_eq!(body["value"].as_array().expect("value").len(), 2);
    assert!(body.get("@odata.nextLink").is_none());
    assert!(body["@odata.deltaLink"].is_string());
    // Without $top the round is complete.
    let (items, _, _) = round(&c, &sim.recordings_delta_url(&org), &t).await;
    assert_eq!(items.len(), 8);
}

/// `Prefer: odata.maxpagesize=2`.
const PREFER_TWO: (&str, &str) = ("Prefer", "odata.maxpagesize=2");

/// The body of a contacts delta page asked for with [`PREFER_TWO`]: served,
/// the preference applied, two items.
async fn page_of_two(r: reqwest::Response) -> Value {
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["preference-applied"], "odata.maxpagesize=2");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["value"].as_array().expect("value").len(), 2, "{body}");
    body
}

#[tokio::test]
async fn contacts_delta() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let user = "adele@contoso.com";
    let folder = "AAMkAGI2TAAA=";
    let ids: Vec<String> = (0..5)
        .map(|i| sim.add_contact(user, folder, &format!("Contact Number{i}")))
        .collect();
    for id in &ids {
        assert!(id.contains('+') && id.contains('/') && id.ends_with('='), "{id}");
    }
    sim.add_contact(user, "other-folder", "Elsewhere");

    let url = format!(
        "{}?$select=displayName,emailAddresses",
        sim.contacts_delta_url(user, folder)
    );
    let body = page_of_two(send_with(&c, &url, Some(&t), PREFER_TWO).await).await;
    let first = body["value"].as_array().expect("value");
    let keys = keys(&first[0]);
    assert_eq!(
        keys,
        HashSet::from(["@odata.type", "@odata.etag", "id", "displayName", "emailAddresses"])
    );
    assert_eq!(first[0]["displayName"], "Contact Number0");
    assert_eq!(first[0]["emailAddresses"][0]["address"], "contact.number0@contoso.com");
    let next = body["@odata.nextLink"].as_str().expect("nextLink");
    // Page size and $select are carried in the token (no Prefer re-sent).
    let (items, nexts, delta) = round(&c, next, &t).await;
    assert_eq!(items.len(), 3);
    assert_eq!(nexts.len(), 1);
    assert!(items.iter().all(|i| i.get("givenName").is_none()));

    sim.update_contact(user, folder, &ids[1], "Renamed Person");
    sim.remove_contact(user, folder, &ids[2], true);
    sim.remove_contact(user, folder, &ids[3], false);
    let newer = sim.add_contact(user, folder, "New Person");
    let (items, _, delta2) = round(&c, &delta, &t).await;
    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(items[0]["id"], ids[1].as_str());
    assert_eq!(items[0]["displayName"], "Renamed Person");
    assert_eq!(items[1]["id"], ids[2].as_str());
    assert_eq!(items[1]["@removed"]["reason"], "deleted");
    assert_eq!(items[2]["@removed"]["reason"], "changed");
    assert_eq!(items[3]["id"], newer.as_str());
    assert!(items[3].get("givenName").is_none(), "$select carried");

    let (items, _, _) = round(&c, &delta2, &t).await;
    assert!(items.is_empty());

    // Full objects without $select; unknown folder → 404; bad $select → 400.
    let (items, _, _) = round(&c, &sim.contacts_delta_url(user, folder), &t).await;
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["givenName"], "Contact");
    assert_eq!(items[0]["parentFolderId"], folder);
    let (s, _, body) = get(&c, &sim.contacts_delta_url(user, "nope"), &t).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    let (s, _, _) = get(
        &c,
        &format!("{}?$select=shoeSize", sim.contacts_delta_url(user, folder)),
        &t,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn hostile_input_never_panics() {
    let sim = sim_with(|_| {}).await;
    let addr = sim.graph_origin().trim_start_matches("http://").to_owned();
    let t = sim.issue_access_token();
    sim.add_contact("x", "f", "Some One");
    sim.add_transcript("x", None, 10);
    let targets = [
        "/beta/users/%FF%FE/onlineMeetings/getAllRecordings(meetingOrganizerUserId=%27%FF%27)/delta",
        "/beta/users('/onlineMeetings/getAllRecordings(/delta",
        "/beta/users/x/onlineMeetings/getAllRecordings(meetingOrganizerUserId='x',startDateTime=99999-99-99)/delta?$top=99999999999999999999999",
        "/beta/users/x/onlineMeetings/getAllRecordings(meetingOrganizerUserId='x')/delta?$skiptoken=%ZZ&$deltatoken=",
        "/beta/users/x/onlineMeetings/%%%/recordings/%/content",
        "/beta/users/x/contactFolders/%C3%28/contacts/delta?$select=%FF",
        "/beta/users/%FF%FE?$select=%FF,,",
        "/beta/users/delta?$skiptoken=%ZZ&$deltatoken=x",
        "/v1.0/groups/%FF/transitiveMembers/microsoft.graph.user?$top=0",
        "/v1.0/groups/x/transitiveMembers?$skiptoken=%%%",
        "/v1.0/groups/",
        "/beta/users/x/onlineMeetings/getAllTranscripts(meetingOrganizerUserId=%27%FF%27)/delta?$top=0",
        "/beta/users/x/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='x')/delta?$skiptoken=%ZZ",
        "/beta/users/x/onlineMeetings/%%%/transcripts/%/content?$format=%FF",
        "/beta/users/x/onlineMeetings/m/transcripts/t/metadataContent",
        "/beta/users/x/onlineMeetings/m/transcripts/t/stream?sig=%FF",
        "/beta/users/x/contactFolders?$top=99999999999999999999999",
        "/beta/users/x/contactFolders/%C3%28/childFolders?$skip=18446744073709551615",
        "/beta/users/x/contactFolders/%C3%28",
        "/beta/users/%FF/contactFolders",
        "/%FF/oauth2/v2.0/token",
        "/beta/",
        "/",
        "//////",
    ];
    for target in targets {
        let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {t}\r\nRange: bytes=99999999999999999999-\r\nPrefer: odata.maxpagesize=-1\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        let head = String::from_utf8_lossy(&out);
        assert!(head.starts_with("HTTP/1.1 4"), "{target}: {head}");
    }
    // Raw bytes that are not UTF-8 in the request line.
    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    s.write_all(b"GET /beta/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 4"));
    // Still serving.
    let c = client();
    let org = sim.add_organizer();
    assert_eq!(get(&c, &sim.recordings_delta_url(&org), &t).await.0, StatusCode::OK);
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_servers() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let url = sim.token_url();
    let clone = sim.clone();
    clone.shutdown().await;
    assert!(c.post(&url).form(&form(&sim)).send().await.is_err());
    assert!(!t.is_empty());
    assert_eq!(sim.stats().token_requests, 1, "stats survive shutdown");

    let sim = sim_with(|_| {}).await;
    let url = sim.token_url();
    let f = form(&sim);
    drop(sim);
    let mut refused = false;
    for _ in 0..50 {
        if c.post(&url).form(&f).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "server must stop after the last handle is dropped");
}

#[tokio::test]
async fn file_index_serves_the_same_bytes_for_generic_tools() {
    let sim = GraphSim::start(SimConfig::default()).await.expect("sim starts");
    let org = sim.add_organizer();
    let a = sim.add_recording(&org, 1234);
    let b = sim.add_recording(&org, 99);
    let http = reqwest::Client::new();
    let files = format!("{}/files", sim.download_origin());
    let (status, _, index) = content_bytes(&http, &format!("{files}/"), None).await;
    assert_eq!(status, StatusCode::OK);
    let index = String::from_utf8(index).expect("text");
    assert!(
        index.contains("href=\"rec-000000.mp4\"") && index.contains("href=\"rec-000001.mp4\""),
        "{index}"
    );
    for (name, rec) in [("rec-000000.mp4", &a), ("rec-000001.mp4", &b)] {
        let (status, _, body) = content_bytes(&http, &format!("{files}/{name}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(Some(body), sim.content_bytes(&rec.id));
    }
    let (status, _, _) = content_bytes(&http, &format!("{files}/rec-000009.mp4"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------
// Failure-policy faults

/// Reads a body to its end or its first error: (bytes received, error).
async fn read_body(mut r: reqwest::Response) -> (u64, Option<reqwest::Error>) {
    let mut got = 0u64;
    loop {
        match r.chunk().await {
            Ok(Some(b)) => got += b.len() as u64,
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

fn aad_code(body: &Value) -> u64 {
    let code = body["error_codes"][0]
        .as_u64()
        .unwrap_or_else(|| panic!("error_codes: {body}"));
    let desc = body["error_description"].as_str().expect("error_description");
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    for f in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[f].is_string(), "{f} missing: {body}");
    }
    code
}

#[tokio::test]
async fn token_throttles_answer_like_entra() {
    let sim = sim_with(|_| {}).await;
    let c = client();
    for (status, retry_after, header) in [
        (429, RetryAfter::Seconds(2), Some("2")),
        (503, RetryAfter::None, None),
        (504, RetryAfter::Seconds(1), Some("1")),
    ] {
        sim.faults().throttle_with(Target::Token, status, retry_after, 1);
        let r = c.post(sim.token_url()).form(&form(&sim)).send().await.expect("request");
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(
            r.headers().get("retry-after").map(|v| v.to_str().expect("ascii")),
            header
        );
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"], "temporarily_unavailable", "{body}");
        assert_eq!(aad_code(&body), 90033);
        token(&sim, &c).await;
    }
    sim.faults().throttle(Target::Token, 500, None, 1);
    let (s, body) = post_token(&c, &sim.token_url(), &form(&sim)).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "server_error");
    assert_eq!(aad_code(&body), 50000);
    assert_eq!(sim.stats().throttled, 4);
}

#[tokio::test]
async fn token_connection_reset_sends_no_response() {
    let sim = sim_with(|_| {}).await;
    let c = client();
    sim.faults().token_connection_reset(2);
    for _ in 0..2 {
        let err = c
            .post(sim.token_url())
            .form(&form(&sim))
            .send()
            .await
            .expect_err("no response");
        assert!(
            err.status().is_none() && !err.is_timeout() && !err.is_connect(),
            "{err:?}"
        );
    }
    token(&sim, &c).await;
    let stats = sim.stats();
    assert_eq!(stats.token_connections_reset, 2);
    assert_eq!(stats.token_requests, 3);
    let statuses: Vec<u16> = stats.requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 0, 200]);

    // On the wire: not one byte of a response, then a reset.
    sim.faults().token_connection_reset(1);
    let addr = sim.graph_origin().trim_start_matches("http://").to_owned();
    let body = "grant_type=client_credentials";
    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let path = sim.token_url().replace(&sim.graph_origin(), "");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let read = s.read_to_end(&mut out).await;
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    let e = read.expect_err("a reset, not a clean close");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
}

#[tokio::test]
async fn rejected_credentials_even_for_the_right_secret() {
    let sim = sim_with(|_| {}).await;
    let c = client();
    let cases = [
        (
            CredentialRejection::InvalidSecret,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
        ),
        (
            CredentialRejection::ExpiredSecret,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000222,
        ),
        (
            CredentialRejection::UnknownClient,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
        ),
        (
            CredentialRejection::DisabledClient,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            7000112,
        ),
        (
            CredentialRejection::UnknownTenant,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
        ),
    ];
    for (rejection, status, error, code) in cases {
        sim.faults().reject_credentials(Some(rejection));
        for _ in 0..2 {
            let (s, body) = post_token(&c, &sim.token_url(), &form(&sim)).await;
            assert_eq!(s, status, "{rejection:?}: {body}");
            assert_eq!(body["error"], error, "{rejection:?}: {body}");
            assert_eq!(aad_code(&body), code, "{rejection:?}");
        }
    }
    sim.faults().reject_credentials(None);
    token(&sim, &c).await;
}

#[tokio::test]
async fn retry_after_as_an_http_date() {
    let (sim, c, t) = signed_in(|c| c.content_mode = ContentMode::Direct).await;
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 10);

    sim.faults().throttle_with(Target::Delta, 429, RetryAfter::Date(120), 1);
    let (s, headers, body) = get(&c, &sim.recordings_delta_url(&org), &t).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "TooManyRequests");
    let v = headers["retry-after"].to_str().expect("ascii");
    // IMF-fixdate: "Wed, 21 Oct 2026 07:28:00 GMT".
    assert!(v.len() == 29 && v.ends_with(" GMT") && v.as_bytes()[3] == b',', "{v}");
    let at = chrono::DateTime::parse_from_rfc2822(v).expect("an HTTP-date");
    let ahead = (at.with_timezone(&Utc) - Utc::now()).num_seconds();
    assert!((118..=121).contains(&ahead), "{v} is {ahead} s ahead");
    assert_eq!(get(&c, &sim.recordings_delta_url(&org), &t).await.0, StatusCode::OK);

    sim.faults()
        .throttle_with(Target::Content, 503, RetryAfter::Seconds(4), 1);
    let (s, headers, _) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "4");
    sim.faults().throttle_with(Target::Content, 503, RetryAfter::None, 1);
    let (s, headers, _) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("retry-after").is_none());
    assert_eq!(content_bytes(&c, &rec.content_url, Some(&t)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn server_errors_on_delta_pages_then_the_round_goes_on() {
    let (sim, c, t) = signed_in(|c| c.page_size = 2).await;
    let (org, recs) = organizer_with(&sim, 5);
    let expected = ids_of(&recs);
    for (status, code) in [(500, "generalException"), (502, "UnknownError"), (504, "UnknownError")] {
        // On the first request.
        sim.faults().throttle(Target::Delta, status, None, 2);
        for _ in 0..2 {
            let (s, headers, body) = get(&c, &sim.recordings_delta_url(&org), &t).await;
            assert_eq!(s.as_u16(), status, "{body}");
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(body["error"]["innerError"]["request-id"].is_string(), "{body}");
            assert!(headers.get("retry-after").is_none());
        }
        let (s, _, body) = get(&c, &sim.recordings_delta_url(&org), &t).await;
        assert_eq!(s, StatusCode::OK);
        let mut got = ids(body["value"].as_array().expect("value"));
        let next = next_link(&body);
        // Mid-round: the same nextLink works once the errors are over.
        sim.faults().throttle(Target::Delta, status, None, 1);
        let (s, _, body) = get(&c, &next, &t).await;
        assert_eq!(s.as_u16(), status);
        assert_eq!(body["error"]["code"], code);
        let (items, _, _) = round(&c, &next, &t).await;
        got.extend(ids(&items));
        assert_eq!(got, expected, "{status}");
    }
    assert_eq!(sim.stats().throttled, 9);
}

#[tokio::test]
async fn a_forbidden_organizer_fails_alone() {
    let (sim, c, t) = signed_in(|c| c.page_size = 1).await;
    let a = sim.add_organizer();
    let b = sim.add_organizer();
    for _ in 0..2 {
        sim.add_recording(&a, 1);
        sim.add_recording(&b, 1);
    }
    let (_, nexts, delta) = round(&c, &sim.recordings_delta_url(&a), &t).await;
    assert_eq!(nexts.len(), 1);
    sim.faults().organizer_forbidden(&a.to_uppercase(), true);
    let quoted = format!(
        "{}/users('{a}')/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{a}')/delta",
        sim.base_url()
    );
    for url in [&sim.recordings_delta_url(&a), &nexts[0], &delta, &quoted] {
        let (s, _, body) = get(&c, url, &t).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{url}: {body}");
        assert_eq!(body["error"]["code"], "Forbidden");
        assert_eq!(
            body["error"]["message"],
            "No application access policy found for this app."
        );
    }
    let (items, _, _) = round(&c, &sim.recordings_delta_url(&b), &t).await;
    assert_eq!(items.len(), 2, "other organizers are not affected");
    assert_eq!(sim.stats().forbidden, 4);
    sim.faults().organizer_forbidden(&a, false);
    let (items, _, _) = round(&c, &nexts[0], &t).await;
    assert_eq!(items.len(), 1);
}

#[tokio::test]
async fn gone_with_a_location_that_keeps_or_drops_the_options() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let (org, recs) = organizer_with(&sim, 6);
    // Whole seconds, so the options are written back exactly as given:
    // recordings 1..=4 are in [start, end].
    let start = format!("{}Z", &recs[1].created[..19]);
    let end = format!("{}Z", &recs[5].created[..19]);
    let first = format!(
        "{}/users/{org}/onlineMeetings/getAllRecordings(meetingOrganizerUserId='{org}',startDateTime={start},endDateTime={end})/delta?$select=id,createdDateTime&$top=2",
        sim.base_url()
    );
    let (items, _, _) = round(&c, &first, &t).await;
    assert_eq!(ids(&items), ids_of(&recs[1..5]));
    let keys = keys(&items[0]);
    assert_eq!(keys, HashSet::from(["@odata.type", "id", "createdDateTime"]));

    // The sync state expires before the round's second page. Fresh: every option kept;
    // following it restarts the same sync. DropsOptions: the bare initial query, which
    // widens the range. None: no Location at all.
    for (code, kind) in [
        ("syncStateNotFound", SyncLocation::Fresh),
        ("resyncRequired", SyncLocation::DropsOptions),
        ("resyncRequired", SyncLocation::None),
    ] {
        let next = next_link(&get(&c, &first, &t).await.2);
        sim.faults().expire_sync_state_with(code, kind);
        let (s, headers, body) = get(&c, &next, &t).await;
        assert_eq!(s, StatusCode::GONE);
        assert_eq!(body["error"]["code"], code);
        let location = headers.get("location").map(|l| l.to_str().expect("location"));
        match (kind, location) {
            (SyncLocation::Fresh, Some(location)) => {
                for option in [
                    format!("startDateTime={start}"),
                    format!("endDateTime={end}"),
                    "$select=id,createdDateTime".to_owned(),
                    "$top=2".to_owned(),
                ] {
                    assert!(location.contains(&option), "{option} missing: {location}");
                }
                let (items, _, _) = round(&c, location, &t).await;
                assert_eq!(ids(&items), ids_of(&recs[1..5]));
                assert!(items.iter().all(|i| i.get("recordingContentUrl").is_none()));
            }
            (SyncLocation::DropsOptions, Some(location)) => {
                assert_eq!(location, sim.recordings_delta_url(&org));
                let (items, _, _) = round(&c, location, &t).await;
                assert_eq!(ids(&items), ids_of(&recs));
                assert!(items.iter().all(|i| i["recordingContentUrl"].is_string()));
            }
            (SyncLocation::None, None) => {}
            (kind, location) => panic!("{kind:?}: Location {location:?}"),
        }
    }

    // Contacts: Fresh keeps $select, DropsOptions drops it.
    let user = "adele@contoso.com";
    let folder = "inbox-contacts";
    sim.add_contact(user, folder, "Some One");
    let contacts = format!("{}?$select=displayName", sim.contacts_delta_url(user, folder));
    for (kind, expected) in [
        (SyncLocation::Fresh, contacts.clone()),
        (SyncLocation::DropsOptions, sim.contacts_delta_url(user, folder)),
    ] {
        let (_, _, delta) = round(&c, &contacts, &t).await;
        sim.faults().expire_sync_state_with("syncStateNotFound", kind);
        let (s, headers, _) = get(&c, &delta, &t).await;
        assert_eq!(s, StatusCode::GONE);
        assert_eq!(headers["location"], expected.as_str(), "{kind:?}");
    }

    // $select names callRecording properties only.
    let (s, _, body) = get(&c, &format!("{}?$select=shoeSize", sim.recordings_delta_url(&org)), &t).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn content_status_is_permanent_per_recording() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let org = sim.add_organizer();
    let bad = sim.add_recording(&org, 1000);
    let good = sim.add_recording(&org, 1000);
    // A download URL handed out before the fault.
    let (s, headers, _) = content_bytes(&c, &bad.content_url, Some(&t)).await;
    assert_eq!(s, StatusCode::FOUND);
    let location = headers["location"].to_str().expect("location").to_owned();

    for (status, code) in [(403, "accessDenied"), (404, "itemNotFound"), (410, "resourceGone")] {
        sim.faults().content_status(&bad.id, Some(status));
        for _ in 0..2 {
            let (s, _, body) = get(&c, &bad.content_url, &t).await;
            assert_eq!(s.as_u16(), status, "{body}");
            assert_eq!(body["error"]["code"], code);
            assert!(body["error"]["message"].is_string());
            assert!(body["error"]["innerError"]["request-id"].is_string());
        }
        let (s, _, body) = content_bytes(&c, &location, None).await;
        assert_eq!(s.as_u16(), status, "on the download origin too");
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"]["code"], code);
        assert_eq!(
            content_bytes(&c, &good.content_url, Some(&t)).await.0,
            StatusCode::FOUND
        );
    }
    // Authentication still comes first.
    assert_eq!(
        content_bytes(&c, &bad.content_url, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let stats = sim.stats();
    assert_eq!(stats.content_refused_by_id.get(&bad.id), Some(&9));
    assert_eq!(stats.content_refused_by_id.get(&good.id), None);
    assert_eq!(
        stats.content_requests_by_id.get(&bad.id),
        Some(&1),
        "refusals are not downloads"
    );

    sim.faults().content_status(&bad.id, None);
    let (s, _, body) = content_bytes(&c, &location, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(Some(sha(&body)), sim.content_sha256(&bad.id));
}

#[tokio::test]
async fn an_always_truncated_recording_never_completes() {
    for mode in [ContentMode::Direct, ContentMode::Redirect] {
        let (sim, c, t) = signed_in_with(reqwest::Client::new(), |c| c.content_mode = mode).await; // c follows redirects
        let size = 1_000_000u64;
        let bad = sim.add_recording("org", size);
        let good = sim.add_recording("org", size);
        sim.faults().content_always_truncated(&bad.id, true);
        sim.faults().drop_mid_body(1);
        // The pending drop is left for the next healthy body.
        let r = send(&c, &good.content_url, &t).await;
        assert!(read_body(r).await.1.is_some(), "{mode:?}");
        for _ in 0..3 {
            let r = send(&c, &bad.content_url, &t).await;
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.content_length(), Some(size));
            let (got, err) = read_body(r).await;
            assert!(err.is_some(), "{mode:?}: the body must end in an error");
            assert!(got <= size / 2, "{mode:?}: got {got}");
        }
        // Ranges are cut too.
        let r = send_with(&c, &bad.content_url, Some(&t), ("range", "bytes=1000-200999")).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.content_length(), Some(200_000));
        assert!(read_body(r).await.1.is_some(), "{mode:?}");
        // Other recordings are whole.
        let body = whole_body(&c, &good.content_url, &t).await;
        assert_eq!(body.len() as u64, size);

        sim.faults().content_always_truncated(&bad.id, false);
        let body = whole_body(&c, &bad.content_url, &t).await;
        assert_eq!(Some(sha(&body)), sim.content_sha256(&bad.id));
    }
}

#[tokio::test]
async fn relative_redirects_resolve_against_the_hop() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 200_000);
    sim.faults().redirect_style(RedirectStyle::Relative);

    let (s, headers, _) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    assert_eq!(s, StatusCode::FOUND);
    let loc1 = headers["location"].to_str().expect("location").to_owned();
    assert!(loc1.starts_with("stream?sig="), "a path-relative reference: {loc1}");
    let hop1 = url::Url::parse(&rec.content_url)
        .expect("url")
        .join(&loc1)
        .expect("join");
    let (s, headers, _) = content_bytes(&c, hop1.as_str(), Some(&t)).await;
    assert_eq!(s, StatusCode::FOUND, "{hop1}");
    let loc2 = headers["location"].to_str().expect("location").to_owned();
    assert!(loc2.starts_with("/hops/"), "an absolute-path reference: {loc2}");
    let hop2 = hop1.join(&loc2).expect("join");
    assert!(hop2.as_str().starts_with(&sim.graph_origin()));
    let (s, _, body) = content_bytes(&c, hop2.as_str(), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(Some(sha(&body)), sim.content_sha256(&rec.id));

    // Resolved against anything but the hop: 404.
    let wrong = [
        format!("{}/{loc1}", sim.graph_origin()),
        format!("{}/{loc1}", sim.base_url()),
        format!("{}/{loc1}", sim.download_origin()),
        format!("{}/{loc1}", rec.content_url),
        format!("{}{loc1}", rec.content_url),
        format!("{}{loc2}", sim.download_origin()),
        format!("{hop1}{loc2}"),
    ];
    for url in wrong {
        assert_eq!(content_bytes(&c, &url, None).await.0, StatusCode::NOT_FOUND, "{url}");
    }

    // A standard client resolves both and gets the bytes.
    let r = follow_redirects(&rec.content_url, &t).await;
    assert_eq!(Some(sha(&r.bytes().await.expect("body"))), sim.content_sha256(&rec.id));
    let stats = sim.stats();
    assert_eq!(
        stats.redirect_hops,
        2 + 1 + 2,
        "manual, the wrong one that reached a hop, standard"
    );
    assert_eq!(stats.download_requests, 2, "only the wrong resolutions");
}

#[tokio::test]
async fn redirect_chains_of_n_hops() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 100_000);

    sim.faults().redirect_style(RedirectStyle::Chain(8));
    let mut url = rec.content_url.clone();
    let mut locations = Vec::new();
    let body = loop {
        let on_graph = url.starts_with(&sim.graph_origin()) && locations.len() < 8;
        let (s, headers, body) = content_bytes(&c, &url, on_graph.then_some(t.as_str())).await;
        if s != StatusCode::FOUND {
            assert_eq!(s, StatusCode::OK, "{url}");
            break body;
        }
        url = headers["location"].to_str().expect("location").to_owned();
        locations.push(url.clone());
        assert!(locations.len() <= 8, "{locations:?}");
    };
    assert_eq!(locations.len(), 8);
    for l in &locations[..7] {
        assert!(l.starts_with(&format!("{}/hops/", sim.graph_origin())), "{l}");
    }
    assert!(locations[7].starts_with(&format!("{}/download/", sim.download_origin())));
    assert_eq!(Some(sha(&body)), sim.content_sha256(&rec.id));
    assert_eq!(sim.stats().redirect_hops, 7);

    // A client that allows 5 hops gives up; reqwest's default (10) gets there.
    let limited = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .expect("client");
    let err = limited
        .get(&rec.content_url)
        .bearer_auth(&t)
        .send()
        .await
        .expect_err("too many redirects");
    assert!(err.is_redirect(), "{err:?}");
    follow_redirects(&rec.content_url, &t).await;

    // Chain(1) and Chain(0) are a single redirect to the download origin.
    for n in [0, 1] {
        sim.faults().redirect_style(RedirectStyle::Chain(n));
        let (s, headers, _) = content_bytes(&c, &rec.content_url, Some(&t)).await;
        assert_eq!(s, StatusCode::FOUND);
        assert!(
            headers["location"]
                .to_str()
                .expect("location")
                .starts_with(&format!("{}/download/", sim.download_origin()))
        );
    }
    assert_eq!(sim.stats().auth_header_on_download_origin, 0);
}

#[tokio::test]
async fn a_bounce_back_to_graph_counts_a_resent_token() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 100_000);
    sim.faults().redirect_style(RedirectStyle::Bounce);
    sim.reset_stats();

    let (s, headers, _) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    assert_eq!(s, StatusCode::FOUND);
    let loc1 = headers["location"].to_str().expect("location").to_owned();
    assert!(
        loc1.starts_with(&format!("{}/bounce/", sim.download_origin())),
        "{loc1}"
    );
    let (s, headers, _) = content_bytes(&c, &loc1, None).await;
    assert_eq!(s, StatusCode::FOUND);
    let loc2 = headers["location"].to_str().expect("location").to_owned();
    assert!(loc2.starts_with(&format!("{}/hops/", sim.graph_origin())), "{loc2}");
    // The last hop needs no token ...
    let (s, _, body) = content_bytes(&c, &loc2, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(Some(sha(&body)), sim.content_sha256(&rec.id));
    assert_eq!(sim.stats().auth_header_after_leaving_graph, 0);
    // ... and counts one sent anyway.
    let (s, _, _) = content_bytes(&c, &loc2, Some(&t)).await;
    assert_eq!(s, StatusCode::OK);
    let stats = sim.stats();
    assert_eq!(stats.auth_header_after_leaving_graph, 1);
    let hops: Vec<(Origin, bool)> = stats.requests.iter().map(|r| (r.origin, r.authorization)).collect();
    assert_eq!(
        hops,
        [
            (Origin::Graph, true),
            (Origin::Download, false),
            (Origin::Graph, false),
            (Origin::Graph, true)
        ]
    );

    // reqwest drops the token when the chain leaves the graph origin, for good.
    follow_redirects(&rec.content_url, &t).await;
    let stats = sim.stats();
    assert_eq!(stats.auth_header_after_leaving_graph, 1);
    assert_eq!(stats.auth_header_on_download_origin, 0);

    // A content status holds on every hop.
    sim.faults().content_status(&rec.id, Some(404));
    for url in [&loc1, &loc2] {
        assert_eq!(content_bytes(&c, url, None).await.0, StatusCode::NOT_FOUND, "{url}");
    }
}

// ---------------------------------------------------------------------------
// Enterprise sign-in: certificate client assertions and federated tokens

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

fn assertion_form(sim: &GraphSim, assertion: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", sim.config().client_id.clone()),
        ("client_assertion_type", test_keys::JWT_BEARER.to_owned()),
        ("client_assertion", assertion.to_owned()),
        ("scope", sim.scope()),
    ]
}

/// The header and claims a correct client sends for `cert`.
fn good_jwt_parts(sim: &GraphSim, cert: &TestCertificate, jti: &str) -> (Value, Value) {
    let now = now_secs();
    let header = serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": cert.x5t_s256()});
    let claims = serde_json::json!({
        "aud": sim.token_url(),
        "iss": sim.config().client_id,
        "sub": sim.config().client_id,
        "jti": jti,
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    });
    (header, claims)
}

/// A client assertion that `cert` signs for the simulator's client and token URL.
fn good_assertion(sim: &GraphSim, cert: &TestCertificate) -> String {
    cert.client_assertion(&sim.config().client_id, &sim.token_url())
}

/// Posts `assertion`; on success checks that the access token works on Graph.
async fn post_assertion(sim: &GraphSim, c: &reqwest::Client, assertion: &str) -> (StatusCode, Value) {
    let (status, body) = post_token(c, &sim.token_url(), &assertion_form(sim, assertion)).await;
    if status == StatusCode::OK {
        let org = sim.add_organizer();
        let t = body["access_token"].as_str().expect("access_token");
        let (s, _, page) = get(c, &sim.recordings_delta_url(&org), t).await;
        assert_eq!(s, StatusCode::OK, "{page}");
    }
    (status, body)
}

#[test]
fn test_keys_are_deterministic_and_fit_together() {
    let a = test_keys::test_certificate(7);
    let again = test_keys::test_certificate(7);
    assert_eq!(a.cert_der, again.cert_der);
    assert_eq!(a.key_der, again.key_der);
    let b = test_keys::test_certificate(8);
    assert_ne!(a.cert_der, b.cert_der);
    assert_ne!(a.key_der, b.key_der);

    assert!(
        a.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"),
        "{}",
        a.cert_pem
    );
    assert!(a.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{}", a.key_pem);
    let bundle = a.pem_bundle();
    assert!(bundle.contains(&a.cert_pem) && bundle.contains(&a.key_pem));
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(a.x5t_s256(), b64.encode(Sha256::digest(&a.cert_der)));
    assert_eq!(a.x5t().len(), 27, "base64url of 20 bytes");
    let now = std::time::SystemTime::now();
    assert!(a.not_before < now && now < a.not_after);

    let expired = test_keys::expired_certificate(7);
    assert!(expired.not_after < now);
    assert_eq!(expired.key_der, a.key_der, "same key, older certificate");
    assert_ne!(expired.cert_der, a.cert_der);

    let mismatched = test_keys::mismatched_certificate(7);
    assert_eq!(mismatched.cert_der, a.cert_der, "the certificate of seed 7");
    assert_ne!(mismatched.key_der, a.key_der, "with another key");

    // PKCS#12 holds the very same key and certificate, under its password only.
    let pfx = a.pkcs12("s3cret");
    let store = p12_keystore::KeyStore::from_pkcs12(&pfx, "s3cret", p12_keystore::Pkcs12ImportPolicy::Strict)
        .expect("a readable PKCS#12 file");
    let (_, chain) = store.private_key_chain().expect("a key entry");
    assert_eq!(chain.key().as_der(), a.key_der.as_slice());
    assert_eq!(chain.certs()[0].as_der(), a.cert_der.as_slice());
    assert!(p12_keystore::KeyStore::from_pkcs12(&pfx, "wrong", p12_keystore::Pkcs12ImportPolicy::Strict).is_err());
}

#[tokio::test]
async fn certificate_assertions_are_accepted() {
    let sim = sim_with(|_| {}).await;
    let c = client();
    let cert = test_keys::test_certificate(1);
    let thumb = sim.register_certificate(&cert.cert_der).expect("registers");
    assert_eq!(thumb, cert.x5t_s256());
    // PEM, or a PEM bundle with the key first, register the same certificate.
    assert_eq!(
        sim.register_certificate(cert.pem_bundle().as_bytes()).expect("PEM"),
        thumb
    );

    let (s, body) = post_assertion(&sim, &c, &good_assertion(&sim, &cert)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let stats = sim.stats();
    assert_eq!(stats.client_assertions_accepted, 1);
    assert!(stats.assertions_rejected.is_empty(), "{:?}", stats.assertions_rejected);
    let last = stats.last_client_assertion.expect("recorded");
    assert_eq!(last["header"]["alg"], "PS256");
    assert_eq!(last["header"]["x5t#S256"], thumb.as_str());
    assert_eq!(last["claims"]["aud"], sim.token_url().as_str());
    assert_eq!(last["claims"]["iss"], sim.config().client_id.as_str());
    assert_eq!(last["claims"]["sub"], sim.config().client_id.as_str());
    assert!(last["claims"]["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let lifetime = last["claims"]["exp"].as_i64().expect("exp") - last["claims"]["iat"].as_i64().expect("iat");
    assert!((1..=600).contains(&lifetime), "{lifetime}");

    // RS256 and the legacy SHA-1 `x5t` are accepted too.
    let (mut header, claims) = good_jwt_parts(&sim, &cert, "rs256");
    header["alg"] = "RS256".into();
    let (s, body) = post_assertion(&sim, &c, &cert.sign_jwt(&header, &claims)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, claims) = good_jwt_parts(&sim, &cert, "legacy-x5t");
    let header = serde_json::json!({"alg": "PS256", "x5t": cert.x5t()});
    let (s, body) = post_assertion(&sim, &c, &cert.sign_jwt(&header, &claims)).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // A secret keeps working alongside, and a throttled request consumes no jti.
    token(&sim, &c).await;
    let assertion = good_assertion(&sim, &cert);
    sim.faults().throttle(Target::Token, 429, Some(1), 1);
    let (s, _) = post_assertion(&sim, &c, &assertion).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let (s, body) = post_assertion(&sim, &c, &assertion).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let stats = sim.stats();
    assert_eq!(stats.client_assertions_accepted, 4);
    assert_eq!(stats.client_secrets_accepted, 1);

    // Removing the certificate refuses what it signs.
    assert!(sim.remove_certificate(cert.cert_pem.as_bytes()).expect("PEM"));
    assert!(!sim.remove_certificate(&cert.cert_der).expect("DER"));
    let (s, body) = post_assertion(&sim, &c, &good_assertion(&sim, &cert)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(aad_code(&body), 700027);

    assert!(matches!(
        sim.register_certificate(b"not a certificate"),
        Err(CertificateError::NotACertificate { .. })
    ));
}

/// An audience that is not the simulator's token endpoint: the multi-tenant authority's.
const OTHER_AUDIENCE: &str = "https://login.microsoftonline.com/common/oauth2/v2.0/token";

/// Removes the property `name` of the object `v`.
fn remove(v: &mut Value, name: &str) -> Option<Value> {
    v.as_object_mut().expect("object").remove(name)
}

#[tokio::test]
async fn certificate_assertions_are_refused_like_entra() {
    let sim = sim_with(|_| {}).await;
    let c = client();
    let cert = test_keys::test_certificate(1);
    sim.register_certificate(&cert.cert_der).expect("registers");
    let expired = test_keys::expired_certificate(2);
    sim.register_certificate(&expired.cert_der).expect("registers");
    let unregistered = test_keys::test_certificate(3);
    let mismatched = test_keys::mismatched_certificate(1);
    let now = now_secs();

    type Edit = fn(&mut Value, &mut Value, i64);
    use AssertionRejection as R;
    // One case a line: the signer, the rejection and its AADSTS code, and the edit of the
    // header and claims (`c`) before signing, at `n` seconds since the epoch.
    #[rustfmt::skip]
    let cases: Vec<(&str, &TestCertificate, AssertionRejection, u64, Edit)> = vec![
        ("unregistered",   &unregistered, R::UnknownKey,           700027, |_, _, _| {}),
        ("mismatched key", &mismatched,   R::BadSignature,         700027, |_, _, _| {}),
        ("expired cert",   &expired,      R::KeyExpired,           700027, |_, _, _| {}),
        ("HS256",          &cert,         R::UnsupportedAlgorithm, 700027, |h, _, _| h["alg"] = "HS256".into()),
        ("iss",            &cert,         R::ClientIdMismatch,     700021, |_, c, _| c["iss"] = "someone-else".into()),
        ("sub",            &cert,         R::ClientIdMismatch,     700021, |_, c, _| c["sub"] = "someone-else".into()),
        ("aud",            &cert,         R::WrongAudience,        700023, |_, c, _| c["aud"] = OTHER_AUDIENCE.into()),
        ("expired",        &cert,         R::Expired,              700024, |_, c, now| c["exp"] = (now - 60).into()),
        ("far future",     &cert,         R::ExpiresTooLate,       700024, |_, c, n| c["exp"] = (n + 2 * 86400).into()),
        ("nbf",            &cert,         R::NotYetValid,          700024, |_, c, now| c["nbf"] = (now + 3600).into()),
        ("no jti",         &cert,         R::Malformed,            50027,  |_, c, _| drop(remove(c, "jti"))),
        ("no exp",         &cert,         R::Malformed,            50027,  |_, c, _| drop(remove(c, "exp"))),
    ];
    for (i, (name, signer, reason, code, edit)) in cases.iter().enumerate() {
        let (mut header, mut claims) = good_jwt_parts(&sim, signer, &format!("case-{i}"));
        edit(&mut header, &mut claims, now);
        let (s, body) = post_assertion(&sim, &c, &signer.sign_jwt(&header, &claims)).await;
        assert_eq!(s.as_u16(), reason.status(), "{name}: {body}");
        assert_eq!(body["error"], reason.error(), "{name}: {body}");
        assert_eq!(aad_code(&body), *code, "{name}");
        assert_eq!(u64::from(reason.code()), *code, "{name}");
    }
    let unknown_desc = {
        let (h, cl) = good_jwt_parts(&sim, &unregistered, "again");
        let (_, body) = post_assertion(&sim, &c, &unregistered.sign_jwt(&h, &cl)).await;
        body["error_description"].as_str().expect("description").to_owned()
    };
    assert!(unknown_desc.contains("The key was not found."), "{unknown_desc}");

    // A signed assertion altered afterwards.
    let good = good_assertion(&sim, &cert);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let (_, mut claims) = good_jwt_parts(&sim, &cert, "tampered");
    claims["sub"] = sim.config().client_id.clone().into();
    use base64::Engine as _;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let (s, body) = post_assertion(&sim, &c, &parts.join(".")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        body["error_description"]
            .as_str()
            .expect("description")
            .contains("signature validation")
    );

    // The same assertion twice: a replayed jti.
    let (s, body) = post_assertion(&sim, &c, &good).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = post_assertion(&sim, &c, &good).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(aad_code(&body), 50013);

    // Not a JWT; a wrong or missing assertion type; secret and assertion at once.
    let (s, body) = post_assertion(&sim, &c, "not-a-jwt").await;
    assert_eq!((s, aad_code(&body)), (StatusCode::BAD_REQUEST, 50027));
    let mut f = assertion_form(&sim, &good);
    f[2].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".to_owned();
    let (s, body) = post_token(&c, &sim.token_url(), &f).await;
    assert_eq!((s, aad_code(&body)), (StatusCode::BAD_REQUEST, 90023));
    f.remove(2);
    let (s, body) = post_token(&c, &sim.token_url(), &f).await;
    assert_eq!((s, aad_code(&body)), (StatusCode::BAD_REQUEST, 900144));
    let mut f = assertion_form(&sim, &good);
    f.push(("client_secret", sim.config().client_secret.clone()));
    let (s, body) = post_token(&c, &sim.token_url(), &f).await;
    assert_eq!((s, aad_code(&body)), (StatusCode::BAD_REQUEST, 90023));

    let stats = sim.stats();
    assert_eq!(stats.client_assertions_accepted, 1);
    let r = &stats.assertions_rejected;
    assert_eq!(r[&AssertionRejection::UnknownKey], 2);
    assert_eq!(r[&AssertionRejection::BadSignature], 2);
    assert_eq!(r[&AssertionRejection::ClientIdMismatch], 2);
    assert_eq!(r[&AssertionRejection::Malformed], 3);
    assert_eq!(r[&AssertionRejection::ReplayedJti], 1);
    assert_eq!(r[&AssertionRejection::UnsupportedAssertionType], 1);
    for reason in [
        AssertionRejection::KeyExpired,
        AssertionRejection::UnsupportedAlgorithm,
        AssertionRejection::WrongAudience,
        AssertionRejection::Expired,
        AssertionRejection::ExpiresTooLate,
        AssertionRejection::NotYetValid,
    ] {
        assert_eq!(r[&reason], 1, "{reason:?}");
    }
    assert_eq!(r.values().sum::<u64>(), 17);
}

#[tokio::test]
async fn an_empty_configured_secret_accepts_only_assertions() {
    let sim = sim_with(|c| c.client_secret = String::new()).await;
    let c = client();
    let (s, body) = post_token(&c, &sim.token_url(), &form(&sim)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(aad_code(&body), 7000218);
    let mut f = form(&sim);
    f[2].1 = "guess".to_owned();
    let (s, body) = post_token(&c, &sim.token_url(), &f).await;
    assert_eq!((s, aad_code(&body)), (StatusCode::UNAUTHORIZED, 7000215));
    let cert = test_keys::test_certificate(1);
    sim.register_certificate(&cert.cert_der).expect("registers");
    let (s, body) = post_assertion(&sim, &c, &good_assertion(&sim, &cert)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(sim.stats().client_secrets_accepted, 0);
}

/// A service-account-token-shaped JWT (no certificate thumbprint), unsigned.
fn sa_token(name: &str, exp: i64) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({"alg": "RS256", "kid": "sim"});
    let claims = serde_json::json!({
        "aud": ["api://AzureADTokenExchange"],
        "iss": "https://oidc.prod-aks.azure.com/tenant/issuer/",
        "sub": format!("system:serviceaccount:recarch:{name}"),
        "exp": exp,
    });
    format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string()),
        b64.encode(name)
    )
}

#[tokio::test]
async fn federated_tokens_are_reused_rotated_and_revoked() {
    let sim = sim_with(|_| {}).await;
    let c = client();
    let first = sa_token("first", now_secs() + 3600);
    sim.register_federated_token(&first);
    for _ in 0..2 {
        let (s, body) = post_assertion(&sim, &c, &first).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let stats = sim.stats();
    assert_eq!(stats.federated_assertions_accepted, 2);
    assert_eq!(stats.last_federated_assertion.as_deref(), Some(first.as_str()));
    assert_eq!(stats.client_assertions_accepted, 0);

    // The kubelet rotates the file: the old token is refused as expired.
    let second = sa_token("second", now_secs() + 3600);
    sim.register_federated_token(&second);
    assert!(sim.revoke_federated_token(&first));
    assert!(!sim.revoke_federated_token(&first));
    let (s, body) = post_assertion(&sim, &c, &first).await;
    assert_eq!((s, aad_code(&body)), (StatusCode::UNAUTHORIZED, 700024), "{body}");
    assert_eq!(body["error"], "invalid_client");
    let (s, body) = post_assertion(&sim, &c, &second).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(sim.stats().last_federated_assertion.as_deref(), Some(second.as_str()));

    // An unknown one names its issuer and subject; an expired registered one is refused.
    let (s, body) = post_assertion(&sim, &c, &sa_token("stranger", now_secs() + 3600)).await;
    assert_eq!((s, aad_code(&body)), (StatusCode::BAD_REQUEST, 70021), "{body}");
    let desc = body["error_description"].as_str().expect("description");
    assert!(desc.contains("system:serviceaccount:recarch:stranger"), "{desc}");
    let stale = sa_token("stale", now_secs() - 10);
    sim.register_federated_token(&stale);
    let (s, body) = post_assertion(&sim, &c, &stale).await;
    assert_eq!((s, aad_code(&body)), (StatusCode::UNAUTHORIZED, 700024), "{body}");

    // Opaque tokens work too.
    sim.register_federated_token("opaque-token");
    let (s, body) = post_assertion(&sim, &c, "opaque-token").await;
    assert_eq!(s, StatusCode::OK, "{body}");

    let r = sim.stats().assertions_rejected;
    assert_eq!(r[&AssertionRejection::RevokedFederatedToken], 1);
    assert_eq!(r[&AssertionRejection::UnknownFederatedToken], 1);
    assert_eq!(r[&AssertionRejection::Expired], 1);
}

// ---------------------------------------------------------------------------
// Directory: users, groups, /users/delta

#[tokio::test]
async fn users_by_id_and_by_upn() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let alice = sim.add_user("Alice@Contoso.example", true, UserType::Member);
    assert!(is_guid(&alice), "{alice}");
    assert_eq!(
        sim.add_user("alice@contoso.EXAMPLE", false, UserType::Guest),
        alice,
        "UPNs are case-insensitive"
    );
    let org = sim.add_organizer();
    assert_eq!(sim.user_upn(&org).as_deref(), Some("user2@contoso.example"));
    assert_eq!(sim.user_upn(&alice).as_deref(), Some("Alice@Contoso.example"));
    assert!(sim.organizers().contains(&alice), "every user is an organizer");
    let guest = sim.add_user("bob_fabrikam.example#EXT#@contoso.example", true, UserType::Guest);
    // An organizer known only from its recordings is a user too.
    let implicit = "8B081EF6-4792-4DEF-B2C9-C363A1BF41D5";
    sim.add_recording(implicit, 10);
    assert_eq!(sim.user_upn(implicit).as_deref(), Some("user4@contoso.example"));

    for (url, id) in [
        (format!("{}/users/{alice}?$select=id", sim.base_url()), &alice),
        (
            format!("{}/users/alice%40contoso.example?$select=id", sim.base_url()),
            &alice,
        ),
        (
            format!(
                "{}/users/ALICE@CONTOSO.EXAMPLE?$select=id",
                sim.base_url().replace("/beta", "/v1.0")
            ),
            &alice,
        ),
        (
            format!("{}/users('user2%40contoso.example')?$select=id", sim.base_url()),
            &org,
        ),
        (
            format!(
                "{}/users/bob_fabrikam.example%23EXT%23%40contoso.example?$select=id",
                sim.base_url()
            ),
            &guest,
        ),
    ] {
        let (s, _, body) = get(&c, &url, &t).await;
        assert_eq!(s, StatusCode::OK, "{url}: {body}");
        assert_eq!(body["id"], id.as_str(), "{url}: {body}");
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["@odata.context", "id"], "{url}");
    }
    // More properties; unknown ones are ignored; the default set without $select.
    let url = format!(
        "{}/users/{alice}?$select=id,userPrincipalName,accountEnabled,userType,favouriteColour",
        sim.base_url()
    );
    let (s, _, body) = get(&c, &url, &t).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["userPrincipalName"], "Alice@Contoso.example");
    assert_eq!(body["accountEnabled"], true);
    assert_eq!(body["userType"], "Member");
    assert!(body.get("favouriteColour").is_none(), "{body}");
    let (_, _, body) = get(&c, &format!("{}/users/{guest}", sim.base_url()), &t).await;
    assert_eq!(body["displayName"], "Bob");
    assert!(
        body["mail"].is_string() && body.get("accountEnabled").is_none(),
        "{body}"
    );

    // A user found this way is an organizer: its recordings delta works.
    let (s, _, body) = get(&c, &sim.recordings_delta_url(&alice), &t).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // Unknown and removed users.
    for key in ["nobody@contoso.example", "00000000-0000-0000-0000-000000000000"] {
        let (s, _, body) = get(&c, &format!("{}/users/{key}?$select=id", sim.base_url()), &t).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    }
    sim.remove_user(&alice, false);
    let (s, _, _) = get(&c, &format!("{}/users/{alice}", sim.base_url()), &t).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(sim.user_upn(&alice), None);
    let again = sim.add_user("alice@contoso.example", true, UserType::Member);
    assert_ne!(again, alice, "a removed user's UPN can be taken again");

    // Authentication, throttling and the missing-permission 403.
    let url = format!("{}/users/{org}?$select=id", sim.base_url());
    let r = c.get(&url).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    sim.faults().throttle(Target::Directory, 429, Some(1), 1);
    assert_eq!(get(&c, &url, &t).await.0, StatusCode::TOO_MANY_REQUESTS);
    sim.faults().directory_forbidden(true);
    let (s, _, body) = get(&c, &url, &t).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(
        body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    sim.faults().directory_forbidden(false);
    assert_eq!(get(&c, &url, &t).await.0, StatusCode::OK);
    assert_eq!(sim.stats().directory_requests, 14);
}

#[tokio::test]
async fn group_members_through_nested_groups() {
    let (sim, c, t) = signed_in(|c| c.page_size = 2).await;
    let u: Vec<String> = (0..7)
        .map(|i| {
            sim.add_user(
                &format!("u{i}@contoso.example"),
                i != 3,
                if i == 4 { UserType::Guest } else { UserType::Member },
            )
        })
        .collect();
    let a = sim.add_group("archived organizers");
    let b = sim.add_group("nested");
    let cg = sim.add_group("nested deeper");
    let laptop = sim.add_device("laptop");
    for (g, m) in [
        (&a, &u[1]),
        (&a, &b),
        (&a, &laptop),
        (&a, &u[2]),
        (&b, &u[2]),
        (&b, &u[3]),
        (&b, &cg),
        (&cg, &u[4]),
        (&cg, &a),
        (&cg, &u[6]),
        (&cg, &laptop),
    ] {
        assert!(sim.add_member(g, m), "{g} {m}");
    }
    assert!(!sim.add_member(&a, &u[1]), "already a member");
    assert!(!sim.add_member(&a, "not-an-object"));
    assert!(!sim.add_member("not-a-group", &u[1]));
    assert!(!sim.add_member(&a, &a));
    sim.remove_user(&u[6], true);

    // Users only, each once, cycles and devices notwithstanding; disabled users and guests included.
    let (items, links) = all_pages(&c, &sim.group_users_url(&a), &t).await;
    assert_eq!(
        ids(&items),
        [u[1].as_str(), u[2].as_str(), u[3].as_str(), u[4].as_str()]
    );
    assert!(
        items.iter().all(|i| i["@odata.type"] == "#microsoft.graph.user"),
        "{items:?}"
    );
    assert_eq!(links.len(), 1);
    assert!(
        links[0].contains("/transitiveMembers/microsoft.graph.user?$select=id&$top=2&$skiptoken="),
        "{}",
        links[0]
    );
    // The pages were snapshotted: a change after the first page does not show.
    let (first, _, body) = get(&c, &sim.group_users_url(&a), &t).await;
    assert_eq!(first, StatusCode::OK);
    let next = next_link(&body);
    assert!(sim.add_member(&b, &u[5]));
    sim.faults().expire_sync_state("syncStateNotFound", false);
    let (s, _, body) = get(&c, &next, &t).await;
    assert_eq!(s, StatusCode::OK, "member pages are no delta: {body}");
    assert_eq!(
        ids(body["value"].as_array().expect("value")),
        [u[3].as_str(), u[4].as_str()]
    );
    let (items, _) = all_pages(&c, &format!("{}&$top=10", sim.group_users_url(&a)), &t).await;
    assert_eq!(items.len(), 5);
    assert!(sim.remove_member(&b, &u[5]));
    assert!(!sim.remove_member(&b, &u[5]));

    // Without the cast: users, nested groups and devices, each once.
    let url = format!("{}/groups/{a}/transitiveMembers?$select=id,displayName", sim.base_url());
    let (items, _) = all_pages(&c, &url, &t).await;
    let kinds: Vec<(String, String)> = items
        .iter()
        .map(|i| {
            (
                i["@odata.type"].as_str().expect("type").to_owned(),
                i["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    let expect = [
        ("user", &u[1]),
        ("group", &b),
        ("user", &u[2]),
        ("user", &u[3]),
        ("group", &cg),
        ("user", &u[4]),
        ("device", &laptop),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(k, id)| (format!("#microsoft.graph.{k}"), (*id).clone()))
        .collect();
    assert_eq!(kinds, expect);

    // Unknown groups and skip tokens; the missing-permission 403.
    let (s, _, body) = get(&c, &sim.group_users_url("00000000-0000-0000-0000-000000000000"), &t).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    let (s, _, _) = get(&c, &format!("{}&$skiptoken=bogus", sim.group_users_url(&a)), &t).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    sim.faults().directory_forbidden(true);
    let (s, _, body) = get(&c, &sim.group_users_url(&a), &t).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
}

#[tokio::test]
async fn users_delta_rounds_report_only_changes() {
    let (sim, c, t) = signed_in(|c| c.page_size = 2).await;
    let o1 = sim.add_organizer();
    let o2 = sim.add_organizer();
    let guest = sim.add_user("guest_fabrikam.example#EXT#@contoso.example", true, UserType::Guest);
    let disabled = sim.add_user("disabled@contoso.example", false, UserType::Member);

    let (items, nexts, delta) = round(&c, &sim.users_delta_url(), &t).await;
    assert_eq!(
        ids(&items),
        [o1.as_str(), o2.as_str(), guest.as_str(), disabled.as_str()]
    );
    for (item, (enabled, kind)) in
        items
            .iter()
            .zip([(true, "Member"), (true, "Member"), (true, "Guest"), (false, "Member")])
    {
        let keys: Vec<&String> = item.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["id", "accountEnabled", "userType"], "{item}");
        assert_eq!(item["accountEnabled"], enabled, "{item}");
        assert_eq!(item["userType"], kind, "{item}");
    }
    assert_eq!(nexts.len(), 1);
    assert!(nexts[0].contains("/users/delta()?$skiptoken="), "{}", nexts[0]);
    assert!(delta.contains("/users/delta()?$deltatoken="), "{delta}");

    // Nothing changed: an empty round.
    sim.set_user_enabled(&o1, true);
    let (items, _, delta) = round(&c, &delta, &t).await;
    assert!(items.is_empty(), "{items:?}");

    // Changes, in the order they happened.
    sim.set_user_enabled(&o1, false);
    let newcomer = sim.add_user("newcomer@contoso.example", true, UserType::Member);
    sim.remove_user(&o2, false);
    sim.remove_user(&disabled, true);
    let (items, _, delta) = round(&c, &delta, &t).await;
    assert_eq!(
        items,
        [
            serde_json::json!({"id": o1, "accountEnabled": false}),
            serde_json::json!({"id": newcomer, "accountEnabled": true, "userType": "Member"}),
            serde_json::json!({"id": o2, "@removed": {"reason": "changed"}}),
            serde_json::json!({"id": disabled, "@removed": {"reason": "deleted"}}),
        ]
    );
    let (items, _, delta) = round(&c, &delta, &t).await;
    assert!(items.is_empty(), "{items:?}");

    // 410 on an expired delta token, with a Location that keeps $select.
    sim.faults().expire_sync_state("syncStateNotFound", true);
    let (s, headers, body) = get(&c, &delta, &t).await;
    assert_eq!(s, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "syncStateNotFound");
    let location = headers["location"].to_str().expect("ascii");
    assert_eq!(location, sim.users_delta_url());
    let (items, _, _) = round(&c, location, &t).await;
    assert_eq!(ids(&items), [o1.as_str(), guest.as_str(), newcomer.as_str()]);

    sim.faults().directory_forbidden(true);
    let (s, _, body) = get(&c, &sim.users_delta_url(), &t).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(sim.stats().directory_requests >= 9);
}

// ---------------------------------------------------------------------------
// Transcripts

/// `{transcriptContentUrl}?$format=text/vtt`.
fn vtt_url(t: &recarch_graph_sim::TranscriptInfo) -> String {
    format!("{}?$format=text/vtt", t.transcript_content_url)
}

#[tokio::test]
async fn transcript_delta_rounds_pair_with_recordings() {
    let (sim, c, t) = signed_in(|c| c.page_size = 3).await;
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 10);
    let other_rec = sim.add_recording(&org, 10);
    let paired = sim.add_transcript(&org, Some(&rec), 2000);
    let alone = sim.add_transcript(&org, None, 500);
    for _ in 0..5 {
        sim.add_transcript(&org, None, 100);
    }
    // Another organizer's transcripts stay out of this one's rounds.
    sim.add_transcript(&sim.add_organizer(), None, 100);
    let all = sim.transcripts(&org);
    assert_eq!(all.len(), 7);
    assert_eq!(all[0], paired);

    // Shared meeting and correlation ids; RecordingInfo carries the recording's.
    assert_eq!(paired.meeting_id, rec.meeting_id);
    assert_eq!(paired.content_correlation_id, rec.content_correlation_id);
    assert_ne!(alone.meeting_id, rec.meeting_id);
    assert_ne!(alone.meeting_id, other_rec.meeting_id);
    assert_ne!(alone.content_correlation_id, rec.content_correlation_id);
    assert!(is_guid(&rec.content_correlation_id));
    let (recs, _, _) = round(&c, &sim.recordings_delta_url(&org), &t).await;
    assert_eq!(
        ids(&recs),
        vec![rec.id.clone(), other_rec.id.clone()],
        "recordings only"
    );
    assert_eq!(recs[0]["contentCorrelationId"], rec.content_correlation_id.as_str());

    let (items, nexts, delta) = round(&c, &sim.transcripts_delta_url(&org), &t).await;
    assert_eq!(ids(&items), tids(&all));
    assert_eq!(nexts.len(), 2, "7 items in pages of 3");
    for (item, info) in items.iter().zip(&all) {
        assert_item(item, "callTranscript", &info.meeting_id, &info.created);
        assert_eq!(item["contentCorrelationId"], info.content_correlation_id.as_str());
        assert!(item["endDateTime"].is_string() && item["callId"].is_string(), "{item}");
        assert_eq!(item["transcriptContentUrl"], info.transcript_content_url.as_str());
        // Graph's callTranscript has no such property (the metadata is `…/metadataContent`).
        assert!(item.get("metadataContentUrl").is_none(), "{item}");
        assert_eq!(item["meetingOrganizer"]["user"]["id"], org.as_str());
        assert_eq!(
            item["meetingOrganizer"]["user"]["tenantId"],
            sim.config().tenant_id.as_str()
        );
        let prefix = format!("{}/users/{org}/onlineMeetings/", sim.base_url());
        assert!(info.transcript_content_url.starts_with(&prefix));
        assert!(info.transcript_content_url.ends_with("/content"));
        assert!(info.transcript_content_url.contains("/transcripts/"));
        assert!(info.transcript_content_url.contains("%2B") && info.transcript_content_url.contains("%3D"));
        assert_eq!(
            info.metadata_content_url,
            info.transcript_content_url.replace("/content", "/metadataContent")
        );
    }
    assert_eq!(items[0]["callId"], recs[0]["callId"], "the recording's call");
    // Opaque links of both shapes, naming the transcripts function.
    assert!(
        nexts[0].contains(&format!("/users/{org}/onlineMeetings/getAllTranscripts(")),
        "{}",
        nexts[0]
    );
    assert!(
        nexts[1].contains(&format!("/users('{org}')/onlineMeetings/getAllTranscripts(")),
        "{}",
        nexts[1]
    );
    for l in nexts.iter().chain([&delta]) {
        assert!(l.contains("%2B") && l.contains("%2F") && l.contains("%3D"), "{l}");
    }

    // The deltaLink brings only what is new, recordings never.
    let newer = sim.add_transcript(&org, Some(&other_rec), 10);
    sim.add_recording(&org, 10);
    let (items, _, _) = round(&c, &delta, &t).await;
    assert_eq!(ids(&items), vec![newer.id.clone()]);
    // A transcripts token on the recordings path is refused.
    let on_recordings = nexts[0].replace("getAllTranscripts", "getAllRecordings");
    let (s, _, body) = get(&c, &on_recordings, &t).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // startDateTime, $select and v1.0 like recordings; $select names callTranscript properties.
    let cut = &all[3].created[..19];
    let url = format!(
        "{}/v1.0/users('{org}')/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='{org}',startDateTime={cut}Z)/delta?$select=id,transcriptContentUrl",
        sim.graph_origin()
    );
    let (items, _, delta) = round(&c, &url, &t).await;
    assert_eq!(
        ids(&items),
        tids(&all[3..]),
        "the newer one belongs to an earlier meeting"
    );
    let keys = keys(&items[0]);
    assert_eq!(keys, HashSet::from(["@odata.type", "id", "transcriptContentUrl"]));
    assert!(delta.contains("/v1.0/"), "{delta}");
    for bad in ["recordingContentUrl", "shoeSize"] {
        let url = format!("{}?$select={bad}", sim.transcripts_delta_url(&org));
        let (s, _, body) = get(&c, &url, &t).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("callTranscript")
        );
    }
    let (s, _, _) = get(
        &c,
        &sim.transcripts_delta_url("11111111-2222-4333-8444-555555555555"),
        &t,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let stats = sim.stats();
    assert_eq!(stats.transcript_delta_requests, 3 + 1 + 2 + 2 + 1);
    assert_eq!(
        stats.delta_requests, 2,
        "the recordings round, the token on the recordings path"
    );

    // Deterministic from the seed.
    let same = sim_with(|c| c.page_size = 3).await;
    let org2 = same.add_organizer();
    let rec2 = same.add_recording(&org2, 10);
    let paired2 = same.add_transcript(&org2, Some(&rec2), 2000);
    assert_eq!(paired2.id, paired.id);
    assert_eq!(paired2.created, paired.created);
    assert_eq!(paired2.size, paired.size);
    assert_eq!(same.transcript_content(&paired2.id), sim.transcript_content(&paired.id));
    let other = sim_with(|c| c.seed = 9).await;
    let t3 = other.add_transcript(&org, None, 2000);
    assert_ne!(t3.id, paired.id);
    assert_ne!(other.transcript_content(&t3.id), sim.transcript_content(&alone.id));
}

#[tokio::test]
async fn transcript_deltas_share_the_recordings_faults() {
    let (sim, c, t) = signed_in(|c| c.page_size = 2).await;
    let org = sim.add_organizer();
    let all: Vec<_> = (0..5).map(|_| sim.add_transcript(&org, None, 10)).collect();
    let url = sim.transcripts_delta_url(&org);

    // Throttles on Target::Delta, then the round goes on.
    sim.faults().throttle(Target::Delta, 503, Some(2), 1);
    let (s, headers, body) = get(&c, &url, &t).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["retry-after"], "2");

    // Empty pages and duplicates.
    sim.faults().empty_pages(true);
    sim.faults().duplicate_items(true);
    let (items, nexts, delta) = round(&c, &url, &t).await;
    assert_eq!(nexts.len(), 4, "2 + empty + 2 + empty + 1");
    assert_eq!(items.len(), 7, "two repeats");
    assert_eq!(ids(&items).iter().collect::<HashSet<_>>().len(), 5);
    sim.faults().clear();

    // Older items replayed in the next delta round.
    let newer = sim.add_transcript(&org, None, 10);
    sim.faults().replay_older(1);
    let (items, _, _) = round(&c, &delta, &t).await;
    assert_eq!(ids(&items), vec![all[0].id.clone(), newer.id.clone()]);

    // 410 with a Location that keeps the function and its options.
    let start = format!("{}Z", &all[1].created[..19]);
    let first = format!(
        "{}/users/{org}/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='{org}',startDateTime={start})/delta",
        sim.base_url()
    );
    let (_, _, body) = get(&c, &first, &t).await;
    let next = next_link(&body);
    sim.faults().expire_sync_state("syncStateNotFound", true);
    let (s, headers, body) = get(&c, &next, &t).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(body["error"]["code"], "syncStateNotFound");
    let location = headers["location"].to_str().expect("location");
    assert_eq!(location, first);
    let (items, _, _) = round(&c, location, &t).await;
    assert_eq!(items.len(), 5, "from the second transcript on, the newer one included");
    sim.faults()
        .expire_sync_state_with("resyncRequired", SyncLocation::DropsOptions);
    let (_, headers, _) = get(&c, &next, &t).await;
    assert_eq!(headers["location"], url.as_str());

    // No access policy for this organizer: transcripts too.
    sim.faults().organizer_forbidden(&org, true);
    let (s, _, body) = get(&c, &url, &t).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "Forbidden");
    sim.faults().organizer_forbidden(&org, false);

    // Metered like recordings.
    sim.faults().payment_required(true);
    assert_eq!(get(&c, &url, &t).await.0, StatusCode::PAYMENT_REQUIRED);
    sim.faults().clear();
    assert_eq!(get(&c, &url, &t).await.0, StatusCode::OK);
    assert_eq!(sim.stats().forbidden, 1);
}

#[tokio::test]
async fn transcript_content_is_webvtt_only_with_format() {
    let (sim, c, t) = signed_in(|c| c.content_mode = ContentMode::Direct).await;
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 10);
    let tr = sim.add_transcript(&org, Some(&rec), 5000);
    assert!((5000..5300).contains(&tr.size), "{}", tr.size);

    let (s, headers, body) = content_bytes(&c, &vtt_url(&tr), Some(&t)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/vtt");
    assert_eq!(headers["content-length"], tr.size.to_string().as_str());
    assert_eq!(body.len() as u64, tr.size);
    assert_eq!(Some(body.clone()), sim.transcript_content(&tr.id));
    let text = String::from_utf8(body).expect("utf-8");
    assert!(text.starts_with("WEBVTT\n\n"), "{text}");
    let cues = text.matches(" --> ").count();
    assert!(cues > 10, "{text}");
    assert_eq!(text.matches("\n<v ").count(), cues, "one speaker line per cue");
    // The query option may be percent-encoded.
    let encoded = format!("{}?%24format=text%2Fvtt", tr.transcript_content_url);
    assert_eq!(content_bytes(&c, &encoded, Some(&t)).await.0, StatusCode::OK);

    // Without $format: 406, even with Accept: text/vtt; another format: 400.
    let (s, _, body) = get(&c, &tr.transcript_content_url, &t).await;
    assert_eq!(s, StatusCode::NOT_ACCEPTABLE, "{body}");
    assert_eq!(body["error"]["code"], "NotAcceptable");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("$format=text/vtt")
    );
    let r = c
        .get(&tr.transcript_content_url)
        .bearer_auth(&t)
        .header("accept", "text/vtt")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    let docx = format!(
        "{}?$format=application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        tr.transcript_content_url
    );
    let (s, _, body) = get(&c, &docx, &t).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // Metadata: JSON, one entry per cue, always direct.
    let (s, headers, body) = content_bytes(&c, &tr.metadata_content_url, Some(&t)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(Some(body.clone()), sim.transcript_metadata(&tr.id));
    let entries: Vec<Value> = serde_json::from_slice(&body).expect("json");
    assert_eq!(entries.len(), cues);
    let first = &entries[0];
    for f in [
        "id",
        "startOffset",
        "endOffset",
        "speakerName",
        "speakerId",
        "spokenLanguage",
        "spokenText",
    ] {
        assert!(first[f].is_string(), "{f}: {first}");
    }
    assert!(text.contains(&format!(
        "<v {}>{}</v>",
        first["speakerName"].as_str().expect("name"),
        first["spokenText"].as_str().expect("text")
    )));

    // Unknown ids, the wrong meeting, no token.
    let wrong_meeting = tr.transcript_content_url.replace(
        &url_segment(&tr.meeting_id),
        &url_segment(&sim.add_transcript(&org, None, 1).meeting_id),
    );
    for url in [
        format!("{wrong_meeting}?$format=text/vtt"),
        vtt_url(&tr).replace("/transcripts/", "/transcripts/x"),
        tr.metadata_content_url.replace("/transcripts/", "/transcripts/x"),
    ] {
        let (s, _, body) = get(&c, &url, &t).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{url}: {body}");
    }
    assert_eq!(content_bytes(&c, &vtt_url(&tr), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        content_bytes(&c, &tr.metadata_content_url, None).await.0,
        StatusCode::UNAUTHORIZED
    );

    let stats = sim.stats();
    assert_eq!(stats.transcript_content_requests_by_id.get(&tr.id), Some(&2));
    assert_eq!(stats.transcript_metadata_requests_by_id.get(&tr.id), Some(&1));
    assert_eq!(
        stats.content_requests, 0,
        "the recording content endpoint was not asked"
    );
    assert!(stats.content_requests_by_id.is_empty());
}

/// The percent-encoded path segment of `s`, as the simulator writes it in URLs.
fn url_segment(s: &str) -> String {
    s.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

#[tokio::test]
async fn transcript_content_redirects_like_recordings() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let org = sim.add_organizer();
    let tr = sim.add_transcript(&org, None, 20_000);
    let vtt = sim.transcript_content(&tr.id).expect("known transcript");

    // Without $format the redirect is not even offered.
    assert_eq!(
        get(&c, &tr.transcript_content_url, &t).await.0,
        StatusCode::NOT_ACCEPTABLE
    );
    let (s, headers, _) = content_bytes(&c, &vtt_url(&tr), Some(&t)).await;
    assert_eq!(s, StatusCode::FOUND);
    let location = headers["location"].to_str().expect("location").to_owned();
    assert!(location.starts_with(&format!("{}/download/", sim.download_origin())));
    let (s, headers, body) = content_bytes(&c, &location, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/vtt");
    assert_eq!(body, vtt);
    // Ranges, as for recordings.
    let r = c
        .get(&location)
        .header("range", "bytes=0-5")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.bytes().await.expect("body")[..], b"WEBVTT");

    // Relative redirects resolve against the transcript's own URL.
    sim.faults().redirect_style(RedirectStyle::Relative);
    let (s, headers, _) = content_bytes(&c, &vtt_url(&tr), Some(&t)).await;
    assert_eq!(s, StatusCode::FOUND);
    let loc1 = headers["location"].to_str().expect("location").to_owned();
    let hop1 = url::Url::parse(&vtt_url(&tr)).expect("url").join(&loc1).expect("join");
    assert!(hop1.path().ends_with("/stream"), "{hop1}");
    assert!(hop1.path().contains("/transcripts/"), "{hop1}");
    let (s, headers, _) = content_bytes(&c, hop1.as_str(), None).await;
    assert_eq!(s, StatusCode::FOUND);
    let hop2 = hop1
        .join(headers["location"].to_str().expect("location"))
        .expect("join");
    let (s, _, body) = content_bytes(&c, hop2.as_str(), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, vtt);
    // A recording's hop path does not serve a transcript's signature.
    let as_recording = hop1.as_str().replace("/transcripts/", "/recordings/");
    assert_eq!(content_bytes(&c, &as_recording, None).await.0, StatusCode::NOT_FOUND);

    // A standard client following a chain gets the same bytes.
    sim.faults().redirect_style(RedirectStyle::Chain(3));
    let r = follow_redirects(&vtt_url(&tr), &t).await;
    assert_eq!(r.bytes().await.expect("body").to_vec(), vtt);
    let stats = sim.stats();
    assert_eq!(stats.transcript_content_requests_by_id.get(&tr.id), Some(&3));
    assert_eq!(stats.auth_header_on_download_origin, 0);

    // Alternate counts transcripts on their own: the first is direct.
    let alt = sim_with(|c| c.content_mode = ContentMode::Alternate).await;
    let t = token(&alt, &c).await;
    alt.add_recording("someone", 10);
    let a = alt.add_transcript("someone", None, 10);
    let b = alt.add_transcript("someone", None, 10);
    assert_eq!(content_bytes(&c, &vtt_url(&a), Some(&t)).await.0, StatusCode::OK);
    assert_eq!(content_bytes(&c, &vtt_url(&b), Some(&t)).await.0, StatusCode::FOUND);
    // Metadata is always direct.
    assert_eq!(
        content_bytes(&c, &b.metadata_content_url, Some(&t)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn disabled_transcripts_answer_403_and_recordings_go_on() {
    let (sim, c, t) = signed_in(|c| c.page_size = 1).await;
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 1000);
    let tr = sim.add_transcript(&org, Some(&rec), 1000);
    sim.add_transcript(&org, None, 1000);
    let (_, _, body) = get(&c, &sim.transcripts_delta_url(&org), &t).await;
    let next = next_link(&body);
    // A download URL handed out before the switch.
    let (_, headers, _) = content_bytes(&c, &vtt_url(&tr), Some(&t)).await;
    let location = headers["location"].to_str().expect("location").to_owned();

    sim.faults().transcripts_disabled(true);
    for url in [
        sim.transcripts_delta_url(&org),
        next.clone(),
        vtt_url(&tr),
        tr.metadata_content_url.clone(),
    ] {
        let (s, _, body) = get(&c, &url, &t).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{url}: {body}");
        assert_eq!(body["error"]["code"], "Forbidden");
        assert_eq!(
            body["error"]["message"],
            recarch_graph_sim::TRANSCRIPTS_DISABLED_MESSAGE
        );
    }
    let (s, _, body) = content_bytes(&c, &location, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "on the download origin too");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], "Forbidden");
    assert!(
        recarch_graph_sim::TRANSCRIPTS_DISABLED_MESSAGE.contains("disabled by tenant admin"),
        "a realistic message"
    );

    // Recordings are not affected.
    let (items, _, _) = round(&c, &sim.recordings_delta_url(&org), &t).await;
    assert_eq!(ids(&items), vec![rec.id.clone()]);
    assert_eq!(content_bytes(&c, &rec.content_url, Some(&t)).await.0, StatusCode::FOUND);
    // Authentication still comes first.
    assert_eq!(get(&c, &vtt_url(&tr), "expired").await.0, StatusCode::UNAUTHORIZED);

    let stats = sim.stats();
    assert_eq!(stats.transcript_forbidden, 5);
    assert_eq!(stats.forbidden, 0, "that counter is organizer_forbidden's");
    assert!(stats.transcript_content_requests_by_id.get(&tr.id) == Some(&1));

    sim.faults().transcripts_disabled(false);
    let (items, _, _) = round(&c, &next, &t).await;
    assert_eq!(items.len(), 1);
    assert_eq!(content_bytes(&c, &location, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn content_faults_apply_to_transcript_content_and_metadata() {
    let sim = sim_with(|c| c.content_mode = ContentMode::Direct).await;
    let c = reqwest::Client::new();
    let t = token(&sim, &c).await;
    let org = sim.add_organizer();
    let bad = sim.add_transcript(&org, None, 600_000);
    let good = sim.add_transcript(&org, None, 600_000);

    sim.faults().content_status(&bad.id, Some(404));
    for url in [vtt_url(&bad), bad.metadata_content_url.clone()] {
        let (s, _, body) = get(&c, &url, &t).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{url}");
        assert_eq!(body["error"]["code"], "itemNotFound");
    }
    assert_eq!(content_bytes(&c, &vtt_url(&good), Some(&t)).await.0, StatusCode::OK);
    assert_eq!(sim.stats().content_refused_by_id.get(&bad.id), Some(&2));
    sim.faults().content_status(&bad.id, None);

    sim.faults().content_always_truncated(&bad.id, true);
    for url in [vtt_url(&bad), bad.metadata_content_url.clone()] {
        for _ in 0..2 {
            let r = send(&c, &url, &t).await;
            assert_eq!(r.status(), StatusCode::OK);
            let announced = r.content_length().expect("content-length");
            let (got, err) = read_body(r).await;
            assert!(err.is_some(), "{url}: the body must end in an error");
            assert!(got <= announced / 2, "{url}: got {got} of {announced}");
        }
    }
    let body = whole_body(&c, &vtt_url(&good), &t).await;
    assert_eq!(Some(body.to_vec()), sim.transcript_content(&good.id));
    // A one-shot drop hits the next transcript body too.
    sim.faults().content_always_truncated(&bad.id, false);
    sim.faults().drop_mid_body(1);
    let r = send(&c, &good.metadata_content_url.clone(), &t).await;
    assert!(read_body(r).await.1.is_some());
    let body = whole_body(&c, &vtt_url(&bad), &t).await;
    assert_eq!(Some(body.to_vec()), sim.transcript_content(&bad.id));
}

// ---------------------------------------------------------------------------
// Contact folders

#[tokio::test]
async fn contact_folders_top_level_nested_and_default() {
    let (sim, c, t) = signed_in(|c| c.page_size = 2).await;
    let user = "5f1c0e2a-1111-4222-8333-944455556666";
    sim.add_contact(user, "AAMkFolderA=", "In A");
    sim.add_contact(user, "AAMkFolderB=", "In B");
    let nested = sim.add_contact_folder(user, "Nested", Some("AAMkFolderA="));
    let deeper = sim.add_contact_folder(user, "Deeper", Some(&nested));
    let family = sim.add_contact_folder(user, "Family", None);
    sim.add_contact(user, &nested, "Nested Person");
    sim.add_contact(user, "contacts", "Default Person");
    let default = sim.default_contact_folder(user);
    for id in [&nested, &deeper, &family, &default] {
        assert!(
            id.starts_with("AAMkA") && id.contains('+') && id.contains('/') && id.ends_with('='),
            "{id}"
        );
    }

    // Top-level folders only: not the default one, not the nested ones.
    let (folders, nexts) = all_pages(&c, &sim.contact_folders_url(user), &t).await;
    assert_eq!(nexts.len(), 1, "3 folders in pages of 2");
    assert!(nexts[0].contains("$skip=2"), "{}", nexts[0]);
    assert_eq!(ids(&folders), ["AAMkFolderA=", "AAMkFolderB=", family.as_str()]);
    assert_eq!(folders[0]["displayName"], "AAMkFolderA=");
    assert_eq!(folders[2]["displayName"], "Family");
    for f in &folders {
        assert_eq!(f["parentFolderId"], default.as_str(), "{f}");
        assert_eq!(f.as_object().expect("object").len(), 3, "{f}");
    }
    let (one_by_one, nexts) = all_pages(&c, &format!("{}?$top=1", sim.contact_folders_url(user)), &t).await;
    assert_eq!(ids(&one_by_one), ids(&folders));
    assert_eq!(nexts.len(), 2);

    // The default folder by its well-known name.
    let (s, _, body) = get(&c, &format!("{}/contacts", sim.contact_folders_url(user)), &t).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["id"], default.as_str());
    assert_eq!(body["displayName"], "Contacts");
    assert!(body["parentFolderId"].is_string() && body["parentFolderId"] != default.as_str());
    let (s, _, body) = get(
        &c,
        &format!("{}/{}", sim.contact_folders_url(user), url_segment(&nested)),
        &t,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["parentFolderId"], "AAMkFolderA=");

    // Nested folders through childFolders.
    let children = |folder: &str| sim.child_folders_url(user, folder);
    assert_eq!(
        ids(&all_pages(&c, &children("AAMkFolderA="), &t).await.0),
        vec![nested.clone()]
    );
    assert_eq!(
        ids(&all_pages(&c, &children(&nested), &t).await.0),
        vec![deeper.clone()]
    );
    assert!(all_pages(&c, &children(&deeper), &t).await.0.is_empty());
    assert_eq!(ids(&all_pages(&c, &children("contacts"), &t).await.0), ids(&folders));
    assert_eq!(ids(&all_pages(&c, &children(&default), &t).await.0), ids(&folders));
    let every: Vec<String> = sim.contact_folders(user).into_iter().map(|f| f.id).collect();
    assert_eq!(
        every,
        [&default, "AAMkFolderA=", "AAMkFolderB=", &nested, &deeper, &family].map(|s| s.to_owned())
    );

    // Each folder has its own contacts delta, the default one by name or id.
    let (items, _, _) = round(&c, &sim.contacts_delta_url(user, &nested), &t).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["displayName"], "Nested Person");
    assert_eq!(items[0]["parentFolderId"], nested.as_str());
    let (items, _, delta) = round(&c, &sim.contacts_delta_url(user, "contacts"), &t).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["displayName"], "Default Person");
    assert!(delta.contains(&url_segment(&default)), "links carry the id: {delta}");
    let (items, _, _) = round(&c, &sim.contacts_delta_url(user, &default), &t).await;
    assert_eq!(items[0]["displayName"], "Default Person");

    // Errors: an unknown folder, an unknown user, bad paging; a user without contacts has none.
    for (url, status, code) in [
        (children("nope"), StatusCode::NOT_FOUND, "ErrorItemNotFound"),
        (
            format!("{}/nope", sim.contact_folders_url(user)),
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
        ),
        (
            sim.contact_folders_url("nobody@contoso.com"),
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
        ),
        (
            format!("{}?$top=0", sim.contact_folders_url(user)),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
        (
            format!("{}?$skip=x", sim.contact_folders_url(user)),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
    ] {
        let (s, _, body) = get(&c, &url, &t).await;
        assert_eq!(s, status, "{url}: {body}");
        assert_eq!(body["error"]["code"], code, "{url}");
    }
    let organizer = sim.add_organizer();
    assert!(
        all_pages(&c, &sim.contact_folders_url(&organizer), &t)
            .await
            .0
            .is_empty()
    );

    // Throttles of their own; a token is needed.
    sim.faults().throttle(Target::ContactFolders, 429, Some(1), 1);
    assert_eq!(
        get(&c, &sim.contact_folders_url(user), &t).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get(&c, &sim.contact_folders_url(user), &t).await.0, StatusCode::OK);
    assert_eq!(
        get(&c, &sim.contact_folders_url(user), "bad").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sim.stats().contact_folder_requests, 2 + 3 + 2 + 7 + 5 + 1 + 3);

    // Deterministic from the seed.
    let same = sim_with(|c| c.page_size = 2).await;
    same.add_contact(user, "AAMkFolderA=", "In A");
    same.add_contact(user, "AAMkFolderB=", "In B");
    assert_eq!(same.add_contact_folder(user, "Nested", Some("AAMkFolderA=")), nested);
    assert_eq!(same.default_contact_folder(user), default);
}

#[tokio::test]
async fn contacts_delta_selects_phones_and_companies_and_takes_delta_faults() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let user = "adele@contoso.com";
    let folder = sim.add_contact_folder(user, "Clients", None);
    let a = sim.add_contact(user, &folder, "Ada Lovelace");
    let b = sim.add_contact(user, &folder, "Charles Babbage");
    sim.add_contact(user, &folder, "Grace Hopper");
    let select = "displayName,emailAddresses,businessPhones,companyName";
    let url = format!("{}?$select={select}", sim.contacts_delta_url(user, &folder));

    // Throttled first, then served; maxpagesize echoed.
    sim.faults().throttle(Target::Delta, 429, Some(1), 1);
    let r = send_with(&c, &url, Some(&t), PREFER_TWO).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = page_of_two(send_with(&c, &url, Some(&t), PREFER_TWO).await).await;
    let page = body["value"].as_array().expect("value");
    let keys = keys(&page[0]);
    assert_eq!(
        keys,
        HashSet::from([
            "@odata.type",
            "@odata.etag",
            "id",
            "displayName",
            "emailAddresses",
            "businessPhones",
            "companyName"
        ])
    );
    assert_eq!(page[0]["emailAddresses"][0]["address"], "ada.lovelace@contoso.com");
    let phone = page[0]["businessPhones"][0].as_str().expect("phone");
    assert!(phone.starts_with("+1 425 555 "), "{phone}");
    assert!(page[0]["companyName"].as_str().is_some_and(|s| !s.is_empty()));
    assert_ne!(page[0]["businessPhones"], page[1]["businessPhones"]);

    // The next page under a throttle, then the same link works.
    let next = next_link(&body);
    sim.faults().throttle(Target::Delta, 503, None, 1);
    assert_eq!(get(&c, &next, &t).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let (items, _, delta) = round(&c, &next, &t).await;
    assert_eq!(items.len(), 1);

    // Changes show in the next round, still with the selected properties.
    sim.update_contact(user, &folder, &a, "Augusta Ada King");
    sim.remove_contact(user, &folder, &b, false);
    let (items, _, delta2) = round(&c, &delta, &t).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0]["displayName"], "Augusta Ada King");
    assert!(items[0]["companyName"].is_string() && items[0].get("givenName").is_none());
    assert_eq!(items[1]["@removed"]["reason"], "changed");

    // Expired sync state: 410 for the contact delta links too.
    sim.faults().expire_sync_state("syncStateNotFound", true);
    let (s, headers, _) = get(&c, &delta2, &t).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(
        headers["location"],
        format!("{}?$select={select}", sim.contacts_delta_url(user, &folder)).as_str()
    );
}

#[tokio::test]
async fn online_meetings_and_user_names_are_served_with_their_faults() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let org = sim.add_organizer();
    let rec = sim.add_recording(&org, 1024);
    let meeting = rec.meeting_id.clone();
    let url = format!(
        "{}/users/{org}/onlineMeetings/{}?$select=subject,startDateTime,endDateTime",
        sim.base_url(),
        urlencoding(&meeting)
    );
    let (s, _, body) = get(&c, &url, &t).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let subject = sim.meeting_subject(&org, &meeting).expect("a known meeting");
    assert_eq!(body["subject"], subject.as_str());
    assert!(subject.ends_with(" 1"), "{subject}");
    assert_eq!(body["id"], meeting.as_str());
    assert!(body["startDateTime"].as_str().expect("a start") < rec.created.as_str());
    assert!(body["endDateTime"].as_str().expect("an end") > rec.created.as_str());
    assert!(body.get("joinWebUrl").is_none(), "not selected: {body}");
    sim.set_meeting_subject(&meeting, "Board meeting");
    assert_eq!(get(&c, &url, &t).await.2["subject"], "Board meeting");
    // A meeting no artifact names is unknown.
    let unknown = format!("{}/users/{org}/onlineMeetings/bm9uZQ==", sim.base_url());
    assert_eq!(get(&c, &unknown, &t).await.0, StatusCode::NOT_FOUND);
    // Faults by meeting, then by organizer.
    sim.faults().online_meeting_status(&meeting, Some(403));
    let (s, _, body) = get(&c, &url, &t).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "accessDenied");
    sim.faults().online_meeting_status(&meeting, None);
    sim.faults().online_meeting_status(&org.to_uppercase(), Some(500));
    assert_eq!(get(&c, &url, &t).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    sim.faults().clear();
    assert_eq!(get(&c, &url, &t).await.0, StatusCode::OK);
    assert_eq!(sim.stats().online_meeting_requests_by_id[&meeting], 5);

    // The user's names, when `$select` asks for them.
    let user = format!("{}/users/{org}?$select=displayName,userPrincipalName", sim.base_url());
    let (s, _, body) = get(&c, &user, &t).await;
    assert_eq!(s, StatusCode::OK);
    let upn = sim.user_upn(&org).expect("an organizer is a user");
    assert_eq!(body["userPrincipalName"], upn.as_str());
    assert!(body["displayName"].as_str().is_some_and(|n| !n.is_empty()), "{body}");
    sim.faults().user_status(&org, Some(403));
    let (s, _, body) = get(&c, &user, &t).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    sim.faults().user_status(&org, Some(404));
    assert_eq!(get(&c, &user, &t).await.0, StatusCode::NOT_FOUND);
    sim.faults().user_status(&org, None);
    assert_eq!(get(&c, &user, &t).await.0, StatusCode::OK);
    assert_eq!(sim.stats().user_requests_by_id[&org], 4);
}

/// `s` percent-encoded as one path segment.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}
