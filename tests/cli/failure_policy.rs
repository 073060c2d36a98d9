//! The failure policy, through the binary: one bad item never blocks anything else, and no
//! transient fault ends a run (README, "Failure policy").

use std::time::Duration;

use recarch_graph_sim::{ContentMode, CredentialRejection, RedirectStyle, RetryAfter, SimConfig, SyncLocation, Target};

use super::util::{self, Env, all_recordings, assert_archive, last_report};

/// Quick in-run retries, and items given up on after three failed runs.
const POLICY: &str = "[fetch]\nmax_attempts = 2\nmax_item_attempts = 3\n";

fn config() -> SimConfig {
    SimConfig {
        content_mode: ContentMode::Alternate,
        page_size: 2,
        ..SimConfig::default()
    }
}

fn manifest_exists(env: &Env, org: &str, id: &str) -> bool {
    util::manifest_path(&env.archive(), org, id).exists()
}

/// Items failing permanently (404, 403, a body cut on every attempt, a blob the store
/// refuses) and transiently (503 every time) never stop their organizer's round: new
/// recordings are archived in every run, each poisoned item costs one attempt per run, the
/// permanent ones are dead-lettered at their second failure and the transient one after
/// `max_item_attempts` runs; `recarch retry` brings them back once fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_tenant_keeps_archiving_new_recordings() {
    let env = Env::new(config(), 2).await;
    env.write_config(POLICY);
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    let faults = env.sim.faults();
    let gone = env.sim.add_recording(&a, 3_000);
    faults.content_status(&gone.id, Some(404));
    let denied = env.sim.add_recording(&a, 3_000);
    faults.content_status(&denied.id, Some(403));
    let cut = env.sim.add_recording(&a, 300_000);
    faults.content_always_truncated(&cut.id, true);
    let refused = env.sim.add_recording(&a, 4_000);
    // The store refuses this blob: its name is taken by a directory.
    let sha = env.sim.content_sha256(&refused.id).expect("known");
    std::fs::create_dir_all(env.archive().join(format!("blobs/sha256/{sha}/taken"))).expect("mkdir");
    let flaky = env.sim.add_recording(&a, 3_000);
    faults.content_status(&flaky.id, Some(503));
    let permanent = [&gone, &denied, &cut, &refused];

    let mut archived_per_run = Vec::new();
    let mut dead_letter_run = std::collections::BTreeMap::new();
    for run in 1..=4 {
        let new: Vec<_> = [&a, &b, &a, &b]
            .iter()
            .map(|o| (o.to_string(), env.sim.add_recording(o, 2_000)))
            .collect();
        let out = env.run().await;
        let report = last_report(&env);
        // New recordings of both organizers are archived in every run, poison or not.
        for (org, rec) in &new {
            assert!(
                manifest_exists(&env, org, &rec.id),
                "run {run}: {} not archived: {}",
                rec.id,
                out.stdout
            );
        }
        archived_per_run.push(report["archived"].as_u64().expect("count"));
        for f in report["failures"].as_array().expect("failures") {
            if f["deadLettered"] == true {
                dead_letter_run.insert(f["id"].as_str().expect("id").to_owned(), run);
            }
        }
        let expected_exit = if run <= 3 { 1 } else { 0 };
        out.assert_code(expected_exit);
        assert_eq!(report["exitCode"], expected_exit);
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(env.archive().join(format!("state/recordings/{a}.json"))).expect("state"),
        )
        .expect("JSON");
        assert_eq!(
            state["sources"]["organizer"]["checkpoint"]["kind"], "delta",
            "run {run}: the round completed"
        );
    }
    for rec in permanent {
        assert_eq!(
            dead_letter_run.get(&rec.id),
            Some(&2),
            "{} dead-lettered at its second permanent failure",
            rec.id
        );
        assert!(!manifest_exists(&env, &a, &rec.id));
    }
    assert_eq!(
        dead_letter_run.get(&flaky.id),
        Some(&3),
        "the transient one after max_item_attempts runs"
    );
    // Run 1 archives the 4 new ones, like every later run; nothing poisoned is archived.
    assert_eq!(archived_per_run, vec![4, 4, 4, 4]);
    eprintln!("poisoned tenant: dead-lettered in run {dead_letter_run:?}; archived per run {archived_per_run:?}");

    // Dead letters are listed, never retried automatically.
    // status as a readiness check: dead letters need attention (exit 1).
    let status = env.recarch(&["status", "--json"], &[]).await;
    status.assert_code(1);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(json["healthy"], false);
    let org_a = json["organizers"]
        .as_array()
        .expect("organizers")
        .iter()
        .find(|o| o["organizerId"] == a.as_str())
        .expect("organizer a");
    assert_eq!(org_a["deadLetters"].as_array().expect("list").len(), 5);
    assert_eq!(org_a["queued"].as_array().expect("list").len(), 0);
    assert_eq!(json["totals"]["deadLetters"], 5);
    let text = env.recarch(&["status"], &[]).await;
    assert!(
        text.stdout
            .contains(&format!("dead letter {} (attempts 2, permanent", gone.id))
            && text.stdout.contains("404"),
        "{}",
        text.stdout
    );
    env.sim.reset_stats();
    env.run().await.assert_code(0);
    assert!(
        !env.sim.stats().content_requests_by_id.contains_key(&gone.id),
        "a dead letter was retried"
    );

    // Fixed at the source, one brought back by id and the rest with --all: archived next run.
    faults.clear();
    for rec in [&gone, &denied, &cut, &flaky] {
        faults.content_status(&rec.id, None);
    }
    faults.content_always_truncated(&cut.id, false);
    std::fs::remove_dir_all(env.archive().join(format!("blobs/sha256/{sha}"))).expect("rmdir");
    let one = env.recarch(&["retry", "--id", &gone.id], &[]).await;
    one.assert_code(0);
    assert!(one.stdout.contains("1 dead letters moved"), "{}", one.stdout);
    env.recarch(&["retry", "--id", "no-such-id"], &[]).await.assert_code(2);
    env.recarch(&["retry"], &[]).await.assert_code(2);
    let rest = env.recarch(&["retry", "--all", "--organizer", &a], &[]).await;
    rest.assert_code(0);
    assert!(rest.stdout.contains("4 dead letters moved"), "{}", rest.stdout);
    env.run().await.assert_code(0);
    assert_archive(&env, &all_recordings(&env));
}

