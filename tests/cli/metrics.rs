//! Metrics: pushed to a Pushgateway (a real loopback HTTP server in its role) and written to a
//! file, with the run's counts; a failed push never fails the run.

use std::sync::{Arc, Mutex};

use recarch_graph_sim::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::util::{Env, last_report};

/// A loopback HTTP server that records each request (request line and body) and answers
/// `status`.
async fn gateway(status: u16) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // Read the head, then Content-Length bytes of body.
                let (head, body_start, length) = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        break (head, end + 4, length);
                    }
                };
                while buf.len() < body_start + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[body_start..]).into_owned();
                let line = head.lines().next().unwrap_or_default().to_owned();
                record.lock().expect("lock").push((line, body));
                let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

fn value(text: &str, metric: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(metric) && l[metric.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {metric} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_pushed_and_written_with_the_run_counts() {
    let env = Env::direct(2).await;
    for org in &env.organizers {
        env.sim.add_recording(org, 20_000);
        env.sim.add_recording(org, 30_000);
    }
    env.sim.faults().throttle(Target::Delta, 429, Some(0), 1);
    let (url, seen) = gateway(200).await;
    env.write_config(&format!("[metrics]\npushgateway_url = \"{url}\"\n"));
    let file = env.dir.path().join("recarch.prom");
    let out = env
        .recarch(&["run", "--metrics-file", &file.display().to_string()], &[])
        .await;
    out.assert_code(0);
    let report = last_report(&env);
    let pushed = seen.lock().expect("lock").clone();
    assert_eq!(pushed.len(), 1, "one push per run: {pushed:?}");
    let (line, body) = &pushed[0];
    assert!(line.starts_with("PUT /metrics/job/recarch/shard/0-of-1 "), "{line}");
    let written = std::fs::read_to_string(&file).expect("metrics file");
    assert_eq!(&written, body, "the file and the push say the same");
    assert_eq!(value(body, "recarch_items_archived"), 4.0);
    assert_eq!(
        value(body, "recarch_items_archived"),
        report["archived"].as_f64().expect("count")
    );
    assert_eq!(value(body, "recarch_bytes_archived"), 100_000.0);
    assert_eq!(value(body, "recarch_items_failed"), 0.0);
    assert_eq!(value(body, "recarch_run_exit_code"), 0.0);
    assert!(value(body, "recarch_graph_throttled_requests") >= 1.0);
    assert!(value(body, "recarch_graph_requests") > value(body, "recarch_graph_throttled_requests"));
    assert!(body.contains("recarch_organizers{state=\"ok\"} 2"), "{body}");
    let success = value(body, "recarch_last_success_timestamp_seconds");
    let ended = value(body, "recarch_run_timestamp_seconds");
    assert!(success > 1.7e9 && (success - ended).abs() < 1.0, "{success} {ended}");
    assert!(body.contains("# TYPE recarch_dead_letters gauge"), "{body}");

    // A failing run keeps the last success; a gateway that refuses or is gone never fails a run.
    let org = env.organizers[0].clone();
    let evil = env
        .sim
        .add_recording_with_content_url(&org, 1_000, "https://elsewhere.example/x");
    let (refusing, _) = gateway(500).await;
    env.write_config(&format!("[metrics]\npushgateway_url = \"{refusing}\"\n"));
    let out = env
        .recarch(&["run", "--metrics-file", &file.display().to_string()], &[])
        .await;
    out.assert_code(1);
    assert!(out.stderr.contains("cannot push the metrics"), "{}", out.stderr);
    let written = std::fs::read_to_string(&file).expect("metrics file");
    assert_eq!(value(&written, "recarch_items_failed"), 1.0, "{}", evil.id);
    assert_eq!(value(&written, "recarch_run_exit_code"), 1.0);
    assert_eq!(value(&written, "recarch_last_success_timestamp_seconds"), success);
    env.write_config("[metrics]\npushgateway_url = \"http://127.0.0.1:9\"\n");
    env.sim.faults().content_status(&evil.id, None);
    let out = env.run().await;
    assert!(matches!(out.code, 0 | 1), "{}", out.stderr);
}

/// One series per configured kind, with that kind's own counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_kind_apart() {
    let env = Env::direct(1).await;
    let org = env.organizers[0].clone();
    let rec = env.sim.add_recording(&org, 20_000);
    env.sim.add_recording(&org, 30_000);
    env.sim.add_transcript(&org, Some(&rec), 3_000);
    for name in ["Ada Lovelace", "Alan Turing", "Grace Hopper"] {
        env.sim.add_contact(&org, "contacts", name);
    }
    let file = env.dir.path().join("recarch.prom");
    env.recarch(
        &["run", "--metrics-file", &file.display().to_string()],
        &[("RECARCH_SOURCE__KINDS", "recordings,transcripts,contacts")],
    )
    .await
    .assert_code(0);
    let text = std::fs::read_to_string(&file).expect("metrics file");
    for (kind, archived) in [("recordings", 2.0), ("transcripts", 1.0), ("contacts", 3.0)] {
        let metric = format!("recarch_items_archived{{kind=\"{kind}\"}}");
        assert_eq!(value(&text, &metric), archived, "{kind}:\n{text}");
        assert_eq!(value(&text, &format!("recarch_items_failed{{kind=\"{kind}\"}}")), 0.0);
    }
    assert_eq!(value(&text, "recarch_bytes_archived{kind=\"recordings\"}"), 50_000.0);
}
