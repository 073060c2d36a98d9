//! What every resource's data shares: the simulated timeline and Graph's
//! timestamps, identities, and the reasons an item leaves.

use chrono::{DateTime, Utc};

/// `2024-01-01T08:00:00Z`, the creation time of the first recording.
pub(crate) const EPOCH_SECS: i64 = 1_704_096_000;

/// A date-time as Graph writes it, with 100 ns ticks
/// (`2024-01-01T08:03:17.1234567Z`). chrono has no 7-digit fraction
/// specifier, hence by hand.
pub(crate) fn graph_time(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_nanos() / 100
    )
}

/// `meetingOrganizer` as Graph sends it on recordings and transcripts.
pub(crate) fn meeting_organizer(organizer: &str, tenant: &str) -> serde_json::Value {
    serde_json::json!({
        "application": null,
        "device": null,
        "user": {
            "@odata.type": "#microsoft.graph.teamworkUserIdentity",
            "id": organizer,
            "displayName": null,
            "userIdentityType": "aadUser",
            "tenantId": tenant,
        }
    })
}

/// Why a contact or a directory user left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Permanently deleted (`@removed.reason == "deleted"`).
    Deleted,
    /// Soft-deleted (`@removed.reason == "changed"`).
    Changed,
}

impl Removal {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Removal::Deleted => "deleted",
            Removal::Changed => "changed",
        }
    }
}