/// The token endpoint's 429 and 503 (with Retry-After) and a reset connection are retried;
/// only a refusal of the credentials is fatal, with the server's own codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_is_retried_like_graph() {
    let env = Env::new(config(), 1).await;
    let org = env.organizers[0].clone();
    env.sim.add_recording(&org, 10_000);
    let faults = env.sim.faults();
    faults.token_connection_reset(1);
    faults.throttle_with(Target::Token, 503, RetryAfter::Seconds(1), 1);
    env.run().await.assert_code(0);
    let stats = env.sim.stats();
    assert_eq!(stats.token_connections_reset, 1);
    assert!(stats.token_requests >= 3, "{}", stats.token_requests);
    faults.throttle_with(Target::Token, 429, RetryAfter::Date(1), 1);
    env.sim.add_recording(&org, 10_000);
    env.run().await.assert_code(0);

    for (rejection, code, aadsts) in [
        (CredentialRejection::InvalidSecret, "invalid_client", "AADSTS7000215"),
        (
            CredentialRejection::UnknownClient,
            "unauthorized_client",
            "AADSTS700016",
        ),
        (CredentialRejection::UnknownTenant, "invalid_request", "AADSTS90002"),
    ] {
        faults.reject_credentials(Some(rejection));
        env.sim.reset_stats();
        let out = env.run().await;
        out.assert_code(4);
        assert!(
            out.stderr.contains(code) && out.stderr.contains(aadsts),
            "{}",
            out.stderr
        );
        assert_eq!(env.sim.stats().token_requests, 1, "a refusal is not retried");
    }
}

/// 500, 502 and 504 on delta pages are retried within the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_server_errors_are_retried() {
    let env = Env::new(config(), 1).await;
    let org = env.organizers[0].clone();
    for _ in 0..5 {
        env.sim.add_recording(&org, 5_000);
    }
    for status in [500, 502, 504] {
        env.sim.faults().throttle(Target::Delta, status, None, 1);
        env.sim.add_recording(&org, 5_000);
        env.run().await.assert_code(0);
    }
    assert_archive(&env, &all_recordings(&env));
    let answered: Vec<u16> = env.sim.stats().requests.iter().map(|r| r.status).collect();
    for status in [500, 502, 504] {
        assert!(answered.contains(&status), "{status} was injected: {answered:?}");
    }
}

