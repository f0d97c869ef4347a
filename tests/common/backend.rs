//! The storage an engine suite runs over, chosen by one environment variable, so that
//! the suite is written once and run over every backend:
//!
//! `SYNCFABRIC_TEST_BACKEND` = `folder` (the default: a local folder) | `memory` (the
//! reference in-memory storage) | `webdav:<server>` (a real server of the suite,
//! started for the test: `apache`, `nginx`, `lighttpd`, `rclone`, `sabredav`,
//! `wsgidav`, `webdav-server`, or `syncfabric`: our own Wi-Fi Sync Server, in process,
//! over HTTPS with its certificate pinned) | `onedrive-fake` (the Microsoft Graph fake) |
//! `dropbox-fake` (the Dropbox fake) | `gdrive-fake` (the Google Drive fake).
//!
//! Every backend but the folder and memory ones is readied as an app would ready it
//! (`Remote::open` or `remote::connect`: the honesty probe decides what it may claim).
//! The WebDAV launchers are `syncfabric_testkit::servers`.
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;
use std::sync::Arc;
use syncfabric::core::{Body, Precondition, RemotePath, Storage};
use syncfabric::remote::{Credentials, Recorded, Remote};
use syncfabric_testkit::dropbox_fake::{DropboxFake, DropboxFakeConfig};
use syncfabric_testkit::gdrive_fake::{GdriveFake, GdriveFakeConfig};
use syncfabric_testkit::graph_fake::{FakeConfig, GraphFake};
use syncfabric_testkit::servers::{Kind, Server};

/// The variable that chooses the backend.
pub const VAR: &str = "SYNCFABRIC_TEST_BACKEND";

/// One test's shared storage, and what must live as long as it.
pub struct TestRemote {
    /// The remote the engine syncs through.
    pub remote: Remote,
    /// The same storage unprobed, for the test's own looks and tampering (a server
    /// that changes files behind the devices' backs).
    pub raw: Arc<dyn Storage>,
    /// The backend's name, for messages.
    pub name: String,
    _server: Option<Server>,
    _graph: Option<GraphFake>,
    _dropbox: Option<DropboxFake>,
    _gdrive: Option<GdriveFake>,
}

/// The backend's name as chosen (`folder` when unset).
pub fn chosen() -> String {
    std::env::var(VAR)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "folder".into())
}

/// Whether the chosen backend is the local folder: the tests that need the folder
/// itself (request counts of `FolderStorage`, its claims downgraded on purpose) run
/// only then.
pub fn is_folder() -> bool {
    chosen() == "folder"
}

/// Opens the chosen backend for one test, with its files under `root` where it has
/// any. A WebDAV server that is not installed skips (returns `None`, loudly) unless
/// servers are required.
pub async fn open(root: &Path) -> Option<TestRemote> {
    let name = chosen();
    let mut t = match name.as_str() {
        "folder" => {
            let dir = root.join("remote");
            std::fs::create_dir_all(&dir).unwrap();
            let raw: Arc<dyn Storage> =
                Arc::new(syncfabric::folder::FolderStorage::new(&dir).unwrap());
            let remote = syncfabric::remote::connect(raw.clone(), None)
                .await
                .unwrap();
            plain(remote, raw)
        }
        "memory" => {
            let raw: Arc<dyn Storage> = Arc::new(syncfabric::core::memory::MemoryStorage::new());
            let remote = syncfabric::remote::connect(raw.clone(), None)
                .await
                .unwrap();
            plain(remote, raw)
        }
        "onedrive-fake" => onedrive_fake().await,
        "dropbox-fake" => dropbox_fake().await,
        "gdrive-fake" => gdrive_fake().await,
        other => match other.strip_prefix("webdav:") {
            Some(server) => webdav(server).await?,
            None => panic!("{VAR}={other}: not a backend (see tests/common/backend.rs)"),
        },
    };
    t.name = name;
    Some(t)
}

fn plain(remote: Remote, raw: Arc<dyn Storage>) -> TestRemote {
    TestRemote {
        remote,
        raw,
        name: String::new(),
        _server: None,
        _graph: None,
        _dropbox: None,
        _gdrive: None,
    }
}

