//! The tenant's data, one module per resource, and the issued tokens: what
//! the endpoints serve and the [`crate::GraphSim`] test API changes. Nothing
//! here knows HTTP, faults or the servers.
//!
//! [`Data`] puts the resources together behind the one lock of the shared
//! state, and does what spans several of them (a recording's organizer is a
//! directory user; so is an ad hoc call's).

pub(crate) mod artifact;
pub(crate) mod common;
pub(crate) mod contacts;
pub(crate) mod directory;
pub(crate) mod meetings;
pub(crate) mod tokens;

use crate::data::artifact::Served;
use crate::data::contacts::Contacts;
use crate::data::directory::{Directory, UserType};
use crate::data::meetings::{Meetings, RecordingInfo, TranscriptInfo};
use crate::data::tokens::{AccessTokens, SyncTokens};

/// The tenant data and every issued token.
#[derive(Debug, Default)]
pub(crate) struct Data {
    /// Meetings' recordings and transcripts, and the organizers.
    pub(crate) meetings: Meetings,
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

    /// What the pre-authenticated URLs signed for `signed_serial` serve.
    pub(crate) fn served(&self, signed_serial: u64) -> Option<Served> {
        self.meetings.served(signed_serial)
    }
}
