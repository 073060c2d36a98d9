//! Deterministic pseudo-random generation: ids, tokens and recording content.
//!
//! Everything is derived from the simulator seed with SplitMix64, a tiny, fast
//! and well-distributed generator. Content is *counter based* (word `i` of a
//! recording is `mix64(key + i * GOLDEN)`), so any byte range can be generated
//! independently, which makes `Range` requests and streaming trivial.

use bytes::Bytes;

/// The SplitMix64 increment (2^64 / golden ratio).
pub(crate) const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Size of the `Bytes` chunks content bodies are streamed in.
pub(crate) const CHUNK: usize = 256 * 1024;

/// Domain separators so that independent id families never collide.
pub(crate) mod domain {
    pub(crate) const ORGANIZER: u64 = 1;
    pub(crate) const RECORDING: u64 = 2;
    pub(crate) const CONTENT: u64 = 3;
    pub(crate) const SYNC_TOKEN: u64 = 4;
    pub(crate) const ACCESS_TOKEN: u64 = 5;
    pub(crate) const REQUEST_ID: u64 = 6;
    pub(crate) const CONTACT: u64 = 7;
    pub(crate) const SIGNATURE: u64 = 8;
    pub(crate) const JTI: u64 = 9;
    pub(crate) const GROUP: u64 = 10;
    pub(crate) const DEVICE: u64 = 11;
    pub(crate) const TRANSCRIPT: u64 = 12;
    pub(crate) const TRANSCRIPT_CONTENT: u64 = 13;
    pub(crate) const CONTACT_FOLDER: u64 = 14;
    pub(crate) const ADHOC_CALL: u64 = 15;
    pub(crate) const ADHOC_RECORDING: u64 = 16;
    pub(crate) const ADHOC_CONTENT: u64 = 17;
    pub(crate) const ADHOC_TRANSCRIPT: u64 = 18;
    pub(crate) const ADHOC_TRANSCRIPT_CONTENT: u64 = 19;
}

/// The SplitMix64 finaliser.
#[inline(always)]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for item `index` of id family `domain`, derived from `seed`.
    pub(crate) fn derive(seed: u64, domain: u64, index: u64) -> Rng {
        Rng(mix64(
            seed ^ mix64(domain.wrapping_mul(GOLDEN) ^ mix64(index.wrapping_add(GOLDEN))),
        ))
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    /// A value in `0..bound` (`bound > 0`; returns 0 for `bound == 0`).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next_u64() % bound }
    }

    /// Fills `buf` with random bytes.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let w = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&w[..rest.len()]);
        }
    }

    /// `n` random bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }

    /// A lowercase RFC 4122 version-4-shaped GUID (`8-4-4-4-12` hex digits).
    pub(crate) fn guid(&mut self) -> String {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex(&b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Length of the shared random pool content blocks are cut from (plus one [`CHUNK`], so that
/// every window of a block fits).
const POOL_SPAN: usize = 1 << 20;

/// The shared pool of random bytes, generated once per process.
fn pool() -> &'static [u8] {
    static POOL: std::sync::OnceLock<Box<[u8]>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        Rng::derive(0, domain::CONTENT, u64::MAX)
            .bytes(POOL_SPAN + CHUNK)
            .into_boxed_slice()
    })
}

