//! Items and fields as the application sees them (decrypted).

use std::fmt;

use crate::secret::Secret;

/// Known values of `itemfield.type` (Enpass also uses others; any string is kept).
pub mod field_type {
    /// Free text.
    pub const TEXT: &str = "text";
    /// Multi-line text.
    pub const MULTILINE: &str = "multiline";
    /// User name.
    pub const USERNAME: &str = "username";
    /// E-mail address.
    pub const EMAIL: &str = "email";
    /// Password: the only type stored encrypted (AES-256-GCM with the item key).
    pub const PASSWORD: &str = "password";
    /// Web address.
    pub const URL: &str = "url";
    /// Phone number.
    pub const PHONE: &str = "phone";
    /// One-time-password secret (stored in plaintext, like Enpass does).
    pub const TOTP: &str = "totp";
    /// A section heading (no value).
    pub const SECTION: &str = "section";
    /// A date (unix seconds as text).
    pub const DATE: &str = "date";
    /// A PIN.
    pub const PIN: &str = "pin";
    /// Number.
    pub const NUMERIC: &str = "numeric";
    /// Card holder name.
    pub const CC_NAME: &str = "ccName";
    /// Card number.
    pub const CC_NUMBER: &str = "ccNumber";
    /// Card security code.
    pub const CC_CVC: &str = "ccCvc";
    /// Card PIN.
    pub const CC_PIN: &str = "ccPin";
    /// Card expiry.
    pub const CC_EXPIRY: &str = "ccExpiry";
    /// Card valid-from date.
    pub const CC_VALID_FROM: &str = "ccValidfrom";
    /// Card type.
    pub const CC_TYPE: &str = "ccType";
    /// Issuing bank.
    pub const CC_BANK_NAME: &str = "ccBankname";
    /// Bank transaction password.
    pub const CC_TXN_PASSWORD: &str = "ccTxnpassword";

    /// Whether values of this type are stored encrypted with the item key.
    pub fn is_encrypted(kind: &str) -> bool {
        kind == PASSWORD
    }
}

/// One earlier value of a field.
#[derive(Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When this value was set (unix seconds).
    pub updated_at: i64,
    /// The value.
    pub value: Secret,
}

impl fmt::Debug for HistoryEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryEntry")
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// One field of an item (`itemfield` row), decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct Field {
    /// `item_field_uid`: the field's identity within its item.
    pub uid: i64,
    /// `label` (often empty: Enpass then shows the template's label).
    pub label: String,
    /// `type`, e.g. [`field_type::PASSWORD`].
    pub kind: String,
    /// The plaintext value.
    pub value: Secret,
    /// `sensitive`: Enpass hides the value until asked.
    pub sensitive: bool,
    /// `deleted`: the field was removed from the item (tombstone).
    pub deleted: bool,
    /// `orde`: display order.
    pub order: i64,
    /// Earlier values, oldest first.
    pub history: Vec<HistoryEntry>,
    /// `updated_at` (unix seconds): last change of anything in the field.
    pub updated_at: i64,
    /// `value_updated_at` (unix seconds): last change of the value.
    pub value_updated_at: i64,
    /// `hash` as stored: hex SHA-1 of the plaintext (empty for an empty value).
    /// Recomputed on every write; what is set here is ignored.
    pub hash: String,
}

impl Field {
    /// A new field (uid assigned by the caller), timestamps filled in on write.
    pub fn new(uid: i64, kind: &str, label: &str, value: impl Into<Secret>) -> Field {
        Field {
            uid,
            label: label.to_owned(),
            kind: kind.to_owned(),
            value: value.into(),
            sensitive: kind == field_type::PASSWORD,
            deleted: false,
            order: 0,
            history: Vec::new(),
            updated_at: 0,
            value_updated_at: 0,
            hash: String::new(),
        }
    }

    /// True for types stored encrypted (see [`field_type::is_encrypted`]).
    pub fn is_encrypted_type(&self) -> bool {
        field_type::is_encrypted(&self.kind)
    }
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Field")
            .field("uid", &self.uid)
            .field("label", &self.label)
            .field("kind", &self.kind)
            .field(
                "value",
                &format_args!("<{} bytes>", self.value.expose().len()),
            )
            .field("sensitive", &self.sensitive)
            .field("deleted", &self.deleted)
            .field("order", &self.order)
            .field("history", &format_args!("<{} entries>", self.history.len()))
            .field("updated_at", &self.updated_at)
            .field("value_updated_at", &self.value_updated_at)
            .finish()
    }
}

/// One item (`item` row plus its `itemfield` rows), decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct Item {
    /// `uuid`.
    pub uuid: String,
    /// `title`.
    pub title: String,
    /// `subtitle` (Enpass shows the user name here).
    pub subtitle: String,
    /// `note` (treated as secret: never printed).
    pub note: Secret,
    /// `icon`: Enpass's icon JSON, e.g. `{"fav":"example.com","image":{"file":"misc/login"},"type":1,"uuid":""}`.
    pub icon: String,
    /// `category`, e.g. `login`, `creditcard`, `note`, `misc`.
    pub category: String,
    /// `template`, e.g. `login.default`.
    pub template: String,
    /// `favorite`.
    pub favorite: bool,
    /// `trashed`: in the trash (still an item; undo with [`crate::Vault::untrash_item`]).
    pub trashed: bool,
    /// `archived`.
    pub archived: bool,
    /// `deleted`: a tombstone (the row stays so that the delete syncs).
    pub deleted: bool,
    /// `created_at` (unix seconds).
    pub created_at: i64,
    /// `updated_at` (unix seconds): last change of anything in the item.
    pub updated_at: i64,
    /// `meta_updated_at`: last change of title/subtitle/note/icon/flags/category.
    pub meta_updated_at: i64,
    /// `field_updated_at`: last change of any field.
    pub field_updated_at: i64,
    /// The fields in display order (deleted fields included, flagged).
    pub fields: Vec<Field>,
}

