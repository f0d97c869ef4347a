//! Issue #13: hostile local state or a hostile remote can never cost data or leak.
//!
//! Each test is the regression test of one finding of the adversarial run. They use
//! only APIs that existed before the fix (errors are matched by their message), so the
//! same file shows the old code failing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use syncfabric::core::memory::MemoryStorage;
use syncfabric::core::{
    Body, Capabilities, Download, Entry, Precondition, RemotePath, Result as StorageResult, Storage,
};
use syncfabric::engine::{
    restore_from_remote, sync_vault, CountingStorage, StateDir, SyncError, SyncOptions,
};
use syncfabric::folder::FolderStorage;
use syncfabric::vault::{CreateOptions, NewItem, Secret, Vault};

mod common;
use common::as_claimed;

const PW: &str = "correct horse battery staple";

fn new_vault(dir: &Path) -> Vault {
    let opts = CreateOptions {
        kdf_iter: 1000,
        name: "Test".into(),
        ..Default::default()
    };
    Vault::create(dir, &Secret::new(PW), &opts).unwrap()
}

fn uuid_of(v: &Vault) -> String {
    v.meta().vault_uuid().unwrap().to_string()
}

fn folder_remote(root: &Path) -> (Arc<dyn Storage>, PathBuf) {
    let dir = root.join("remote");
    std::fs::create_dir_all(&dir).unwrap();
    (Arc::new(FolderStorage::new(&dir).unwrap()), dir)
}

async fn sync(
    v: &mut Vault,
    s: &Arc<dyn Storage>,
    st: &StateDir,
) -> Result<syncfabric::engine::SyncReport, SyncError> {
    sync_vault(v, &as_claimed(s.clone()), st, &SyncOptions::default()).await
}

/// A vault with one item, synced once to a folder remote: the remote, its folder on
/// disk, the vault and its sync state.
async fn synced_once(root: &Path) -> (Arc<dyn Storage>, PathBuf, Vault, StateDir) {
    let (remote, dir) = folder_remote(root);
    let mut v = new_vault(&root.join("v"));
    let st = StateDir::open(root.join("s")).unwrap();
    add(&mut v, "one");
    sync(&mut v, &remote, &st).await.unwrap();
    (remote, dir, v, st)
}

fn add(v: &mut Vault, title: &str) {
    v.add_item(NewItem::login(title, "u", Secret::new("p"), ""))
        .unwrap();
}

/// Every file below `dir` (recursively, links not followed).
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(all_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".tmp-"))
        })
        .collect()
}

/// Rewrites `state.json` of `st` through `f` (on its JSON, whatever the version).
fn edit_state(st: &StateDir, f: impl FnOnce(&mut serde_json::Value)) {
    let p = st.path().join("state.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn set_aside_files(st: &StateDir) -> usize {
    std::fs::read_dir(st.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("state.json.corrupt-"))
        })
        .count()
}

/// Bug 2: a journal entry whose `file` is `../../victim.txt` must not make the journal
/// rotation delete that file.
#[tokio::test]
async fn a_journal_file_name_from_state_json_never_becomes_a_path() {
    let tmp = tempfile::tempdir().unwrap();
    let (remote, _, mut v, st) = synced_once(tmp.path()).await;
    // <tmp>/s/journal/../../victim.txt is <tmp>/victim.txt.
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, b"not yours").unwrap();
    edit_state(&st, |j| {
        j["journal"][0]["file"] = "../../victim.txt".into();
    });
    for i in 0..8 {
        add(&mut v, &format!("more {i}"));
        sync(&mut v, &remote, &st).await.unwrap();
    }
    assert!(victim.exists(), "the journal rotation deleted {victim:?}");
    assert_eq!(set_aside_files(&st), 1, "the bad state.json is kept aside");
    let state = st.load().unwrap();
    assert!(!state.journal.is_empty());
    for e in &state.journal {
        assert_eq!(e.file, format!("{:08}.enpassdb", e.seq));
    }
}

/// Bug 3: a journal `seq` of 2^64-1 must not panic a push (after its remote commit).
#[tokio::test]
async fn a_journal_seq_at_the_u64_limit_does_not_panic_a_push() {
    let tmp = tempfile::tempdir().unwrap();
    let (remote, _, mut v, st) = synced_once(tmp.path()).await;
    edit_state(&st, |j| {
        j["journal"][0]["seq"] = u64::MAX.into();
        j["journal"][0]["file"] = format!("{:08}.enpassdb", u64::MAX).into();
    });
    std::fs::rename(
        st.path().join("journal").join("00000001.enpassdb"),
        st.path()
            .join("journal")
            .join(format!("{:08}.enpassdb", u64::MAX)),
    )
    .unwrap();
    for i in 0..3 {
        add(&mut v, &format!("more {i}"));
        sync(&mut v, &remote, &st).await.unwrap();
    }
    assert_eq!(set_aside_files(&st), 1);
    assert!(st.load().unwrap().journal.iter().all(|e| e.seq < 100));
}

