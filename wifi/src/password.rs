//! A vault's access password on the Wi-Fi Sync Server: 160 random bits from OpenSSL,
//! shown as 32 base32 characters in groups of four (`ABCD-EFGH-...`), so a person can
//! read it off one screen and type it on another. Compared in constant time; typed
//! input is read without case, spaces or dashes. Debug output never shows it.

use crate::{Error, Result};
use zeroize::Zeroizing;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Random bits in a new password.
pub const BITS: usize = 160;
const CHARS: usize = BITS / 5;

/// An access password.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessPassword(Zeroizing<String>);

impl std::fmt::Debug for AccessPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessPassword(<redacted>)")
    }
}

impl AccessPassword {
    /// A new random password.
    pub fn generate() -> Result<AccessPassword> {
        let mut raw = Zeroizing::new([0u8; BITS / 8]);
        openssl::rand::rand_bytes(&mut raw[..])?;
        let mut out = Zeroizing::new(String::with_capacity(CHARS));
        let (mut acc, mut bits) = (0u32, 0u32);
        for &b in raw.iter() {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
            acc &= (1 << bits) - 1;
        }
        Ok(AccessPassword(out))
    }

    /// Reads a password as a person typed it (any case; spaces and dashes ignored).
    /// Anything but 32 base32 characters is [`Error::Invalid`].
    pub fn parse(typed: &str) -> Result<AccessPassword> {
        let s: Zeroizing<String> = Zeroizing::new(
            typed
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        if s.len() != CHARS || !s.bytes().all(|b| ALPHABET.contains(&b)) {
            return Err(Error::Invalid(format!(
                "an access password is {CHARS} letters A-Z and digits 2-7"
            )));
        }
        Ok(AccessPassword(s))
    }

    /// The password in groups of four, as shown to a person.
    pub fn grouped(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(CHARS + CHARS / 4));
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }

    /// The password as sent (Basic auth over TLS): the 32 characters.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `other` is this password, compared in constant time.
    pub fn verify(&self, other: &str) -> bool {
        // Equal lengths for memcmp: a wrong length is simply wrong, in the same time.
        let mut given = [0u8; CHARS];
        let n = other.len().min(CHARS);
        given[..n].copy_from_slice(&other.as_bytes()[..n]);
        let same = openssl::memcmp::eq(&given, self.0.as_bytes());
        zeroize::Zeroize::zeroize(&mut given);
        same && other.len() == CHARS
    }
}
