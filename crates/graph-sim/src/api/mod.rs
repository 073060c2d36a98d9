//! The Graph endpoints, one module per resource, and what they share:
//! [`guard`] (authentication, throttles, refusing switches) and [`paging`].
//! Each endpoint reads and changes the tenant data through the shared
//! state; none knows the router.

pub(crate) mod adhoc;
pub(crate) mod auth;
pub(crate) mod contacts;
pub(crate) mod content;
pub(crate) mod directory;
pub(crate) mod folders;
pub(crate) mod guard;
pub(crate) mod meetings;
pub(crate) mod paging;

use crate::data::artifact::{ArtifactKind, Place};
use crate::http::ApiVersion;

/// A request for one of the functions that list a user's artifacts, as the
/// router found it in the path:
/// `users/{user}/{onlineMeetings|adhocCalls}/{getAllRecordings|getAllTranscripts}(…)`.
#[derive(Debug, Clone)]
pub(crate) struct ListCall<'a> {
    pub(crate) place: Place,
    pub(crate) version: ApiVersion,
    pub(crate) kind: ArtifactKind,
    /// The user in the path, as given.
    pub(crate) user: &'a str,
    /// The function's parameters, values unquoted.
    pub(crate) params: Vec<(String, String)>,
}

impl ListCall<'_> {
    /// The function parameter `name` (any case), if given.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The name of the function parameter that names the user again:
    /// `meetingOrganizerUserId` for a meeting's, `userId` for an ad hoc
    /// call's.
    pub(crate) fn user_param_name(&self) -> &'static str {
        match self.place {
            Place::Meeting => "meetingOrganizerUserId",
            Place::AdhocCall => "userId",
        }
    }
}
