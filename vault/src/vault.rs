//! The [`Vault`]: open/create a vault folder, items, folders, password changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row as SqlRow, Transaction};
use serde_json::Value as Json;
use zeroize::Zeroizing;

use crate::crypto;
use crate::db;
use crate::error::{Error, Result};
use crate::fieldcrypt::{self, ItemKey};
use crate::fsutil;
use crate::item::{field_type, Field, Folder, HistoryEntry, Item, ItemSummary, NewItem};
use crate::meta::{VaultMeta, DEFAULT_KDF_ITER};
use crate::secret::{Keyfile, Secret, VaultKey};

/// File name of the metadata file in a vault folder.
pub const VAULT_JSON: &str = "vault.json";
/// File name of the database in a vault folder.
pub const VAULT_DB: &str = "vault.enpassdb";
/// Metadata written before a re-key renames the database; see [`Vault::change_password`].
pub(crate) const PENDING_JSON: &str = "vault.json.rekey";

/// Options for [`Vault::create`].
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// `vault_name` (default `"Primary"`).
    pub name: String,
    /// PBKDF2 iterations (default 320,000, what Enpass uses). Lower only in tests.
    pub kdf_iter: u32,
    /// A keyfile to require besides the password (`have_keyfile: 1`).
    pub keyfile: Option<Keyfile>,
    /// `vault_uuid` (default: a new random uuid).
    pub vault_uuid: Option<String>,
    /// The device name written to `creating_device` / `last_modified_device`
    /// (default: the host name).
    pub device_name: Option<String>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            name: "Primary".into(),
            kdf_iter: DEFAULT_KDF_ITER,
            keyfile: None,
            vault_uuid: None,
            device_name: None,
        }
    }
}

/// An open vault: a folder with `vault.json`, `vault.enpassdb` and attachment files.
///
/// Every write is one SQLite transaction, committed before the method returns, followed
/// by a rewrite of `vault.json` (`last_modified_time`, `last_modified_device`,
/// `vault_items_count`, `vault_att_count`). `Debug` prints the folder and uuid only.
pub struct Vault {
    pub(crate) dir: PathBuf,
    pub(crate) meta: VaultMeta,
    pub(crate) key: VaultKey,
    pub(crate) conn: Connection,
    pub(crate) device: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("vault_uuid", &self.meta.vault_uuid())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn default_device_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "syncfabric".into())
}

/// Any SQLite value as text (NULL → empty).
pub(crate) fn text_at(row: &SqlRow<'_>, i: usize) -> rusqlite::Result<String> {
    Ok(match row.get_ref(i)? {
        ValueRef::Null => String::new(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => match std::str::from_utf8(t) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(t).into_owned(),
        },
    })
}

/// Any SQLite value as an integer (NULL/other → `default`).
pub(crate) fn int_at(row: &SqlRow<'_>, i: usize, default: i64) -> rusqlite::Result<i64> {
    Ok(match row.get_ref(i)? {
        ValueRef::Integer(n) => n,
        ValueRef::Real(r) => r as i64,
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(default),
        _ => default,
    })
}

const ITEM_SELECT: &str = "SELECT uuid,title,subtitle,note,icon,category,template,favorite,trashed,archived,deleted,created_at,updated_at,meta_updated_at,field_updated_at,key FROM item";
const FIELD_SELECT: &str = "SELECT item_uuid,item_field_uid,label,value,deleted,sensitive,type,updated_at,value_updated_at,orde,history,hash FROM itemfield";

impl Vault {
    // ----------------------------------------------------------------- opening

    /// Opens the vault in folder `dir` with the master password (and the keyfile, when
    /// `vault.json` has `have_keyfile: 1`; a keyfile given for a vault without one is
    /// ignored, as Enpass does).
    ///
    /// Derives the key once (PBKDF2, `kdf_iter` rounds), unlocks the database, and
    /// checks it: page 1 and the schema pages are read (their HMACs prove the key), and
    /// the page count in the header is compared with the file size (truncation). Other
    /// pages are authenticated by SQLCipher when a read first needs them: a damaged one
    /// is then [`Error::Corrupt`] from that read (see "What opening checks" in the crate
    /// docs). A full pass over every page is [`Vault::verify`]; files from another
    /// device go through [`crate::verify_database_file`]. Nothing is written.
    ///
    /// Errors: [`Error::WrongKey`], [`Error::MissingKeyfile`], [`Error::Corrupt`],
    /// [`Error::Unsupported`], [`Error::Io`].
    pub fn open(
        dir: impl AsRef<Path>,
        password: &Secret,
        keyfile: Option<&Keyfile>,
    ) -> Result<Vault> {
        let dir = dir.as_ref();
        let meta = VaultMeta::read(&dir.join(VAULT_JSON))?;
        match Self::open_meta(dir, meta, password, keyfile) {
            Err(Error::WrongKey) if dir.join(PENDING_JSON).exists() => {
                // A password change was interrupted between renaming the new database
                // into place and renaming its vault.json: finish it.
                let pending = VaultMeta::read(&dir.join(PENDING_JSON))?;
                let v = Self::open_meta(dir, pending, password, keyfile)?;
                fsutil::rename_durable(&dir.join(PENDING_JSON), &dir.join(VAULT_JSON))?;
                Ok(v)
            }
            other => other,
        }
    }

    fn open_meta(
        dir: &Path,
        meta: VaultMeta,
        password: &Secret,
        keyfile: Option<&Keyfile>,
    ) -> Result<Vault> {
        meta.check_supported()?;
        let kf = if meta.have_keyfile() {
            Some(keyfile.ok_or(Error::MissingKeyfile)?)
        } else {
            None
        };
        let salt = db::file_salt(&dir.join(VAULT_DB))?;
        let key = VaultKey::derive(password, kf, salt, meta.kdf_iter()?)?;
        Self::open_with(dir, meta, key)
    }

