//! The Nextcloud profile against the Nextcloud fake (`syncfabric_testkit::nextcloud_fake`,
//! written from Nextcloud's developer manual and the behaviour measured on Nextcloud
//! 34.0.1 in issue #14): a vault-sized file goes through chunked upload v2 and its
//! commit carries the destination's condition in the form Nextcloud evaluates.

use std::sync::Arc;
use syncfabric_conformance::{run_all, Harness};
use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
use syncfabric_testkit::nextcloud_fake::NextcloudFake;
use syncfabric_webdav::{Profile, Secret, WebDavConfig, WebDavStorage};

const USER: &str = "alice";
const PASS: &str = "app-password-1";
/// Over the 10 MiB default chunk size: two chunks (10 MiB and the rest).
const VAULT_LEN: usize = 10 * 1024 * 1024 + 700_000;

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32) as u8
        })
        .collect()
}

async fn storage(nc: &NextcloudFake, folder: &str) -> WebDavStorage {
    let cfg = WebDavConfig::new(format!("{}{folder}", nc.files_url()))
        .with_credentials(USER, Secret::new(PASS))
        .with_profile(Profile::Nextcloud);
    let mut cfg = cfg;
    cfg.create_root = true;
    WebDavStorage::connect(cfg).await.expect("connect")
}

