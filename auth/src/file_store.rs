//! [`EncryptedFileTokenStore`]: all accounts' tokens in one file, encrypted with a key
//! derived from a passphrase the person unlocks.
//!
//! File format (version 1), all integers big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `SFTOKENS` |
//! | 1 | format version, `1` |
//! | 1 | KDF id, `1` = scrypt |
//! | 1 | scrypt log2(N) |
//! | 4 | scrypt r |
//! | 4 | scrypt p |
//! | 16 | salt |
//! | 16 | passphrase check: the first 16 bytes of SHA-256 over the second half of the scrypt output |
//! | 12 | AES-GCM nonce, fresh from the CSPRNG for every write |
//! | n | AES-256-GCM ciphertext of a JSON object `{account key: secret}` |
//! | 16 | GCM tag |
//!
//! scrypt (OpenSSL's `EVP_PBE_scrypt`) turns the passphrase and salt into 64 bytes:
//! the first 32 are the AES key, the rest only feed the passphrase check, so a wrong
//! passphrase is told apart from a damaged file without trying a decryption. Every
//! header byte is authenticated data of the GCM tag: a changed byte anywhere makes the
//! file unreadable ([`AuthError::Corrupt`] or [`AuthError::WrongPassphrase`]), never
//! garbage. Writes go to a `0600` temporary file in the same folder, are synced and
//! renamed over the old file; writers of different processes take turns through an
//! exclusive lock on `<file>.lock`.

use crate::{AuthError, Result};
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use syncfabric_core::auth::{SecretToken, TokenStore};
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"SFTOKENS";
const VERSION: u8 = 1;
const KDF_SCRYPT: u8 = 1;
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 8 + 1 + 1 + 1 + 4 + 4 + SALT_LEN + CHECK_LEN + NONCE_LEN;

/// scrypt cost parameters. The default (N = 2^17, r = 8, p = 1: 128 MiB, a few
/// hundred milliseconds) follows current guidance for interactive logins; tests use
/// [`KdfParams::fast_for_tests`]. The parameters are stored in the file, so a file
/// keeps opening after the default changes. Files asking for more than N = 2^20,
/// r = 16 or p = 4 are refused as damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// log2 of scrypt's N (10..=20).
    pub log_n: u8,
    /// scrypt's r (1..=16).
    pub r: u32,
    /// scrypt's p (1..=4).
    pub p: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            log_n: 17,
            r: 8,
            p: 1,
        }
    }
}

impl KdfParams {
    /// N = 2^10: fast, for tests only (weak against guessing).
    pub fn fast_for_tests() -> Self {
        KdfParams {
            log_n: 10,
            r: 8,
            p: 1,
        }
    }

    fn valid(&self) -> bool {
        (10..=20).contains(&self.log_n) && (1..=16).contains(&self.r) && (1..=4).contains(&self.p)
    }
}

/// Key material derived from the passphrase for one salt and parameter set.
struct Derived {
    salt: [u8; SALT_LEN],
    params: KdfParams,
    key: Zeroizing<[u8; 32]>,
    check: [u8; CHECK_LEN],
}

fn derive(passphrase: &[u8], salt: [u8; SALT_LEN], params: KdfParams) -> Result<Derived> {
    let n = 1u64 << params.log_n;
    let r = u64::from(params.r);
    let p = u64::from(params.p);
    // OpenSSL needs about 128·r·(N + p) bytes; allow some slack.
    let maxmem = 128 * r * (n + p + 2) + (1 << 20);
    let mut out = Zeroizing::new([0u8; 64]);
    openssl::pkcs5::scrypt(passphrase, &salt, n, r, p, maxmem, &mut out[..]).map_err(|e| {
        AuthError::Config {
            message: format!("scrypt failed: {e}"),
        }
    })?;
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&out[..32]);
    let digest = openssl::sha::sha256(&out[32..]);
    let mut check = [0u8; CHECK_LEN];
    check.copy_from_slice(&digest[..CHECK_LEN]);
    Ok(Derived {
        salt,
        params,
        key,
        check,
    })
}

