//! Which organizers a run covers: ids given, user principal names resolved, a group's
//! transitive user members, every enabled member user of the tenant — the union,
//! deduplicated, then this shard's part of it.
//!
//! A source that fails (an unknown UPN or group, a directory query refused) fails that entry
//! only, with its name in the message; the run goes on with the rest.

use std::collections::BTreeSet;

use futures::StreamExt;
use recarch_delta::directory::{DirectoryUser, users_delta_request};
use recarch_delta::{Continuation, DeltaClient, DeltaError, DeltaItem, PageRequest};
use recarch_failure::FailureClass;
use recarch_store::{Archive, Checkpoint, DirectoryEntry, DirectoryState, LinkKind, OrganizerId, ShardId};

use crate::config::Config;
use crate::report::Failure;
use recarch_failure::error_chain;

/// Full directory rounds restarted after 410 Gone in one run before giving up.
const MAX_RESYNCS: u32 = 2;

/// The organizers found, and the sources that failed.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Every organizer, deduplicated, sorted.
    pub organizers: Vec<OrganizerId>,
    /// One per failed source.
    pub failures: Vec<Failure>,
}

/// Resolves every configured organizer source.
pub async fn resolve(config: &Config, delta: &DeltaClient, archive: &Archive, shard: &ShardId) -> Resolved {
    let mut found: BTreeSet<OrganizerId> = config.source.organizers.iter().cloned().collect();
    let mut failures = Vec::new();
    let base = &config.graph.base_url;
    let fail = |failures: &mut Vec<Failure>, what: String, class: FailureClass, reason: String| {
        tracing::error!(source = %what, %reason, "organizer source failed; the others go on");
        failures.push(Failure {
            organizer_id: what,
            kind: "organizers".into(),
            id: String::new(),
            class,
            reason,
            attempts: 0,
            dead_lettered: false,
        });
    };
    for upn in &config.source.organizer_upns {
        match delta.user_id(base, upn).await {
            Ok(Some(id)) => match OrganizerId::parse(&id) {
                Ok(id) => {
                    found.insert(id);
                }
                Err(_) => fail(
                    &mut failures,
                    upn.clone(),
                    FailureClass::Permanent,
                    format!("graph gave user {upn} the id {id:?}, which is not a GUID"),
                ),
            },
            Ok(None) => fail(
                &mut failures,
                upn.clone(),
                FailureClass::Permanent,
                format!("no user {upn} in the directory; check [source].organizers"),
            ),
            Err(e) => fail(
                &mut failures,
                upn.clone(),
                e.class(),
                format!("cannot resolve user {upn}: {}{}", error_chain(&e), directory_hint(&e)),
            ),
        }
    }
    if let Some(group) = &config.source.organizers_group {
        match delta.group_user_ids(base, group).await {
            Ok(ids) => {
                let before = found.len();
                found.extend(ids.iter().filter_map(|id| OrganizerId::parse(id).ok()));
                tracing::info!(%group, members = ids.len(), new = found.len() - before, "organizers from the group");
            }
            Err(e) => {
                let reason = if matches!(&e, DeltaError::Status { status, .. } if status.as_u16() == 404) {
                    format!("no group {group} in the directory; check [source].organizers_group")
                } else {
                    format!(
                        "cannot list the members of group {group}: {}{}",
                        error_chain(&e),
                        directory_hint(&e)
                    )
                };
                fail(&mut failures, format!("group {group}"), e.class(), reason);
            }
        }
    }
    if config.source.organizers_all {
        match all_users(config, delta, archive, shard).await {
            Ok(users) => {
                let before = found.len();
                found.extend(
                    users
                        .iter()
                        .filter(|(_, u)| u.enabled && u.member)
                        .filter_map(|(id, _)| OrganizerId::parse(id).ok()),
                );
                tracing::info!(
                    users = users.len(),
                    new = found.len() - before,
                    "organizers from the directory"
                );
            }
            Err((class, reason)) => fail(&mut failures, "all users".into(), class, reason),
        }
    }
    Resolved {
        organizers: found.into_iter().collect(),
        failures,
    }
}

fn directory_hint(e: &DeltaError) -> &'static str {
    if matches!(e, DeltaError::Forbidden { .. }) {
        "; the app needs the User.Read.All application permission (GroupMember.Read.All for groups) with admin consent"
    } else {
        ""
    }
}