async fn read_all(s: &dyn Storage, p: &RemotePath) -> Vec<u8> {
    let mut d = s.read(p).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = futures_util::StreamExt::next(&mut d.stream).await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

/// A body streamed from disk, as the engine uploads a database.
async fn file_body(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> Body {
    let f = dir.path().join(name);
    std::fs::write(&f, bytes).unwrap();
    Body::from_file(&f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_over_10_mib_pushes_and_pulls_through_chunked_upload() {
    let nc = NextcloudFake::start(USER, PASS).await.unwrap();
    let s = storage(&nc, "Enpass").await;
    assert!(s.capabilities().chunked_upload);
    let tmp = tempfile::tempdir().unwrap();
    let p = RemotePath::parse("vault-uuid/vault.enpassdb").unwrap();
    s.create_dir(&p.parent().unwrap()).await.unwrap();

    // First push: create-only (the engine's first upload).
    let v1 = data(1, VAULT_LEN);
    let e1 = s
        .write(&p, file_body(&tmp, "v1", &v1).await, Precondition::IfAbsent)
        .await
        .expect("create-only chunked upload");
    assert_eq!(e1.size, VAULT_LEN as u64);
    assert_eq!(
        e1.version.as_ref().map(|v| v.as_str().to_string()),
        nc.etag("Enpass/vault-uuid/vault.enpassdb"),
        "the version is the OC-Etag of the MOVE"
    );
    let st = nc.stats();
    assert_eq!(
        (st.chunks, st.chunked_commits, st.plain_puts),
        (2, 1, 0),
        "{st:?}"
    );

    // Pull: the same bytes and version.
    assert_eq!(read_all(&s, &p).await, v1);
    assert_eq!(s.stat(&p).await.unwrap().unwrap().version, e1.version);

    // Second push: conditional on the version we hold (the engine's commit).
    let v2 = data(2, VAULT_LEN + 5);
    let e2 = s
        .write(
            &p,
            file_body(&tmp, "v2", &v2).await,
            Precondition::IfMatch(e1.version.clone().unwrap()),
        )
        .await
        .expect("a commit on the current version must land");
    assert_ne!(e2.version, e1.version);
    assert_eq!(nc.file("Enpass/vault-uuid/vault.enpassdb").unwrap(), v2);
    assert_eq!(read_all(&s, &p).await, v2);

    // A stale version (another device committed meanwhile): refused, nothing changed.
    let v3 = data(3, VAULT_LEN);
    let stale = s
        .write(
            &p,
            file_body(&tmp, "v3", &v3).await,
            Precondition::IfMatch(e1.version.clone().unwrap()),
        )
        .await;
    assert!(
        matches!(stale, Err(Error::PreconditionFailed { .. })),
        "{stale:?}"
    );
    // Create-only over an existing file: refused.
    let again = s
        .write(
            &p,
            file_body(&tmp, "v3b", &v3).await,
            Precondition::IfAbsent,
        )
        .await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(nc.file("Enpass/vault-uuid/vault.enpassdb").unwrap(), v2);
    assert_eq!(s.stat(&p).await.unwrap().unwrap().version, e2.version);
    let st = nc.stats();
    assert_eq!((st.chunked_commits, st.commits_refused), (2, 2), "{st:?}");
    assert_eq!(nc.open_uploads(), 0, "refused uploads are deleted");
}

/// The fake answers the commit forms as Nextcloud does (issue #14, measured with curl
/// on Nextcloud 34.0.1): `If-Match` with the destination's tag is 412 (evaluated
/// against the upload), the tagged `If` list is evaluated against the destination, and
/// `Overwrite: F` refuses an existing destination.
#[tokio::test]
async fn the_fake_evaluates_move_conditions_as_nextcloud_does() {
    let nc = NextcloudFake::start(USER, PASS).await.unwrap();
    let http = reqwest::Client::new();
    let dest = format!("{}f.bin", nc.files_url());
    let r = http
        .put(&dest)
        .basic_auth(USER, Some(PASS))
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let tag = r.headers()["oc-etag"].to_str().unwrap().to_string();
    let big = vec![7u8; 5 * 1024 * 1024];
    // One upload per attempt: MKCOL, one chunk, then the MOVE with `headers`.
    let commit = |headers: Vec<(&'static str, String)>| {
        let (http, dest, big, base) = (http.clone(), dest.clone(), big.clone(), nc.base_url());
        async move {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let up = format!("{base}/remote.php/dav/uploads/{USER}/t-{n}/");
            let mk = http
                .request(reqwest::Method::from_bytes(b"MKCOL").unwrap(), &up)
                .basic_auth(USER, Some(PASS))
                .header("Destination", &dest)
                .send()
                .await
                .unwrap();
            assert_eq!(mk.status(), 201);
            let put = http
                .put(format!("{up}00001"))
                .basic_auth(USER, Some(PASS))
                .header("Destination", &dest)
                .body(big)
                .send()
                .await
                .unwrap();
            assert_eq!(put.status(), 201);
            let mut mv = http
                .request(
                    reqwest::Method::from_bytes(b"MOVE").unwrap(),
                    format!("{up}.file"),
                )
                .basic_auth(USER, Some(PASS))
                .header("Destination", &dest);
            for (k, v) in headers {
                mv = mv.header(k, v);
            }
            mv.send().await.unwrap().status().as_u16()
        }
    };
    // The old client's commit: If-Match with the destination's (current) tag.
    assert_eq!(commit(vec![("If-Match", tag.clone())]).await, 412);
    assert_eq!(commit(vec![("If-None-Match", "*".into())]).await, 412);
    // A stale tag in the destination's list.
    let stale = format!("<{dest}> ([\"0000\"])");
    assert_eq!(commit(vec![("If", stale)]).await, 412);
    // Create-only over an existing file.
    assert_eq!(commit(vec![("Overwrite", "F".into())]).await, 412);
    // The right form: the destination's current tag, tagged with its URL.
    let ok = format!("<{dest}> ([{tag}])");
    assert_eq!(commit(vec![("If", ok.clone())]).await, 204);
    // The tag changed with that commit: the same condition is now stale.
    assert_eq!(commit(vec![("If", ok)]).await, 412);
    assert_eq!(nc.file("f.bin").unwrap().len(), big.len());
}

/// The whole behaviour suite against the fake (files under 10 MiB: plain PUTs with
/// If-Match / If-None-Match, as Nextcloud honours them).
#[test]
fn conformance_suite_on_the_nextcloud_fake() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let nc = Arc::new(NextcloudFake::start(USER, PASS).await.unwrap());
        let s = storage(&nc, "suite").await;
        let url = format!("{}suite", nc.files_url());
        let harness = Harness::new(Arc::new(s), RemotePath::parse("scratch").unwrap())
            .with_clients(move || {
                let url = url.clone();
                let keep = nc.clone();
                async move {
                    let _ = &keep;
                    let cfg = WebDavConfig::new(url)
                        .with_credentials(USER, Secret::new(PASS))
                        .with_profile(Profile::Nextcloud);
                    Ok(Arc::new(WebDavStorage::connect(cfg).await?) as Arc<dyn Storage>)
                }
            });
        let report = run_all(&harness).await;
        println!("{report}");
        assert!(report.all_passed(), "{report}");
    });
}
