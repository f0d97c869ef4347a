//! `vault.json`: the plaintext metadata beside the database.

use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};

/// The largest `vault.json` accepted (1 MiB; Enpass writes well under 1 KiB). The sync
/// engine stops a download of a remote `vault.json` at this size.
pub const MAX_VAULT_JSON_BYTES: usize = 1024 * 1024;

/// The content of `vault.json`, every key kept (unknown ones too).
///
/// Enpass writes it pretty-printed with sorted keys and a 4-space indent; so does
/// [`VaultMeta::to_json_string`].
#[derive(Clone, Debug, PartialEq)]
pub struct VaultMeta {
    map: Map<String, Json>,
}

/// The `kdf_iter` Enpass uses for new vaults and password changes.
pub const DEFAULT_KDF_ITER: u32 = 320_000;

/// The fewest PBKDF2 rounds a vault may use (created here, or read from any file).
/// Enpass itself has used 24,000 to 320,000; fewer than this protects nothing. (Tests
/// create vaults with exactly this many, to stay fast.)
pub const MIN_KDF_ITER: u32 = 1_000;

/// The most PBKDF2 rounds a vault may use: deriving the key costs about a second per
/// million rounds on a laptop core, so a `vault.json` from a remote cannot make a
/// device compute for minutes (100,000,000 rounds took 95 s). Over 15 times Enpass's
/// own default.
pub const MAX_KDF_ITER: u32 = 5_000_000;

/// Checks a round count against [`MIN_KDF_ITER`] ..= [`MAX_KDF_ITER`].
/// Errors: [`Error::Unsupported`], naming the bounds.
pub fn check_kdf_iter(n: i64) -> Result<u32> {
    match u32::try_from(n) {
        Ok(n) if (MIN_KDF_ITER..=MAX_KDF_ITER).contains(&n) => Ok(n),
        _ => Err(Error::Unsupported(format!(
            "kdf_iter {n} is outside {MIN_KDF_ITER}..={MAX_KDF_ITER}"
        ))),
    }
}

impl VaultMeta {
    /// Parses `vault.json` content. Errors: [`Error::Corrupt`] when it is not a JSON
    /// object. (Whether the vault is supported is checked by [`VaultMeta::check_supported`].)
    pub fn parse(bytes: &[u8]) -> Result<VaultMeta> {
        if bytes.len() > MAX_VAULT_JSON_BYTES {
            return Err(Error::Corrupt(format!(
                "vault.json is larger than {MAX_VAULT_JSON_BYTES} bytes"
            )));
        }
        match serde_json::from_slice::<Json>(bytes) {
            Ok(Json::Object(map)) => Ok(VaultMeta { map }),
            Ok(_) => Err(Error::Corrupt("vault.json is not a JSON object".into())),
            Err(e) => Err(Error::Corrupt(format!("vault.json: {e}"))),
        }
    }

    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<VaultMeta> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        VaultMeta::parse(&bytes)
    }

    /// Metadata for a new vault, with the keys Enpass writes.
    pub(crate) fn new_vault(
        uuid: &str,
        name: &str,
        device: &str,
        kdf_iter: u32,
        have_keyfile: bool,
        now: i64,
    ) -> VaultMeta {
        let mut m = Map::new();
        let s = |v: &str| Json::String(v.to_owned());
        m.insert("creating_device".into(), s(device));
        m.insert("encryption_algo".into(), s("aes-256-cbc"));
        m.insert("have_keyfile".into(), Json::from(have_keyfile as i64));
        m.insert("kdf_algo".into(), s("pbkdf2"));
        m.insert("kdf_iter".into(), Json::from(kdf_iter));
        m.insert("last_modified_device".into(), s(device));
        m.insert("last_modified_time".into(), Json::from(now));
        m.insert("last_password_changed_time".into(), Json::from(now));
        m.insert("last_password_changing_device".into(), s(device));
        m.insert("vault_att_count".into(), Json::from(0));
        m.insert("vault_icon".into(), s("vault/v2"));
        m.insert("vault_items_count".into(), Json::from(0));
        m.insert("vault_name".into(), s(name));
        m.insert("vault_uuid".into(), s(uuid));
        m.insert("version".into(), Json::from(6));
        VaultMeta { map: m }
    }

    /// Refuses what this crate cannot open: `kdf_algo` other than `pbkdf2`,
    /// `encryption_algo` other than `aes-256-cbc`, `version` other than 6, a missing
    /// or out-of-range `kdf_iter`. Errors: [`Error::Unsupported`].
    pub fn check_supported(&self) -> Result<()> {
        match self.str("kdf_algo") {
            Some("pbkdf2") => {}
            other => {
                return Err(Error::Unsupported(format!(
                    "kdf_algo {other:?} (only \"pbkdf2\")"
                )))
            }
        }
        match self.str("encryption_algo") {
            Some("aes-256-cbc") | None => {}
            Some(other) => {
                return Err(Error::Unsupported(format!(
                    "encryption_algo {other:?} (only \"aes-256-cbc\")"
                )))
            }
        }
        match self.int("version") {
            Some(6) | None => {}
            Some(v) => return Err(Error::Unsupported(format!("vault version {v} (only 6)"))),
        }
        self.kdf_iter().map(|_| ())
    }

    /// `kdf_iter`, within [`MIN_KDF_ITER`] ..= [`MAX_KDF_ITER`]. Errors:
    /// [`Error::Unsupported`] when it is missing, not an integer, or out of bounds.
    pub fn kdf_iter(&self) -> Result<u32> {
        match self.int("kdf_iter") {
            Some(n) => check_kdf_iter(n),
            None => Err(Error::Unsupported(format!(
                "kdf_iter is missing or not an integer ({})",
                self.map.get("kdf_iter").map(json_kind).unwrap_or("absent")
            ))),
        }
    }

    /// `have_keyfile == 1`.
    pub fn have_keyfile(&self) -> bool {
        self.int("have_keyfile") == Some(1)
    }

    /// `vault_uuid` (`"primary"` for the primary vault of old installs).
    pub fn vault_uuid(&self) -> Option<&str> {
        self.str("vault_uuid")
    }

    /// `vault_name`.
    pub fn vault_name(&self) -> Option<&str> {
        self.str("vault_name")
    }

    /// A string value.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.map.get(key).and_then(Json::as_str)
    }

    /// An integer value (integral JSON numbers only).
    pub fn int(&self, key: &str) -> Option<i64> {
        let v = self.map.get(key)?;
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
    }

    /// Every key and value, in file order.
    pub fn map(&self) -> &Map<String, Json> {
        &self.map
    }

    /// Sets `key` (kept or added; all other keys untouched).
    pub fn set(&mut self, key: &str, value: impl Into<Json>) {
        self.map.insert(key.to_owned(), value.into());
    }

    /// Pretty JSON with recursively sorted keys, 4-space indent and a final newline,
    /// as Enpass writes it.
    pub fn to_json_string(&self) -> String {
        use serde::Serialize;
        let sorted = sort_json(&Json::Object(self.map.clone()));
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        // Serialising a `Value` into a Vec cannot fail.
        let _ = sorted.serialize(&mut ser);
        let mut s = String::from_utf8(buf).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Writes [`VaultMeta::to_json_string`] to `path` atomically (temp file, fsync,
    /// rename).
    pub fn write_atomic(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, self.to_json_string().as_bytes())
    }
}

