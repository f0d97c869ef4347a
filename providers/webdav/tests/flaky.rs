//! Through the flaky proxy (5xx, resets before and after the server acted, 429 with
//! Retry-After, latency, truncated answers), with the core retry machinery: every
//! operation completes or fails with a clean error, and the file on the server's disk
//! is always a whole version (the previous one or the new one), never a partial upload.

mod servers;

use servers::{Kind, Server, PASS, USER};
use std::net::SocketAddr;
use std::time::Duration;
use syncfabric_conformance::flaky_proxy::{FaultPlan, FlakyProxy};
use syncfabric_core::retry::{Pacer, Retrier, RetryPolicy, RetryingStorage};
use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
use syncfabric_webdav::{Secret, WebDavConfig, WebDavStorage};

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

#[test]
fn wsgidav_through_flaky_proxy() {
    run(Kind::Wsgidav, 6);
}

#[test]
fn webdav_server_through_flaky_proxy() {
    run(Kind::NodeWebdav, 7);
}