/// A [`TokenStore`] in one encrypted file (format in the [module docs](self)).
/// Every `get` re-reads the file, so tokens written by another process are seen.
/// `Debug` shows the path only.
///
/// ```no_run
/// # async fn demo() -> syncfabric_auth::Result<()> {
/// use syncfabric_auth::EncryptedFileTokenStore;
/// use syncfabric_core::auth::{SecretToken, TokenStore};
/// let pass = SecretToken::new("correct horse battery staple");
/// let store = EncryptedFileTokenStore::open("/home/me/.config/syncfabric/tokens.enc", &pass)?;
/// store.put("onedrive:alice", SecretToken::new("{...}")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EncryptedFileTokenStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    passphrase: Zeroizing<Vec<u8>>,
    params: KdfParams,
    derived: std::sync::Mutex<Option<Arc<Derived>>>,
}

impl std::fmt::Debug for EncryptedFileTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedFileTokenStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

type Accounts = BTreeMap<String, String>;

/// Zeroes every secret of the map when dropped.
struct Plain(Accounts);

impl Drop for Plain {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for v in self.0.values_mut() {
            v.zeroize();
        }
    }
}

impl EncryptedFileTokenStore {
    /// Opens (or prepares to create, on the first write) the token file at `path`
    /// with `passphrase`, using the default [`KdfParams`] for a new file.
    /// An existing file is read once now: [`AuthError::WrongPassphrase`] or
    /// [`AuthError::Corrupt`] are reported here rather than at the first use.
    /// An empty passphrase is [`AuthError::Config`].
    pub fn open(path: impl Into<PathBuf>, passphrase: &SecretToken) -> Result<Self> {
        Self::open_with(path, passphrase, KdfParams::default())
    }

    /// As [`open`](Self::open), with `params` for a new file.
    pub fn open_with(
        path: impl Into<PathBuf>,
        passphrase: &SecretToken,
        params: KdfParams,
    ) -> Result<Self> {
        if passphrase.expose().is_empty() {
            return Err(AuthError::Config {
                message: "the token-store passphrase must not be empty".into(),
            });
        }
        if !params.valid() {
            return Err(AuthError::Config {
                message: format!("scrypt parameters out of range: {params:?}"),
            });
        }
        let store = EncryptedFileTokenStore {
            inner: Arc::new(Inner {
                path: path.into(),
                passphrase: Zeroizing::new(passphrase.expose().as_bytes().to_vec()),
                params,
                derived: std::sync::Mutex::new(None),
            }),
        };
        drop(store.inner.read()?);
        Ok(store)
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the token file exists yet.
    pub fn exists(&self) -> bool {
        self.inner.path.exists()
    }

    /// The account keys stored, sorted.
    pub async fn accounts(&self) -> Result<Vec<String>> {
        let inner = self.inner.clone();
        blocking(move || Ok(inner.read()?.0.keys().cloned().collect())).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuthError::Config {
            message: format!("token store task failed: {e}"),
        })?
}

impl Inner {
    fn display(&self) -> String {
        self.path.display().to_string()
    }

    fn corrupt(&self, message: &str) -> AuthError {
        AuthError::Corrupt {
            path: self.display(),
            message: message.to_string(),
        }
    }

    fn io(&self, what: &str, e: std::io::Error) -> AuthError {
        AuthError::Store(syncfabric_core::Error::from_io(
            e,
            &format!("{} ({what})", self.display()),
        ))
    }

    /// Key material for `salt`/`params`, derived once and cached.
    fn derived_for(&self, salt: [u8; SALT_LEN], params: KdfParams) -> Result<Arc<Derived>> {
        let mut slot = self.derived.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = slot.as_ref() {
            if d.salt == salt && d.params == params {
                return Ok(d.clone());
            }
        }
        let d = Arc::new(derive(&self.passphrase, salt, params)?);
        *slot = Some(d.clone());
        Ok(d)
    }

    /// Key material for writing a new file.
    fn derived_for_new(&self) -> Result<Arc<Derived>> {
        if let Some(d) = self
            .derived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(d.clone());
        }
        let mut salt = [0u8; SALT_LEN];
        openssl::rand::rand_bytes(&mut salt).map_err(|e| AuthError::Config {
            message: format!("no random bytes: {e}"),
        })?;
        self.derived_for(salt, self.params)
    }

