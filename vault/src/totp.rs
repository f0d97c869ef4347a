//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), from what an item's
//! TOTP field holds: a base32 secret (as Enpass stores it, spaces allowed) or an
//! `otpauth://totp/…?secret=…` URI (Google Authenticator's key-URI format, with
//! `algorithm`, `digits` and `period`). The HMAC is OpenSSL's.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use zeroize::Zeroizing;

/// Why a TOTP secret or URI was not usable. Messages never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The secret is not base32 (RFC 4648 alphabet A–Z, 2–7; `=` padding and spaces
    /// allowed), or is empty.
    #[error("the TOTP secret is not valid base32 ({0})")]
    BadSecret(String),
    /// An `otpauth://` URI that cannot be used (the reason says which part).
    #[error("malformed otpauth URI: {0}")]
    BadUri(String),
    /// A parameter outside what authenticators use.
    #[error("unsupported TOTP parameter: {0}")]
    Unsupported(String),
    /// OpenSSL failed to compute the HMAC.
    #[error("HMAC failed: {0}")]
    Crypto(String),
}

/// The hash of the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1 (the default, and what nearly every site uses).
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    fn digest(self) -> MessageDigest {
        match self {
            Algorithm::Sha1 => MessageDigest::sha1(),
            Algorithm::Sha256 => MessageDigest::sha256(),
            Algorithm::Sha512 => MessageDigest::sha512(),
        }
    }
}

/// A TOTP generator: key, hash, digits and period.
#[derive(Clone)]
pub struct Totp {
    key: Zeroizing<Vec<u8>>,
    /// The HMAC's hash.
    pub algorithm: Algorithm,
    /// Digits of a code (6 to 10).
    pub digits: u32,
    /// Seconds a code lasts (1 to 3600).
    pub period: u64,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// Decodes RFC 4648 base32 (case-insensitive; spaces, dashes and `=` padding ignored).
pub fn base32_decode(s: &str) -> Result<Vec<u8>, TotpError> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u64, 0u32);
    let mut any = false;
    for c in s.chars() {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            ' ' | '-' | '=' | '\t' => continue,
            _ => {
                return Err(TotpError::BadSecret(
                    "a character outside A-Z and 2-7".into(),
                ))
            }
        };
        any = true;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if !any || out.is_empty() {
        return Err(TotpError::BadSecret("empty".into()));
    }
    Ok(out)
}

/// Whether `s` starts with `otpauth://` (any case; never slices inside a character).
fn has_scheme(s: &str) -> bool {
    s.get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("otpauth://"))
}

/// Percent-decodes a URI component (`%2F` → `/`; `+` stays `+`).
fn percent_decode(s: &str) -> Result<String, TotpError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| TotpError::BadUri("a bad %-escape".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| TotpError::BadUri("not UTF-8 after %-decoding".into()))
}

impl Totp {
    /// A generator with the usual parameters (SHA-1, 6 digits, 30 s).
    pub fn new(key: Vec<u8>) -> Totp {
        Totp {
            key: Zeroizing::new(key),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }

    /// From an item's TOTP field: an `otpauth://` URI or a bare base32 secret.
    pub fn parse(field: &str) -> Result<Totp, TotpError> {
        let f = field.trim();
        if has_scheme(f) {
            Totp::from_uri(f)
        } else {
            Ok(Totp::new(base32_decode(f)?))
        }
    }

    /// From an `otpauth://totp/LABEL?secret=…[&algorithm=SHA1|SHA256|SHA512][&digits=6..10][&period=N]`
    /// URI. `hotp` (counter-based) URIs are [`TotpError::Unsupported`].
    pub fn from_uri(uri: &str) -> Result<Totp, TotpError> {
        let rest = uri
            .get(10..)
            .filter(|_| has_scheme(uri))
            .ok_or_else(|| TotpError::BadUri("does not start with otpauth://".into()))?;
        let (kind, rest) = rest
            .split_once('/')
            .ok_or_else(|| TotpError::BadUri("no type (otpauth://totp/…)".into()))?;
        match kind.to_ascii_lowercase().as_str() {
            "totp" => {}
            "hotp" => {
                return Err(TotpError::Unsupported(
                    "hotp (counter-based) codes; only totp".into(),
                ))
            }
            _ => {
                return Err(TotpError::BadUri(
                    "the type is neither totp nor hotp".into(),
                ))
            }
        }
        let query = rest
            .split_once('?')
            .map(|(_, q)| q)
            .ok_or_else(|| TotpError::BadUri("no parameters (no secret)".into()))?;
        let query = query.split('#').next().unwrap_or("");
        let mut secret = None;
        let mut t = Totp::new(Vec::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v)?;
            match k.to_ascii_lowercase().as_str() {
                "secret" => secret = Some(Zeroizing::new(v)),
                "algorithm" => {
                    t.algorithm = match v.to_ascii_uppercase().as_str() {
                        "SHA1" => Algorithm::Sha1,
                        "SHA256" => Algorithm::Sha256,
                        "SHA512" => Algorithm::Sha512,
                        _ => {
                            return Err(TotpError::Unsupported(
                                "algorithm (SHA1, SHA256 or SHA512)".into(),
                            ))
                        }
                    }
                }
                "digits" => {
                    t.digits = v
                        .parse()
                        .ok()
                        .filter(|d| (6..=10).contains(d))
                        .ok_or_else(|| TotpError::Unsupported("digits (6 to 10)".into()))?
                }
                "period" => {
                    t.period = v
                        .parse()
                        .ok()
                        .filter(|p| (1..=3600).contains(p))
                        .ok_or_else(|| {
                            TotpError::Unsupported("period (1 to 3600 seconds)".into())
                        })?
                }
                _ => {} // issuer, image, …: not needed for the code
            }
        }
        let secret = secret.ok_or_else(|| TotpError::BadUri("no secret parameter".into()))?;
        t.key = Zeroizing::new(base32_decode(&secret)?);
        Ok(t)
    }

