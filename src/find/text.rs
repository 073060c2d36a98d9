//! A transcript's spoken text for a production's `TEXT/` files: the WebVTT cues' words, one
//! line per turn, `Speaker: words` where a voice tag (`<v Speaker>`) names who spoke.
//! Consecutive cues of one speaker make one line, as a reader of a meeting expects; cue
//! timings, identifiers, `NOTE`, `STYLE` and `REGION` blocks and markup are left out.

use std::io::{self, BufRead, Write};

/// Writes the spoken text of the WebVTT read from `vtt` to `out`, streaming (one turn in
/// memory at a time); returns the number of lines written.
///
/// # Errors
/// Reading or writing failed.
pub fn vtt_to_text(vtt: impl BufRead, out: &mut impl Write) -> io::Result<u64> {
    let mut turn: Option<(Option<String>, String)> = None;
    let mut lines = 0u64;
    let mut block = Block::Header;
    // A payload line without a voice tag continues its cue's speaker.
    let mut cue_speaker: Option<String> = None;
    let mut flush = |turn: &mut Option<(Option<String>, String)>, out: &mut dyn Write| -> io::Result<()> {
        if let Some((speaker, words)) = turn.take() {
            match speaker {
                Some(speaker) => write!(out, "{speaker}: {words}\r\n")?,
                None => write!(out, "{words}\r\n")?,
            }
            lines += 1;
        }
        Ok(())
    };
    for line in vtt.split(b'\n') {
        let line = line?;
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches('\r').trim_start_matches('\u{feff}');
        if line.trim().is_empty() {
            block = Block::Start;
            continue;
        }
        block = match block {
            Block::Header | Block::Skipped => block,
            Block::Start if ["NOTE", "STYLE", "REGION"].iter().any(|w| is_block(line, w)) => Block::Skipped,
            Block::Start | Block::Identifier if line.contains("-->") => {
                cue_speaker = None;
                Block::Payload
            }
            Block::Start => Block::Identifier,
            // A second line without timing: not a cue.
            Block::Identifier => Block::Skipped,
            Block::Payload => {
                let (speaker, words) = cue_text(line);
                let speaker = speaker.or_else(|| cue_speaker.clone());
                cue_speaker.clone_from(&speaker);
                if words.is_empty() {
                    continue;
                }
                match &mut turn {
                    Some((current, text)) if *current == speaker => {
                        text.push(' ');
                        text.push_str(&words);
                    }
                    _ => {
                        flush(&mut turn, out)?;
                        turn = Some((speaker, words));
                    }
                }
                Block::Payload
            }
        };
    }
    flush(&mut turn, out)?;
    Ok(lines)
}

/// Where a WebVTT line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// In the `WEBVTT` header block.
    Header,
    /// A block's first line is next.
    Start,
    /// After a cue identifier: the timing line is next.
    Identifier,
    /// In a cue's payload.
    Payload,
    /// In a block that holds no speech.
    Skipped,
}

/// Whether `line` starts a block named `word` (`NOTE`, `NOTE text`).
fn is_block(line: &str, word: &str) -> bool {
    line.strip_prefix(word)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// A payload line's speaker (its first voice tag's annotation) and its words without markup,
/// whitespace collapsed.
fn cue_text(line: &str) -> (Option<String>, String) {
    let mut speaker = None;
    let mut words = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('<') {
        words.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            // A lone `<` is text.
            words.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let tag = &rest[open + 1..open + close];
        if speaker.is_none() {
            if let Some(voice) = tag.strip_prefix('v').filter(|t| t.starts_with([' ', '\t', '.'])) {
                // `<v.class Name>`: the classes end at the first whitespace.
                let name = voice.split_once([' ', '\t']).map_or("", |(_, n)| n).trim();
                if !name.is_empty() {
                    speaker = Some(unescape(name));
                }
            }
        }
        rest = &rest[open + close + 1..];
    }
    words.push_str(rest);
    let words = unescape(&words);
    let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
    (speaker, words)
}

/// WebVTT's character references.
fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&lrm;", "\u{200e}")
        .replace("&rlm;", "\u{200f}")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn text(vtt: &str) -> String {
        let mut out = Vec::new();
        vtt_to_text(vtt.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn speakers_turns_and_markup() {
        let vtt = "\u{feff}WEBVTT\r\nKind: captions\r\n\r\nNOTE a comment\r\nwith <v Nobody>two lines</v>\r\n\r\n\
                   1a2b/3-0\r\n00:00:00.000 --> 00:00:02.000\r\n<v Adele Vance>We should review</v>\r\n\r\n\
                   00:00:02.000 --> 00:00:04.000\r\n<v Adele Vance>the budget &amp; the <i>plan</i>.</v>\r\n\r\n\
                   00:00:04.000 --> 00:00:05.000 align:start\r\n<v.loud Lee Gu>Agreed, 3 &lt; 4</v>\r\nand more\r\n\r\n\
                   STYLE\r\n::cue { color: red }\r\n\r\n\
                   00:00:05.000 --> 00:00:06.000\r\nno speaker here\r\n";
        assert_eq!(
            text(vtt),
            "Adele Vance: We should review the budget & the plan.\r\nLee Gu: Agreed, 3 < 4 and more\r\nno speaker here\r\n"
        );
    }

    #[test]
    fn nothing_spoken_is_empty() {
        assert_eq!(text("WEBVTT\n\n"), "");
        assert_eq!(text(""), "");
        assert_eq!(text("WEBVTT\n\n00:00.000 --> 00:01.000\n<v A></v>\n"), "");
    }
}
