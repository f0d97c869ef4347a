//! # syncfabric-vault: Enpass 6 vaults
//!
//! (Work in progress: the snapshot model is here; the reader/writer lands next.)
#![deny(missing_docs)]

pub mod snapshot;

pub use snapshot::{Row, RowKey, Snapshot, Table, Value};
