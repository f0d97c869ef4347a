//! The verification code: six digits that the server and the pairing device each
//! compute from the server certificate they see and the current 30-second window. A
//! man in the middle presents another certificate to the device, so the two codes
//! differ and the person stops; a typed code is accepted for the window before and
//! after the device's own (one window of clock skew each way).
//!
//! The code is HOTP's (RFC 4226, section 5.3) with the certificate's SHA-256
//! fingerprint as its key and the window number as its counter, over HMAC-SHA-256:
//!
//! ```text
//! window = floor(unix_seconds / 30)
//! mac    = HMAC-SHA-256(key = fingerprint (32 bytes), message = window as 8 bytes big-endian)
//! offset = mac[31] & 0x0f
//! code   = (mac[offset..offset+4] as big-endian u32 & 0x7fff_ffff) mod 1_000_000, 6 digits
//! ```
//!
//! Test vectors (fingerprint = bytes 0x00, 0x01, ..., 0x1f), checked in `tests/code.rs`
//! against Python's `hmac` as an independent implementation:
//!
//! | unix time | window | code |
//! |---|---|---|
//! | 0 | 0 | 464393 |
//! | 59 | 1 | 309558 |
//! | 1_800_000_000 | 60_000_000 | 368530 |
//! | 4_102_444_800 | 136_748_160 | 160158 |

use crate::{Error, Result};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// Seconds per window.
pub const WINDOW_SECS: u64 = 30;

/// The code for `fingerprint` in the window of `unix` seconds, as six digits.
pub fn code_at(fingerprint: &[u8; 32], unix: u64) -> Result<String> {
    code_for_window(fingerprint, unix / WINDOW_SECS)
}

/// The code for `fingerprint` in window number `window`.
pub fn code_for_window(fingerprint: &[u8; 32], window: u64) -> Result<String> {
    let key = PKey::hmac(fingerprint)?;
    let mut s = Signer::new(MessageDigest::sha256(), &key)?;
    s.update(&window.to_be_bytes())?;
    let mac = s.sign_to_vec()?;
    let offset = usize::from(mac[31] & 0x0f);
    let word = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    Ok(format!("{:06}", word % 1_000_000))
}

/// Whether `typed` (spaces and dashes ignored) is the code of `fingerprint` at `unix`
/// or in the window just before or after it. Anything but six digits is
/// [`Error::Invalid`].
pub fn matches(fingerprint: &[u8; 32], typed: &str, unix: u64) -> Result<bool> {
    let digits: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if digits.len() != 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Invalid(
            "a verification code is six digits".to_string(),
        ));
    }
    let w = unix / WINDOW_SECS;
    for window in [w.saturating_sub(1), w, w + 1] {
        if openssl::memcmp::eq(
            code_for_window(fingerprint, window)?.as_bytes(),
            digits.as_bytes(),
        ) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Seconds left in the window of `unix` (what a display counts down).
pub fn seconds_left(unix: u64) -> u64 {
    WINDOW_SECS - unix % WINDOW_SECS
}