    /// Reads and decrypts the file; an absent file is an empty store.
    fn read(&self) -> Result<Plain> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Plain(Accounts::new()))
            }
            Err(e) => return Err(self.io("read", e)),
        };
        self.decrypt(&bytes)
    }

    fn decrypt(&self, bytes: &[u8]) -> Result<Plain> {
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(self.corrupt("too short to be a token file"));
        }
        if &bytes[..8] != MAGIC {
            return Err(self.corrupt("not a syncfabric token file"));
        }
        if bytes[8] != VERSION || bytes[9] != KDF_SCRYPT {
            return Err(self.corrupt("unknown format version"));
        }
        let be32 =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let params = KdfParams {
            log_n: bytes[10],
            r: be32(11),
            p: be32(15),
        };
        if !params.valid() {
            return Err(self.corrupt("key-derivation parameters out of range"));
        }
        let mut at = 19;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[at..at + SALT_LEN]);
        at += SALT_LEN;
        let check = &bytes[at..at + CHECK_LEN];
        at += CHECK_LEN;
        let nonce = &bytes[at..at + NONCE_LEN];
        at += NONCE_LEN;
        debug_assert_eq!(at, HEADER_LEN);
        let d = self.derived_for(salt, params)?;
        if !openssl::memcmp::eq(&d.check, check) {
            return Err(AuthError::WrongPassphrase {
                path: self.display(),
            });
        }
        let body = &bytes[HEADER_LEN..bytes.len() - TAG_LEN];
        let tag = &bytes[bytes.len() - TAG_LEN..];
        let plain = Zeroizing::new(
            decrypt_aead(
                Cipher::aes_256_gcm(),
                &d.key[..],
                Some(nonce),
                &bytes[..HEADER_LEN],
                body,
                tag,
            )
            .map_err(|_| self.corrupt("authentication tag mismatch"))?,
        );
        let map: Accounts = serde_json::from_slice(&plain)
            .map_err(|_| self.corrupt("the decrypted content is not a token map"))?;
        Ok(Plain(map))
    }

    fn encrypt(&self, map: &Accounts) -> Result<Vec<u8>> {
        let d = self.derived_for_new()?;
        let plain = Zeroizing::new(serde_json::to_vec(map).map_err(|e| AuthError::Config {
            message: format!("serialising tokens: {e}"),
        })?);
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce).map_err(|e| AuthError::Config {
            message: format!("no random bytes: {e}"),
        })?;
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(KDF_SCRYPT);
        out.push(d.params.log_n);
        out.extend_from_slice(&d.params.r.to_be_bytes());
        out.extend_from_slice(&d.params.p.to_be_bytes());
        out.extend_from_slice(&d.salt);
        out.extend_from_slice(&d.check);
        out.extend_from_slice(&nonce);
        let mut tag = [0u8; TAG_LEN];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &d.key[..],
            Some(&nonce),
            &out[..HEADER_LEN],
            &plain,
            &mut tag,
        )
        .map_err(|e| AuthError::Config {
            message: format!("AES-GCM failed: {e}"),
        })?;
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Read-modify-write under the cross-process lock.
    fn update(&self, f: impl FnOnce(&mut Accounts)) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| self.io("create folder", e))?;
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| self.io("lock file", e))?;
        lock.lock().map_err(|e| self.io("lock", e))?;
        let mut plain = self.read()?;
        f(&mut plain.0);
        let bytes = self.encrypt(&plain.0)?;
        let mut rnd = [0u8; 8];
        let _ = openssl::rand::rand_bytes(&mut rnd);
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".tmp-{}", hex_of(&rnd)));
        let tmp = PathBuf::from(tmp);
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok::<(), std::io::Error>(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        drop(lock);
        result.map_err(|e| self.io("write", e))
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[async_trait::async_trait]
impl TokenStore for EncryptedFileTokenStore {
    async fn get(&self, account: &str) -> syncfabric_core::Result<Option<SecretToken>> {
        let inner = self.inner.clone();
        let account = account.to_string();
        Ok(blocking(move || {
            Ok(inner
                .read()?
                .0
                .get(&account)
                .map(|s| SecretToken::new(s.as_str())))
        })
        .await?)
    }

    async fn put(&self, account: &str, token: SecretToken) -> syncfabric_core::Result<()> {
        let inner = self.inner.clone();
        let account = account.to_string();
        Ok(blocking(move || {
            inner.update(|m| {
                if let Some(mut old) = m.insert(account, token.expose().to_string()) {
                    zeroize::Zeroize::zeroize(&mut old);
                }
            })
        })
        .await?)
    }

    async fn delete(&self, account: &str) -> syncfabric_core::Result<()> {
        let inner = self.inner.clone();
        let account = account.to_string();
        Ok(blocking(move || {
            if !inner.read()?.0.contains_key(&account) {
                return Ok(());
            }
            inner.update(|m| {
                if let Some(mut old) = m.remove(&account) {
                    zeroize::Zeroize::zeroize(&mut old);
                }
            })
        })
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, pass: &str) -> Result<EncryptedFileTokenStore> {
        EncryptedFileTokenStore::open_with(
            dir.join("tokens.enc"),
            &SecretToken::new(pass),
            KdfParams::fast_for_tests(),
        )
    }

    #[tokio::test]
    async fn round_trip_across_instances_no_plaintext_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), "pass-one").unwrap();
        assert!(!a.exists());
        assert!(a.get("onedrive:x").await.unwrap().is_none());
        a.put("onedrive:x", SecretToken::new("ACCESS-abcdef-123456"))
            .await
            .unwrap();
        a.put("sharepoint:y", SecretToken::new("REFRESH-zyxwvu-987654"))
            .await
            .unwrap();
        // A second instance (as another process would) sees both.
        let b = store(dir.path(), "pass-one").unwrap();
        assert_eq!(
            b.get("onedrive:x").await.unwrap().unwrap().expose(),
            "ACCESS-abcdef-123456"
        );
        assert_eq!(
            b.accounts().await.unwrap(),
            vec!["onedrive:x", "sharepoint:y"]
        );
        b.delete("onedrive:x").await.unwrap();
        b.delete("onedrive:x").await.unwrap();
        assert!(a.get("onedrive:x").await.unwrap().is_none());

        let bytes = std::fs::read(a.path()).unwrap();
        for needle in ["REFRESH-zyxwvu", "zyxwvu", "sharepoint:y", "pass-one"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in plaintext"
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{a:?}").contains("pass-one"));
    }

    #[tokio::test]
    async fn fresh_nonce_per_write() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), "p").unwrap();
        a.put("k", SecretToken::new("v")).await.unwrap();
        let one = std::fs::read(a.path()).unwrap();
        a.put("k", SecretToken::new("v")).await.unwrap();
        let two = std::fs::read(a.path()).unwrap();
        let n = HEADER_LEN - NONCE_LEN..HEADER_LEN;
        assert_ne!(one[n.clone()], two[n], "nonce reused");
        assert_ne!(one, two);
    }

    #[tokio::test]
    async fn wrong_passphrase_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), "right").unwrap();
        a.put("k", SecretToken::new("v")).await.unwrap();
        match store(dir.path(), "wrong") {
            Err(e @ AuthError::WrongPassphrase { .. }) => {
                assert!(
                    e.to_string().contains("wrong token-store passphrase"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store(dir.path(), ""),
            Err(AuthError::Config { .. })
        ));
    }

    #[tokio::test]
    async fn every_flipped_byte_is_refused_never_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), "right").unwrap();
        a.put("onedrive:x", SecretToken::new("value"))
            .await
            .unwrap();
        let good = std::fs::read(a.path()).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(a.path(), &bad).unwrap();
            match store(dir.path(), "right") {
                Err(AuthError::Corrupt { .. }) | Err(AuthError::WrongPassphrase { .. }) => {}
                other => panic!("byte {i}: {other:?}"),
            }
            // The already-open store refuses too (it re-reads the file).
            assert!(a.get("onedrive:x").await.is_err(), "byte {i}");
        }
        for len in [0, 5, HEADER_LEN, good.len() - 1] {
            std::fs::write(a.path(), &good[..len]).unwrap();
            assert!(
                matches!(store(dir.path(), "right"), Err(AuthError::Corrupt { .. })),
                "len {len}"
            );
        }
        std::fs::write(a.path(), &good).unwrap();
        assert_eq!(
            a.get("onedrive:x").await.unwrap().unwrap().expose(),
            "value"
        );
    }

    #[tokio::test]
    async fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = store(dir.path(), "p").unwrap();
            tasks.push(tokio::spawn(async move {
                s.put(&format!("acct{i}"), SecretToken::new(format!("v{i}")))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let s = store(dir.path(), "p").unwrap();
        assert_eq!(s.accounts().await.unwrap().len(), 8);
    }
}
