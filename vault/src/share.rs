//! Sharing one item with a pre-shared key (PSK), as the Enpass whitepaper describes:
//! the item is encrypted under a key derived from a PSK both people know (sent through
//! another channel than the blob), and the receiver imports it as a new item.
//!
//! ## The blob (version 1)
//! Text, safe to paste into a mail or chat:
//! ```text
//! -----BEGIN SYNCFABRIC SHARED ITEM-----
//! <base64 of the binary form, in lines of 64 characters>
//! -----END SYNCFABRIC SHARED ITEM-----
//! ```
//! Binary form, all integers big-endian:
//! ```text
//! offset  size  field
//!      0     4  magic "SFSI"
//!      4     1  version = 1
//!      5     1  KDF = 1 (PBKDF2-HMAC-SHA256)
//!      6     4  KDF iterations (100,000 to 10,000,000; written: 600,000)
//!     10    16  salt (random)
//!     26    12  AES-GCM nonce (random)
//!     38     n  AES-256-GCM ciphertext of the payload
//!   38+n    16  GCM tag
//! ```
//! Key = PBKDF2-HMAC-SHA256(PSK as UTF-8, trimmed of surrounding whitespace, salt,
//! iterations), 32 bytes. The additional authenticated data is the 38-byte header, so
//! no header byte (version, KDF, iterations, salt, nonce) can be changed unnoticed.
//! The payload is UTF-8 JSON:
//! `{"v":1,"item":{"title","subtitle","note","category","template","icon","favorite",
//! "fields":[{"uid","type","label","value","sensitive","order"}]}}`. Field history and
//! attachments are not shared. A wrong PSK and a changed blob are the same error (the
//! GCM tag does not verify): nothing is decrypted and nothing is imported.

use openssl::hash::MessageDigest;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::item::{Field, Item, NewItem};
use crate::secret::Secret;

const MAGIC: &[u8; 4] = b"SFSI";
const VERSION: u8 = 1;
const KDF_PBKDF2_SHA256: u8 = 1;
/// PBKDF2 iterations written into new blobs.
pub const ITERATIONS: u32 = 600_000;
const MIN_ITER: u32 = 100_000;
const MAX_ITER: u32 = 10_000_000;
const HEADER: usize = 38;
const TAG: usize = 16;
const BEGIN: &str = "-----BEGIN SYNCFABRIC SHARED ITEM-----";
const END: &str = "-----END SYNCFABRIC SHARED ITEM-----";
/// The largest blob accepted (text), so a hostile blob cannot exhaust memory.
pub const MAX_BLOB: usize = 16 * 1024 * 1024;

/// Why a share could not be made or read. No variant carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// Not a shared-item blob (no armour, bad base64, too short, wrong magic).
    #[error("not a syncfabric shared item: {0}")]
    Format(String),
    /// A version or KDF this build does not know.
    #[error("unsupported shared item: {0}")]
    Unsupported(String),
    /// The GCM tag did not verify: the PSK is not the one it was shared with, or the
    /// blob was changed on the way.
    #[error(
        "wrong pre-shared key, or the shared item was changed on the way: nothing was imported"
    )]
    Rejected,
    /// The PSK is empty.
    #[error("the pre-shared key is empty")]
    EmptyKey,
    /// OpenSSL failed.
    #[error("encryption failed: {0}")]
    Crypto(String),
}

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u32,
    item: SharedItem,
}

#[derive(Serialize, Deserialize)]
struct SharedItem {
    title: String,
    subtitle: String,
    note: String,
    category: String,
    template: String,
    icon: String,
    favorite: bool,
    fields: Vec<SharedField>,
}

#[derive(Serialize, Deserialize)]
struct SharedField {
    uid: i64,
    #[serde(rename = "type")]
    kind: String,
    label: String,
    value: String,
    sensitive: bool,
    order: i64,
}

fn crypto(e: openssl::error::ErrorStack) -> ShareError {
    ShareError::Crypto(e.to_string())
}

fn derive(psk: &Secret, salt: &[u8], iter: u32) -> Result<Zeroizing<[u8; 32]>, ShareError> {
    let psk = psk.expose().trim();
    if psk.is_empty() {
        return Err(ShareError::EmptyKey);
    }
    let mut key = Zeroizing::new([0u8; 32]);
    openssl::pkcs5::pbkdf2_hmac(
        psk.as_bytes(),
        salt,
        iter as usize,
        MessageDigest::sha256(),
        &mut key[..],
    )
    .map_err(crypto)?;
    Ok(key)
}

