//! `recarch cat SHA256`: a blob's bytes to stdout, re-hashed on the way.

use std::io::Write as _;

use futures::StreamExt;
use recarch_store::{Archive, Sha256Digest, StoreError};
use sha2::{Digest as _, Sha256};

use crate::exit::{Exit, ExitError};
use crate::output::StdoutError;
use recarch_failure::error_chain;

/// Writes the blob named `digest` to stdout while hashing it. The bytes are written as they
/// are read (a multi-GB recording streams through a few MiB); when they do not hash to
/// `digest` the command says so after the bytes and exits 1. Exit 2 for a digest that is not
/// 64 hex digits, 1 for a blob that does not exist, 4 when the store fails.
pub async fn cat_cli(archive: &Archive, digest: &str) -> Result<Exit, ExitError> {
    // Upper-case hex names the same blob (as `show` takes it).
    let digest = Sha256Digest::from_hex(&digest.trim().to_ascii_lowercase()).map_err(|_| {
        ExitError::new(
            Exit::Config,
            anyhow::anyhow!("{digest:?} is not a SHA-256: expected 64 hex digits"),
        )
    })?;
    let key = recarch_store::blob_key(&digest);
    let (size, mut stream) = match archive.read_blob(&digest).await {
        Ok(read) => read,
        Err(StoreError::NotFound { .. }) => {
            return Err(ExitError::new(
                Exit::Partial,
                anyhow::anyhow!("no blob {key} in {}", archive.display_url()),
            ));
        }
        Err(e) => {
            return Err(ExitError::new(
                Exit::Fatal,
                anyhow::anyhow!("cannot read {key}: {}", error_chain(&e)),
            ));
        }
    };
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ExitError::new(
                Exit::Fatal,
                anyhow::anyhow!("cannot read {key} after {read} bytes: {}", error_chain(&e)),
            )
        })?;
        hasher.update(&chunk);
        read += chunk.len() as u64;
        if let Err(e) = out.write_all(&chunk) {
            return crate::output::finish(Err(StdoutError(e)), Exit::Ok);
        }
    }
    if let Err(e) = out.flush() {
        return crate::output::finish(Err(StdoutError(e)), Exit::Ok);
    }
    let got = Sha256Digest::from_bytes(hasher.finalize().into());
    if got != digest || read != size {
        return Err(ExitError::new(
            Exit::Partial,
            anyhow::anyhow!(
                "{key} does not hold what its name says: its {read} bytes hash to {got} (stored size {size}); the blob was modified or damaged"
            ),
        ));
    }
    Ok(Exit::Ok)
}
