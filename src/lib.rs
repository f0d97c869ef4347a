//! # syncfabric
//!
//! Keeps an encrypted Enpass 6 vault in sync across a person's devices through storage
//! they already own. This facade holds the sync engine and re-exports the crates an
//! app needs:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use syncfabric::engine::{sync_vault, StateDir, SyncOptions};
//! use syncfabric::vault::{Secret, Vault};
//! let mut vault = Vault::open("/home/me/Enpass/primary", &Secret::new("master password"), None)?;
//! let remote = syncfabric::remote::open("folder:///mnt/nas/Enpass").await?;
//! let state = StateDir::open("/home/me/Enpass/primary/.syncfabric/nas")?;
//! let report = sync_vault(&mut vault, &remote, &state, &SyncOptions::default()).await?;
//! println!("{:?}", report.outcome);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod engine;
pub mod remote;

pub use syncfabric_core as core;
pub use syncfabric_folder as folder;
pub use syncfabric_merge as merge;
pub use syncfabric_vault as vault;
