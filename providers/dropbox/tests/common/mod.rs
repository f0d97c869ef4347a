//! Shared test helpers: a Dropbox fake and storages pointed at it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use syncfabric_conformance::Harness;
use syncfabric_core::auth::{SecretToken, StaticBearer};
use syncfabric_core::retry::RetryPolicy;
use syncfabric_core::{RemotePath, Storage};
use syncfabric_dropbox::{DropboxConfig, DropboxStorage};
use syncfabric_testkit::dropbox_fake::{DropboxFake, DropboxFakeConfig};

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

/// The raw storage (no RetryingStorage) for `url` with both endpoints at `base`
/// (the fake's URL, or a proxy's `http://…/2`), as the fake's account.
pub fn raw_at(fake: &DropboxFake, base: &str, url: &str) -> DropboxStorage {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut cfg = DropboxConfig::from_url(&format!(
        "{url}{sep}api_url={base}&content_url={base}&notify_url={base}"
    ))
    .unwrap();
    cfg.retry = test_retry();
    let bearer = Arc::new(StaticBearer::new(SecretToken::new(fake.token())));
    DropboxStorage::new(cfg, bearer).unwrap()
}

/// The raw storage for `url` on `fake`.
pub fn raw(fake: &DropboxFake, url: &str) -> DropboxStorage {
    raw_at(fake, &fake.url(), url)
}

/// The storage as the registry hands it out (retrying, shared pacer).
pub fn storage(fake: &DropboxFake, url: &str) -> Arc<dyn Storage> {
    Arc::new(raw(fake, url).retrying())
}

/// No file the fake holds is an autorenamed copy, and no request asked for one.
pub fn assert_no_conflicted_copies(fake: &DropboxFake) {
    let paths = fake.paths();
    assert!(
        paths.iter().all(|p| !p.contains("conflicted copy")),
        "{paths:?}"
    );
    let st = fake.stats();
    assert_eq!((st.autorenamed, st.autorename_requested), (0, 0), "{st:?}");
}

/// Whether the fake holds an autorenamed copy or was asked to make one.
pub fn has_conflicted_copies(fake: &DropboxFake) -> bool {
    let st = fake.stats();
    fake.paths().iter().any(|p| p.contains("conflicted copy"))
        || st.autorenamed > 0
        || st.autorename_requested > 0
}

/// A conformance harness over a fresh fake: every client an independent storage.
pub async fn harness(cfg: DropboxFakeConfig, url: &'static str) -> Harness {
    let fake = Arc::new(DropboxFake::start(cfg).await.unwrap());
    let s = storage(&fake, url);
    let f2 = fake.clone();
    Harness::new(s, RemotePath::parse("scratch").unwrap()).with_clients(move || {
        let f = f2.clone();
        async move { Ok(storage(&f, url)) }
    })
}