impl Item {
    /// The first non-deleted field of this type.
    pub fn field(&self, kind: &str) -> Option<&Field> {
        self.fields.iter().find(|f| !f.deleted && f.kind == kind)
    }

    /// The first non-deleted field of this type, mutable.
    pub fn field_mut(&mut self, kind: &str) -> Option<&mut Field> {
        self.fields
            .iter_mut()
            .find(|f| !f.deleted && f.kind == kind)
    }

    /// The field with this uid.
    pub fn field_by_uid(&self, uid: i64) -> Option<&Field> {
        self.fields.iter().find(|f| f.uid == uid)
    }

    /// Neither deleted nor trashed.
    pub fn is_live(&self) -> bool {
        !self.deleted && !self.trashed
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("uuid", &self.uuid)
            .field("title", &self.title)
            .field("category", &self.category)
            .field("template", &self.template)
            .field("favorite", &self.favorite)
            .field("trashed", &self.trashed)
            .field("archived", &self.archived)
            .field("deleted", &self.deleted)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

/// An item's listing columns ([`crate::Vault::item_summaries`]): nothing secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemSummary {
    /// `uuid`.
    pub uuid: String,
    /// `title`.
    pub title: String,
    /// `subtitle`.
    pub subtitle: String,
    /// `category`.
    pub category: String,
    /// `trashed`.
    pub trashed: bool,
    /// `deleted` (tombstone).
    pub deleted: bool,
    /// `updated_at` (unix seconds).
    pub updated_at: i64,
}

impl ItemSummary {
    /// Neither deleted nor trashed.
    pub fn is_live(&self) -> bool {
        !self.deleted && !self.trashed
    }
}

/// What [`crate::Vault::add_item`] needs to make an item.
#[derive(Clone, Debug, Default)]
pub struct NewItem {
    /// Title.
    pub title: String,
    /// Subtitle (Enpass puts the user name here).
    pub subtitle: String,
    /// Note.
    pub note: Secret,
    /// Category (`login` when empty).
    pub category: String,
    /// Template (`<category>.default` when empty).
    pub template: String,
    /// Icon JSON (Enpass's generic icon for the category when empty).
    pub icon: String,
    /// Favorite.
    pub favorite: bool,
    /// Fields. A uid of 0 is replaced by the next free uid; `order` 0 by the position.
    pub fields: Vec<Field>,
}

impl NewItem {
    /// A login with the fields of Enpass's `login.default` template (as in a real
    /// vault): username (uid 10), email (12), password (11), url (13), a section
    /// (101), phone (14), totp (102), text (15) and a sensitive text (16).
    pub fn login(title: &str, username: &str, password: Secret, url: &str) -> NewItem {
        use field_type::*;
        let mut fields = vec![
            Field::new(10, USERNAME, "", username),
            Field::new(12, EMAIL, "", ""),
            Field {
                value: password,
                ..Field::new(11, PASSWORD, "", "")
            },
            Field::new(13, URL, "", url),
            Field::new(101, SECTION, "", ""),
            Field::new(14, PHONE, "", ""),
            Field::new(102, TOTP, "", ""),
            Field::new(15, TEXT, "", ""),
            Field {
                sensitive: true,
                ..Field::new(16, TEXT, "", "")
            },
        ];
        for (i, f) in fields.iter_mut().enumerate() {
            f.order = i as i64 + 1;
        }
        let host = url
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split(['/', '?', '#'])
            .next()
            .unwrap_or("")
            .to_owned();
        let icon = if host.is_empty() {
            String::new()
        } else {
            format!(
                r#"{{"fav":"{}","image":{{"file":"misc/login"}},"type":1,"uuid":""}}"#,
                host.replace(['"', '\\'], "")
            )
        };
        NewItem {
            title: title.to_owned(),
            subtitle: username.to_owned(),
            category: "login".into(),
            template: "login.default".into(),
            icon,
            fields,
            ..NewItem::default()
        }
    }
}

/// A folder (`folder` row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folder {
    /// `uuid`.
    pub uuid: String,
    /// `title`.
    pub title: String,
    /// `icon`.
    pub icon: String,
    /// `parent_uuid` (empty for a top-level folder).
    pub parent_uuid: String,
    /// `deleted` (tombstone).
    pub deleted: bool,
    /// `updated_at` (unix seconds).
    pub updated_at: i64,
}

/// A crude password strength 0..=4 (bits of a uniform guess over the character classes
/// used: <28, <36, <60, <128, more). Enpass computes its own with zxcvbn; this only
/// fills the `strength` column of fields we write.
pub(crate) fn strength(pw: &str) -> i64 {
    if pw.is_empty() {
        return -1;
    }
    let mut pool = 0u32;
    if pw.chars().any(|c| c.is_ascii_lowercase()) {
        pool += 26;
    }
    if pw.chars().any(|c| c.is_ascii_uppercase()) {
        pool += 26;
    }
    if pw.chars().any(|c| c.is_ascii_digit()) {
        pool += 10;
    }
    if pw.chars().any(|c| !c.is_ascii_alphanumeric()) {
        pool += 33;
    }
    let bits = pw.chars().count() as f64 * f64::from(pool.max(2)).log2();
    match bits {
        b if b < 28.0 => 0,
        b if b < 36.0 => 1,
        b if b < 60.0 => 2,
        b if b < 128.0 => 3,
        _ => 4,
    }
}