async fn webdav(server: &str) -> Option<TestRemote> {
    let kind = Kind::by_name(server)
        .unwrap_or_else(|| panic!("{VAR}=webdav:{server}: no such server in the suite"));
    let s = Server::start(kind)?;
    // Over https (our server) the URL pins the certificate: the provider fetches it
    // and trusts only it.
    let url = s.remote_url(&s.scratch("engine"));
    let creds = Credentials::Password(syncfabric::vault::Secret::new(s.pass.as_str()));
    let remote = Remote::open(&url, &creds, Recorded::default())
        .await
        .unwrap();
    let raw = syncfabric::remote::open_url(&url, &creds, Default::default())
        .await
        .unwrap();
    let mut t = plain(remote, raw);
    t._server = Some(s);
    Some(t)
}

async fn onedrive_fake() -> TestRemote {
    use syncfabric::core::auth::{SecretToken, StaticBearer};
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let url = format!("onedrive:/Apps/Enpass?graph_url={}", fake.url());
    let bearer = Arc::new(StaticBearer::new(SecretToken::new(fake.token())));
    let creds = Credentials::Bearer(bearer);
    let remote = Remote::open(&url, &creds, Recorded::default())
        .await
        .unwrap();
    let raw = syncfabric::remote::open_url(&url, &creds, Default::default())
        .await
        .unwrap();
    let mut t = plain(remote, raw);
    t._graph = Some(fake);
    t
}

async fn dropbox_fake() -> TestRemote {
    use syncfabric::core::auth::{SecretToken, StaticBearer};
    let fake = DropboxFake::start(DropboxFakeConfig::default())
        .await
        .unwrap();
    let base = fake.url();
    let url = format!("dropbox:/Apps/Enpass?api_url={base}&content_url={base}&notify_url={base}");
    let bearer = Arc::new(StaticBearer::new(SecretToken::new(fake.token())));
    let creds = Credentials::Bearer(bearer);
    let remote = Remote::open(&url, &creds, Recorded::default())
        .await
        .unwrap();
    let raw = syncfabric::remote::open_url(&url, &creds, Default::default())
        .await
        .unwrap();
    let mut t = plain(remote, raw);
    t._dropbox = Some(fake);
    t
}

async fn gdrive_fake() -> TestRemote {
    use syncfabric::core::auth::{SecretToken, StaticBearer};
    let fake = GdriveFake::start(GdriveFakeConfig::default())
        .await
        .unwrap();
    let url = format!("gdrive:/Apps/Enpass?api_url={}&poll_ms=200", fake.url());
    let bearer = Arc::new(StaticBearer::new(SecretToken::new(fake.token())));
    let creds = Credentials::Bearer(bearer);
    let remote = Remote::open(&url, &creds, Recorded::default())
        .await
        .unwrap();
    let raw = syncfabric::remote::open_url(&url, &creds, Default::default())
        .await
        .unwrap();
    let mut t = plain(remote, raw);
    t._gdrive = Some(fake);
    t
}

impl TestRemote {
    /// The bytes of `path` (`"<vault uuid>/vault.json"`), read behind the devices' backs.
    pub async fn get(&self, path: &str) -> Vec<u8> {
        use futures_util::StreamExt;
        let p = RemotePath::parse(path).unwrap();
        let mut dl = self.raw.read(&p).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = dl.stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    /// Replaces `path` with `bytes` behind the devices' backs (a server that changes
    /// or damages a file).
    pub async fn put(&self, path: &str, bytes: &[u8]) {
        let p = RemotePath::parse(path).unwrap();
        self.raw
            .write(&p, Body::from(bytes.to_vec()), Precondition::None)
            .await
            .unwrap();
    }

    /// Whether `path` exists.
    pub async fn exists(&self, path: &str) -> bool {
        let p = RemotePath::parse(path).unwrap();
        self.raw.stat(&p).await.unwrap().is_some()
    }

    /// The names in the folder `path`.
    pub async fn names(&self, path: &str) -> Vec<String> {
        let p = RemotePath::parse(path).unwrap();
        let mut v: Vec<String> = self
            .raw
            .list(&p)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.path.file_name().unwrap_or_default().to_string())
            .collect();
        v.sort();
        v
    }
}
