//! The Enpass layout (issue #20): devices sync one vault through the Enpass apps' own
//! sync file, `Enpass/vault.enpassdbsync`, over the backend `SYNCFABRIC_TEST_BACKEND`
//! chooses (a folder by default). Beside them an Enpass-like writer, as the apps
//! behave: it downloads the file, changes its copy, and writes the whole file back with
//! a plain write, no condition and no lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use syncfabric::core::{RemotePath, Storage};
use syncfabric::engine::{
    restore_from_remote, sync_vault, Layout, StateDir, SyncError, SyncOptions, SyncOutcome,
};
use syncfabric::remote::Remote;
use syncfabric::vault::container;
use syncfabric::vault::{CreateOptions, NewItem, Secret, Vault};

#[path = "common/backend.rs"]
mod backend;
mod common;
#[path = "common/enpass_app.rs"]
mod enpass_app;
use enpass_app::{EnpassApp, FILE};

const PW: &str = "enpass layout password";

struct Device {
    vault: Vault,
    state: StateDir,
}

impl Device {
    async fn sync(&mut self, remote: &Remote) -> Result<SyncOutcome, SyncError> {
        let opts = SyncOptions::default();
        Ok(sync_vault(&mut self.vault, remote, &self.state, &opts)
            .await?
            .outcome)
    }

    fn password(&self, title: &str) -> Option<String> {
        let i = self
            .vault
            .items()
            .unwrap()
            .into_iter()
            .find(|i| i.title == title && i.is_live())?;
        Some(i.field("password")?.value.expose().to_string())
    }

    fn set_password(&mut self, title: &str, pw: &str) {
        let mut i = self
            .vault
            .items()
            .unwrap()
            .into_iter()
            .find(|i| i.title == title)
            .unwrap();
        i.field_mut("password").unwrap().value = Secret::new(pw);
        self.vault.update_item(&i).unwrap();
    }
}

fn add(v: &mut Vault, title: &str, pw: &str) {
    v.add_item(NewItem::login(
        title,
        "me",
        Secret::new(pw),
        "https://example.com",
    ))
    .unwrap();
}

fn new_device(root: &Path, name: &str) -> Device {
    let opts = CreateOptions {
        kdf_iter: 1000,
        name: "Enpass layout".into(),
        ..Default::default()
    };
    let vault = Vault::create(root.join(name), &Secret::new(PW), &opts).unwrap();
    let state = StateDir::open(root.join(format!("{name}-state"))).unwrap();
    Device { vault, state }
}

async fn restored(root: &Path, name: &str, remote: &Remote, password: &str) -> Device {
    let dir: PathBuf = root.join(name);
    let state = StateDir::open(root.join(format!("{name}-state"))).unwrap();
    // The uuid is the file's: any.
    let vault = restore_from_remote(remote, "", &dir, &state, &Secret::new(password), None)
        .await
        .unwrap();
    Device { vault, state }
}

async fn shared(root: &Path) -> Option<(backend::TestRemote, Remote)> {
    let t = backend::open(root).await?;
    let remote = t.remote.clone().with_layout(Layout::enpass());
    Some((t, remote))
}

