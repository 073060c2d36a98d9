//! Whole response bodies read with a cap: token answers, delta pages and error bodies are read
//! into memory, so none may be larger than its caller allows.

use futures::StreamExt;
use reqwest::Response;

/// Why [`read_capped`] returned no body.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the cap (by `Content-Length` or by the bytes received).
    TooLarge {
        /// The cap, in bytes.
        cap: usize,
    },
    /// The connection failed while the body was read (closed mid-body, timed out): transient.
    Cut(reqwest::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { cap } => write!(f, "body larger than {cap} bytes"),
            BodyError::Cut(e) => write!(f, "body cut off ({e})"),
        }
    }
}

/// Reads a whole response body, refusing bodies larger than `cap` bytes (checked against
/// `Content-Length` up front and against the bytes actually received).
pub async fn read_capped(response: Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|len| len > cap as u64) {
        return Err(BodyError::TooLarge { cap });
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Cut(e.without_url()))?;
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