    /// The code for the HOTP counter `counter` (RFC 4226 dynamic truncation).
    pub fn hotp(&self, counter: u64) -> Result<String, TotpError> {
        let crypto = |e: openssl::error::ErrorStack| TotpError::Crypto(e.to_string());
        let pkey = PKey::hmac(&self.key).map_err(crypto)?;
        let mut signer = Signer::new(self.algorithm.digest(), &pkey).map_err(crypto)?;
        signer.update(&counter.to_be_bytes()).map_err(crypto)?;
        let mac = Zeroizing::new(signer.sign_to_vec().map_err(crypto)?);
        let off = (mac[mac.len() - 1] & 0x0f) as usize;
        let bin = u32::from_be_bytes([mac[off] & 0x7f, mac[off + 1], mac[off + 2], mac[off + 3]]);
        let modulus = 10u64
            .checked_pow(self.digits)
            .filter(|_| (6..=10).contains(&self.digits))
            .ok_or_else(|| TotpError::Unsupported("digits (6 to 10)".into()))?;
        let code = u64::from(bin) % modulus;
        Ok(format!("{code:0width$}", width = self.digits as usize))
    }

    /// The code at unix time `unix` and the seconds it stays valid.
    pub fn at(&self, unix: u64) -> Result<(String, u64), TotpError> {
        if !(1..=3600).contains(&self.period) {
            return Err(TotpError::Unsupported("period (1 to 3600 seconds)".into()));
        }
        let code = self.hotp(unix / self.period)?;
        Ok((code, self.period - unix % self.period))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: the seeds are ASCII "1234567890" repeated to 20, 32 and 64
    /// bytes; 8 digits, 30 s.
    #[test]
    fn rfc6238_test_vectors() {
        let seed = |n: usize| {
            b"1234567890"
                .iter()
                .cycle()
                .take(n)
                .copied()
                .collect::<Vec<u8>>()
        };
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in table {
            for (alg, len, want) in [
                (Algorithm::Sha1, 20, sha1),
                (Algorithm::Sha256, 32, sha256),
                (Algorithm::Sha512, 64, sha512),
            ] {
                let totp = Totp {
                    algorithm: alg,
                    digits: 8,
                    ..Totp::new(seed(len))
                };
                assert_eq!(totp.at(t).unwrap().0, want, "{alg:?} at {t}");
            }
        }
    }

    /// RFC 4226 appendix D: HOTP, SHA-1, 6 digits.
    #[test]
    fn rfc4226_hotp_vectors() {
        let t = Totp::new(b"12345678901234567890".to_vec());
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (c, w) in want.iter().enumerate() {
            assert_eq!(&t.hotp(c as u64).unwrap(), w);
        }
    }

    #[test]
    fn base32_and_uris() {
        // "12345678901234567890" in base32.
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(base32_decode(b32).unwrap(), b"12345678901234567890");
        assert_eq!(
            base32_decode("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap(),
            b"12345678901234567890"
        );
        let t = Totp::parse(&format!("otpauth://totp/ACME%20Co:me%40x.com?secret={b32}&issuer=ACME&algorithm=SHA256&digits=8&period=60")).unwrap();
        assert_eq!(
            (t.algorithm, t.digits, t.period),
            (Algorithm::Sha256, 8, 60)
        );
        let (code, left) = Totp::parse(b32).unwrap().at(59).unwrap();
        assert_eq!((code.as_str(), left), ("287082", 1));
        assert!(!format!("{t:?}").contains("GEZD"));
        // Public fields set out of range are errors, not panics.
        let bad = Totp {
            digits: 30,
            ..Totp::new(b"k".to_vec())
        };
        assert!(matches!(bad.at(1), Err(TotpError::Unsupported(_))));
        let bad = Totp {
            period: 0,
            ..Totp::new(b"k".to_vec())
        };
        assert!(matches!(bad.at(1), Err(TotpError::Unsupported(_))));
    }

    #[test]
    fn malformed_input_is_a_clear_error() {
        let b32 = "GEZDGNBVGY3TQOJQ";
        for (bad, want) in [
            ("", "BadSecret"),
            ("not base32!", "BadSecret"),
            ("otpauth://totp/x", "BadUri"),
            ("otpauth://totp/x?issuer=A", "BadUri"),
            ("otpauth://totp/x?secret=0189", "BadSecret"),
            ("otpauth://totp/x?secret=%ZZ", "BadUri"),
            ("otpauth://foo/x?secret=GEZD", "BadUri"),
            ("otpauth://totp", "BadUri"),
        ] {
            let e = Totp::parse(bad).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "{bad:?}: {e:?}");
        }
        for bad in [
            format!("otpauth://hotp/x?secret={b32}&counter=1"),
            format!("otpauth://totp/x?secret={b32}&algorithm=MD5"),
            format!("otpauth://totp/x?secret={b32}&digits=4"),
            format!("otpauth://totp/x?secret={b32}&period=0"),
        ] {
            assert!(
                matches!(Totp::parse(&bad), Err(TotpError::Unsupported(_))),
                "{bad}"
            );
        }
    }
}
