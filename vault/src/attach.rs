//! Attachments: small ones inline in `attachment.data`, larger ones in their own
//! SQLCipher file `<uuid>.enpassattach` beside `vault.enpassdb`.
//!
//! ## Layout of an `.enpassattach` file (ours; Enpass publishes none)
//! A SQLCipher 3 database (page 1024, HMAC-SHA1, like the vault) keyed with the raw
//! 32-byte key kept in that attachment's `attachment.password` column
//! (`PRAGMA key = "x'<64 hex>'"`), with a random salt in its first 16 bytes:
//! ```sql
//! CREATE TABLE info(key TEXT PRIMARY KEY, value);
//!   -- 'format' = 'syncfabric-enpassattach-1', 'uuid', 'size' (bytes),
//!   -- 'sha1' (hex of the content), 'chunk_size' (1048576), 'chunks' (count)
//! CREATE TABLE chunk(idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
//!   -- the content in order: idx 0, 1, ...; every chunk 1 MiB except the last
//! ```
//! Content is streamed in and out one chunk at a time, so a 500 MB attachment never
//! sits in memory. Attachments are immutable by uuid: a changed file is a new
//! attachment.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};
use zeroize::Zeroizing;

use crate::crypto;
use crate::db;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::secret::VaultKey;
use crate::vault::{int_at, now, text_at, Vault};

/// Attachments up to this many bytes are stored inline in `attachment.data`.
pub const INLINE_MAX: usize = 1024;
/// The largest attachment [`Vault::add_attachment`] takes: 1 GiB. Enpass keeps every
/// attachment in the vault folder and every device downloads it; a bigger file belongs
/// elsewhere. [`Vault::add_attachment_limited`] takes another limit.
pub const MAX_ATTACHMENT: u64 = 1 << 30;
/// Chunk size inside an `.enpassattach` file.
pub const CHUNK_SIZE: usize = 1024 * 1024;
const FORMAT: &str = "syncfabric-enpassattach-1";

/// One attachment's metadata (`attachment` row, without its key or data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// `uuid` (also the file name `<uuid>.enpassattach` when not inline).
    pub uuid: String,
    /// `item_uuid`: the item it belongs to.
    pub item_uuid: String,
    /// `name`: the file name shown.
    pub name: String,
    /// `mime`.
    pub mime: String,
    /// `size` in bytes.
    pub size: u64,
    /// Stored inline in the vault database (size <= [`INLINE_MAX`]).
    pub inline: bool,
    /// `deleted` (tombstone).
    pub deleted: bool,
    /// `created_at` (unix seconds).
    pub created_at: i64,
    /// `updated_at` (unix seconds).
    pub updated_at: i64,
}

/// Streams an attachment's content ([`Vault::open_attachment`]). At the end of the
/// stream the content's size and SHA-1 are checked against the file's record; a
/// mismatch is an `io::ErrorKind::InvalidData` error.
pub struct AttachmentReader {
    inner: Inner,
}

enum Inner {
    Inline {
        data: Zeroizing<Vec<u8>>,
        pos: usize,
    },
    File(Box<FileReader>),
}

struct FileReader {
    conn: Connection,
    next_idx: i64,
    chunks: i64,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    sha1: openssl::sha::Sha1,
    total: u64,
    want_size: u64,
    want_sha1: String,
    done: bool,
}

impl std::fmt::Debug for AttachmentReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttachmentReader(<redacted>)")
    }
}

impl Read for AttachmentReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Inline { data, pos } => {
                let n = (data.len() - *pos).min(out.len());
                out[..n].copy_from_slice(&data[*pos..*pos + n]);
                *pos += n;
                Ok(n)
            }
            Inner::File(fr) => fr.read(out),
        }
    }
}

