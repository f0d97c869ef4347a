//! The TLS acceptor: the system OpenSSL, TLS 1.2 and 1.3 only, the server's own
//! certificate and key, no client certificates.

use openssl::ssl::{SslAcceptor, SslMethod, SslVersion};
use syncfabric_wifi::cert::ServerCert;

/// An acceptor presenting `cert` (Mozilla's "intermediate" settings: TLS 1.2+, forward
/// secret AEAD ciphers).
pub fn acceptor(cert: &ServerCert) -> crate::Result<SslAcceptor> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_private_key(cert.key())?;
    b.set_certificate(cert.certificate())?;
    b.check_private_key()?;
    b.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(b"\x08http/1.1", client)
            .ok_or(openssl::ssl::AlpnError::NOACK)
    });
    Ok(b.build())
}
