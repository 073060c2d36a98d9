//! Which organizers: user principal names, a group's transitive members, the whole directory
//! through `/users/delta` with its own checkpoint; a failing source fails that entry only.

use recarch_graph_sim::{ContentMode, SimConfig, UserType};

use super::util::{Env, last_report, manifest_path};

fn config() -> SimConfig {
    SimConfig {
        content_mode: ContentMode::Direct,
        page_size: 2,
        ..SimConfig::default()
    }
}

/// Rewrites `[source]` to `source` (the organizer lines of the test config).
fn use_source(env: &Env, source: &str) {
    env.write_config("");
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    let start = text.find("organizers = [").expect("organizers line");
    let end = start + text[start..].find('\n').expect("end of line");
    let text = format!("{}{source}{}", &text[..start], &text[end..]);
    std::fs::write(env.config_path(), text).expect("config");
}

fn archived(env: &Env, org: &str, id: &str) -> bool {
    manifest_path(&env.archive(), org, id).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_names_resolve_and_an_unknown_one_fails_alone() {
    let env = Env::new(config(), 1).await;
    let by_id = env.organizers[0].clone();
    let alice = env.sim.add_user("Alice@Contoso.example", true, UserType::Member);
    let rec_alice = env.sim.add_recording(&alice, 5_000);
    let rec_id = env.sim.add_recording(&by_id, 5_000);
    use_source(
        &env,
        &format!("organizers = [\"alice@contoso.example\", \"nobody@contoso.example\", \"{by_id}\"]"),
    );
    let out = env.run().await;
    out.assert_code(1);
    assert!(out.stdout.contains("nobody@contoso.example"), "{}", out.stdout);
    assert!(archived(&env, &alice, &rec_alice.id) && archived(&env, &by_id, &rec_id.id));
    let report = last_report(&env);
    assert_eq!(report["organizers"], 2);
    assert_eq!(report["failures"][0]["organizerId"], "nobody@contoso.example");
    // Not a GUID nor a principal name: a configuration error naming the entry.
    use_source(&env, "organizers = [\"not an organizer\"]");
    let out = env.run().await;
    out.assert_code(2);
    assert!(out.stderr.contains("[source].organizers[0]"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_brings_its_nested_users_only() {
    let env = Env::new(config(), 0).await;
    let direct = env.sim.add_user("direct@contoso.example", true, UserType::Member);
    let nested = env.sim.add_user("nested@contoso.example", true, UserType::Member);
    let outside = env.sim.add_user("outside@contoso.example", true, UserType::Member);
    let group = env.sim.add_group("Compliance-Recorded");
    let inner = env.sim.add_group("Compliance-Recorded-EMEA");
    let device = env.sim.add_device("meeting-room-7");
    assert!(env.sim.add_member(&group, &direct));
    assert!(env.sim.add_member(&group, &inner));
    assert!(env.sim.add_member(&inner, &nested));
    assert!(env.sim.add_member(&inner, &device));
    // Enough members to page.
    let mut extra = Vec::new();
    for n in 0..5 {
        let u = env
            .sim
            .add_user(&format!("member{n}@contoso.example"), true, UserType::Member);
        env.sim.add_member(&group, &u);
        extra.push(u);
    }
    let recs: Vec<_> = [&direct, &nested, &outside]
        .iter()
        .map(|u| (u.to_string(), env.sim.add_recording(u, 5_000)))
        .collect();
    use_source(&env, &format!("organizers_group = \"{group}\""));
    env.run().await.assert_code(0);
    assert!(archived(&env, &recs[0].0, &recs[0].1.id), "a direct member");
    assert!(archived(&env, &recs[1].0, &recs[1].1.id), "a nested member");
    assert!(!archived(&env, &recs[2].0, &recs[2].1.id), "not a member");
    assert_eq!(last_report(&env)["organizers"], 2 + extra.len());

    let unknown = "00000000-0000-0000-0000-00000000dead";
    use_source(&env, &format!("organizers_group = \"{unknown}\""));
    let out = env.run().await;
    out.assert_code(1);
    assert!(out.stdout.contains(unknown), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_directory_with_its_own_checkpoint() {
    let env = Env::new(config(), 0).await;
    let member = env.sim.add_user("member@contoso.example", true, UserType::Member);
    let disabled = env.sim.add_user("disabled@contoso.example", false, UserType::Member);
    let guest = env.sim.add_user("guest@fabrikam.example", true, UserType::Guest);
    let recs: Vec<_> = [&member, &disabled, &guest]
        .iter()
        .map(|u| (u.to_string(), env.sim.add_recording(u, 5_000)))
        .collect();
    use_source(&env, "organizers_all = true");
    env.run().await.assert_code(0);
    assert!(archived(&env, &recs[0].0, &recs[0].1.id));
    assert!(
        !archived(&env, &recs[1].0, &recs[1].1.id),
        "disabled users are left out"
    );
    assert!(!archived(&env, &recs[2].0, &recs[2].1.id), "guests are left out");
    let directory = env.archive().join("state/directory/0-of-1/users.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&directory).expect("directory copy")).expect("JSON");
    assert_eq!(doc["checkpoint"]["kind"], "delta");

    // Later runs follow the saved delta link: only changes come back.
    env.sim.set_user_enabled(&disabled, true);
    let newcomer = env.sim.add_user("newcomer@contoso.example", true, UserType::Member);
    let rec_new = env.sim.add_recording(&newcomer, 5_000);
    env.sim.reset_stats();
    env.run().await.assert_code(0);
    let link = doc["checkpoint"]["link"].as_str().expect("link").to_owned();
    let first_delta = env
        .sim
        .stats()
        .requests
        .into_iter()
        .find(|r| r.path_and_query.contains("/users/delta"))
        .expect("a directory request");
    assert!(
        link.ends_with(&first_delta.path_and_query),
        "{link} vs {}",
        first_delta.path_and_query
    );
    assert!(archived(&env, &recs[1].0, &recs[1].1.id), "enabled since");
    assert!(archived(&env, &newcomer, &rec_new.id));
    // A user removed from the directory keeps their archive.
    env.sim.remove_user(&member, true);
    env.run().await.assert_code(0);
    assert!(archived(&env, &recs[0].0, &recs[0].1.id));

    // Without User.Read.All: that source fails, named with the permission; listed ids go on.
    env.sim.faults().directory_forbidden(true);
    let by_id = env.sim.add_organizer();
    let rec_id = env.sim.add_recording(&by_id, 5_000);
    use_source(&env, &format!("organizers = [\"{by_id}\"]\norganizers_all = true"));
    let out = env.run().await;
    out.assert_code(1);
    assert!(out.stdout.contains("User.Read.All"), "{}", out.stdout);
    assert!(archived(&env, &by_id, &rec_id.id));
}
