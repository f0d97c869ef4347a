//! A server pinned by its certificate's SHA-256 fingerprint (`?pin-sha256=<hex>` on a
//! `webdav+https` URL; what `syncfabric pair` stores for the Wi-Fi Sync Server, and
//! usable for any self-hosted server with a self-signed certificate).
//!
//! Before any request, the server's certificate is fetched in a TLS handshake that
//! sends nothing else, and its fingerprint compared with the pin; a mismatch is an
//! error and no request is made, so no credential leaves the device. The certificate
//! that matched then becomes the *only* trust anchor of the HTTP client (no system
//! roots), so every later connection's handshake proves the server holds that
//! certificate's key: a man in the middle who showed the real certificate to the fetch
//! still fails there. Host names are not checked against it: the pin is the identity
//! (a laptop's address on a home network changes; its key does not).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use syncfabric_core::{Error, Result};

/// The PEM of the certificate `host:port` presents, if its SHA-256 is `want`.
/// [`Error::Forbidden`] when it is another one (nothing else was sent),
/// [`Error::Transient`] when the server cannot be reached.
pub(crate) async fn fetch_pinned(
    host: String,
    port: u16,
    want: [u8; 32],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let (pem, got) = certificate_at(host.clone(), port, timeout).await?;
    if got != want {
        return Err(Error::Forbidden {
            message: format!(
                "{host}:{port} presented another certificate (SHA-256 {}) than the paired one \
                 ({}); nothing was sent. It may be a man in the middle, or the server's \
                 certificate was rotated: pair again",
                crate::client::hex(&got),
                crate::client::hex(&want)
            ),
        });
    }
    Ok(pem)
}

/// The certificate the server of `url` (`https://host[:port]/…`) presents in a TLS
/// handshake that sends nothing else, unverified (PEM and SHA-256): for a person to
/// check by its fingerprint or the verification code derived from it, never to trust
/// by itself. [`Error::InvalidInput`] for another URL, [`Error::Transient`] when the
/// server cannot be reached.
pub async fn server_certificate(url: &str, timeout: Duration) -> Result<(Vec<u8>, [u8; 32])> {
    let bad = || Error::InvalidInput {
        message: "a server certificate is fetched from an https://host[:port]/ URL".into(),
    };
    let u = reqwest::Url::parse(url).map_err(|_| bad())?;
    let host = u
        .host_str()
        .filter(|_| u.scheme() == "https")
        .ok_or_else(bad)?;
    certificate_at(host.to_string(), u.port().unwrap_or(443), timeout).await
}

async fn certificate_at(host: String, port: u16, timeout: Duration) -> Result<(Vec<u8>, [u8; 32])> {
    tokio::task::spawn_blocking(move || fetch_blocking(&host, port, timeout))
        .await
        .map_err(|e| transient(format!("certificate fetch: {e}")))?
}

fn transient(message: String) -> Error {
    Error::Transient {
        message,
        source: None,
    }
}

fn fetch_blocking(host: &str, port: u16, timeout: Duration) -> Result<(Vec<u8>, [u8; 32])> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let unreachable = |e: &dyn std::fmt::Display| transient(format!("{host}:{port}: {e}"));
    let addr = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map_err(|e| unreachable(&e))?
        .next()
        .ok_or_else(|| unreachable(&"no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| unreachable(&e))?;
    tcp.set_read_timeout(Some(timeout))
        .and_then(|_| tcp.set_write_timeout(Some(timeout)))
        .map_err(|e| unreachable(&e))?;
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| unreachable(&e))?;
    // Not verified here on purpose: the fingerprint below is the check.
    b.set_verify(SslVerifyMode::NONE);
    let mut cfg = b
        .build()
        .configure()
        .map_err(|e| unreachable(&e))?
        .verify_hostname(false);
    cfg.set_use_server_name_indication(host.parse::<std::net::IpAddr>().is_err());
    let tls = cfg.connect(host, tcp).map_err(|e| unreachable(&e))?;
    let cert = tls
        .ssl()
        .peer_certificate()
        .ok_or_else(|| unreachable(&"no certificate presented"))?;
    let got = cert
        .digest(openssl::hash::MessageDigest::sha256())
        .map_err(|e| unreachable(&e))?;
    let mut fp = [0u8; 32];
    fp.copy_from_slice(&got);
    Ok((cert.to_pem().map_err(|e| unreachable(&e))?, fp))
}

/// Reads a `pin-sha256` value: 64 hex digits (colons allowed between bytes).
pub(crate) fn parse_pin(s: &str) -> Option<[u8; 32]> {
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_read_with_or_without_colons() {
        let hexs = "ab".repeat(32);
        assert_eq!(parse_pin(&hexs), Some([0xab; 32]));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_pin(&colons), Some([0xab; 32]));
        assert_eq!(parse_pin("abc"), None);
        assert_eq!(parse_pin(&"zz".repeat(32)), None);
    }
}
