//! The pairing payload: what `serve` shows as a QR code (and as text) and `pair`
//! accepts, carrying the vault's URL on the server, the server certificate's full
//! SHA-256 fingerprint and the vault's access password. It is a secret (it holds the
//! password): shown to the person, never logged; its Debug output redacts it.
//!
//! ```text
//! syncfabric-pair:1:<fingerprint, 64 lowercase hex>:<password, 32 base32>:<https URL>
//! ```
//!
//! The URL comes last, so its own colons need no escaping. It must be `https://`, at
//! most 512 bytes, without spaces or control characters.

use crate::password::AccessPassword;
use crate::{Error, Result};
use zeroize::Zeroizing;

const PREFIX: &str = "syncfabric-pair:1:";
const MAX_URL: usize = 512;

/// What a device needs to pair with one vault on a server.
#[derive(Clone, PartialEq, Eq)]
pub struct Pairing {
    url: String,
    fingerprint: [u8; 32],
    password: AccessPassword,
}

impl std::fmt::Debug for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pairing")
            .field("url", &self.url)
            .field("fingerprint", &hex::encode(self.fingerprint))
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Pairing {
    /// A pairing for the vault at `url` (checked as the payload is).
    pub fn new(url: &str, fingerprint: [u8; 32], password: AccessPassword) -> Result<Pairing> {
        check_url(url)?;
        Ok(Pairing {
            url: url.to_string(),
            fingerprint,
            password,
        })
    }

    /// The payload text (a secret: it holds the password).
    pub fn to_payload(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{PREFIX}{}:{}:{}",
            hex::encode(self.fingerprint),
            self.password.expose(),
            self.url
        ))
    }

    /// Reads a payload (surrounding whitespace ignored). Errors name what is wrong,
    /// never the password.
    pub fn parse(text: &str) -> Result<Pairing> {
        let rest = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| Error::Invalid(format!("a pairing payload starts with {PREFIX}")))?;
        let mut parts = rest.splitn(3, ':');
        let (Some(fp), Some(pw), Some(url)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Invalid(
                "a pairing payload has a fingerprint, a password and a URL".into(),
            ));
        };
        let mut fingerprint = [0u8; 32];
        if fp.len() != 64 || hex::decode_to_slice(fp, &mut fingerprint).is_err() {
            return Err(Error::Invalid(
                "the payload's fingerprint is not 64 hex digits".into(),
            ));
        }
        let password = AccessPassword::parse(pw)?;
        Pairing::new(url, fingerprint, password)
    }

    /// The vault's URL on the server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server certificate's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// The vault's access password.
    pub fn password(&self) -> &AccessPassword {
        &self.password
    }
}

fn check_url(url: &str) -> Result<()> {
    let ok = url.len() <= MAX_URL
        && url.strip_prefix("https://").is_some_and(|r| !r.is_empty())
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "a pairing URL is https://, at most {MAX_URL} bytes, without spaces"
        )))
    }
}
