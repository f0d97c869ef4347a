//! # syncfabric-core: the storage contract
//!
//! Every place a vault can be synced through — a folder, a WebDAV server, a cloud
//! drive, a peer on the Wi-Fi — is a [`Storage`]: a dumb drive rooted at one folder
//! of one account. The sync engine only ever talks to `dyn Storage`; it never knows
//! which service is behind it. Nothing in this crate knows about vaults.
//!
//! The contract is small and exact:
//!
//! * paths are [`RemotePath`]s, normalised once here (no `..`, no empty segments);
//! * every file has a strong [`Version`] that changes on every write;
//! * writes and deletes take a [`Precondition`]; a provider that cannot honour one
//!   returns [`Error::Unsupported`] instead of silently ignoring it, because a dropped
//!   condition is a lost update;
//! * failures are one [`Error`] enum whose variants the engine acts on
//!   ([`Error::is_retryable`]).
//!
//! Around the trait, the machinery every provider and the engine share:
//!
//! | module | what it gives |
//! | --- | --- |
//! | [`retry`] | backoff with jitter, `Retry-After` in both forms, one [`retry::Pacer`] per account, [`retry::RetryingStorage`] |
//! | [`probe`] | the honesty probe: test precondition claims on this connection, [`probe::ProbedStorage`] downgrades them |
//! | [`lock`] | the lease lock for storages without truthful compare-and-swap |
//! | [`server_lock`] | holding a server-enforced folder lock ([`Storage::lock_dir`], WebDAV `LOCK`) for one commit |
//! | [`watch`] | change feeds: [`Storage::watch`], or polling with [`watch::watch_or_poll`] |
//! | [`registry`] | open a storage from a URL (`folder:///…`, `webdav+https://…`) by scheme |
//! | [`auth`] | [`auth::TokenStore`] and the redacting [`auth::SecretToken`] |
//! | [`memory`] | [`memory::MemoryStorage`], the reference storage that keeps every promise, for tests and for comparing a provider with |
//! | [`progress`] | byte counts of uploads and downloads for a progress bar: [`progress::ProgressHook`], [`progress::Meter`] |
//!
//! A new provider implements [`Storage`] and runs the `syncfabric-conformance` suite.
//!
//! ```
//! use syncfabric_core::{RemotePath, Precondition};
//! let p = RemotePath::parse("vaults/primary/vault.enpassdb").unwrap();
//! assert_eq!(p.file_name(), Some("vault.enpassdb"));
//! assert!(RemotePath::parse("../escape").is_err());
//! let _ = Precondition::IfAbsent;
//! ```
#![deny(missing_docs)]

pub mod auth;
mod body;
pub mod conflict;
mod error;
pub mod lock;
pub mod lock_owner;
pub mod memory;
mod path;
pub mod probe;
pub mod progress;
pub mod registry;
pub mod retry;
pub mod server_lock;
mod storage;
#[cfg(test)]
mod test_store;
pub mod watch;

pub use body::{Body, ByteStream, Download, StreamSource};
pub use error::{Error, Result};
/// The `Stream` trait of [`ByteStream`] and [`ChangeStream`] (from `futures-core`), so
/// providers can name it without another dependency.
pub use futures_core::Stream;
pub use lock_owner::{LockHolder, LockOwner};
pub use path::RemotePath;
pub use storage::{
    Capabilities, ChangeFeed, DirLock, Entry, EntryKind, Precondition, Storage, Version,
};
pub use watch::{Change, ChangeStream};
