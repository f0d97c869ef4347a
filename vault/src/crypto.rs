//! Thin wrappers over OpenSSL (the library SQLCipher already links): PBKDF2, AES-GCM
//! for field values, SHA-1 for field hashes, the CSPRNG, and the AES-CBC page-1 probe
//! that tells a wrong key from a damaged file.

use openssl::cipher_ctx::CipherCtx;
use openssl::hash::MessageDigest;
use openssl::symm::{Cipher, Crypter, Mode};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

fn ossl(what: &str) -> impl Fn(openssl::error::ErrorStack) -> Error + '_ {
    move |e| Error::Unsupported(format!("OpenSSL {what} failed: {e}"))
}

/// PBKDF2-HMAC-SHA512.
pub(crate) fn pbkdf2_sha512(secret: &[u8], salt: &[u8], iter: u32, out: &mut [u8]) -> Result<()> {
    openssl::pkcs5::pbkdf2_hmac(secret, salt, iter as usize, MessageDigest::sha512(), out)
        .map_err(ossl("PBKDF2"))
}

/// Fills `buf` from OpenSSL's CSPRNG (seeded by the OS).
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    openssl::rand::rand_bytes(buf).map_err(ossl("RAND_bytes"))
}

/// A fresh item key: 32-byte AES key ‖ 12-byte GCM nonce.
pub(crate) fn new_item_key() -> Result<Zeroizing<[u8; 44]>> {
    let mut k = Zeroizing::new([0u8; 44]);
    random_bytes(&mut k[..])?;
    Ok(k)
}