/// A state.json that is not JSON no longer blocks every sync: it is set aside and the
/// state rebuilt.
#[tokio::test]
async fn a_corrupt_state_json_is_set_aside_and_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let (remote, _, mut v, st) = synced_once(tmp.path()).await;
    std::fs::write(
        st.path().join("state.json"),
        b"{\"vault_uuid\": 17, garbage",
    )
    .unwrap();
    add(&mut v, "two");
    sync(&mut v, &remote, &st).await.unwrap();
    assert_eq!(set_aside_files(&st), 1);
    let state = st.load().unwrap();
    assert_eq!(state.vault_uuid, uuid_of(&v));
    assert!(state.remote_version.is_some());
}

/// Bug 4: a remote vault.json far above the limit is stopped at the limit (on a folder
/// remote the announced size already refuses it), not downloaded whole.
#[tokio::test]
async fn an_oversized_remote_vault_json_is_refused_without_downloading_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (remote, rdir, mut v, _) = synced_once(tmp.path()).await;
    let json = rdir.join(uuid_of(&v)).join("vault.json");
    let mut big = std::fs::read(&json).unwrap();
    big.truncate(big.len() - 2); // before the closing "}\n"
    big.extend_from_slice(b",\"pad\":\"");
    big.resize(big.len() + 8 * 1024 * 1024, b'x');
    big.extend_from_slice(b"\"}");
    std::fs::write(&json, &big).unwrap();

    let counting = CountingStorage::new(remote.clone());
    let counters = counting.counters();
    let counting: Arc<dyn Storage> = Arc::new(counting);
    let st = StateDir::open(tmp.path().join("s2")).unwrap();
    let err = sync(&mut v, &counting, &st).await.unwrap_err().to_string();
    eprintln!("{err}");
    assert!(
        err.contains("refused to download") && err.contains("vault.json"),
        "{err}"
    );
    assert!(err.contains("1048576"), "names the limit: {err}");
    let read = counters.bytes_read.load(Ordering::SeqCst);
    assert!(read <= 2 * 1024 * 1024, "{read} bytes were read");
    assert_eq!(temp_files(st.path()), Vec::<PathBuf>::new());
}

/// What the hostile storage does to reads of one file.
#[derive(Clone, Copy, Debug)]
enum Hostility {
    /// An endless body (1 MiB chunks of zeros; ends after `ENDLESS_CAP` so that code
    /// without a bound still terminates), no size announced.
    Endless,
    /// One byte every 20 s (ends after `SLOW_CAP` bytes), no size announced.
    Slow,
}

const ENDLESS_CAP: u64 = 64 * 1024 * 1024;
const SLOW_CAP: u64 = 5_000;

