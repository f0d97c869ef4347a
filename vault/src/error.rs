//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when reading or writing a vault.
///
/// No variant ever carries a secret: messages name files, tables, item uuids and
/// SQLite error texts, never a password, key or decrypted value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The master password or the keyfile is wrong: the database's first page does not
    /// decrypt to a database header with the derived key.
    #[error("wrong master password or keyfile")]
    WrongKey,
    /// `vault.json` says the vault needs a keyfile (`have_keyfile: 1`) and none was given.
    #[error("this vault needs a keyfile, and none was given")]
    MissingKeyfile,
    /// The keyfile could not be read as an Enpass keyfile (XML with a `<key>` element of
    /// 64 hex characters).
    #[error("not a valid Enpass keyfile: {0}")]
    BadKeyfile(String),
    /// A file is damaged: truncated, a page that fails its HMAC, a failed
    /// `PRAGMA integrity_check`, an unparsable `vault.json`, a field that does not
    /// decrypt with its item key.
    #[error("vault data is corrupt: {0}")]
    Corrupt(String),
    /// The vault uses something this crate does not implement (another `kdf_algo`,
    /// `encryption_algo` or `version`).
    #[error("unsupported vault: {0}")]
    Unsupported(String),
    /// The database file's salt differs from the key's salt: the file was re-keyed
    /// (master password or keyfile changed on another device) or belongs to another
    /// vault. The key in hand cannot open it; ask for the password again.
    #[error("the database was re-keyed or belongs to another vault (salt differs from the key's)")]
    KeyChanged,
    /// No item, folder or attachment with this uuid.
    #[error("not found: {0}")]
    NotFound(String),
    /// A caller-supplied value is not acceptable (e.g. a vault already exists at the
    /// target folder, a malformed uuid, an item field list with duplicate uids).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Content is larger than this crate accepts (an attachment over
    /// [`crate::MAX_ATTACHMENT`] or the limit given).
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was too large (e.g. the attachment's name).
        what: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite/SQLCipher reported an error on an otherwise readable database.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether this says a database file is damaged: [`Error::Corrupt`], or SQLite's
    /// "database disk image is malformed" / "file is not a database" on a file that
    /// opened.
    pub fn is_damage(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match self {
            Error::Corrupt(_) => true,
            Error::Database(e) => matches!(
                e.sqlite_error_code(),
                Some(DatabaseCorrupt) | Some(NotADatabase)
            ),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
