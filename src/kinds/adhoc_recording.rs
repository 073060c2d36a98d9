//! Recordings of ad hoc calls (1:1, group and PSTN calls), which live on no online meeting:
//! `adhocCalls/getAllRecordings(userId=…,startDateTime=…,endDateTime=…)` per user, a plain
//! listing of a time window ([`Paging::List`]: no delta, no per-call list), archived as the
//! meetings' recordings are, under `manifests/adhoc_recordings/`, with `"source": "adhocCall"`
//! and `callId`, and an entry in the call's index `calls/<userId>/…`.

use recarch_delta::{AdhocArtifacts, CallRecording, DeltaRequest, Paging};
use recarch_store::{Kind, OrganizerId};
use serde_json::Value;

use super::recording::archive_recording;
use super::{ItemKind, RoundStart, Surface, adhoc_content_url, window_request};
use crate::config::Config;
use crate::pipeline::{ItemContext, ItemOutcome};

/// The ad hoc call recordings kind.
#[derive(Debug, Clone)]
pub struct AdhocRecordings {
    /// `[graph].base_url`: where content is, for an item that does not say.
    base_url: url::Url,
}

impl AdhocRecordings {
    /// The kind, reading content from `base_url` when an item names no URL of its own.
    pub fn new(base_url: &url::Url) -> Self {
        AdhocRecordings {
            base_url: base_url.clone(),
        }
    }
}

impl ItemKind for AdhocRecordings {
    type Item = CallRecording;
    const KIND: Kind = Kind::AdhocRecordings;
    const NOUN: &'static str = "call recording";
    const PAGING: Paging = Paging::List;

    fn id(item: &CallRecording) -> &str {
        &item.id
    }

    fn first_request(&self, config: &Config, start: &RoundStart<'_>) -> DeltaRequest {
        window_request(config, start, AdhocArtifacts::Recordings)
    }

    /// No query option lives in the links: the window is rebuilt from the watermark.
    fn configured_options(&self, _config: &Config) -> Vec<String> {
        Vec::new()
    }

    async fn archive(
        &self,
        ctx: &ItemContext,
        organizer: &OrganizerId,
        item: &CallRecording,
        raw: &Value,
    ) -> ItemOutcome {
        match (&item.recording_content_url, &item.call_id) {
            (None, Some(call)) => {
                let url = adhoc_content_url(&self.base_url, organizer, call, "recordings", &item.id);
                let item = CallRecording {
                    recording_content_url: Some(url),
                    ..item.clone()
                };
                archive_recording(ctx, Surface::AdhocCall, organizer, &item, raw).await
            }
            _ => archive_recording(ctx, Surface::AdhocCall, organizer, item, raw).await,
        }
    }

    fn forbidden_hint(&self) -> &'static str {
        "the app may not read this user's call recordings: it needs the CallRecordings.Read.All application permission with admin consent, and a Teams administrator must grant an application access policy covering this user (New-CsApplicationAccessPolicy, Grant-CsApplicationAccessPolicy)"
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};

    use super::*;
    use crate::kinds::Window;

    #[test]
    fn the_window_reaches_back_by_the_overlap() {
        let config = crate::config::Config::parse(
            "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nbase_url = \"http://127.0.0.1:1/v1.0\"\nauthority_url = \"http://127.0.0.1:1\"\nclient_secret_file = \"/dev/null\"\n[source]\norganizers = [\"8b081ef6-4792-4def-b2c9-c363a1bf41d5\"]\nkinds = [\"adhoc_recordings\"]\nadhoc_overlap = \"90m\"\n[store]\nurl = \"memory://\"\n",
            &[],
            std::path::Path::new("."),
        )
        .expect("valid config");
        let org = OrganizerId::parse("8b081ef6-4792-4def-b2c9-c363a1bf41d5").expect("guid");
        let until = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).single().expect("instant");
        let start = |watermark| RoundStart {
            organizer: &org,
            source: None,
            window: Window { watermark, until },
        };
        let first = AdhocRecordings::new(&config.graph.base_url).first_request(&config, &start(None));
        assert!(
            first.url.as_str().ends_with(
                "/v1.0/users/8b081ef6-4792-4def-b2c9-c363a1bf41d5/adhocCalls/getAllRecordings(userId='8b081ef6-4792-4def-b2c9-c363a1bf41d5',endDateTime=2026-12-06T10:00:00Z)"
            ),
            "{}",
            first.url
        );
        let watermark = Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0).single();
        let next = AdhocRecordings::new(&config.graph.base_url).first_request(&config, &start(watermark));
        assert!(
            next.url
                .as_str()
                .ends_with(",startDateTime=2026-12-06T07:30:00Z,endDateTime=2026-12-06T10:00:00Z)"),
            "{}",
            next.url
        );
    }

    #[test]
    fn content_is_found_on_the_call_when_an_item_names_no_url() {
        let base = url::Url::parse("https://graph.microsoft.com/v1.0").expect("url");
        let org = OrganizerId::parse("8b081ef6-4792-4def-b2c9-c363a1bf41d5").expect("guid");
        assert_eq!(
            adhoc_content_url(&base, &org, "call/1", "recordings", "a+b/c="),
            "https://graph.microsoft.com/v1.0/users/8b081ef6-4792-4def-b2c9-c363a1bf41d5/adhocCalls/call%2F1/recordings/a+b%2Fc=/content"
        );
    }
}