/// A storage double: `MemoryStorage`, except that reads of the files whose name ends
/// with `target` answer with a hostile body. Counts the bytes it handed out.
#[derive(Debug)]
struct Hostile {
    inner: MemoryStorage,
    how: Hostility,
    target: &'static str,
    pulled: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl Storage for Hostile {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn describe(&self) -> String {
        "hostile".into()
    }
    async fn stat(&self, path: &RemotePath) -> StorageResult<Option<Entry>> {
        self.inner.stat(path).await
    }
    async fn list(&self, dir: &RemotePath) -> StorageResult<Vec<Entry>> {
        self.inner.list(dir).await
    }
    async fn read(&self, path: &RemotePath) -> StorageResult<Download> {
        let real = self.inner.read(path).await?;
        if !path.file_name().is_some_and(|n| n.ends_with(self.target)) {
            return Ok(real);
        }
        let pulled = self.pulled.clone();
        let how = self.how;
        let stream = futures_util::stream::unfold(0u64, move |sent| {
            let pulled = pulled.clone();
            async move {
                let (cap, chunk) = match how {
                    Hostility::Endless => (ENDLESS_CAP, 1024 * 1024),
                    Hostility::Slow => (SLOW_CAP, 1),
                };
                if sent >= cap {
                    return None;
                }
                if let Hostility::Slow = how {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                }
                pulled.fetch_add(chunk, Ordering::SeqCst);
                Some((Ok(Bytes::from(vec![0u8; chunk as usize])), sent + chunk))
            }
        });
        Ok(Download {
            version: real.version,
            size: None,
            stream: Box::pin(stream),
        })
    }
    async fn write(
        &self,
        path: &RemotePath,
        body: Body,
        pre: Precondition,
    ) -> StorageResult<Entry> {
        self.inner.write(path, body, pre).await
    }
    async fn delete(&self, path: &RemotePath, pre: Precondition) -> StorageResult<()> {
        self.inner.delete(path, pre).await
    }
    async fn create_dir(&self, path: &RemotePath) -> StorageResult<()> {
        self.inner.create_dir(path).await
    }
}

/// A vault pushed to a `MemoryStorage`, and a fresh state folder (so the next sync
/// downloads the remote database) reached through a hostile double.
async fn hostile_setup(
    root: &Path,
    how: Hostility,
    target: &'static str,
) -> (Vault, Arc<dyn Storage>, StateDir, Arc<AtomicU64>, u64) {
    let mem = MemoryStorage::new();
    let plain: Arc<dyn Storage> = Arc::new(mem.clone());
    let mut v = new_vault(&root.join("v"));
    add(&mut v, "one");
    sync(&mut v, &plain, &StateDir::open(root.join("s1")).unwrap())
        .await
        .unwrap();
    let db = RemotePath::parse(&format!("{}/vault.enpassdb", uuid_of(&v))).unwrap();
    let size = mem.stat(&db).await.unwrap().unwrap().size;
    let pulled = Arc::new(AtomicU64::new(0));
    let hostile: Arc<dyn Storage> = Arc::new(Hostile {
        inner: mem,
        how,
        target,
        pulled: pulled.clone(),
    });
    let st = StateDir::open(root.join("s2")).unwrap();
    (v, hostile, st, pulled, size)
}

/// Bug 5: an endless database body stops at the announced size plus the margin, and
/// leaves no temp file.
#[tokio::test]
async fn an_endless_database_download_stops_at_its_bound_and_leaves_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut v, hostile, st, pulled, size) =
        hostile_setup(tmp.path(), Hostility::Endless, "vault.enpassdb").await;
    let err = sync(&mut v, &hostile, &st).await.unwrap_err().to_string();
    eprintln!("{err}");
    assert!(
        err.contains("refused to download") && err.contains("vault.enpassdb"),
        "{err}"
    );
    let bound = size + size / 8 + 16 * 1024 * 1024;
    let got = pulled.load(Ordering::SeqCst);
    assert!(
        got <= bound + 1024 * 1024,
        "{got} bytes pulled, bound {bound}"
    );
    assert_eq!(temp_files(st.path()), Vec::<PathBuf>::new());
    assert_eq!(temp_files(v.dir()), Vec::<PathBuf>::new());
}

/// Bug 4: an endless vault.json body with no announced size is stopped while
/// streaming, at its limit.
#[tokio::test]
async fn an_endless_vault_json_is_stopped_at_its_limit_while_streaming() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut v, hostile, st, pulled, _) =
        hostile_setup(tmp.path(), Hostility::Endless, "vault.json").await;
    let err = sync(&mut v, &hostile, &st).await.unwrap_err().to_string();
    assert!(
        err.contains("refused to download") && err.contains("vault.json"),
        "{err}"
    );
    let got = pulled.load(Ordering::SeqCst);
    assert!(got <= 2 * 1024 * 1024, "{got} bytes pulled");
    assert_eq!(temp_files(st.path()), Vec::<PathBuf>::new());
}

/// Bug 5: a body that trickles (one byte every 20 s: never idle long enough for an
/// HTTP timeout) stops at the overall deadline. Paused clock: no real waiting.
#[tokio::test(start_paused = true)]
async fn a_trickling_database_download_stops_at_its_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut v, hostile, st, pulled, size) =
        hostile_setup(tmp.path(), Hostility::Slow, "vault.enpassdb").await;
    let t0 = tokio::time::Instant::now();
    let err = sync(&mut v, &hostile, &st).await.unwrap_err().to_string();
    let took = t0.elapsed();
    eprintln!(
        "{err} (after {took:?}, {} bytes)",
        pulled.load(Ordering::SeqCst)
    );
    assert!(
        err.contains("did not finish within") && err.contains("vault.enpassdb"),
        "{err}"
    );
    let deadline = Duration::from_secs(120 + size / (32 * 1024));
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(60),
        "{took:?}"
    );
    assert_eq!(temp_files(st.path()), Vec::<PathBuf>::new());
}

