//! Redacting, zeroising holders for secrets: [`Secret`], [`VaultKey`], [`Keyfile`].

use std::fmt;
use std::path::Path;

use zeroize::{Zeroize, Zeroizing};

use crate::crypto;
use crate::error::{Error, Result};

/// A secret string (master password, decrypted field value, note).
///
/// The bytes are wiped when the value is dropped; `Debug` prints `Secret(<redacted>)`;
/// there is no `Display`. Read it with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

/// A master password.
pub type Password = Secret;

impl Secret {
    /// Wraps `s` (taking ownership, so no unwiped copy remains with the caller).
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(s.into()))
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret::new(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The vault key: the 32-byte raw SQLCipher key derived from the master password (and
/// keyfile) with PBKDF2-HMAC-SHA512, together with the 16-byte salt it was derived
/// with (the first 16 bytes of `vault.enpassdb`).
///
/// Derive it once per unlock ([`VaultKey::derive`] is deliberately slow) and reuse it
/// for every database of the same vault (e.g. a downloaded remote copy, see
/// [`crate::read_snapshot_file`]). The key bytes are wiped on drop and never printed.
#[derive(Clone)]
pub struct VaultKey {
    key: Zeroizing<[u8; 32]>,
    salt: [u8; 16],
}

impl VaultKey {
    /// PBKDF2-HMAC-SHA512(`password` bytes ‖ keyfile's 32 raw bytes, `salt`,
    /// `iterations`), truncated to 32 bytes.
    pub fn derive(
        password: &Secret,
        keyfile: Option<&Keyfile>,
        salt: [u8; 16],
        iterations: u32,
    ) -> Result<VaultKey> {
        crate::meta::check_kdf_iter(i64::from(iterations))?;
        let mut secret = Zeroizing::new(Vec::with_capacity(password.expose().len() + 32));
        secret.extend_from_slice(password.expose().as_bytes());
        if let Some(k) = keyfile {
            secret.extend_from_slice(k.bytes());
        }
        let mut key = Zeroizing::new([0u8; 32]);
        crypto::pbkdf2_sha512(&secret, &salt, iterations, &mut key[..])?;
        Ok(VaultKey { key, salt })
    }

    /// A key from its raw parts (e.g. one kept by the sync engine between runs).
    pub fn from_raw(key: [u8; 32], salt: [u8; 16]) -> VaultKey {
        let mut k = key;
        let v = VaultKey {
            key: Zeroizing::new(k),
            salt,
        };
        k.zeroize();
        v
    }

    /// The salt this key was derived with.
    pub fn salt(&self) -> [u8; 16] {
        self.salt
    }

    /// The raw 32-byte key. Handle with care: never log it.
    pub fn expose_raw(&self) -> &[u8; 32] {
        &self.key
    }

    /// `x'<64 hex key>'` for `PRAGMA key` (opening an existing file: its salt is read
    /// from the file).
    pub(crate) fn pragma_key(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(80));
        s.push_str("PRAGMA key = \"x'");
        s.push_str(&hex::encode(&self.key[..]));
        s.push_str("'\";");
        s
    }

    /// `x'<64 hex key><32 hex salt>'`: creates a new file with exactly this salt.
    pub(crate) fn pragma_key_with_salt(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(112));
        s.push_str("x'");
        s.push_str(&hex::encode(&self.key[..]));
        s.push_str(&hex::encode(self.salt));
        s.push('\'');
        s
    }
}

impl PartialEq for VaultKey {
    fn eq(&self, other: &Self) -> bool {
        openssl::memcmp::eq(&self.key[..], &other.key[..]) && self.salt == other.salt
    }
}
impl Eq for VaultKey {}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKey")
            .field("salt", &hex::encode(self.salt))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// An Enpass keyfile: 32 random bytes, stored as XML
/// (`<?xml ...?><keyfile><key>64 hex characters</key></keyfile>`).
///
/// The bytes are wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyfile(Zeroizing<[u8; 32]>);

impl Keyfile {
    /// 32 fresh bytes from the OS CSPRNG (through OpenSSL's `RAND_bytes`).
    pub fn generate() -> Result<Keyfile> {
        let mut k = Zeroizing::new([0u8; 32]);
        crypto::random_bytes(&mut k[..])?;
        Ok(Keyfile(k))
    }

