//! Content bodies: where their bytes come from ([`Source`]), the stream that
//! hands them to hyper ([`ContentStream`]), what it reports ([`Meter`]) and
//! the `Range` requests it serves ([`ByteRange`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, RANGE};
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;

use crate::http::set_header;
use crate::rng::{CHUNK, content_piece};

/// What every content body reports to, and watches: the bytes sent (both
/// origins) and whether the simulator is shutting down.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    bytes_sent: AtomicU64,
    shutting_down: AtomicBool,
}

impl Meter {
    /// Counts `n` bytes handed to the HTTP layer.
    pub(crate) fn count(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    /// The bytes counted since the start or the last [`Meter::reset`].
    pub(crate) fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Zeroes the byte count.
    pub(crate) fn reset(&self) {
        self.bytes_sent.store(0, Ordering::Relaxed);
    }

    /// From now on, streaming bodies abort promptly.
    pub(crate) fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has started.
    pub(crate) fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// Where the bytes of a [`ContentStream`] come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Recording content generated from its content key ([`content_piece`]).
    Generated(u64),
    /// A body made in full beforehand (a transcript or its metadata).
    Buffer(Bytes),
}

impl Source {
    /// The piece that starts at `pos` and ends at the earlier of `end` and the
    /// end of `pos`'s [`CHUNK`]-sized block (`pos < end`, and `end` within the
    /// buffer for [`Source::Buffer`]).
    fn piece(&self, pos: u64, end: u64) -> Bytes {
        match self {
            Source::Generated(key) => content_piece(*key, pos, end),
            Source::Buffer(bytes) => {
                let start = usize::try_from(pos).unwrap_or(usize::MAX).min(bytes.len());
                let block_end = (pos / CHUNK as u64 + 1).saturating_mul(CHUNK as u64).min(end);
                let stop = usize::try_from(block_end).unwrap_or(usize::MAX).min(bytes.len());
                bytes.slice(start..stop.max(start))
            }
        }
    }
}

/// A streamed content body: `[pos, end)` of a [`Source`], in the pieces [`content_piece`]
/// cuts, optionally aborting (with an I/O error, which makes
/// hyper drop the connection) once `abort_at` is reached.
pub(crate) struct ContentStream {
    source: Source,
    pos: u64,
    end: u64,
    abort_at: Option<u64>,
    /// Whether the stream already yielded once at `abort_at` (see `poll_next`).
    yielded_before_abort: bool,
    done: bool,
    meter: Arc<Meter>,
}

impl ContentStream {
    /// A stream of bytes `[start, end)` of `source`.
    pub(crate) fn new(meter: Arc<Meter>, source: Source, start: u64, end: u64, abort_at: Option<u64>) -> ContentStream {
        ContentStream {
            source,
            pos: start,
            end,
            abort_at,
            yielded_before_abort: false,
            done: false,
            meter,
        }
    }
}

impl Stream for ContentStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.meter.shutting_down() {
            this.done = true;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "graph simulator shutting down",
            ))));
        }
        let stop = this.abort_at.map_or(this.end, |a| a.min(this.end));
        if this.pos >= stop {
            if this.abort_at.is_some_and(|a| a < this.end) {
                // hyper buffers the head and the first chunks and drops its
                // buffer when the body fails: yield once so that it flushes
                // them, or a short body would lose its head too.
                if !this.yielded_before_abort {
                    this.yielded_before_abort = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.done = true;
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "injected fault: connection dropped mid-body",
                ))));
            }
            this.done = true;
            return Poll::Ready(None);
        }
        let piece = this.source.piece(this.pos, stop);
        if piece.is_empty() {
            // Only a buffer shorter than announced could get here: end rather than spin.
            this.done = true;
            return Poll::Ready(None);
        }
        this.pos += piece.len() as u64;
        this.meter.count(piece.len() as u64);
        Poll::Ready(Some(Ok(piece)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end.saturating_sub(self.pos);
        // Two pieces per block, and one more for a block cut short at the start.
        let chunks = usize::try_from(left.div_ceil(CHUNK as u64)).unwrap_or(usize::MAX);
        (0, Some(chunks.saturating_mul(2).saturating_add(2)))
    }
}

/// A parsed `Range` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// No (usable) range: send everything.
    Full,
    /// Inclusive `[first, last]`.
    Partial(u64, u64),
    /// Not satisfiable for this size.
    Unsatisfiable,
}

pub(crate) fn parse_range(headers: &HeaderMap, size: u64) -> ByteRange {
    let Some(spec) = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return ByteRange::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return ByteRange::Full;
        };
        if n == 0 || size == 0 {
            return ByteRange::Unsatisfiable;
        }
        return ByteRange::Partial(size.saturating_sub(n), size - 1);
    }
    let Ok(first) = a.parse::<u64>() else {
        return ByteRange::Full;
    };
    let last = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(l) if l >= first => l,
            _ => return ByteRange::Full,
        }
    };
    if first >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Partial(first, last.min(size - 1))
}

/// `resp` with its full `Content-Length` announced but only about half of its body sent before
/// the connection is aborted.
pub(crate) async fn cut_mid_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let half = bytes.slice(..bytes.len() / 2);
    set_header(&mut parts.headers, CONTENT_LENGTH, &bytes.len().to_string());
    let head = futures::stream::once(async move { Ok::<_, io::Error>(half) });
    let abort = futures::stream::once(async {
        // Let the first half reach the client before the connection goes.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "delta page cut off (fault)",
        ))
    });
    Response::from_parts(parts, Body::from_stream(futures::StreamExt::chain(head, abort)))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn range(v: &str, size: u64) -> ByteRange {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_str(v).expect("valid header"));
        parse_range(&h, size)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), ByteRange::Partial(0, 9));
        assert_eq!(range("bytes=90-", 100), ByteRange::Partial(90, 99));
        assert_eq!(range("bytes=90-1000", 100), ByteRange::Partial(90, 99));
        assert_eq!(range("bytes=-10", 100), ByteRange::Partial(90, 99));
        assert_eq!(range("bytes=-1000", 100), ByteRange::Partial(0, 99));
        assert_eq!(range("bytes=100-", 100), ByteRange::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), ByteRange::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), ByteRange::Unsatisfiable);
        assert_eq!(range("bytes=5-1", 100), ByteRange::Full);
        assert_eq!(range("bytes=0-1,5-6", 100), ByteRange::Full);
        assert_eq!(range("items=0-1", 100), ByteRange::Full);
        assert_eq!(range("bytes=x-1", 100), ByteRange::Full);
    }
}
