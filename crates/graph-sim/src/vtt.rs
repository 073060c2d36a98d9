//! Transcript bodies: a deterministic WebVTT script per transcript, and its
//! metadata as JSON.
//!
//! A transcript's script is an endless sequence of cues derived from its
//! content key: two to four speakers taking turns, each cue a few seconds of
//! made-up speech. A transcript of a requested size is the `WEBVTT` header
//! followed by as many cues as it takes to reach that size (at least one), so
//! the body is at most one cue longer than asked. Both bodies are built in full
//! when served: transcripts are small (a few KiB to a few MiB).

use serde_json::{Value, json};

use crate::rng::Rng;

/// The people who speak in simulated meetings.
const SPEAKERS: &[&str] = &[
    "Adele Vance",
    "Alex Wilber",
    "Megan Bowen",
    "Lee Gu",
    "Nestor Wilke",
    "Patti Fernandez",
    "Lynne Robbins",
    "Diego Siciliani",
];

/// What they say (plain ASCII: nothing a VTT or JSON writer must escape).
const WORDS: &[&str] = &[
    "we",
    "should",
    "review",
    "the",
    "budget",
    "before",
    "next",
    "quarter",
    "I",
    "think",
    "that",
    "launch",
    "is",
    "on",
    "track",
    "can",
    "you",
    "share",
    "your",
    "screen",
    "please",
    "our",
    "customers",
    "asked",
    "for",
    "a",
    "faster",
    "release",
    "let's",
    "move",
    "this",
    "to",
    "Friday",
    "agreed",
    "numbers",
    "look",
    "good",
    "team",
    "needs",
    "more",
    "time",
    "on",
    "testing",
    "sales",
    "report",
    "shows",
    "growth",
    "in",
    "Europe",
    "and",
    "Asia",
    "who",
    "owns",
    "action",
    "item",
    "follow",
    "up",
    "after",
    "meeting",
    "thanks",
    "everyone",
    "great",
    "work",
];

/// Graph's `spokenLanguage` for every cue.
const LANGUAGE: &str = "en-us";

/// One cue of a script.
struct Cue {
    /// Teams-style cue identifier, `{guid}/{n}-0`.
    id: String,
    start_ms: u64,
    end_ms: u64,
    /// Index into [`Script::speakers`].
    speaker: usize,
    text: String,
}

/// The script of one transcript: its speakers and its endless cues.
struct Script {
    key: u64,
    /// `(display name, user id)` of each speaker.
    speakers: Vec<(&'static str, String)>,
    /// The prefix of every cue identifier.
    guid: String,
}

impl Script {
    fn new(key: u64) -> Script {
        let mut r = Rng::derive(key, 0, 0);
        let count = 2 + usize::try_from(r.below(3)).unwrap_or(0);
        let mut pool: Vec<&'static str> = SPEAKERS.to_vec();
        let mut speakers = Vec::with_capacity(count);
        for _ in 0..count {
            let i = usize::try_from(r.below(pool.len() as u64)).unwrap_or(0);
            let name = pool.remove(i);
            speakers.push((name, r.guid()));
        }
        Script {
            key,
            speakers,
            guid: r.guid(),
        }
    }

    /// The cues, in order.
    fn cues(&self) -> impl Iterator<Item = Cue> + '_ {
        let mut r = Rng::derive(self.key, 1, 0);
        let mut at_ms = 0u64;
        let mut speaker = 0usize;
        (0u64..).map(move |n| {
            // Mostly turns between speakers, sometimes one goes on.
            if n > 0 && r.below(4) != 0 {
                let step = 1 + usize::try_from(r.below(self.speakers.len() as u64 - 1)).unwrap_or(0);
                speaker = (speaker + step) % self.speakers.len();
            }
            let start_ms = at_ms + 200 + r.below(1500);
            let end_ms = start_ms + 1500 + r.below(9000);
            at_ms = end_ms;
            let words = 3 + r.below(12);
            let mut text = String::new();
            for w in 0..words {
                let word = WORDS[usize::try_from(r.below(WORDS.len() as u64)).unwrap_or(0)];
                if w == 0 {
                    let mut c = word.chars();
                    text.extend(c.next().map(|f| f.to_ascii_uppercase()));
                    text.push_str(c.as_str());
                } else {
                    text.push(' ');
                    text.push_str(word);
                }
            }
            text.push(if r.below(5) == 0 { '?' } else { '.' });
            Cue {
                id: format!("{}/{}-0", self.guid, n + 1),
                start_ms,
                end_ms,
                speaker,
                text,
            }
        })
    }

