//! verify's sorted lists of blobs and of manifests' references to them, on the crate's
//! external sort ([`crate::sort`]), which the other checks reach through here too.

use std::io::{self, BufRead, Write};

use recarch_store::Sha256Digest;

pub(super) use crate::sort::{Entry, Limits, Sorted, Spill};
use crate::sort::{at_end, read_str, read_u64, write_str};

/// A blob as listed. Sorted by digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct BlobEntry {
    pub(super) digest: Sha256Digest,
    pub(super) size: u64,
}

/// A manifest's reference to a blob. Sorted by digest, then manifest key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RefEntry {
    pub(super) digest: Sha256Digest,
    pub(super) key: String,
    pub(super) size: u64,
}

fn read_digest_and_size(input: &mut impl BufRead) -> io::Result<Option<(Sha256Digest, u64)>> {
    if at_end(input)? {
        return Ok(None);
    }
    let mut digest = [0u8; 32];
    input.read_exact(&mut digest)?;
    Ok(Some((Sha256Digest::from_bytes(digest), read_u64(input)?)))
}

impl Entry for BlobEntry {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.digest.as_bytes())?;
        out.write_all(&self.size.to_le_bytes())
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        Ok(read_digest_and_size(input)?.map(|(digest, size)| BlobEntry { digest, size }))
    }
}

impl Entry for RefEntry {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.digest.as_bytes())?;
        out.write_all(&self.size.to_le_bytes())?;
        write_str(out, &self.key)
    }

    fn read_from(input: &mut impl BufRead) -> io::Result<Option<Self>> {
        let Some((digest, size)) = read_digest_and_size(input)? else {
            return Ok(None);
        };
        let key = read_str(input)?;
        Ok(Some(RefEntry { digest, key, size }))
    }
}
