//! The server's self-signed certificate, made with OpenSSL and kept across restarts:
//! a new one would break every pairing (devices trust only the certificate they
//! paired with), so replacing it is an explicit step ([`ServerCert::rotate`]).
//!
//! Files in the server's state folder: `server-key.pem` (PKCS#8, mode 0600) and
//! `server-cert.pem`. The key is an EC P-256 key; the certificate is valid for ten
//! years and names the host's `.local` name and its addresses (subject alternative
//! names), so ordinary TLS clients (curl, rclone) accept it once told to trust it.

use crate::{Error, Result};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const KEY_FILE: &str = "server-key.pem";
const CERT_FILE: &str = "server-cert.pem";
const VALID_DAYS: u32 = 3650;

/// The names a certificate is made for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// Host names (e.g. `laptop.local`).
    pub dns: Vec<String>,
    /// Addresses.
    pub ips: Vec<IpAddr>,
}

/// The server's key and certificate.
pub struct ServerCert {
    key: PKey<Private>,
    cert: X509,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fp = self.fingerprint().map(hex::encode).unwrap_or_default();
        f.debug_struct("ServerCert")
            .field("sha256", &fp)
            .finish_non_exhaustive()
    }
}

impl ServerCert {
    /// The certificate kept in `dir`, or a new one for `names` written there when there
    /// is none. A key or certificate that does not read, or a certificate that is not
    /// the key's, is [`Error::BadCertificate`], never silently replaced.
    pub fn load_or_create(dir: &Path, names: &Names) -> Result<ServerCert> {
        let (kp, cp) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
        if kp.exists() || cp.exists() {
            return Self::load(dir);
        }
        let c = Self::generate(names)?;
        c.save(dir)?;
        Ok(c)
    }

    /// A new certificate for `names` written over the one in `dir`: every device
    /// paired with the old one must pair again.
    pub fn rotate(dir: &Path, names: &Names) -> Result<ServerCert> {
        let c = Self::generate(names)?;
        c.save(dir)?;
        Ok(c)
    }

    /// Reads the key and certificate kept in `dir`.
    pub fn load(dir: &Path) -> Result<ServerCert> {
        let bad = |why: String| Error::BadCertificate(dir.to_path_buf(), why);
        let key = PKey::private_key_from_pem(&read(&dir.join(KEY_FILE))?)
            .map_err(|e| bad(format!("key: {e}")))?;
        let cert = X509::from_pem(&read(&dir.join(CERT_FILE))?)
            .map_err(|e| bad(format!("certificate: {e}")))?;
        let public = cert.public_key().map_err(|e| bad(e.to_string()))?;
        if !public.public_eq(&key) {
            return Err(bad("the certificate is not the key's".into()));
        }
        Ok(ServerCert { key, cert })
    }

    /// A new self-signed certificate for `names` (not written anywhere).
    pub fn generate(names: &Names) -> Result<ServerCert> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut name = X509NameBuilder::new()?;
        let cn = names.dns.first().map_or("syncfabric", String::as_str);
        name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
        let name = name.build();
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(128, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
        let serial = serial.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        let (from, until) = (
            Asn1Time::days_from_now(0)?,
            Asn1Time::days_from_now(VALID_DAYS)?,
        );
        b.set_not_before(&from)?;
        b.set_not_after(&until)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        let mut san = SubjectAlternativeName::new();
        for d in &names.dns {
            san.dns(d);
        }
        for ip in &names.ips {
            san.ip(&ip.to_string());
        }
        if !names.dns.is_empty() || !names.ips.is_empty() {
            b.append_extension(san.build(&b.x509v3_context(None, None))?)?;
        }
        b.sign(&key, MessageDigest::sha256())?;
        Ok(ServerCert {
            key,
            cert: b.build(),
        })
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let io = |path: PathBuf| move |source| Error::Io { path, source };
        std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
        write_private(&dir.join(KEY_FILE), &self.key.private_key_to_pem_pkcs8()?)?;
        let cp = dir.join(CERT_FILE);
        std::fs::write(&cp, self.cert.to_pem()?).map_err(io(cp))
    }

    /// The certificate's SHA-256 fingerprint (of its DER encoding): what a paired
    /// device trusts, and the verification code's key.
    pub fn fingerprint(&self) -> Result<[u8; 32]> {
        let d = self.cert.digest(MessageDigest::sha256())?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&d);
        Ok(out)
    }

    /// The certificate.
    pub fn certificate(&self) -> &X509 {
        &self.cert
    }

    /// The private key (for the TLS acceptor).
    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }
}

/// The SHA-256 fingerprint of a certificate, as [`ServerCert::fingerprint`] computes it
/// (for the client side, from the certificate the server presented).
pub fn fingerprint_of(cert: &openssl::x509::X509Ref) -> Result<[u8; 32]> {
    let d = cert.digest(MessageDigest::sha256())?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&d);
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to a new file `path` readable by its owner only (replacing any).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
