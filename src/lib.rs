//! The `recarch` job: configuration, the archive pass, verification, status and the demo.
//!
//! The binary (`src/main.rs`) is a thin command-line edge over this library; benchmarks and
//! integration tests drive the same code in-process. The reusable parts live in the
//! workspace crates: `recarch-delta` (Graph delta queries), `recarch-fetch` (downloads),
//! `recarch-store` (the archive on object storage) and `recarch-graph-sim` (the simulator).

pub mod catalog;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dispose;
pub mod enrich;
pub mod environment;
pub mod exit;
pub mod find;
pub mod holds;
pub mod kinds;
pub mod ledger;
pub mod metrics;
pub mod organizers;
pub mod output;
pub mod pipeline;
pub mod progress;
pub mod queue;
pub mod report;
pub mod retry;
pub mod round;
pub mod run;
mod sort;
pub mod status;
pub mod verify;
