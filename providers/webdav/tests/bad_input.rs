//! Bad answers from a server, played by a tiny fake HTTP responder on 127.0.0.1:
//! malformed XML, an entity bomb, a huge PROPFIND answer, hrefs outside the root or on
//! another host, bodies that end early, odd statuses. Each must be a clear error, no
//! panic, and nothing written outside the test's own folder.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
use syncfabric_webdav::{Profile, Secret, WebDavConfig, WebDavStorage};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// An answer: raw bytes written after the request is read; the connection is closed
/// afterwards (so a short body is visible to the client).
type Answer = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

/// Starts a responder that answers every request with `answer(request head)`; records
/// the request lines it saw.
async fn responder(answer: Answer) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                continue;
            };
            let answer = answer.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(sock);
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body).await;
                let first = head.lines().next().unwrap_or("").to_string();
                seen.lock().unwrap().push(first.clone());
                let out = answer(&head);
                let mut sock = r.into_inner();
                let _ = sock.write_all(&out).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, seen)
}

fn http(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn multistatus(body: &str) -> Vec<u8> {
    http(
        "207 Multi-Status",
        "Content-Type: application/xml\r\n",
        body.as_bytes(),
    )
}

async fn storage(addr: SocketAddr) -> WebDavStorage {
    let mut cfg = WebDavConfig::new(format!("http://{addr}/dav/root/"))
        .with_credentials("u", Secret::new("pw"))
        .with_profile(Profile::Generic);
    cfg.max_response_bytes = 1024 * 1024;
    cfg.read_timeout = Duration::from_secs(5);
    WebDavStorage::new(cfg).unwrap()
}

async fn corrupt_on_list(xml: String) -> Error {
    let (addr, _) = responder(Arc::new(move |_m: &str| multistatus(&xml))).await;
    let s = storage(addr).await;
    let e = s.list(&RemotePath::root()).await.unwrap_err();
    let e2 = s.stat(&RemotePath::parse("x").unwrap()).await.unwrap_err();
    assert!(matches!(e2, Error::Corrupt { .. }), "stat: {e2:?}");
    e
}

fn entry(href: &str) -> String {
    format!(
        "<D:response><D:href>{href}</D:href><D:propstat><D:prop><D:resourcetype/><D:getetag>\"1\"</D:getetag><D:getcontentlength>1</D:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
    )
}

fn listing(hrefs: &[&str]) -> String {
    let mut s = String::from("<?xml version=\"1.0\"?><D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/dav/root/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>");
    for h in hrefs {
        s.push_str(&entry(h));
    }
    s.push_str("</D:multistatus>");
    s
}

/// webdav-server 2.6 answers a PROPFIND of a file that is removed while it reads the
/// file's properties with an empty `207` (its `Propfind.js` drops a response that
/// meets `ResourceNotFound`). That is a race, not a broken server: a retryable error,
/// never `Corrupt` (which stopped the lease lock's holder in the race behaviour).
#[tokio::test]
async fn an_empty_multistatus_to_a_stat_is_retryable() {
    let empty =
        r#"<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:"></D:multistatus>"#;
    let (addr, _) = responder(Arc::new(move |_m: &str| multistatus(empty))).await;
    let s = storage(addr).await;
    let e = s
        .stat(&RemotePath::parse(".lock").unwrap())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
}

#[tokio::test]
async fn malformed_xml_is_corrupt() {
    for xml in [
        "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/dav/root/</D:href>".to_string(),
        "this is not xml".to_string(),
        "<D:multistatus xmlns:D=\"DAV:\"><D:response></D:multistatus>".to_string(),
        "\u{0}\u{1}\u{2}<<<>>>".to_string(),
    ] {
        let e = corrupt_on_list(xml).await;
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    }
}

#[tokio::test]
async fn entity_bomb_is_refused_not_expanded() {
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE bomb [\n<!ENTITY a \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\">\n");
    let mut prev = "a".to_string();
    for i in 0..10 {
        let name = format!("e{i}");
        xml.push_str(&format!(
            "<!ENTITY {name} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
        prev = name;
    }
    xml.push_str(&format!("]>\n<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/dav/root/&{prev};</D:href></D:response></D:multistatus>"));
    let e = corrupt_on_list(xml).await;
    assert!(
        matches!(e, Error::Corrupt { ref message } if message.contains("DOCTYPE")),
        "{e:?}"
    );
    // External entity (XXE) too.
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY f SYSTEM \"file:///etc/passwd\">]><D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>&f;</D:href></D:response></D:multistatus>".to_string();
    assert!(matches!(corrupt_on_list(xxe).await, Error::Corrupt { .. }));
}

#[tokio::test]
async fn huge_propfind_answer_is_capped() {
    // 2 MiB of entries against a 1 MiB cap; also a Content-Length that announces more.
    let hrefs: Vec<String> = (0..20_000)
        .map(|i| format!("/dav/root/file-{i:08}"))
        .collect();
    let refs: Vec<&str> = hrefs.iter().map(|s| s.as_str()).collect();
    let xml = listing(&refs);
    assert!(xml.len() > 2 * 1024 * 1024);
    let e = corrupt_on_list(xml).await;
    assert!(
        matches!(e, Error::Corrupt { ref message } if message.contains("cap")),
        "{e:?}"
    );
    // Same, streamed without a Content-Length (chunk after chunk, no end in sight).
    let (addr, _) = responder(Arc::new(|_m: &str| {
        let mut v = b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nConnection: close\r\n\r\n<D:multistatus xmlns:D=\"DAV:\">".to_vec();
        v.extend(std::iter::repeat_n(b' ', 3 * 1024 * 1024));
        v
    }))
    .await;
    let e = storage(addr)
        .await
        .list(&RemotePath::root())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Corrupt { ref message } if message.contains("cap")),
        "{e:?}"
    );
}

#[tokio::test]
async fn hrefs_outside_the_root_or_on_another_host_are_corrupt() {
    for bad in [
        "/dav/other/x",
        "/dav/root/../../etc/passwd",
        "/dav/root/%2e%2e/%2e%2e/etc/passwd",
        "http://evil.example/dav/root/x",
        "https://127.0.0.1:1/dav/root/x",
        "/dav/rootx",
        "/dav/root/a/b", // not a direct child
    ] {
        let xml = listing(&[bad]);
        let (addr, seen) = responder(Arc::new(move |_m: &str| multistatus(&xml))).await;
        let e = storage(addr)
            .await
            .list(&RemotePath::root())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{bad}: {e:?}");
        // Never followed: only the PROPFIND reached the server.
        assert_eq!(seen.lock().unwrap().len(), 1, "{bad}");
    }
}

#[tokio::test]
async fn bodies_that_end_early_are_errors() {
    // Announces 1000 bytes, sends 10, closes.
    let (addr, _) = responder(Arc::new(|_m: &str| {
        let mut v =
            b"HTTP/1.1 200 OK\r\nETag: \"1\"\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
                .to_vec();
        v.extend_from_slice(b"0123456789");
        v
    }))
    .await;
    let s = storage(addr).await;
    let mut d = s.read(&RemotePath::parse("f").unwrap()).await.unwrap();
    let mut got = 0;
    let mut err = None;
    while let Some(c) = futures_util::StreamExt::next(&mut d.stream).await {
        match c {
            Ok(c) => got += c.len(),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("a short body must end in an error");
    assert!(e.is_retryable(), "{e:?}");
    assert!(got <= 10);
    // A truncated PROPFIND answer too.
    let (addr, _) = responder(Arc::new(|_m: &str| {
        let mut v =
            b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n"
                .to_vec();
        v.extend_from_slice(b"<D:multistatus xmlns:D=\"DAV:\"><D:response>");
        v
    }))
    .await;
    let e = storage(addr)
        .await
        .list(&RemotePath::root())
        .await
        .unwrap_err();
    assert!(
        e.is_retryable() || matches!(e, Error::Corrupt { .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn statuses_map_to_kinds_and_hide_the_password() {
    type Case = (&'static str, &'static str, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        ("401 Unauthorized", "", |e| {
            matches!(e, Error::Unauthorized { .. })
        }),
        ("403 Forbidden", "", |e| {
            matches!(e, Error::Forbidden { .. })
        }),
        (
            "429 Too Many Requests",
            "Retry-After: 7\r\n",
            |e| matches!(e, Error::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 7),
        ),
        ("503 Service Unavailable", "Retry-After: 3\r\n", |e| {
            matches!(e, Error::RateLimited { .. })
        }),
        ("502 Bad Gateway", "", |e| {
            matches!(e, Error::Transient { .. })
        }),
        ("507 Insufficient Storage", "", |e| {
            matches!(e, Error::QuotaExceeded { .. })
        }),
        ("412 Precondition Failed", "", |e| {
            matches!(e, Error::PreconditionFailed { .. })
        }),
        (
            "302 Found",
            "Location: http://evil.example/steal\r\n",
            |e| matches!(e, Error::Corrupt { .. }),
        ),
    ];
    for (status, headers, check) in cases {
        let (addr, seen) = responder(Arc::new(move |_m: &str| {
            http(status, headers, b"<html>secret page pw</html>")
        }))
        .await;
        let s = storage(addr).await;
        let e = s
            .write(
                &RemotePath::parse("a/b").unwrap(),
                Body::from(b"hello".to_vec()),
                Precondition::IfMatch(syncfabric_core::Version::new("\"v1\"")),
            )
            .await
            .unwrap_err();
        assert!(check(&e), "{status}: {e:?}");
        let text = format!("{e} {e:?}");
        assert!(
            !text.contains("pw") && !text.contains("secret page"),
            "{status}: {text}"
        );
        assert!(
            seen.lock().unwrap().iter().all(|l| !l.contains("evil")),
            "redirect followed"
        );
    }
    // IfAbsent refused by the server is AlreadyExists.
    let (addr, _) = responder(Arc::new(|_m: &str| {
        http("412 Precondition Failed", "", b"")
    }))
    .await;
    let e = storage(addr)
        .await
        .write(
            &RemotePath::parse("x").unwrap(),
            Body::from(b"1".to_vec()),
            Precondition::IfAbsent,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
}

#[tokio::test]
async fn a_huge_error_body_is_not_read_into_memory() {
    let (addr, _) = responder(Arc::new(|_m: &str| {
        http(
            "500 Internal Server Error",
            "",
            &vec![b'x'; 8 * 1024 * 1024],
        )
    }))
    .await;
    let e = storage(addr)
        .await
        .delete(&RemotePath::parse("x").unwrap(), Precondition::None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Transient { .. } | Error::Corrupt { .. }),
        "{e:?}"
    );
}

/// Nextcloud's `423 Locked` is its own short-lived file locking: retried. Elsewhere a
/// 423 is a client's WebDAV lock: `Locked` at once, never retried as if it would pass.
#[tokio::test]
async fn locked_is_retried_on_nextcloud_and_reported_elsewhere() {
    let nextcloud = |addr: SocketAddr| {
        let cfg = WebDavConfig::new(format!("http://{addr}/dav/root/"))
            .with_credentials("u", Secret::new("pw"))
            .with_profile(Profile::Nextcloud);
        WebDavStorage::new(cfg).unwrap()
    };
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n2 = n.clone();
    let (addr, seen) = responder(Arc::new(move |_h: &str| {
        if n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            http("423 Locked", "Retry-After: 0\r\n", b"")
        } else {
            http("204 No Content", "", b"")
        }
    }))
    .await;
    nextcloud(addr)
        .delete(&RemotePath::parse("f").unwrap(), Precondition::None)
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
    // Always locked: a transient error after the configured retries.
    let always = || {
        responder(Arc::new(|_h: &str| {
            http("423 Locked", "Retry-After: 0\r\n", b"")
        }))
    };
    let (addr, seen) = always().await;
    let e = nextcloud(addr)
        .delete(&RemotePath::parse("f").unwrap(), Precondition::None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Transient { .. }), "{e:?}");
    assert_eq!(seen.lock().unwrap().len(), 6, "1 try + 5 retries");
    // Any other server: Locked after one request, for deletes and writes alike.
    let (addr, seen) = always().await;
    let s = storage(addr).await;
    delete_and_write_are_locked(&s).await;
    assert_eq!(seen.lock().unwrap().len(), 2);
}

/// Apache answers a PUT of a new file into a folder someone else locked with `207
/// Multi-Status` (424 for the file, 423 for the folder): a failure, never a success.
#[tokio::test]
async fn a_multi_status_answer_to_a_put_is_a_failure() {
    let body = r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:"><D:response><D:href>/dav/root/f</D:href><D:status>HTTP/1.1 424 Failed Dependency</D:status></D:response>
<D:response><D:href>/dav/root/</D:href><D:status>HTTP/1.1 423 Locked</D:status></D:response></D:multistatus>"#;
    let (addr, _) = responder(Arc::new(move |_h: &str| multistatus(body))).await;
    let s = storage(addr).await;
    delete_and_write_are_locked(&s).await;
}

/// A delete and a write of `f` both fail with `Locked`.
async fn delete_and_write_are_locked(s: &WebDavStorage) {
    let f = RemotePath::parse("f").unwrap();
    let e = s.delete(&f, Precondition::None).await.unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "delete: {e:?}");
    let e = s
        .write(&f, Body::from(b"x".to_vec()), Precondition::None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "write: {e:?}");
}

/// The Nextcloud chunked upload, against a fake that answers like Nextcloud's uploads
/// collection: what is sent must follow the protocol (MKCOL of a fresh folder under
/// `remote.php/dav/uploads/<user>/`, numbered chunks of the configured size that add up
/// to the file, then MOVE of `.file` onto the target with the precondition).
#[tokio::test]
async fn nextcloud_chunked_upload_follows_the_protocol() {
    let heads = Arc::new(Mutex::new(Vec::<String>::new()));
    let h2 = heads.clone();
    let (addr, _) = responder(Arc::new(move |h: &str| {
        h2.lock().unwrap().push(h.to_string());
        if h.starts_with("MOVE") {
            http(
                "201 Created",
                "OC-ETag: \"abc123\"\r\nETag: \"abc123\"\r\n",
                b"",
            )
        } else {
            http("201 Created", "", b"")
        }
    }))
    .await;
    let mut cfg = WebDavConfig::new(format!(
        "http://{addr}/nc/remote.php/dav/files/alice/Enpass/"
    ))
    .with_credentials("alice", Secret::new("pw"))
    .with_profile(Profile::Nextcloud);
    cfg.chunk_size = 1000;
    let s = WebDavStorage::new(cfg).unwrap();
    let data: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &data).unwrap();
    let e = s
        .write(
            &RemotePath::parse("v/db").unwrap(),
            Body::from_file(tmp.path()).await.unwrap(),
            Precondition::IfAbsent,
        )
        .await
        .unwrap();
    assert_eq!(e.version.unwrap().as_str(), "\"abc123\"");
    let heads = heads.lock().unwrap().clone();
    let lines: Vec<&str> = heads.iter().map(|h| h.lines().next().unwrap()).collect();
    assert!(
        lines[0].starts_with("MKCOL /nc/remote.php/dav/uploads/alice/syncfabric-"),
        "{lines:?}"
    );
    let dir = lines[0].split(' ').nth(1).unwrap();
    assert_eq!(lines[1], format!("PUT {dir}00001 HTTP/1.1"));
    assert_eq!(lines[2], format!("PUT {dir}00002 HTTP/1.1"));
    assert_eq!(lines[3], format!("PUT {dir}00003 HTTP/1.1"));
    assert!(heads[1]
        .to_ascii_lowercase()
        .contains("content-length: 1000"));
    assert!(heads[3]
        .to_ascii_lowercase()
        .contains("content-length: 500"));
    assert_eq!(lines[4], format!("MOVE {dir}.file HTTP/1.1"));
    let mv = heads[4].to_ascii_lowercase();
    assert!(
        mv.contains(&format!(
            "destination: http://{addr}/nc/remote.php/dav/files/alice/enpass/v/db"
        )),
        "{mv}"
    );
    // Create-only is `Overwrite: F` on the MOVE: an `If-None-Match: *` there would be
    // evaluated against the upload itself, which exists (issue #14).
    assert!(mv.contains("overwrite: f"), "{mv}");
    assert!(!mv.contains("if-none-match"), "{mv}");
    assert!(!mv.contains("if-match"), "{mv}");
    assert!(mv.contains("oc-total-length: 2500"), "{mv}");
    assert_eq!(lines.len(), 5);
}

/// The server's family is read from its own answer to `OPTIONS`. A 503 or a 429 from
/// a proxy in front of it carries none of its headers: connecting must fail (the retry
/// layer tries again), not settle on the generic profile, which trusts ETags that
/// nginx builds from whole-second mtimes. Found by the never-lose run on nginx: a
/// device whose first request met an injected fault trusted nginx's ETags.
#[tokio::test]
async fn a_failed_options_answer_never_picks_the_profile() {
    let calls = Arc::new(Mutex::new(0u32));
    let c = calls.clone();
    let (addr, _) = responder(Arc::new(move |head: &str| {
        if head.starts_with("OPTIONS") {
            let mut n = c.lock().unwrap();
            *n += 1;
            if *n <= 2 {
                let status = if *n == 1 {
                    "503 Service Unavailable"
                } else {
                    "429 Too Many Requests"
                };
                return http(status, "Retry-After: 0\r\n", b"busy");
            }
            return http("200 OK", "Server: nginx/1.24.0\r\nDAV: 1\r\n", b"");
        }
        multistatus(&listing(&[]))
    }))
    .await;
    let cfg = || {
        WebDavConfig::new(format!("http://{addr}/dav/root/"))
            .with_credentials("u", Secret::new("pw"))
    };
    for _ in 0..2 {
        let e = WebDavStorage::connect(cfg())
            .await
            .expect_err("a proxy's error is not a server");
        assert!(e.is_retryable(), "{e:?}");
    }
    let s = WebDavStorage::connect(cfg()).await.unwrap();
    assert_eq!(s.profile(), Profile::Nginx);
}
