//! # syncfabric-wifi
//!
//! What the Wi-Fi Sync Server (`syncfabric serve`) and the device pairing with it
//! (`syncfabric pair`) must agree on, as the Enpass security whitepaper describes the
//! system (its section "Wi-Fi Sync Server"): the server's self-signed
//! certificate, kept across restarts ([`cert`]); the time-based verification code both
//! sides show so a person can spot a man in the middle ([`code`]); each vault's random
//! access password ([`password`]); and the pairing payload a QR code carries
//! ([`pairing`]), drawn as a QR code ([`qr`]); and finding the server on the local
//! network by mDNS ([`discovery`]). The server (`syncfabric-server`) and the client
//! (the CLI's `pair`) build on these.
//!
//! ```
//! use syncfabric_wifi::{code, pairing::Pairing, password::AccessPassword};
//! let fingerprint = [7u8; 32]; // the server certificate's SHA-256
//! let shown = code::code_at(&fingerprint, 1_800_000_000).unwrap();
//! assert!(code::matches(&fingerprint, &shown, 1_800_000_017).unwrap());
//! let pw = AccessPassword::generate().unwrap();
//! let p = Pairing::new("https://laptop.local:8443/dav/0b1e/", fingerprint, pw).unwrap();
//! let back = Pairing::parse(&p.to_payload()).unwrap();
//! assert_eq!(back.fingerprint(), &fingerprint);
//! ```
#![deny(missing_docs)]

pub mod cert;
pub mod code;
pub mod discovery;
pub mod pairing;
pub mod password;
pub mod qr;

/// Why a pairing step failed. No variant carries a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// OpenSSL failed.
    #[error("crypto: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// Reading or writing the certificate's files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate or key on disk is not ours to use (damaged, or not a pair).
    #[error("the server certificate in {0} is unusable: {1}")]
    BadCertificate(std::path::PathBuf, String),
    /// A pairing payload, code or password that does not read.
    #[error("{0}")]
    Invalid(String),
    /// Multicast DNS failed (no usable interface, a socket refused).
    #[error("mDNS: {0}")]
    Discovery(String),
}

/// This crate's result.
pub type Result<T> = std::result::Result<T, Error>;
