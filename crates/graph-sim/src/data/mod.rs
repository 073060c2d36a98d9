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

use crate::data::adhoc::{AdhocCallKind, AdhocCalls, CallInfo, Item, NewItem};
use crate::data::artifact::{ADHOC_TAG, ArtifactKind, Place, RecordingInfo, Served, TranscriptInfo};
use crate::data::contacts::Contacts;
use crate::data::directory::{Directory, UserType};
use crate::data::meetings::Meetings;
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

    /// Adds a recording to `organizer` (any case; an organizer and a user
    /// from now on) and returns its info.
    pub(crate) fn add_recording(
        &mut self,
        seed: u64,
        base: &str,
        organizer: &str,
        size: u64,
        url_override: Option<&str>,
    ) -> RecordingInfo {
        let organizer = organizer.to_ascii_lowercase();
        self.directory.ensure_user(&organizer);
        self.meetings.add_recording(seed, base, &organizer, size, url_override)
    }

    /// Adds a transcript to `organizer` (any case; an organizer and a user
    /// from now on), of the meeting of the recording with id `recording` if
    /// it is known, and returns its info.
    pub(crate) fn add_transcript(
        &mut self,
        seed: u64,
        base: &str,
        organizer: &str,
        recording: Option<&str>,
        size: u64,
    ) -> TranscriptInfo {
        let organizer = organizer.to_ascii_lowercase();
        self.directory.ensure_user(&organizer);
        self.meetings.add_transcript(seed, base, &organizer, recording, size)
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
    pub(crate) fn add_adhoc_item(&mut self, seed: u64, base: &str, new: NewItem<'_>) -> Item {
        let user = new.user.to_ascii_lowercase();
        self.ensure_user(&user);
        self.adhoc.add_item(seed, base, NewItem { user: &user, ..new })
    }

    /// What the pre-authenticated URLs signed for `signed_serial` serve.
    pub(crate) fn served(&self, signed_serial: u64) -> Option<Served> {
        if signed_serial & ADHOC_TAG != 0 {
            self.adhoc.served(signed_serial & !ADHOC_TAG)
        } else {
            self.meetings.served(signed_serial)
        }
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
        let served = match place {
            Place::Meeting => self.meetings.served_content(kind, id)?,
            Place::AdhocCall => self.adhoc.item(kind, id)?.served_content(),
        };
        served.is_at(place, user, container).then_some(served)
    }

    /// What the metadata URL `users/{user}/{place}/{container}/transcripts/{id}/metadataContent`
    /// serves, if it names a transcript.
    pub(crate) fn served_metadata(&self, place: Place, user: &str, container: &str, id: &str) -> Option<Served> {
        let served = match place {
            Place::Meeting => self.meetings.transcript(id)?.served_metadata(),
            Place::AdhocCall => self.adhoc.item(ArtifactKind::Transcript, id)?.served_metadata(),
        };
        served.is_at(place, user, container).then_some(served)
    }
}
