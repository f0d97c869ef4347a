//! An Enpass-like writer for the tests of the Enpass layout (issue #20): it behaves as
//! the Enpass apps do as far as their public help pages tell
//! (<https://help.enpass.io/personal/latest/ios/sync-timing-cloud-sync-security>: "Enpass
//! downloads the entire encrypted vault and decrypts it locally … After completing the
//! sync, Enpass uploads the encrypted vault back to the cloud"): it downloads the whole sync file, merges it into its own copy by timestamps, a whole
//! item at a time, and uploads the whole file back with a plain write: no condition,
//! no lock. Included by `tests/enpass_layout.rs` and `tests/never_lose.rs`.
#![allow(dead_code)] // each test binary uses its own part

use std::sync::Arc;
use syncfabric::core::{Body, Precondition, RemotePath, Storage};
use syncfabric::vault::container;
use syncfabric::vault::snapshot::{Row, Table, Value};
use syncfabric::vault::{Secret, Snapshot, Vault};

/// Where the apps keep the file under a WebDAV URL.
pub const FILE: &str = "Enpass/vault.enpassdbsync";

/// The writer's copy of the vault, in a folder of its own.
pub struct EnpassApp {
    dir: tempfile::TempDir,
    /// Its vault.
    pub vault: Vault,
}

impl EnpassApp {
    /// A new writer whose copy is the sync file as it is now.
    pub async fn download(storage: &Arc<dyn Storage>, password: &str) -> Result<EnpassApp, String> {
        let bytes = read(storage).await?;
        let dir = tempfile::tempdir().unwrap();
        let vault = unpack(&bytes, dir.path(), password)?;
        Ok(EnpassApp { dir, vault })
    }

    /// Writes its copy back whole, as the apps do: a plain write.
    pub async fn upload(&self, storage: &Arc<dyn Storage>) -> Result<(), String> {
        upload(&self.vault, self.dir.path(), storage).await
    }
}

/// One sync of `vault` as the writer does it: download, merge whole items by
/// `updated_at` ([`newer_rows`]), wait `pause` (others may commit meanwhile), upload.
pub async fn app_sync(
    vault: &mut Vault,
    storage: &Arc<dyn Storage>,
    password: &str,
    pause: std::time::Duration,
) -> Result<(), String> {
    let bytes = read(storage).await?;
    let dir = tempfile::tempdir().unwrap();
    let theirs = unpack(&bytes, dir.path(), password)?;
    let winners = newer_rows(&vault.snapshot().unwrap(), &theirs.snapshot().unwrap());
    drop(theirs);
    vault.apply(&winners).unwrap();
    tokio::time::sleep(pause).await;
    upload(vault, dir.path(), storage).await
}

async fn read(storage: &Arc<dyn Storage>) -> Result<Vec<u8>, String> {
    use futures_util::StreamExt;
    let path = RemotePath::parse(FILE).unwrap();
    let mut d = storage.read(&path).await.map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    while let Some(c) = d.stream.next().await {
        bytes.extend_from_slice(&c.map_err(|e| e.to_string())?);
    }
    Ok(bytes)
}

/// Opens the sync file's bytes as a vault in `dir`. An error that is not the network's
/// starts with "BUG" (the file we read must always unpack and open).
fn unpack(bytes: &[u8], dir: &std::path::Path, password: &str) -> Result<Vault, String> {
    let mut src = bytes;
    let meta = container::unpack(&mut src, &dir.join("vault.enpassdb"))
        .map_err(|e| format!("BUG: the sync file does not unpack: {e}"))?;
    meta.write_atomic(&dir.join("vault.json")).unwrap();
    Vault::open(dir, &Secret::new(password), None)
        .map_err(|e| format!("BUG: the sync file does not open: {e}"))
}

async fn upload(
    vault: &Vault,
    scratch: &std::path::Path,
    storage: &Arc<dyn Storage>,
) -> Result<(), String> {
    let out = scratch.join("upload");
    container::pack(vault.meta(), &vault.db_path(), &out).unwrap();
    let body = Body::from(std::fs::read(&out).unwrap());
    let path = RemotePath::parse(FILE).unwrap();
    storage
        .write(&path, body, Precondition::None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The rows of `theirs` that win over `ours` as the writer merges: items (with all their
/// `itemfield` rows) whose `updated_at` is later than ours or that we lack; rows of other
/// tables whose `updated_at` is later or that we lack.
pub fn newer_rows(ours: &Snapshot, theirs: &Snapshot) -> Snapshot {
    let clock = |t: &Table, r: &Row| match t.get(r, "updated_at") {
        Some(Value::Integer(i)) => *i,
        _ => 0,
    };
    let wins = |name: &str, k, t: &Table, r: &Row| {
        ours.table(name)
            .and_then(|m| m.rows.get(k).map(|o| clock(m, o)))
            .is_none_or(|o| o < clock(t, r))
    };
    let mut out = Snapshot::default();
    let mut won_items = std::collections::BTreeSet::new();
    if let Some(t) = theirs.table("item") {
        let mut w = Table::new(t.columns.clone(), t.key_columns.clone());
        for (k, r) in &t.rows {
            if wins("item", k, t, r) {
                w.rows.insert(k.clone(), r.clone());
                if let Some(Value::Text(u)) = t.get(r, "uuid") {
                    won_items.insert(u.clone());
                }
            }
        }
        out.tables.insert("item".into(), w);
    }
    for (name, t) in theirs.tables.iter().filter(|(n, _)| *n != "item") {
        let mut w = Table::new(t.columns.clone(), t.key_columns.clone());
        for (k, r) in &t.rows {
            let take = if name == "itemfield" {
                matches!(t.get(r, "item_uuid"), Some(Value::Text(u)) if won_items.contains(u))
            } else {
                wins(name, k, t, r)
            };
            if take {
                w.rows.insert(k.clone(), r.clone());
            }
        }
        out.tables.insert(name.clone(), w);
    }
    out
}
