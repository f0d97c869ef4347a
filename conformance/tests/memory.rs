//! The suite on its own reference provider (must pass), and on broken doubles (must
//! fail exactly where they break the contract) — so the suite is shown able to fail.

use std::sync::Arc;
use syncfabric_conformance::doubles::{IgnorePreconditions, WithCapabilities};
use syncfabric_conformance::{
    conformance_tests, run_all, Harness, MemoryStorage, Outcome, SuiteConfig,
};
use syncfabric_core::probe::ProbedStorage;
use syncfabric_core::{
    Body, Capabilities, DirLock, Download, Entry, Precondition, RemotePath, Result, Storage,
    Version,
};

fn scratch() -> RemotePath {
    RemotePath::parse("suite/scratch").unwrap()
}

async fn setup() -> Harness {
    let storage = MemoryStorage::new();
    let clients = storage.clone();
    Harness::new(Arc::new(storage), scratch()).with_clients(move || {
        let c = clients.client();
        async move { Ok(Arc::new(c) as Arc<dyn Storage>) }
    })
}

// One named test per behaviour on the truthful reference provider.
conformance_tests!(setup());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes_on_memory_without_skips() {
    let report = run_all(&setup().await).await;
    println!("{report}");
    report.assert_passed();
    assert_eq!(report.skipped(), 0);
    assert_eq!(report.passed(), syncfabric_conformance::BEHAVIOURS.len());
}