    /// Parses keyfile content, tolerantly: an optional XML prolog, any whitespace,
    /// any enclosing element; the first `<key>` element must hold exactly 64 hex
    /// characters (either case, surrounding whitespace ignored).
    ///
    /// Errors: [`Error::BadKeyfile`] (never echoing the content).
    pub fn parse(content: &[u8]) -> Result<Keyfile> {
        let text =
            std::str::from_utf8(content).map_err(|_| Error::BadKeyfile("not UTF-8 text".into()))?;
        let open =
            find_key_open(text).ok_or_else(|| Error::BadKeyfile("no <key> element".into()))?;
        let rest = &text[open..];
        let end = rest
            .find("</key>")
            .or_else(|| rest.find("</KEY>"))
            .ok_or_else(|| Error::BadKeyfile("unterminated <key> element".into()))?;
        let hex_text = rest[..end].trim();
        if hex_text.len() != 64 {
            return Err(Error::BadKeyfile(format!(
                "<key> must hold 64 hex characters, found {}",
                hex_text.len()
            )));
        }
        let mut k = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_text, &mut k[..])
            .map_err(|_| Error::BadKeyfile("<key> is not hexadecimal".into()))?;
        Ok(Keyfile(k))
    }

    /// Reads and parses a keyfile. Files over 64 KiB are refused as
    /// [`Error::BadKeyfile`] without being read whole.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Keyfile> {
        use std::io::Read;
        let path = path.as_ref();
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut buf = Zeroizing::new(Vec::new());
        f.take(64 * 1024 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(path, e))?;
        if buf.len() > 64 * 1024 {
            return Err(Error::BadKeyfile("file is larger than 64 KiB".into()));
        }
        Keyfile::parse(&buf)
    }

    /// The keyfile as Enpass writes it (XML, lower-case hex).
    pub fn to_xml(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(160));
        s.push_str(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<keyfile>\n    <key>",
        );
        s.push_str(&hex::encode(&self.0[..]));
        s.push_str("</key>\n</keyfile>\n");
        s
    }

    /// Writes [`Keyfile::to_xml`] to a new file at `path` (fails if it exists; mode
    /// 0600 on Unix).
    pub fn write_new(&self, path: impl AsRef<Path>) -> Result<()> {
        use std::io::Write;
        let path = path.as_ref();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| Error::io(path, e))?;
        f.write_all(self.to_xml().as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(path, e))
    }

    /// The 32 raw key bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A keyfile from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Keyfile {
        let mut b = bytes;
        let k = Keyfile(Zeroizing::new(b));
        b.zeroize();
        k
    }
}

fn find_key_open(text: &str) -> Option<usize> {
    // `<key>` or `<key attr="...">`, case-insensitive element name.
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("<key") {
        let start = from + i + 4;
        match lower.as_bytes().get(start) {
            Some(b'>') => return Some(start + 1),
            Some(c) if c.is_ascii_whitespace() => {
                let close = lower[start..].find('>')?;
                return Some(start + close + 1);
            }
            _ => from = start,
        }
    }
    None
}

impl fmt::Debug for Keyfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyfile(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyfile_round_trip_and_tolerance() {
        let k = Keyfile::generate().unwrap();
        assert_eq!(Keyfile::parse(k.to_xml().as_bytes()).unwrap(), k);
        let hexs = hex::encode(k.bytes()).to_uppercase();
        let loose = format!("  <keyfile>\n<key>\n  {hexs}  \n</key></keyfile>");
        assert_eq!(Keyfile::parse(loose.as_bytes()).unwrap(), k);
        for bad in [
            "",
            "<key></key>",
            "<keyfile>abc</keyfile>",
            "<key>zz</key>",
            "<key>00",
        ] {
            assert!(
                matches!(Keyfile::parse(bad.as_bytes()), Err(Error::BadKeyfile(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Keyfile::parse(&[0xff, 0xfe]),
            Err(Error::BadKeyfile(_))
        ));
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let k = VaultKey::from_raw([0xab; 32], [1; 16]);
        assert!(!format!("{k:?}").contains("abab"));
        let kf = Keyfile::from_bytes([0xcd; 32]);
        assert!(!format!("{kf:?}").contains("cdcd"));
    }
}
