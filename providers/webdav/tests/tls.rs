//! TLS and redirects.
//!
//! 1. HTTPS against `rclone serve webdav` with a self-signed certificate made at test
//!    time by the `openssl` CLI: refused by default (verification is on), accepted when
//!    exactly that certificate is trusted, refused when another self-signed certificate
//!    is trusted instead.
//! 2. Redirects, played by a tiny fake HTTP responder on 127.0.0.1: a same-origin
//!    redirect (301 on PROPFIND, 307 on GET) is followed with the credentials; a
//!    redirect to another origin is never followed (the other listener sees no request,
//!    so no `Authorization` header) and is a clear `Corrupt` error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
use syncfabric_testkit::servers::{self, Kind, Server, PASS, USER};
use syncfabric_webdav::{Profile, Secret, WebDavConfig, WebDavStorage};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------
// 1. HTTPS with a self-signed certificate
// ---------------------------------------------------------------------------------

/// A fresh RSA key and self-signed certificate for 127.0.0.1 in `dir`:
/// `(cert, key)` paths. `None` (loudly) when the `openssl` CLI is missing and servers
/// are not required.
fn self_signed(dir: &Path, name: &str) -> Option<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => Some((cert, key)),
        Ok(o) => panic!("openssl req failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            let msg = format!("!!!!! openssl CLI not runnable ({e}); install openssl");
            if servers::require_servers() {
                panic!("{msg} (SYNCFABRIC_REQUIRE_SERVERS=1)");
            }
            eprintln!("{msg}: SKIPPING");
            None
        }
    }
}

fn https_config(url: &str, trust: Option<&Path>) -> WebDavConfig {
    let mut cfg = WebDavConfig::new(url).with_credentials(USER, Secret::new(PASS));
    cfg.connect_timeout = Duration::from_secs(10);
    cfg.read_timeout = Duration::from_secs(20);
    if let Some(p) = trust {
        cfg.trust_certificate_pem = Some(std::fs::read(p).expect("read cert"));
    }
    cfg
}

