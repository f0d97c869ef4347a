//! Shared test helpers: a Graph fake and storages pointed at it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use syncfabric_conformance::Harness;
use syncfabric_core::auth::{SecretToken, StaticBearer};
use syncfabric_core::retry::RetryPolicy;
use syncfabric_core::{RemotePath, Storage};
use syncfabric_onedrive::{OneDriveConfig, OneDriveStorage};
use syncfabric_testkit::graph_fake::{FakeConfig, GraphFake};

/// A retry policy for tests: quick backoff, generous bounds.
pub fn test_retry() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(2),
        max_attempts: 12,
        max_total: Duration::from_secs(120),
        ..Default::default()
    }
}

/// The raw storage (no RetryingStorage) for `url` on `fake`.
pub fn raw(fake: &GraphFake, url: &str) -> OneDriveStorage {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut cfg = OneDriveConfig::from_url(&format!("{url}{sep}graph_url={}", fake.url())).unwrap();
    cfg.retry = test_retry();
    cfg.delta_interval = Duration::from_millis(100);
    let bearer = Arc::new(StaticBearer::new(SecretToken::new(fake.token())));
    OneDriveStorage::new(cfg, bearer).unwrap()
}

/// The storage as the registry hands it out (retrying, shared pacer).
pub fn storage(fake: &GraphFake, url: &str) -> Arc<dyn Storage> {
    Arc::new(raw(fake, url).retrying())
}

/// A conformance harness over a fresh fake: every client is an independent storage;
/// the fake lives as long as the harness.
pub async fn harness(cfg: FakeConfig, url: &'static str) -> Harness {
    let fake = Arc::new(GraphFake::start(cfg).await.unwrap());
    let s = storage(&fake, url);
    let f2 = fake.clone();
    Harness::new(s, RemotePath::parse("scratch").unwrap()).with_clients(move || {
        let f = f2.clone();
        async move { Ok(storage(&f, url)) }
    })
}
