//! Ad hoc calls (1:1, group and PSTN): listing by window, paging, errors,
//! throttles, and content through both content modes.

use chrono::{DateTime, Duration, Utc};
use recarch_graph_sim::{AdhocCallKind, ContentMode, GraphSim, RedirectStyle, Target};
use reqwest::StatusCode;
use serde_json::Value;

use super::{content_bytes, follow_redirects, get, pages, sha, signed_in, token};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("rfc3339").with_timezone(&Utc)
}

fn ids(pages: &[Vec<Value>]) -> Vec<String> {
    pages
        .iter()
        .flatten()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

fn sizes(pages: &[Vec<Value>]) -> Vec<usize> {
    pages.iter().map(Vec::len).collect()
}

/// A user with one call of each kind and a recording every hour from
/// 2024-03-01T00:00Z (five, round-robin over the calls), and one recording of
/// another user in the middle.
struct Tenant {
    user: String,
    recordings: Vec<recarch_graph_sim::RecordingInfo>,
    calls: Vec<recarch_graph_sim::CallInfo>,
}

fn tenant(sim: &GraphSim) -> Tenant {
    let user = sim.add_organizer();
    let kinds = [AdhocCallKind::OneToOne, AdhocCallKind::Group, AdhocCallKind::Pstn];
    let calls: Vec<_> = kinds.iter().map(|k| sim.add_adhoc_call(&user, *k)).collect();
    let base = at("2024-03-01T00:00:00Z");
    let recordings = (0..5)
        .map(|k| {
            let call = &calls[k % calls.len()];
            sim.add_adhoc_recording(&user, call, 1000 + k as u64, Some(base + Duration::hours(k as i64)))
        })
        .collect();
    let other = sim.add_organizer();
    let theirs = sim.add_adhoc_call(&other, AdhocCallKind::OneToOne);
    sim.add_adhoc_recording(&other, &theirs, 10, Some(base + Duration::minutes(90)));
    Tenant {
        user,
        recordings,
        calls,
    }
}

#[tokio::test]
async fn adhoc_recordings_are_listed_by_window_and_paged() {
    let (sim, c, t) = signed_in(|c| c.page_size = 2).await;
    let Tenant {
        user,
        recordings,
        calls,
    } = tenant(&sim);
    let all: Vec<String> = recordings.iter().map(|r| r.id.clone()).collect();
    assert_eq!(sim.adhoc_recordings(&user), recordings);
    assert_eq!(sim.adhoc_calls(&user), calls);

    // [01:00, 04:00): the bounds are inclusive and exclusive; the default page size.
    let window = sim.adhoc_recordings_url(
        &user,
        Some(at("2024-03-01T01:00:00Z")),
        Some(at("2024-03-01T04:00:00Z")),
    );
    assert_eq!(
        window,
        format!(
            "{}/users/{user}/adhocCalls/getAllRecordings(userId='{user}',startDateTime=2024-03-01T01:00:00Z,endDateTime=2024-03-01T04:00:00Z)",
            sim.base_url()
        )
    );
    let (got, links) = pages(&c, &window, &t).await;
    assert_eq!(ids(&got), all[1..4]);
    assert_eq!(sizes(&got), [2, 1]);
    // The nextLink carries the window and an opaque token; it is followed as is.
    assert_eq!(links.len(), 1);
    assert!(links[0].starts_with(&format!("{}/users/{user}/adhocCalls/getAllRecordings(", sim.base_url())));
    assert!(links[0].contains("startDateTime=2024-03-01T01:00:00Z"), "{}", links[0]);
    assert!(links[0].contains("$skiptoken="), "{}", links[0]);

    // `$top` on the first request sets the page size for every page.
    let (got, links) = pages(&c, &format!("{}?$top=1", window), &t).await;
    assert_eq!(ids(&got), all[1..4]);
    assert_eq!(sizes(&got), [1, 1, 1]);
    assert!(links.iter().all(|l| !l.contains("$top")), "{links:?}");
    let everything = sim.adhoc_recordings_url(&user, None, None);
    let (got, _) = pages(&c, &format!("{everything}?$top=3"), &t).await;
    assert_eq!(sizes(&got), [3, 2]);
    assert_eq!(ids(&got), all);

    // A nextLink whose token was altered is refused.
    let (_, links) = pages(&c, &everything, &t).await;
    let mut altered = links[0].clone();
    let last = altered.pop().expect("non-empty");
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let (status, _, body) = get(&c, &altered, &t).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Quoted date-times, a start alone, an end alone.
    let quoted = format!(
        "{}/users/{user}/adhocCalls/getAllRecordings(userId='{user}',startDateTime='2024-03-01T03:00:00Z')",
        sim.base_url()
    );
    assert_eq!(ids(&pages(&c, &quoted, &t).await.0), all[3..]);
    let before = sim.adhoc_recordings_url(&user, None, Some(at("2024-03-01T02:00:00Z")));
    assert_eq!(ids(&pages(&c, &before, &t).await.0), all[..2]);

    // The items: callRecording objects of their call; PSTN calls have no organizer.
    let (got, _) = pages(&c, &everything, &t).await;
    let items: Vec<&Value> = got.iter().flatten().collect();
    for (item, rec) in items.iter().zip(&recordings) {
        assert_eq!(item["@odata.type"], "#microsoft.graph.callRecording");
        assert_eq!(item["id"], rec.id.as_str());
        assert_eq!(item["callId"], rec.call_id.as_str());
        assert!(item["meetingId"].is_null(), "{item}");
        assert_eq!(item["createdDateTime"], rec.created.as_str());
        assert_eq!(item["recordingContentUrl"], rec.content_url.as_str());
        assert_eq!(item["contentCorrelationId"], rec.content_correlation_id.as_str());
        assert!(item["endDateTime"].as_str().expect("endDateTime") > rec.created.as_str());
        let call = calls.iter().find(|c| c.id == rec.call_id).expect("its call");
        match call.kind {
            AdhocCallKind::Pstn => assert!(item["meetingOrganizer"].is_null(), "{item}"),
            _ => assert_eq!(item["meetingOrganizer"]["user"]["id"], user.as_str(), "{item}"),
        }
        assert!(rec.meeting_id.is_empty());
        assert_eq!(
            rec.content_url,
            format!(
                "{}/users/{user}/adhocCalls/{}/recordings/{}/content",
                sim.base_url(),
                call.id,
                urlencoding(&rec.id)
            )
        );
    }

    // A late recording: created inside a window already listed, added after.
    let day = sim.adhoc_recordings_url(
        &user,
        Some(at("2024-03-01T00:00:00Z")),
        Some(at("2024-03-02T00:00:00Z")),
    );
    let (before_late, _) = pages(&c, &day, &t).await;
    assert_eq!(ids(&before_late), all);
    let late = sim.add_adhoc_recording(&user, &calls[0], 7, Some(at("2024-03-01T00:30:00Z")));
    let (after_late, _) = pages(&c, &day, &t).await;
    let mut expected = all.clone();
    expected.insert(1, late.id.clone());
    assert_eq!(ids(&after_late), expected);
    assert_eq!(sim.adhoc_recordings(&user)[1], late);

    let stats = sim.stats();
    assert!(stats.adhoc_recording_list_requests >= 10, "{stats:?}");
    assert_eq!(stats.adhoc_transcript_list_requests, 0);
    assert_eq!(stats.delta_requests, 0);
}

/// Percent-encodes a path segment the way the simulator does.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn adhoc_transcripts_are_listed_with_their_recordings() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let user = sim.add_organizer();
    let call = sim.add_adhoc_call(&user, AdhocCallKind::Group);
    let rec = sim.add_adhoc_recording(&user, &call, 100, None);
    let tr = sim.add_adhoc_transcript(&user, &call, Some(&rec), 2000, None);
    let alone = sim.add_adhoc_transcript(&user, &call, None, 500, None);
    assert!(rec.created.as_str() >= call.start.format("%Y-%m-%dT%H:%M:%S").to_string().as_str());
    assert_eq!(tr.call_id, call.id);
    assert_eq!(tr.content_correlation_id, rec.content_correlation_id);
    assert!(tr.created > rec.created, "{tr:?} {rec:?}");
    assert_ne!(alone.content_correlation_id, rec.content_correlation_id);
    assert!(tr.size >= 2000);
    assert_eq!(sim.adhoc_transcripts(&user), [tr.clone(), alone.clone()]);

    let (got, links) = pages(&c, &sim.adhoc_transcripts_url(&user, None, None), &t).await;
    assert!(links.is_empty());
    let items: Vec<&Value> = got.iter().flatten().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["@odata.type"], "#microsoft.graph.callTranscript");
    assert_eq!(items[0]["id"], tr.id.as_str());
    assert_eq!(items[0]["callId"], call.id.as_str());
    assert_eq!(items[0]["transcriptContentUrl"], tr.transcript_content_url.as_str());
    assert_eq!(items[0]["contentCorrelationId"], rec.content_correlation_id.as_str());
    assert_eq!(items[1]["id"], alone.id.as_str());
    // Recordings and transcripts are listed apart.
    let (recordings, _) = pages(&c, &sim.adhoc_recordings_url(&user, None, None), &t).await;
    assert_eq!(ids(&recordings), [rec.id.as_str()]);
    let stats = sim.stats();
    assert_eq!(stats.adhoc_transcript_list_requests, 1);
    assert_eq!(stats.adhoc_recording_list_requests, 1);
}