fn sort_json(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sort_json(&m[k]));
            }
            Json::Object(out)
        }
        Json::Array(a) => Json::Array(a.iter().map(sort_json).collect()),
        other => other.clone(),
    }
}

/// What kind of JSON value `v` is, for messages (never the value itself).
fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number that is not an integer",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_kept_and_sorted() {
        let m = VaultMeta::parse(
            br#"{"zeta": {"b":1,"a":2}, "kdf_algo":"pbkdf2","kdf_iter":5000,"version":6}"#,
        )
        .unwrap();
        m.check_supported().unwrap();
        let s = m.to_json_string();
        assert_eq!(
            s,
            "{\n    \"kdf_algo\": \"pbkdf2\",\n    \"kdf_iter\": 5000,\n    \"version\": 6,\n    \"zeta\": {\n        \"a\": 2,\n        \"b\": 1\n    }\n}\n"
        );
    }

    #[test]
    fn unsupported() {
        for j in [
            r#"{"kdf_algo":"argon2","kdf_iter":5}"#,
            r#"{"kdf_algo":"pbkdf2","kdf_iter":0}"#,
            r#"{"kdf_algo":"pbkdf2","kdf_iter":-1}"#,
            r#"{"kdf_algo":"pbkdf2","kdf_iter":999}"#,
            r#"{"kdf_algo":"pbkdf2","kdf_iter":"100000"}"#,
            r#"{"kdf_algo":"pbkdf2","kdf_iter":100000000}"#,
            r#"{"kdf_algo":"pbkdf2","kdf_iter":9223372036854775807}"#,
            r#"{"kdf_algo":"pbkdf2","kdf_iter":1e300}"#,
            r#"{"kdf_algo":"pbkdf2","kdf_iter":5000.5}"#,
            r#"{"kdf_algo":"pbkdf2"}"#,
            r#"{"kdf_algo":"pbkdf2","kdf_iter":5,"version":7}"#,
            r#"{"kdf_algo":"pbkdf2","kdf_iter":5,"encryption_algo":"chacha"}"#,
        ] {
            assert!(
                matches!(
                    VaultMeta::parse(j.as_bytes()).unwrap().check_supported(),
                    Err(Error::Unsupported(_))
                ),
                "{j}"
            );
        }
        assert!(matches!(VaultMeta::parse(b"[1]"), Err(Error::Corrupt(_))));
        assert!(matches!(VaultMeta::parse(b"{"), Err(Error::Corrupt(_))));
    }

    /// Found by fuzzing: without serde_json's exact float parsing, a number in an
    /// unknown key moved by a unit or two in the last place on every rewrite.
    #[test]
    fn rewriting_keeps_numbers_exact() {
        let m = VaultMeta::parse(
            br#"{"kdf_iter":5000,"x":[1.1111000001595633e+39,2.5555555555555554e+23]}"#,
        )
        .unwrap();
        let again = VaultMeta::parse(m.to_json_string().as_bytes()).unwrap();
        assert_eq!(again, m);
        assert_eq!(again.map()["x"][0].as_f64(), Some(1.1111000001595633e+39));
    }
}
