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
//! ## Around the vault
//! * [`generate`]: passwords and EFF-list passphrases from OpenSSL's CSPRNG, unbiased,
//!   with their entropy.
//! * [`totp`]: RFC 6238 codes from an item's base32 secret or `otpauth://` URI.
//! * [`share`]: one item encrypted under a pre-shared key (the blob format is
//!   documented there).
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
//! ## What opening checks, and why that is enough
//! [`Vault::open`] / [`Vault::open_with_key`] read page 1 and the schema pages (which
//! proves the key: SQLCipher checks each of those pages' HMAC, and a wrong key is
//! [`Error::WrongKey`], a right key on a damaged page 1 [`Error::Corrupt`]), and compare
//! the page count in the header with the file's length (truncation, even at a page
//! boundary, is [`Error::Corrupt`]); a hot rollback journal is replayed first. They do
//! not read every page: a full pass costs as much as listing every item again (1 KiB
//! pages, one HMAC-SHA1 and one AES-CBC per page).
//!
//! That is enough for a local file because SQLCipher authenticates every page when it
//! is read: the HMAC-SHA1 (key derived from the vault key) covers the page's ciphertext,
//! its IV and its page number, so a page changed, swapped or moved while the vault was
//! closed fails its check on the first read that needs it. SQLCipher then wipes the
//! page and puts the connection in an error state; the read (and every later one on that
//! connection) returns [`Error::Corrupt`], never the page's content, and nothing can be
//! written. A damaged page that no read touches (e.g. an index page a listing does not
//! use) cannot change any value returned. `tests/tamper_local.rs` flips a byte in every
//! page of a vault and checks exactly this. (Bytes 1012..1024 of a page are the reserve's
//! random padding: neither read nor authenticated, so flipping them changes nothing.)
//! What no per-page check can see is an older copy of a page (or of the whole file)
//! put back with the same key: that is equally invisible to a full HMAC pass.
//!
//! Files from elsewhere are checked in full: [`verify_database_file`],
//! [`read_snapshot_file`] and [`open_snapshot_file`] run `PRAGMA cipher_integrity_check`
//! (every page's HMAC) and `PRAGMA integrity_check` (the b-trees) before anything is
//! read, and [`Vault::copy_database_to`] (the file the sync engine uploads) checks every
//! page's HMAC, so a damaged local page never reaches another device. [`Vault::verify`]
//! runs both checks on the open vault on demand.
//!
//! ## Guarantees
//! * Opening writes nothing; a wrong password/keyfile, a missing keyfile, a damaged file
//!   and an unsupported vault are distinct [`Error`]s.
//! * Every write is one transaction; rows are never hard-deleted (`deleted = 1`).
//! * Secrets ([`Secret`], [`VaultKey`], [`Keyfile`], field values, notes) are zeroised on
//!   drop and never appear in `Debug` output or error messages.
#![deny(missing_docs)]

pub mod attach;
pub mod container;
mod crypto;
mod db;
pub mod error;
mod fieldcrypt;
mod fsutil;
pub mod generate;
pub mod item;
pub mod meta;
pub mod secret;
pub mod share;
pub mod snapio;
pub mod snapshot;
pub mod totp;
mod vault;

pub use attach::{Attachment, AttachmentReader, CHUNK_SIZE, INLINE_MAX, MAX_ATTACHMENT};
pub use error::{Error, Result};
pub use fsutil::create_private_dir_all;
pub use item::{field_type, Field, Folder, HistoryEntry, Item, ItemSummary, NewItem};
pub use meta::{check_kdf_iter, VaultMeta, DEFAULT_KDF_ITER, MAX_KDF_ITER, MIN_KDF_ITER};
pub use secret::{Keyfile, Password, Secret, VaultKey};
pub use snapio::{
    all_item_uuids_in_file, attachment_files_in_file, item_stamps_in_file, live_item_uuids_in_file,
    open_snapshot_file, read_snapshot_file, rekey_database_file, verify_database_file, ApplyReport,
    ItemStamp, ItemStamps, SnapshotReader,
};
pub use snapshot::{
    EmptyCursor, Row, RowCursor, RowKey, RowSource, Snapshot, Table, TableSchema, Value,
};
pub use vault::{CreateOptions, Vault, VAULT_DB, VAULT_JSON};