/// Bug 6: a remote `vault.enpassdb -> secret file` on a folder remote is refused, and
/// no copy of the secret is left anywhere in the state or vault folder.
#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_remote_database_is_refused_and_nothing_is_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let (remote, rdir, mut v, _) = synced_once(tmp.path()).await;
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "TOPSECRET-6f1d\n".repeat(1000)).unwrap();
    let db = rdir.join(uuid_of(&v)).join("vault.enpassdb");
    std::fs::remove_file(&db).unwrap();
    std::os::unix::fs::symlink(&secret, &db).unwrap();

    let st = StateDir::open(v.dir().join(".syncfabric").join("origin")).unwrap();
    for _ in 0..2 {
        let err = sync(&mut v, &remote, &st).await.unwrap_err().to_string();
        eprintln!("{err}");
        assert!(err.contains("symbolic link"), "{err}");
    }
    for f in all_files(v.dir()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !bytes.windows(9).any(|w| w == b"TOPSECRET"),
            "{f:?} holds a copy of the secret"
        );
    }
    assert_eq!(temp_files(v.dir()), Vec::<PathBuf>::new());
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// Files syncfabric writes are 0600 and its folders 0700 under umask 022.
#[cfg(unix)]
#[tokio::test]
async fn files_are_0600_and_folders_0700_whatever_the_umask() {
    // SAFETY: umask only sets the process's file mode mask.
    unsafe { libc::umask(0o022) };
    let tmp = tempfile::tempdir().unwrap();
    let (remote, _) = folder_remote(tmp.path());
    let mut v = new_vault(&tmp.path().join("v"));
    let item = v
        .add_item(NewItem::login("Docs", "me", Secret::new("p"), ""))
        .unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    v.add_attachment(&item.uuid, "scan.pdf", "application/pdf", &mut &big[..])
        .unwrap();
    let st = StateDir::open(v.dir().join(".syncfabric").join("origin")).unwrap();
    sync(&mut v, &remote, &st).await.unwrap();
    add(&mut v, "two");
    sync(&mut v, &remote, &st).await.unwrap();
    let config = tmp.path().join("config.toml");
    syncfabric::engine::state::write_atomic(&config, b"x = 1\n").unwrap();

    let mut checked = 0;
    for f in all_files(v.dir()).into_iter().chain([config]) {
        assert_eq!(mode(&f), 0o600, "{f:?}");
        checked += 1;
    }
    assert!(
        checked >= 7,
        "vault, json, attachment, state, base, 2 journal"
    );
    assert!(all_files(v.dir())
        .iter()
        .any(|f| f.extension().is_some_and(|e| e == "enpassattach")));
    for d in [
        v.dir().to_path_buf(), // made by `Vault::create`
        v.dir().join(".syncfabric"),
        st.path().to_path_buf(),
        st.path().join("journal"),
    ] {
        assert_eq!(mode(&d), 0o700, "{d:?}");
    }
}

/// A restore that fails (here: the wrong password, found after the downloads) leaves
/// no staging folder and no vault files behind.
#[tokio::test]
async fn a_failed_restore_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let (remote, _, v, _) = synced_once(tmp.path()).await;
    let dest = tmp.path().join("restored");
    let st = StateDir::open(tmp.path().join("restored-state")).unwrap();
    let r = restore_from_remote(
        &as_claimed(remote),
        &uuid_of(&v),
        &dest,
        &st,
        &Secret::new("wrong"),
        None,
    )
    .await;
    assert!(r.is_err());
    assert!(!dest.exists(), "left: {:?}", all_files(&dest));
    assert_eq!(all_files(st.path()), Vec::<PathBuf>::new());
}

/// An endless attachment body stops at the size the listing announced plus the margin,
/// during a restore, which then leaves nothing behind.
#[tokio::test]
async fn an_endless_attachment_download_stops_at_its_bound_and_the_restore_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = MemoryStorage::new();
    let plain: Arc<dyn Storage> = Arc::new(mem.clone());
    let mut v = new_vault(&tmp.path().join("v"));
    let item = v
        .add_item(NewItem::login("Docs", "me", Secret::new("p"), ""))
        .unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    v.add_attachment(&item.uuid, "scan.pdf", "application/pdf", &mut &big[..])
        .unwrap();
    sync(
        &mut v,
        &plain,
        &StateDir::open(tmp.path().join("s1")).unwrap(),
    )
    .await
    .unwrap();
    let pulled = Arc::new(AtomicU64::new(0));
    let hostile = Hostile {
        inner: mem,
        how: Hostility::Endless,
        target: ".enpassattach",
        pulled: pulled.clone(),
    };
    let dest = tmp.path().join("restored");
    let st = StateDir::open(tmp.path().join("restored-state")).unwrap();
    let hostile = as_claimed(Arc::new(hostile));
    let err = restore_from_remote(&hostile, &uuid_of(&v), &dest, &st, &Secret::new(PW), None)
        .await
        .expect_err("the restore must fail")
        .to_string();
    eprintln!("{err}");
    assert!(
        err.contains("refused to download") && err.contains(".enpassattach"),
        "{err}"
    );
    let got = pulled.load(Ordering::SeqCst);
    let bound = 20 * 1024 * 1024; // the margin, the file and one chunk, well below the 64 MiB cap
    assert!(got <= bound, "{got} bytes pulled");
    assert!(!dest.exists(), "left: {:?}", all_files(&dest));
    assert_eq!(all_files(st.path()), Vec::<PathBuf>::new());
}
