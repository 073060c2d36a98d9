//! Enterprise sign-in through the binary: certificates (PEM, two files, PKCS#12) and
//! workload identity against the simulator's Entra-like assertion checks; bad key material
//! refused before any request.

use std::time::Duration;

use recarch_graph_sim::test_keys::{expired_certificate, mismatched_certificate, test_certificate};
use recarch_graph_sim::{ContentMode, SimConfig};

use super::util::{Env, all_recordings, assert_archive};

fn config() -> SimConfig {
    SimConfig {
        content_mode: ContentMode::Direct,
        page_size: 2,
        ..SimConfig::default()
    }
}

/// Replaces the `[graph]` credential lines of the test config with `graph`.
fn use_credential(env: &Env, graph: &str) {
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    let text = text.replace("client_secret_file = \"secret\"\n", graph);
    std::fs::write(env.config_path(), text).expect("config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_credentials_in_every_form() {
    let env = Env::new(config(), 1).await;
    let org = env.organizers[0].clone();
    let cert = test_certificate(1);
    let thumbprint = env.sim.register_certificate(&cert.cert_der).expect("register");
    let dir = env.dir.path();
    std::fs::write(dir.join("bundle.pem"), cert.pem_bundle()).expect("write");
    std::fs::write(dir.join("cert.pem"), &cert.cert_pem).expect("write");
    std::fs::write(dir.join("key.pem"), &cert.key_pem).expect("write");
    std::fs::write(dir.join("cert.pfx"), cert.pkcs12("s3cret pass")).expect("write");
    let forms = [
        "auth = \"certificate\"\nclient_certificate_file = \"bundle.pem\"\n",
        "auth = \"certificate\"\nclient_certificate_file = \"cert.pem\"\nclient_private_key_file = \"key.pem\"\n",
        "auth = \"certificate\"\nclient_certificate_file = \"cert.pfx\"\nclient_certificate_password_env = \"PFX_PASSWORD\"\n",
    ];
    for (n, form) in forms.iter().enumerate() {
        env.write_config("");
        use_credential(&env, form);
        env.sim.add_recording(&org, 10_000);
        env.sim.reset_stats();
        let out = env.recarch(&["run"], &[("PFX_PASSWORD", "s3cret pass")]).await;
        out.assert_code(0);
        let stats = env.sim.stats();
        assert!(stats.client_assertions_accepted >= 1, "form {n}: {stats:?}");
        assert_eq!(stats.client_secrets_accepted, 0, "form {n}");
        let assertion = stats.last_client_assertion.expect("an assertion");
        let (header, claims) = (&assertion["header"], &assertion["claims"]);
        assert_eq!(header["alg"], "PS256", "form {n}");
        assert_eq!(header["x5t#S256"], thumbprint.as_str(), "form {n}");
        assert_eq!(claims["aud"], env.sim.token_url().as_str(), "form {n}");
        assert_eq!(claims["iss"], env.sim.config().client_id.as_str());
        assert_eq!(claims["sub"], env.sim.config().client_id.as_str());
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
        let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
        assert!(lifetime > 0 && lifetime <= 600, "form {n}: exp - iat = {lifetime}");
        // No key material in the logs.
        assert!(!out.stderr.contains("PRIVATE KEY") && !out.stderr.contains(&cert.key_pem[40..80]));
    }
    assert_archive(&env, &all_recordings(&env));
}

/// Bad key material: exit 2 before any request, naming the file and the problem, never the
/// key. A certificate Entra does not know: exit 4 with the server's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_material_is_refused_before_any_request() {
    let env = Env::new(config(), 1).await;
    let good = test_certificate(2);
    let dir = env.dir.path();
    std::fs::write(dir.join("expired.pem"), expired_certificate(3).pem_bundle()).expect("write");
    std::fs::write(dir.join("mismatched.pem"), mismatched_certificate(4).pem_bundle()).expect("write");
    std::fs::write(dir.join("cert-only.pem"), &good.cert_pem).expect("write");
    std::fs::write(dir.join("cert.pfx"), good.pkcs12("right")).expect("write");
    std::fs::write(dir.join("garbage.pem"), "not a certificate at all").expect("write");
    // (config lines, environment, the file named, the problem named)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 6] = [
        (
            "client_certificate_file = \"missing.pem\"\n",
            &[],
            "missing.pem",
            "cannot read",
        ),
        (
            "client_certificate_file = \"expired.pem\"\n",
            &[],
            "expired.pem",
            "expired",
        ),
        (
            "client_certificate_file = \"mismatched.pem\"\n",
            &[],
            "mismatched.pem",
            "does not match",
        ),
        (
            "client_certificate_file = \"cert-only.pem\"\n",
            &[],
            "cert-only.pem",
            "no private key",
        ),
        (
            "client_certificate_file = \"cert.pfx\"\nclient_certificate_password_env = \"PFX_PASSWORD\"\n",
            &[("PFX_PASSWORD", "wrong")],
            "cert.pfx",
            "wrong password",
        ),
        (
            "client_certificate_file = \"garbage.pem\"\n",
            &[],
            "garbage.pem",
            "PKCS#12",
        ),
    ];
    for (lines, envs, file, problem) in cases {
        env.write_config("");
        use_credential(&env, &format!("auth = \"certificate\"\n{lines}"));
        env.sim.reset_stats();
        let out = env.recarch(&["run"], envs).await;
        out.assert_code(2);
        assert!(
            out.stderr.contains(file) && out.stderr.contains(problem),
            "{file}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("BEGIN") && !out.stderr.contains("panicked"),
            "{}",
            out.stderr
        );
        assert_eq!(env.sim.stats().token_requests, 0, "{file}: no request before the check");
    }
    // Valid but never uploaded to the app registration: the token endpoint refuses it.
    std::fs::write(dir.join("unknown.pem"), test_certificate(5).pem_bundle()).expect("write");
    env.write_config("");
    use_credential(
        &env,
        "auth = \"certificate\"\nclient_certificate_file = \"unknown.pem\"\n",
    );
    let out = env.run().await;
    out.assert_code(4);
    assert!(
        out.stderr.contains("invalid_client") && out.stderr.contains("AADSTS"),
        "{}",
        out.stderr
    );
}