/// A new PSK: 256 random bits as 52 base32 characters in groups of four.
pub fn new_psk() -> Result<Secret, ShareError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut raw = Zeroizing::new([0u8; 33]); // 264 bits: 52 full characters + 4 spare bits
    openssl::rand::rand_bytes(&mut raw[..]).map_err(crypto)?;
    let mut out = Zeroizing::new(String::new());
    let (mut acc, mut bits, mut n) = (0u32, 0u32, 0usize);
    for &b in raw.iter() {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 && n < 52 {
            bits -= 5;
            if n > 0 && n % 4 == 0 {
                out.push('-');
            }
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
            n += 1;
        }
        acc &= (1 << bits) - 1;
    }
    Ok(Secret::new(out.as_str()))
}

/// Encrypts `item` (its live fields) under `psk` into a text blob.
pub fn share_item(item: &Item, psk: &Secret) -> Result<String, ShareError> {
    share_item_with(item, psk, ITERATIONS)
}

fn share_item_with(item: &Item, psk: &Secret, iter: u32) -> Result<String, ShareError> {
    let payload = Payload {
        v: 1,
        item: SharedItem {
            title: item.title.clone(),
            subtitle: item.subtitle.clone(),
            note: item.note.expose().to_owned(),
            category: item.category.clone(),
            template: item.template.clone(),
            icon: item.icon.clone(),
            favorite: item.favorite,
            fields: item
                .fields
                .iter()
                .filter(|f| !f.deleted)
                .map(|f| SharedField {
                    uid: f.uid,
                    kind: f.kind.clone(),
                    label: f.label.clone(),
                    value: f.value.expose().to_owned(),
                    sensitive: f.sensitive,
                    order: f.order,
                })
                .collect(),
        },
    };
    let plain = Zeroizing::new(
        serde_json::to_vec(&payload).map_err(|e| ShareError::Format(e.to_string()))?,
    );
    drop(payload); // (its strings are copies; the Zeroizing buffer is what matters)
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.push(VERSION);
    header.push(KDF_PBKDF2_SHA256);
    header.extend_from_slice(&iter.to_be_bytes());
    let mut salt_nonce = [0u8; 28];
    openssl::rand::rand_bytes(&mut salt_nonce).map_err(crypto)?;
    header.extend_from_slice(&salt_nonce);
    let key = derive(psk, &salt_nonce[..16], iter)?;
    let mut tag = [0u8; TAG];
    let ct = encrypt_aead(
        Cipher::aes_256_gcm(),
        &key[..],
        Some(&salt_nonce[16..]),
        &header,
        &plain,
        &mut tag,
    )
    .map_err(crypto)?;
    let mut bin = header;
    bin.extend_from_slice(&ct);
    bin.extend_from_slice(&tag);
    let b64 = openssl::base64::encode_block(&bin);
    let mut out = String::with_capacity(b64.len() + 100);
    out.push_str(BEGIN);
    out.push('\n');
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    Ok(out)
}

/// The binary form inside the armour (text around the armour is ignored, so a blob
/// pasted into a mail with a greeting still reads).
fn unarmour(text: &str) -> Result<Vec<u8>, ShareError> {
    if text.len() > MAX_BLOB {
        return Err(ShareError::Format("larger than 16 MiB".into()));
    }
    let start = text
        .find(BEGIN)
        .ok_or_else(|| ShareError::Format(format!("no {BEGIN} line")))?;
    let body = &text[start + BEGIN.len()..];
    let end = body
        .find(END)
        .ok_or_else(|| ShareError::Format(format!("no {END} line")))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    openssl::base64::decode_block(&b64).map_err(|_| ShareError::Format("bad base64".into()))
}

