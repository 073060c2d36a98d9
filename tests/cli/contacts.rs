//! Contacts through the same engine: every contact folder of each organizer (the default one,
//! its folders and theirs), each folder's contacts delta with `$select` and
//! `Prefer: odata.maxpagesize`; every change stored as a JSON blob and appended as a version
//! to the contact's manifest, `@removed` as a tombstone version; nothing ever deleted.

use recarch_graph_sim::{ContentMode, MailboxFault};

use super::util::{Env, last_report, manifest_of, sha256_hex};

const CONTACTS: (&str, &str) = ("RECARCH_SOURCE__KINDS", "contacts");
/// Two contacts per page: every folder's round takes several pages.
const SMALL_PAGES: (&str, &str) = ("RECARCH_SOURCE__CONTACTS_PAGE_SIZE", "2");

fn contact_manifest(env: &Env, user: &str, id: &str) -> Option<serde_json::Value> {
    manifest_of(env, "contacts", user, id)
}

fn versions(m: &serde_json::Value) -> Vec<serde_json::Value> {
    m["versions"].as_array().expect("versions").clone()
}

/// The JSON of the blob a version (or `content`) names, checked against its name and size.
fn blob_json(env: &Env, entry: &serde_json::Value) -> serde_json::Value {
    let key = entry["blob"].as_str().expect("blob key");
    let bytes = std::fs::read(env.archive().join(key)).expect("blob");
    assert_eq!(format!("blobs/sha256/{}", sha256_hex(&bytes)), key);
    assert_eq!(entry["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(entry["size"], bytes.len());
    assert_eq!(entry["mediaType"], "application/json");
    serde_json::from_slice(&bytes).expect("a contact version is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_archived_updated_and_tombstoned_in_every_folder() {
    // Folder listings take several pages too.
    let env = Env::paged(ContentMode::Direct, 2, 2).await;
    let (a, b) = (env.organizers[0].clone(), env.organizers[1].clone());
    // a: the default folder, three top-level folders (one listing takes two pages), one nested.
    let default = env.sim.default_contact_folder(&a);
    let mut contacts = Vec::new();
    for name in ["Ada Lovelace", "Alan Turing", "Grace Hopper"] {
        contacts.push((default.clone(), env.sim.add_contact(&a, "contacts", name)));
    }
    let clients = env.sim.add_contact_folder(&a, "Clients", None);
    env.sim.add_contact_folder(&a, "Suppliers", None);
    env.sim.add_contact_folder(&a, "Press", None);
    let nested = env.sim.add_contact_folder(&a, "Key accounts", Some(&clients));
    contacts.push((clients.clone(), env.sim.add_contact(&a, &clients, "Edsger Dijkstra")));
    contacts.push((nested.clone(), env.sim.add_contact(&a, &nested, "Barbara Liskov")));
    // b: a mailbox with no contacts at all.
    env.sim.default_contact_folder(&b);

    let out = env.recarch(&["run"], &[CONTACTS, SMALL_PAGES]).await;
    out.assert_code(0);
    for (folder, id) in &contacts {
        let m = contact_manifest(&env, &a, id).unwrap_or_else(|| panic!("no manifest for {id}"));
        assert_eq!(m["schema"], "recarch.manifest.v1");
        assert_eq!(m["kind"], "contact");
        assert_eq!(m["id"], id.as_str());
        assert_eq!(m["organizerId"], a.as_str());
        let v = versions(&m);
        assert_eq!(v.len(), 1, "{m}");
        assert_eq!(v[0]["folderId"], folder.as_str());
        assert!(v[0]["archivedAt"].is_string());
        assert!(v[0].get("removed").is_none());
        assert_eq!(v[0]["blob"], m["content"]["blob"]);
        let stored = blob_json(&env, &v[0]);
        assert_eq!(stored["id"], id.as_str());
        assert_eq!(
            m["graph"], stored,
            "the manifest keeps the newest item as graph sent it"
        );
        // $select: the configured properties (and the folder), nothing else.
        for unselected in ["givenName", "surname", "createdDateTime", "categories"] {
            assert!(stored.get(unselected).is_none(), "{unselected} not selected: {stored}");
        }
        for selected in ["displayName", "emailAddresses", "businessPhones", "companyName"] {
            assert!(stored.get(selected).is_some(), "{selected} selected: {stored}");
        }
    }
    let report = last_report(&env);
    assert_eq!(report["kinds"]["contacts"]["archived"], contacts.len());
    assert!(
        report["kinds"]["contacts"]["pages"].as_u64().expect("pages") >= 6,
        "five folders, the default one with three contacts in pages of two: {report}"
    );

    // Changes: one renamed, one deleted, one soft-deleted; a new one in a nested folder.
    let (_, renamed) = &contacts[0];
    let (_, deleted) = &contacts[1];
    let (_, changed) = &contacts[3];
    env.sim.update_contact(&a, &default, renamed, "Ada King");
    env.sim.remove_contact(&a, &default, deleted, true);
    env.sim.remove_contact(&a, &clients, changed, false);
    let added = env.sim.add_contact(&a, &nested, "Tony Hoare");
    env.recarch(&["run"], &[CONTACTS, SMALL_PAGES]).await.assert_code(0);

    let m = contact_manifest(&env, &a, renamed).expect("renamed");
    let v = versions(&m);
    assert_eq!(v.len(), 2, "{m}");
    assert_eq!(
        blob_json(&env, &v[0])["displayName"],
        "Ada Lovelace",
        "the old version is kept"
    );
    assert_eq!(blob_json(&env, &v[1])["displayName"], "Ada King");
    assert_eq!(m["content"]["blob"], v[1]["blob"]);
    for (id, reason) in [(deleted, "deleted"), (changed, "changed")] {
        let m = contact_manifest(&env, &a, id).expect("removed contact keeps its manifest");
        let v = versions(&m);
        assert_eq!(v.len(), 2, "{m}");
        assert!(
            blob_json(&env, &v[0])["displayName"].is_string(),
            "the live version is kept"
        );
        assert_eq!(v[1]["removed"]["reason"], reason, "{m}");
        let tombstone = blob_json(&env, &v[1]);
        assert_eq!(tombstone["@removed"]["reason"], reason);
        assert_eq!(tombstone["id"], id.as_str());
    }
    assert_eq!(versions(&contact_manifest(&env, &a, &added).expect("added")).len(), 1);
    let report = last_report(&env);
    assert_eq!(report["kinds"]["contacts"]["archived"], 4, "{report}");
    assert_eq!(report["kinds"]["contacts"]["removed"], 2, "{report}");

    // Nothing changed: nothing appended, nothing downloaded.
    env.recarch(&["run"], &[CONTACTS, SMALL_PAGES]).await.assert_code(0);
    assert_eq!(last_report(&env)["kinds"]["contacts"]["archived"], 0);
    assert_eq!(
        versions(&contact_manifest(&env, &a, renamed).expect("renamed")).len(),
        2
    );

    // A full round after 410 Gone lists every live contact again: no version twice.
    env.sim.faults().expire_sync_state("resyncRequired", true);
    env.recarch(&["run"], &[CONTACTS, SMALL_PAGES]).await.assert_code(0);
    let report = last_report(&env);
    assert!(report["kinds"]["contacts"]["resyncs"].as_u64() >= Some(1), "{report}");
    assert_eq!(report["kinds"]["contacts"]["archived"], 0, "{report}");
    assert_eq!(
        versions(&contact_manifest(&env, &a, renamed).expect("renamed")).len(),
        2
    );

    // Every version's blob is checked by verify; status covers the kind.
    env.recarch(&["verify"], &[CONTACTS]).await.assert_code(0);
    let renamed_manifest = contact_manifest(&env, &a, renamed).expect("renamed");
    let old_blob = versions(&renamed_manifest)[0]["blob"]
        .as_str()
        .expect("blob")
        .to_owned();
    let saved = std::fs::read(env.archive().join(&old_blob)).expect("old version");
    std::fs::remove_file(env.archive().join(&old_blob)).expect("remove");
    let found = env.recarch(&["verify"], &[CONTACTS]).await;
    found.assert_code(1);
    assert!(
        found.stdout.contains(&old_blob[old_blob.len() - 64..]),
        "an old version's missing blob is found: {}",
        found.stdout
    );
    std::fs::write(env.archive().join(&old_blob), saved).expect("restore");
    let status = env.recarch(&["status", "--json"], &[CONTACTS]).await;
    status.assert_code(0);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("status --json is JSON");
    let organizers = status["organizers"].as_array().expect("organizers");
    assert_eq!(organizers.len(), 2, "{status}");
    for o in organizers {
        assert_eq!(o["kind"], "contacts", "{status}");
        assert_eq!(
            o["round"], "up to date",
            "every folder (or none) is up to date: {status}"
        );
        assert!(o["roundsCompleted"].as_u64() >= Some(4), "{status}");
    }
}

/// A user without a mailbox has no contacts (not a failure); a mailbox the app is kept out of
/// (403) fails that user's contacts with the fix, and every other pass goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_without_access_fails_only_its_contacts() {
    let env = Env::direct(3).await;
    let (ok, none, denied) = (
        env.organizers[0].clone(),
        env.organizers[1].clone(),
        env.organizers[2].clone(),
    );
    let kept = env.sim.add_contact(&ok, "contacts", "Ada Lovelace");
    for org in &env.organizers {
        env.sim.add_recording(org, 10_000);
    }
    env.sim.faults().mailbox(&none, Some(MailboxFault::NotEnabled));
    env.sim.faults().mailbox(&denied, Some(MailboxFault::AccessDenied));
    let both = ("RECARCH_SOURCE__KINDS", "recordings,contacts");
    let out = env.recarch(&["run"], &[both]).await;
    out.assert_code(1);
    assert!(contact_manifest(&env, &ok, &kept).is_some());
    let report = last_report(&env);
    assert_eq!(report["kinds"]["recordings"]["archived"], 3, "{report}");
    let failures = report["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "only the denied mailbox: {report}");
    assert_eq!(failures[0]["organizerId"], denied.as_str());
    assert_eq!(failures[0]["kind"], "contacts");
    let reason = failures[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("ErrorAccessDenied") && reason.contains("Contacts.Read"),
        "{reason}"
    );
    // Let in: archived next run, and the user without a mailbox still needs nothing.
    env.sim.faults().mailbox(&denied, None);
    let late = env.sim.add_contact(&denied, "contacts", "Grace Hopper");
    env.recarch(&["run"], &[both]).await.assert_code(0);
    assert!(contact_manifest(&env, &denied, &late).is_some());
}

/// A service that knows contact folders only by id (no well-known `contacts`, no
/// `childFolders`): the default folder is found as its folders' `parentFolderId`, every folder
/// `/contactFolders` lists is archived, and nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_known_only_by_id_are_still_found() {
    let env = Env::paged(ContentMode::Direct, 2, 1).await;
    let a = env.organizers[0].clone();
    let default = env.sim.default_contact_folder(&a);
    let clients = env.sim.add_contact_folder(&a, "Clients", None);
    let nested = env.sim.add_contact_folder(&a, "Key accounts", Some(&clients));
    let in_default = env.sim.add_contact(&a, &default, "Ada Lovelace");
    let in_clients = env.sim.add_contact(&a, &clients, "Edsger Dijkstra");
    let in_nested = env.sim.add_contact(&a, &nested, "Barbara Liskov");
    env.sim.faults().folder_ids_only(true);
    env.recarch(&["run"], &[CONTACTS]).await.assert_code(0);
    assert!(
        contact_manifest(&env, &a, &in_default).is_some(),
        "the default folder's"
    );
    assert!(contact_manifest(&env, &a, &in_clients).is_some(), "a listed folder's");
    // Only `childFolders` would have shown it.
    assert!(contact_manifest(&env, &a, &in_nested).is_none());
    // Once the service lists child folders, the nested one is found too.
    env.sim.faults().folder_ids_only(false);
    env.recarch(&["run"], &[CONTACTS]).await.assert_code(0);
    assert!(contact_manifest(&env, &a, &in_nested).is_some());
}

/// `[source].contacts_page_size` reaches Graph as `Prefer: odata.maxpagesize` (the simulator's
/// own page size is far larger here): five contacts come in pages of that size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_size_is_asked_for_with_prefer() {
    for (page_size, pages) in [("2", 3), ("4", 2), ("50", 1)] {
        let env = Env::paged(ContentMode::Direct, 100, 1).await;
        let user = env.organizers[0].clone();
        for i in 0..5 {
            env.sim.add_contact(&user, "contacts", &format!("Contact {i}"));
        }
        env.recarch(&["run"], &[CONTACTS, ("RECARCH_SOURCE__CONTACTS_PAGE_SIZE", page_size)])
            .await
            .assert_code(0);
        let report = last_report(&env);
        assert_eq!(report["kinds"]["contacts"]["archived"], 5, "{report}");
        assert_eq!(
            report["kinds"]["contacts"]["pages"], pages,
            "5 contacts, {page_size} a page: {report}"
        );
    }
}
