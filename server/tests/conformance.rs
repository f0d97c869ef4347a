//! The storage conformance suite and the honesty probe through the normal WebDAV
//! provider (`syncfabric-webdav`), trusting exactly the server's certificate: every
//! behaviour passes, and the probe finds compare-and-swap enforced by the server
//! (if-match, if-absent and conditional delete `Honoured`): truthful, with the
//! server lock also honoured but not needed for compare-and-swap.

mod common;

use common::TestServer;
use std::sync::Arc;
use syncfabric_conformance::{run_all, Harness};
use syncfabric_core::probe::{probe, Verdict};
use syncfabric_core::{RemotePath, Storage};
use syncfabric_webdav::{Profile, Secret, WebDavConfig, WebDavStorage};

fn config(s: &TestServer) -> WebDavConfig {
    let mut c = WebDavConfig::new(s.url()).with_credentials("anyone", Secret::new(s.pass()));
    c.trust_certificate_pem = Some(s.cert.clone());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes() {
    let s = TestServer::start().await;
    let cfg = config(&s);
    let storage = WebDavStorage::connect(cfg.clone()).await.expect("connect");
    assert_eq!(storage.profile(), Profile::Syncfabric);
    let h = Harness::new(Arc::new(storage), RemotePath::parse("conformance").unwrap())
        .with_clients(move || {
            let cfg = cfg.clone();
            async move { Ok(Arc::new(WebDavStorage::connect(cfg).await?) as Arc<dyn Storage>) }
        });
    let report = run_all(&h).await;
    println!("{report}");
    assert!(
        report.failures().is_empty(),
        "conformance failed:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honesty_probe_says_truthful() {
    let s = TestServer::start().await;
    // The `Generic` profile with direct PUTs: every condition claimed, sent as headers
    // and left to the server to enforce; nothing staged, nothing checked by the client.
    let direct = WebDavStorage::connect(
        config(&s)
            .with_profile(Profile::Generic)
            .with_temp_uploads(false),
    )
    .await
    .unwrap();
    let r = probe(&direct, &RemotePath::parse("p").unwrap())
        .await
        .expect("probe ran");
    println!("direct PUT: {}", r.summary());
    assert_eq!(r.if_match, Verdict::Honoured, "{}", r.summary());
    assert_eq!(r.if_absent, Verdict::Honoured, "{}", r.summary());
    assert_eq!(r.conditional_delete, Verdict::Honoured, "{}", r.summary());
    assert!(r.strong_versions, "{}", r.summary());
    assert!(
        r.atomic_writes,
        "a cut PUT must keep the old file: {}",
        r.summary()
    );
    assert!(r.is_truthful(), "{}", r.summary());
    // As the provider connects by default (the `Syncfabric` profile it probes).
    let def = WebDavStorage::connect(config(&s)).await.unwrap();
    let r2 = probe(&def, &RemotePath::parse("p2").unwrap())
        .await
        .expect("probe ran");
    println!("default: {}", r2.summary());
    assert!(r2.is_truthful(), "{}", r2.summary());
    assert_eq!(r2.if_match, Verdict::Honoured, "{}", r2.summary());
}