/// Decrypts a blob with `psk` into an item to add ([`crate::Vault::add_item`]); nothing
/// is returned unless the whole blob verifies.
pub fn receive_item(blob: &str, psk: &Secret) -> Result<NewItem, ShareError> {
    let bin = unarmour(blob)?;
    if bin.len() < HEADER + TAG {
        return Err(ShareError::Format("too short".into()));
    }
    if &bin[..4] != MAGIC {
        return Err(ShareError::Format("wrong magic".into()));
    }
    if bin[4] != VERSION {
        return Err(ShareError::Unsupported(format!("version {}", bin[4])));
    }
    if bin[5] != KDF_PBKDF2_SHA256 {
        return Err(ShareError::Unsupported(format!(
            "key derivation {}",
            bin[5]
        )));
    }
    let iter = u32::from_be_bytes([bin[6], bin[7], bin[8], bin[9]]);
    if !(MIN_ITER..=MAX_ITER).contains(&iter) {
        // Out of range: changed on the way (what we write is in range), or hostile.
        return Err(ShareError::Rejected);
    }
    let (header, rest) = bin.split_at(HEADER);
    let (ct, tag) = rest.split_at(rest.len() - TAG);
    let key = derive(psk, &header[10..26], iter)?;
    let plain = Zeroizing::new(
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &key[..],
            Some(&header[26..38]),
            header,
            ct,
            tag,
        )
        .map_err(|_| ShareError::Rejected)?,
    );
    let p: Payload =
        serde_json::from_slice(&plain).map_err(|e| ShareError::Format(format!("payload: {e}")))?;
    if p.v != 1 {
        return Err(ShareError::Unsupported(format!("payload version {}", p.v)));
    }
    let i = p.item;
    let fields = i
        .fields
        .into_iter()
        .map(|f| Field {
            sensitive: f.sensitive,
            order: f.order,
            ..Field::new(f.uid, &f.kind, &f.label, Secret::new(f.value))
        })
        .collect();
    Ok(NewItem {
        title: i.title,
        subtitle: i.subtitle,
        note: Secret::new(i.note),
        category: i.category,
        template: i.template,
        icon: i.icon,
        favorite: i.favorite,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::field_type;

    fn item() -> Item {
        let n = NewItem::login(
            "Bank",
            "me",
            Secret::new("hunter2-but-longer"),
            "https://bank.example",
        );
        Item {
            uuid: "u".into(),
            title: n.title,
            subtitle: n.subtitle,
            note: Secret::new("the note"),
            icon: n.icon,
            category: n.category,
            template: n.template,
            favorite: true,
            trashed: false,
            archived: false,
            deleted: false,
            created_at: 1,
            updated_at: 1,
            meta_updated_at: 1,
            field_updated_at: 1,
            fields: n.fields,
        }
    }

    #[test]
    fn round_trip_and_fresh_salt() {
        let psk = new_psk().unwrap();
        assert_eq!(psk.expose().len(), 52 + 12);
        let a = share_item_with(&item(), &psk, MIN_ITER).unwrap();
        let b = share_item_with(&item(), &psk, MIN_ITER).unwrap();
        assert_ne!(a, b, "a fresh salt and nonce each time");
        assert!(!a.contains("hunter2") && !a.contains("Bank"));
        let got = receive_item(&format!("hi,\n\n{a}\nbye"), &psk).unwrap();
        assert_eq!(got.title, "Bank");
        assert_eq!(got.note.expose(), "the note");
        assert!(got.favorite);
        let pw = got
            .fields
            .iter()
            .find(|f| f.kind == field_type::PASSWORD)
            .unwrap();
        assert_eq!(pw.value.expose(), "hunter2-but-longer");
        assert!(pw.sensitive);
    }

    #[test]
    fn wrong_key_and_every_changed_byte_are_rejected() {
        let psk = Secret::new("one two three");
        let blob = share_item_with(&item(), &psk, MIN_ITER).unwrap();
        assert_eq!(
            receive_item(&blob, &Secret::new("one two four")).unwrap_err(),
            ShareError::Rejected
        );
        assert_eq!(
            receive_item(&blob, &Secret::new("  ")).unwrap_err(),
            ShareError::EmptyKey
        );
        let bin = unarmour(&blob).unwrap();
        // Every byte of the header and a sample of the rest.
        let positions: Vec<usize> = (0..HEADER).chain((HEADER..bin.len()).step_by(7)).collect();
        for i in positions {
            let mut bad = bin.clone();
            bad[i] ^= 0x01;
            let text = format!("{BEGIN}\n{}\n{END}\n", openssl::base64::encode_block(&bad));
            assert!(
                receive_item(&text, &psk).is_err(),
                "byte {i} changed unnoticed"
            );
        }
        for bad in [
            "",
            "hello",
            &format!("{BEGIN}\n!!!\n{END}"),
            &format!("{BEGIN}\nAAAA\n{END}"),
        ] {
            assert!(
                matches!(receive_item(bad, &psk), Err(ShareError::Format(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let psk = new_psk().unwrap();
        assert!(!format!("{psk:?}").contains(&psk.expose()[..8]));
        let e = receive_item("x", &psk).unwrap_err();
        assert!(!format!("{e:?}{e}").contains(&psk.expose()[..8]));
    }
}