/// Sleeps until the Unix second changes: rows written after it carry a later clock.
fn next_second() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = now();
    while now() == start {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

async fn read(raw: &Arc<dyn Storage>, path: &str) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut dl = raw.read(&RemotePath::parse(path).unwrap()).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = dl.stream.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_through_one_enpass_sync_file() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((t, remote)) = shared(tmp.path()).await else {
        return;
    };
    let mut a = new_device(tmp.path(), "a");
    add(&mut a.vault, "Bank", "from a");
    assert_eq!(a.sync(&remote).await.unwrap(), SyncOutcome::Pushed);
    let mut b = restored(tmp.path(), "b", &remote, PW).await;
    assert_eq!(b.password("Bank").as_deref(), Some("from a"));
    add(&mut b.vault, "Mail", "from b");
    b.sync(&remote).await.unwrap();
    a.set_password("Bank", "edited on a");
    a.sync(&remote).await.unwrap();
    b.sync(&remote).await.unwrap();
    for d in [&a, &b] {
        assert_eq!(d.password("Bank").as_deref(), Some("edited on a"));
        assert_eq!(d.password("Mail").as_deref(), Some("from b"));
    }
    // One file in the Enpass shape; no folder of syncfabric's layout, no vault.json.
    let bytes = read(&t.raw, FILE).await;
    let head: [u8; container::HEADER_LEN] = bytes[..container::HEADER_LEN].try_into().unwrap();
    let meta = container::read_header(&head).unwrap();
    assert_eq!(meta.vault_uuid(), a.vault.meta().vault_uuid());
    let uuid = a.vault.meta().vault_uuid().unwrap().to_string();
    assert!(!t.exists(&format!("{uuid}/vault.enpassdb")).await);
    let names = t.names("Enpass").await;
    assert!(
        names.contains(&"vault.enpassdbsync".to_string()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n == "vault.json"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_enpass_vault_restores_from_its_sync_file_and_syncs_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((t, remote)) = shared(tmp.path()).await else {
        return;
    };
    // A remote holding only an Enpass file, made from the real Enpass vault.
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/enpass-2020");
    let meta = syncfabric::vault::VaultMeta::read(&real.join("vault.json")).unwrap();
    let packed = tmp.path().join("packed");
    container::pack(&meta, &real.join("vault.enpassdb"), &packed).unwrap();
    t.raw
        .create_dir(&RemotePath::parse("Enpass").unwrap())
        .await
        .unwrap();
    t.put(FILE, &std::fs::read(&packed).unwrap()).await;

    let mut a = restored(tmp.path(), "a", &remote, "mymasterpassword").await;
    assert_eq!(a.password("mylogin").as_deref(), Some("mypassword"));
    a.set_password("mylogin", "changed by syncfabric");
    assert_eq!(a.sync(&remote).await.unwrap(), SyncOutcome::Pushed);
    // What we wrote opens as the Enpass file it was, with the edit.
    let bytes = read(&t.raw, FILE).await;
    let dir = tmp.path().join("check");
    std::fs::create_dir(&dir).unwrap();
    let m = container::unpack_verified(
        &mut std::io::Cursor::new(bytes),
        &dir.join("vault.enpassdb"),
        a.vault.key(),
    )
    .unwrap();
    assert_eq!(m.vault_uuid(), Some("primary"));
    m.write_atomic(&dir.join("vault.json")).unwrap();
    let v = Vault::open(&dir, &Secret::new("mymasterpassword"), None).unwrap();
    let i = v
        .items()
        .unwrap()
        .into_iter()
        .find(|i| i.title == "mylogin");
    let pw = i
        .unwrap()
        .field("password")
        .unwrap()
        .value
        .expose()
        .to_string();
    assert_eq!(pw, "changed by syncfabric");
}

/// The Enpass app downloads the file, a syncfabric device commits, then the app writes
/// back its copy (merged before that commit) with an edit of its own: the device's
/// value is not lost, and the app's edit arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_overwrite_from_an_older_copy_loses_no_value_of_ours() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((t, remote)) = shared(tmp.path()).await else {
        return;
    };
    let mut a = new_device(tmp.path(), "a");
    add(&mut a.vault, "Bank", "v1");
    add(&mut a.vault, "Mail", "m1");
    a.sync(&remote).await.unwrap();
    let mut b = restored(tmp.path(), "b", &remote, PW).await;

    let mut app = EnpassApp::download(&t.raw, PW).await.unwrap();
    next_second();
    a.set_password("Bank", "v2 from a");
    a.sync(&remote).await.unwrap();
    next_second();
    // The app's own edit, on another item, then its plain write over a's commit.
    let mut mail = app
        .vault
        .items()
        .unwrap()
        .into_iter()
        .find(|i| i.title == "Mail")
        .unwrap();
    mail.field_mut("password").unwrap().value = Secret::new("m2 from the app");
    app.vault.update_item(&mail).unwrap();
    add(&mut app.vault, "Added in the app", "x");
    app.upload(&t.raw).await.unwrap();

    // a still holds v2; its sync must not take the app's older Bank as a change.
    a.sync(&remote).await.unwrap();
    assert_eq!(a.password("Bank").as_deref(), Some("v2 from a"));
    assert_eq!(a.password("Mail").as_deref(), Some("m2 from the app"));
    assert_eq!(a.password("Added in the app").as_deref(), Some("x"));
    b.sync(&remote).await.unwrap();
    assert_eq!(b.password("Bank").as_deref(), Some("v2 from a"));
    assert_eq!(b.password("Mail").as_deref(), Some("m2 from the app"));
    // And the remote holds it all again.
    let app2 = EnpassApp::download(&t.raw, PW).await.unwrap();
    let live = |v: &Vault, title: &str| {
        v.items()
            .unwrap()
            .into_iter()
            .find(|i| i.title == title)
            .map(|i| i.field("password").unwrap().value.expose().to_string())
    };
    assert_eq!(live(&app2.vault, "Bank").as_deref(), Some("v2 from a"));
    assert_eq!(live(&app2.vault, "Added in the app").as_deref(), Some("x"));
}

