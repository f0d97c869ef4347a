//! Who takes a server lock ([`LockOwner`]) and who holds one ([`LockHolder`]).
//!
//! A server-enforced folder lock ([`Storage::lock_dir`](crate::Storage::lock_dir))
//! outlives the process that took it when that process dies before its `UNLOCK`: the
//! server keeps it until its timeout, which some servers set to 30 minutes whatever
//! was asked (SabreDAV). To get out of that without a person:
//!
//! * the lock names its owner: a **device id** that persists for one vault and remote
//!   on one device (the engine keeps it in the sync state folder), a **process** part
//!   that is new for every [`LockOwner`] value, and the device's **label** (its name,
//!   for people on other devices);
//! * the caller that passes [`LockOwner::exclusive`] promises that no other live
//!   process uses that device id (the engine holds an exclusive local lock on the
//!   sync state folder for the whole sync). A lock the server shows as held by that
//!   device is then a crashed run's, and the provider releases it and takes the lock
//!   at once ([`Storage::lock_dir_as`](crate::Storage::lock_dir_as));
//! * another device's lock is reported as a [`LockHolder`]: its label and when the
//!   server lets it expire at the latest.

use std::time::{Duration, SystemTime};

/// The longest device label kept, in characters.
pub const MAX_LABEL_CHARS: usize = 64;

/// The identity written into a server lock; see the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct LockOwner {
    device: String,
    process: String,
    label: String,
    exclusive: bool,
}

impl LockOwner {
    /// `device`: the persistent id (8 to 64 ASCII letters, digits or `-`; else
    /// [`Error::InvalidInput`](crate::Error::InvalidInput)); `label`: a name for
    /// people (cleaned with [`clean_label`]). The process part is random.
    pub fn new(device: &str, label: &str) -> crate::Result<LockOwner> {
        let ok = (8..=64).contains(&device.len())
            && device
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(crate::Error::InvalidInput {
                message: "lock owner: the device id must be 8 to 64 letters, digits or '-'".into(),
            });
        }
        Ok(LockOwner {
            device: device.to_string(),
            process: format!("{:016x}", fastrand::u64(..)),
            label: clean_label(label),
            exclusive: false,
        })
    }

    /// The same owner, with the caller's promise that no other live process takes
    /// locks as this device (see the [module docs](self)).
    pub fn exclusive(mut self) -> LockOwner {
        self.exclusive = true;
        self
    }

    /// The persistent device id.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The random part of this owner value (one per process or run).
    pub fn process(&self) -> &str {
        &self.process
    }

    /// The label for people.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the caller promised local exclusion ([`LockOwner::exclusive`]).
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }
}

impl std::fmt::Debug for LockOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockOwner")
            .field("device", &self.device)
            .field("label", &self.label)
            .field("exclusive", &self.exclusive)
            .finish_non_exhaustive()
    }
}

/// A label as it may be shown: control characters become spaces, at most
/// [`MAX_LABEL_CHARS`] characters, trimmed. Labels come from other devices through the
/// server, so this runs on every label read too.
pub fn clean_label(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_LABEL_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

/// A lock the server shows on a folder, as far as the server tells.
#[derive(Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// The holder's device id, when it is a syncfabric lock.
    pub device: Option<String>,
    /// The holder's process part, when it is a syncfabric lock.
    pub process: Option<String>,
    /// The holder's label (cleaned), when it is a syncfabric lock with one.
    pub label: Option<String>,
    /// What the lock's owner says when it is not a syncfabric lock (cleaned, short).
    pub other_owner: Option<String>,
    /// How long the server says the lock lasts from `seen_at` without a refresh
    /// (`None`: infinite or not said). Servers report either the time left or the
    /// whole timeout, so this is an upper bound.
    pub expires_in: Option<Duration>,
    /// When the server was asked.
    pub seen_at: SystemTime,
    /// The lock's token, when the server shows it (needed to break the lock).
    pub token: Option<String>,
}

impl LockHolder {
    /// Whether the lock names `owner`'s device.
    pub fn is_device_of(&self, owner: &LockOwner) -> bool {
        self.device.as_deref() == Some(owner.device())
    }

    /// The latest time the server may keep the lock.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_in.map(|d| self.seen_at + d)
    }
}

impl std::fmt::Debug for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockHolder")
            .field("device", &self.device)
            .field("label", &self.label)
            .field("other_owner", &self.other_owner)
            .field("expires_in", &self.expires_in)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// `device "laptop" (3f2a9c01…), whose lock the server keeps until <date> at the
/// latest (1795 s from when it was asked) unless that device releases it`.
impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.device, &self.label, &self.other_owner) {
            (Some(d), label, _) => {
                let short: String = d.chars().take(8).collect();
                match label.as_deref().filter(|l| !l.is_empty()) {
                    Some(l) => write!(f, "device {l:?} (id {short})")?,
                    None => write!(f, "a device without a name (id {short})")?,
                }
            }
            (None, _, Some(o)) => write!(f, "another client (its lock's owner reads {o:?})")?,
            (None, _, None) => f.write_str("a client that does not say who it is")?,
        }
        match self.expires_at() {
            Some(at) => write!(
                f,
                ", whose lock the server keeps until {} at the latest ({} s from when it was asked) unless it is released first",
                httpdate::fmt_http_date(at),
                self.expires_in.unwrap_or_default().as_secs()
            ),
            None => f.write_str(", whose lock has no expiry the server tells"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_checked_and_labels_cleaned() {
        assert!(LockOwner::new("short", "x").is_err());
        assert!(LockOwner::new("0123456789abcdef/", "x").is_err());
        let o = LockOwner::new("0123456789abcdef", "lap\u{1b}[31mtop\n").unwrap();
        assert_eq!(o.label(), "lap [31mtop");
        assert!(!o.is_exclusive());
        let o2 = LockOwner::new("0123456789abcdef", "x").unwrap().exclusive();
        assert!(o2.is_exclusive());
        assert_ne!(
            o.process(),
            o2.process(),
            "each owner value is a new process part"
        );
        assert_eq!(
            clean_label(&"é".repeat(100)).chars().count(),
            MAX_LABEL_CHARS
        );
    }

    #[test]
    fn a_holder_says_who_and_until_when_but_never_its_token() {
        let h = LockHolder {
            device: Some("0123456789abcdef".into()),
            process: Some("p".into()),
            label: Some("laptop".into()),
            other_owner: None,
            expires_in: Some(Duration::from_secs(1800)),
            seen_at: SystemTime::UNIX_EPOCH,
            token: Some("opaquelocktoken:secret-ish".into()),
        };
        let s = h.to_string();
        assert!(s.starts_with("device \"laptop\" (id 01234567)"), "{s}");
        assert!(
            s.contains("Thu, 01 Jan 1970 00:30:00 GMT at the latest"),
            "{s}"
        );
        assert!(!format!("{h:?}").contains("secret-ish"));
        let anon = LockHolder {
            device: None,
            label: None,
            other_owner: None,
            expires_in: None,
            ..h
        };
        assert!(anon.to_string().contains("does not say who"), "{anon}");
    }
}