/// A random (version 4) UUID in lower-case hyphenated form.
pub(crate) fn new_uuid() -> Result<String> {
    let mut b = [0u8; 16];
    random_bytes(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The 16 raw bytes of a uuid (dashes removed, hex-decoded): the AAD of field values.
pub(crate) fn uuid_bytes(uuid: &str) -> Option<[u8; 16]> {
    let compact: String = uuid.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    hex::decode_to_slice(compact, &mut out).ok()?;
    Some(out)
}

/// Lower-case hex SHA-1 of `data`.
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    use openssl::sha::sha1;
    hex::encode(sha1(data))
}

/// AES-256-GCM encrypt: returns ciphertext ‖ 16-byte tag.
pub(crate) fn gcm_encrypt(item_key: &[u8; 44], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut tag = [0u8; 16];
    let mut ct = openssl::symm::encrypt_aead(
        Cipher::aes_256_gcm(),
        &item_key[..32],
        Some(&item_key[32..]),
        aad,
        plaintext,
        &mut tag,
    )
    .map_err(ossl("AES-GCM encrypt"))?;
    ct.extend_from_slice(&tag);
    Ok(ct)
}

/// AES-256-GCM decrypt of ciphertext ‖ tag; `None` when the tag does not verify.
pub(crate) fn gcm_decrypt(
    item_key: &[u8; 44],
    aad: &[u8],
    data: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if data.len() < 16 {
        return None;
    }
    let (ct, tag) = data.split_at(data.len() - 16);
    openssl::symm::decrypt_aead(
        Cipher::aes_256_gcm(),
        &item_key[..32],
        Some(&item_key[32..]),
        aad,
        ct,
        tag,
    )
    .ok()
    .map(Zeroizing::new)
}

/// AES-256-GCM decryption that reuses one OpenSSL cipher context for many values (a
/// listing decrypts one value per password field): the cipher is looked up once, and
/// each value only re-keys the context. Dropping it frees the context, which makes
/// OpenSSL wipe the last key schedule.
pub(crate) struct GcmOpener {
    ctx: CipherCtx,
}

impl GcmOpener {
    /// A context set up for AES-256-GCM decryption (no key yet).
    pub(crate) fn new() -> Result<GcmOpener> {
        let mut ctx = CipherCtx::new().map_err(ossl("cipher context"))?;
        ctx.decrypt_init(Some(openssl::cipher::Cipher::aes_256_gcm()), None, None)
            .map_err(ossl("AES-GCM init"))?;
        Ok(GcmOpener { ctx })
    }

    /// Decrypts ciphertext ‖ 16-byte tag with `item_key` (key ‖ 12-byte nonce) and
    /// `aad`; `None` when the tag does not verify (same contract as [`gcm_decrypt`]).
    pub(crate) fn open(
        &mut self,
        item_key: &[u8; 44],
        aad: &[u8],
        data: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        if data.len() < 16 {
            return None;
        }
        let (ct, tag) = data.split_at(data.len() - 16);
        let c = &mut self.ctx;
        c.decrypt_init(None, Some(&item_key[..32]), Some(&item_key[32..]))
            .ok()?;
        c.set_tag(tag).ok()?;
        c.cipher_update(aad, None).ok()?;
        let mut out = Zeroizing::new(vec![0u8; ct.len() + 16]);
        let n = c.cipher_update(ct, Some(&mut out[..])).ok()?;
        let m = c.cipher_final(&mut out[n..]).ok()?;
        out.truncate(n + m);
        Some(out)
    }
}

/// SQLCipher 3 page layout constants (cipher_compatibility = 3).
pub(crate) const PAGE_SIZE: usize = 1024;
const RESERVE: usize = 48; // 16-byte IV + 20-byte HMAC-SHA1, rounded up to the AES block

/// Decrypts the first AES block of page 1 (header bytes 16..32) with `key`, *without*
/// checking the page HMAC, and returns the header's "database size in pages" (bytes
/// 28..32) when the block looks like a SQLite header for SQLCipher 3 (page size 1024,
/// write/read version 1 or 2, 48 reserved bytes, payload fractions 64/32/32).
///
/// When SQLCipher refuses page 1, this tells "wrong key" (garbage: `None`) from "right
/// key, damaged page" (header intact, HMAC broken); on a file that opens, it tells
/// whether pages are missing at the end (truncation at a page boundary).
pub(crate) fn page1_header(page1: &[u8], key: &[u8; 32]) -> Option<u32> {
    if page1.len() < PAGE_SIZE {
        return None;
    }
    let iv = &page1[PAGE_SIZE - RESERVE..PAGE_SIZE - RESERVE + 16];
    let mut c = Crypter::new(Cipher::aes_256_cbc(), Mode::Decrypt, key, Some(iv)).ok()?;
    c.pad(false);
    let mut out = [0u8; 48];
    // Two blocks in so that OpenSSL releases the first one whatever its buffering.
    let n = c.update(&page1[16..48], &mut out).ok()?;
    if n < 16 {
        return None;
    }
    let ok = out[0] == 0x04
        && out[1] == 0x00
        && matches!(out[2], 1 | 2)
        && matches!(out[3], 1 | 2)
        && out[4] == RESERVE as u8
        && out[5] == 64
        && out[6] == 32
        && out[7] == 32;
    ok.then(|| u32::from_be_bytes([out[12], out[13], out[14], out[15]]))
}

/// [`page1_header`] is `Some`.
pub(crate) fn page1_header_plausible(page1: &[u8], key: &[u8; 32]) -> bool {
    page1_header(page1, key).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcm_round_trip_and_tamper() {
        let k = new_item_key().unwrap();
        let ct = gcm_encrypt(&k, b"aad", b"hello").unwrap();
        assert_eq!(&gcm_decrypt(&k, b"aad", &ct).unwrap()[..], b"hello");
        assert!(gcm_decrypt(&k, b"aae", &ct).is_none());
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(gcm_decrypt(&k, b"aad", &bad).is_none());
    }

    #[test]
    fn reused_opener_matches_one_shot_decrypt() {
        let mut o = GcmOpener::new().unwrap();
        for i in 0..5u8 {
            let k = new_item_key().unwrap();
            let msg = vec![i; 3 + 17 * i as usize];
            let ct = gcm_encrypt(&k, b"aad", &msg).unwrap();
            assert_eq!(&o.open(&k, b"aad", &ct).unwrap()[..], &msg[..]);
            assert_eq!(&gcm_decrypt(&k, b"aad", &ct).unwrap()[..], &msg[..]);
            // A failed tag leaves the context usable for the next value.
            let mut bad = ct.clone();
            bad[ct.len() - 1] ^= 1;
            assert!(o.open(&k, b"aad", &bad).is_none());
            assert!(o.open(&k, b"aae", &ct).is_none());
            assert!(o.open(&k, b"aad", &ct[..10]).is_none());
        }
        let k = new_item_key().unwrap();
        let ct = gcm_encrypt(&k, b"x", b"").unwrap();
        assert_eq!(o.open(&k, b"x", &ct).unwrap().len(), 0);
    }

    #[test]
    fn uuid_shape() {
        let u = new_uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(uuid_bytes(&u).is_some());
        assert!(uuid_bytes("not-a-uuid").is_none());
    }
}

#[cfg(test)]
mod probe_tests {
    #[test]
    fn page1_probe_on_real_vault() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/enpass-2020/vault.enpassdb");
        let bytes = std::fs::read(&p).expect("the real test vault (testdata/enpass-2020)");
        let mut key = [0u8; 32];
        hex::decode_to_slice(
            "fee57a6b3e0514915621bd51b022807b85dc325e3f4be3542300d13657c06b0d",
            &mut key,
        )
        .unwrap();
        assert!(super::page1_header_plausible(&bytes[..1024], &key));
        assert!(!super::page1_header_plausible(&bytes[..1024], &[1u8; 32]));
    }
}
