//! Through the flaky proxy (5xx, resets before and after the server acted, 429 with
//! Retry-After, latency, truncated answers, uploads cut mid-body), with the core retry
//! machinery: every operation completes or fails with a clean error, and the file on
//! the server's disk is always a whole version (the previous one or the new one), never
//! a partial upload.

use std::net::SocketAddr;
use std::time::Duration;
use syncfabric_core::retry::{Pacer, Retrier, RetryPolicy, RetryingStorage};
use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
use syncfabric_testkit::flaky_proxy::{FaultPlan, FlakyProxy};
use syncfabric_testkit::servers::{Kind, Server, PASS, USER};
use syncfabric_webdav::{Profile, Secret, WebDavConfig, WebDavStorage};

fn data(round: u64, len: usize) -> Vec<u8> {
    let mut x = round.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn read_retrying(s: &dyn Storage, p: &RemotePath) -> Result<Vec<u8>, Error> {
    let mut last = None;
    for _ in 0..10 {
        match s.read(p).await {
            Ok(mut d) => {
                let mut out = Vec::new();
                let mut failed = None;
                while let Some(c) = futures_util::StreamExt::next(&mut d.stream).await {
                    match c {
                        Ok(c) => out.extend_from_slice(&c),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    None => return Ok(out),
                    Some(e) => {
                        assert!(
                            e.is_retryable(),
                            "a cut body must be a retryable error: {e:?}"
                        );
                        last = Some(e);
                    }
                }
            }
            Err(e) if e.is_retryable() => last = Some(e),
            Err(e) => return Err(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.unwrap_or_else(|| Error::transient("no attempt")))
}

fn run(kind: Kind, seed: u64) {
    let Some(server) = Server::start(kind) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let target: SocketAddr = ([127, 0, 0, 1], server.port).into();
        let proxy = FlakyProxy::start(
            target,
            FaultPlan {
                grace_requests: 2,
                // Uploads cut mid-body too: the file must stay whole through them.
                cut_upload: 0.05,
                ..FaultPlan::chaos(seed)
            },
        )
        .await
        .unwrap();
        server.scratch("flaky");
        let url = format!("{}flaky/", proxy.url());
        let cfg = WebDavConfig::new(url).with_credentials(USER, Secret::new(PASS));
        // Probe the profile straight at the server (the proxy may fail the OPTIONS).
        // The direct client (no proxy) still retries: a server may still be finishing
        // an upload whose client connection the proxy cut, and a read that races it
        // can end early (seen on lighttpd), which is a Transient error by contract.
        let direct = RetryingStorage::new(
            WebDavStorage::connect(
                WebDavConfig::new(server.scratch("flaky"))
                    .with_credentials(USER, Secret::new(PASS)),
            )
            .await
            .unwrap(),
            Retrier::new(RetryPolicy::default(), Pacer::new()),
        );
        let dav = WebDavStorage::new(cfg.with_profile(direct.inner().profile())).unwrap();
        let policy = RetryPolicy {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
            max_attempts: 12,
            max_total: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        let s = RetryingStorage::new(dav, Retrier::new(policy, Pacer::new()));
        let p = RemotePath::parse("dir/file.bin").unwrap();
        let on_disk = server.data.join("flaky/dir/file.bin");
        let tmpdir = tempfile::tempdir().unwrap();
        let mut current: Option<Vec<u8>> = None;
        let (mut ok, mut failed) = (0, 0);
        for round in 0..30u64 {
            let len = [0usize, 10, 70_000, 1 << 20, 3 << 20][(round % 5) as usize];
            let new = data(round, len);
            let body = if len > 100_000 {
                let f = tmpdir.path().join(format!("b{round}"));
                std::fs::write(&f, &new).unwrap();
                Body::from_file(&f).await.unwrap()
            } else {
                Body::from(new.clone())
            };
            // Conditions on two rounds of three: sent as headers where the server checks
            // them, checked by the provider elsewhere (one client: they must hold).
            let pre = if round % 3 == 0 {
                Precondition::None
            } else {
                match direct.stat(&p).await.unwrap() {
                    Some(e) => Precondition::IfMatch(e.version.unwrap()),
                    None => Precondition::IfAbsent,
                }
            };
            match s.write(&p, body, pre.clone()).await {
                Ok(e) => {
                    ok += 1;
                    assert_eq!(e.size, len as u64);
                    current = Some(new.clone());
                }
                Err(e) => {
                    failed += 1;
                    // A clean, typed error. A precondition failure is acceptable only
                    // when our own write landed and its answer was lost (the retry then
                    // meets our new version; the read-back through the proxy may fail).
                    let landed = std::fs::read(&on_disk).ok().as_deref() == Some(&new[..]);
                    let conflict = matches!(
                        e,
                        Error::PreconditionFailed { .. } | Error::AlreadyExists { .. }
                    );
                    assert!(
                        e.is_retryable() || (conflict && landed),
                        "{}: round {round} failed with {e:?} ({pre:?})",
                        kind.name()
                    );
                }
            }
            // The server's file is a whole version: the one before or the new one.
            let disk = std::fs::read(&on_disk).ok();
            let whole = disk == current || disk.as_deref() == Some(&new[..]);
            assert!(
                whole,
                "{}: round {round}: a partial or foreign file is current ({:?} bytes)",
                kind.name(),
                disk.map(|d| d.len())
            );
            if let Some(d) = disk {
                current = Some(d);
            }
            // And reads through the proxy return it exactly (or fail cleanly).
            if let Ok(back) = read_retrying(&s, &p).await {
                assert_eq!(
                    Some(back),
                    current,
                    "{}: round {round}: read differs",
                    kind.name()
                );
            }
        }
        let st = proxy.stats();
        println!(
            "{}: {ok} writes ok, {failed} failed cleanly; proxy {st:?}",
            kind.name()
        );
        assert!(
            st.server_errors
                + st.resets_before
                + st.resets_after
                + st.truncated
                + st.too_many_requests
                + st.cut_uploads
                > 5,
            "{st:?}"
        );
        assert!(
            ok > 10,
            "{}: too few writes got through ({ok})",
            kind.name()
        );
        // No temporary upload left behind.
        let names: Vec<_> = std::fs::read_dir(server.data.join("flaky/dir"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{}: {names:?}", kind.name());
    });
}

#[test]
fn apache_through_flaky_proxy() {
    run(Kind::Apache, 1);
}

#[test]
fn nginx_through_flaky_proxy() {
    run(Kind::Nginx, 2);
}

#[test]
fn rclone_through_flaky_proxy() {
    run(Kind::Rclone, 3);
}

#[test]
fn lighttpd_through_flaky_proxy() {
    run(Kind::Lighttpd, 4);
}

#[test]
fn sabredav_through_flaky_proxy() {
    run(Kind::Sabre, 5);
}

/// Every `PUT` through the proxy is cut after half its body (the server sees the
/// upload end early, as when a device dies mid-upload). Writes with each kind of
/// condition, through the profile the server is probed as and through `Generic` (an
/// unknown server), must fail and leave the file on the server's disk exactly as it
/// was, and leave no temporary upload behind. `temp_uploads` forces the provider's
/// choice (`None`: the profile's).
///
/// Returns the number of cut writes that left the file other than it was: 0 is the
/// only acceptable answer, except in [`rclone_writes_a_cut_put_in_place`].
fn cut_uploads(kind: Kind, temp_uploads: Option<bool>) -> Option<usize> {
    let server = Server::start(kind)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Some(rt.block_on(async {
        let target: SocketAddr = ([127, 0, 0, 1], server.port).into();
        let plan = FaultPlan {
            cut_upload: 1.0,
            ..FaultPlan::none()
        };
        let proxy = FlakyProxy::start(target, plan).await.unwrap();
        let old = data(1, 200_000);
        let new = data(2, 200_000);
        let mut damaged = 0;
        let root = server.scratch("cut");
        let probed = WebDavStorage::connect(
            WebDavConfig::new(&root).with_credentials(USER, Secret::new(PASS)),
        )
        .await
        .unwrap()
        .profile();
        for profile in [probed, Profile::Generic] {
            // One folder per profile, made through the provider (rclone does not see a
            // folder made on its disk behind its back at once).
            let folder = profile.name();
            let direct = WebDavStorage::connect(
                WebDavConfig::new(&root)
                    .with_credentials(USER, Secret::new(PASS))
                    .with_profile(profile),
            )
            .await
            .unwrap();
            direct
                .create_dir(&RemotePath::parse(folder).unwrap())
                .await
                .unwrap();
            let direct = WebDavStorage::connect(
                WebDavConfig::new(format!("{root}{folder}/"))
                    .with_credentials(USER, Secret::new(PASS))
                    .with_profile(profile),
            )
            .await
            .unwrap();
            let mut cfg = WebDavConfig::new(format!("{}cut/{folder}/", proxy.url()))
                .with_credentials(USER, Secret::new(PASS))
                .with_profile(profile);
            cfg.temp_uploads = temp_uploads;
            // No retries: one request, one cut.
            let cut = WebDavStorage::new(cfg).unwrap();
            let p = RemotePath::parse("vault.enpassdb").unwrap();
            let on_disk = server.data.join("cut").join(folder).join("vault.enpassdb");
            let e = direct
                .write(&p, Body::from(old.clone()), Precondition::None)
                .await
                .unwrap();
            let v = e.version.unwrap();
            let tmpdir = tempfile::tempdir().unwrap();
            let file = tmpdir.path().join("new");
            std::fs::write(&file, &new).unwrap();
            let bodies = [
                Body::from(new.clone()),
                Body::from_file(&file).await.unwrap(),
            ];
            for (i, body) in bodies.into_iter().enumerate() {
                for pre in [Precondition::None, Precondition::IfMatch(v.clone())] {
                    let r = cut.write(&p, body.clone(), pre.clone()).await;
                    assert!(
                        r.is_err(),
                        "{} ({}): a cut upload succeeded: {r:?}",
                        kind.name(),
                        profile.name()
                    );
                    // The server may still be handling the cut request.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let disk = std::fs::read(&on_disk).ok();
                    if disk.as_deref() != Some(&old[..]) {
                        damaged += 1;
                        println!(
                            "{} ({}, body {i}, {pre:?}): the file holds {:?} bytes after a cut upload",
                            kind.name(),
                            profile.name(),
                            disk.as_ref().map(|d| d.len())
                        );
                        // Put it back for the next case.
                        direct
                            .write(&p, Body::from(old.clone()), Precondition::None)
                            .await
                            .unwrap();
                    }
                }
            }
            // (`.sabredav` is SabreDAV's own property store.)
            let names: Vec<_> = std::fs::read_dir(server.data.join("cut").join(folder))
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| n != ".sabredav")
                .collect();
            assert_eq!(
                names.len(),
                1,
                "{} ({}): temporary uploads left behind: {names:?}",
                kind.name(),
                profile.name()
            );
        }
        let st = proxy.stats();
        assert!(st.cut_uploads >= 4, "{st:?}");
        println!(
            "{}: {damaged} damaged files after {} cut uploads (temp uploads {temp_uploads:?})",
            kind.name(),
            st.cut_uploads
        );
        damaged
    }))
}

macro_rules! cut_upload_tests {
    ($($name:ident => $kind:expr),* $(,)?) => {
        $(#[test]
        fn $name() {
            if let Some(damaged) = cut_uploads($kind, None) {
                assert_eq!(damaged, 0, "{}: a cut upload damaged the file", $kind.name());
            }
        })*
    };
}

cut_upload_tests! {
    apache_cut_upload_keeps_the_old_file => Kind::Apache,
    nginx_cut_upload_keeps_the_old_file => Kind::Nginx,
    lighttpd_cut_upload_keeps_the_old_file => Kind::Lighttpd,
    rclone_cut_upload_keeps_the_old_file => Kind::Rclone,
    sabredav_cut_upload_keeps_the_old_file => Kind::Sabre,
    wsgidav_cut_upload_keeps_the_old_file => Kind::Wsgidav,
    webdav_server_cut_upload_keeps_the_old_file => Kind::NodeWebdav,
}

/// What the temporary upload is for: with it switched off, rclone (which writes a PUT
/// in place) is left with a truncated file by a cut upload. This keeps the test above
/// honest: it can see the damage it guards against.
#[test]
fn rclone_writes_a_cut_put_in_place() {
    if let Some(damaged) = cut_uploads(Kind::Rclone, Some(false)) {
        assert!(damaged > 0, "rclone kept the old file without temp uploads");
    }
}

#[test]
fn wsgidav_through_flaky_proxy() {
    run(Kind::Wsgidav, 6);
}

#[test]
fn webdav_server_through_flaky_proxy() {
    run(Kind::NodeWebdav, 7);
}