/// The piece of content of key `key` that starts at absolute byte `pos` and ends at the
/// earlier of `end` and the end of `pos`'s block (`pos < end`).
///
/// Content is cut in [`CHUNK`]-sized blocks. Block `b` starts with the 8 bytes of
/// `mix64(key + b * GOLDEN)` (so that different keys, and different blocks of one key, never
/// have equal content), followed by a window of the shared random pool whose position is
/// derived from the same word. Serving a block is therefore two `Bytes` of which the large one
/// borrows the static pool: no generation and no copy per byte, so the simulator costs next
/// to nothing next to the client it serves, like a real server sending from its cache.
pub(crate) fn content_piece(key: u64, pos: u64, end: u64) -> Bytes {
    const HEADER: usize = 8;
    let block = pos / CHUNK as u64;
    let at = (pos % CHUNK as u64) as usize; // < CHUNK
    let block_end = (block + 1).saturating_mul(CHUNK as u64).min(end);
    let len = usize::try_from(block_end - pos).unwrap_or(CHUNK); // <= CHUNK - at
    let word = content_word(key, block);
    if at < HEADER {
        let header = word.to_le_bytes();
        return Bytes::copy_from_slice(&header[at..(at + len).min(HEADER)]);
    }
    let window = (mix64(word ^ GOLDEN) % (POOL_SPAN / 8) as u64) as usize * 8;
    Bytes::from_static(&pool()[window + at..window + at + len])
}

/// Fills `buf` with the content bytes of the recording with content key `key`,
/// starting at absolute byte `offset` (see [`content_piece`] for the layout).
pub(crate) fn fill_content(key: u64, offset: u64, buf: &mut [u8]) {
    let end = offset + buf.len() as u64;
    let mut pos = offset;
    let mut rest: &mut [u8] = buf;
    while pos < end {
        let piece = content_piece(key, pos, end);
        let (head, tail) = rest.split_at_mut(piece.len());
        head.copy_from_slice(&piece);
        rest = tail;
        pos += piece.len() as u64;
    }
}

/// Word `index` of the content stream with key `key`.
#[inline(always)]
fn content_word(key: u64, index: u64) -> u64 {
    mix64(key.wrapping_add(index.wrapping_mul(GOLDEN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_offset_independent() {
        let key = 0xDEAD_BEEF;
        let size = 2 * CHUNK + 1000;
        let mut whole = vec![0u8; size];
        fill_content(key, 0, &mut whole);
        let starts = [
            0,
            1,
            7,
            8,
            9,
            13,
            500,
            999,
            CHUNK - 9,
            CHUNK - 1,
            CHUNK,
            CHUNK + 3,
            CHUNK + 8,
            2 * CHUNK + 999,
        ];
        for start in starts {
            for len in [0usize, 1, 3, 8, 17, CHUNK + 20] {
                let end = (start + len).min(size);
                let mut part = vec![0u8; end - start];
                fill_content(key, start as u64, &mut part);
                assert_eq!(part, whole[start..end], "start {start} len {len}");
            }
        }
    }

    #[test]
    fn pieces_tile_the_content_and_differ_by_key_and_block() {
        let (key, size) = (42, 3 * CHUNK as u64 + 5);
        let mut pos = 0;
        let mut tiled = Vec::new();
        while pos < size {
            let piece = content_piece(key, pos, size);
            assert!(!piece.is_empty() && piece.len() <= CHUNK, "piece at {pos}");
            tiled.extend_from_slice(&piece);
            pos += piece.len() as u64;
        }
        let mut whole = vec![0u8; size as usize];
        fill_content(key, 0, &mut whole);
        assert_eq!(tiled, whole);
        // Every block differs from the others, and from the same block of another key.
        let blocks: Vec<&[u8]> = whole.chunks(CHUNK).collect();
        for (i, a) in blocks.iter().enumerate() {
            for b in &blocks[i + 1..] {
                let n = a.len().min(b.len()).min(8);
                assert_ne!(&a[..n], &b[..n]);
            }
        }
        let mut other = vec![0u8; CHUNK];
        fill_content(key + 1, 0, &mut other);
        assert_ne!(&other[..], blocks[0]);
        // The bytes after the header are not all one value (they come from the random pool).
        assert!(blocks[0][8..].iter().any(|&b| b != blocks[0][8]));
    }

    #[test]
    fn guid_shape() {
        let g = Rng::derive(1, 2, 3).guid();
        assert_eq!(g.len(), 36);
        assert_eq!(g.as_bytes()[14], b'4');
    }
}