/// The error is a TLS certificate-verification failure, says so, and leaks no secret.
fn assert_cert_error(e: &Error, ctx: &str) {
    let text = format!("{e} | {e:?}");
    eprintln!("{ctx}: {e}");
    assert!(!text.contains(PASS), "{ctx}: password in error: {text}");
    let lower = text.to_ascii_lowercase();
    assert!(
        lower.contains("certificate") || lower.contains("verify"),
        "{ctx}: not a clear TLS/certificate error: {text}"
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

async fn read_all(s: &WebDavStorage, path: &RemotePath) -> Result<Vec<u8>, Error> {
    let mut d = s.read(path).await?;
    let mut out = Vec::new();
    while let Some(c) = futures_util::StreamExt::next(&mut d.stream).await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

#[tokio::test]
async fn https_self_signed_is_verified_and_trustable() {
    let certs = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(certs.path(), "server") else {
        return;
    };
    let Some((other_cert, _)) = self_signed(certs.path(), "other") else {
        return;
    };
    let Some(server) = Server::start_tls(Kind::Rclone, &cert, &key) else {
        return;
    };
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let path = RemotePath::parse("dir/vault.enpassdb").unwrap();

    // (a) Default configuration: verification is on, the self-signed certificate is
    // refused, on connect (probe) and on a write with a fixed profile alike.
    let e = WebDavStorage::connect(https_config(&server.url, None))
        .await
        .err()
        .unwrap_or_else(|| panic!("connect to a self-signed server must fail by default"));
    assert_cert_error(&e, "default connect");
    let s =
        WebDavStorage::new(https_config(&server.url, None).with_profile(Profile::Rclone)).unwrap();
    let e = s
        .write(&path, Body::from(b"x".to_vec()), Precondition::None)
        .await
        .unwrap_err();
    assert_cert_error(&e, "default write");
    let e = s.stat(&path).await.unwrap_err();
    assert_cert_error(&e, "default stat");
    assert!(
        files_under(&server.data).is_empty(),
        "something was written through an unverified connection: {:?}",
        files_under(&server.data)
    );

    // (c) Trusting a different self-signed certificate does not help.
    let e = WebDavStorage::connect(https_config(&server.url, Some(&other_cert)))
        .await
        .err()
        .unwrap_or_else(|| panic!("trusting another certificate must not accept this server"));
    assert_cert_error(&e, "other cert connect");
    let s = WebDavStorage::new(
        https_config(&server.url, Some(&other_cert)).with_profile(Profile::Rclone),
    )
    .unwrap();
    let e = s
        .write(&path, Body::from(b"x".to_vec()), Precondition::None)
        .await
        .unwrap_err();
    assert_cert_error(&e, "other cert write");
    assert!(files_under(&server.data).is_empty());

    // A PEM that is not a certificate is refused up front, without echoing the input.
    let mut bad = https_config(&server.url, None);
    bad.trust_certificate_pem = Some(format!("not a pem {PASS}").into_bytes());
    match WebDavStorage::new(bad) {
        Err(e @ Error::InvalidInput { .. }) => {
            assert!(!format!("{e} {e:?}").contains(PASS), "{e:?}")
        }
        Err(e) => panic!("bad PEM: {e:?}"),
        // native-tls may accept lazily; then the first request must still fail.
        Ok(s) => {
            let e = s.stat(&path).await.unwrap_err();
            assert!(!format!("{e} {e:?}").contains(PASS), "{e:?}");
        }
    }

    // (b) Trusting exactly this certificate: a full round trip.
    let s = WebDavStorage::connect(https_config(&server.url, Some(&cert)))
        .await
        .unwrap_or_else(|e| panic!("trusted connect: {e:?}\n{}", server.logs()));
    assert_eq!(s.profile(), Profile::Rclone, "probe over TLS");
    assert!(s.stat(&path).await.unwrap().is_none());
    let content = b"encrypted vault bytes over TLS".to_vec();
    let written = s
        .write(&path, Body::from(content.clone()), Precondition::IfAbsent)
        .await
        .unwrap_or_else(|e| panic!("write: {e:?}\n{}", server.logs()));
    assert_eq!(
        std::fs::read(server.data.join("dir/vault.enpassdb")).unwrap(),
        content,
        "the server's disk holds what was written"
    );
    let got = read_all(&s, &path).await.unwrap();
    assert_eq!(got, content);
    let st = s.stat(&path).await.unwrap().expect("stat after write");
    assert_eq!(st.size, content.len() as u64);
    assert_eq!(st.version, written.version);
    // A second write conditioned on the version seen works; a stale one does not.
    let second = s
        .write(
            &path,
            Body::from(b"second".to_vec()),
            Precondition::IfMatch(written.version.clone().expect("rclone gives versions")),
        )
        .await
        .unwrap();
    assert_ne!(second.version, written.version);
    assert!(s
        .write(
            &path,
            Body::from(b"stale".to_vec()),
            Precondition::IfMatch(written.version.clone().unwrap()),
        )
        .await
        .is_err());
    let listed = s.list(&RemotePath::parse("dir").unwrap()).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");

    // Wrong password over a trusted TLS connection: Unauthorized, no password echoed.
    let mut wrong = https_config(&server.url, Some(&cert)).with_profile(Profile::Rclone);
    wrong.credentials = Some(syncfabric_webdav::Credentials {
        user: USER.into(),
        password: Secret::new("Wr0ng-Pass-xyz"),
    });
    let e = WebDavStorage::new(wrong)
        .unwrap()
        .stat(&path)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
    let text = format!("{e} {e:?}");
    assert!(
        !text.contains("Wr0ng-Pass-xyz") && !text.contains(PASS),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------
// 2. Redirects (fake responder, same pattern as bad_input.rs)
// ---------------------------------------------------------------------------------

/// An answer to one request: given the request head (request line + headers) and the
/// responder's own address, the raw bytes to write; the connection is then closed.
type Answer = Arc<dyn Fn(&str, SocketAddr) -> Vec<u8> + Send + Sync>;

/// Starts a responder on 127.0.0.1; records every request head it reads.
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
                seen.lock().unwrap().push(head.clone());
                let out = answer(&head, addr);
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

const RPASS: &str = "redirect-pw-Zq9";

fn redirect_storage(addr: SocketAddr) -> WebDavStorage {
    let mut cfg = WebDavConfig::new(format!("http://{addr}/dav/root/"))
        .with_credentials("u", Secret::new(RPASS))
        .with_profile(Profile::Generic);
    cfg.read_timeout = Duration::from_secs(5);
    cfg.locked_retries = 0;
    WebDavStorage::new(cfg).unwrap()
}

/// The `Authorization` header value the client must send.
fn expected_auth() -> String {
    format!(
        "basic {}",
        openssl::base64::encode_block(format!("u:{RPASS}").as_bytes())
    )
    .to_ascii_lowercase()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn has_auth(head: &str) -> bool {
    header(head, "authorization").is_some()
}

#[tokio::test]
async fn same_origin_redirects_are_followed_with_credentials() {
    const LISTING: &str = "<?xml version=\"1.0\"?><D:multistatus xmlns:D=\"DAV:\">\
<D:response><D:href>/dav/root/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\
<D:response><D:href>/dav/root/a.txt</D:href><D:propstat><D:prop><D:resourcetype/><D:getetag>\"e1\"</D:getetag><D:getcontentlength>18</D:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\
</D:multistatus>";
    let (addr, seen) = responder(Arc::new(|head: &str, me: SocketAddr| {
        let line = head.lines().next().unwrap_or("");
        let authed = header(head, "authorization")
            .is_some_and(|v| v.to_ascii_lowercase() == expected_auth());
        if line.starts_with("PROPFIND /dav/root/ ") {
            // Moved permanently, relative Location.
            http("301 Moved Permanently", "Location: /backend/root/\r\n", b"")
        } else if line.starts_with("PROPFIND /backend/root/ ") {
            if !authed {
                return http("401 Unauthorized", "WWW-Authenticate: Basic\r\n", b"");
            }
            if header(head, "depth") != Some("1") {
                return http("400 Bad Request", "", b"depth lost");
            }
            http(
                "207 Multi-Status",
                "Content-Type: application/xml\r\n",
                LISTING.as_bytes(),
            )
        } else if line.starts_with("GET /dav/root/a.txt ") {
            // Temporary redirect, absolute Location on the same origin.
            http(
                "307 Temporary Redirect",
                &format!("Location: http://{me}/blobs/a\r\n"),
                b"",
            )
        } else if line.starts_with("GET /blobs/a ") {
            if !authed {
                return http("401 Unauthorized", "WWW-Authenticate: Basic\r\n", b"");
            }
            http("200 OK", "ETag: \"e1\"\r\n", b"redirected content")
        } else {
            http("404 Not Found", "", b"")
        }
    }))
    .await;
    let s = redirect_storage(addr);

    let listed = s
        .list(&RemotePath::root())
        .await
        .unwrap_or_else(|e| panic!("list through a 301: {e:?}; seen {:?}", seen.lock()));
    let names: Vec<String> = listed.iter().map(|e| e.path.to_string()).collect();
    assert_eq!(names, ["/a.txt"], "{listed:?}");

    let got = read_all(&s, &RemotePath::parse("a.txt").unwrap())
        .await
        .unwrap_or_else(|e| panic!("read through a 307: {e:?}; seen {:?}", seen.lock()));
    assert_eq!(got, b"redirected content");

    // The redirected requests really were made, with the credentials (same origin).
    let seen = seen.lock().unwrap().clone();
    for target in ["PROPFIND /backend/root/ ", "GET /blobs/a "] {
        assert!(
            seen.iter().any(|h| h.starts_with(target) && has_auth(h)),
            "{target} not requested with credentials: {seen:?}"
        );
    }
}

#[tokio::test]
async fn cross_origin_redirect_is_refused_and_leaks_no_credentials() {
    // The "other host": a listener that would happily answer anything.
    let (other, other_seen) = responder(Arc::new(|_h: &str, _me: SocketAddr| {
        http("200 OK", "", b"stolen")
    }))
    .await;
    let port = other.port();
    let targets = [
        // Same IP, another port: another origin.
        format!("http://127.0.0.1:{port}/dav/root/"),
        // Another host name (resolves to loopback).
        format!("http://localhost:{port}/dav/root/"),
    ];
    for target in targets {
        for status in ["301 Moved Permanently", "307 Temporary Redirect"] {
            let loc = format!("Location: {target}\r\n");
            let (addr, seen) = responder(Arc::new(move |_h: &str, _me: SocketAddr| {
                http(status, &loc, b"")
            }))
            .await;
            let s = redirect_storage(addr);
            let path = RemotePath::parse("a.txt").unwrap();
            let mut errors = vec![
                ("list", s.list(&RemotePath::root()).await.unwrap_err()),
                ("stat", s.stat(&path).await.unwrap_err()),
                ("read", read_all(&s, &path).await.unwrap_err()),
            ];
            errors.push((
                "write",
                s.write(&path, Body::from(b"x".to_vec()), Precondition::None)
                    .await
                    .unwrap_err(),
            ));
            for (op, e) in &errors {
                assert!(
                    matches!(e, Error::Corrupt { .. }),
                    "{status} to {target}, {op}: {e:?}"
                );
                let text = format!("{e} {e:?}");
                assert!(text.contains("redirect"), "{status}, {op}: unclear: {text}");
                assert!(!text.contains(RPASS), "{status}, {op}: {text}");
            }
            // The first server did get the requests, with credentials (so the
            // absence below is meaningful).
            assert!(
                seen.lock().unwrap().iter().any(|h| has_auth(h)),
                "{:?}",
                seen.lock()
            );
        }
    }
    let other_seen = other_seen.lock().unwrap().clone();
    assert!(
        other_seen.iter().all(|h| !has_auth(h)),
        "Authorization leaked to the other host: {other_seen:?}"
    );
    assert!(
        other_seen.is_empty(),
        "a redirect to another origin was followed: {other_seen:?}"
    );
}

#[tokio::test]
async fn same_origin_redirect_loop_ends_in_an_error() {
    let (addr, seen) = responder(Arc::new(|head: &str, _me: SocketAddr| {
        let line = head.lines().next().unwrap_or("");
        let next = if line.contains("/loop/a") {
            "/loop/b"
        } else {
            "/loop/a"
        };
        http(
            "307 Temporary Redirect",
            &format!("Location: {next}\r\n"),
            b"",
        )
    }))
    .await;
    let s = redirect_storage(addr);
    let e = s.stat(&RemotePath::parse("x").unwrap()).await.unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains(RPASS));
    let n = seen.lock().unwrap().len();
    assert!((2..=10).contains(&n), "{n} requests for a redirect loop");
}

// ---------------------------------------------------------------------------------
// 3. A server pinned by its certificate's fingerprint (`?pin-sha256=`)
// ---------------------------------------------------------------------------------

fn sha256_of(cert_pem: &Path) -> String {
    let x = openssl::x509::X509::from_pem(&std::fs::read(cert_pem).unwrap()).unwrap();
    let d = x.digest(openssl::hash::MessageDigest::sha256()).unwrap();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A TLS listener with `cert`/`key` that completes handshakes and records every
/// byte a client sends after one: a man in the middle, on loopback.
fn tls_listener(cert: &Path, key: &Path) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    a.set_certificate_chain_file(cert).unwrap();
    a.set_private_key_file(key, SslFiletype::PEM).unwrap();
    let acceptor = Arc::new(a.build());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let got = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (acceptor, got) = (acceptor.clone(), got.clone());
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                if let Ok(mut tls) = acceptor.accept(tcp) {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = std::io::Read::read(&mut tls, &mut buf) {
                        got.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_pinned_server_is_reached_only_with_its_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(certs.path(), "server") else {
        return;
    };
    let Some((other_cert, other_key)) = self_signed(certs.path(), "other") else {
        return;
    };
    let Some(server) = Server::start_tls(Kind::Rclone, &cert, &key) else {
        return;
    };
    let port = server.url.trim_start_matches("https://127.0.0.1:");
    let port: u16 = port
        .trim_end_matches('/')
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let pinned = |host: &str, fp: &str| {
        let url = format!("webdav+https://{USER}@{host}:{port}/?pin-sha256={fp}");
        let mut cfg = WebDavConfig::from_url(&url, Some(Secret::new(PASS))).unwrap();
        cfg.connect_timeout = Duration::from_secs(10);
        cfg
    };
    // (a) The right pin, by a name the certificate does not carry (it names only
    // 127.0.0.1): the pin is the identity, and the round trip works.
    let s = WebDavStorage::connect(pinned("localhost", &sha256_of(&cert)))
        .await
        .unwrap_or_else(|e| panic!("pinned connect: {e:?}\n{}", server.logs()));
    let path = RemotePath::parse("pinned.bin").unwrap();
    s.write(&path, Body::from(b"x".to_vec()), Precondition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(read_all(&s, &path).await.unwrap(), b"x");

    // (b) Another pin: refused before any request, saying why.
    let Err(e) = WebDavStorage::connect(pinned("127.0.0.1", &sha256_of(&other_cert))).await else {
        panic!("a wrong pin must not connect");
    };
    assert!(
        matches!(&e, Error::Forbidden { message } if message.contains("another certificate")),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains(PASS));

    // (c) A man in the middle with another certificate, pinned to the real one: the
    //     handshake completes but not one byte of a request (no Authorization header)
    //     reaches it.
    let (mitm, seen) = tls_listener(&other_cert, &other_key);
    let url = format!(
        "webdav+https://{USER}@127.0.0.1:{}/?pin-sha256={}",
        mitm.port(),
        sha256_of(&cert)
    );
    let cfg = WebDavConfig::from_url(&url, Some(Secret::new(PASS))).unwrap();
    let Err(e) = WebDavStorage::connect(cfg).await else {
        panic!("the MITM must be refused");
    };
    assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "bytes reached the man in the middle"
    );

    // (d) The certificate fetched for the pin is the only anchor: a pinned config
    //     holding another certificate fails the real handshake.
    let mut cfg = pinned("127.0.0.1", &sha256_of(&cert));
    cfg.trust_certificate_pem = Some(std::fs::read(&other_cert).unwrap());
    let Err(e) = WebDavStorage::connect(cfg).await else {
        panic!("only the anchor");
    };
    assert_cert_error(&e, "pinned with another anchor");

    // A pin on a plain-http URL, or any other query, is refused.
    for bad in [
        format!(
            "webdav+http://{USER}@127.0.0.1:{port}/?pin-sha256={}",
            "ab".repeat(32)
        ),
        format!("webdav+https://{USER}@127.0.0.1:{port}/?pin-sha256=abc"),
        format!("webdav+https://{USER}@127.0.0.1:{port}/?x=1"),
    ] {
        assert!(WebDavConfig::from_url(&bad, None).is_err(), "{bad}");
    }
}
