//! What a compliance officer searches by, beside the GUIDs: an online meeting's subject and
//! times (`GET /users/{organizer}/onlineMeetings/{meetingId}`, `OnlineMeetings.Read.All`, under
//! the same Teams application access policy as the recordings) and a user's display name and
//! principal name (`GET /users/{id}`, `User.Read.All`). One authenticated GET each, with the
//! client's usual retries of throttling and transient answers; every other answer is the
//! caller's to judge (a 403 is [`DeltaError::Forbidden`]).

use serde::{Deserialize, Serialize};
use url::Url;

use crate::client::DeltaClient;
use crate::error::DeltaError;
use crate::resources::{append_option, join};

/// What the archive records of an online meeting (`$select=subject,startDateTime,endDateTime`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeetingNames {
    /// The meeting's subject, verbatim (absent or null when the meeting has none).
    #[serde(default)]
    pub subject: Option<String>,
    /// When the meeting was scheduled to start, as Graph wrote it.
    #[serde(default)]
    pub start_date_time: Option<String>,
    /// When the meeting was scheduled to end, as Graph wrote it.
    #[serde(default)]
    pub end_date_time: Option<String>,
}

/// What the archive records of a user (`$select=displayName,userPrincipalName`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserNames {
    /// The user's display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The user's principal name (sign-in name).
    #[serde(default)]
    pub user_principal_name: Option<String>,
}

/// `{base}/users/{organizer}/onlineMeetings/{meetingId}?$select=subject,startDateTime,endDateTime`
/// (the meeting id percent-encoded as one path segment: it is base64 and may hold `/`).
pub fn online_meeting_url(base_url: &Url, organizer: &str, meeting_id: &str) -> Url {
    let mut url = join(base_url, &["users", organizer, "onlineMeetings", meeting_id]);
    append_option(&mut url, "$select", "subject,startDateTime,endDateTime");
    url
}

/// `{base}/users/{id}?$select=displayName,userPrincipalName`.
pub fn user_names_url(base_url: &Url, user: &str) -> Url {
    let mut url = join(base_url, &["users", user]);
    append_option(&mut url, "$select", "displayName,userPrincipalName");
    url
}

impl DeltaClient {
    /// The subject and times of `organizer`'s online meeting `meeting_id`.
    ///
    /// # Errors
    /// [`DeltaError::Forbidden`] when the app lacks `OnlineMeetings.Read.All` or no
    /// application access policy covers the organizer; [`DeltaError::Status`] for 404 and
    /// other answers; transient failures once the retry policy is spent; a body that is not
    /// JSON is [`DeltaError::Protocol`].
    pub async fn online_meeting(
        &self,
        base_url: &Url,
        organizer: &str,
        meeting_id: &str,
    ) -> Result<MeetingNames, DeltaError> {
        self.get_json(&online_meeting_url(base_url, organizer, meeting_id))
            .await
    }

    /// The display name and principal name of the user `user` (an id or a UPN).
    ///
    /// # Errors
    /// [`DeltaError::Forbidden`] when the app lacks `User.Read.All`; [`DeltaError::Status`]
    /// for 404 and other answers; as [`DeltaClient::online_meeting`] otherwise.
    pub async fn user_names(&self, base_url: &Url, user: &str) -> Result<UserNames, DeltaError> {
        self.get_json(&user_names_url(base_url, user)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookups_select_what_is_recorded_and_keep_the_base() {
        let base = Url::parse("https://graph.microsoft.us/v1.0").expect("static url");
        assert_eq!(
            online_meeting_url(&base, "u-1", "MSo1/N2+Y=").as_str(),
            "https://graph.microsoft.us/v1.0/users/u-1/onlineMeetings/MSo1%2FN2+Y=?$select=subject,startDateTime,endDateTime"
        );
        assert_eq!(
            user_names_url(&base, "u-1").as_str(),
            "https://graph.microsoft.us/v1.0/users/u-1?$select=displayName,userPrincipalName"
        );
        let meeting: MeetingNames =
            serde_json::from_str(r#"{"id":"m","subject":null,"startDateTime":"2026-01-01T00:00:00Z"}"#)
                .expect("a meeting");
        assert_eq!(meeting.subject, None);
        assert_eq!(meeting.start_date_time.as_deref(), Some("2026-01-01T00:00:00Z"));
    }
}
