//! Progress bars of `run`, `verify` and `export`: drawn on a real pseudo-terminal, never in piped output or with
//! `--progress never`.

use super::util::Env;

/// Runs `recarch <args>` under a pseudo-terminal (util-linux `script`), returning what the
/// terminal showed and the exit code.
fn on_a_terminal(env: &Env, args: &str) -> (String, Option<i32>) {
    let command = format!(
        "{} {args} --config {}",
        env!("CARGO_BIN_EXE_recarch"),
        env.config_path().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("RECARCH_LOG", "warn")
        .env("TERM", "xterm")
        .env_remove("RECARCH_CLIENT_SECRET")
        .env_remove("RECARCH_PROGRESS")
        .output()
        .expect("script runs");
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_on_a_terminal_and_nowhere_else() {
    let env = Env::direct(1).await;
    let org = env.organizers[0].clone();
    for _ in 0..6 {
        env.sim.add_recording(&org, 400_000);
    }
    // Slow enough (about 1.5 s) for the bars to be drawn a few times.
    env.sim.faults().content_rate(Some(1_600_000));
    env.write_config("[fetch]\nconcurrency = 1\n");
    let (screen, code) = on_a_terminal(&env, "run");
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("archiving") && screen.contains("items"),
        "no bar drawn:\n{screen}"
    );
    assert!(screen.contains("stored"), "no bytes line:\n{screen}");
    assert!(screen.contains("archived ("), "the summary follows the bars:\n{screen}");
    let (screen, code) = on_a_terminal(&env, "verify");
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("verifying") && screen.contains("0 problems"),
        "no verify bar:\n{screen}"
    );

    // An export: its bars, then its summary.
    let out = env.dir.path().join("production");
    let (screen, code) = on_a_terminal(&env, &format!("export --out {}", out.display()));
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("exporting") && screen.contains("copied"),
        "no export bar:\n{screen}"
    );
    assert!(
        screen.contains("exported 6 documents"),
        "the summary follows the bars:\n{screen}"
    );

    // Piped: no bar, no terminal escapes.
    for _ in 0..3 {
        env.sim.add_recording(&org, 400_000);
    }
    let piped = env.run().await;
    piped.assert_code(0);
    for text in [&piped.stdout, &piped.stderr] {
        assert!(!text.contains("items [") && !text.contains('\u{1b}'), "{text}");
    }
    // On a terminal with --progress never: no bar either.
    for _ in 0..3 {
        env.sim.add_recording(&org, 400_000);
    }
    let (screen, code) = on_a_terminal(&env, "run --progress never");
    assert_eq!(code, Some(0), "{screen}");
    assert!(!screen.contains("items ["), "{screen}");
}
