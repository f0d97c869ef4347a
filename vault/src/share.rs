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
//! "fields":[{"uid","type","label","value","sensitive","order"}]}}`. An item shared
//! with its attachments has payload version 2, which adds
//! `"attachments":[{"name","mime","data"}]` (`data`: the file's bytes in base64), so
//! a receiver that knows only version 1 refuses it instead of dropping the files
//! unnoticed; without attachments the payload stays version 1. Attachments are bounded
//! by the blob's own limit ([`MAX_BLOB`]: their bytes, base64 twice, must fit; about
//! 9 MiB in all, [`ShareError::TooLarge`] otherwise). Field history is not shared (it
//! holds values the sender replaced, which the receiver has no use for and which
//! should not travel). A wrong PSK and a changed blob are the same error (the GCM tag
//! does not verify): nothing is decrypted and nothing is imported.

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
    /// The blob would exceed [`MAX_BLOB`] (its attachments are too large to share).
    #[error("the shared item would be {size} bytes, over the {MAX_BLOB}-byte limit of a shared item; share it without its attachments")]
    TooLarge {
        /// The blob's size in bytes.
        size: usize,
    },
}

/// An attachment carried in a shared item: its name, MIME type and bytes (wiped on
/// drop; its Debug output shows only the name and size).
pub struct SharedFile {
    /// The file name shown.
    pub name: String,
    /// The MIME type.
    pub mime: String,
    /// The content.
    pub data: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SharedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFile")
            .field("name", &self.name)
            .field("mime", &self.mime)
            .field("size", &self.data.len())
            .finish()
    }
}

/// What a blob holds: the item to add ([`crate::Vault::add_item`]) and its attachments
/// (to add with [`crate::Vault::add_attachment`]).
#[derive(Debug)]
pub struct Received {
    /// The item.
    pub item: NewItem,
    /// Its attachments, in the order they were shared.
    pub files: Vec<SharedFile>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u32,
    item: SharedItem,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<SharedAttachment>,
}

