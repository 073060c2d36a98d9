//! What the two ad hoc call kinds share: one user's time window as their source
//! ([`Paging::List`]: no delta query, no per-call list), the content on the call when an item
//! names no URL, and the archiving of the meeting kinds, told [`Surface::AdhocCall`].
//! [`super::adhoc_recording`] and [`super::adhoc_transcript`] say what differs.

use std::future::Future;
use std::marker::PhantomData;

use recarch_delta::{AdhocArtifacts, CallItem, DeltaRequest, Paging};
use recarch_store::{Kind, OrganizerId};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ItemKind, RoundStart, Surface, adhoc_content_url, window_request};
use crate::config::Config;
use crate::pipeline::{ItemContext, ItemOutcome};

/// A recording or a transcript as an ad hoc call lists it.
pub trait CallArtifact: CallItem + DeserializeOwned + Send + Sync {
    /// Where its manifests and state live.
    const KIND: Kind;
    /// What one is called in messages.
    const NOUN: &'static str;
    /// Which `getAll…` function lists it.
    const ARTIFACTS: AdhocArtifacts;
    /// Its collection under the call (`recordings`, `transcripts`).
    const COLLECTION: &'static str;
    /// What to tell an operator when the listing answers 403.
    const FORBIDDEN_HINT: &'static str;

    /// Archives it: blobs, manifest, call index.
    fn archive<'a>(
        ctx: &'a ItemContext,
        organizer: &'a OrganizerId,
        item: &'a Self,
        raw: &'a Value,
    ) -> impl Future<Output = ItemOutcome> + Send + 'a;
}

/// Implements [`CallArtifact`] for a Graph item type: `kind` (where it is archived), `noun`,
/// `artifacts` (the `getAll…` function), `collection`, `hint` (for a 403), and the meeting
/// kind's function that archives it, told [`Surface::AdhocCall`].
macro_rules! call_artifact {
    ($item:ty { $kind:expr, $noun:expr, $artifacts:expr, $collection:expr, $hint:expr } by $archive:path) => {
        impl $crate::kinds::adhoc::CallArtifact for $item {
            const KIND: ::recarch_store::Kind = $kind;
            const NOUN: &'static str = $noun;
            const ARTIFACTS: ::recarch_delta::AdhocArtifacts = $artifacts;
            const COLLECTION: &'static str = $collection;
            const FORBIDDEN_HINT: &'static str = $hint;

            fn archive<'a>(
                ctx: &'a $crate::pipeline::ItemContext,
                organizer: &'a ::recarch_store::OrganizerId,
                item: &'a Self,
                raw: &'a ::serde_json::Value,
            ) -> impl ::std::future::Future<Output = $crate::pipeline::ItemOutcome> + Send + 'a {
                $archive(ctx, $crate::kinds::Surface::AdhocCall, organizer, item, raw)
            }
        }
    };
}
pub(crate) use call_artifact;

/// An ad hoc call kind, over the artifact it lists.
#[derive(Debug, Clone)]
pub struct Adhoc<A> {
    /// `[graph].base_url`: where content is, for an item that does not say.
    base_url: url::Url,
    artifact: PhantomData<fn() -> A>,
}

impl<A> Adhoc<A> {
    /// The kind, reading content from `base_url` when an item names no URL of its own.
    pub fn new(base_url: &url::Url) -> Self {
        Adhoc {
            base_url: base_url.clone(),
            artifact: PhantomData,
        }
    }
}

impl<A: CallArtifact> ItemKind for Adhoc<A> {
    type Item = A;
    const KIND: Kind = A::KIND;
    const NOUN: &'static str = A::NOUN;
    const PAGING: Paging = Paging::List;

    fn id(item: &A) -> &str {
        item.id()
    }

    fn first_request(&self, config: &Config, start: &RoundStart<'_>) -> DeltaRequest {
        window_request(config, start, A::ARTIFACTS)
    }

    /// No query option lives in the links: the window is rebuilt from the watermark.
    fn configured_options(&self, _config: &Config) -> Vec<String> {
        Vec::new()
    }

    fn writes(&self, organizer: &OrganizerId, item: &A) -> Vec<String> {
        Surface::AdhocCall.writes(A::KIND, organizer, item.id(), item.call_id())
    }

    async fn archive(&self, ctx: &ItemContext, organizer: &OrganizerId, item: &A, raw: &Value) -> ItemOutcome {
        match (item.content_url(), item.call_id()) {
            (None, Some(call)) => {
                let url = adhoc_content_url(&self.base_url, organizer, call, A::COLLECTION, item.id());
                A::archive(ctx, organizer, &item.with_content_url(url), raw).await
            }
            _ => A::archive(ctx, organizer, item, raw).await,
        }
    }

    fn forbidden_hint(&self) -> &'static str {
        A::FORBIDDEN_HINT
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};

    use super::*;
    use crate::kinds::{AdhocRecordings, Window};

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