/// A device whose vault was unchanged since its last sync would adopt the remote as it
/// is (the pull-only fast path): not when the remote no longer holds its last commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_overwrite_is_merged_not_adopted_by_an_idle_device() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((t, remote)) = shared(tmp.path()).await else {
        return;
    };
    let mut a = new_device(tmp.path(), "a");
    add(&mut a.vault, "Bank", "v1");
    a.sync(&remote).await.unwrap();
    let app = EnpassApp::download(&t.raw, PW).await.unwrap();
    next_second();
    a.set_password("Bank", "v2 from a");
    a.sync(&remote).await.unwrap();
    // The app writes its untouched older copy back (it merged before a's commit).
    app.upload(&t.raw).await.unwrap();
    // a is idle: nothing changed locally since its sync.
    a.sync(&remote).await.unwrap();
    assert_eq!(a.password("Bank").as_deref(), Some("v2 from a"));
    let back = EnpassApp::download(&t.raw, PW).await.unwrap();
    let pw = back
        .vault
        .items()
        .unwrap()
        .into_iter()
        .find(|i| i.title == "Bank")
        .unwrap()
        .field("password")
        .unwrap()
        .value
        .expose()
        .to_string();
    assert_eq!(pw, "v2 from a", "a pushed its value back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_attachments_are_refused_with_nothing_pushed() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((t, remote)) = shared(tmp.path()).await else {
        return;
    };
    let mut a = new_device(tmp.path(), "a");
    add(&mut a.vault, "Bank", "v1");
    a.sync(&remote).await.unwrap();
    let before = read(&t.raw, FILE).await;
    let uuid = a.vault.items().unwrap()[0].uuid.clone();
    let big = vec![7u8; syncfabric::vault::INLINE_MAX + 10];
    a.vault
        .add_attachment(&uuid, "scan.pdf", "application/pdf", &mut &big[..])
        .unwrap();
    match a.sync(&remote).await {
        Err(SyncError::AttachmentsInContainer { files: 1 }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(read(&t.raw, FILE).await, before, "nothing pushed");
}

/// On a storage whose versions repeat the engine tells its commits apart by its commit
/// marker, which an Enpass app never writes: the app's plain write must still be seen
/// (by what the server says of the file), not taken for our last commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enpass_write_is_seen_where_versions_repeat() {
    use syncfabric::core::memory::MemoryStorage;
    use syncfabric_conformance::doubles::RepeatingVersions;
    let raw: Arc<dyn Storage> = Arc::new(RepeatingVersions(MemoryStorage::new()));
    let remote = syncfabric::remote::connect(raw.clone(), None)
        .await
        .unwrap()
        .with_layout(Layout::enpass());
    assert!(!remote.verdict().strong_versions);
    let tmp = tempfile::tempdir().unwrap();
    let mut a = new_device(tmp.path(), "a");
    add(&mut a.vault, "Bank", "v1");
    a.sync(&remote).await.unwrap();
    let mut app = EnpassApp::download(&raw, PW).await.unwrap();
    next_second();
    let mut bank = app.vault.items().unwrap().remove(0);
    // Same length: the database keeps its size, so its size-built version repeats.
    bank.field_mut("password").unwrap().value = Secret::new("v2");
    app.vault.update_item(&bank).unwrap();
    app.upload(&raw).await.unwrap();
    assert_eq!(a.sync(&remote).await.unwrap(), SyncOutcome::Pulled);
    assert_eq!(a.password("Bank").as_deref(), Some("v2"));
}