/// The shard's copy of the directory brought up to date through `/users/delta`, from its own
/// checkpoint: later runs fetch only what changed. Users removed from the directory leave it
/// (their archives stay).
async fn all_users(
    config: &Config,
    delta: &DeltaClient,
    archive: &Archive,
    shard: &ShardId,
) -> Result<std::collections::BTreeMap<String, DirectoryEntry>, (FailureClass, String)> {
    let store_failed = |e: recarch_store::StoreError| {
        (
            e.class(),
            format!("cannot read or save the directory copy: {}", error_chain(&e)),
        )
    };
    let mut state = archive
        .load_directory(shard)
        .await
        .map_err(store_failed)?
        .unwrap_or_default();
    let mut resyncs = 0;
    loop {
        let start = match &state.checkpoint {
            Some(cp) => PageRequest::Link(cp.link.clone()),
            None => PageRequest::First(users_delta_request(&config.graph.base_url)),
        };
        // Changes are applied to a copy and saved with the round's delta link, so that the
        // saved document always matches its checkpoint.
        let mut users = state.users.clone();
        let mut pages = std::pin::pin!(delta.pages::<DirectoryUser>(start));
        let mut end = None;
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => {
                    for item in page.items {
                        match item {
                            DeltaItem::Present { item, .. } => apply_user(&mut users, &item),
                            DeltaItem::Removed { id, .. } => {
                                users.remove(&id);
                            }
                            DeltaItem::Malformed { error, .. } => {
                                tracing::warn!(%error, "malformed user in the directory delta; skipped");
                            }
                        }
                    }
                    if let Continuation::Delta(link) = page.continuation {
                        end = Some(Ok(link.0));
                    }
                }
                Err(DeltaError::SyncReset { .. }) => {
                    end = Some(Err(None));
                    break;
                }
                Err(e) => {
                    end = Some(Err(Some(e)));
                    break;
                }
            }
        }
        match end {
            Some(Ok(link)) => {
                state.users = users;
                state.checkpoint = Some(Checkpoint {
                    kind: LinkKind::Delta,
                    link,
                });
                archive.save_directory(shard, &state).await.map_err(store_failed)?;
                return Ok(state.users);
            }
            Some(Err(None)) if resyncs < MAX_RESYNCS => {
                resyncs += 1;
                tracing::warn!("directory sync state expired (410): reading the whole directory again");
                state = DirectoryState::default();
            }
            Some(Err(Some(e))) => {
                return Err((
                    e.class(),
                    format!(
                        "cannot read the directory (/users/delta): {}{}",
                        error_chain(&e),
                        directory_hint(&e)
                    ),
                ));
            }
            _ => return Err((FailureClass::Transient, "the directory round did not complete".into())),
        }
    }
}

/// Applies one user of the directory delta to `users`. A property the item leaves out (a
/// delta lists changed users with the properties that changed) keeps what is known; a user
/// first seen without one counts as an enabled member until the directory says otherwise, so
/// that nobody's recordings are skipped on a guess.
fn apply_user(users: &mut std::collections::BTreeMap<String, DirectoryEntry>, item: &DirectoryUser) {
    let entry = users.entry(item.id.clone()).or_insert(DirectoryEntry {
        enabled: true,
        member: true,
    });
    if let Some(enabled) = item.account_enabled {
        entry.enabled = enabled;
    }
    if let Some(kind) = item.user_type.as_deref() {
        entry.member = kind.eq_ignore_ascii_case("member");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, enabled: Option<bool>, kind: Option<&str>) -> DirectoryUser {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "accountEnabled": enabled,
            "userType": kind,
        }))
        .expect("a directory user")
    }

    #[test]
    fn left_out_properties_keep_what_is_known() {
        let mut users = std::collections::BTreeMap::new();
        apply_user(&mut users, &user("a", Some(false), Some("Guest")));
        apply_user(&mut users, &user("b", None, None));
        assert_eq!(
            users["a"],
            DirectoryEntry {
                enabled: false,
                member: false
            }
        );
        assert_eq!(
            users["b"],
            DirectoryEntry {
                enabled: true,
                member: true
            },
            "first seen without them"
        );
        // A later change names only what changed.
        apply_user(&mut users, &user("a", Some(true), None));
        assert_eq!(
            users["a"],
            DirectoryEntry {
                enabled: true,
                member: false
            }
        );
        apply_user(&mut users, &user("a", None, Some("Member")));
        assert_eq!(
            users["a"],
            DirectoryEntry {
                enabled: true,
                member: true
            }
        );
        apply_user(&mut users, &user("b", Some(false), None));
        assert_eq!(
            users["b"],
            DirectoryEntry {
                enabled: false,
                member: true
            }
        );
    }
}

/// The organizers the archive knows of for one kind, without asking Graph: the configured ids
/// (when the kind is configured) and every organizer with state of that kind (discovered
/// earlier through UPNs, a group or the directory).
#[derive(Debug)]
pub struct KnownKind {
    /// The kind.
    pub kind: recarch_store::Kind,
    /// What `state/<kind>/` holds, by organizer.
    pub overview: std::collections::BTreeMap<OrganizerId, recarch_store::StateOverview>,
    /// The organizers, each once: the configured ones in the order given, then the others
    /// sorted.
    pub organizers: Vec<OrganizerId>,
}

/// [`KnownKind`] for every kind that is configured or has state in the archive (a kind taken
/// out of `[source].kinds` keeps its queue and dead letters, which `status` shows and `retry`
/// can move): the one view of "which organizers" that `status` and `retry` share.
///
/// # Errors
/// The store's, listing `state/`.
pub async fn known(config: &Config, archive: &Archive) -> Result<Vec<KnownKind>, recarch_store::StoreError> {
    let mut out = Vec::new();
    for kind in recarch_store::Kind::ALL {
        let overview = archive.state_overview(kind).await?;
        let configured = config.source.kinds.contains(&kind);
        if !configured && overview.is_empty() {
            continue;
        }
        let mut organizers: Vec<OrganizerId> = Vec::new();
        if configured {
            organizers.extend(config.source.organizers.iter().cloned());
        }
        let given: BTreeSet<&OrganizerId> = config.source.organizers.iter().collect();
        let discovered: Vec<OrganizerId> = overview
            .keys()
            .filter(|o| !configured || !given.contains(o))
            .cloned()
            .collect();
        organizers.extend(discovered);
        out.push(KnownKind {
            kind,
            overview,
            organizers,
        });
    }
    Ok(out)
}
