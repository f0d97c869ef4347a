//! Access: HTTP Basic with **any user name** and the vault's access password (the
//! pairing payload carries no user name, so none is asked for; the user name is never
//! compared, so a wrong user and a wrong password cannot differ in time).
//!
//! The password is compared as SHA-256 digests with `openssl::memcmp::eq` (equal
//! lengths, constant time). A request for an unknown vault id is checked against a
//! random digest the same way, so it fails like a wrong password and says nothing
//! about which ids exist.
//!
//! Back-off: each client address has a failure count; after `n` failures its next
//! attempt waits `base * 2^(n-1)` (capped) before it is even checked, and attempts of
//! one address are checked one at a time, so parallel guessing gains nothing. A
//! success clears the count. Each wait is logged (address, failures, wait), never a
//! password.

use openssl::hash::{hash, MessageDigest};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// SHA-256 of a password (what is compared).
pub(crate) fn digest(password: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(d) = hash(MessageDigest::sha256(), password) {
        out.copy_from_slice(&d);
    }
    out
}

/// The password of a `Basic` Authorization header (the user name is ignored), or
/// `None` when the header is not Basic or does not decode.
pub(crate) fn basic_password(header: &[u8]) -> Option<Vec<u8>> {
    let rest = header
        .strip_prefix(b"Basic ")
        .or_else(|| header.strip_prefix(b"basic "))?;
    let decoded = openssl::base64::decode_block(std::str::from_utf8(rest).ok()?.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

/// Whether `given` is the password whose digest is `expected`, in constant time.
pub(crate) fn verify(expected: &[u8; 32], given: &[u8]) -> bool {
    openssl::memcmp::eq(expected, &digest(given))
}

#[derive(Default)]
struct Client {
    failures: u32,
    until: Option<Instant>,
}

/// Per-address failure counts and back-off.
pub struct Guard {
    base: Duration,
    cap: Duration,
    clients: Mutex<HashMap<IpAddr, Arc<tokio::sync::Mutex<Client>>>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("base", &self.base)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

/// What [`Guard::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The password was right.
    pub ok: bool,
    /// The attempt had to wait for an earlier failure's back-off.
    pub delayed: bool,
}

impl Guard {
    /// A guard waiting `base` after the first failure, doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Guard {
        Guard {
            base,
            cap,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The wait after `failures` failures.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Waits out `ip`'s back-off, then runs `check` (the password comparison) and
    /// records its result.
    pub async fn check(&self, ip: IpAddr, check: impl FnOnce() -> bool) -> Outcome {
        let entry = {
            let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > 10_000 {
                // Bounded memory: forget clients that are not backing off.
                map.retain(|_, c| {
                    Arc::strong_count(c) > 1 || c.try_lock().is_ok_and(|c| c.failures > 0)
                });
            }
            map.entry(ip).or_default().clone()
        };
        let mut client = entry.lock().await;
        let mut delayed = false;
        if let Some(until) = client.until {
            if until > Instant::now() {
                delayed = true;
                tracing::warn!(%ip, failures = client.failures, wait_ms = (until - Instant::now()).as_millis() as u64, "backing off after failed access passwords");
                tokio::time::sleep_until(until).await;
            }
        }
        let ok = check();
        if ok {
            client.failures = 0;
            client.until = None;
        } else {
            client.failures = client.failures.saturating_add(1);
            client.until = Some(Instant::now() + self.delay_after(client.failures));
            tracing::warn!(%ip, failures = client.failures, "wrong access password");
        }
        Outcome { ok, delayed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_ignores_the_user() {
        let h = format!("Basic {}", openssl::base64::encode_block(b"anyone:pa:ss"));
        assert_eq!(basic_password(h.as_bytes()).unwrap(), b"pa:ss");
        assert!(basic_password(b"Bearer x").is_none());
        assert!(basic_password(b"Basic !!!").is_none());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let g = Guard::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<_> = (0..7).map(|n| g.delay_after(n).as_millis()).collect();
        assert_eq!(d, [0, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(g.delay_after(u32::MAX), Duration::from_secs(1));
    }
}