    fn vtt_cue(&self, cue: &Cue) -> String {
        format!(
            "{}\n{} --> {}\n<v {}>{}</v>\n\n",
            cue.id,
            timestamp(cue.start_ms),
            timestamp(cue.end_ms),
            self.speakers[cue.speaker].0,
            cue.text
        )
    }
}

/// The header every WebVTT body starts with.
const HEADER: &str = "WEBVTT\n\n";

/// `HH:MM:SS.mmm`.
fn timestamp(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// How many cues the transcript with content key `key` needs to reach
/// `requested` bytes (at least one), and the length of that VTT body.
pub(crate) fn measure(key: u64, requested: u64) -> (usize, u64) {
    let script = Script::new(key);
    let mut len = HEADER.len() as u64;
    let mut count = 0;
    for cue in script.cues() {
        len += script.vtt_cue(&cue).len() as u64;
        count += 1;
        if len >= requested {
            break;
        }
    }
    (count, len)
}

/// The WebVTT body: the header and the first `cues` cues.
pub(crate) fn vtt(key: u64, cues: usize) -> Vec<u8> {
    let script = Script::new(key);
    let mut out = String::from(HEADER);
    for cue in script.cues().take(cues) {
        out.push_str(&script.vtt_cue(&cue));
    }
    out.into_bytes()
}

/// The metadata body: a JSON array with one entry per cue of the VTT body
/// (`id`, `startOffset`, `endOffset`, `speakerName`, `speakerId`,
/// `spokenLanguage`, `spokenText`).
pub(crate) fn metadata(key: u64, cues: usize) -> Vec<u8> {
    let script = Script::new(key);
    let entries: Vec<Value> = script
        .cues()
        .take(cues)
        .map(|cue| {
            let (name, id) = &script.speakers[cue.speaker];
            json!({
                "id": cue.id,
                "startOffset": timestamp(cue.start_ms),
                "endOffset": timestamp(cue.end_ms),
                "speakerName": name,
                "speakerId": id,
                "spokenLanguage": LANGUAGE,
                "spokenText": cue.text,
            })
        })
        .collect();
    serde_json::to_vec(&Value::Array(entries)).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_reach_the_requested_size_by_whole_cues() {
        for requested in [0u64, 1, 100, 4096, 100_000] {
            let (cues, len) = measure(7, requested);
            let body = vtt(7, cues);
            assert_eq!(body.len() as u64, len);
            assert!(len >= requested, "{requested}");
            assert!(cues >= 1);
            let text = String::from_utf8(body).expect("utf-8");
            assert!(text.starts_with("WEBVTT\n\n"));
            assert_eq!(text.matches(" --> ").count(), cues);
            assert_eq!(text.matches("<v ").count(), cues);
            // One cue fewer would have been too short.
            if cues > 1 {
                assert!((vtt(7, cues - 1).len() as u64) < requested, "{requested}");
            }
        }
    }

    #[test]
    fn scripts_are_deterministic_and_differ_by_key() {
        assert_eq!(vtt(1, 20), vtt(1, 20));
        assert_ne!(vtt(1, 20), vtt(2, 20));
        assert_eq!(metadata(1, 5), metadata(1, 5));
        let entries: Vec<Value> = serde_json::from_slice(&metadata(1, 5)).expect("json");
        assert_eq!(entries.len(), 5);
        let text = String::from_utf8(vtt(1, 5)).expect("utf-8");
        for e in &entries {
            let speaker = e["speakerName"].as_str().expect("speaker");
            let spoken = e["spokenText"].as_str().expect("text");
            assert!(text.contains(&format!("<v {speaker}>{spoken}</v>")), "{e}");
            assert!(text.contains(e["id"].as_str().expect("id")));
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "00:00:00.000");
        assert_eq!(timestamp(3_723_004), "01:02:03.004");
    }
}
