//! # syncfabric-conformance
//!
//! The behaviour suite every syncfabric storage provider runs, and the test doubles it
//! needs. One suite, every backend: a provider is done when the suite passes on it.
//!
//! ## A guide for provider authors
//!
//! **1. Implement [`Storage`]** for your backend. Read each
//! method's docs in `syncfabric_core` — they are the contract. The points people get
//! wrong: versions must change on *every* write (two same-size writes in one second
//! too); a precondition you cannot honour is refused with `Error::Unsupported`, never
//! dropped; a failed write leaves the old content and no stray file; `list` of a
//! missing folder is `NotFound`; `delete` of a missing file with `Precondition::None`
//! succeeds; a `Body::File` that yields fewer bytes than its `len` is a failed write.
//! Answer a read of bytes you already hold with `Download::from_bytes`. Map HTTP
//! failures with `Error::from_http_status` (and `retry::parse_retry_after`), and wrap
//! your storage in `syncfabric_core::retry::RetryingStorage` instead of writing retry
//! loops. A native change feed overrides `Storage::watch`; otherwise leave the default.
//!
//! **2. Pick [`Capabilities`](syncfabric_core::Capabilities) honestly.** Claim
//! `if_match`/`if_absent`/`conditional_delete` only when the server enforces them
//! atomically (the suite's `honesty_probe` and `cas_race` will catch a false claim);
//! claim `read_after_write` only with strong consistency; `server_clock` only when
//! `Entry::modified` is stamped by the server; `server_lock` only when the server
//! enforces a folder lock (`Storage::lock_dir`, e.g. WebDAV `LOCK`) on every write,
//! expires it, and refuses a released or expired one (the `server_lock` behaviour
//! checks). Without truthful CAS the engine (and the race here) commits under that
//! lock, else under the lease lock, so an honest "no" still syncs safely.
//!
//! **3. Run the suite** from a test file of your crate (`tests/conformance.rs`). The
//! macro makes one named `#[test]` per behaviour; `setup` builds a fresh
//! [`Harness`] for each:
//!
//! ```
//! use std::sync::Arc;
//! use syncfabric_conformance::{conformance_tests, Harness, MemoryStorage};
//! use syncfabric_core::RemotePath;
//!
//! async fn setup() -> Harness {
//!     // Your provider here, rooted in a fresh scratch place.
//!     let storage = MemoryStorage::new();
//!     let clients = storage.clone();
//!     Harness::new(Arc::new(storage), RemotePath::parse("scratch").unwrap())
//!         // Independent clients of the same place, for the race (optional).
//!         .with_clients(move || {
//!             let c = clients.client();
//!             async move { Ok(Arc::new(c) as Arc<dyn syncfabric_core::Storage>) }
//!         })
//! }
//!
//! conformance_tests!(setup());
//! # fn main() {}
//! ```
//!
//! Or run everything at once and look at the [`Report`]:
//!
//! ```
//! # use std::sync::Arc;
//! # use syncfabric_conformance::{run_all, Harness, MemoryStorage};
//! # use syncfabric_core::RemotePath;
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let h = Harness::new(Arc::new(MemoryStorage::new()), RemotePath::parse("scratch").unwrap());
//! let report = run_all(&h).await;
//! println!("{report}");
//! report.assert_passed();
//! # }
//! ```
//!
//! Each behaviour is also a public async function in [`behaviours`] taking
//! `&dyn Storage` and a scratch folder (the race takes a client factory), so a provider
//! can call one directly while debugging.
//!
//! **4. Prove the suite can fail for you.** [`doubles::IgnorePreconditions`] wraps any
//! storage and drops every precondition while keeping its claims; this crate's own
//! tests show the suite failing on it.
//!
//! This crate holds the behaviours and the doubles only (the CLI's `remote check`
//! links it). The vendor fakes, the fault proxy and the real-server launchers a
//! provider's tests run the suite *against* live in the dev-only `syncfabric-testkit`.
#![deny(missing_docs)]

pub mod behaviours;
pub mod doubles;

/// The reference storage the suite is checked against (it lives in core).
pub use syncfabric_core::memory::MemoryStorage;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use syncfabric_core::lock::LeaseOptions;
use syncfabric_core::{Error, RemotePath, Storage};

/// How a behaviour that did not fail ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The behaviour held.
    Passed,
    /// The behaviour does not apply to this provider's capabilities; the text says why.
    Skipped(String),
}

/// Why a behaviour failed: a contract violation, or an unexpected error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong, in words a provider author can act on.
    pub message: String,
}

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::new(format!("unexpected error: {e}"))
    }
}

/// The result of one behaviour.
pub type Check = Result<Outcome, Failure>;

/// Makes a new, independent client of the storage under test (its own connection,
/// its own state), as another device would be.
pub type ClientFactory = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Arc<dyn Storage>, Error>> + Send>> + Send + Sync,
>;