    /// Opens the vault in `dir` with an already derived key (no key derivation).
    /// The database's salt must equal the key's, else [`Error::KeyChanged`].
    pub fn open_with_key(dir: impl AsRef<Path>, key: VaultKey) -> Result<Vault> {
        let dir = dir.as_ref();
        let meta = VaultMeta::read(&dir.join(VAULT_JSON))?;
        meta.check_supported()?;
        if db::file_salt(&dir.join(VAULT_DB))? != key.salt() {
            return Err(Error::KeyChanged);
        }
        Self::open_with(dir, meta, key)
    }

    fn open_with(dir: &Path, meta: VaultMeta, key: VaultKey) -> Result<Vault> {
        let path = dir.join(VAULT_DB);
        // What `open_keyed` proves is all a local open needs; see the crate docs
        // ("What opening checks") for why no full pass over the pages is run here.
        let conn = db::open_keyed(&path, &key, false)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Vault {
            dir: dir.to_owned(),
            meta,
            key,
            conn,
            device: default_device_name(),
        })
    }

    /// Creates a new vault in folder `dir` (created if missing; it must not already hold
    /// a `vault.json` or `vault.enpassdb`): a fresh random salt, the key derived with
    /// `opts.kdf_iter` rounds, the schema of a real Enpass 6 vault, and `vault.json` as
    /// Enpass writes it with a new `vault_uuid`.
    ///
    /// Errors: [`Error::InvalidInput`] if a vault exists there, [`Error::Io`].
    pub fn create(dir: impl AsRef<Path>, password: &Secret, opts: &CreateOptions) -> Result<Vault> {
        let dir = dir.as_ref();
        fsutil::create_private_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let db_path = dir.join(VAULT_DB);
        let json_path = dir.join(VAULT_JSON);
        if db_path.exists() || json_path.exists() {
            return Err(Error::InvalidInput(format!(
                "a vault already exists in {}",
                dir.display()
            )));
        }
        let device = opts.device_name.clone().unwrap_or_else(default_device_name);
        let uuid = match &opts.vault_uuid {
            Some(u) => u.clone(),
            None => crypto::new_uuid()?,
        };
        let mut salt = [0u8; 16];
        crypto::random_bytes(&mut salt)?;
        let key = VaultKey::derive(password, opts.keyfile.as_ref(), salt, opts.kdf_iter)?;
        let tmp = fsutil::temp_sibling(&db_path, "new")?;
        let res = (|| {
            // Made 0600 first: SQLCipher would create it with the umask's mode (and
            // gives its journal the database's mode).
            fsutil::create_private(&tmp)?;
            let conn = db::create_keyed(&tmp, &key)?;
            init_schema(&conn)?;
            drop(conn);
            fsutil::sync_file(&tmp)?;
            let conn = db::open_keyed(&tmp, &key, true)?;
            db::verify(&conn, &tmp, true)
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let now = now();
        let meta = VaultMeta::new_vault(
            &uuid,
            &opts.name,
            &device,
            opts.kdf_iter,
            opts.keyfile.is_some(),
            now,
        );
        if let Err(e) = meta.write_atomic(&json_path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        fsutil::rename_durable(&tmp, &db_path)?;
        let mut v = Self::open_with(dir, meta, key)?;
        v.device = device;
        Ok(v)
    }

    // ----------------------------------------------------------------- accessors

    /// The vault folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of `vault.enpassdb`.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(VAULT_DB)
    }

    /// The parsed `vault.json` (as last written).
    pub fn meta(&self) -> &VaultMeta {
        &self.meta
    }

    /// The vault key (for the sync engine: [`crate::read_snapshot_file`],
    /// [`crate::verify_database_file`], [`Vault::open_with_key`]).
    pub fn key(&self) -> &VaultKey {
        &self.key
    }

    /// The device name written to `last_modified_device` on every write.
    pub fn set_device_name(&mut self, name: impl Into<String>) {
        self.device = name.into();
    }

    /// The underlying connection (read-only use; writes through it bypass the
    /// bookkeeping of this type).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Re-runs the full verification of the open database (`cipher_integrity_check`
    /// and `integrity_check`).
    pub fn verify(&self) -> Result<()> {
        db::verify(&self.conn, &self.db_path(), true)
    }

    /// Rewrites `vault.json` after a write: last modified time/device and counts.
    pub(crate) fn touch_meta(&mut self) -> Result<()> {
        let items: i64 = self.conn.query_row(
            "SELECT count(*) FROM item WHERE ifnull(deleted,0)=0",
            [],
            |r| r.get(0),
        )?;
        let atts: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM attachment WHERE ifnull(deleted,0)=0",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        self.meta.set("last_modified_time", now());
        self.meta.set("last_modified_device", self.device.clone());
        self.meta.set("vault_items_count", items);
        self.meta.set("vault_att_count", atts);
        self.meta.write_atomic(&self.dir.join(VAULT_JSON))
    }

    // ----------------------------------------------------------------- items: read

    /// Every item, deleted and trashed ones included (check [`Item::deleted`] /
    /// [`Item::trashed`]), fields decrypted, in `item` table order.
    ///
    /// Errors: [`Error::Corrupt`] when a value does not decrypt with its item key.
    pub fn items(&self) -> Result<Vec<Item>> {
        read_items(&self.conn, None)
    }

    /// Every item's listing columns (uuid, title, subtitle, category, flags, time), in
    /// one query and without decrypting any field: what a list shows. Deleted and
    /// trashed items included.
    pub fn item_summaries(&self) -> Result<Vec<ItemSummary>> {
        let mut st = self.conn.prepare(
            "SELECT uuid, title, subtitle, category, trashed, deleted, updated_at FROM item ORDER BY rowid",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ItemSummary {
                uuid: text_at(r, 0)?,
                title: text_at(r, 1)?,
                subtitle: text_at(r, 2)?,
                category: text_at(r, 3)?,
                trashed: int_at(r, 4, 0)? != 0,
                deleted: int_at(r, 5, 0)? != 0,
                updated_at: int_at(r, 6, 0)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Items neither deleted nor trashed.
    pub fn live_items(&self) -> Result<Vec<Item>> {
        Ok(self.items()?.into_iter().filter(Item::is_live).collect())
    }

    /// The item with this uuid (deleted ones too), or `None`.
    pub fn get_item(&self, uuid: &str) -> Result<Option<Item>> {
        Ok(read_items(&self.conn, Some(uuid))?.into_iter().next())
    }

    // ----------------------------------------------------------------- items: write

    /// Adds an item with a new uuid and a fresh item key; password fields are encrypted,
    /// `hash`/`initial`/`strength` filled in, all timestamps set to now.
    ///
    /// Errors: [`Error::InvalidInput`] for duplicate field uids.
    pub fn add_item(&mut self, new: NewItem) -> Result<Item> {
        let uuid = self.add_items(vec![new])?.pop().unwrap_or_default();
        self.get_item(&uuid)?.ok_or(Error::NotFound(uuid))
    }

    /// Adds many items in ONE transaction (an import); returns their new uuids in order.
    /// Each item is made as by [`Vault::add_item`]; if any is invalid, none is added.
    pub fn add_items(&mut self, items: Vec<NewItem>) -> Result<Vec<String>> {
        let now = now();
        let tx = self.conn.transaction()?;
        let mut uuids = Vec::with_capacity(items.len());
        for new in items {
            uuids.push(insert_new_item(&tx, new, now)?);
        }
        tx.commit()?;
        self.touch_meta()?;
        Ok(uuids)
    }

    /// Writes the changes in `item` (compared with the stored item of the same uuid):
    /// title, subtitle, note, icon, category, template, favorite, archived, trashed, and
    /// fields by uid (new uids are added; a field left out of `item.fields` is kept as
    /// stored; remove one by setting its `deleted`). A changed value pushes the old value
    /// (if not empty) onto the field's history and sets `value_updated_at`; every change
    /// bumps the timestamps it concerns and `item.updated_at`. The item gets a fresh
    /// key+nonce and all its encrypted values and history are re-encrypted, in the same
    /// transaction. An unchanged item is not written.
    ///
    /// Errors: [`Error::NotFound`]; [`Error::InvalidInput`] if the item is deleted.
    pub fn update_item(&mut self, item: &Item) -> Result<Item> {
        let old = self
            .get_item(&item.uuid)?
            .ok_or_else(|| Error::NotFound(item.uuid.clone()))?;
        if old.deleted {
            return Err(Error::InvalidInput(format!(
                "item {} is deleted",
                item.uuid
            )));
        }
        let now = now();
        let meta_changed = old.title != item.title
            || old.subtitle != item.subtitle
            || old.note != item.note
            || old.icon != item.icon
            || old.category != item.category
            || old.template != item.template
            || old.favorite != item.favorite
            || old.archived != item.archived
            || old.trashed != item.trashed;
        let mut changed_fields = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for f in &item.fields {
            if !seen.insert(f.uid) {
                return Err(Error::InvalidInput(format!(
                    "duplicate field uid {}",
                    f.uid
                )));
            }
            match old.field_by_uid(f.uid) {
                None => {
                    let mut n = f.clone();
                    n.updated_at = now;
                    n.value_updated_at = now;
                    changed_fields.push(n);
                }
                Some(o) => {
                    let value_changed = o.value != f.value;
                    let other_changed = o.label != f.label
                        || o.kind != f.kind
                        || o.sensitive != f.sensitive
                        || o.deleted != f.deleted
                        || o.order != f.order
                        || o.history != f.history;
                    if !value_changed && !other_changed {
                        continue;
                    }
                    let mut n = f.clone();
                    n.updated_at = now;
                    n.value_updated_at = o.value_updated_at;
                    if value_changed {
                        n.value_updated_at = now;
                        if !o.value.is_empty() {
                            n.history.push(HistoryEntry {
                                updated_at: o.value_updated_at,
                                value: o.value.clone(),
                            });
                        }
                    }
                    changed_fields.push(n);
                }
            }
        }
        if !meta_changed && changed_fields.is_empty() {
            return Ok(old);
        }
        let tx = self.conn.transaction()?;
        let old_key = load_item_key(&tx, &item.uuid)?;
        let key = rekey_item(&tx, &item.uuid, old_key.as_ref())?;
        for f in &changed_fields {
            write_field(&tx, &item.uuid, &key, f)?;
        }
        let meta_at = if meta_changed {
            now
        } else {
            old.meta_updated_at
        };
        let field_at = if changed_fields.is_empty() {
            old.field_updated_at
        } else {
            now
        };
        tx.execute(
            "UPDATE item SET title=?2,subtitle=?3,note=?4,icon=?5,category=?6,template=?7,favorite=?8,archived=?9,trashed=?10,meta_updated_at=?11,field_updated_at=?12,updated_at=?13 WHERE uuid=?1",
            params![
                item.uuid, item.title, item.subtitle, item.note.expose(), item.icon, item.category, item.template,
                item.favorite as i64, item.archived as i64, item.trashed as i64, meta_at, field_at, now
            ],
        )?;
        tx.commit()?;
        self.touch_meta()?;
        self.get_item(&item.uuid)?
            .ok_or_else(|| Error::NotFound(item.uuid.clone()))
    }

    /// Moves a live item to the trash (`trashed=1`). Errors: [`Error::NotFound`] (also
    /// for a deleted item).
    pub fn trash_item(&mut self, uuid: &str) -> Result<()> {
        self.set_trashed(uuid, true)
    }

    /// Takes an item out of the trash (`trashed=0`). Errors: [`Error::NotFound`].
    pub fn untrash_item(&mut self, uuid: &str) -> Result<()> {
        self.set_trashed(uuid, false)
    }

    fn set_trashed(&mut self, uuid: &str, trashed: bool) -> Result<()> {
        let now = now();
        let n = self.conn.execute(
            "UPDATE item SET trashed=?2, meta_updated_at=?3, updated_at=?3 WHERE uuid=?1 AND ifnull(deleted,0)=0",
            params![uuid, trashed as i64, now],
        )?;
        if n == 0 {
            return Err(Error::NotFound(uuid.to_owned()));
        }
        self.touch_meta()
    }

    /// Deletes an item: a tombstone (`deleted=1`, timestamps bumped; the row and its
    /// fields stay so that the delete syncs). Its folder memberships and attachments are
    /// marked deleted too. Deleting a deleted item is a no-op. Errors: [`Error::NotFound`].
    pub fn delete_item(&mut self, uuid: &str) -> Result<()> {
        let now = now();
        let tx = self.conn.transaction()?;
        let deleted: Option<i64> = tx
            .query_row(
                "SELECT ifnull(deleted,0) FROM item WHERE uuid=?1",
                [uuid],
                |r| r.get(0),
            )
            .optional()?;
        match deleted {
            None => return Err(Error::NotFound(uuid.to_owned())),
            Some(1) => return Ok(()),
            Some(_) => {}
        }
        tx.execute(
            "UPDATE item SET deleted=1, meta_updated_at=?2, updated_at=?2 WHERE uuid=?1",
            params![uuid, now],
        )?;
        tx.execute(
            "UPDATE folder_items SET deleted=1, updated_at=?2 WHERE item_uuid=?1 AND ifnull(deleted,0)=0",
            params![uuid, now],
        )?;
        tx.execute(
            "UPDATE attachment SET deleted=1, updated_at=?2 WHERE item_uuid=?1 AND ifnull(deleted,0)=0",
            params![uuid, now],
        )?;
        tx.commit()?;
        self.touch_meta()
    }

    // ----------------------------------------------------------------- folders

    /// Every folder (deleted ones included, flagged).
    pub fn folders(&self) -> Result<Vec<Folder>> {
        let mut st = self.conn.prepare(
            "SELECT uuid,title,icon,parent_uuid,deleted,updated_at FROM folder ORDER BY rowid",
        )?;
        let rows = st.query_map([], |r| {
            Ok(Folder {
                uuid: text_at(r, 0)?,
                title: text_at(r, 1)?,
                icon: text_at(r, 2)?,
                parent_uuid: text_at(r, 3)?,
                deleted: int_at(r, 4, 0)? != 0,
                updated_at: int_at(r, 5, 0)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Creates a folder (optionally inside `parent_uuid`, which must exist).
    pub fn create_folder(&mut self, title: &str, parent_uuid: Option<&str>) -> Result<Folder> {
        if let Some(p) = parent_uuid {
            self.require_live("folder", p)?;
        }
        let uuid = crypto::new_uuid()?;
        let now = now();
        self.conn.execute(
            "INSERT INTO folder(uuid,title,icon,updated_at,deleted,parent_uuid,extra) VALUES(?1,?2,'',?3,0,?4,'')",
            params![uuid, title, now, parent_uuid.unwrap_or("")],
        )?;
        self.touch_meta()?;
        Ok(Folder {
            uuid,
            title: title.to_owned(),
            icon: String::new(),
            parent_uuid: parent_uuid.unwrap_or("").to_owned(),
            deleted: false,
            updated_at: now,
        })
    }

    /// Puts an item in a folder (reviving an earlier, deleted membership).
    /// Errors: [`Error::NotFound`] if either is missing or deleted.
    pub fn add_to_folder(&mut self, folder_uuid: &str, item_uuid: &str) -> Result<()> {
        self.require_live("folder", folder_uuid)?;
        self.require_live("item", item_uuid)?;
        let now = now();
        let n = self.conn.execute(
            "UPDATE folder_items SET deleted=0, updated_at=?3 WHERE folder_uuid=?1 AND item_uuid=?2",
            params![folder_uuid, item_uuid, now],
        )?;
        if n == 0 {
            self.conn.execute(
                "INSERT INTO folder_items(folder_uuid,item_uuid,updated_at,deleted,extra) VALUES(?1,?2,?3,0,'')",
                params![folder_uuid, item_uuid, now],
            )?;
        }
        self.touch_meta()
    }

    /// Takes an item out of a folder (membership tombstone). Errors: [`Error::NotFound`]
    /// if it is not in the folder.
    pub fn remove_from_folder(&mut self, folder_uuid: &str, item_uuid: &str) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE folder_items SET deleted=1, updated_at=?3 WHERE folder_uuid=?1 AND item_uuid=?2 AND ifnull(deleted,0)=0",
            params![folder_uuid, item_uuid, now()],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!(
                "{item_uuid} in folder {folder_uuid}"
            )));
        }
        self.touch_meta()
    }

    /// The uuids of the items in a folder (live memberships only).
    pub fn folder_items(&self, folder_uuid: &str) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(
            "SELECT item_uuid FROM folder_items WHERE folder_uuid=?1 AND ifnull(deleted,0)=0 ORDER BY rowid",
        )?;
        let rows = st.query_map([folder_uuid], |r| text_at(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The uuids of the folders an item is in (live memberships only).
    pub fn item_folders(&self, item_uuid: &str) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(
            "SELECT folder_uuid FROM folder_items WHERE item_uuid=?1 AND ifnull(deleted,0)=0 ORDER BY rowid",
        )?;
        let rows = st.query_map([item_uuid], |r| text_at(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(crate) fn require_live(&self, table: &str, uuid: &str) -> Result<()> {
        let sql = format!("SELECT count(*) FROM {table} WHERE uuid=?1 AND ifnull(deleted,0)=0");
        let n: i64 = self.conn.query_row(&sql, [uuid], |r| r.get(0))?;
        if n == 0 {
            return Err(Error::NotFound(format!("{table} {uuid}")));
        }
        Ok(())
    }

    // ----------------------------------------------------------------- keys

    /// Changes the master password and/or keyfile (`new_keyfile: None` removes the
    /// keyfile requirement) and re-derives the key with a fresh salt and `kdf_iter`
    /// rounds (`None`: 320,000).
    ///
    /// Safe against interruption: the whole database is exported with the new key to a
    /// temp file beside the vault (`sqlcipher_export`), verified, and fsynced; the new
    /// `vault.json` is written as `vault.json.rekey`; then the new database is renamed
    /// over `vault.enpassdb` and `vault.json.rekey` over `vault.json`. At every instant
    /// either the old password opens the vault, or the new one does ([`Vault::open`]
    /// finishes an interrupted change when it finds `vault.json.rekey`).
    pub fn change_password(
        &mut self,
        new_password: &Secret,
        new_keyfile: Option<&Keyfile>,
        kdf_iter: Option<u32>,
    ) -> Result<()> {
        let iter = kdf_iter.unwrap_or(DEFAULT_KDF_ITER);
        let mut salt = [0u8; 16];
        crypto::random_bytes(&mut salt)?;
        let new_key = VaultKey::derive(new_password, new_keyfile, salt, iter)?;
        let db_path = self.db_path();
        let tmp = fsutil::temp_sibling(&db_path, "rekey")?;
        let res = (|| -> Result<()> {
            export_with_key(&self.conn, &tmp, &new_key)?;
            fsutil::sync_file(&tmp)?;
            let c = db::open_keyed(&tmp, &new_key, true)?;
            db::verify(&c, &tmp, true)?;
            Ok(())
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let mut meta = self.meta.clone();
        let now = now();
        meta.set("kdf_iter", iter);
        meta.set("have_keyfile", new_keyfile.is_some() as i64);
        meta.set("last_password_changed_time", now);
        meta.set("last_password_changing_device", self.device.clone());
        meta.set("last_modified_time", now);
        meta.set("last_modified_device", self.device.clone());
        let pending = self.dir.join(PENDING_JSON);
        if let Err(e) = meta.write_atomic(&pending) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // Close our handle on the old file before replacing it.
        let placeholder = Connection::open_in_memory()?;
        let old_conn = std::mem::replace(&mut self.conn, placeholder);
        drop(old_conn);
        if let Err(e) = fsutil::rename_durable(&tmp, &db_path) {
            let _ = std::fs::remove_file(&pending);
            self.conn = db::open_keyed(&db_path, &self.key, false)?;
            return Err(e);
        }
        self.conn = db::open_keyed(&db_path, &new_key, false)?;
        self.conn.busy_timeout(std::time::Duration::from_secs(10))?;
        self.key = new_key;
        fsutil::rename_durable(&pending, &self.dir.join(VAULT_JSON))?;
        self.meta = meta;
        Ok(())
    }

    /// A consistent copy of the current database file at `dest` (written to a temp file
    /// beside `dest`, fsynced, renamed). The copy is taken under a write lock, with no
    /// transaction pending, so it holds exactly the last committed state; it opens with
    /// the same key.
    ///
    /// The copy is what the sync engine uploads, so every page of it is checked
    /// (`PRAGMA cipher_integrity_check`) before it is renamed into place: a local file
    /// damaged in a page no read has touched yet (see the crate docs on what `open`
    /// checks) is [`Error::Corrupt`] here and never reaches another device.
    pub fn copy_database_to(&mut self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = dest.as_ref();
        let src = self.db_path();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let tmp = fsutil::temp_sibling(dest, "copy")?;
        let res = std::fs::copy(&src, &tmp).and_then(|_| std::fs::File::open(&tmp)?.sync_all());
        drop(tx);
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(dest, e));
        }
        // `fs::copy` gave it the vault's mode, which an older version left 0644.
        if let Err(e) = fsutil::make_private(&tmp) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let checked =
            db::open_keyed(&tmp, &self.key, true).and_then(|c| db::verify(&c, &tmp, false));
        if let Err(e) = checked {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        fsutil::rename_durable(&tmp, dest)
    }
}

/// Inserts one new item (fresh uuid and item key) and its fields.
fn insert_new_item(tx: &Transaction<'_>, new: NewItem, now: i64) -> Result<String> {
    let uuid = crypto::new_uuid()?;
    let mut fields = new.fields;
    let mut next_uid = fields.iter().map(|f| f.uid).max().unwrap_or(0).max(0) + 1;
    let mut seen = std::collections::HashSet::new();
    for (i, f) in fields.iter_mut().enumerate() {
        if f.uid == 0 {
            f.uid = next_uid;
            next_uid += 1;
        }
        if !seen.insert(f.uid) {
            return Err(Error::InvalidInput(format!(
                "duplicate field uid {}",
                f.uid
            )));
        }
        if f.order == 0 {
            f.order = i as i64 + 1;
        }
        f.updated_at = now;
        f.value_updated_at = now;
    }
    let category = if new.category.is_empty() {
        "login".to_owned()
    } else {
        new.category
    };
    let template = if new.template.is_empty() {
        format!("{category}.default")
    } else {
        new.template
    };
    let icon = if new.icon.is_empty() {
        format!(
            r#"{{"fav":"","image":{{"file":"misc/{}"}},"type":1,"uuid":""}}"#,
            category.replace(['"', '\\'], "")
        )
    } else {
        new.icon
    };
    let key = crypto::new_item_key()?;
    tx.prepare_cached(
        "INSERT INTO item(uuid,created_at,meta_updated_at,field_updated_at,title,subtitle,note,icon,favorite,trashed,archived,deleted,auto_submit,form_data,category,template,wearable,usage_count,last_used,key,extra,updated_at) \
         VALUES(?1,?2,?2,?2,?3,?4,?5,?6,?7,0,0,0,1,'',?8,?9,0,0,0,?10,'',?2)",
    )?
    .execute(params![uuid, now, new.title, new.subtitle, new.note.expose(), icon, new.favorite as i64, category, template, &key[..]])?;
    for f in &fields {
        write_field(tx, &uuid, &key, f)?;
    }
    Ok(uuid)
}

/// Creates the Enpass schema and the rows a fresh Enpass vault carries.
fn init_schema(conn: &Connection) -> Result<()> {
    conn.execute_batch("PRAGMA journal_mode = DELETE;")?;
    let tx = conn.unchecked_transaction()?;
    for s in db::ENPASS_SCHEMA {
        tx.execute_batch(s)?;
    }
    tx.execute(
        "INSERT INTO Identity(ID,Version,Signature,Sync_UUID,Hash,Info) VALUES(1,6,'WalletxDb',?1,'',NULL)",
        [crypto::new_uuid()?],
    )?;
    for (k, v) in db::ENPASS_VERSIONS {
        tx.execute(
            "INSERT INTO versions(verison_key,verison_value) VALUES(?1,?2)",
            params![k, v],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// `sqlcipher_export` of the whole database behind `conn` into a new file keyed with
/// `key` (and `key`'s salt), SQLCipher 3 settings.
pub(crate) fn export_with_key(conn: &Connection, dest: &Path, key: &VaultKey) -> Result<()> {
    let dest_str = dest
        .to_str()
        .ok_or_else(|| Error::InvalidInput(format!("path {} is not UTF-8", dest.display())))?;
    // The main connection was opened without SQLITE_OPEN_CREATE: ATTACH cannot create
    // the file, so create it empty (an empty file is a valid new database).
    fsutil::create_private(dest)?;
    let k = key.pragma_key_with_salt();
    let mut attach = Zeroizing::new(String::from("ATTACH DATABASE ?1 AS rekey KEY \""));
    attach.push_str(&k);
    attach.push('"');
    // SQLite's message for a failed statement may quote it: never let it carry the key.
    conn.execute(&attach, [dest_str]).map_err(|e| {
        Error::Unsupported(format!(
            "cannot attach the re-key target: {}",
            e.sqlite_error_code()
                .map(|c| format!("{c:?}"))
                .unwrap_or_default()
        ))
    })?;
    let res = (|| -> Result<()> {
        conn.execute_batch("PRAGMA rekey.cipher_compatibility = 3;")?;
        conn.query_row("SELECT sqlcipher_export('rekey')", [], |_| Ok(()))?;
        let uv: i64 = conn.query_row("PRAGMA main.user_version", [], |r| r.get(0))?;
        conn.execute_batch(&format!("PRAGMA rekey.user_version = {uv};"))?;
        Ok(())
    })();
    let det = conn.execute_batch("DETACH DATABASE rekey;");
    res?;
    det?;
    Ok(())
}

/// Reads an item's key blob.
pub(crate) fn load_item_key(conn: &Connection, uuid: &str) -> Result<Option<ItemKey>> {
    let blob: Option<Option<Vec<u8>>> = conn
        .query_row("SELECT key FROM item WHERE uuid=?1", [uuid], |r| {
            r.get::<_, Option<Vec<u8>>>(0)
        })
        .optional()?;
    let blob = blob.flatten().map(Zeroizing::new);
    Ok(fieldcrypt::item_key_from_blob(
        blob.as_deref().map(|v| &v[..]),
    ))
}

/// Gives an item a fresh key+nonce and re-encrypts every encrypted value and every
/// history of its fields (all rows, deleted ones too). Returns the new key.
pub(crate) fn rekey_item(
    tx: &Transaction<'_>,
    uuid: &str,
    old: Option<&ItemKey>,
) -> Result<ItemKey> {
    let new = crypto::new_item_key()?;
    let rows: Vec<(i64, String, String, String)> = {
        let mut st =
            tx.prepare("SELECT rowid,type,value,history FROM itemfield WHERE item_uuid=?1")?;
        let it = st.query_map([uuid], |r| {
            Ok((r.get(0)?, text_at(r, 1)?, text_at(r, 2)?, text_at(r, 3)?))
        })?;
        it.collect::<rusqlite::Result<_>>()?
    };
    for (rowid, kind, value, history) in rows {
        let mut new_value = None;
        if field_type::is_encrypted(&kind) && !value.is_empty() {
            let pt = fieldcrypt::decrypt_value(old, uuid, &value)?;
            new_value = Some(fieldcrypt::encrypt_value(&new, uuid, &pt)?);
        }
        let mut new_history = None;
        if !history.trim().is_empty() {
            let plain = fieldcrypt::decrypt_history(old, uuid, &history)?;
            new_history = Some(fieldcrypt::encrypt_history(&new, uuid, &plain)?);
        }
        if new_value.is_some() || new_history.is_some() {
            tx.execute(
                "UPDATE itemfield SET value=ifnull(?2,value), history=ifnull(?3,history) WHERE rowid=?1",
                params![rowid, new_value, new_history],
            )?;
        }
    }
    tx.execute(
        "UPDATE item SET key=?2 WHERE uuid=?1",
        params![uuid, &new[..]],
    )?;
    Ok(new)
}

fn history_to_plain_json(h: &[HistoryEntry]) -> Zeroizing<String> {
    if h.is_empty() {
        return Zeroizing::new(String::new());
    }
    let arr: Vec<Json> = h
        .iter()
        .map(|e| serde_json::json!({"updated_at": e.updated_at, "value": e.value.expose()}))
        .collect();
    Zeroizing::new(serde_json::to_string(&arr).unwrap_or_default())
}

fn history_from_plain_json(uuid: &str, s: &str) -> Result<Vec<HistoryEntry>> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: Json = serde_json::from_str(s)
        .map_err(|_| Error::Corrupt(format!("item {uuid}: history JSON")))?;
    let arr = v.as_array().cloned().unwrap_or_default();
    Ok(arr
        .iter()
        .map(|e| HistoryEntry {
            updated_at: e.get("updated_at").and_then(Json::as_i64).unwrap_or(0),
            value: Secret::new(
                e.get("value")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ),
        })
        .collect())
}

/// Upserts one field row by `(item_uuid, item_field_uid)`, encrypting with `key`.
fn write_field(tx: &Transaction<'_>, uuid: &str, key: &ItemKey, f: &Field) -> Result<()> {
    let plain = f.value.expose();
    let encrypted = field_type::is_encrypted(&f.kind);
    let stored = if encrypted {
        fieldcrypt::encrypt_value(key, uuid, plain)?
    } else {
        plain.to_owned()
    };
    let hash = if plain.is_empty() {
        String::new()
    } else {
        crypto::sha1_hex(plain.as_bytes())
    };
    let initial: String = if encrypted {
        plain.chars().take(2).collect()
    } else {
        String::new()
    };
    let initial = Zeroizing::new(initial);
    let strength = if encrypted {
        crate::item::strength(plain)
    } else {
        -1
    };
    let history = fieldcrypt::encrypt_history(key, uuid, &history_to_plain_json(&f.history))?;
    let n = tx.prepare_cached(
        "UPDATE itemfield SET label=?3,value=?4,deleted=?5,sensitive=?6,type=?7,updated_at=?8,value_updated_at=?9,orde=?10,history=?11,initial=?12,hash=?13,strength=?14 \
         WHERE item_uuid=?1 AND item_field_uid=?2",
    )?
    .execute(params![uuid, f.uid, f.label, stored, f.deleted as i64, f.sensitive as i64, f.kind, f.updated_at, f.value_updated_at, f.order, history, &*initial, hash, strength])?;
    if n == 0 {
        tx.prepare_cached(
            "INSERT INTO itemfield(item_uuid,item_field_uid,label,value,deleted,sensitive,historical,type,form_id,updated_at,value_updated_at,orde,wearable,history,initial,hash,strength,algo_version,expiry,excluded,pwned_check_time,extra) \
             VALUES(?1,?2,?3,?4,?5,?6,1,?7,'',?8,?9,?10,0,?11,?12,?13,?14,1,0,0,0,'')",
        )?
        .execute(params![uuid, f.uid, f.label, stored, f.deleted as i64, f.sensitive as i64, f.kind, f.updated_at, f.value_updated_at, f.order, history, &*initial, hash, strength])?;
    }
    Ok(())
}

/// Reads items (all, or the one with `only`), decrypting their fields.
///
/// One pass over `item` and one over `itemfield` (two statements, no per-item queries).
/// A page that fails its HMAC while being read (a file damaged or tampered with after
/// it was opened, see the crate docs) is [`Error::Corrupt`].
pub(crate) fn read_items(conn: &Connection, only: Option<&str>) -> Result<Vec<Item>> {
    read_items_inner(conn, only).map_err(|e| match e {
        Error::Database(e) => db::corrupt_or_db(Path::new(conn.path().unwrap_or(VAULT_DB)), e),
        other => other,
    })
}

/// A column's text without copying it (NULL → empty; non-UTF-8 → `None`).
fn str_at<'r>(row: &'r SqlRow<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(t) | ValueRef::Blob(t) => std::str::from_utf8(t).ok(),
        ValueRef::Null => Some(""),
        _ => None,
    })
}

/// Decrypts a stored password value with a reused GCM context (same contract as
/// `fieldcrypt::decrypt_value`).
fn decrypt_value_fast(
    opener: &mut crypto::GcmOpener,
    key: Option<&ItemKey>,
    aad: Option<&[u8; 16]>,
    uuid: &str,
    stored: &str,
) -> Result<Secret> {
    if stored.is_empty() {
        return Ok(Secret::new(String::new()));
    }
    let key = key.ok_or_else(|| {
        Error::Corrupt(format!(
            "item {uuid}: encrypted value but no usable item key"
        ))
    })?;
    let aad = aad.ok_or_else(|| Error::Corrupt(format!("item uuid {uuid:?} is not a uuid")))?;
    let bytes = hex::decode(stored)
        .map_err(|_| Error::Corrupt(format!("item {uuid}: encrypted value is not hex")))?;
    let mut pt = opener.open(key, aad, &bytes).ok_or_else(|| {
        Error::Corrupt(format!(
            "item {uuid}: a value does not decrypt with the item key"
        ))
    })?;
    match String::from_utf8(std::mem::take(&mut *pt)) {
        Ok(s) => Ok(Secret::new(s)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(Error::Corrupt(format!(
                "item {uuid}: decrypted value is not UTF-8"
            )))
        }
    }
}

/// An item read without its fields, with its key and the AAD of its values (the
/// uuid's 16 bytes).
type LoadedItem = (Item, Option<ItemKey>, Option<[u8; 16]>);

/// The items (all, or the one with uuid `only`) with their fields decrypted, each
/// item's fields in their order.
fn read_items_inner(conn: &Connection, only: Option<&str>) -> Result<Vec<Item>> {
    let (mut items, index) = read_item_rows(conn, only)?;
    if items.is_empty() {
        return Ok(Vec::new());
    }
    read_field_rows(conn, only, &mut items, &index)?;
    Ok(items
        .into_iter()
        .map(|(mut i, _, _)| {
            i.fields.sort_by_key(|f| (f.order, f.uid));
            i
        })
        .collect())
}

/// The items (all in rowid order, or the one with uuid `only`) without their fields,
/// and each one's position by uuid.
fn read_item_rows(
    conn: &Connection,
    only: Option<&str>,
) -> Result<(Vec<LoadedItem>, HashMap<String, usize>)> {
    let mut items: Vec<LoadedItem> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let sql = match only {
        Some(_) => format!("{ITEM_SELECT} WHERE uuid=?1"),
        None => format!("{ITEM_SELECT} ORDER BY rowid"),
    };
    let mut st = conn.prepare(&sql)?;
    let mut rows = match only {
        Some(u) => st.query([u])?,
        None => st.query([])?,
    };
    while let Some(r) = rows.next()? {
        let loaded = item_from_row(r)?;
        index.insert(loaded.0.uuid.clone(), items.len());
        items.push(loaded);
    }
    Ok((items, index))
}

/// One row of `ITEM_SELECT`: the item without its fields, its key and its AAD.
fn item_from_row(r: &SqlRow<'_>) -> Result<LoadedItem> {
    let key_blob = match r.get_ref(15)? {
        ValueRef::Blob(b) => Some(b),
        _ => None,
    };
    let key = fieldcrypt::item_key_from_blob(key_blob);
    let item = Item {
        uuid: text_at(r, 0)?,
        title: text_at(r, 1)?,
        subtitle: text_at(r, 2)?,
        note: Secret::new(text_at(r, 3)?),
        icon: text_at(r, 4)?,
        category: text_at(r, 5)?,
        template: text_at(r, 6)?,
        favorite: int_at(r, 7, 0)? != 0,
        trashed: int_at(r, 8, 0)? != 0,
        archived: int_at(r, 9, 0)? != 0,
        deleted: int_at(r, 10, 0)? != 0,
        created_at: int_at(r, 11, 0)?,
        updated_at: int_at(r, 12, 0)?,
        meta_updated_at: int_at(r, 13, 0)?,
        field_updated_at: int_at(r, 14, 0)?,
        fields: Vec::new(),
    };
    let aad = crypto::uuid_bytes(&item.uuid);
    Ok((item, key, aad))
}

/// Reads the fields (all, or those of item `only`) into their items in `items`,
/// decrypted; fields of items not in `index` are skipped.
fn read_field_rows(
    conn: &Connection,
    only: Option<&str>,
    items: &mut [LoadedItem],
    index: &HashMap<String, usize>,
) -> Result<()> {
    let sql = match only {
        Some(_) => format!("{FIELD_SELECT} WHERE item_uuid=?1"),
        None => FIELD_SELECT.to_owned(),
    };
    let mut opener = crypto::GcmOpener::new()?;
    let mut st = conn.prepare(&sql)?;
    let mut rows = match only {
        Some(u) => st.query([u])?,
        None => st.query([])?,
    };
    // An item's fields are usually stored one after the other: remember the last one.
    let mut last: Option<usize> = None;
    while let Some(r) = rows.next()? {
        let Some(ix) = field_owner(r, last, items, index)? else {
            continue;
        };
        last = Some(ix);
        let (item, key, aad) = &mut items[ix];
        let field = field_from_row(r, &mut opener, item, key.as_ref(), aad.as_ref())?;
        item.fields.push(field);
    }
    Ok(())
}

/// The position in `items` of the item field row `r` belongs to, trying `last` first
/// (None: an item that was not read).
fn field_owner(
    r: &SqlRow<'_>,
    last: Option<usize>,
    items: &[LoadedItem],
    index: &HashMap<String, usize>,
) -> Result<Option<usize>> {
    let owned;
    let item_uuid = match str_at(r, 0)? {
        Some(u) => u,
        None => {
            owned = text_at(r, 0)?;
            owned.as_str()
        }
    };
    Ok(match last {
        Some(ix) if items[ix].0.uuid == item_uuid => Some(ix),
        _ => index.get(item_uuid).copied(),
    })
}

/// One row of `FIELD_SELECT` of `item`: the field, its value and history decrypted
/// with the item's `key` and `aad`.
fn field_from_row(
    r: &SqlRow<'_>,
    opener: &mut crypto::GcmOpener,
    item: &Item,
    key: Option<&ItemKey>,
    aad: Option<&[u8; 16]>,
) -> Result<Field> {
    let kind = text_at(r, 6)?;
    let value = if field_type::is_encrypted(&kind) {
        match str_at(r, 3)? {
            Some(stored) => decrypt_value_fast(opener, key, aad, &item.uuid, stored)?,
            None => {
                return Err(Error::Corrupt(format!(
                    "item {}: encrypted value is not hex",
                    item.uuid
                )))
            }
        }
    } else {
        Secret::new(text_at(r, 3)?)
    };
    let history = match str_at(r, 10)? {
        Some(h) if h.trim().is_empty() => Vec::new(),
        _ => {
            let stored = Zeroizing::new(text_at(r, 10)?);
            let plain = fieldcrypt::decrypt_history(key, &item.uuid, &stored)?;
            history_from_plain_json(&item.uuid, &plain)?
        }
    };
    Ok(Field {
        uid: int_at(r, 1, 0)?,
        label: text_at(r, 2)?,
        kind,
        value,
        deleted: int_at(r, 4, 0)? != 0,
        sensitive: int_at(r, 5, 0)? != 0,
        updated_at: int_at(r, 7, 0)?,
        value_updated_at: int_at(r, 8, 0)?,
        order: int_at(r, 9, 0)?,
        history,
        hash: text_at(r, 11)?,
    })
}
