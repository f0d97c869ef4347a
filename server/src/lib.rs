//! # syncfabric-server: the Wi-Fi Sync Server
//!
//! A small HTTPS-only WebDAV server for the vault folders given to it, so that devices
//! on the local network sync with no cloud at all. Each vault is served under
//! `/dav/<vault id>/` (the `vault_uuid` of its `vault.json`, or an id you give) and guarded
//! by its own random access password ([`AccessPassword`]): HTTP Basic, **any user
//! name**, the password compared in constant time; failed attempts slow that client
//! address down exponentially ([`auth`]).
//!
//! What makes it worth writing ourselves rather than using a generic server: every
//! write is **atomic** (a PUT streams to a temporary file beside the target and is
//! renamed into place, so no reader ever sees part of a file), **conditional writes are
//! truthful** (`If-Match` and `If-None-Match: *` are checked again under a per-path lock
//! right before the rename, so of two racing writers exactly one wins), and **ETags
//! are strong** and change on every write (inode, nanosecond mtime that we push forward
//! on each write, size). Class 2 locks (LOCK/UNLOCK, the `If` header) are enforced.
//!
//! ```no_run
//! # async fn run() -> Result<(), syncfabric_server::Error> {
//! use syncfabric_server::Server;
//! use syncfabric_wifi::{cert::{Names, ServerCert}, password::AccessPassword};
//! let cert = ServerCert::load_or_create("/tmp/state".as_ref(), &Names::default())?;
//! let server = Server::builder()
//!     .vault("/home/me/Enpass/primary", AccessPassword::generate()?)?
//!     .cert(cert)
//!     .bind("0.0.0.0:8443".parse().unwrap())
//!     .await?;
//! println!("serving on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules: [`tls`] (the OpenSSL acceptor), [`auth`] (passwords and back-off), `fs`
//! (safe paths, ETags, atomic writes), `xml` (request bodies, multistatus), `dav` (the
//! methods; `dav::lock` and `dav::props`), `conn` (accept loop, shutdown). The
//! capability checklist is in the crate's `docs.md`.
#![deny(missing_docs)]

pub mod auth;
mod conn;
// A method's early answer (a `Response`) is its `Err`: made once per request, not
// worth a box.
#[allow(clippy::result_large_err)]
mod dav;
mod fs;
pub mod tls;
mod xml;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use syncfabric_wifi::cert::ServerCert;
pub use syncfabric_wifi::password::AccessPassword;

/// Why the server could not start. Nothing here carries a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vault folder is unusable (missing, no vault.json id, not a folder).
    #[error("vault {path}: {why}")]
    Vault {
        /// The folder.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The builder is incomplete or contradicts itself (no certificate, no vault, an
    /// id served twice).
    #[error("{0}")]
    Config(String),
    /// OpenSSL refused the certificate or key.
    #[error("tls: {0}")]
    Tls(#[from] openssl::error::ErrorStack),
    /// A pairing primitive failed.
    #[error(transparent)]
    Wifi(#[from] syncfabric_wifi::Error),
    /// Binding the listening socket, or another I/O step, failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why.
        source: std::io::Error,
    },
}

/// This crate's result.
pub type Result<T> = std::result::Result<T, Error>;

/// Limits applied to every request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest PUT body; beyond it, 413.
    pub max_put_bytes: u64,
    /// Largest XML request body (PROPFIND, PROPPATCH, LOCK); beyond it, 413.
    pub max_xml_bytes: usize,
    /// Longest request path in bytes; beyond it, 414.
    pub max_path_bytes: usize,
    /// Largest request head (request line and headers), in bytes.
    pub max_head_bytes: usize,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Time allowed for the TLS handshake and for a request head.
    pub handshake_timeout: Duration,
    /// First back-off after a failed password; doubled per further failure.
    pub backoff_base: Duration,
    /// Longest back-off.
    pub backoff_cap: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_put_bytes: 256 * 1024 * 1024,
            max_xml_bytes: 1024 * 1024,
            max_path_bytes: 4096,
            max_head_bytes: 64 * 1024,
            max_connections: 256,
            handshake_timeout: Duration::from_secs(15),
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(30),
        }
    }
}

/// One vault the server serves.
pub(crate) struct Vault {
    pub id: String,
    pub root: PathBuf,
    pub password: AccessPassword,
}

/// What the server has seen, for a status line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Client addresses that authenticated at least once.
    pub clients: BTreeSet<IpAddr>,
    /// When a vault file was last written (PUT, MOVE, COPY, DELETE), if ever.
    pub last_sync: Option<SystemTime>,
    /// Requests answered.
    pub requests: u64,
    /// Failed password attempts.
    pub failed_logins: u64,
    /// Requests that were held back because their client was backing off.
    pub backoff_delays: u64,
}

/// Shared by every connection.
pub(crate) struct State {
    pub vaults: BTreeMap<String, Vault>,
    pub limits: Limits,
    pub status: Mutex<Status>,
    pub guard: auth::Guard,
    pub locks: dav::lock::Locks,
    pub props: dav::props::DeadProps,
    pub path_locks: fs::PathLocks,
}

