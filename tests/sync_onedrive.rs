//! End-to-end over the Microsoft Graph fake (OneDrive provider): two devices converge
//! with throttling on (429/503, with and without Retry-After), through compare-and-swap
//! (the honesty probe confirms it), and a new device restores from the remote.
#![cfg(feature = "onedrive")]

use std::sync::Arc;
use syncfabric::core::auth::{SecretToken, StaticBearer};
use syncfabric::core::retry::RetryPolicy;
use syncfabric::core::Storage;
use syncfabric::engine::{restore_from_remote, sync_vault, StateDir, SyncOptions, SyncOutcome};
use syncfabric::vault::{CreateOptions, NewItem, Secret, Vault};
use syncfabric_onedrive::{OneDriveConfig, OneDriveStorage};
use syncfabric_testkit::graph_fake::{FakeConfig, GraphFake, ThrottlePlan};

const PW: &str = "onedrive e2e password";

fn titles(v: &Vault) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = v
        .items()
        .unwrap()
        .into_iter()
        .filter(|i| i.is_live())
        .map(|i| {
            (
                i.title.clone(),
                i.field("password")
                    .map(|f| f.value.expose().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    t.sort();
    t
}

/// A device's own connection to the fake, as the registry would build it.
fn device_storage(fake: &GraphFake) -> Arc<dyn Storage> {
    let mut cfg =
        OneDriveConfig::from_url(&format!("onedrive:/Apps/Enpass?graph_url={}", fake.url()))
            .unwrap();
    cfg.retry = RetryPolicy {
        min_delay: std::time::Duration::from_millis(50),
        max_delay: std::time::Duration::from_secs(2),
        max_attempts: 12,
        ..Default::default()
    };
    let bearer = Arc::new(StaticBearer::new(SecretToken::new(fake.token())));
    Arc::new(OneDriveStorage::new(cfg, bearer).unwrap().retrying())
}

#[test]
fn two_devices_over_the_graph_fake_with_throttling() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fake = GraphFake::start(FakeConfig {
            throttle: ThrottlePlan::rate(0.1, 2024),
            ..FakeConfig::default()
        })
        .await
        .unwrap();
        let raw = device_storage(&fake);
        let (verdict, report) = syncfabric::remote::probe(raw.as_ref()).await.unwrap();
        eprintln!("graph fake: {}", report.summary());
        assert_eq!(
            verdict.trust,
            syncfabric::remote::Trust::Truthful,
            "{}",
            report.summary()
        );
        let sa_store = syncfabric::remote::wrap(raw, verdict);
        let sb_store = syncfabric::remote::wrap(device_storage(&fake), verdict);
        let opts = SyncOptions::default();
        let tmp = tempfile::tempdir().unwrap();
        let create = CreateOptions {
            kdf_iter: 1000,
            ..Default::default()
        };
        let mut a = Vault::create(tmp.path().join("a"), &Secret::new(PW), &create).unwrap();
        let sa = StateDir::open(tmp.path().join("sa")).unwrap();
        a.add_item(NewItem::login("Bank", "me", Secret::new("b1"), ""))
            .unwrap();
        assert_eq!(
            sync_vault(&mut a, &sa_store, &sa, &opts)
                .await
                .unwrap()
                .outcome,
            SyncOutcome::Pushed
        );
        let uuid = a.meta().vault_uuid().unwrap().to_string();
        let sb = StateDir::open(tmp.path().join("sb")).unwrap();
        let mut b = restore_from_remote(
            &sb_store,
            &uuid,
            &tmp.path().join("b"),
            &sb,
            &Secret::new(PW),
            None,
        )
        .await
        .unwrap();
        assert_eq!(titles(&a), titles(&b));

        for round in 0..3 {
            a.add_item(NewItem::login(
                &format!("Mail {round}"),
                "me",
                Secret::new(format!("m{round}")),
                "",
            ))
            .unwrap();
            let mut bank = b
                .items()
                .unwrap()
                .into_iter()
                .find(|i| i.title == "Bank")
                .unwrap();
            bank.field_mut("password").unwrap().value = Secret::new(format!("b{}", round + 2));
            b.update_item(&bank).unwrap();
            // Both sync at once, then once more each.
            let (ra, rb) = futures_util::future::join(
                sync_vault(&mut a, &sa_store, &sa, &opts),
                sync_vault(&mut b, &sb_store, &sb, &opts),
            )
            .await;
            ra.unwrap();
            rb.unwrap();
            sync_vault(&mut a, &sa_store, &sa, &opts).await.unwrap();
            sync_vault(&mut b, &sb_store, &sb, &opts).await.unwrap();
            assert_eq!(titles(&a), titles(&b), "round {round}");
        }
        let mut want = vec![("Bank".to_string(), "b4".to_string())];
        for r in 0..3 {
            want.push((format!("Mail {r}"), format!("m{r}")));
        }
        want.sort();
        assert_eq!(titles(&a), want);
        assert_eq!(
            sync_vault(&mut a, &sa_store, &sa, &opts)
                .await
                .unwrap()
                .outcome,
            SyncOutcome::UpToDate
        );
        let st = fake.stats();
        eprintln!("graph fake stats: {st:?}");
        let throttled = st.throttled_429_with_retry_after
            + st.throttled_429_without
            + st.throttled_503_with_retry_after
            + st.throttled_503_without;
        assert!(throttled > 0, "the run was not throttled: {st:?}");
    });
}
