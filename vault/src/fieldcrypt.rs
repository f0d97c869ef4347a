//! Encryption of field values and histories with an item key (AES-256-GCM, key ‖
//! nonce = `item.key`, AAD = the item uuid's 16 raw bytes).

use serde_json::{Map, Value as Json};
use zeroize::Zeroizing;

use crate::crypto;
use crate::error::{Error, Result};

/// An item key as stored in `item.key`: 32-byte AES key ‖ 12-byte nonce.
pub(crate) type ItemKey = Zeroizing<[u8; 44]>;

/// Reads `item.key` bytes; anything but 44 bytes is "no usable key".
pub(crate) fn item_key_from_blob(b: Option<&[u8]>) -> Option<ItemKey> {
    let b = b?;
    if b.len() != 44 {
        return None;
    }
    let mut k = Zeroizing::new([0u8; 44]);
    k.copy_from_slice(b);
    Some(k)
}

fn aad(uuid: &str) -> Result<[u8; 16]> {
    crypto::uuid_bytes(uuid)
        .ok_or_else(|| Error::Corrupt(format!("item uuid {uuid:?} is not a uuid")))
}

/// Decrypts a stored hex(ciphertext ‖ tag); the empty string stays empty.
pub(crate) fn decrypt_value(
    key: Option<&ItemKey>,
    uuid: &str,
    stored: &str,
) -> Result<Zeroizing<String>> {
    if stored.is_empty() {
        return Ok(Zeroizing::new(String::new()));
    }
    let key = key.ok_or_else(|| {
        Error::Corrupt(format!(
            "item {uuid}: encrypted value but no usable item key"
        ))
    })?;
    let bytes = hex::decode(stored)
        .map_err(|_| Error::Corrupt(format!("item {uuid}: encrypted value is not hex")))?;
    let pt = crypto::gcm_decrypt(key, &aad(uuid)?, &bytes).ok_or_else(|| {
        Error::Corrupt(format!(
            "item {uuid}: a value does not decrypt with the item key"
        ))
    })?;
    let s = String::from_utf8(pt.to_vec())
        .map_err(|_| Error::Corrupt(format!("item {uuid}: decrypted value is not UTF-8")))?;
    Ok(Zeroizing::new(s))
}

/// Encrypts a plaintext value to hex(ciphertext ‖ tag); the empty string stays empty.
pub(crate) fn encrypt_value(key: &ItemKey, uuid: &str, plain: &str) -> Result<String> {
    if plain.is_empty() {
        return Ok(String::new());
    }
    Ok(hex::encode(crypto::gcm_encrypt(
        key,
        &aad(uuid)?,
        plain.as_bytes(),
    )?))
}

/// Stored history (`[{"encrypted":true,"updated_at":..,"value":hex}, ..]`) to the
/// snapshot form (`[{"updated_at":..,"value":plaintext}, ..]`, other keys kept, compact).
/// Empty/whitespace stays as it is.
pub(crate) fn decrypt_history(
    key: Option<&ItemKey>,
    uuid: &str,
    stored: &str,
) -> Result<Zeroizing<String>> {
    if stored.trim().is_empty() {
        return Ok(Zeroizing::new(stored.to_owned()));
    }
    let parsed: Json = serde_json::from_str(stored)
        .map_err(|_| Error::Corrupt(format!("item {uuid}: field history is not JSON")))?;
    let Json::Array(entries) = parsed else {
        return Err(Error::Corrupt(format!(
            "item {uuid}: field history is not a JSON array"
        )));
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let Json::Object(mut m) = e else {
            return Err(Error::Corrupt(format!(
                "item {uuid}: field history entry is not an object"
            )));
        };
        let encrypted = m
            .shift_remove("encrypted")
            .map(|v| v.as_bool() == Some(true) || v.as_i64() == Some(1))
            .unwrap_or(false);
        if encrypted {
            let hexv = m
                .get("value")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned();
            let pt = decrypt_value(key, uuid, &hexv)?;
            m.insert("value".into(), Json::String(pt.to_string()));
        }
        out.push(Json::Object(m));
    }
    Ok(Zeroizing::new(
        serde_json::to_string(&Json::Array(out)).unwrap_or_default(),
    ))
}

/// Snapshot-form history to the stored form, every value encrypted, keys sorted
/// (`encrypted`, `updated_at`, `value`, then any others in order), compact.
pub(crate) fn encrypt_history(key: &ItemKey, uuid: &str, plain: &str) -> Result<String> {
    if plain.trim().is_empty() {
        return Ok(plain.to_owned());
    }
    let parsed: Json = serde_json::from_str(plain)
        .map_err(|_| Error::InvalidInput(format!("item {uuid}: field history is not JSON")))?;
    let Json::Array(entries) = parsed else {
        return Err(Error::InvalidInput(format!(
            "item {uuid}: field history is not a JSON array"
        )));
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let Json::Object(m) = e else {
            return Err(Error::InvalidInput(format!(
                "item {uuid}: field history entry is not an object"
            )));
        };
        let value = match m.get("value") {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let mut keys: Vec<&String> = m
            .keys()
            .filter(|k| *k != "value" && *k != "encrypted")
            .collect();
        keys.sort();
        let mut o = Map::new();
        o.insert("encrypted".into(), Json::Bool(true));
        for k in keys {
            o.insert(k.clone(), m[k].clone());
        }
        let enc = Zeroizing::new(value);
        o.insert(
            "value".into(),
            Json::String(encrypt_value(key, uuid, &enc)?),
        );
        // Keep the sorted order: "encrypted" < "updated_at" < "value" for the usual keys.
        let mut sorted: Vec<(String, Json)> = o.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(Json::Object(sorted.into_iter().collect()));
    }
    Ok(serde_json::to_string(&Json::Array(out)).unwrap_or_default())
}