impl State {
    pub(crate) fn status_mut(&self) -> std::sync::MutexGuard<'_, Status> {
        // A poisoned status is still a status: counters cannot be left inconsistent.
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The entry point: `Server::builder()`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with default [`Limits`], no vault and no certificate.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

/// Collects vaults, the certificate and limits; [`ServerBuilder::bind`] starts serving.
#[derive(Default)]
pub struct ServerBuilder {
    vaults: Vec<Vault>,
    cert: Option<ServerCert>,
    limits: Limits,
    state_dir: Option<PathBuf>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<_> = self.vaults.iter().map(|v| v.id.as_str()).collect();
        f.debug_struct("ServerBuilder")
            .field("vaults", &ids)
            .field("cert", &self.cert)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Serves the vault folder `dir` under `/dav/<uuid>/`, the `vault_uuid` of its
    /// `vault.json`, guarded by `password`.
    pub fn vault(self, dir: impl AsRef<Path>, password: AccessPassword) -> Result<Self> {
        let id = vault_id(dir.as_ref())?;
        self.vault_with_id(id, dir, password)
    }

    /// Serves the folder `dir` under `/dav/<id>/` (`id`: letters, digits, `-`, `_`, `.`;
    /// 1 to 64 of them), guarded by `password`.
    pub fn vault_with_id(
        mut self,
        id: impl Into<String>,
        dir: impl AsRef<Path>,
        password: AccessPassword,
    ) -> Result<Self> {
        let id = id.into();
        let dir = dir.as_ref();
        let ok = (1..=64).contains(&id.len())
            && id != "."
            && id != ".."
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(Error::Config(format!("{id:?} is not a usable vault id")));
        }
        let root = std::fs::canonicalize(dir).map_err(|e| Error::Vault {
            path: dir.to_path_buf(),
            why: e.to_string(),
        })?;
        if !root.is_dir() {
            return Err(Error::Vault {
                path: dir.to_path_buf(),
                why: "not a folder".into(),
            });
        }
        if self.vaults.iter().any(|v| v.id == id) {
            return Err(Error::Config(format!("vault id {id} is given twice")));
        }
        self.vaults.push(Vault { id, root, password });
        Ok(self)
    }

    /// The TLS certificate and key.
    pub fn cert(mut self, cert: ServerCert) -> Self {
        self.cert = Some(cert);
        self
    }

    /// Replaces the default [`Limits`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// A folder (outside every vault) where dead properties (PROPPATCH) are kept across
    /// restarts. Without one they live in memory only.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Listens on `addr` (port 0: any free port) and starts serving in the background
    /// on the current tokio runtime.
    pub async fn bind(self, addr: SocketAddr) -> Result<ServerHandle> {
        let cert = self
            .cert
            .ok_or_else(|| Error::Config("no certificate given".into()))?;
        if self.vaults.is_empty() {
            return Err(Error::Config("no vault given".into()));
        }
        if let Some(dir) = &self.state_dir {
            for v in &self.vaults {
                if dir.starts_with(&v.root) {
                    return Err(Error::Config(
                        "the state folder must be outside every vault folder".into(),
                    ));
                }
            }
        }
        let acceptor = tls::acceptor(&cert)?;
        let props = dav::props::DeadProps::open(self.state_dir.as_deref())?;
        let state = Arc::new(State {
            vaults: self.vaults.into_iter().map(|v| (v.id.clone(), v)).collect(),
            limits: self.limits,
            status: Mutex::new(Status::default()),
            guard: auth::Guard::new(self.limits.backoff_base, self.limits.backoff_cap),
            locks: dav::lock::Locks::default(),
            props,
            path_locks: fs::PathLocks::default(),
        });
        conn::start(state, acceptor, addr).await
    }
}

/// The `vault_uuid` of `dir/vault.json` (Enpass 6 keeps the vault's id there).
pub fn vault_id(dir: &Path) -> Result<String> {
    let bad = |why: String| Error::Vault {
        path: dir.to_path_buf(),
        why,
    };
    let text = std::fs::read(dir.join("vault.json")).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(format!("vault.json: {e}")))?;
    v.get("vault_uuid")
        .and_then(|u| u.as_str())
        .map(str::to_string)
        .ok_or_else(|| bad("vault.json has no vault_uuid".into()))
}

/// A running server. Dropping it stops accepting connections; [`ServerHandle::shutdown`]
/// also waits for open requests to finish.
pub struct ServerHandle {
    addr: SocketAddr,
    state: Arc<State>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address the server listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The ids of the vaults served, in order.
    pub fn vault_ids(&self) -> Vec<String> {
        self.state.vaults.keys().cloned().collect()
    }

    /// What the server has seen so far.
    pub fn status(&self) -> Status {
        self.state.status_mut().clone()
    }

    /// Stops accepting, lets open connections finish their current request (up to
    /// five seconds), then returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