/// Knobs of the suite.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// Clients in the race (default 4).
    pub race_clients: usize,
    /// Increments per client in the race (default 10).
    pub race_increments: usize,
    /// The lease options used when the race runs through the lease lock (default: a
    /// 10 s lease, 500 ms settle pause, 50 ms polling, 5 min acquire timeout). A lock
    /// write answered later than `settle` after its look is refused: raise `settle`
    /// for slow servers.
    pub lease: LeaseOptions,
    /// A bound on each behaviour (default 10 minutes); exceeding it is a failure.
    pub timeout: Duration,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        SuiteConfig {
            race_clients: 4,
            race_increments: 10,
            lease: LeaseOptions {
                ttl: Duration::from_secs(10),
                refresh_every: Duration::from_secs(3),
                settle: Duration::from_millis(500),
                acquire_timeout: Duration::from_secs(300),
                poll_interval: Duration::from_millis(50),
                label: "conformance".into(),
            },
            timeout: Duration::from_secs(600),
        }
    }
}

/// What the suite runs against: the storage, a scratch folder in it (each behaviour
/// uses its own subfolder, named after it), optionally a factory of independent
/// clients for the race, and the [`SuiteConfig`].
#[derive(Clone)]
pub struct Harness {
    /// The storage under test.
    pub storage: Arc<dyn Storage>,
    /// The folder the suite may fill and empty.
    pub scratch: RemotePath,
    /// New independent clients; without one, the race shares `storage` between tasks.
    pub new_client: Option<ClientFactory>,
    /// Knobs.
    pub config: SuiteConfig,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("storage", &self.storage.describe())
            .field("scratch", &self.scratch)
            .field("new_client", &self.new_client.is_some())
            .field("config", &self.config)
            .finish()
    }
}

impl Harness {
    /// A harness with the default config and no client factory.
    pub fn new(storage: Arc<dyn Storage>, scratch: RemotePath) -> Self {
        Harness {
            storage,
            scratch,
            new_client: None,
            config: SuiteConfig::default(),
        }
    }

    /// Adds the factory of independent clients used by the race.
    pub fn with_clients<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Arc<dyn Storage>, Error>> + Send + 'static,
    {
        self.new_client = Some(Arc::new(move || Box::pin(f())));
        self
    }

    /// Replaces the config.
    pub fn with_config(mut self, config: SuiteConfig) -> Self {
        self.config = config;
        self
    }

    fn clients(&self) -> ClientFactory {
        match &self.new_client {
            Some(f) => f.clone(),
            None => {
                let s = self.storage.clone();
                Arc::new(move || {
                    let s = s.clone();
                    Box::pin(async move { Ok(s) })
                })
            }
        }
    }
}

/// The behaviours, listed once: each name with how it is called (`h` the
/// [`Harness`], `s` its storage, `dir` the behaviour's scratch folder). Expands to
/// [`BEHAVIOURS`], the dispatch of [`run_behaviour`], and [`conformance_tests!`].
macro_rules! behaviour_table {
    ($d:tt ($h:ident, $s:ident, $dir:ident); $($name:ident => $call:expr),* $(,)?) => {
        /// The names of all behaviours, in the order [`run_all`] runs them.
        pub const BEHAVIOURS: &[&str] = &[$(stringify!($name)),*];

        /// Behaviour `name` on `h`'s storage in `dir`; `None` for an unknown name.
        async fn dispatch(name: &str, $h: &Harness, $dir: &RemotePath) -> Option<Check> {
            let $s: &dyn Storage = $h.storage.as_ref();
            Some(match name {
                $(stringify!($name) => $call.await,)*
                _ => return None,
            })
        }

        /// Generates a module `conformance` with one `#[test]` per behaviour, named after
        /// it (from the same list as [`BEHAVIOURS`]). The argument is an expression giving a
        /// future of a [`Harness`] (e.g. `setup()` for an `async fn setup() -> Harness`); it
        /// is evaluated once per test. The generated tests need no tokio macros.
        #[macro_export]
        macro_rules! conformance_tests {
            ($d setup:expr) => {
                mod conformance {
                    #[allow(unused_imports)]
                    use super::*;
                    $(
                        #[test]
                        fn $name() {
                            $d crate::run_test(stringify!($name), $d setup);
                        }
                    )*
                }
            };
        }
    };
}