#[derive(Serialize, Deserialize)]
struct SharedAttachment {
    name: String,
    mime: String,
    data: String,
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

/// Encrypts `item` (its live fields) and `files` (its attachments to send; may be
/// empty) under `psk` into a text blob.
///
/// Errors: [`ShareError::TooLarge`] when the blob would exceed [`MAX_BLOB`],
/// [`ShareError::EmptyKey`], [`ShareError::Crypto`].
pub fn share_item(item: &Item, files: &[SharedFile], psk: &Secret) -> Result<String, ShareError> {
    share_item_with(item, files, psk, ITERATIONS)
}

fn share_item_with(
    item: &Item,
    files: &[SharedFile],
    psk: &Secret,
    iter: u32,
) -> Result<String, ShareError> {
    // Base64 twice (in the JSON, then the armour): refuse before encoding anything.
    let estimate = files.iter().map(|f| f.data.len()).sum::<usize>() / 3 * 4 / 3 * 4;
    if estimate > MAX_BLOB {
        return Err(ShareError::TooLarge { size: estimate });
    }
    let payload = Payload {
        v: if files.is_empty() { 1 } else { 2 },
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
        attachments: files
            .iter()
            .map(|f| SharedAttachment {
                name: f.name.clone(),
                mime: f.mime.clone(),
                data: openssl::base64::encode_block(&f.data),
            })
            .collect(),
    };
    let plain = Zeroizing::new(
        serde_json::to_vec(&payload).map_err(|e| ShareError::Format(e.to_string()))?,
    );
    wipe_payload(payload);
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
    if out.len() > MAX_BLOB {
        return Err(ShareError::TooLarge { size: out.len() });
    }
    Ok(out)
}

/// Drops the payload's copies of secret values and file contents after wiping them.
fn wipe_payload(p: Payload) {
    let _note = Zeroizing::new(p.item.note);
    for f in p.item.fields {
        let _v = Zeroizing::new(f.value);
    }
    for a in p.attachments {
        let _d = Zeroizing::new(a.data);
    }
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

/// Decrypts a blob with `psk` into the item and attachments it carries; nothing is
/// returned unless the whole blob verifies.
///
/// Errors: [`ShareError::Rejected`] (wrong PSK or changed blob), [`ShareError::Format`],
/// [`ShareError::Unsupported`], [`ShareError::EmptyKey`].
pub fn receive_item(blob: &str, psk: &Secret) -> Result<Received, ShareError> {
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
    if !(1..=2).contains(&p.v) {
        return Err(ShareError::Unsupported(format!("payload version {}", p.v)));
    }
    let files = p
        .attachments
        .into_iter()
        .map(|a| {
            let data = Zeroizing::new(a.data);
            Ok(SharedFile {
                data: Zeroizing::new(openssl::base64::decode_block(&data).map_err(|_| {
                    ShareError::Format(format!("attachment {:?}: bad base64", a.name))
                })?),
                name: a.name,
                mime: a.mime,
            })
        })
        .collect::<Result<Vec<_>, ShareError>>()?;
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
    let item = NewItem {
        title: i.title,
        subtitle: i.subtitle,
        note: Secret::new(i.note),
        category: i.category,
        template: i.template,
        icon: i.icon,
        favorite: i.favorite,
        fields,
    };
    Ok(Received { item, files })
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
        let a = share_item_with(&item(), &[], &psk, MIN_ITER).unwrap();
        let b = share_item_with(&item(), &[], &psk, MIN_ITER).unwrap();
        assert_ne!(a, b, "a fresh salt and nonce each time");
        assert!(!a.contains("hunter2") && !a.contains("Bank"));
        let got = receive_item(&format!("hi,\n\n{a}\nbye"), &psk).unwrap();
        assert!(got.files.is_empty());
        let got = got.item;
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
        let blob = share_item_with(&item(), &[], &psk, MIN_ITER).unwrap();
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
    fn attachments_travel_whole_in_a_version_2_payload() {
        let psk = Secret::new("one two three");
        let bytes: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let files = [
            SharedFile {
                name: "scan.pdf".into(),
                mime: "application/pdf".into(),
                data: Zeroizing::new(bytes.clone()),
            },
            SharedFile {
                name: "empty.txt".into(),
                mime: "text/plain".into(),
                data: Zeroizing::new(Vec::new()),
            },
        ];
        let blob = share_item_with(&item(), &files, &psk, MIN_ITER).unwrap();
        let got = receive_item(&blob, &psk).unwrap();
        assert_eq!(got.item.title, "Bank");
        assert_eq!(got.files.len(), 2);
        assert_eq!(
            (got.files[0].name.as_str(), got.files[0].mime.as_str()),
            ("scan.pdf", "application/pdf")
        );
        assert_eq!(&got.files[0].data[..], &bytes[..]);
        assert!(got.files[1].data.is_empty());
        assert!(!format!("{:?}", got.files[0]).contains("[1, "));
        // The payload says version 2, so a version-1 reader refuses it.
        let bin = unarmour(&blob).unwrap();
        let (header, rest) = bin.split_at(HEADER);
        let key = derive(&psk, &header[10..26], MIN_ITER).unwrap();
        let (ct, tag) = rest.split_at(rest.len() - TAG);
        let plain = decrypt_aead(
            Cipher::aes_256_gcm(),
            &key[..],
            Some(&header[26..38]),
            header,
            ct,
            tag,
        )
        .unwrap();
        assert!(
            plain.starts_with(b"{\"v\":2,"),
            "{}",
            String::from_utf8_lossy(&plain[..10])
        );
    }

    #[test]
    fn attachments_too_large_for_a_blob_are_refused_before_encrypting() {
        let psk = Secret::new("one two three");
        let files = [SharedFile {
            name: "big.bin".into(),
            mime: "application/octet-stream".into(),
            data: Zeroizing::new(vec![0u8; MAX_BLOB / 5 * 3]),
        }];
        match share_item_with(&item(), &files, &psk, MIN_ITER) {
            Err(ShareError::TooLarge { size }) => assert!(size > MAX_BLOB),
            other => panic!("{other:?}"),
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
