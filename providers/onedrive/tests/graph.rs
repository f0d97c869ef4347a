//! Behaviours of the OneDrive provider against the Graph fake beyond the conformance
//! suite: upload sessions (fragment sizes, a cut fragment, an expired session, a write
//! landing mid-session), throttling, 401 and token refresh, Graph errors, delta watch,
//! late visibility, SharePoint and the app folder, the registry.

mod common;

use common::{raw, storage};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use syncfabric_core::auth::{BearerAuth, SecretToken, StaticBearer};
use syncfabric_core::registry::{OpenOptions, Registry};
use syncfabric_core::watch::Change;
use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
use syncfabric_testkit::graph_fake::{
    FakeConfig, GraphFake, ThrottlePlan, FRAGMENT_UNIT, ME_DRIVE, SP_DRIVE,
};

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

async fn read_all(s: &dyn Storage, path: &RemotePath) -> Vec<u8> {
    let mut d = s.read(path).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = d.stream.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn file_body(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> std::path::PathBuf {
    let f = dir.path().join(name);
    std::fs::write(&f, data).unwrap();
    f
}

/// Fragments of one session: contiguous, every one but the last exactly
/// `fragment_size`, all multiples of 320 KiB but the last, summing to the size.
fn check_fragments(fake: &GraphFake, size: u64, fragment_size: u64) -> usize {
    let st = fake.stats();
    assert_eq!(st.bad_fragment_sizes, 0);
    let sess = &st.fragments.last().expect("a fragment").session;
    let frags: Vec<_> = st.fragments.iter().filter(|f| &f.session == sess).collect();
    let mut next = 0;
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(f.start, next, "fragment {i} starts at {}", f.start);
        assert_eq!(f.total, size);
        if i + 1 < frags.len() {
            assert_eq!(f.len, fragment_size);
            assert_eq!(f.len % FRAGMENT_UNIT, 0);
        }
        next += f.len;
    }
    assert_eq!(next, size);
    frags.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_go_through_a_session_in_320k_multiples() {
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let s = storage(&fake, "onedrive:/Apps/Enpass");
    let tmp = tempfile::tempdir().unwrap();
    let data = pattern(10_000_000, 1);
    let f = file_body(&tmp, "ten.bin", &data);
    let e = s
        .write(
            &p("v/ten.bin"),
            Body::from_file(&f).await.unwrap(),
            Precondition::IfAbsent,
        )
        .await
        .unwrap();
    assert_eq!(e.size, 10_000_000);
    let st = fake.stats();
    assert_eq!(
        (
            st.sessions_created,
            st.sessions_committed,
            st.simple_uploads
        ),
        (1, 1, 0)
    );
    // 10,000,000 = 0 full 10 MiB fragments + the rest: default 32 × 320 KiB.
    let n = check_fragments(&fake, 10_000_000, 32 * FRAGMENT_UNIT);
    assert_eq!(n, 1);
    assert_eq!(
        fake.file_content(ME_DRIVE, "Apps/Enpass/v/ten.bin")
            .unwrap(),
        data
    );

    // The same through 640 KiB fragments, replacing it with IfMatch.
    let small = raw(&fake, "onedrive:/Apps/Enpass?fragment_kib=640").retrying();
    let data2 = pattern(10_000_000, 2);
    let f2 = file_body(&tmp, "ten2.bin", &data2);
    let e2 = small
        .write(
            &p("v/ten.bin"),
            Body::from_file(&f2).await.unwrap(),
            Precondition::IfMatch(e.version.clone().unwrap()),
        )
        .await
        .unwrap();
    assert_ne!(e2.version, e.version);
    let n = check_fragments(&fake, 10_000_000, 2 * FRAGMENT_UNIT);
    assert_eq!(n, 10_000_000usize.div_ceil(655_360));
    assert_eq!(read_all(s.as_ref(), &p("v/ten.bin")).await, data2);
    // A stale IfMatch is refused before any byte goes up.
    let before = fake.stats().fragments.len();
    let r = small
        .write(
            &p("v/ten.bin"),
            Body::from_file(&f).await.unwrap(),
            Precondition::IfMatch(e.version.unwrap()),
        )
        .await;
    assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
    assert_eq!(fake.stats().fragments.len(), before);
    // IfAbsent on an existing file: AlreadyExists.
    let r = small
        .write(
            &p("v/ten.bin"),
            Body::from_file(&f).await.unwrap(),
            Precondition::IfAbsent,
        )
        .await;
    assert!(matches!(r, Err(Error::AlreadyExists { .. })), "{r:?}");
    assert_eq!(
        fake.file_content(ME_DRIVE, "Apps/Enpass/v/ten.bin")
            .unwrap(),
        data2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_bad_fragments() {
    // The fake's checks are real: a non-final fragment that is not a multiple of
    // 320 KiB is refused, and so is one that skips ahead (416).
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    let resp = http
        .post(format!(
            "{}/me/drive/root:/big.bin:/createUploadSession",
            fake.url()
        ))
        .bearer_auth(fake.token())
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: serde_json_shim::Value = serde_json_shim::parse(&resp.text().await.unwrap());
    let url = v.upload_url;
    let put = |range: String, body: Vec<u8>| {
        http.put(&url)
            .header("Content-Range", range)
            .body(body)
            .send()
    };
    let r = put("bytes 0-99999/1000000".into(), vec![0; 100_000])
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = put(
        format!("bytes {FRAGMENT_UNIT}-{}/1000000", 2 * FRAGMENT_UNIT - 1),
        vec![0; FRAGMENT_UNIT as usize],
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 416);
    // With a token on the upload URL: 401 (it is pre-authenticated).
    let r = http
        .put(&url)
        .bearer_auth(fake.token())
        .header(
            "Content-Range",
            format!("bytes 0-{}/1000000", FRAGMENT_UNIT - 1),
        )
        .body(vec![0; FRAGMENT_UNIT as usize])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = put(
        format!("bytes 0-{}/1000000", FRAGMENT_UNIT - 1),
        vec![0; FRAGMENT_UNIT as usize],
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let st = fake.stats();
    assert_eq!(
        (st.bad_fragment_sizes, st.out_of_order, st.fragments.len()),
        (1, 1, 1)
    );
}

/// A minimal reader of the createUploadSession answer (no serde_json dev-dependency).
mod serde_json_shim {
    pub struct Value {
        pub upload_url: String,
    }
    pub fn parse(s: &str) -> Value {
        let i = s.find("\"uploadUrl\":\"").expect("uploadUrl") + 13;
        let j = s[i..].find('"').unwrap() + i;
        Value {
            upload_url: s[i..j].to_string(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_fragment_resumes_and_the_result_is_whole() {
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let s = raw(&fake, "onedrive:/E?fragment_kib=1280").retrying();
    let tmp = tempfile::tempdir().unwrap();
    let old = pattern(5_000_000, 3);
    let new = pattern(6_000_000, 4);
    let v1 = s
        .write(
            &p("db"),
            Body::from_file(file_body(&tmp, "a", &old)).await.unwrap(),
            Precondition::None,
        )
        .await
        .unwrap();
    fake.reset_stats();
    // The second and third fragments are cut half-way: the connection drops.
    fake.cut_next_fragments(2);
    let v2 = s
        .write(
            &p("db"),
            Body::from_file(file_body(&tmp, "b", &new)).await.unwrap(),
            Precondition::IfMatch(v1.version.unwrap()),
        )
        .await
        .unwrap();
    let st = fake.stats();
    assert_eq!(st.cut_fragments, 2);
    assert_eq!(
        (st.sessions_created, st.sessions_committed),
        (1, 1),
        "resumed, not restarted"
    );
    check_fragments(&fake, 6_000_000, 4 * FRAGMENT_UNIT);
    assert_eq!(fake.file_content(ME_DRIVE, "E/db").unwrap(), new);
    assert_eq!(s.stat(&p("db")).await.unwrap().unwrap().version, v2.version);
}

/// A hostile server that, asked where to resume, names a byte past the body: the
/// upload fails with `Corrupt` (it used to underflow the next fragment's length).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_offset_past_the_body_is_refused() {
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let s = raw(&fake, "onedrive:/H?fragment_kib=1280").retrying();
    let tmp = tempfile::tempdir().unwrap();
    let data = pattern(6_000_000, 9);
    fake.lie_in_session_status(u64::MAX - 1);
    let err = s
        .write(
            &p("db"),
            Body::from_file(file_body(&tmp, "h", &data)).await.unwrap(),
            Precondition::None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, syncfabric_core::Error::Corrupt { .. }),
        "{err:?}"
    );
    assert_eq!(fake.file_content(ME_DRIVE, "H/db"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_restarts_and_a_failed_one_keeps_the_old_file() {
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let s = raw(&fake, "onedrive:/E?fragment_kib=1280").retrying();
    let tmp = tempfile::tempdir().unwrap();
    let old = pattern(4_500_000, 5);
    let new = pattern(7_000_000, 6);
    s.write(
        &p("db"),
        Body::from_file(file_body(&tmp, "a", &old)).await.unwrap(),
        Precondition::None,
    )
    .await
    .unwrap();
    fake.reset_stats();
    fake.expire_next_sessions(1);
    s.write(
        &p("db"),
        Body::from_file(file_body(&tmp, "b", &new)).await.unwrap(),
        Precondition::None,
    )
    .await
    .unwrap();
    let st = fake.stats();
    assert_eq!((st.sessions_created, st.sessions_committed), (2, 1));
    assert_eq!(fake.file_content(ME_DRIVE, "E/db").unwrap(), new);

    // A session that keeps expiring fails; the current version is untouched, and so
    // is it while a session is under way.
    fake.expire_next_sessions(100);
    let r = s
        .write(
            &p("db"),
            Body::from_file(file_body(&tmp, "c", &old)).await.unwrap(),
            Precondition::None,
        )
        .await;
    assert!(r.is_err());
    fake.expire_next_sessions(0);
    assert_eq!(fake.file_content(ME_DRIVE, "E/db").unwrap(), new);
    // A body file that shrinks is refused before a session is made.
    let shrunk = file_body(&tmp, "d", &old[..10]);
    let r = s
        .write(
            &p("db"),
            Body::File {
                path: shrunk,
                len: 5_000_000,
            },
            Precondition::None,
        )
        .await;
    assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
    assert_eq!(fake.file_content(ME_DRIVE, "E/db").unwrap(), new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_landing_mid_session_is_not_overwritten() {
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let s = raw(&fake, "onedrive:/E?fragment_kib=1280").retrying();
    let tmp = tempfile::tempdir().unwrap();
    let v1 = s
        .write(&p("db"), Body::from(pattern(100, 1)), Precondition::None)
        .await
        .unwrap();
    // Another device commits after our first fragment.
    fake.write_during_next_session(1, ME_DRIVE, "E/db", b"the other device's commit");
    let r = s
        .write(
            &p("db"),
            Body::from_file(file_body(&tmp, "b", &pattern(6_000_000, 2)))
                .await
                .unwrap(),
            Precondition::IfMatch(v1.version.unwrap()),
        )
        .await;
    assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
    assert_eq!(
        fake.file_content(ME_DRIVE, "E/db").unwrap(),
        b"the other device's commit"
    );
    assert_eq!(fake.stats().sessions_cancelled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_with_and_without_retry_after_is_survived() {
    let fake = GraphFake::start(FakeConfig {
        throttle: ThrottlePlan::rate(0.3, 11),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let s = storage(&fake, "onedrive:/T");
    let tmp = tempfile::tempdir().unwrap();
    let big = pattern(6_000_000, 9);
    for i in 0..8u8 {
        let data = vec![i; 1000];
        s.write(
            &p(&format!("f{i}")),
            Body::from(data.clone()),
            Precondition::None,
        )
        .await
        .unwrap();
        assert_eq!(read_all(s.as_ref(), &p(&format!("f{i}"))).await, data);
    }
    s.write(
        &p("big"),
        Body::from_file(file_body(&tmp, "big", &big)).await.unwrap(),
        Precondition::None,
    )
    .await
    .unwrap();
    assert_eq!(fake.file_content(ME_DRIVE, "T/big").unwrap(), big);
    assert_eq!(s.list(&p("")).await.unwrap().len(), 9);
    let st = fake.stats();
    eprintln!("{st:?}");
    assert!(st.throttled_429_with_retry_after > 0, "{st:?}");
    assert!(st.throttled_429_without > 0, "{st:?}");
    assert!(
        st.throttled_503_with_retry_after + st.throttled_503_without > 0,
        "{st:?}"
    );
}

/// A bearer that hands out `current` and, when told a token was rejected, switches to
/// `next` (as an OAuth refresh would).
#[derive(Debug)]
struct Refreshing {
    current: Mutex<String>,
    next: Mutex<Option<String>>,
    rejected: Mutex<u32>,
}

#[async_trait::async_trait]
impl BearerAuth for Refreshing {
    async fn bearer(&self) -> syncfabric_core::Result<SecretToken> {
        Ok(SecretToken::new(self.current.lock().unwrap().clone()))
    }
    async fn rejected(&self, token: &SecretToken) -> syncfabric_core::Result<()> {
        *self.rejected.lock().unwrap() += 1;
        let mut cur = self.current.lock().unwrap();
        assert_eq!(token.expose(), cur.as_str());
        match self.next.lock().unwrap().take() {
            Some(n) => {
                *cur = n;
                Ok(())
            }
            None => Err(Error::Unauthorized {
                message: "refresh token revoked".into(),
            }),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_refreshes_once_then_is_unauthorized() {
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let bearer = Arc::new(Refreshing {
        current: Mutex::new(fake.token()),
        next: Mutex::new(None),
        rejected: Mutex::new(0),
    });
    let cfg = syncfabric_onedrive::OneDriveConfig::from_url(&format!(
        "onedrive:/A?graph_url={}",
        fake.url()
    ))
    .unwrap();
    let s = syncfabric_onedrive::OneDriveStorage::new(cfg, bearer.clone()).unwrap();
    s.write(&p("x"), Body::from(b"1".to_vec()), Precondition::None)
        .await
        .unwrap();
    // The access token expires; the refresh gives the new one.
    fake.rotate_token("second-token");
    *bearer.next.lock().unwrap() = Some("second-token".into());
    assert!(s.stat(&p("x")).await.unwrap().is_some());
    assert_eq!(*bearer.rejected.lock().unwrap(), 1);
    // Revoked: no new token; Unauthorized, and the token is in no message.
    fake.rotate_token("third-token");
    let e = s.stat(&p("x")).await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
    let shown = format!("{e} {e:?} {s:?}");
    assert!(
        !shown.contains("second-token") && !shown.contains("third-token"),
        "{shown}"
    );
    // A fixed token that the server refuses: Unauthorized after one try.
    let cfg = syncfabric_onedrive::OneDriveConfig::from_url(&format!(
        "onedrive:/A?graph_url={}",
        fake.url()
    ))
    .unwrap();
    let stale = Arc::new(StaticBearer::new(SecretToken::new("second-token")));
    let fixed = syncfabric_onedrive::OneDriveStorage::new(cfg, stale).unwrap();
    let before = fake.stats().unauthorized;
    let e = fixed.stat(&p("x")).await.unwrap_err();
    assert_eq!(
        fake.stats().unauthorized - before,
        1,
        "StaticBearer cannot refresh: one try"
    );
    assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_errors_map_to_kinds() {
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let s = raw(&fake, "onedrive:/G");
    assert!(matches!(
        s.list(&p("missing")).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.read(&p("missing")).await,
        Err(Error::NotFound { .. })
    ));
    assert!(s.stat(&p("missing")).await.unwrap().is_none());
    s.write(&p("d/f"), Body::from(b"x".to_vec()), Precondition::None)
        .await
        .unwrap();
    // A file where a folder must be.
    let r = s
        .write(&p("d/f/g"), Body::from(b"y".to_vec()), Precondition::None)
        .await;
    assert!(r.is_err());
    // A delete with a stale version.
    let v = s.stat(&p("d/f")).await.unwrap().unwrap().version.unwrap();
    s.write(&p("d/f"), Body::from(b"z".to_vec()), Precondition::None)
        .await
        .unwrap();
    assert!(matches!(
        s.delete(&p("d/f"), Precondition::IfMatch(v)).await,
        Err(Error::PreconditionFailed { .. })
    ));
    // The fake answers throttling to everything: RateLimited with the wait it asked.
    fake.set_throttle(ThrottlePlan {
        rate: 1.0,
        share_503: 0.0,
        with_retry_after: 1.0,
        retry_after_secs: 7,
        seed: 1,
    });
    match s.stat(&p("d/f")).await {
        Err(Error::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_feeds_watch() {
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let a = raw(&fake, "onedrive:/W");
    let b = storage(&fake, "onedrive:/W");
    a.create_dir(&p("vault")).await.unwrap();
    b.write(
        &p("vault/old.txt"),
        Body::from(b"o".to_vec()),
        Precondition::None,
    )
    .await
    .unwrap();
    let mut feed = a.watch(&p("vault")).await.unwrap();
    b.write(
        &p("vault/new.txt"),
        Body::from(b"n".to_vec()),
        Precondition::None,
    )
    .await
    .unwrap();
    b.write(
        &p("elsewhere.txt"),
        Body::from(b"e".to_vec()),
        Precondition::None,
    )
    .await
    .unwrap();
    b.delete(&p("vault/old.txt"), Precondition::None)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let c = tokio::time::timeout(Duration::from_secs(30), feed.next())
            .await
            .expect("a change within 30 s")
            .unwrap()
            .unwrap();
        seen.push(c);
    }
    assert!(seen.iter().any(|c| matches!(c, Change::Changed { path, entry: Some(e) } if *path == p("vault/new.txt") && e.size == 1)), "{seen:?}");
    assert!(
        seen.iter()
            .any(|c| matches!(c, Change::Removed { path } if *path == p("vault/old.txt"))),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|c| c.path() == Some(&p("elsewhere.txt"))));
    // An expired delta token: Rescan, and the feed goes on.
    fake.expire_delta_tokens();
    let c = tokio::time::timeout(Duration::from_secs(30), feed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(c, Change::Rescan);
    b.write(
        &p("vault/after.txt"),
        Body::from(b"a".to_vec()),
        Precondition::None,
    )
    .await
    .unwrap();
    let c = tokio::time::timeout(Duration::from_secs(30), feed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(c.path(), Some(&p("vault/after.txt")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_visibility_in_listings_but_not_in_stat() {
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let s = raw(&fake, "onedrive:/L");
    s.create_dir(&p("")).await.unwrap();
    fake.set_lag(Duration::from_secs(3600));
    s.write(&p("f"), Body::from(b"x".to_vec()), Precondition::None)
        .await
        .unwrap();
    // The write is acknowledged and readable by path, but listings do not show it yet.
    assert!(s.stat(&p("f")).await.unwrap().is_some());
    assert!(s.list(&p("")).await.unwrap().is_empty());
    assert!(!s.capabilities().read_after_write);
    fake.set_lag(Duration::ZERO);
    assert_eq!(s.list(&p("")).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharepoint_and_app_folder_and_registry() {
    let fake = GraphFake::start(FakeConfig {
        page_size: 3,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let sp = raw(
        &fake,
        "sharepoint://contoso.sharepoint.com/sites/Team/documents/Enpass",
    );
    for i in 0..7 {
        sp.write(
            &p(&format!("f{i}")),
            Body::from(vec![i as u8]),
            Precondition::IfAbsent,
        )
        .await
        .unwrap();
    }
    // Paged listing (3 per page).
    assert_eq!(sp.list(&p("")).await.unwrap().len(), 7);
    assert_eq!(fake.file_content(SP_DRIVE, "Enpass/f3").unwrap(), vec![3]);
    let bad = raw(
        &fake,
        "sharepoint://contoso.sharepoint.com/sites/Team/Nope/x",
    );
    assert!(matches!(
        bad.stat(&p("a")).await,
        Err(Error::InvalidInput { .. })
    ));

    let app = raw(&fake, "onedrive:approot/vaults");
    app.write(&p("v.json"), Body::from(b"{}".to_vec()), Precondition::None)
        .await
        .unwrap();
    assert_eq!(
        fake.file_content(ME_DRIVE, "Apps/syncfabric-test/vaults/v.json")
            .unwrap(),
        b"{}"
    );

    let reg = Registry::new();
    syncfabric_onedrive::register(&reg);
    let url = format!("onedrive:/R?graph_url={}", fake.url());
    match reg.open(&url).await {
        Err(Error::Unauthorized { message }) => {
            assert!(
                message.contains("no logged-in onedrive account"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let opts = OpenOptions::default()
        .with_bearer(Arc::new(StaticBearer::new(SecretToken::new(fake.token()))));
    let s = reg.open_with(&url, &opts).await.unwrap();
    s.write(&p("x"), Body::from(b"r".to_vec()), Precondition::None)
        .await
        .unwrap();
    assert_eq!(fake.file_content(ME_DRIVE, "R/x").unwrap(), b"r");
    assert!(reg
        .open_with("onedrive:/R?graph_url=http://example.com/v1.0", &opts)
        .await
        .is_err());
    let s2 = reg
        .open_with(
            &format!(
                "sharepoint://contoso.sharepoint.com/sites/Team/Documents?graph_url={}",
                fake.url()
            ),
            &opts,
        )
        .await
        .unwrap();
    assert!(s2
        .describe()
        .starts_with("sharepoint://contoso.sharepoint.com/sites/Team/Documents"));
}

/// An upload session reports its progress as the fragments the session accepted: the
/// bar moves during the upload, a cut fragment resumed is not counted twice, and the
/// count ends at the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_uploads_report_progress_by_accepted_fragments() {
    use syncfabric_core::progress::{Direction, Phase, ProgressHook, Transfer, Update};
    let fake = GraphFake::start(FakeConfig::default()).await.unwrap();
    let s = raw(&fake, "onedrive:/P?fragment_kib=1280").retrying();
    let tmp = tempfile::tempdir().unwrap();
    let data = pattern(6_000_000, 9);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let hook = ProgressHook::new(move |u: &Update<'_>| log.lock().unwrap().push((u.phase, u.done)));
    let meter = hook.meter(Transfer {
        direction: Direction::Upload,
        path: p("db"),
        label: "database".into(),
    });
    meter.start(Some(data.len() as u64));
    fake.cut_next_fragments(1);
    let body = Body::from_file(file_body(&tmp, "p", &data)).await.unwrap();
    meter
        .scope(s.write(&p("db"), body, Precondition::None))
        .await
        .unwrap();
    meter.finish();
    let seen = seen.lock().unwrap().clone();
    let advanced: Vec<u64> = seen
        .iter()
        .filter(|(ph, _)| *ph == Phase::Advanced)
        .map(|(_, d)| *d)
        .collect();
    assert!(advanced.len() >= 3, "progress during the upload: {seen:?}");
    assert!(advanced.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(*advanced.last().unwrap() <= data.len() as u64, "{seen:?}");
    assert!(
        !seen.iter().any(|(ph, _)| *ph == Phase::Restarted),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&(Phase::Finished, data.len() as u64)));
    assert_eq!(fake.file_content(ME_DRIVE, "P/db").unwrap(), data);
}
