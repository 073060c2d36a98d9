//! [`GraphSim`]'s test API for the directory: users (every organizer is
//! one), groups and devices, and the first requests of directory queries.

use crate::data::directory::UserType;
use crate::http::encode_segment;
use crate::sim::GraphSim;
use crate::state::lock;

impl GraphSim {
    /// Registers a new organizer with a deterministic lowercase GUID and returns it.
    ///
    /// The organizer is also a directory user: enabled, `Member`, with the UPN
    /// `user{n}@contoso.example` (`n` counts users; see [`GraphSim::user_upn`]).
    pub fn add_organizer(&self) -> String {
        lock(&self.shared().data).add_organizer(self.shared().config.seed)
    }

    /// Adds a directory user with the user principal name `upn` and returns
    /// its id (a deterministic lowercase GUID). The user is an organizer too
    /// (with no recordings yet): every user can organize meetings. If a user
    /// with that UPN exists (UPNs compare case-insensitively), its id is
    /// returned and nothing changes.
    pub fn add_user(&self, upn: &str, enabled: bool, user_type: UserType) -> String {
        lock(&self.shared().data).add_user(self.shared().config.seed, upn, enabled, user_type)
    }

    /// The user principal name of the user with id `id` (or `None` if there is
    /// no such user, or it was removed).
    pub fn user_upn(&self, id: &str) -> Option<String> {
        lock(&self.shared().data).directory.user_upn(id)
    }

    /// Enables or disables a user (`accountEnabled`); the next `/users/delta`
    /// round reports the change. No-op for unknown or removed users, or when
    /// nothing changes.
    pub fn set_user_enabled(&self, id: &str, enabled: bool) {
        lock(&self.shared().data).directory.set_user_enabled(id, enabled);
    }

    /// Removes a user from the directory: `GET /users/{id}` answers 404, it
    /// leaves every group's transitive members, and the next `/users/delta`
    /// round reports `{"id": …, "@removed": {"reason": "changed"}}` when soft
    /// (Graph's shape for a deleted user, which stays restorable for 30 days)
    /// or `"deleted"` when `hard` (permanently deleted). Its recordings and
    /// its organizer entry stay. No-op for unknown users; a soft-removed user
    /// can still be hard-removed.
    pub fn remove_user(&self, id: &str, hard: bool) {
        lock(&self.shared().data).directory.remove_user(id, hard);
    }

    /// Adds a group named `name` and returns its id (a deterministic lowercase GUID).
    pub fn add_group(&self, name: &str) -> String {
        lock(&self.shared().data)
            .directory
            .add_group(self.shared().config.seed, name)
    }

    /// Adds a device (`#microsoft.graph.device`, a directory object that is
    /// not a user) and returns its id; groups can hold devices.
    pub fn add_device(&self, name: &str) -> String {
        lock(&self.shared().data)
            .directory
            .add_device(self.shared().config.seed, name)
    }

    /// Adds `member` (the id of a user, a group, nesting it, or a device) to
    /// `group`. Returns `false`, changing nothing, if either is unknown, the
    /// member is already a direct member, or it is the group itself. Cycles
    /// through nested groups are allowed (Graph forbids them; a client must not
    /// loop on them anyway).
    pub fn add_member(&self, group: &str, member: &str) -> bool {
        lock(&self.shared().data).directory.add_member(group, member)
    }

    /// Removes `member` from `group`'s direct members; whether it was one.
    pub fn remove_member(&self, group: &str, member: &str) -> bool {
        lock(&self.shared().data).directory.remove_member(group, member)
    }

    /// `{base}/users/delta?$select=id,accountEnabled,userType`: the first
    /// request of a directory delta round.
    pub fn users_delta_url(&self) -> String {
        format!("{}/users/delta?$select=id,accountEnabled,userType", self.base_url())
    }

    /// `{base}/groups/{group}/transitiveMembers/microsoft.graph.user?$select=id`:
    /// the first page of a group's users, nested groups included.
    pub fn group_users_url(&self, group: &str) -> String {
        format!(
            "{}/groups/{}/transitiveMembers/microsoft.graph.user?$select=id",
            self.base_url(),
            encode_segment(group)
        )
    }

    /// The known organizers (lowercase), sorted: every directory user
    /// (removed ones included) and every id recordings were added for.
    pub fn organizers(&self) -> Vec<String> {
        lock(&self.shared().data).meetings.organizers.keys().cloned().collect()
    }
}