/// Workload identity: the federated token file is the assertion, re-read for every token
/// request; rotated during a run with short-lived tokens, the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_follows_a_rotated_token_file() {
    let env = Env::new(
        SimConfig {
            token_lifetime: Duration::from_secs(2),
            ..config()
        },
        1,
    )
    .await;
    let org = env.organizers[0].clone();
    for _ in 0..6 {
        env.sim.add_recording(&org, 600_000);
    }
    // One download at a time, slow enough that the run outlives a few one-second tokens.
    env.write_config("[fetch]\nconcurrency = 1\n");
    env.sim.faults().content_rate(Some(1_000_000));
    let token_file = env.dir.path().join("azure-identity-token");
    env.sim.register_federated_token("first-service-account-token");
    std::fs::write(&token_file, "first-service-account-token\n").expect("write");
    // The webhook's variables fill client id, tenant and the file.
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    let text = text
        .replace("client_secret_file = \"secret\"\n", "auth = \"workload_identity\"\n")
        .lines()
        .filter(|l| !l.starts_with("tenant_id") && !l.starts_with("client_id"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(env.config_path(), text).expect("config");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"))
        .args(["run", "--config"])
        .arg(env.config_path())
        .env("RECARCH_LOG", "warn")
        .env("AZURE_CLIENT_ID", &env.sim.config().client_id)
        .env("AZURE_TENANT_ID", &env.sim.config().tenant_id)
        .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    // Rotate once the run is under way: the old token stops working.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.sim.stats().content_requests < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no download started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.sim.register_federated_token("second-service-account-token");
    std::fs::write(&token_file, "second-service-account-token\n").expect("write");
    assert!(env.sim.revoke_federated_token("first-service-account-token"));
    let out = child.wait_with_output().await.expect("run ends");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stats = env.sim.stats();
    assert_eq!(
        stats.last_federated_assertion.as_deref(),
        Some("second-service-account-token")
    );
    assert!(stats.federated_assertions_accepted >= 2, "{stats:?}");
    assert_eq!(stats.client_secrets_accepted, 0);
    assert_archive(&env, &all_recordings(&env));
}
