//! The Concordance DAT load file: UTF-8 with a byte order mark, CRLF line ends, fields
//! qualified by þ (U+00FE) and separated by U+0014, a header row naming the columns.

use std::io::{self, Write};

/// The columns, in the order review platforms map them.
pub const COLUMNS: [&str; 19] = [
    "DOCID",
    "BEGDOC",
    "ENDDOC",
    "PARENTID",
    "ATTACHIDS",
    "CUSTODIAN",
    "KIND",
    "MEETINGID",
    "GRAPHID",
    "DATECREATED",
    "FILENAME",
    "FILEEXT",
    "FILESIZE",
    "MIMETYPE",
    "MD5HASH",
    "SHA256HASH",
    "NATIVEPATH",
    "TEXTPATH",
    "MANIFEST",
];

/// The field delimiter (Concordance's default, shown as ¶ by most tools).
pub const DELIMITER: char = '\u{14}';
/// The text qualifier.
pub const QUALIFIER: char = 'þ';
/// What a line break inside a value becomes (Concordance's newline stand-in).
pub const NEWLINE: char = '®';

/// Writes the byte order mark and the header row.
///
/// # Errors
/// Writing failed.
pub fn write_header(out: &mut impl Write) -> io::Result<()> {
    out.write_all("\u{feff}".as_bytes())?;
    write_row(out, &COLUMNS)
}

/// Writes one row of values, in [`COLUMNS`] order.
///
/// # Errors
/// Writing failed.
pub fn write_row<S: AsRef<str>>(out: &mut impl Write, values: &[S]) -> io::Result<()> {
    let mut line = String::with_capacity(512);
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            line.push(DELIMITER);
        }
        line.push(QUALIFIER);
        push_value(&mut line, value.as_ref());
        line.push(QUALIFIER);
    }
    line.push_str("\r\n");
    out.write_all(line.as_bytes())
}

/// A value as the load file carries it: a qualifier inside it doubled (the convention of
/// qualified formats; only a meeting subject or a name could hold one), a line break as
/// [`NEWLINE`], a delimiter as a space.
fn push_value(line: &mut String, value: &str) {
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            QUALIFIER => line.push_str("þþ"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                line.push(NEWLINE);
            }
            '\n' => line.push(NEWLINE),
            DELIMITER => line.push(' '),
            c => line.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rows_are_qualified_delimited_and_escaped() {
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        write_row(&mut out, &["REC00000001", "Q3 þ review\r\nline 2", "a\u{14}b", ""]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.split("\r\n");
        let header = lines.next().unwrap();
        assert!(header.starts_with("\u{feff}þDOCIDþ\u{14}þBEGDOCþ"), "{header}");
        assert!(header.ends_with("þMANIFESTþ"));
        assert_eq!(header.matches('\u{14}').count(), 18);
        assert_eq!(
            lines.next().unwrap(),
            "þREC00000001þ\u{14}þQ3 þþ review®line 2þ\u{14}þa bþ\u{14}þþ"
        );
        assert_eq!(lines.next(), Some(""));
    }
}