fn lying_harness() -> Harness {
    let inner = MemoryStorage::new();
    let clients = inner.clone();
    Harness::new(Arc::new(IgnorePreconditions(inner)), scratch()).with_clients(move || {
        let c = IgnorePreconditions(clients.client());
        async move { Ok(Arc::new(c) as Arc<dyn Storage>) }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_ignores_preconditions_fails_the_relevant_checks() {
    let report = run_all(&lying_harness()).await;
    println!("{report}");
    let failed: Vec<&str> = report.failures().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        failed,
        vec![
            "if_absent_twice",
            "if_match_stale",
            "if_match_missing",
            "delete_stale_if_match",
            "honesty_probe",
            "cas_race",
            // It claims the reference store's folder lock but has none.
            "server_lock",
        ]
    );
    match report.get("cas_race") {
        Some(Err(f)) => assert!(f.message.contains("updates lost"), "{f}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_liar_behind_the_honesty_probe_passes_through_the_lease_lock() {
    let inner = MemoryStorage::new();
    let (probed, report) = ProbedStorage::connect(
        IgnorePreconditions(inner.clone()),
        &RemotePath::parse("probe").unwrap(),
    )
    .await
    .unwrap();
    assert!(!report.is_truthful());
    let effective = report.effective.clone();
    assert!(!effective.has_truthful_cas());
    let config = SuiteConfig {
        race_clients: 3,
        race_increments: 4,
        ..Default::default()
    };
    let h = Harness::new(Arc::new(probed), scratch())
        .with_config(config)
        .with_clients(move || {
            let c = ProbedStorage::new(IgnorePreconditions(inner.client()), effective.clone());
            async move { Ok(Arc::new(c) as Arc<dyn Storage>) }
        });
    let report = run_all(&h).await;
    println!("{report}");
    report.assert_passed();
    assert_eq!(report.get("cas_race"), Some(&Ok(Outcome::Passed)));
    // The precondition checks are skipped: the probed storage refuses them honestly.
    for n in [
        "if_absent_twice",
        "if_match_stale",
        "if_match_missing",
        "delete_stale_if_match",
    ] {
        assert!(
            matches!(report.get(n), Some(Ok(Outcome::Skipped(_)))),
            "{n}: {:?}",
            report.get(n)
        );
    }
}

/// Stores whatever the body yields, even when it is shorter than declared, and gives
/// versions that are only the size (weak): two contract breaks.
#[derive(Debug, Clone)]
struct Sloppy(MemoryStorage);

#[async_trait::async_trait]
impl Storage for Sloppy {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn describe(&self) -> String {
        "sloppy".into()
    }
    async fn stat(&self, p: &RemotePath) -> Result<Option<Entry>> {
        Ok(self.0.stat(p).await?.map(weak))
    }
    async fn list(&self, p: &RemotePath) -> Result<Vec<Entry>> {
        Ok(self.0.list(p).await?.into_iter().map(weak).collect())
    }
    async fn read(&self, p: &RemotePath) -> Result<Download> {
        let mut d = self.0.read(p).await?;
        d.version = d.size.map(|s| Version::new(s.to_string()));
        Ok(d)
    }
    async fn write(&self, p: &RemotePath, b: Body, pre: Precondition) -> Result<Entry> {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        if let Ok(mut r) = b.open().await {
            let _ = r.read_to_end(&mut buf).await;
        }
        Ok(weak(self.0.write(p, Body::from(buf), pre).await?))
    }
    async fn delete(&self, p: &RemotePath, pre: Precondition) -> Result<()> {
        self.0.delete(p, pre).await
    }
    async fn create_dir(&self, p: &RemotePath) -> Result<()> {
        self.0.create_dir(p).await
    }
}

fn weak(mut e: Entry) -> Entry {
    if e.version.is_some() {
        e.version = Some(Version::new(e.size.to_string()));
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncating_writes_and_weak_versions_are_caught() {
    let h = Harness::new(Arc::new(Sloppy(MemoryStorage::new())), scratch());
    let report = run_all(&h).await;
    println!("{report}");
    let failed: Vec<&str> = report.failures().iter().map(|(n, _)| *n).collect();
    for n in [
        "versions_change_on_every_write",
        "failed_write_keeps_previous",
        "honesty_probe",
    ] {
        assert!(failed.contains(&n), "{n} did not fail: {report}");
    }
    assert_eq!(report.get("round_trips"), Some(&Ok(Outcome::Passed)));
    assert_eq!(report.get("awkward_names"), Some(&Ok(Outcome::Passed)));
}

/// Without truthful compare-and-swap but with the server's folder lock, the race goes
/// through the lock (as the engine's commit does) and loses nothing; the probe confirms
/// the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_race_through_the_server_lock_loses_nothing() {
    let no_cas = |s: MemoryStorage| {
        let mut caps = s.capabilities();
        caps.if_match = false;
        caps.if_absent = false;
        caps.conditional_delete = false;
        WithCapabilities { inner: s, caps }
    };
    let inner = MemoryStorage::new();
    let report = syncfabric_core::probe::probe(&no_cas(inner.client()), &scratch())
        .await
        .unwrap();
    assert_eq!(
        report.server_lock,
        syncfabric_core::probe::Verdict::Honoured,
        "{}",
        report.summary()
    );
    let config = SuiteConfig {
        race_clients: 4,
        race_increments: 10,
        ..Default::default()
    };
    let h = Harness::new(Arc::new(no_cas(inner.client())), scratch())
        .with_config(config)
        .with_clients(move || {
            let c = no_cas(inner.client());
            async move { Ok(Arc::new(c) as Arc<dyn Storage>) }
        });
    for name in ["cas_race", "server_lock"] {
        assert_eq!(
            syncfabric_conformance::run_behaviour(name, &h).await,
            Ok(Outcome::Passed),
            "{name}"
        );
    }
}

/// A server that answers LOCK but does not enforce it (every write goes through, the
/// token is not checked): the suite and the honesty probe must both notice.
#[derive(Debug, Clone)]
struct LockNotEnforced(MemoryStorage);

#[async_trait::async_trait]
impl Storage for LockNotEnforced {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn describe(&self) -> String {
        "lock not enforced".into()
    }
    async fn stat(&self, p: &RemotePath) -> Result<Option<Entry>> {
        self.0.stat(p).await
    }
    async fn list(&self, p: &RemotePath) -> Result<Vec<Entry>> {
        self.0.list(p).await
    }
    async fn read(&self, p: &RemotePath) -> Result<Download> {
        self.0.read(p).await
    }
    async fn write(&self, p: &RemotePath, b: Body, pre: Precondition) -> Result<Entry> {
        let pre = match pre {
            Precondition::UnderLock(_) => Precondition::None,
            other => other,
        };
        self.0.write(p, b, pre).await
    }
    async fn delete(&self, p: &RemotePath, pre: Precondition) -> Result<()> {
        let pre = match pre {
            Precondition::UnderLock(_) => Precondition::None,
            other => other,
        };
        self.0.delete(p, pre).await
    }
    async fn create_dir(&self, p: &RemotePath) -> Result<()> {
        self.0.create_dir(p).await
    }
    async fn lock_dir(&self, dir: &RemotePath, ttl: std::time::Duration) -> Result<DirLock> {
        Ok(DirLock::new(
            dir.clone(),
            "opaquelocktoken:not-enforced",
            ttl,
        ))
    }
    async fn refresh_lock(&self, lock: &DirLock, _ttl: std::time::Duration) -> Result<DirLock> {
        Ok(lock.clone())
    }
    async fn unlock_dir(&self, _lock: &DirLock) -> Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_that_is_not_enforced_is_caught() {
    let inner = MemoryStorage::new();
    let clients = inner.clone();
    let h = Harness::new(Arc::new(LockNotEnforced(inner.client())), scratch()).with_clients(
        move || {
            let c = LockNotEnforced(clients.client());
            async move { Ok(Arc::new(c) as Arc<dyn Storage>) }
        },
    );
    match syncfabric_conformance::run_behaviour("server_lock", &h).await {
        Err(f) => assert!(f.message.contains("went through the lock"), "{f}"),
        other => panic!("{other:?}"),
    }
    let (probed, report) = ProbedStorage::connect(LockNotEnforced(inner), &scratch())
        .await
        .unwrap();
    assert_eq!(
        report.server_lock,
        syncfabric_core::probe::Verdict::Ignored,
        "{}",
        report.summary()
    );
    assert!(!report.is_truthful());
    assert!(!probed.capabilities().server_lock);
    let r = probed
        .lock_dir(&scratch(), std::time::Duration::from_secs(5))
        .await;
    assert!(
        matches!(r, Err(syncfabric_core::Error::Unsupported { .. })),
        "{r:?}"
    );
}
