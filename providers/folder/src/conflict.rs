//! Conflict copies left by desktop sync clients: the recognition lives in
//! [`syncfabric_core::conflict`] (the copies turn up on any storage a desktop client
//! also syncs, not only in a local folder) and is re-exported here.
//! [`FolderStorage::conflict_copies`](crate::FolderStorage::conflict_copies) lists a
//! file's folder and filters it with [`conflict_copies`].

pub use syncfabric_core::conflict::{conflict_copies, conflict_style, ConflictCopy, ConflictStyle};