/// A delta page whose connection closes mid-body (README, "Failure policy") is asked for
/// again within the run: never parsed half, never failing its
/// organizer, within the retry policy (the default six attempts; here one page is cut three
/// times in a row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_pages_cut_mid_body_are_asked_for_again() {
    let env = Env::new(config(), 1).await;
    let org = env.organizers[0].clone();
    for _ in 0..7 {
        env.sim.add_recording(&org, 5_000);
    }
    let delta_requests = |env: &Env| {
        env.sim
            .stats()
            .requests
            .iter()
            .filter(|r| r.path_and_query.contains("/delta"))
            .count()
    };
    env.sim.faults().cut_delta_pages(3);
    env.run().await.assert_code(0);
    assert_archive(&env, &all_recordings(&env));
    // Four pages of two, and the first asked for three more times.
    assert_eq!(delta_requests(&env), 4 + 3);
    let report = last_report(&env);
    assert_eq!(report["failed"], 0, "{report}");
}

/// `Retry-After` as an HTTP-date is honoured, never earlier than asked; a wait longer than
/// the run's retry budget stops that organizer for this run, with the reason, and the others
/// go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_dates_are_honoured_and_long_waits_stop_the_organizer() {
    let env = Env::new(config(), 1).await;
    let org = env.organizers[0].clone();
    env.sim.add_recording(&org, 5_000);
    env.sim
        .faults()
        .throttle_with(Target::Delta, 429, RetryAfter::Date(2), 1);
    env.run().await.assert_code(0);
    let requests = env.sim.stats().requests;
    let throttled = requests.iter().position(|r| r.status == 429).expect("a 429");
    let next = requests[throttled + 1..]
        .iter()
        .find(|r| r.path_and_query.contains("/delta"))
        .expect("retried");
    let waited = next.at.duration_since(requests[throttled].at);
    // The date is rounded up to a whole second at least 2 s ahead; a client waiting until then
    // waits more than 1 s after the answer.
    assert!(waited >= Duration::from_millis(1_000), "retried after {waited:?}");

    let two = Env::new(config(), 2).await;
    let (a, b) = (two.organizers[0].clone(), two.organizers[1].clone());
    let rec_b = two.sim.add_recording(&b, 5_000);
    two.sim.add_recording(&a, 5_000);
    // Far longer than any run's budget.
    two.sim
        .faults()
        .throttle_with(Target::Delta, 429, RetryAfter::Seconds(86_400), 1);
    let out = two.run().await;
    out.assert_code(1);
    assert!(out.stdout.contains("asked to wait 86400 s"), "{}", out.stdout);
    assert!(manifest_exists(&two, &b, &rec_b.id) || manifest_exists(&two, &a, &two.sim.recordings(&a)[0].id));
    two.run().await.assert_code(0);
    assert_archive(&two, &all_recordings(&two));
}

/// A 403 on one organizer's delta query (no application access policy) fails that
/// organizer, with the cause and the admin fix; the others are archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_organizer_fails_alone() {
    let env = Env::new(config(), 2).await;
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    env.sim.add_recording(&a, 5_000);
    let rec_b = env.sim.add_recording(&b, 5_000);
    env.sim.faults().organizer_forbidden(&a, true);
    let out = env.run().await;
    out.assert_code(1);
    assert!(
        out.stdout.contains(&a) && out.stdout.contains("403") && out.stdout.contains("New-CsApplicationAccessPolicy"),
        "{}",
        out.stdout
    );
    assert!(manifest_exists(&env, &b, &rec_b.id));
    let report = last_report(&env);
    assert_eq!(report["failures"][0]["organizerId"], a.as_str());
    assert_eq!(report["failures"][0]["class"], "permanent");
    env.sim.faults().organizer_forbidden(&a, false);
    env.run().await.assert_code(0);
    assert_archive(&env, &all_recordings(&env));
}

/// After 410 Gone, `Location` is followed only when it keeps the configured
/// `startDateTime`; otherwise the round restarts from the initial query. A relative
/// `Location` resolves against the URL that answered. Nothing is downloaded twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_that_drops_options_is_not_followed() {
    // `Fresh` and `Relative` (kept options) are followed, `DropsOptions` is not: either way the
    // request after the 410 carries the configured startDateTime.
    for location in [SyncLocation::Fresh, SyncLocation::Relative, SyncLocation::DropsOptions] {
        let env = Env::new(config(), 1).await;
        env.write_config("[fetch]\nmax_attempts = 2\n");
        let text = std::fs::read_to_string(env.config_path()).expect("config");
        std::fs::write(
            env.config_path(),
            text.replace("[source]\n", "[source]\nstart_date_time = \"2020-01-01T00:00:00Z\"\n"),
        )
        .expect("config");
        let org = env.organizers[0].clone();
        for _ in 0..3 {
            env.sim.add_recording(&org, 5_000);
        }
        env.run().await.assert_code(0);
        env.sim.add_recording(&org, 5_000);
        env.sim.faults().expire_sync_state_with("SyncStateNotFound", location);
        env.sim.reset_stats();
        env.run().await.assert_code(0);
        let stats = env.sim.stats();
        let gone = stats.requests.iter().position(|r| r.status == 410).expect("a 410");
        let restart = stats.requests[gone + 1..]
            .iter()
            .find(|r| r.path_and_query.contains("/delta"))
            .expect("restarted");
        let decoded = percent_encoding::percent_decode_str(&restart.path_and_query).decode_utf8_lossy();
        assert!(
            decoded.contains("startDateTime=2020-01-01"),
            "{location:?}: restarted with {decoded}"
        );
        assert!(
            stats.content_requests_by_id.values().all(|n| *n == 1),
            "{:?}",
            stats.content_requests_by_id
        );
        assert_archive(&env, &all_recordings(&env));
    }
}

