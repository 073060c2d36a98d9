//! Integration tests: real HTTP against the simulator with reqwest.

use std::collections::HashSet;
use std::time::Duration;

use recarch_graph_sim::{ContentMode, GraphSim, Origin, SimConfig, Target};
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

async fn get(c: &reqwest::Client, url: &str, token: &str) -> (StatusCode, HeaderMap, Value) {
    let r = c.get(url).bearer_auth(token).send().await.expect("request");
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

/// Follows a round to its deltaLink: (items, nextLinks, deltaLink).
async fn round(c: &reqwest::Client, url: &str, token: &str) -> (Vec<Value>, Vec<String>, String) {
    let mut items = Vec::new();
    let mut nexts = Vec::new();
    let mut url = url.to_owned();
    for _ in 0..1000 {
        let (status, _, body) = get(c, &url, token).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        assert!(body["@odata.context"].is_string(), "{body}");
        items.extend(body["value"].as_array().expect("value").iter().cloned());
        let next = body.get("@odata.nextLink").and_then(Value::as_str);
        let delta = body.get("@odata.deltaLink").and_then(Value::as_str);
        match (next, delta) {
            (Some(n), None) => {
                nexts.push(n.to_owned());
                url = n.to_owned();
            }
            (None, Some(d)) => return (items, nexts, d.to_owned()),
            _ => panic!("exactly one link expected: {body}"),
        }
    }
    panic!("round did not end");
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
    let sim = sim_with(|_| {}).await;
    let c = client();
    let t = token(&sim, &c).await;
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
        let id = item["id"].as_str().expect("id");
        assert!(id.contains('+') && id.contains('/') && id.ends_with('='), "{id}");
        assert_eq!(item["@odata.type"], "#microsoft.graph.callRecording");
        assert_eq!(item["meetingId"], info.meeting_id.as_str());
        assert_eq!(item["createdDateTime"], info.created.as_str());
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
    let sim = sim_with(|_| {}).await;
    let c = client();
    let t = token(&sim, &c).await;
    let org = sim.add_organizer();
    let recs: Vec<_> = (0..5).map(|_| sim.add_recording(&org, 1)).collect();
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

fn ids_of(recs: &[recarch_graph_sim::RecordingInfo]) -> Vec<String> {
    recs.iter().map(|r| r.id.clone()).collect()
}

#[tokio::test]
async fn unknown_and_reencoded_tokens_are_rejected() {
    let sim = sim_with(|c| c.page_size = 2).await;
    let c = client();
    let t = token(&sim, &c).await;
    let org = sim.add_organizer();
    for _ in 0..5 {
        sim.add_recording(&org, 1);
    }
    let (_, _, body) = get(&c, &sim.recordings_delta_url(&org), &t).await;
    let next = body["@odata.nextLink"].as_str().expect("nextLink").to_owned();
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
    let sim = sim_with(|c| c.page_size = 2).await;
    let c = client();
    let t = token(&sim, &c).await;
    let org = sim.add_organizer();
    for _ in 0..3 {
        sim.add_recording(&org, 1);
    }
    let (_, _, body) = get(&c, &sim.recordings_delta_url(&org), &t).await;
    let next = body["@odata.nextLink"].as_str().expect("nextLink").to_owned();
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
    let fresh = body["@odata.nextLink"].as_str().expect("nextLink").to_owned();
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
    let sim = sim_with(|c| c.content_mode = ContentMode::Direct).await;
    let c = client();
    let t = token(&sim, &c).await;
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
    let r = c
        .get(&rec.content_url)
        .bearer_auth(&t)
        .header("range", "bytes=10-19")
        .send()
        .await
        .expect("request");
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
    let sim = sim_with(|_| {}).await;
    let c = client();
    let t = token(&sim, &c).await;
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
    let follow = reqwest::Client::new();
    let r = follow
        .get(&rec.content_url)
        .bearer_auth(&t)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
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
        let sim = sim_with(|c| c.content_mode = mode).await;
        let c = reqwest::Client::new(); // follows the redirect
        let t = token(&sim, &c).await;
        let size = 2_000_000u64;
        let rec = sim.add_recording("org", size);
        sim.faults().drop_mid_body(1);
        let mut r = c.get(&rec.content_url).bearer_auth(&t).send().await.expect("request");
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
        let r = c.get(&rec.content_url).bearer_auth(&t).send().await.expect("request");
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
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
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
    let sim = sim_with(|c| c.content_mode = ContentMode::Direct).await;
    let c = client();
    let t = token(&sim, &c).await;
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
    let sim = sim_with(|c| c.page_size = 3).await;
    let c = client();
    let t = token(&sim, &c).await;
    let org = sim.add_organizer();
    let all: Vec<String> = (0..7).map(|_| sim.add_recording(&org, 1).id).collect();

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

#[tokio::test]
async fn contacts_delta() {
    let sim = sim_with(|_| {}).await;
    let c = client();
    let t = token(&sim, &c).await;
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
    let r = c
        .get(&url)
        .bearer_auth(&t)
        .header("Prefer", "odata.maxpagesize=2")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["preference-applied"], "odata.maxpagesize=2");
    let body: Value = r.json().await.expect("json");
    let first = body["value"].as_array().expect("value");
    assert_eq!(first.len(), 2);
    let keys: HashSet<&str> = first[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
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
    let targets = [
        "/beta/users/%FF%FE/onlineMeetings/getAllRecordings(meetingOrganizerUserId=%27%FF%27)/delta",
        "/beta/users('/onlineMeetings/getAllRecordings(/delta",
        "/beta/users/x/onlineMeetings/getAllRecordings(meetingOrganizerUserId='x',startDateTime=99999-99-99)/delta?$top=99999999999999999999999",
        "/beta/users/x/onlineMeetings/getAllRecordings(meetingOrganizerUserId='x')/delta?$skiptoken=%ZZ&$deltatoken=",
        "/beta/users/x/onlineMeetings/%%%/recordings/%/content",
        "/beta/users/x/contactFolders/%C3%28/contacts/delta?$select=%FF",
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
    let sim = sim_with(|_| {}).await;
    let c = client();
    let t = token(&sim, &c).await;
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
    let index = http
        .get(format!("{}/files/", sim.download_origin()))
        .send()
        .await
        .expect("index")
        .text()
        .await
        .expect("text");
    assert!(
        index.contains("href=\"rec-000000.mp4\"") && index.contains("href=\"rec-000001.mp4\""),
        "{index}"
    );
    for (name, rec) in [("rec-000000.mp4", &a), ("rec-000001.mp4", &b)] {
        let body = http
            .get(format!("{}/files/{name}", sim.download_origin()))
            .send()
            .await
            .expect("file")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(body.to_vec(), sim.content_bytes(&rec.id).expect("known"));
    }
    let missing = http
        .get(format!("{}/files/rec-000009.mp4", sim.download_origin()))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
}
