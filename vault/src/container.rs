//! Enpass's own sync file, `vault.enpassdbsync`: the whole vault in one file, as the
//! Enpass apps put it on a sync target (`<url>/Enpass/vault.enpassdbsync` on WebDAV,
//! `/Apps/Enpass/` on Dropbox).
//!
//! ## Layout
//! ```text
//! offset  size   content
//!      0  1024   vault.json's JSON, ended by a NUL and padded with NULs to 1024 bytes
//!   1024  rest   a whole SQLCipher database, byte for byte a vault.enpassdb
//!                (its 16-byte salt at offset 1024)
//! ```
//! This is the layout a working third-party reader reads; no public sample exists,
//! and nothing public says whether attachment files travel beside it (see
//! ARCHITECTURE.md, "Two layouts").
//!
//! ## Reading defensively
//! A container from a sync target is input from anyone. [`read_header`] takes exactly
//! the first 1024 bytes: the JSON must end by a NUL inside them (a JSON of 1024 bytes or
//! more is refused, not read on), every byte after that NUL must be a NUL, and the JSON
//! must be an object ([`VaultMeta::parse`]). [`unpack`] streams the rest into a
//! database file, which must hold at least one page; whether it opens with the vault
//! key and passes the page checks is [`crate::verify_database_file`]'s to say
//! ([`unpack_verified`] does both). Nothing here holds the whole file in memory.
//!
//! ## Writing exactly in that shape
//! [`header`] renders a [`VaultMeta`] as Enpass writes vault.json (sorted keys, four
//! spaces), then the NUL padding; [`pack`] writes header and database to a new file,
//! fsynced and renamed into place.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::error::{Error, Result};
use crate::meta::VaultMeta;
use crate::secret::VaultKey;

/// The container's file name, as the Enpass apps name it.
pub const FILE_NAME: &str = "vault.enpassdbsync";

/// Bytes before the database: vault.json's JSON and its NUL padding.
pub const HEADER_LEN: usize = 1024;

/// The smallest database part accepted: one SQLCipher page as Enpass writes them
/// (1024 bytes; its first 16 bytes are the salt).
pub const MIN_DB_LEN: u64 = 1024;

/// The 1024-byte header for `meta`: its JSON (as [`VaultMeta::to_json_string`] writes
/// vault.json), then NULs. Errors: [`Error::InvalidInput`] when the JSON takes 1024
/// bytes or more (no room for its NUL).
pub fn header(meta: &VaultMeta) -> Result<[u8; HEADER_LEN]> {
    let json = meta.to_json_string();
    if json.len() >= HEADER_LEN {
        return Err(Error::InvalidInput(format!(
            "vault.json is {} bytes: an Enpass sync file holds at most {} before its NUL",
            json.len(),
            HEADER_LEN - 1
        )));
    }
    let mut out = [0u8; HEADER_LEN];
    out[..json.len()].copy_from_slice(json.as_bytes());
    Ok(out)
}

/// Reads the vault.json a container's first 1024 bytes hold (see the module docs for
/// what is checked). Errors: [`Error::Corrupt`], naming what is wrong.
pub fn read_header(bytes: &[u8; HEADER_LEN]) -> Result<VaultMeta> {
    let end = bytes.iter().position(|&b| b == 0).ok_or_else(|| {
        Error::Corrupt(format!(
            "not an Enpass sync file: no NUL ends the vault.json in its first {HEADER_LEN} bytes"
        ))
    })?;
    if let Some(at) = bytes[end..].iter().position(|&b| b != 0) {
        return Err(Error::Corrupt(format!(
            "not an Enpass sync file: byte {} of its header is not NUL padding",
            end + at
        )));
    }
    if end == 0 {
        return Err(Error::Corrupt(
            "not an Enpass sync file: its header holds no vault.json".into(),
        ));
    }
    VaultMeta::parse(&bytes[..end])
}

/// Splits the container read from `src` into its vault.json and the database, which is
/// streamed to `db_out` (created or truncated). Errors: [`Error::Corrupt`] (a short or
/// malformed header, a database part shorter than [`MIN_DB_LEN`]), [`Error::Io`].
/// On an error `db_out` may hold part of the database: write it to a temporary place.
pub fn unpack(src: &mut dyn Read, db_out: &Path) -> Result<VaultMeta> {
    let mut head = [0u8; HEADER_LEN];
    read_exact_or_corrupt(src, &mut head)?;
    let meta = read_header(&head)?;
    let mut out = File::create(db_out).map_err(|e| Error::io(db_out, e))?;
    let n = io::copy(src, &mut out).map_err(|e| Error::io(db_out, e))?;
    if n < MIN_DB_LEN {
        return Err(Error::Corrupt(format!(
            "the Enpass sync file holds {n} bytes after its header: no whole database"
        )));
    }
    out.sync_all().map_err(|e| Error::io(db_out, e))?;
    Ok(meta)
}

/// [`unpack`], then the database checked with `key` as
/// [`crate::verify_database_file`] checks it (salt, key, every page's HMAC, SQLite's
/// integrity check): only a container that passes is handed back.
pub fn unpack_verified(src: &mut dyn Read, db_out: &Path, key: &VaultKey) -> Result<VaultMeta> {
    let meta = unpack(src, db_out)?;
    crate::snapio::verify_database_file(db_out, key)?;
    Ok(meta)
}

/// Writes `meta`'s header and the database file `db` as a container to `out`: to a
/// temporary file beside it, fsynced, then renamed over it. Errors:
/// [`Error::InvalidInput`] (see [`header`]), [`Error::Io`].
pub fn pack(meta: &VaultMeta, db: &Path, out: &Path) -> Result<()> {
    let head = header(meta)?;
    let mut src = File::open(db).map_err(|e| Error::io(db, e))?;
    crate::fsutil::write_atomic_with(out, |w| {
        w.write_all(&head)?;
        io::copy(&mut src, w)?;
        Ok(())
    })
}

fn read_exact_or_corrupt(src: &mut dyn Read, buf: &mut [u8]) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(Error::Corrupt(format!(
                "not an Enpass sync file: {got} bytes, shorter than its {HEADER_LEN}-byte header"
            )))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("(the Enpass sync file)", e)),
        }
    }
    Ok(())
}