/// A 410 in the middle of a round, with downloads in flight: the round restarts, every
/// recording is archived once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_reset_mid_round_with_downloads_in_flight() {
    let env = Env::new(config(), 1).await;
    let org = env.organizers[0].clone();
    for _ in 0..12 {
        env.sim.add_recording(&org, 200_000);
    }
    env.sim.faults().content_rate(Some(400_000));
    let child = env.spawn_run();
    // Wait until downloads are under way and more pages are still to come.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.sim.stats().content_requests < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no download started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.sim.faults().expire_sync_state("resyncRequired", false);
    let out = child.wait_with_output().await.expect("run ends");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(env.sim.stats().gone >= 1, "the reset happened mid-round");
    assert!(
        env.sim.stats().content_requests_by_id.values().all(|n| *n == 1),
        "downloaded twice: {:?}",
        env.sim.stats().content_requests_by_id
    );
    assert_eq!(last_report(&env)["resyncs"], 1);
    assert_archive(&env, &all_recordings(&env));
}

/// Redirect chains: relative Locations resolve against their hop, up to five hops are
/// followed and a sixth is refused (permanently), and once a chain has left the Graph
/// origin the token is never sent again, even back on the Graph origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_chains_are_hardened() {
    let env = Env::new(
        SimConfig {
            content_mode: ContentMode::Redirect,
            ..config()
        },
        1,
    )
    .await;
    env.write_config(POLICY);
    let org = env.organizers[0].clone();
    let faults = env.sim.faults();
    faults.redirect_style(RedirectStyle::Relative);
    env.sim.add_recording(&org, 50_000);
    env.run().await.assert_code(0);
    faults.redirect_style(RedirectStyle::Bounce);
    env.sim.add_recording(&org, 50_000);
    env.run().await.assert_code(0);
    assert_eq!(env.sim.stats().auth_header_after_leaving_graph, 0);
    assert_eq!(env.sim.stats().auth_header_on_download_origin, 0);
    faults.redirect_style(RedirectStyle::Chain(5));
    env.sim.add_recording(&org, 50_000);
    env.run().await.assert_code(0);
    assert_archive(&env, &all_recordings(&env));

    faults.redirect_style(RedirectStyle::Chain(6));
    let long = env.sim.add_recording(&org, 50_000);
    let out = env.run().await;
    out.assert_code(1);
    assert!(out.stdout.contains("more than 5 redirects"), "{}", out.stdout);
    let report = last_report(&env);
    assert_eq!(report["failures"][0]["id"], long.id.as_str());
    assert_eq!(report["failures"][0]["class"], "permanent");
}

/// A local archive directory that cannot be made (here: below a regular file) is a store
/// that cannot be reached, exit 4 naming the path, not a configuration error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_local_store_exits_4() {
    let env = Env::new(config(), 1).await;
    let file = env.dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").expect("a file");
    let url = format!("file://{}/archive", file.display());
    let out = env.recarch(&["run"], &[("RECARCH_STORE__URL", &url)]).await;
    out.assert_code(4);
    assert!(out.stderr.contains("not-a-directory"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

/// Bad environment and store options: clear errors, exit 2, no panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_environment_and_store_options_exit_2() {
    use std::os::unix::ffi::OsStrExt as _;
    let env = Env::new(config(), 1).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"))
        .args(["run", "--config"])
        .arg(env.config_path())
        .env("RECARCH_STORE__URL", std::ffi::OsStr::from_bytes(b"file:///tmp/\xff"))
        .env("SOME_OTHER_VAR", std::ffi::OsStr::from_bytes(b"\xfe"))
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("RECARCH_STORE__URL is not valid UTF-8"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = env
        .recarch(&["run"], &[("RECARCH_STORE__OPTIONS__NO_SUCH_OPTION", "x")])
        .await;
    out.assert_code(2);
    assert!(out.stderr.contains("no_such_option"), "{}", out.stderr);
}
