//! # syncfabric
//!
//! Keeps an encrypted Enpass 6 vault in sync across a person's devices through storage
//! they already own. This facade holds the sync engine and re-exports the crates an
//! app needs:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use syncfabric::engine::{sync_vault, StateDir, SyncOptions};
//! use syncfabric::remote::{Credentials, Recorded, Remote};
//! use syncfabric::vault::{Secret, Vault};
//! let mut vault = Vault::open("/home/me/Enpass/primary", &Secret::new("master password"), None)?;
//! let login = Credentials::Password(Secret::new("app password"));
//! let url = "webdav+https://me@cloud.example.com/remote.php/dav/files/me/Enpass";
//! let remote = Remote::open(url, &login, Recorded::default()).await?;
//! let state = StateDir::open("/home/me/Enpass/primary/.syncfabric/cloud")?;
//! let report = sync_vault(&mut vault, &remote, &state, &SyncOptions::default()).await?;
//! println!("{:?}; {}", report.outcome, remote.verdict().explain());
//! # Ok(()) }
//! ```
//!
//! [`Remote::open`](remote::Remote::open) runs the honesty probe on the server and
//! decides from what it measured how commits are protected (compare-and-swap, the
//! server's own lock, or a lease; a commit marker where versions repeat; staged uploads
//! where a cut write damaged a file). The engine takes only such a [`remote::Remote`]:
//! no storage reaches it with claims nobody tested. Keep [`remote::Remote::verdict`]
//! (as the strings of [`remote::Recorded`]) to skip the probe next time, as the CLI
//! does in its config. `tests/sync_webdav.rs` runs these lines against real servers.
#![deny(missing_docs)]

pub mod engine;
pub mod remote;

pub use syncfabric_core as core;
pub use syncfabric_folder as folder;
pub use syncfabric_merge as merge;
pub use syncfabric_vault as vault;