impl FileReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.buf.len() {
            if self.done {
                return Ok(0);
            }
            if self.next_idx >= self.chunks {
                self.done = true;
                let got = hex::encode(std::mem::take(&mut self.sha1).finish());
                if self.total != self.want_size || got != self.want_sha1 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "attachment content does not match its recorded size/SHA-1",
                    ));
                }
                return Ok(0);
            }
            let data: Option<Vec<u8>> = self
                .conn
                .query_row(
                    "SELECT data FROM chunk WHERE idx=?1",
                    [self.next_idx],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("attachment chunk {}: {e}", self.next_idx),
                    )
                })?;
            let data = data.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("attachment chunk {} is missing", self.next_idx),
                )
            })?;
            self.sha1.update(&data);
            self.total += data.len() as u64;
            self.buf = Zeroizing::new(data);
            self.pos = 0;
            self.next_idx += 1;
        }
        let n = (self.buf.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Vault {
    /// Path of the `.enpassattach` file of attachment `uuid` (whether or not it exists).
    pub fn attachment_path(&self, uuid: &str) -> PathBuf {
        self.dir.join(format!("{uuid}.enpassattach"))
    }

    /// Attachments (deleted ones included), of one item or of all items.
    pub fn attachments(&self, item_uuid: Option<&str>) -> Result<Vec<Attachment>> {
        let sql = "SELECT uuid,item_uuid,name,mime,size,deleted,created_at,updated_at,password IS NULL OR length(password)=0 FROM attachment";
        let mut st = match item_uuid {
            Some(_) => self
                .conn
                .prepare(&format!("{sql} WHERE item_uuid=?1 ORDER BY rowid"))?,
            None => self.conn.prepare(&format!("{sql} ORDER BY rowid"))?,
        };
        let map = |r: &rusqlite::Row<'_>| {
            Ok(Attachment {
                uuid: text_at(r, 0)?,
                item_uuid: text_at(r, 1)?,
                name: text_at(r, 2)?,
                mime: text_at(r, 3)?,
                size: int_at(r, 4, 0)?.max(0) as u64,
                deleted: int_at(r, 5, 0)? != 0,
                created_at: int_at(r, 6, 0)?,
                updated_at: int_at(r, 7, 0)?,
                inline: int_at(r, 8, 1)? != 0,
            })
        };
        let rows = match item_uuid {
            Some(u) => st
                .query_map([u], map)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
            None => st
                .query_map([], map)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        };
        Ok(rows)
    }

    /// Adds an attachment to a live item, streaming its content from `content`: up to
    /// [`INLINE_MAX`] bytes are stored inline; more go to a new `<uuid>.enpassattach`
    /// file (written to a temp file, fsynced, renamed) keyed by a fresh random 32-byte
    /// key, then the `attachment` row is inserted. Memory use is one chunk (1 MiB).
    ///
    /// Errors: [`Error::NotFound`] (item), [`Error::Io`] (reading `content` or writing),
    /// [`Error::TooLarge`] (more than [`MAX_ATTACHMENT`] bytes: nothing is kept).
    pub fn add_attachment(
        &mut self,
        item_uuid: &str,
        name: &str,
        mime: &str,
        content: &mut dyn Read,
    ) -> Result<Attachment> {
        self.add_attachment_limited(item_uuid, name, mime, content, MAX_ATTACHMENT)
    }

    /// [`Vault::add_attachment`] with another size limit (bytes): content longer than
    /// `limit` is [`Error::TooLarge`], found while streaming (the content's length need
    /// not be known beforehand), and nothing is kept. An empty name is
    /// [`Error::InvalidInput`].
    pub fn add_attachment_limited(
        &mut self,
        item_uuid: &str,
        name: &str,
        mime: &str,
        content: &mut dyn Read,
        limit: u64,
    ) -> Result<Attachment> {
        self.require_live("item", item_uuid)?;
        if name.is_empty() {
            return Err(Error::InvalidInput("an attachment needs a name".into()));
        }
        let too_large = || Error::TooLarge {
            what: format!("attachment {name:?}"),
            limit,
        };
        // One byte past the limit is enough to know it is too large.
        let mut content = content.take(limit.saturating_add(1));
        let content: &mut dyn Read = &mut content;
        let uuid = crypto::new_uuid()?;
        let now = now();
        let mut first = Zeroizing::new(vec![0u8; INLINE_MAX + 1]);
        let n = read_full(content, &mut first).map_err(|e| Error::io(name, e))?;
        first.truncate(n);
        if n as u64 > limit {
            return Err(too_large());
        }
        type Stored = (
            u64,
            Option<Zeroizing<[u8; 32]>>,
            Option<Zeroizing<Vec<u8>>>,
            Option<PathBuf>,
        );
        let (size, password, data, file): Stored = if n <= INLINE_MAX {
            (n as u64, None, Some(first), None)
        } else {
            let mut key = Zeroizing::new([0u8; 32]);
            crypto::random_bytes(&mut key[..])?;
            let path = self.attachment_path(&uuid);
            let size = write_attach_file(&path, &uuid, &key, &first, content, limit).map_err(
                |e| match e {
                    Error::TooLarge { .. } => too_large(),
                    e => e,
                },
            )?;
            (size, Some(key), None, Some(path))
        };
        let res = self.conn.execute(
            "INSERT INTO attachment(uuid,item_uuid,name,size,orde,mime,updated_at,created_at,deleted,internal,password,data,extra) \
             VALUES(?1,?2,?3,?4,0,?5,?6,?6,0,0,?7,?8,'')",
            params![uuid, item_uuid, name, size as i64, mime, now, password.as_ref().map(|k| &k[..]), data.as_ref().map(|d| &d[..])],
        );
        if let Err(e) = res {
            if let Some(f) = file {
                let _ = std::fs::remove_file(f);
            }
            return Err(e.into());
        }
        self.touch_meta()?;
        Ok(Attachment {
            uuid,
            item_uuid: item_uuid.to_owned(),
            name: name.to_owned(),
            mime: mime.to_owned(),
            size,
            inline: password.is_none(),
            deleted: false,
            created_at: now,
            updated_at: now,
        })
    }

    /// Opens an attachment's content for streaming. Errors: [`Error::NotFound`] (no
    /// such attachment, or its file is missing), [`Error::WrongKey`]/[`Error::Corrupt`]
    /// for a file that does not open with its key.
    pub fn open_attachment(&self, uuid: &str) -> Result<AttachmentReader> {
        type KeyAndData = (Option<Vec<u8>>, Option<Vec<u8>>);
        let row: Option<KeyAndData> = self
            .conn
            .query_row(
                "SELECT password, data FROM attachment WHERE uuid=?1",
                [uuid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (password, data) = row.ok_or_else(|| Error::NotFound(format!("attachment {uuid}")))?;
        let password = password.map(Zeroizing::new);
        match password {
            Some(pw) if !pw.is_empty() => {
                if pw.len() != 32 {
                    return Err(Error::Corrupt(format!(
                        "attachment {uuid}: key is {} bytes, not 32",
                        pw.len()
                    )));
                }
                let path = self.attachment_path(uuid);
                if !path.exists() {
                    return Err(Error::NotFound(format!(
                        "attachment file {}",
                        path.display()
                    )));
                }
                let mut k = [0u8; 32];
                k.copy_from_slice(&pw);
                let key = VaultKey::from_raw(k, db::file_salt(&path)?);
                k.iter_mut().for_each(|b| *b = 0);
                let conn = db::open_keyed(&path, &key, true)?;
                let info = |k: &str| -> Result<String> {
                    conn.query_row("SELECT value FROM info WHERE key=?1", [k], |r| {
                        text_at(r, 0)
                    })
                    .optional()
                    .map_err(|e| db::corrupt_or_db(&path, e))?
                    .ok_or_else(|| Error::Corrupt(format!("{}: no '{k}' record", path.display())))
                };
                if info("format")? != FORMAT {
                    return Err(Error::Unsupported(format!(
                        "{}: unknown attachment layout",
                        path.display()
                    )));
                }
                let want_size = info("size")?
                    .parse()
                    .map_err(|_| Error::Corrupt("attachment size".into()))?;
                let chunks = info("chunks")?
                    .parse()
                    .map_err(|_| Error::Corrupt("attachment chunk count".into()))?;
                let want_sha1 = info("sha1")?;
                Ok(AttachmentReader {
                    inner: Inner::File(Box::new(FileReader {
                        conn,
                        next_idx: 0,
                        chunks,
                        buf: Zeroizing::new(Vec::new()),
                        pos: 0,
                        sha1: openssl::sha::Sha1::new(),
                        total: 0,
                        want_size,
                        want_sha1,
                        done: false,
                    })),
                })
            }
            _ => Ok(AttachmentReader {
                inner: Inner::Inline {
                    data: Zeroizing::new(data.unwrap_or_default()),
                    pos: 0,
                },
            }),
        }
    }

    /// Copies an attachment's content into `out`; returns the byte count. A damaged
    /// attachment file or content that does not match its record is [`Error::Corrupt`]
    /// (`out` may then hold part of it: write to a temporary place).
    pub fn read_attachment_to(&self, uuid: &str, out: &mut dyn Write) -> Result<u64> {
        let mut r = self.open_attachment(uuid)?;
        io::copy(&mut r, out).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                // A chunk that fails its page check, or content that does not match
                // its recorded size/SHA-1: damage, not an I/O failure.
                Error::Corrupt(format!("attachment {uuid}: {e}"))
            } else {
                Error::io(self.attachment_path(uuid), e)
            }
        })
    }

    /// Marks an attachment deleted (tombstone). Its file stays until
    /// [`Vault::prune_attachment_files`] (another device may still sync the row).
    pub fn remove_attachment(&mut self, uuid: &str) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE attachment SET deleted=1, updated_at=?2 WHERE uuid=?1 AND ifnull(deleted,0)=0",
            params![uuid, now()],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("attachment {uuid}")));
        }
        self.touch_meta()
    }

    /// Deletes `.enpassattach` files of the vault folder that no live attachment row
    /// refers to; returns the files deleted.
    pub fn prune_attachment_files(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let rd = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for e in rd {
            let e = e.map_err(|e| Error::io(&self.dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(uuid) = name.strip_suffix(".enpassattach") else {
                continue;
            };
            let live: i64 = self.conn.query_row(
                "SELECT count(*) FROM attachment WHERE uuid=?1 AND ifnull(deleted,0)=0",
                [uuid],
                |r| r.get(0),
            )?;
            if live == 0 {
                std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
                removed.push(e.path());
            }
        }
        Ok(removed)
    }
}

/// Writes a new `.enpassattach` at `path` (via a temp file): `first` then the rest of
/// `rest`, in 1 MiB chunks. Returns the content size.
fn write_attach_file(
    path: &std::path::Path,
    uuid: &str,
    key: &[u8; 32],
    first: &[u8],
    rest: &mut dyn Read,
    limit: u64,
) -> Result<u64> {
    let tmp = fsutil::temp_sibling(path, "new")?;
    let res = (|| -> Result<u64> {
        let mut salt = [0u8; 16];
        crypto::random_bytes(&mut salt)?;
        let vk = VaultKey::from_raw(*key, salt);
        fsutil::create_private(&tmp)?; // 0600 before SQLCipher opens it
        let conn = db::create_keyed(&tmp, &vk)?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -4096;\
             CREATE TABLE info(key TEXT PRIMARY KEY, value);\
             CREATE TABLE chunk(idx INTEGER PRIMARY KEY, data BLOB NOT NULL);",
        )?;
        let tx = conn.unchecked_transaction()?;
        let mut sha1 = openssl::sha::Sha1::new();
        let mut buf = Zeroizing::new(vec![0u8; CHUNK_SIZE]);
        buf[..first.len()].copy_from_slice(first);
        let mut fill = first.len();
        let mut idx: i64 = 0;
        let mut total: u64 = 0;
        {
            let mut ins = tx.prepare("INSERT INTO chunk(idx, data) VALUES(?1, ?2)")?;
            loop {
                let n = read_full(rest, &mut buf[fill..]).map_err(|e| Error::io(path, e))?;
                fill += n;
                if fill == 0 {
                    break;
                }
                if total + fill as u64 > limit {
                    return Err(Error::TooLarge {
                        what: format!("attachment {uuid}"),
                        limit,
                    });
                }
                sha1.update(&buf[..fill]);
                ins.execute(params![idx, &buf[..fill]])?;
                total += fill as u64;
                idx += 1;
                let full = fill == CHUNK_SIZE;
                fill = 0;
                if !full {
                    break;
                }
            }
        }
        let sha = hex::encode(sha1.finish());
        for (k, v) in [
            ("format", FORMAT.to_owned()),
            ("uuid", uuid.to_owned()),
            ("size", total.to_string()),
            ("sha1", sha),
            ("chunk_size", CHUNK_SIZE.to_string()),
            ("chunks", idx.to_string()),
        ] {
            tx.execute("INSERT INTO info(key, value) VALUES(?1, ?2)", params![k, v])?;
        }
        tx.commit()?;
        drop(conn);
        fsutil::sync_file(&tmp)?;
        Ok(total)
    })();
    match res {
        Ok(total) => {
            fsutil::rename_durable(&tmp, path)?;
            Ok(total)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
