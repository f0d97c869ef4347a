//! # syncfabric-vault: Enpass 6 vaults, byte-compatible
//!
//! Reads and writes real Enpass 6 vaults: the folder holding `vault.json`,
//! `vault.enpassdb` and `<uuid>.enpassattach` files. It opens vaults made by Enpass,
//! creates vaults Enpass can open, edits items, folders and attachments the way Enpass
//! does (tombstones, timestamps, field history), changes the master password safely,
//! and exports/applies decrypted [`Snapshot`]s for the merge and sync engines (or streams
//! them as key-sorted rows, [`RowSource`], so a merge never holds a whole vault). It
//! never touches the network.
//!
//! ## The format in brief
//! * `vault.json`: plaintext metadata (`kdf_iter`, `have_keyfile`, `vault_uuid`, ...),
//!   pretty JSON with sorted keys; unknown keys are kept ([`VaultMeta`]).
//! * `vault.enpassdb`: a SQLCipher database in SQLCipher 3 layout (1024-byte pages,
//!   AES-256-CBC, HMAC-SHA1 per page, 48 reserved bytes). Its first 16 bytes are the
//!   salt. Key = PBKDF2-HMAC-SHA512(password bytes ‖ keyfile's 32 raw bytes, salt,
//!   `kdf_iter`) truncated to 32 bytes, used as a raw SQLCipher key ([`VaultKey`]).
//! * Inside, `item.key` holds a per-item AES-256-GCM key ‖ nonce (44 bytes); fields of
//!   type `password` and every field history are encrypted with it, AAD = the item
//!   uuid's 16 bytes; `itemfield.hash` = SHA-1 hex of the plaintext.
//! * Attachments over 1 KiB live in `<uuid>.enpassattach`, a SQLCipher file keyed by a
//!   random key kept in `attachment.password` (layout: [`attach`]).
//!
//! Crypto is OpenSSL's (the library SQLCipher links). This crate makes SQLCipher 3
//! settings the process-wide SQLCipher default (`PRAGMA cipher_default_compatibility
//! = 3`), since every SQLCipher file of a vault uses them.
//!
//! ## Example
//! ```no_run
//! use syncfabric_vault::{field_type, NewItem, Secret, Vault};
//!
//! # fn main() -> syncfabric_vault::Result<()> {
//! let mut vault = Vault::open("/path/to/vault", &Secret::new("master password"), None)?;
//! let item = vault.add_item(NewItem::login("Mail", "me", Secret::new("s3cret"), "https://mail.example"))?;
//! for it in vault.live_items()? {
//!     let user = it.field(field_type::USERNAME).map(|f| f.value.expose().to_owned());
//!     println!("{} {:?}", it.title, user);
//! }
//! vault.trash_item(&item.uuid)?;
//! let snapshot = vault.snapshot()?; // decrypted rows for the merge engine
//! vault.apply(&snapshot)?; // writes only what differs, in one transaction
//! # Ok(()) }
//! ```
//!
//! ## Guarantees
//! * Opening writes nothing; a wrong password/keyfile, a missing keyfile, a damaged file
//!   and an unsupported vault are distinct [`Error`]s.
//! * Every write is one transaction; rows are never hard-deleted (`deleted = 1`).
//! * Secrets ([`Secret`], [`VaultKey`], [`Keyfile`], field values, notes) are zeroised on
//!   drop and never appear in `Debug` output or error messages.
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
pub use snapio::{
    all_item_uuids_in_file, attachment_files_in_file, live_item_uuids_in_file, open_snapshot_file,
    read_snapshot_file, verify_database_file, ApplyReport, SnapshotReader,
};
pub use snapshot::{
    EmptyCursor, Row, RowCursor, RowKey, RowSource, Snapshot, Table, TableSchema, Value,
};
pub use vault::{CreateOptions, Vault, VAULT_DB, VAULT_JSON};
