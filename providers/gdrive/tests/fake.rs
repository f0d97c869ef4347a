//! The Google Drive provider against the Drive fake beyond the per-behaviour suite:
//! the whole suite behind the flaky proxy with Drive's throttling, the honesty probe
//! on an honest fake and on one that ignores `If-Match` (as v3 does), the
//! create-if-absent emulation under a race, a file recreated by another app, a
//! stray duplicate, shortcuts, resumable uploads cut and expired, the change feed,
//! the registry.

mod common;

use common::{raw, raw_at, storage};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use syncfabric_conformance::{run_all, Harness, SuiteConfig};
use syncfabric_core::auth::{SecretToken, StaticBearer};
use syncfabric_core::probe::{probe, Verdict};
use syncfabric_core::registry::{OpenOptions, Registry};
use syncfabric_core::watch::Change;
use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
use syncfabric_testkit::flaky_proxy::{FaultPlan, FlakyProxy};
use syncfabric_testkit::gdrive_fake::{GdriveFake, GdriveFakeConfig};

const URL: &str = "gdrive:/Apps/Enpass?chunk_size=262144&poll_ms=50";

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

async fn fake(cfg: GdriveFakeConfig) -> Arc<GdriveFake> {
    Arc::new(GdriveFake::start(cfg).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_behind_the_flaky_proxy_with_throttling() {
    // Every fault but truncated answers (a download cut mid-body is a Transient error
    // by contract, which the suite's plain reads do not retry), and cut uploads.
    let plan = FaultPlan {
        latency: Duration::from_millis(5),
        truncate_body: 0.0,
        cut_upload: 0.05,
        ..FaultPlan::chaos(11)
    };
    let fake = fake(GdriveFakeConfig {
        page_size: 3,
        throttle_rate: 0.05,
        seed: 7,
        ..GdriveFakeConfig::default()
    })
    .await;
    let proxy = FlakyProxy::start(fake.addr(), plan).await.unwrap();
    let base = proxy.url().trim_end_matches('/').to_string();
    let make = {
        let (fake, base) = (fake.clone(), base.clone());
        move || Arc::new(raw_at(&fake, &base, URL).retrying()) as Arc<dyn Storage>
    };
    let h = Harness::new(make(), p("scratch"))
        .with_clients(move || {
            let s = make();
            async move { Ok(s) }
        })
        .with_config(SuiteConfig::default());
    let report = run_all(&h).await;
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    let st = proxy.stats();
    println!("proxy: {st:?}\nfake: {:?}", fake.stats());
    assert!(
        st.server_errors + st.resets_before + st.resets_after > 0,
        "{st:?}"
    );
    let fs = fake.stats();
    assert!(fs.throttled_403 > 0 && fs.throttled_429 > 0, "{fs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_finds_the_honest_fake_truthful() {
    let fake = fake(GdriveFakeConfig::default()).await;
    let s = storage(&fake, URL);
    let r = probe(s.as_ref(), &p(".syncfabric")).await.unwrap();
    assert!(r.is_truthful(), "{}", r.summary());
    assert!(r.effective.has_truthful_cas());
    assert_eq!(
        (&r.if_match, &r.if_absent, &r.conditional_delete),
        (&Verdict::Honoured, &Verdict::Honoured, &Verdict::Honoured)
    );
    assert!(r.strong_versions && r.atomic_writes, "{}", r.summary());
    assert!(fake.stats().precondition_failed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drive_that_ignores_if_match_is_caught_by_probe_and_suite() {
    let fake = fake(GdriveFakeConfig::default()).await;
    fake.set_ignore_if_match(true);
    let s = storage(&fake, URL);
    let r = probe(s.as_ref(), &p(".syncfabric")).await.unwrap();
    assert!(!r.is_truthful(), "{}", r.summary());
    assert_eq!(r.if_match, Verdict::Ignored, "{}", r.summary());
    assert_eq!(r.conditional_delete, Verdict::Ignored, "{}", r.summary());
    // Downgraded: the engine commits under a lock here.
    assert!(!r.effective.if_match && !r.effective.has_truthful_cas());

    let f2 = fake.clone();
    let h = Harness::new(s, p("scratch")).with_clients(move || {
        let s = storage(&f2, URL);
        async move { Ok(s) }
    });
    let report = run_all(&h).await;
    let failed: Vec<&str> = report.failures().iter().map(|(n, _)| *n).collect();
    assert!(failed.contains(&"if_match_stale"), "{report}");
    assert!(failed.contains(&"honesty_probe"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_racing_the_first_create_end_with_one_file() {
    let fake = fake(GdriveFakeConfig::default()).await;
    for round in 0..5 {
        let path = p(&format!("race{round}/vault.enpassdb"));
        let mut tasks = Vec::new();
        for i in 0..4u8 {
            let s = storage(&fake, URL);
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                let body = Body::from(pattern(1000 + i as usize, i));
                (i, s.write(&path, body, Precondition::IfAbsent).await)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            match r {
                Ok(_) => winners.push(i),
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => panic!("client {i}: {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let w = winners[0];
        let dir = format!("Apps/Enpass/race{round}");
        assert_eq!(
            fake.count_named(&dir, "vault.enpassdb"),
            1,
            "{:?}",
            fake.paths()
        );
        assert_eq!(fake.count_named("Apps/Enpass", &format!("race{round}")), 1);
        // Every client, new or old, reads the winner's bytes.
        let fresh = storage(&fake, URL);
        assert_eq!(
            read_all(fresh.as_ref(), &path).await,
            pattern(1000 + w as usize, w)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_recreated_by_another_app_is_found_again_by_path() {
    let fake = fake(GdriveFakeConfig::default()).await;
    let s = storage(&fake, URL);
    let f = p("v/vault.enpassdb");
    let v1 = s
        .write(&f, Body::from(b"one".to_vec()), Precondition::IfAbsent)
        .await
        .unwrap()
        .version
        .unwrap();
    let old_id = fake.id_of("Apps/Enpass/v/vault.enpassdb").unwrap();
    let new_id = fake
        .recreate("Apps/Enpass/v/vault.enpassdb", b"two!")
        .unwrap();
    assert_ne!(old_id, new_id);
    let e = s.stat(&f).await.unwrap().expect("found again by path");
    assert_eq!(e.size, 4);
    assert_ne!(e.version.as_ref(), Some(&v1));
    assert_eq!(read_all(s.as_ref(), &f).await, b"two!");
    // The old version names no file any more: a write conditioned on it is refused.
    let r = s
        .write(&f, Body::from(b"three".to_vec()), Precondition::IfMatch(v1))
        .await;
    assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
    s.write(
        &f,
        Body::from(b"four".to_vec()),
        Precondition::IfMatch(e.version.unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(fake.file("Apps/Enpass/v/vault.enpassdb").unwrap(), b"four");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_duplicate_is_never_used() {
    let fake = fake(GdriveFakeConfig::default()).await;
    let s = storage(&fake, URL);
    let f = p("vault.enpassdb");
    let v = s
        .write(
            &f,
            Body::from(b"the real one".to_vec()),
            Precondition::IfAbsent,
        )
        .await
        .unwrap()
        .version
        .unwrap();
    fake.add_duplicate("Apps/Enpass/vault.enpassdb", b"a stray copy")
        .unwrap();
    assert_eq!(fake.count_named("Apps/Enpass", "vault.enpassdb"), 2);
    for client in [s.clone(), storage(&fake, URL)] {
        assert_eq!(read_all(client.as_ref(), &f).await, b"the real one");
        let list = client.list(&RemotePath::root()).await.unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].version.as_ref(), Some(&v));
    }
    let r = s
        .write(&f, Body::from(b"x".to_vec()), Precondition::IfAbsent)
        .await;
    assert!(matches!(r, Err(Error::AlreadyExists { .. })), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shortcuts_are_followed_for_reads_and_refused_for_writes() {
    let fake = fake(GdriveFakeConfig::default()).await;
    let s = storage(&fake, URL);
    s.write(
        &p("real.bin"),
        Body::from(b"content".to_vec()),
        Precondition::None,
    )
    .await
    .unwrap();
    let id = fake.id_of("Apps/Enpass/real.bin").unwrap();
    fake.add_shortcut("Apps/Enpass/link.bin", &id).unwrap();
    let e = s.stat(&p("link.bin")).await.unwrap().unwrap();
    assert_eq!(e.size, 7);
    assert_eq!(read_all(s.as_ref(), &p("link.bin")).await, b"content");
    let r = s
        .write(
            &p("link.bin"),
            Body::from(b"x".to_vec()),
            Precondition::IfMatch(e.version.unwrap()),
        )
        .await;
    assert!(
        matches!(&r, Err(Error::Unsupported { message }) if message.contains("shortcut")),
        "{r:?}"
    );
    let r = s.delete(&p("link.bin"), Precondition::None).await;
    assert!(matches!(r, Err(Error::Unsupported { .. })), "{r:?}");
    // A shortcut whose target is gone: a clear error, and left out of listings.
    fake.add_shortcut("Apps/Enpass/dangling.bin", "1Fnothing")
        .unwrap();
    let r = s.stat(&p("dangling.bin")).await;
    assert!(
        matches!(&r, Err(Error::InvalidInput { message }) if message.contains("shortcut")),
        "{r:?}"
    );
    let names: Vec<String> = s
        .list(&RemotePath::root())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // A folder reached through a shortcut works as the folder.
    s.create_dir(&p("sub")).await.unwrap();
    s.write(
        &p("sub/a"),
        Body::from(b"in sub".to_vec()),
        Precondition::None,
    )
    .await
    .unwrap();
    let sub = fake.id_of("Apps/Enpass/sub").unwrap();
    fake.add_shortcut("Apps/Enpass/sublink", &sub).unwrap();
    assert_eq!(read_all(s.as_ref(), &p("sublink/a")).await, b"in sub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_upload_cut_twice_arrives_whole() {
    let fake = fake(GdriveFakeConfig::default()).await;
    let s = raw(&fake, URL);
    let data = pattern(5 * 256 * 1024 + 1234, 3);
    let f = p("big.bin");
    let v = s
        .write(&f, Body::from(data.clone()), Precondition::IfAbsent)
        .await
        .unwrap()
        .version
        .unwrap();
    let before = fake.stats();
    fake.cut_next_chunks(2);
    let data2 = pattern(5 * 256 * 1024 + 999, 9);
    s.write(&f, Body::from(data2.clone()), Precondition::IfMatch(v))
        .await
        .unwrap();
    let st = fake.stats();
    assert_eq!(st.cut_chunks, 2, "{st:?}");
    assert!(st.status_queries - before.status_queries >= 2, "{st:?}");
    assert_eq!(st.sessions_started - before.sessions_started, 1, "{st:?}");
    assert_eq!(fake.file("Apps/Enpass/big.bin").unwrap(), data2);
    println!(
        "cut twice: {} chunks, {} status queries",
        st.chunks - before.chunks,
        st.status_queries - before.status_queries
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_restarts_and_the_condition_still_holds() {
    let fake = fake(GdriveFakeConfig::default()).await;
    let s = raw(&fake, URL);
    let f = p("big.bin");
    let v = s
        .write(&f, Body::from(b"small".to_vec()), Precondition::IfAbsent)
        .await
        .unwrap()
        .version
        .unwrap();
    let data = pattern(4 * 256 * 1024 + 5, 1);
    fake.expire_sessions_after_chunks(2);
    let before = fake.stats();
    let e = s
        .write(
            &f,
            Body::from(data.clone()),
            Precondition::IfMatch(v.clone()),
        )
        .await
        .unwrap();
    let st = fake.stats();
    assert_eq!(st.sessions_started - before.sessions_started, 2, "{st:?}");
    assert!(st.expired_hits > before.expired_hits, "{st:?}");
    assert_eq!(fake.file("Apps/Enpass/big.bin").unwrap(), data);
    // A stale etag is refused by a multi-chunk session as by a small one.
    let r = s
        .write(
            &f,
            Body::from(pattern(3 * 256 * 1024, 2)),
            Precondition::IfMatch(v),
        )
        .await;
    assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
    // And a write that lands while a session is under way wins over it.
    let s2 = raw(&fake, URL);
    let v2 = e.version.unwrap();
    let big = pattern(8 * 256 * 1024, 4);
    let slow = {
        let s = s.clone();
        let (f, v2) = (f.clone(), v2.clone());
        tokio::spawn(async move {
            s.write(&f, Body::from(big), Precondition::IfMatch(v2))
                .await
        })
    };
    let quick = s2
        .write(&f, Body::from(b"quick".to_vec()), Precondition::IfMatch(v2))
        .await;
    let slow = slow.await.unwrap();
    assert!(quick.is_ok() != slow.is_ok(), "{quick:?} {slow:?}");
    let now = fake.file("Apps/Enpass/big.bin").unwrap();
    assert!(now == b"quick" || now.len() == 8 * 256 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_answers_are_waited_out() {
    let fake = fake(GdriveFakeConfig {
        throttle_rate: 0.3,
        seed: 3,
        ..GdriveFakeConfig::default()
    })
    .await;
    let s = storage(&fake, URL);
    for i in 0..10u8 {
        let f = p(&format!("t/{i}"));
        s.write(&f, Body::from(pattern(300_000, i)), Precondition::IfAbsent)
            .await
            .unwrap();
        assert_eq!(read_all(s.as_ref(), &f).await, pattern(300_000, i));
    }
    let st = fake.stats();
    assert!(st.throttled_403 > 0 && st.throttled_429 > 0, "{st:?}");
    println!("{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_changes_and_removals() {
    let fake = fake(GdriveFakeConfig::default()).await;
    let s = storage(&fake, URL);
    s.create_dir(&p("w")).await.unwrap();
    s.write(&p("w/old"), Body::from(b"o".to_vec()), Precondition::None)
        .await
        .unwrap();
    let mut feed = s.watch(&p("w")).await.unwrap();
    let other = storage(&fake, URL);
    other
        .write(
            &p("w/new"),
            Body::from(b"n".to_vec()),
            Precondition::IfAbsent,
        )
        .await
        .unwrap();
    other
        .write(
            &p("elsewhere"),
            Body::from(b"e".to_vec()),
            Precondition::None,
        )
        .await
        .unwrap();
    other.delete(&p("w/old"), Precondition::None).await.unwrap();
    let mut changed = false;
    let mut removed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(changed && removed) {
        let c = tokio::time::timeout_at(deadline, feed.next())
            .await
            .expect("no change reported in 10 s")
            .unwrap()
            .unwrap();
        match c {
            Change::Changed { path, .. } => {
                assert_eq!(path, p("w/new"));
                changed = true;
            }
            Change::Removed { path } => {
                assert_eq!(path, p("w/old"));
                removed = true;
            }
            Change::Rescan => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_shows_why_v2_v3_ignores_if_match_and_has_no_etag() {
    let fake = fake(GdriveFakeConfig::default()).await;
    let s = raw(&fake, URL);
    s.write(&p("f"), Body::from(b"one".to_vec()), Precondition::None)
        .await
        .unwrap();
    let id = fake.id_of("Apps/Enpass/f").unwrap();
    let http = reqwest::Client::new();
    let r = http
        .patch(format!(
            "{}/upload/drive/v3/files/{id}?uploadType=media",
            fake.url()
        ))
        .bearer_auth(fake.token())
        .header("If-Match", "\"stale\"")
        .body("v3 overwrote")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(fake.file("Apps/Enpass/f").unwrap(), b"v3 overwrote");
    let r = http
        .put(format!(
            "{}/upload/drive/v2/files/{id}?uploadType=media",
            fake.url()
        ))
        .bearer_auth(fake.token())
        .header("If-Match", "\"stale\"")
        .body("v2 refused")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 412);
    let r = http
        .get(format!("{}/drive/v3/files/{id}?fields=etag", fake.url()))
        .bearer_auth(fake.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .get(format!("{}/drive/v2/files/{id}", fake.url()))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_opens_gdrive_urls_as_a_logged_in_account() {
    let fake = fake(GdriveFakeConfig::default()).await;
    let reg = Registry::new();
    syncfabric_gdrive::register(&reg);
    let url = format!("gdrive:/Apps/Enpass?api_url={}", fake.url());
    let r = reg.open_with(&url, &OpenOptions::default()).await;
    assert!(matches!(r, Err(Error::Unauthorized { .. })), "{r:?}");
    let bearer = Arc::new(StaticBearer::new(SecretToken::new(fake.token())));
    let s = reg
        .open_with(&url, &OpenOptions::default().with_bearer(bearer))
        .await
        .unwrap();
    s.write(&p("x"), Body::from(b"y".to_vec()), Precondition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(fake.file("Apps/Enpass/x").unwrap(), b"y");
    let info = reg.provider_of("gdrive:/a").unwrap();
    assert_eq!(info.credentials.login().unwrap().name, "gdrive");
    assert!(!format!("{s:?}").contains(&fake.token()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_recreated_by_another_app_is_found_again() {
    let fake = fake(GdriveFakeConfig::default()).await;
    let s = storage(&fake, URL);
    s.write(&p("d/a"), Body::from(b"a".to_vec()), Precondition::None)
        .await
        .unwrap();
    assert_eq!(s.list(&p("d")).await.unwrap().len(), 1);
    // Another app deletes the folder (and what it holds) and makes a new one.
    let http = reqwest::Client::new();
    let old = fake.id_of("Apps/Enpass/d").unwrap();
    let r = http
        .delete(format!("{}/drive/v2/files/{old}", fake.url()))
        .bearer_auth(fake.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let other = storage(&fake, URL);
    other
        .write(&p("d/b"), Body::from(b"b".to_vec()), Precondition::IfAbsent)
        .await
        .unwrap();
    assert_ne!(fake.id_of("Apps/Enpass/d").unwrap(), old);
    // The first client's cached folder id is stale: found again, for list and write.
    let names: Vec<String> = s
        .list(&p("d"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(names, ["/d/b"], "{names:?}");
    s.write(&p("d/c"), Body::from(b"c".to_vec()), Precondition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(fake.file("Apps/Enpass/d/c").unwrap(), b"c");
}