behaviour_table! { $ (h, s, dir);
    round_trips => behaviours::round_trips(s, dir),
    overwrite_is_visible => behaviours::overwrite_is_visible(s, dir),
    versions_change_on_every_write => behaviours::versions_change_on_every_write(s, dir),
    if_absent_twice => behaviours::if_absent_twice(s, dir),
    if_match_stale => behaviours::if_match_stale(s, dir),
    if_match_missing => behaviours::if_match_missing(s, dir),
    delete_stale_if_match => behaviours::delete_stale_if_match(s, dir),
    honesty_probe => behaviours::honesty_probe(s, dir),
    cas_race => behaviours::cas_race(
        &h.clients(),
        dir,
        h.config.race_clients,
        h.config.race_increments,
        &h.config.lease,
    ),
    server_lock => behaviours::server_lock(&h.clients(), dir),
    failed_write_keeps_previous => behaviours::failed_write_keeps_previous(s, dir),
    awkward_names => behaviours::awkward_names(s, dir),
    list_folders => behaviours::list_folders(s, dir),
    delete_is_idempotent => behaviours::delete_is_idempotent(s, dir),
    read_after_write => behaviours::read_after_write(s, dir),
    escape_attempts_refused => behaviours::escape_attempts_refused(s, dir),
    parents_are_created => behaviours::parents_are_created(s, dir),
}

/// Runs behaviour `name` in its own subfolder `<scratch>/<name>` (emptied before and,
/// on success, after), bounded by `config.timeout`. An unknown name is a failure.
pub async fn run_behaviour(name: &str, h: &Harness) -> Check {
    let dir = h.scratch.join(name).map_err(Failure::from)?;
    let s = h.storage.as_ref();
    remove_tree(s, &dir).await;
    let fut = async {
        dispatch(name, h, &dir)
            .await
            .unwrap_or_else(|| Err(Failure::new(format!("no behaviour named {name:?}"))))
    };
    let res = match tokio::time::timeout(h.config.timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(Failure::new(format!(
            "did not finish within {:?}",
            h.config.timeout
        ))),
    };
    if res.is_ok() {
        remove_tree(s, &dir).await;
    }
    res
}

/// Removes `dir` and everything under it (files first, then folders, deepest first), as
/// far as the storage lets it: best effort, errors are ignored. For emptying a scratch
/// folder.
pub async fn remove_tree(s: &dyn Storage, dir: &RemotePath) {
    let mut stack = vec![dir.clone()];
    let mut dirs = Vec::new();
    while let Some(d) = stack.pop() {
        let Ok(entries) = s.list(&d).await else {
            continue;
        };
        for e in entries {
            match e.kind {
                syncfabric_core::EntryKind::Dir => stack.push(e.path),
                syncfabric_core::EntryKind::File => {
                    let _ = s.delete(&e.path, syncfabric_core::Precondition::None).await;
                }
            }
        }
        dirs.push(d);
    }
    for d in dirs.iter().rev() {
        if s.remove_empty_dir(d).await.is_err() {
            let _ = s.delete(d, syncfabric_core::Precondition::None).await;
        }
    }
}

/// The outcome of [`run_all`]: one entry per behaviour, in order.
#[derive(Debug)]
pub struct Report {
    /// The storage's description.
    pub storage: String,
    /// `(behaviour name, result)`.
    pub results: Vec<(&'static str, Check)>,
}

impl Report {
    /// How many passed.
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, r)| matches!(r, Ok(Outcome::Passed)))
            .count()
    }
    /// How many were skipped.
    pub fn skipped(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, r)| matches!(r, Ok(Outcome::Skipped(_))))
            .count()
    }
    /// The failures, by behaviour name.
    pub fn failures(&self) -> Vec<(&'static str, &Failure)> {
        self.results
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|f| (*n, f)))
            .collect()
    }
    /// The result of one behaviour.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.results
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| r)
    }
    /// True when nothing failed.
    pub fn all_passed(&self) -> bool {
        self.failures().is_empty()
    }
    /// Panics with the whole report if anything failed.
    pub fn assert_passed(&self) {
        assert!(self.all_passed(), "conformance failures:\n{self}");
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "conformance suite on {}", self.storage)?;
        for (name, r) in &self.results {
            match r {
                Ok(Outcome::Passed) => writeln!(f, "  PASS {name}")?,
                Ok(Outcome::Skipped(why)) => writeln!(f, "  SKIP {name}: {why}")?,
                Err(e) => writeln!(f, "  FAIL {name}: {e}")?,
            }
        }
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failures().len(),
            self.skipped()
        )
    }
}

/// Runs every behaviour in [`BEHAVIOURS`] one after the other.
pub async fn run_all(h: &Harness) -> Report {
    let mut results = Vec::new();
    for name in BEHAVIOURS {
        results.push((*name, run_behaviour(name, h).await));
    }
    Report {
        storage: h.storage.describe(),
        results,
    }
}

/// Runs one behaviour as a test: builds a 2-thread tokio runtime, awaits `setup`, runs
/// the behaviour, prints a skip, panics on a failure. Used by [`conformance_tests!`].
pub fn run_test<Fut>(name: &str, setup: Fut)
where
    Fut: Future<Output = Harness>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime for the conformance test");
    rt.block_on(async {
        let h = setup.await;
        match run_behaviour(name, &h).await {
            Ok(Outcome::Passed) => {}
            Ok(Outcome::Skipped(why)) => println!("skipped {name}: {why}"),
            Err(f) => panic!("{name} failed on {}: {f}", h.storage.describe()),
        }
    });
}
