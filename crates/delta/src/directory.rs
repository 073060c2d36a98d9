//! Directory queries for organizer discovery: a user by principal name, a group's transitive
//! user members, and every user through `/users/delta` (a delta resource like any other).

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::client::DeltaClient;
use crate::error::DeltaError;
use crate::resources::{DeltaRequest, append_option, join};

/// A user as `/users/delta?$select=id,accountEnabled,userType` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    /// The user's object id.
    pub id: String,
    /// Whether sign-in is enabled (absent when not selected or unchanged).
    #[serde(default)]
    pub account_enabled: Option<bool>,
    /// `Member` or `Guest`.
    #[serde(default)]
    pub user_type: Option<String>,
}

/// `GET {base}/users/delta?$select=id,accountEnabled,userType`.
pub fn users_delta_request(base_url: &Url) -> DeltaRequest {
    let mut url = join(base_url, &["users", "delta"]);
    append_option(&mut url, "$select", "id,accountEnabled,userType");
    DeltaRequest {
        url,
        headers: HeaderMap::new(),
    }
}

#[derive(Deserialize)]
struct Collection {
    #[serde(default)]
    value: Vec<IdOnly>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

impl DeltaClient {
    /// The object id of the user `upn` (`GET /users/{upn}?$select=id`), or `None` when there is
    /// no such user.
    pub async fn user_id(&self, base_url: &Url, upn: &str) -> Result<Option<String>, DeltaError> {
        let mut url = join(base_url, &["users", upn]);
        append_option(&mut url, "$select", "id");
        match self.get_json::<IdOnly>(&url).await {
            Ok(user) => Ok(Some(user.id)),
            Err(DeltaError::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The ids of every user in `group`, nested groups included, each once
    /// (`GET /groups/{id}/transitiveMembers/microsoft.graph.user?$select=id`, every page).
    pub async fn group_user_ids(&self, base_url: &Url, group: &str) -> Result<Vec<String>, DeltaError> {
        let mut url = join(
            base_url,
            &["groups", group, "transitiveMembers", "microsoft.graph.user"],
        );
        append_option(&mut url, "$select", "id");
        let mut ids = Vec::new();
        loop {
            let page: Collection = self.get_json(&url).await?;
            ids.extend(page.value.into_iter().map(|u| u.id));
            match page.next_link {
                // Opaque: followed verbatim (and only on the Graph origin).
                Some(next) => {
                    url = Url::parse(&next).map_err(|e| DeltaError::InvalidLink { reason: e.to_string() })?;
                }
                None => break,
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_delta_selects_what_discovery_needs() {
        let base = Url::parse("https://graph.microsoft.com/v1.0").expect("static url");
        assert_eq!(
            users_delta_request(&base).url.as_str(),
            "https://graph.microsoft.com/v1.0/users/delta?$select=id,accountEnabled,userType"
        );
    }
}
