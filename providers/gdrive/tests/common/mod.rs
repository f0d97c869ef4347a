//! Shared test helpers: a Google Drive fake and storages pointed at it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use syncfabric_conformance::Harness;
use syncfabric_core::auth::{SecretToken, StaticBearer};
use syncfabric_core::retry::RetryPolicy;
use syncfabric_core::{RemotePath, Storage};
use syncfabric_gdrive::{GdriveConfig, GdriveStorage};
use syncfabric_testkit::gdrive_fake::{GdriveFake, GdriveFakeConfig};

/// A retry policy for tests: quick backoff, generous bounds.
pub fn test_retry() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        max_attempts: 30,
        max_total: Duration::from_secs(120),
        ..Default::default()
    }
}

/// The raw storage (no RetryingStorage) for `url` with its endpoints at `base`
/// (the fake's URL, or a proxy's), as the fake's account.
pub fn raw_at(fake: &GdriveFake, base: &str, url: &str) -> GdriveStorage {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut cfg = GdriveConfig::from_url(&format!("{url}{sep}api_url={base}")).unwrap();
    cfg.retry = test_retry();
    let bearer = Arc::new(StaticBearer::new(SecretToken::new(fake.token())));
    GdriveStorage::new(cfg, bearer).unwrap()
}

/// The raw storage for `url` on `fake`.
pub fn raw(fake: &GdriveFake, url: &str) -> GdriveStorage {
    raw_at(fake, &fake.url(), url)
}

/// The storage as the registry hands it out (retrying, shared pacer).
pub fn storage(fake: &GdriveFake, url: &str) -> Arc<dyn Storage> {
    Arc::new(raw(fake, url).retrying())
}

/// A conformance harness over a fresh fake: every client an independent storage.
pub async fn harness(cfg: GdriveFakeConfig, url: &'static str) -> Harness {
    let fake = Arc::new(GdriveFake::start(cfg).await.unwrap());
    let s = storage(&fake, url);
    let f2 = fake.clone();
    Harness::new(s, RemotePath::parse("scratch").unwrap()).with_clients(move || {
        let f = f2.clone();
        async move { Ok(storage(&f, url)) }
    })
}
