//! The tenant's data, one module per resource, and the issued tokens: what
//! the endpoints serve and the [`crate::GraphSim`] test API changes. Nothing
//! here knows HTTP, faults or the servers.
//!
//! [`Data`] puts the resources together behind the one lock of the shared
//! state, and does what spans several of them (a recording's organizer is a
//! directory user; so is an ad hoc call's).

pub(crate) mod adhoc;
pub(crate) mod artifact;
pub(crate) mod common;
pub(crate) mod contacts;
pub(crate) mod directory;
pub(crate) mod meetings;
pub(crate) mod tokens;

use crate::data::adhoc::{AdhocCallKind, AdhocCalls, CallInfo, NewItem};
use crate::data::artifact::{ADHOC_TAG, Artifact, ArtifactKind, Artifacts, Place, Served};
use crate::data::contacts::Contacts;
use crate::data::directory::{Directory, UserType};
use crate::data::meetings::{Meetings, NewArtifact};
use crate::data::tokens::{AccessTokens, SyncTokens};

/// The tenant data and every issued token.
#[derive(Debug, Default)]
pub(crate) struct Data {
    /// Meetings' recordings and transcripts, and the organizers.
    pub(crate) meetings: Meetings,
    /// Ad hoc calls and their recordings and transcripts.
    pub(crate) adhoc: AdhocCalls,
    /// Mailboxes: contact folders and contacts.
    pub(crate) contacts: Contacts,
    /// Users (every organizer is one), groups and devices.
    pub(crate) directory: Directory,
    /// Issued access tokens.
    pub(crate) access_tokens: AccessTokens,
    /// Issued skip / delta tokens.
    pub(crate) sync_tokens: SyncTokens,
}

impl Data {
    /// Adds a user (also an organizer, with no recordings yet) and returns its
    /// id; the existing id if a live user has that UPN.
    pub(crate) fn add_user(&mut self, seed: u64, upn: &str, enabled: bool, user_type: UserType) -> String {
        if let Some(u) = self.directory.live_user(upn) {
            return u.id.clone();
        }
        let id = self.meetings.new_organizer(seed);
        self.directory.insert_user(id, upn, enabled, user_type)
    }

    /// A new organizer, which is an enabled member user with UPN
    /// `user{n}@contoso.example`.
    pub(crate) fn add_organizer(&mut self, seed: u64) -> String {
        let id = self.meetings.new_organizer(seed);
        let upn = self.directory.free_upn();
        self.directory.insert_user(id, &upn, true, UserType::Member)
    }

    /// Adds a recording or transcript to the meeting organizer
    /// `new.organizer` (any case; an organizer and a user from now on), and
    /// returns it.
    pub(crate) fn add_meeting_artifact(&mut self, seed: u64, base: &str, new: NewArtifact<'_>) -> &Artifact {
        let organizer = new.organizer.to_ascii_lowercase();
        self.directory.ensure_user(&organizer);
        self.meetings.add(
            seed,
            base,
            NewArtifact {
                organizer: &organizer,
                ..new
            },
        )
    }

    /// Makes sure `user` (lowercase) is an organizer and a directory user.
    fn ensure_user(&mut self, user: &str) {
        self.directory.ensure_user(user);
        self.meetings.register(user);
    }

    /// Adds an ad hoc call of `kind` started by `user` (any case; an
    /// organizer and a user from now on) and returns its info.
    pub(crate) fn add_adhoc_call(&mut self, seed: u64, user: &str, kind: AdhocCallKind) -> CallInfo {
        let user = user.to_ascii_lowercase();
        self.ensure_user(&user);
        self.adhoc.add_call(seed, &user, kind)
    }

    /// Adds a recording or transcript of an ad hoc call, listed for
    /// `new.user` (any case; an organizer and a user from now on).
    pub(crate) fn add_adhoc_item(&mut self, seed: u64, base: &str, new: NewItem<'_>) -> &Artifact {
        let user = new.user.to_ascii_lowercase();
        self.ensure_user(&user);
        self.adhoc.add_item(seed, base, NewItem { user: &user, ..new })
    }

    /// The artifact of `kind` with `id`: a meeting's, else an ad hoc call's.
    pub(crate) fn artifact(&self, kind: ArtifactKind, id: &str) -> Option<&Artifact> {
        let meeting = self.meetings.artifacts.get(kind, id);
        meeting.or_else(|| self.adhoc.artifacts.get(kind, id))
    }

    /// The artifacts of `place`.
    pub(crate) fn artifacts(&self, place: Place) -> &Artifacts {
        match place {
            Place::Meeting => &self.meetings.artifacts,
            Place::AdhocCall => &self.adhoc.artifacts,
        }
    }

    /// What the pre-authenticated URLs signed for `signed_serial` serve.
    pub(crate) fn served(&self, signed_serial: u64) -> Option<Served> {
        let place = if signed_serial & ADHOC_TAG != 0 {
            Place::AdhocCall
        } else {
            Place::Meeting
        };
        self.artifacts(place).served(signed_serial & !ADHOC_TAG)
    }

    /// What the content URL `users/{user}/{place}/{container}/{kind}s/{id}/content`
    /// serves, if it names an artifact.
    pub(crate) fn served_content(
        &self,
        place: Place,
        kind: ArtifactKind,
        user: &str,
        container: &str,
        id: &str,
    ) -> Option<Served> {
        let served = self.artifacts(place).get(kind, id)?.served_content();
        served.is_at(place, user, container).then_some(served)
    }

    /// What the metadata URL `users/{user}/{place}/{container}/transcripts/{id}/metadataContent`
    /// serves, if it names a transcript.
    pub(crate) fn served_metadata(&self, place: Place, user: &str, container: &str, id: &str) -> Option<Served> {
        let served = self
            .artifacts(place)
            .get(ArtifactKind::Transcript, id)?
            .served_metadata();
        served.is_at(place, user, container).then_some(served)
    }
}