#[tokio::test]
async fn adhoc_listing_errors_answer_like_graph() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let Tenant { user, .. } = tenant(&sim);
    let base = sim.base_url();
    let bad = |url: String| {
        let c = c.clone();
        let t = t.clone();
        async move {
            let (status, _, body) = get(&c, &url, &t).await;
            (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
        }
    };

    // No userId, or another user's.
    let missing = format!("{base}/users/{user}/adhocCalls/getAllRecordings(startDateTime=2024-01-01T00:00:00Z)");
    assert_eq!(bad(missing).await, (StatusCode::BAD_REQUEST, "BadRequest".to_owned()));
    let empty = format!("{base}/users/{user}/adhocCalls/getAllRecordings()");
    assert_eq!(bad(empty).await.0, StatusCode::BAD_REQUEST);
    let other = sim.add_organizer();
    let mismatch = format!("{base}/users/{user}/adhocCalls/getAllTranscripts(userId='{other}')");
    assert_eq!(bad(mismatch).await, (StatusCode::BAD_REQUEST, "BadRequest".to_owned()));
    // The user's id in another case is the same user.
    let upper = format!(
        "{base}/users/{user}/adhocCalls/getAllRecordings(userId='{}')",
        user.to_ascii_uppercase()
    );
    assert_eq!(bad(upper).await.0, StatusCode::OK);

    // Bad date-times and $top; no delta.
    let url = sim.adhoc_recordings_url(&user, None, None);
    let bad_time = format!("{base}/users/{user}/adhocCalls/getAllRecordings(userId='{user}',startDateTime=yesterday)");
    assert_eq!(bad(bad_time).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(bad(format!("{url}?$top=0")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(bad(format!("{url}?$deltatoken=abc")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(bad(format!("{url}?$skiptoken=abc")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(bad(format!("{url}/delta")).await.0, StatusCode::NOT_FOUND);

    // An unknown user.
    let nobody = "00000000-0000-0000-0000-00000000dead";
    let unknown = sim.adhoc_recordings_url(nobody, None, None);
    assert_eq!(bad(unknown).await.0, StatusCode::NOT_FOUND);

    // Sign-in: no token, an expired one.
    let (status, _, _) = content_bytes(&c, &url, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    sim.faults().expire_access_tokens();
    assert_eq!(
        bad(url.clone()).await,
        (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken".to_owned())
    );
    let t = token(&sim, &c).await;
    let (status, _, _) = get(&c, &url, &t).await;
    assert_eq!(status, StatusCode::OK);

    // No application access policy for this user; transcripts turned off.
    sim.faults().organizer_forbidden(&user, true);
    let (status, _, body) = get(&c, &url, &t).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    sim.faults().organizer_forbidden(&user, false);
    sim.faults().transcripts_disabled(true);
    let (status, _, _) = get(&c, &sim.adhoc_transcripts_url(&user, None, None), &t).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = get(&c, &url, &t).await;
    assert_eq!(status, StatusCode::OK);
    sim.faults().clear();

    let stats = sim.stats();
    assert_eq!(stats.forbidden, 1);
    assert_eq!(stats.transcript_forbidden, 1);
    assert!(stats.unauthorized >= 2, "{stats:?}");
}

#[tokio::test]
async fn adhoc_lists_are_throttled_on_their_own_target() {
    let (sim, c, t) = signed_in(|c| c.page_size = 2).await;
    let Tenant { user, recordings, .. } = tenant(&sim);
    let url = sim.adhoc_recordings_url(&user, None, None);

    // Other targets leave the lists alone.
    sim.faults().throttle(Target::Delta, 503, Some(1), 5);
    let (status, _, _) = get(&c, &url, &t).await;
    assert_eq!(status, StatusCode::OK);
    sim.faults().clear();

    // The first page, then a nextLink: 429 with Retry-After, then served as if nothing happened.
    sim.faults().throttle(Target::AdhocCalls, 429, Some(3), 1);
    let (status, headers, body) = get(&c, &url, &t).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(body["error"]["code"], "TooManyRequests");
    let (status, _, first) = get(&c, &url, &t).await;
    assert_eq!(status, StatusCode::OK);
    let next = first["@odata.nextLink"].as_str().expect("a nextLink").to_owned();
    sim.faults().throttle(Target::AdhocCalls, 503, None, 2);
    assert_eq!(get(&c, &next, &t).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&c, &next, &t).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let (got, _) = pages(&c, &next, &t).await;
    let mut listed = ids(&[first["value"].as_array().expect("value").clone()]);
    listed.extend(ids(&got));
    assert_eq!(listed, recordings.iter().map(|r| r.id.clone()).collect::<Vec<_>>());

    // Their content is `Target::Content`.
    sim.faults().throttle(Target::AdhocCalls, 429, Some(1), 1);
    let (status, _, _) = content_bytes(&c, &recordings[0].content_url, Some(&t)).await;
    assert_eq!(status, StatusCode::FOUND);
    sim.faults().clear();
    sim.faults().throttle(Target::Content, 429, Some(1), 1);
    let (status, _, _) = content_bytes(&c, &recordings[0].content_url, Some(&t)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let stats = sim.stats();
    assert_eq!(stats.throttled, 4);
    assert_eq!(stats.adhoc_content_requests, 2);
    assert_eq!(
        stats.adhoc_recording_content_requests_by_id.get(&recordings[0].id),
        Some(&1)
    );
}

#[tokio::test]
async fn adhoc_content_is_served_directly() {
    let (sim, c, t) = signed_in(|c| c.content_mode = ContentMode::Direct).await;
    let user = sim.add_organizer();
    let call = sim.add_adhoc_call(&user, AdhocCallKind::Pstn);
    let rec = sim.add_adhoc_recording(&user, &call, 700_001, None);
    let tr = sim.add_adhoc_transcript(&user, &call, Some(&rec), 3000, None);

    let (status, headers, body) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(body.len(), 700_001);
    assert_eq!(Some(body.clone()), sim.content_bytes(&rec.id));
    assert_eq!(Some(sha(&body)), sim.content_sha256(&rec.id));

    let vtt_url = format!("{}?$format=text/vtt", tr.transcript_content_url);
    let (status, headers, vtt) = content_bytes(&c, &vtt_url, Some(&t)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/vtt");
    assert_eq!(vtt.len() as u64, tr.size);
    assert_eq!(Some(vtt.clone()), sim.transcript_content(&tr.id));
    assert!(vtt.starts_with(b"WEBVTT\n\n"));
    // Unlike a meeting's, WebVTT without `$format` too; another format is refused.
    let (status, headers, plain) = content_bytes(&c, &tr.transcript_content_url, Some(&t)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/vtt");
    assert_eq!(plain, vtt);
    let docx = format!("{}?$format=application/msword", tr.transcript_content_url);
    assert_eq!(content_bytes(&c, &docx, Some(&t)).await.0, StatusCode::BAD_REQUEST);
    let (status, headers, metadata) = content_bytes(&c, &tr.metadata_content_url, Some(&t)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(Some(metadata), sim.transcript_metadata(&tr.id));

    // The path must name the artifact where it lives: its user and call, under adhocCalls.
    let other = sim.add_organizer();
    let elsewhere = [
        rec.content_url.replace(&user, &other),
        rec.content_url
            .replace(&call.id, "00000000-0000-0000-0000-000000000000"),
        rec.content_url.replace("/adhocCalls/", "/onlineMeetings/"),
        rec.content_url.replace("/recordings/", "/transcripts/") + "?$format=text/vtt",
    ];
    for url in elsewhere {
        let (status, _, _) = content_bytes(&c, &url, Some(&t)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
    }
    // No token: 401; a content fault: its status.
    assert_eq!(
        content_bytes(&c, &rec.content_url, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    sim.faults().content_status(&rec.id, Some(410));
    assert_eq!(content_bytes(&c, &rec.content_url, Some(&t)).await.0, StatusCode::GONE);

    let stats = sim.stats();
    // Every request above went to an ad hoc content path but the one under onlineMeetings.
    assert_eq!(stats.content_requests, 1);
    assert_eq!(stats.adhoc_content_requests, 10);
    assert_eq!(stats.adhoc_recording_content_requests_by_id.get(&rec.id), Some(&1));
    assert_eq!(stats.adhoc_transcript_content_requests_by_id.get(&tr.id), Some(&2));
    assert_eq!(stats.transcript_metadata_requests_by_id.get(&tr.id), Some(&1));
    assert_eq!(stats.content_refused_by_id.get(&rec.id), Some(&1));
    assert!(stats.content_requests_by_id.is_empty());
}

#[tokio::test]
async fn adhoc_content_is_redirected() {
    let (sim, c, t) = signed_in(|c| c.content_mode = ContentMode::Redirect).await;
    let user = sim.add_organizer();
    let call = sim.add_adhoc_call(&user, AdhocCallKind::OneToOne);
    let rec = sim.add_adhoc_recording(&user, &call, 300_000, None);
    let tr = sim.add_adhoc_transcript(&user, &call, None, 1000, None);
    // A meeting recording with the same serial signs other URLs.
    let meeting = sim.add_recording(&user, 300_000);

    let (status, headers, _) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = headers["location"].to_str().expect("location").to_owned();
    assert!(location.starts_with(&format!("{}/download/", sim.download_origin())));
    let (status, headers, body) = content_bytes(&c, &location, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(Some(sha(&body)), sim.content_sha256(&rec.id));
    assert_ne!(sim.content_sha256(&rec.id), sim.content_sha256(&meeting.id));
    let (_, meeting_headers, _) = content_bytes(&c, &meeting.content_url, Some(&t)).await;
    assert_ne!(meeting_headers["location"], location.as_str());

    // With or without `$format=text/vtt`: redirected to the same WebVTT.
    let vtt_url = format!("{}?$format=text/vtt", tr.transcript_content_url);
    for url in [&vtt_url, &tr.transcript_content_url] {
        let (status, headers, _) = content_bytes(&c, url, Some(&t)).await;
        assert_eq!(status, StatusCode::FOUND, "{url}");
        let (status, headers, vtt) = content_bytes(&c, headers["location"].to_str().expect("location"), None).await;
        assert_eq!(status, StatusCode::OK, "{headers:?}");
        assert_eq!(headers["content-type"], "text/vtt");
        assert_eq!(Some(vtt), sim.transcript_content(&tr.id));
    }

    // Relative redirects resolve against the ad hoc content URL, and only there.
    sim.faults().redirect_style(RedirectStyle::Relative);
    let (status, headers, _) = content_bytes(&c, &rec.content_url, Some(&t)).await;
    assert_eq!(status, StatusCode::FOUND);
    let relative = headers["location"].to_str().expect("location").to_owned();
    assert!(relative.starts_with("stream?sig="), "{relative}");
    let content_url = reqwest::Url::parse(&rec.content_url).expect("url");
    let stream = content_url.join(&relative).expect("joins");
    let (status, headers, _) = content_bytes(&c, stream.as_str(), None).await;
    assert_eq!(status, StatusCode::FOUND, "{stream}");
    let bytes_url = stream
        .join(headers["location"].to_str().expect("location"))
        .expect("joins");
    let (status, _, body) = content_bytes(&c, bytes_url.as_str(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Some(sha(&body)), sim.content_sha256(&rec.id));
    let as_meeting = stream.as_str().replace("/adhocCalls/", "/onlineMeetings/");
    assert_eq!(content_bytes(&c, &as_meeting, None).await.0, StatusCode::NOT_FOUND);

    // A client that follows redirects the standard way gets the bytes.
    sim.faults().redirect_style(RedirectStyle::Absolute);
    let r = follow_redirects(&rec.content_url, &t).await;
    assert_eq!(r.bytes().await.expect("body").len(), 300_000);

    let stats = sim.stats();
    assert_eq!(stats.auth_header_on_download_origin, 0);
    assert_eq!(stats.adhoc_recording_content_requests_by_id.get(&rec.id), Some(&3));
    assert_eq!(stats.adhoc_transcript_content_requests_by_id.get(&tr.id), Some(&2));
    assert_eq!(stats.content_requests_by_id.get(&meeting.id), Some(&1));
}

#[tokio::test]
async fn adhoc_artifacts_of_one_call_are_not_listed() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let Tenant { user, calls, .. } = tenant(&sim);
    let base = sim.base_url();
    let call = &calls[0].id;

    // The call, its recordings, its transcripts: a Graph error, never a list.
    let per_call = [
        format!("{base}/users/{user}/adhocCalls/{call}"),
        format!("{base}/users/{user}/adhocCalls/{call}/recordings"),
        format!("{base}/users/{user}/adhocCalls/{call}/transcripts"),
        format!("{base}/users/{user}/adhocCalls/{call}/recordings?$top=5"),
        format!("{base}/users('{user}')/adhocCalls/{call}/Transcripts"),
        format!("{base}/users/{user}/adhocCalls/00000000-0000-0000-0000-000000000000/recordings"),
    ];
    for url in &per_call {
        let (status, headers, body) = get(&c, url, &t).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert!(
            headers["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("application/json")
        );
        assert_eq!(body["error"]["code"], "BadRequest", "{body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains("getAllRecordings"), "{message}");
        assert!(body.get("value").is_none(), "{body}");
    }
    // Signed in first, like every request; any other method is 405.
    let (status, _, _) = content_bytes(&c, &per_call[1], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let r = c.post(&per_call[1]).bearer_auth(&t).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // A listing function without its parameters, or malformed, is no call id; deeper paths are unknown.
    for url in [
        format!("{base}/users/{user}/adhocCalls/getAllRecordings"),
        format!("{base}/users/{user}/adhocCalls/microsoft.graph.getAllTranscripts"),
        format!("{base}/users/{user}/adhocCalls/getAllRecordings(userId='{user}'"),
        format!("{base}/users/{user}/adhocCalls/{call}/participants"),
    ] {
        let (status, _, body) = get(&c, &url, &t).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}: {body}");
    }

    let stats = sim.stats();
    assert_eq!(stats.adhoc_per_call_requests, per_call.len() as u64 + 2);
    assert_eq!(stats.adhoc_recording_list_requests, 0);
    assert_eq!(stats.adhoc_transcript_list_requests, 0);
}

#[tokio::test]
async fn a_forbidden_user_is_refused_its_adhoc_lists_alone() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let Tenant { user, calls, .. } = tenant(&sim);
    sim.add_adhoc_transcript(&user, &calls[1], None, 100, None);
    let other = sim.add_organizer();
    let theirs = sim.add_adhoc_call(&other, AdhocCallKind::Group);
    let rec = sim.add_adhoc_recording(&other, &theirs, 10, None);
    let tr = sim.add_adhoc_transcript(&other, &theirs, Some(&rec), 100, None);
    let lists = |u: &str| {
        [
            sim.adhoc_recordings_url(u, None, None),
            sim.adhoc_transcripts_url(u, Some(at("2024-01-01T00:00:00Z")), None),
        ]
    };

    sim.faults().organizer_forbidden(&user, true);
    for url in lists(&user) {
        let (status, _, body) = get(&c, &url, &t).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}: {body}");
        assert_eq!(body["error"]["code"], "Forbidden");
    }
    // Named in another case.
    let upper = lists(&user.to_ascii_uppercase());
    assert_eq!(get(&c, &upper[0], &t).await.0, StatusCode::FORBIDDEN);
    // Other users' lists are served as before.
    let [recordings, transcripts] = lists(&other);
    assert_eq!(ids(&pages(&c, &recordings, &t).await.0), [rec.id.as_str()]);
    assert_eq!(ids(&pages(&c, &transcripts, &t).await.0), [tr.id.as_str()]);

    // Allowed again: the same requests are served.
    sim.faults().organizer_forbidden(&user, false);
    for url in lists(&user) {
        let (got, _) = pages(&c, &url, &t).await;
        assert!(!ids(&got).is_empty(), "{url}");
    }
    assert_eq!(sim.stats().forbidden, 3);
}

#[tokio::test]
async fn late_adhoc_items_are_listed_by_a_later_window() {
    let (sim, c, t) = signed_in(|_| {}).await;
    let user = sim.add_organizer();
    let call = sim.add_adhoc_call(&user, AdhocCallKind::OneToOne);
    let hour = |h: i64| at("2024-03-01T00:00:00Z") + Duration::hours(h);
    let early = sim.add_adhoc_recording(&user, &call, 10, Some(hour(1)));
    let later = sim.add_adhoc_recording(&user, &call, 10, Some(hour(3)));
    let first = sim.add_adhoc_transcript(&user, &call, None, 100, Some(hour(1)));
    let window = |start, end| {
        [
            sim.adhoc_recordings_url(&user, Some(start), Some(end)),
            sim.adhoc_transcripts_url(&user, Some(start), Some(end)),
        ]
    };
    let [recordings, transcripts] = window(hour(0), hour(6));
    assert_eq!(ids(&pages(&c, &transcripts, &t).await.0), [first.id.as_str()]);
    // A listing started now pages what it found when it started.
    let (_, _, started) = get(&c, &format!("{recordings}?$top=1"), &t).await;
    assert_eq!(
        ids(&[started["value"].as_array().expect("value").clone()]),
        [early.id.as_str()]
    );
    let next = started["@odata.nextLink"].as_str().expect("a nextLink").to_owned();

    // Added later, created in the past: inside the window already listed, the recording before
    // everything listed so far.
    let late_rec = sim.add_adhoc_recording(&user, &call, 10, Some(hour(0) + Duration::minutes(30)));
    let late_tr = sim.add_adhoc_transcript(&user, &call, Some(&late_rec), 100, Some(hour(2)));
    assert_eq!(late_rec.created, "2024-03-01T00:30:00.0000000Z");
    assert_eq!(late_tr.created, "2024-03-01T02:00:00.0000000Z");
    assert_eq!(late_tr.content_correlation_id, late_rec.content_correlation_id);
    assert_eq!(ids(&pages(&c, &next, &t).await.0), [later.id.as_str()]);

    // A later request for the same window lists them, in createdDateTime order, over pages too.
    assert_eq!(
        ids(&pages(&c, &recordings, &t).await.0),
        [late_rec.id.as_str(), early.id.as_str(), later.id.as_str()]
    );
    let (got, links) = pages(&c, &format!("{transcripts}?$top=1"), &t).await;
    assert_eq!(links.len(), 1);
    assert_eq!(ids(&got), [first.id.as_str(), late_tr.id.as_str()]);
    // So does a narrower window around their times; one that ends before them does not.
    let [recordings, transcripts] = window(hour(0), hour(1));
    assert_eq!(ids(&pages(&c, &recordings, &t).await.0), [late_rec.id.as_str()]);
    assert!(ids(&pages(&c, &transcripts, &t).await.0).is_empty());
    let [_, transcripts] = window(hour(2), hour(3));
    assert_eq!(ids(&pages(&c, &transcripts, &t).await.0), [late_tr.id.as_str()]);
    assert_eq!(sim.adhoc_transcripts(&user), [first, late_tr]);
}
