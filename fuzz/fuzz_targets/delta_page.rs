//! Fuzzes the delta page parser with arbitrary bytes: it must never panic, and whatever it
//! accepts must have exactly one continuation link.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recarch_delta::{CallRecording, Contact, Continuation, parse_page};

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = parse_page::<CallRecording>(data) {
        match page.continuation {
            Continuation::Next(_) | Continuation::Delta(_) => {}
            Continuation::End => panic!("a delta page without a link was accepted"),
        }
    }
    let _ = parse_page::<Contact>(data);
});
