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

mod servers;

use servers::{Kind, Server, PASS, USER};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use syncfabric_core::{Body, Error, Precondition, RemotePath, Storage};
use syncfabric_webdav::{Profile, Secret, WebDavConfig, WebDavStorage};

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
