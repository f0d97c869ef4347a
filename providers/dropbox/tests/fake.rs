//! The Dropbox provider against the Dropbox fake beyond the per-behaviour suite: the
//! whole suite behind the flaky proxy and with throttling, the honesty probe on an
//! honest and a lying fake, the identical-content rule, upload sessions (a lost
//! append answer), token refresh, the registry. Every test ends by checking that no
//! "conflicted copy" was ever made.

mod common;

use common::{assert_no_conflicted_copies, raw, raw_at, storage, test_retry};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use syncfabric_conformance::{run_all, run_behaviour, Harness, SuiteConfig};
use syncfabric_core::auth::{BearerAuth, SecretToken};
use syncfabric_core::probe::{probe, Verdict};
use syncfabric_core::registry::{OpenOptions, Registry};
use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
use syncfabric_testkit::dropbox_fake::{DropboxFake, DropboxFakeConfig};
use syncfabric_testkit::flaky_proxy::{FaultPlan, FlakyProxy};

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

async fn read_all(s: &dyn Storage, path: &RemotePath) -> Vec<u8> {
    let mut d = s.read(path).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = d.stream.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A fake with 5 % of requests throttled (429 + `Retry-After`), behind the flaky
/// proxy with `plan`, and a harness whose clients all go through the proxy.
async fn behind_proxy(plan: FaultPlan) -> (Arc<DropboxFake>, FlakyProxy, Harness) {
    let fake = Arc::new(
        DropboxFake::start(DropboxFakeConfig {
            page_size: 3,
            throttle_rate: 0.05,
            seed: 7,
            ..DropboxFakeConfig::default()
        })
        .await
        .unwrap(),
    );
    let proxy = FlakyProxy::start(fake.addr(), plan).await.unwrap();
    let url = "dropbox:/Apps/Enpass?upload_threshold=70000&chunk_size=65536";
    let base = format!("{}/2", proxy.url().trim_end_matches('/'));
    let make = {
        let (fake, base) = (fake.clone(), base.clone());
        move || Arc::new(raw_at(&fake, &base, url).retrying()) as Arc<dyn Storage>
    };
    let h = Harness::new(make(), p("scratch"))
        .with_clients(move || {
            let s = make();
            async move { Ok(s) }
        })
        .with_config(SuiteConfig::default());
    (fake, proxy, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_behind_the_flaky_proxy_with_throttling() {
    // Every fault but truncated answers (a download cut mid-body is a Transient error
    // by contract, which the suite's plain reads do not retry): 5xx without
    // forwarding, resets before and after the server acted, 429, latency.
    let plan = FaultPlan {
        latency: std::time::Duration::from_millis(5),
        truncate_body: 0.0,
        ..FaultPlan::chaos(11)
    };
    let (fake, proxy, h) = behind_proxy(plan).await;
    let report = run_all(&h).await;
    println!("{report}");
    // cas_race included: its writes are unique (see the next test's docs).
    assert!(report.failures().is_empty(), "{report}");
    let st = proxy.stats();
    assert!(
        st.server_errors + st.resets_before + st.resets_after > 0,
        "{st:?}"
    );
    assert!(fake.stats().throttled > 0);
    assert_no_conflicted_copies(&fake);
}

/// The counter race under throttling only (the fake's 429s and the proxy's, with
/// latency): no update lost. Under failures that leave a write's fate unknown (5xx,
/// resets; the test above) it once ended one short (39 of 40 with
/// `FaultPlan::chaos(11)`) while every client wrote the bare count: core's
/// `RetryingStorage` takes a refused retry as landed when the file holds exactly our
/// bytes, and another client writing the same count produced them; and a client whose
/// write failed ambiguously could not tell whether it had landed, so it once counted an
/// increment twice (41). The counter now carries every increment's tag, so every write
/// is unique (as every engine commit is; `RetryingStorage`'s docs state the rule) and a
/// client looks for its tag before trying again: the test above runs the race under
/// those faults too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_race_loses_nothing_under_throttling() {
    let plan = FaultPlan {
        too_many_requests: 0.05,
        slow: 0.1,
        latency: std::time::Duration::from_millis(20),
        ..FaultPlan::none()
    };
    let (fake, proxy, h) = behind_proxy(plan).await;
    let r = run_behaviour("cas_race", &h).await;
    assert!(r.is_ok(), "{r:?}");
    assert!(proxy.stats().too_many_requests > 0);
    assert!(fake.stats().throttled > 0);
    assert_no_conflicted_copies(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_finds_the_honest_fake_truthful() {
    let fake = DropboxFake::start(DropboxFakeConfig::default())
        .await
        .unwrap();
    let s = storage(&fake, "dropbox:/Apps/Enpass");
    let r = probe(s.as_ref(), &p(".syncfabric")).await.unwrap();
    assert!(r.is_truthful(), "{}", r.summary());
    assert!(r.effective.has_truthful_cas());
    assert_eq!(
        (&r.if_match, &r.if_absent, &r.conditional_delete),
        (&Verdict::Honoured, &Verdict::Honoured, &Verdict::Honoured)
    );
    assert!(r.strong_versions && r.atomic_writes, "{}", r.summary());
    assert_no_conflicted_copies(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_that_ignores_the_rev_is_caught_by_probe_and_suite() {
    let fake = Arc::new(
        DropboxFake::start(DropboxFakeConfig::default())
            .await
            .unwrap(),
    );
    fake.set_ignore_rev(true);
    let s = storage(&fake, "dropbox:/Apps/Enpass");
    let r = probe(s.as_ref(), &p(".syncfabric")).await.unwrap();
    assert!(!r.is_truthful(), "{}", r.summary());
    assert_eq!(r.if_match, Verdict::Ignored, "{}", r.summary());
    assert_eq!(r.conditional_delete, Verdict::Ignored, "{}", r.summary());
    assert!(!r.effective.if_match && !r.effective.has_truthful_cas());

    let f2 = fake.clone();
    let h = Harness::new(s, p("scratch")).with_clients(move || {
        let s = storage(&f2, "dropbox:/Apps/Enpass");
        async move { Ok(s) }
    });
    let report = run_all(&h).await;
    let failed: Vec<&str> = report.failures().iter().map(|(n, _)| *n).collect();
    assert!(failed.contains(&"if_match_stale"), "{report}");
    assert!(failed.contains(&"honesty_probe"), "{report}");
    assert_no_conflicted_copies(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_bytes_with_a_stale_rev_are_refused() {
    // Without strict_conflict Dropbox would answer this write with success and the
    // current rev ("identical contents, nothing gets written; no conflict").
    let fake = DropboxFake::start(DropboxFakeConfig::default())
        .await
        .unwrap();
    let s = raw(&fake, "dropbox:/V");
    let f = p("vault.enpassdb");
    let v1 = s
        .write(&f, Body::from(b"one".to_vec()), Precondition::IfAbsent)
        .await
        .unwrap()
        .version
        .unwrap();
    let v2 = s
        .write(
            &f,
            Body::from(b"two".to_vec()),
            Precondition::IfMatch(v1.clone()),
        )
        .await
        .unwrap()
        .version
        .unwrap();
    assert_ne!(v1, v2);
    let r = s
        .write(&f, Body::from(b"two".to_vec()), Precondition::IfMatch(v1))
        .await;
    assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
    let r = s
        .write(&f, Body::from(b"two".to_vec()), Precondition::IfAbsent)
        .await;
    assert!(matches!(r, Err(Error::AlreadyExists { .. })), "{r:?}");
    // A made-up version that is no rev: refused without asking Dropbox.
    let before = fake.stats().requests;
    let r = s
        .write(
            &f,
            Body::from(b"three".to_vec()),
            Precondition::IfMatch(syncfabric_core::Version::new("not-a-rev")),
        )
        .await;
    assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
    assert_eq!(fake.stats().requests, before);
    assert_eq!(fake.file("/v/vault.enpassdb").unwrap(), b"two");

    // The fake itself: without strict_conflict the identical write is a no-op success
    // with the current rev; with autorename a conflict becomes a conflicted copy
    // (what our provider must never cause).
    let http = reqwest::Client::new();
    let send = |arg: serde_json::Value, body: &'static [u8]| {
        http.post(format!("{}/files/upload", fake.url()))
            .bearer_auth(fake.token())
            .header("Dropbox-API-Arg", arg.to_string())
            .body(body)
            .send()
    };
    let stale = "0123456789abcdef";
    let r = send(
        serde_json::json!({"path": "/V/vault.enpassdb", "mode": {".tag": "update", "update": stale}}),
        b"two",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let meta: serde_json::Value = r.json().await.unwrap();
    assert_eq!(meta["rev"], v2.as_str());
    assert_eq!(fake.stats().identical_noops, 1);
    let r = send(
        serde_json::json!({"path": "/V/vault.enpassdb", "mode": {".tag": "update", "update": stale}, "strict_conflict": true}),
        b"four",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(e["error_summary"]
        .as_str()
        .unwrap()
        .starts_with("path/conflict/file"));
    assert_no_conflicted_copies(&fake);
    let r = send(
        serde_json::json!({"path": "/V/vault.enpassdb", "mode": {".tag": "update", "update": stale}, "autorename": true}),
        b"five",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(fake
        .paths()
        .contains(&"/V/vault (conflicted copy).enpassdb".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_carry_the_rev_check_and_resume_after_a_lost_answer() {
    let fake = DropboxFake::start(DropboxFakeConfig::default())
        .await
        .unwrap();
    let s = raw(&fake, "dropbox:/V?upload_threshold=1000&chunk_size=3000").retrying();
    let f = p("att/big.bin");
    let one = pattern(10_000, 1);
    let e1 = s
        .write(&f, Body::from(one.clone()), Precondition::IfAbsent)
        .await
        .unwrap();
    let st = fake.stats();
    assert_eq!(
        (st.sessions_started, st.appends, st.sessions_finished),
        (1, 3, 1)
    );
    assert_eq!(fake.file("/V/att/big.bin").unwrap(), one);

    // A lost append answer: the retry meets incorrect_offset and goes on from there.
    let two = pattern(10_000, 2);
    fake.drop_next_append_answer();
    let e2 = s
        .write(
            &f,
            Body::from(two.clone()),
            Precondition::IfMatch(e1.version.clone().unwrap()),
        )
        .await
        .unwrap();
    assert_ne!(e1.version, e2.version);
    assert_eq!(fake.stats().incorrect_offsets, 1);
    assert_eq!(read_all(&s, &f).await, two);

    // finish carries the mode: a stale rev and an add over an existing file fail,
    // and the file keeps its content.
    for (pre, is_pf) in [
        (Precondition::IfMatch(e1.version.unwrap()), true),
        (Precondition::IfAbsent, false),
    ] {
        let r = s.write(&f, Body::from(pattern(10_000, 3)), pre).await;
        match (r, is_pf) {
            (Err(Error::PreconditionFailed { .. }), true) => {}
            (Err(Error::AlreadyExists { .. }), false) => {}
            (r, _) => panic!("{r:?}"),
        }
    }
    assert_eq!(fake.file("/V/att/big.bin").unwrap(), two);

    // Progress counts accepted bytes, each once, also across the lost answer.
    use syncfabric_core::progress::{Direction, Phase, ProgressHook, Transfer, Update};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let hook = ProgressHook::new(move |u: &Update<'_>| log.lock().unwrap().push((u.phase, u.done)));
    let meter = hook.meter(Transfer {
        direction: Direction::Upload,
        path: f.clone(),
        label: "attachment".into(),
    });
    meter.start(Some(10_000));
    fake.drop_next_append_answer();
    let r = meter
        .scope(s.write(&f, Body::from(pattern(10_000, 4)), Precondition::None))
        .await;
    assert!(r.is_ok(), "{r:?}");
    meter.finish();
    let seen = seen.lock().unwrap().clone();
    let advanced: Vec<u64> = seen
        .iter()
        .filter(|(p, _)| *p == Phase::Advanced)
        .map(|(_, d)| *d)
        .collect();
    assert_eq!(advanced, [3000, 6000, 9000, 10_000], "{seen:?}");
    assert_no_conflicted_copies(&fake);
}

/// A bearer that hands out `first`, then `second` once `first` was rejected.
#[derive(Debug)]
struct Rotating {
    tokens: Mutex<(String, String, u32)>,
}

#[async_trait::async_trait]
impl BearerAuth for Rotating {
    async fn bearer(&self) -> syncfabric_core::Result<SecretToken> {
        Ok(SecretToken::new(self.tokens.lock().unwrap().0.clone()))
    }
    async fn rejected(&self, _token: &SecretToken) -> syncfabric_core::Result<()> {
        let mut t = self.tokens.lock().unwrap();
        t.0 = t.1.clone();
        t.2 += 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_refreshes_the_token_once_and_never_shows_it() {
    let fake = DropboxFake::start(DropboxFakeConfig::default())
        .await
        .unwrap();
    let old = fake.token();
    fake.set_token("fresh-token-2");
    let bearer = Arc::new(Rotating {
        tokens: Mutex::new((old.clone(), "fresh-token-2".into(), 0)),
    });
    let base = fake.url();
    let mut cfg = syncfabric_dropbox::DropboxConfig::from_url(&format!(
        "dropbox:/V?api_url={base}&content_url={base}"
    ))
    .unwrap();
    cfg.retry = test_retry();
    let s = syncfabric_dropbox::DropboxStorage::new(cfg, bearer.clone()).unwrap();
    s.write(&p("a"), Body::from(b"x".to_vec()), Precondition::None)
        .await
        .unwrap();
    assert_eq!(bearer.tokens.lock().unwrap().2, 1);
    // Both tokens wrong: Unauthorized after one refresh, without the token in it.
    fake.set_token("something-else");
    let r = s.stat(&p("a")).await;
    let text = format!("{r:?} {s:?}");
    assert!(matches!(r, Err(Error::Unauthorized { .. })), "{text}");
    assert!(
        !text.contains("fresh-token-2") && !text.contains(&old),
        "{text}"
    );
    assert_eq!(fake.stats().unauthorized, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_opens_dropbox_urls_only_with_an_account() {
    let reg = Registry::new();
    syncfabric_dropbox::register(&reg);
    let info = reg.provider_of("dropbox:/Apps/Enpass").unwrap();
    assert_eq!(info.schemes, syncfabric_dropbox::SCHEMES);
    let fake = DropboxFake::start(DropboxFakeConfig::default())
        .await
        .unwrap();
    let url = format!(
        "dropbox:/Apps/Enpass?api_url={0}&content_url={0}",
        fake.url()
    );
    let r = reg.open_with(&url, &OpenOptions::default()).await;
    assert!(matches!(r, Err(Error::Unauthorized { .. })), "{r:?}");
    let bearer = Arc::new(syncfabric_core::auth::StaticBearer::new(SecretToken::new(
        fake.token(),
    )));
    let s = reg
        .open_with(&url, &OpenOptions::default().with_bearer(bearer))
        .await
        .unwrap();
    s.write(
        &p("x/y"),
        Body::from(b"hi".to_vec()),
        Precondition::IfAbsent,
    )
    .await
    .unwrap();
    assert_eq!(fake.file("/apps/enpass/x/y").unwrap(), b"hi");
    let names: Vec<String> = s
        .list(&p("x"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(names, [p("x/y").to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_does_not_match_its_content_hash_fails() {
    let fake = DropboxFake::start(DropboxFakeConfig::default())
        .await
        .unwrap();
    let s = raw(&fake, "dropbox:/V");
    let f = p("vault.enpassdb");
    let data = pattern(5 << 20, 9); // two content-hash blocks
    s.write(&f, Body::from(data.clone()), Precondition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(read_all(&s, &f).await, data);
    fake.set_corrupt_downloads(true);
    let mut d = s.read(&f).await.unwrap();
    let mut last = None;
    while let Some(c) = d.stream.next().await {
        last = Some(c);
    }
    let r = last.unwrap();
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    assert_no_conflicted_copies(&fake);
}

/// The next change of the feed, within 20 s.
async fn next_change(
    w: &mut syncfabric_core::watch::ChangeStream,
) -> syncfabric_core::watch::Change {
    tokio::time::timeout(std::time::Duration::from_secs(20), w.next())
        .await
        .expect("a change within 20 s")
        .expect("the feed goes on")
        .expect("no error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_changes_and_removals_through_longpoll() {
    use syncfabric_core::watch::Change;
    let fake = DropboxFake::start(DropboxFakeConfig::default())
        .await
        .unwrap();
    let s = raw(&fake, "dropbox:/V");
    s.create_dir(&p("w")).await.unwrap();
    let mut w = s.watch(&p("w")).await.unwrap();
    let e = s
        .write(
            &p("w/a.txt"),
            Body::from(b"1".to_vec()),
            Precondition::IfAbsent,
        )
        .await
        .unwrap();
    match next_change(&mut w).await {
        Change::Changed { path, entry } => {
            assert_eq!(path, p("w/a.txt"));
            assert_eq!(entry.unwrap().version, e.version);
        }
        c => panic!("{c:?}"),
    }
    // Elsewhere: not reported.
    s.write(
        &p("other.txt"),
        Body::from(b"x".to_vec()),
        Precondition::None,
    )
    .await
    .unwrap();
    s.delete(&p("w/a.txt"), Precondition::None).await.unwrap();
    match next_change(&mut w).await {
        Change::Removed { path } => assert_eq!(path, p("w/a.txt")),
        c => panic!("{c:?}"),
    }
    // The longpolls went without a token (the fake refuses one with 400).
    assert!(fake.stats().longpolls >= 2);
    assert_no_conflicted_copies(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_honours_the_longpoll_backoff() {
    use syncfabric_core::watch::Change;
    let fake = DropboxFake::start(DropboxFakeConfig {
        longpoll_backoff: Some(1),
        ..DropboxFakeConfig::default()
    })
    .await
    .unwrap();
    let s = raw(&fake, "dropbox:/V");
    s.create_dir(&p("w")).await.unwrap();
    let mut w = s.watch(&p("w")).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..4 {
        s.write(
            &p(&format!("w/f{i}")),
            Body::from(vec![i as u8]),
            Precondition::None,
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    while seen.len() < 4 {
        if let Change::Changed { path, .. } = next_change(&mut w).await {
            seen.insert(path.to_string());
        }
    }
    let st = fake.stats();
    assert!(st.longpolls >= 2, "{st:?}");
    assert_eq!(st.longpolls_too_early, 0, "{st:?}");
}
