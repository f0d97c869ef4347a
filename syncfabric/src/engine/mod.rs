//! The sync engine: one sync of one vault against one [`Storage`](syncfabric_core::Storage).
//!
//! See `ARCHITECTURE.md` for the protocol. In short: a no-change sync is one `stat`;
//! otherwise the remote database is downloaded to a temp file, verified, merged
//! three-way with the last committed base, applied locally in one transaction, and
//! the result is committed with a conditional write of the database. Conflict copies a
//! desktop client left beside the remote database are found, merged and removed by
//! [`copies`] (the CLI's `sync --merge-copies`).

mod commit;
pub mod copies;
mod counting;
mod device;
mod error;
pub mod layout;
pub mod limits;
pub mod marker;
mod plan;
mod rekey;
mod restore;
pub mod state;
mod sync;
mod transfer;

pub use copies::{
    find_conflict_copies, merge_conflict_copy, remove_conflict_copy, ConflictCopy, CopyBase,
    CopyMerge,
};
pub use counting::{Counters, CountingStorage};
pub use device::LocalSyncLock;
pub use error::SyncError;
pub use layout::{find_enpass_file, remote_layout, Layout, RemoteLayout};
pub use rekey::{rekey_state, RekeyReport};
pub use restore::{restore_from_remote, restore_from_remote_with_progress, restore_journal};
pub use state::{StateDir, SyncState};
pub use sync::{sync_vault, SyncOptions, SyncOutcome, SyncReport};
