//! # syncfabric
//!
//! Keeps an encrypted Enpass 6 vault in sync across a person's devices through storage
//! they already own. This facade re-exports the crates an app needs.
#![deny(missing_docs)]

pub use syncfabric_core as core;
pub use syncfabric_folder as folder;
pub use syncfabric_merge as merge;
pub use syncfabric_vault as vault;
