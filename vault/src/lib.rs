//! # syncfabric-vault: Enpass 6 vaults
#![deny(missing_docs)]

pub mod attach;
mod crypto;
mod db;
pub mod error;
mod fieldcrypt;
mod fsutil;
pub mod item;
pub mod meta;
pub mod secret;
pub mod snapio;
pub mod snapshot;
mod vault;

pub use attach::{Attachment, AttachmentReader, CHUNK_SIZE, INLINE_MAX};
pub use error::{Error, Result};
pub use item::{field_type, Field, Folder, HistoryEntry, Item, NewItem};
pub use meta::{VaultMeta, DEFAULT_KDF_ITER};
pub use secret::{Keyfile, Password, Secret, VaultKey};
pub use snapio::{read_snapshot_file, verify_database_file, ApplyReport};
pub use snapshot::{Row, RowKey, Snapshot, Table, Value};
pub use vault::{CreateOptions, Vault, VAULT_DB, VAULT_JSON};
