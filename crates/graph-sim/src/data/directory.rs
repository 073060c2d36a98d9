//! The tenant directory: users, groups (nested) and devices, which the
//! directory endpoints discover organizers from. Organizers and users are
//! one population: every organizer is a user and every user can organize
//! meetings.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::data::common::Removal;
use crate::rng::{Rng, domain};

/// A directory user's `userType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UserType {
    /// A member of the tenant (`"Member"`).
    #[default]
    Member,
    /// A guest (B2B) user (`"Guest"`).
    Guest,
}

impl UserType {
    /// The `userType` value Graph sends.
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Member => "Member",
            UserType::Guest => "Guest",
        }
    }
}

/// User properties `$select` may name (others are ignored).
pub(crate) const USER_PROPERTIES: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "accountEnabled",
    "userType",
];

/// Properties of a user when no `$select` is given (Graph's default set,
/// without the ones the simulator does not model).
const USER_DEFAULT: &[&str] = &["id", "displayName", "userPrincipalName", "mail"];

/// A directory user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) upn: String,
    pub(crate) enabled: bool,
    pub(crate) user_type: UserType,
    /// Directory change sequence numbers of its creation, of its last
    /// `accountEnabled` change and of its removal.
    pub(crate) created_seq: u64,
    pub(crate) enabled_seq: u64,
    pub(crate) removed: Option<(Removal, u64)>,
}

impl User {
    pub(crate) fn change_seq(&self) -> u64 {
        self.created_seq
            .max(self.enabled_seq)
            .max(self.removed.map_or(0, |(_, s)| s))
    }

    /// `first.last@…` → `First Last`; a guest's `bob_fabrikam.com#EXT#@…` → `Bob`.
    fn display_name(&self) -> String {
        let local = self.upn.split('@').next().unwrap_or_default();
        let local = match local.split_once("#EXT#") {
            Some((external, _)) => external.rsplit_once('_').map_or(external, |(name, _)| name),
            None => local,
        };
        local
            .split(['.', '_', '-'])
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The value of `property`, if the simulator models it.
    fn property(&self, property: &str) -> Option<Value> {
        Some(match property {
            "id" => self.id.clone().into(),
            "userPrincipalName" => self.upn.clone().into(),
            "displayName" => self.display_name().into(),
            "mail" => self.upn.clone().into(),
            "accountEnabled" => self.enabled.into(),
            "userType" => self.user_type.as_str().into(),
            _ => return None,
        })
    }

    /// The user object with the `select`ed properties (the default set when
    /// `None`), `@odata.type` first when `typed`.
    pub(crate) fn to_json(&self, select: Option<&[String]>, typed: bool) -> Value {
        let mut m = Map::new();
        if typed {
            m.insert("@odata.type".into(), "#microsoft.graph.user".into());
        }
        let props: Vec<&str> = match select {
            Some(s) => s.iter().map(String::as_str).collect(),
            None => USER_DEFAULT.to_vec(),
        };
        m.insert("id".into(), self.id.clone().into());
        for p in props {
            if let Some(v) = self.property(p) {
                m.insert(p.to_owned(), v);
            }
        }
        Value::Object(m)
    }
}

/// A group and its direct members (ids, in the order added).
#[derive(Debug, Clone)]
pub(crate) struct Group {
    name: String,
    members: Vec<String>,
}

/// Users, groups and devices.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    pub(crate) users: Vec<User>,
    /// Lowercase id → index in `users`.
    by_id: HashMap<String, usize>,
    /// Lowercase UPN → index in `users`, live users only.
    by_upn: HashMap<String, usize>,
    pub(crate) groups: HashMap<String, Group>,
    devices: HashMap<String, String>,
    /// Directory change sequence (creations, `accountEnabled` changes, removals).
    pub(crate) seq: u64,
    group_counter: u64,
    device_counter: u64,
}

impl Directory {
    /// Adds a user with id `id` (already unique) and returns it.
    pub(crate) fn insert_user(&mut self, id: String, upn: &str, enabled: bool, user_type: UserType) -> String {
        self.seq += 1;
        let index = self.users.len();
        self.by_id.insert(id.to_ascii_lowercase(), index);
        self.by_upn.insert(upn.to_lowercase(), index);
        self.users.push(User {
            id: id.clone(),
            upn: upn.to_owned(),
            enabled,
            user_type,
            created_seq: self.seq,
            enabled_seq: 0,
            removed: None,
        });
        id
    }

    /// The live user named by `key`: an id or a UPN (case-insensitive).
    pub(crate) fn live_user(&self, key: &str) -> Option<&User> {
        let i = self
            .by_id
            .get(&key.to_ascii_lowercase())
            .or_else(|| self.by_upn.get(&key.to_lowercase()))?;
        self.users.get(*i).filter(|u| u.removed.is_none())
    }

    fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        let i = *self.by_id.get(&id.to_ascii_lowercase())?;
        self.users.get_mut(i)
    }

    /// Whether `id` names a user, group or device.
    fn exists(&self, id: &str) -> bool {
        self.by_id.contains_key(&id.to_ascii_lowercase())
            || self.groups.contains_key(id)
            || self.devices.contains_key(id)
    }

    /// Everything reachable from `group` through nested groups, each once,
    /// depth first in the order members were added: users (live ones only),
    /// then, unless `users_only`, groups and devices too.
    pub(crate) fn transitive(&self, group: &str, users_only: bool, select: Option<&[String]>) -> Vec<Value> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut visited = HashSet::from([group.to_owned()]);
        // An explicit stack of member iterators: nesting depth is unbounded.
        let mut stack = vec![self.groups.get(group).map_or(&[][..], |g| g.members.as_slice()).iter()];
        while let Some(top) = stack.last_mut() {
            let Some(member) = top.next() else {
                stack.pop();
                continue;
            };
            if let Some(g) = self.groups.get(member) {
                if visited.insert(member.clone()) {
                    if !users_only {
                        out.push(serde_json::json!({
                            "@odata.type": "#microsoft.graph.group",
                            "id": member,
                            "displayName": g.name,
                        }));
                    }
                    stack.push(g.members.iter());
                }
            } else if let Some(name) = self.devices.get(member) {
                if !users_only && seen.insert(member.clone()) {
                    out.push(serde_json::json!({
                        "@odata.type": "#microsoft.graph.device",
                        "id": member,
                        "displayName": name,
                    }));
                }
            } else if let Some(u) = self.live_user(member) {
                if seen.insert(u.id.clone()) {
                    out.push(u.to_json(select, true));
                }
            }
        }
        out
    }

    /// Makes sure organizer `id` (lowercase) is a user, as
    /// [`Data::add_organizer`](crate::data::Data::add_organizer) would.
    pub(crate) fn ensure_user(&mut self, id: &str) {
        if !self.by_id.contains_key(id) {
            let upn = self.free_upn();
            self.insert_user(id.to_owned(), &upn, true, UserType::Member);
        }
    }

    pub(crate) fn free_upn(&self) -> String {
        (self.users.len() + 1..)
            .map(|n| format!("user{n}@contoso.example"))
            .find(|upn| !self.by_upn.contains_key(upn))
            .unwrap_or_default()
    }

    pub(crate) fn user_upn(&self, id: &str) -> Option<String> {
        self.live_user(id).map(|u| u.upn.clone())
    }

    pub(crate) fn set_user_enabled(&mut self, id: &str, enabled: bool) {
        let seq = self.seq + 1;
        if let Some(u) = self.user_mut(id) {
            if u.removed.is_none() && u.enabled != enabled {
                u.enabled = enabled;
                u.enabled_seq = seq;
                self.seq = seq;
            }
        }
    }

    pub(crate) fn remove_user(&mut self, id: &str, hard: bool) {
        let reason = if hard { Removal::Deleted } else { Removal::Changed };
        let d = self;
        let seq = d.seq + 1;
        let Some(&index) = d.by_id.get(&id.to_ascii_lowercase()) else {
            return;
        };
        let Some(u) = d.users.get_mut(index) else {
            return;
        };
        match u.removed {
            Some((Removal::Deleted, _)) => return,
            Some((r, _)) if r == reason => return,
            _ => u.removed = Some((reason, seq)),
        }
        d.seq = seq;
        // Its UPN is free again (unless a newer user already took it).
        let upn = u.upn.to_lowercase();
        if d.by_upn.get(&upn) == Some(&index) {
            d.by_upn.remove(&upn);
        }
    }

    pub(crate) fn add_group(&mut self, seed: u64, name: &str) -> String {
        let d = self;
        let id = loop {
            let g = Rng::derive(seed, domain::GROUP, d.group_counter).guid();
            d.group_counter += 1;
            if !d.exists(&g) {
                break g;
            }
        };
        d.groups.insert(
            id.clone(),
            Group {
                name: name.to_owned(),
                members: Vec::new(),
            },
        );
        id
    }

    pub(crate) fn add_device(&mut self, seed: u64, name: &str) -> String {
        let d = self;
        let id = loop {
            let g = Rng::derive(seed, domain::DEVICE, d.device_counter).guid();
            d.device_counter += 1;
            if !d.exists(&g) {
                break g;
            }
        };
        d.devices.insert(id.clone(), name.to_owned());
        id
    }

    /// Adds `member` (a user, group or device id) to `group`.
    pub(crate) fn add_member(&mut self, group: &str, member: &str) -> bool {
        let d = self;
        // Users are keyed case-insensitively, groups and devices by their lowercase GUIDs.
        let member = d
            .by_id
            .get(&member.to_ascii_lowercase())
            .and_then(|i| d.users.get(*i))
            .map_or_else(|| member.to_ascii_lowercase(), |u| u.id.clone());
        if !d.exists(&member) || member == group.to_ascii_lowercase() {
            return false;
        }
        match d.groups.get_mut(&group.to_ascii_lowercase()) {
            Some(g) if !g.members.contains(&member) => {
                g.members.push(member);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn remove_member(&mut self, group: &str, member: &str) -> bool {
        let Some(g) = self.groups.get_mut(&group.to_ascii_lowercase()) else {
            return false;
        };
        let before = g.members.len();
        g.members.retain(|m| !m.eq_ignore_ascii_case(member));
        g.members.len() != before
    }
}
