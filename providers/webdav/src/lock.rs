//! WebDAV class 2 locks (RFC 4918 §6, §9.10, §9.11, §10.4) as the core's
//! server-enforced folder lock ([`Storage::lock_dir`](syncfabric_core::Storage::lock_dir)).
//!
//! * **Take.** `LOCK <dir>/` with `Depth: infinity`, an exclusive write `lockinfo` and
//!   `Timeout: Second-<ttl>`. The token comes from the `Lock-Token` header (the body is
//!   read only for the granted timeout, and may be cut short without harm). `423` means
//!   another client holds a lock there: [`Error::Locked`].
//! * **Use.** Every request that changes something under the folder sends the token in
//!   an `If: <folder URL> (<token>)` list (the temporary upload, its MOVE, the clean-up
//!   DELETE too). The server checks it atomically with the request: after the lock
//!   expired or passed to another client the request fails (`412` or `423`), so a
//!   write that was slow, retried or delayed can never land under someone else's lock.
//! * **Refresh.** `LOCK` without a body and with `If: (<token>)`.
//! * **Release.** `UNLOCK` with `Lock-Token: <token>`; a lock that is already gone
//!   counts as released.
//! * **Owner.** The `owner` we write is the text
//!   `syncfabric:device=<id>;process=<id>;name=<label, percent-encoded>` (text, not an
//!   `href` element: SabreDAV keeps only the owner's own text, `(string)$owner`): the caller's
//!   [`LockOwner`] (the engine's device id persists per vault and remote in the sync
//!   state folder; the process part is new per sync), or a random device and process
//!   per [`WebDavStorage`] when no owner is given. `lockdiscovery` shows it to others.
//! * **A lost answer.** When the answer to a `LOCK` is lost, the server may hold a lock
//!   whose token we never learnt, and the retry meets `423`. On `423` the provider
//!   reads `lockdiscovery` and adopts a lock whose device and process are its own and
//!   whose token it has not handed out already. Where the server shows no tokens
//!   (SabreDAV) the lock cannot be adopted or released: it lasts until the server
//!   drops it, and the engine's lock wait fails at once when it would not outlast it
//!   (`syncfabric_core::server_lock`).
//! * **A crashed run's lock.** With an [exclusive](LockOwner::exclusive) owner (the
//!   engine holds a local lock on the sync state folder, so no other live process uses
//!   that device id), a lock shown as held by the same device is stale: it is released
//!   with `UNLOCK` and the token `lockdiscovery` shows, and the `LOCK` is sent again at
//!   once (once). Measured (`tests/stale_locks.rs`): Apache shows owner and token and
//!   accepts the `UNLOCK`. SabreDAV shows the owner but never the token (its
//!   `lockdiscovery` hides it), and rclone's x/net/webdav has no `lockdiscovery` at
//!   all: there only the token the engine recorded in the sync state folder when it
//!   took the lock lets the device release it (`src/engine/sync.rs`); without it the
//!   device waits like for anyone's lock until the timeout the server granted.
//! * **Someone else's lock.** `423` is [`Error::Locked`] naming each holder the
//!   server shows (its device label and id, and the latest time the server keeps the
//!   lock, see [`LockHolder`]); `syncfabric remote unlock NAME` breaks such a lock
//!   by its token ([`Storage::dir_locks`](syncfabric_core::Storage::dir_locks), then
//!   `UNLOCK`).

use crate::client::trunc;
use crate::{xml, Profile, WebDavStorage};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use std::time::SystemTime;
use syncfabric_core::{DirLock, Error, LockHolder, LockOwner, Precondition, RemotePath, Result};
use syncfabric_http::{read_capped, transport_error};

/// `If: <folder URL> (<token>)`: a tagged list naming the locked folder by its absolute
/// URL (the host and port we send as `Host`). Measured on the five servers: the
/// untagged form `If: (<token>)` makes Apache refuse (412) anything that creates a
/// name in the folder, and SabreDAV and nginx refuse an untagged MOVE (423); the
/// tagged form works for every request on all of them.
///
/// Apache applies a list tagged with the folder only to the folder: once nobody holds
/// a lock there, a write of an existing file with a stale token would pass. So for a
/// file known to exist, a second list tagged with the file itself is added (the lists
/// are alternatives, but the file's own list is the only one that applies to the file,
/// and it holds only while the token still covers it). Not for a new file: Apache does
/// not count a folder's lock as covering a name that does not exist yet.
fn if_value(folder_url: &str, file_url: Option<&str>, l: &DirLock) -> Result<HeaderValue> {
    let mut v = format!("<{folder_url}> (<{}>)", l.token());
    if let Some(f) = file_url {
        v.push_str(&format!(" <{f}> (<{}>)", l.token()));
    }
    HeaderValue::from_str(&v).map_err(|_| Error::InvalidInput {
        message: format!("lock on {}: token is not a valid header value", l.dir()),
    })
}

/// Whether this process already said that a server grants longer locks than asked.
static TOLD_LONG_LOCKS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Characters of a label that stay as they are in the owner href.
const LABEL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

/// The prefix of the owner hrefs this provider writes.
const OWNER_PREFIX: &str = "syncfabric:device=";

/// The owner href for `device`, `process` and `label` (see the module docs).
fn owner_text(device: &str, process: &str, label: &str) -> String {
    let mut h = format!("{OWNER_PREFIX}{device};process={process}");
    if !label.is_empty() {
        h.push_str(";name=");
        h.extend(percent_encoding::utf8_percent_encode(label, LABEL));
    }
    h
}

/// What the server shows of one lock, read as a [`LockHolder`]: the fields of our own
/// owner href where there is one (checked: an id is letters, digits and `-` only),
/// else the owner text, cleaned and cut short.
fn holder_of(l: &xml::ActiveLock, seen_at: SystemTime) -> LockHolder {
    let id_ok = |v: &str| {
        (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let mut h = LockHolder {
        device: None,
        process: None,
        label: None,
        other_owner: None,
        expires_in: l.timeout_secs().map(Duration::from_secs),
        seen_at,
        token: l.token.clone().filter(|t| !t.is_empty()),
    };
    let own = l
        .owner
        .find(OWNER_PREFIX)
        .map(|i| &l.owner[i + "syncfabric:".len()..]);
    let own = own.map(|o| {
        o.split(|c: char| c.is_whitespace() || c == '<')
            .next()
            .unwrap_or("")
    });
    for part in own.unwrap_or("").split(';') {
        match part.split_once('=') {
            Some(("device", v)) if id_ok(v) => h.device = Some(v.to_string()),
            Some(("process", v)) if id_ok(v) => h.process = Some(v.to_string()),
            Some(("name", v)) => {
                let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                h.label = Some(syncfabric_core::lock_owner::clean_label(&v));
            }
            _ => {}
        }
    }
    if h.device.is_none() {
        h.process = None;
        h.label = None;
        let o = syncfabric_core::lock_owner::clean_label(&l.owner);
        h.other_owner = (!o.is_empty()).then_some(o);
    }
    h
}

/// The `holder` of the `Locked` error for `held` (`None` when the server shows none).
fn describe(held: &[LockHolder]) -> Option<String> {
    let parts: Vec<String> = held.iter().map(|h| h.to_string()).collect();
    (!parts.is_empty()).then(|| parts.join("; and "))
}

/// Says once per process that the server granted a lock longer than asked: a device
/// that stops before releasing it blocks other devices' commits that long (SabreDAV
/// grants 1800 s whatever is asked).
fn warn_long_lock(what: &str, granted: Option<Duration>, asked: Duration) {
    let longer = granted.filter(|g| *g > asked + Duration::from_secs(5));
    if let Some(g) = longer.filter(|_| !TOLD_LONG_LOCKS.swap(true, Relaxed)) {
        tracing::warn!(
            "{what}: the server granted a {} s lock where {} s were asked; if this device stops before releasing it, other devices wait up to that long (this device releases it at its next sync)",
            g.as_secs(),
            asked.as_secs()
        );
    }
}

fn lock_method() -> Method {
    Method::from_bytes(b"LOCK").unwrap_or(Method::POST)
}

/// `Second-N`, at least 1 s; servers cap it as they like and say so in the answer.
fn timeout_header(ttl: Duration) -> String {
    format!("Second-{}", ttl.as_secs().max(1))
}

/// The token of a `Lock-Token` header. RFC 4918 §10.5 makes it a Coded-URL,
/// `<opaquelocktoken:…>`; WsgiDAV 4.3 and webdav-server 2.6 send the URI without the
/// angle brackets (`opaquelocktoken:0x…`, `urn:uuid:…`, measured with curl), so a bare
/// value is taken too when it is one absolute URI: a scheme, a colon, and no space,
/// comma or bracket.
fn token_of(h: &HeaderMap) -> Option<String> {
    let v = h.get("lock-token")?.to_str().ok()?.trim();
    let t = match v.strip_prefix('<') {
        Some(coded) => coded.strip_suffix('>')?,
        None if is_absolute_uri(v) => v,
        None => return None,
    };
    (!t.is_empty() && t.len() <= 512 && !t.contains(['<', '>', '(', ')'])).then(|| t.to_string())
}

/// `scheme:rest` (RFC 3986 §3.1 scheme), with nothing that would end a token in an
/// `If` header or a list of them.
fn is_absolute_uri(v: &str) -> bool {
    let Some((scheme, rest)) = v.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !v.contains(|c: char| c.is_whitespace() || c == ',')
}

impl WebDavStorage {
    /// The headers every changing request under a lock carries (see [`if_value`]);
    /// `existing`: the target, when it is known to exist. Empty for other
    /// preconditions.
    pub(crate) fn lock_headers(
        &self,
        pre: &Precondition,
        existing: Option<&RemotePath>,
    ) -> Result<HeaderMap> {
        let mut h = HeaderMap::new();
        if let Precondition::UnderLock(l) = pre {
            let file = existing.map(|p| self.url_for(p, false));
            h.insert(
                "If",
                if_value(
                    self.url_for(l.dir(), true).as_str(),
                    file.as_ref().map(|u| u.as_str()),
                    l,
                )?,
            );
        }
        Ok(h)
    }

    /// The device and process our locks name: the caller's `owner`, else this storage
    /// value's random id for both (the same for every lock it takes, so a retried
    /// `LOCK` can find the lock an earlier, unanswered attempt took).
    fn owner_ids<'a>(&'a self, owner: Option<&'a LockOwner>) -> (&'a str, &'a str) {
        match owner {
            Some(o) => (o.device(), o.process()),
            None => (&self.inner.lock_owner_id, &self.inner.lock_owner_id),
        }
    }

    pub(crate) async fn lock_dir_impl(
        &self,
        dir: &RemotePath,
        ttl: Duration,
        owner: Option<&LockOwner>,
    ) -> Result<DirLock> {
        match self.send_lock(dir, ttl, owner).await? {
            Ok(lock) => Ok(lock),
            Err(held) => {
                if let Some(lock) = self.adopt(dir, ttl, owner, &held).await {
                    return Ok(lock);
                }
                let stale = self.release_stale(dir, owner, &held).await;
                if stale == 0 {
                    return Err(Error::Locked {
                        path: dir.to_string(),
                        holder: describe(&held),
                    });
                }
                tracing::warn!(
                    "{dir}: released {stale} lock(s) of this device that a sync which stopped before its end had left; taking the lock again"
                );
                match self.send_lock(dir, ttl, owner).await? {
                    Ok(lock) => Ok(lock),
                    Err(held) => Err(Error::Locked {
                        path: dir.to_string(),
                        holder: describe(&held),
                    }),
                }
            }
        }
    }

    /// One `LOCK`: the lock, or (on `423`) what the server shows of the locks there.
    async fn send_lock(
        &self,
        dir: &RemotePath,
        ttl: Duration,
        owner: Option<&LockOwner>,
    ) -> Result<std::result::Result<DirLock, Vec<LockHolder>>> {
        if !self.inner.server_locks {
            return Err(Error::Unsupported {
                message: format!("{}: the server has no WebDAV locks (DAV class 2)", dir),
            });
        }
        let what = dir.to_string();
        let url = self.url_for(dir, true);
        let (device, process) = self.owner_ids(owner);
        let href = owner_text(device, process, owner.map(|o| o.label()).unwrap_or(""));
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>{href}</D:owner></D:lockinfo>"#
        );
        let resp = self
            .request(lock_method(), url)
            .header("Depth", "infinity")
            .header("Timeout", timeout_header(ttl))
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(e, &what))?;
        let status = resp.status();
        match status.as_u16() {
            200 | 201 => {
                let token = token_of(resp.headers()).ok_or_else(|| Error::Corrupt {
                    message: format!("{what}: LOCK answer without a usable Lock-Token"),
                })?;
                let granted = match read_capped(resp, 64 * 1024, &what).await {
                    Ok(b) => granted_ttl(&b, &token),
                    // The lock is ours once the header arrived; a cut body only loses
                    // the granted timeout.
                    Err(_) => None,
                };
                warn_long_lock(&what, granted, ttl);
                let lock = DirLock::new(dir.clone(), token, granted.unwrap_or(ttl));
                self.remember(&lock);
                Ok(Ok(lock))
            }
            423 => {
                let _ = read_capped(resp, 64 * 1024, &what).await;
                Ok(Err(self.dir_locks_impl(dir).await.unwrap_or_default()))
            }
            404 | 409 => Err(Error::NotFound { path: what }),
            405 | 501 => Err(Error::Unsupported {
                message: format!("{what}: the server refused LOCK (HTTP {status})"),
            }),
            _ => Err(self.status_error(resp, &what).await),
        }
    }

    /// The locks the server shows on `dir` (`lockdiscovery`). `Unsupported` where the
    /// server has no such property (rclone); `Corrupt` for an unreadable answer.
    pub(crate) async fn dir_locks_impl(&self, dir: &RemotePath) -> Result<Vec<LockHolder>> {
        if self.inner.profile == Profile::Rclone {
            return Err(Error::Unsupported {
                message: format!(
                    "{dir}: the server (x/net/webdav) does not show who holds a lock; it expires after the timeout it granted"
                ),
            });
        }
        const BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#;
        let what = dir.to_string();
        let resp = self
            .request(
                Method::from_bytes(b"PROPFIND").unwrap_or(Method::GET),
                self.url_for(dir, true),
            )
            .header("Depth", "0")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(BODY)
            .send()
            .await
            .map_err(|e| transport_error(e, &what))?;
        if resp.status() != StatusCode::MULTI_STATUS {
            return Err(self.status_error(resp, &what).await);
        }
        let seen_at = SystemTime::now();
        let body = read_capped(resp, 256 * 1024, &what).await?;
        Ok(xml::parse_activelocks(&body)?
            .iter()
            .map(|l| holder_of(l, seen_at))
            .collect())
    }

    /// A lock on `dir` among `held` that an earlier attempt of ours (same device and
    /// process) took without hearing the answer, if the server shows its token;
    /// refreshed to `ttl`.
    async fn adopt(
        &self,
        dir: &RemotePath,
        ttl: Duration,
        owner: Option<&LockOwner>,
        held: &[LockHolder],
    ) -> Option<DirLock> {
        let (device, process) = self.owner_ids(owner);
        let found = held
            .iter()
            .filter(|h| h.device.as_deref() == Some(device))
            .filter(|h| h.process.as_deref() == Some(process))
            .filter_map(|h| h.token.clone())
            .find(|t| !self.is_handed_out(t))?;
        let lock = DirLock::new(dir.clone(), found, ttl);
        match self.refresh_lock_impl(&lock, ttl).await {
            Ok(lock) => {
                tracing::debug!(dir = %dir, "adopted our own lock from an unanswered LOCK");
                self.remember(&lock);
                Some(lock)
            }
            Err(_) => None,
        }
    }

    /// Releases the locks among `held` that name `owner`'s device when the caller holds
    /// that device exclusively (a crashed run's locks; see the module docs). How many
    /// were released.
    async fn release_stale(
        &self,
        dir: &RemotePath,
        owner: Option<&LockOwner>,
        held: &[LockHolder],
    ) -> usize {
        let Some(owner) = owner.filter(|o| o.is_exclusive()) else {
            return 0;
        };
        let mut released = 0;
        for h in held.iter().filter(|h| h.is_device_of(owner)) {
            let Some(token) = h.token.as_deref().filter(|t| !self.is_handed_out(t)) else {
                tracing::warn!(
                    "{dir}: a lock of this device is left from a sync that stopped, but the server does not show its token: it cannot be released before it expires"
                );
                continue;
            };
            let stale = DirLock::new(dir.clone(), token, Duration::from_secs(1));
            match self.unlock_dir_impl(&stale).await {
                Ok(()) => released += 1,
                Err(e) => tracing::warn!("{dir}: could not release this device's stale lock: {e}"),
            }
        }
        released
    }

    pub(crate) async fn refresh_lock_impl(&self, lock: &DirLock, ttl: Duration) -> Result<DirLock> {
        let what = lock.dir().to_string();
        let resp = self
            .request(lock_method(), self.url_for(lock.dir(), true))
            .header(
                "If",
                if_value(self.url_for(lock.dir(), true).as_str(), None, lock)?,
            )
            .header("Timeout", timeout_header(ttl))
            .send()
            .await
            .map_err(|e| transport_error(e, &what))?;
        match resp.status().as_u16() {
            200 | 201 => {
                let granted = read_capped(resp, 64 * 1024, &what)
                    .await
                    .ok()
                    .and_then(|b| granted_ttl(&b, lock.token()));
                Ok(DirLock::new(
                    lock.dir().clone(),
                    lock.token(),
                    granted.unwrap_or(ttl),
                ))
            }
            // The token no longer names a lock on this folder (expired, released, or
            // another client's lock is there now).
            412 | 423 => {
                let _ = read_capped(resp, 64 * 1024, &what).await;
                self.forget(lock.token());
                Err(Error::PreconditionFailed { path: what })
            }
            _ => Err(self.status_error(resp, &what).await),
        }
    }

    pub(crate) async fn unlock_dir_impl(&self, lock: &DirLock) -> Result<()> {
        let what = lock.dir().to_string();
        let resp = self
            .request(
                Method::from_bytes(b"UNLOCK").unwrap_or(Method::POST),
                self.url_for(lock.dir(), true),
            )
            .header("Lock-Token", format!("<{}>", lock.token()))
            .send()
            .await
            .map_err(|e| transport_error(e, &what))?;
        let status = resp.status();
        let _ = read_capped(resp, 64 * 1024, &what).await;
        match status.as_u16() {
            200..=299 => {
                self.forget(lock.token());
                Ok(())
            }
            // Already gone (expired, or an earlier UNLOCK whose answer was lost). Servers
            // disagree on the status: 409 (Apache, RFC 4918 §9.11.1 "no-conflicting-lock"
            // is 409), 412, 423 or 400 for an unknown token, 404 when the folder is gone.
            400 | 404 | 409 | 412 | 423 => {
                self.forget(lock.token());
                Ok(())
            }
            _ => Err(self.error_for(status, None, &what)),
        }
    }

    fn remember(&self, lock: &DirLock) {
        if let Ok(mut g) = self.inner.held_locks.lock() {
            g.insert(lock.token().to_string());
        }
    }

    fn forget(&self, token: &str) {
        if let Ok(mut g) = self.inner.held_locks.lock() {
            g.remove(token);
        }
    }

    fn is_handed_out(&self, token: &str) -> bool {
        self.inner
            .held_locks
            .lock()
            .map(|g| g.contains(token))
            .unwrap_or(true)
    }
}

/// A `207 Multi-Status` answer to a request that changes one resource (PUT, DELETE,
/// MKCOL, MOVE) is a failure: Apache answers a PUT of a new file into a folder locked
/// by someone else with 207, `424` for the file and `423` for the folder. Never a
/// success, whatever the inner statuses: the kind follows the worst of them.
pub(crate) async fn multi_status_failure(resp: reqwest::Response, what: &str) -> Error {
    let body = read_capped(resp, 64 * 1024, what).await.unwrap_or_default();
    let codes: Vec<u16> = xml::parse_multistatus(&body)
        .map(|rs| rs.iter().filter_map(|r| r.status).collect())
        .unwrap_or_default();
    if codes.contains(&423) {
        Error::Locked {
            path: what.to_string(),
            holder: None,
        }
    } else if codes.contains(&412) {
        Error::PreconditionFailed {
            path: what.to_string(),
        }
    } else {
        Error::transient(format!(
            "{what}: the server answered 207 Multi-Status ({codes:?}) to a change"
        ))
    }
}

/// The timeout granted for the lock with `token` in a `LOCK` answer body.
fn granted_ttl(body: &[u8], token: &str) -> Option<Duration> {
    let locks = match xml::parse_activelocks(body) {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %trunc(&e.to_string()), "unreadable LOCK answer body");
            return None;
        }
    };
    let l = locks
        .iter()
        .find(|l| l.token.as_deref() == Some(token))
        .or(locks.first())?;
    l.timeout_secs().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_token_header_is_parsed_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            "Lock-Token",
            HeaderValue::from_static("<opaquelocktoken:1b2c-3d>"),
        );
        assert_eq!(token_of(&h).as_deref(), Some("opaquelocktoken:1b2c-3d"));
        h.insert("Lock-Token", HeaderValue::from_static("<a>b>"));
        assert_eq!(token_of(&h), None);
        // Bare URIs, as WsgiDAV and webdav-server send them.
        for bare in [
            "opaquelocktoken:0x7da57a5f3e6e1b8a700b2579",
            "urn:uuid:42f954f5-54f5-12f9-004a-00003c7c0479",
        ] {
            h.insert("Lock-Token", HeaderValue::from_static(bare));
            assert_eq!(token_of(&h).as_deref(), Some(bare));
        }
        // Anything else bare is not a token.
        for junk in [
            "no-scheme",
            ":x",
            "1x:y",
            "opaquelocktoken:",
            "a:b c",
            "a:b,c:d",
            "a:(b)",
            "",
        ] {
            h.insert("Lock-Token", HeaderValue::from_static(junk));
            assert_eq!(token_of(&h), None, "{junk:?}");
        }
    }

    #[test]
    fn granted_timeout_is_read_from_the_answer() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<D:prop xmlns:D="DAV:"><D:lockdiscovery><D:activelock>
<D:locktype><D:write/></D:locktype><D:lockscope><D:exclusive/></D:lockscope>
<D:depth>infinity</D:depth><D:owner><D:href>syncfabric:abc</D:href></D:owner>
<D:timeout>Second-120</D:timeout>
<D:locktoken><D:href>opaquelocktoken:t-1</D:href></D:locktoken>
</D:activelock></D:lockdiscovery></D:prop>"#;
        assert_eq!(
            granted_ttl(body, "opaquelocktoken:t-1"),
            Some(Duration::from_secs(120))
        );
        let locks = xml::parse_activelocks(body).unwrap();
        assert_eq!(locks.len(), 1);
        assert_eq!(locks[0].owner, "syncfabric:abc");
        // Infinite or missing: the caller keeps what it asked for.
        let inf = String::from_utf8_lossy(body).replace("Second-120", "Infinite");
        assert_eq!(granted_ttl(inf.as_bytes(), "opaquelocktoken:t-1"), None);
    }

    #[test]
    fn owner_texts_round_trip_through_lockdiscovery() {
        let href = owner_text("0123456789abcdef", "77aa", "Anna's <laptop> & co");
        assert!(!href.contains(['<', '>', '&', '\'', ' ']), "{href}");
        let body = format!(
            r#"<D:prop xmlns:D="DAV:"><D:lockdiscovery><D:activelock>
<D:owner>{href}</D:owner><D:timeout>Second-1800</D:timeout>
<D:locktoken><D:href>opaquelocktoken:t-1</D:href></D:locktoken>
</D:activelock></D:lockdiscovery></D:prop>"#
        );
        let l = &xml::parse_activelocks(body.as_bytes()).unwrap()[0];
        let h = holder_of(l, SystemTime::UNIX_EPOCH);
        assert_eq!(h.device.as_deref(), Some("0123456789abcdef"));
        assert_eq!(h.process.as_deref(), Some("77aa"));
        assert_eq!(h.label.as_deref(), Some("Anna's <laptop> & co"));
        assert_eq!(h.token.as_deref(), Some("opaquelocktoken:t-1"));
        assert_eq!(h.expires_in, Some(Duration::from_secs(1800)));
        let text = describe(&[h]).unwrap();
        assert!(
            text.starts_with("device \"Anna's <laptop> & co\" (id 01234567)"),
            "{text}"
        );
        assert!(text.contains("00:30:00 GMT at the latest"), "{text}");
    }

    #[test]
    fn foreign_and_hostile_owners_are_not_taken_for_ours() {
        let lock = |owner: &str| xml::ActiveLock {
            token: Some("opaquelocktoken:x".into()),
            owner: owner.into(),
            timeout: None,
        };
        // Another program's lock: shown as it is, cleaned.
        let h = holder_of(
            &lock("mailto:bob@example.org\u{1b}[2J"),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(h.device, None);
        assert_eq!(h.other_owner.as_deref(), Some("mailto:bob@example.org [2J"));
        // A device id that is not an id is not a device.
        let h = holder_of(
            &lock("syncfabric:device=../../x;process=1"),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(h.device, None);
        assert_eq!(h.process, None);
        // Older versions wrote `syncfabric:<hex>`: another client.
        let h = holder_of(&lock("syncfabric:00ff"), SystemTime::UNIX_EPOCH);
        assert_eq!(h.device, None);
        assert!(h.to_string().contains("no expiry"), "{h}");
        assert_eq!(describe(&[]), None);
    }

    #[test]
    fn lock_answers_with_entities_are_refused() {
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><D:prop xmlns:D="DAV:">&a;</D:prop>"#;
        assert!(xml::parse_activelocks(bomb).is_err());
        let undeclared = br#"<D:prop xmlns:D="DAV:"><D:lockdiscovery><D:activelock><D:owner>&x;</D:owner></D:activelock></D:lockdiscovery></D:prop>"#;
        assert!(xml::parse_activelocks(undeclared).is_err());
    }

    #[test]
    fn if_header_is_tagged_with_the_folder_url() {
        let dav =
            WebDavStorage::new(crate::WebDavConfig::new("http://127.0.0.1:9/dav/my root")).unwrap();
        let l = DirLock::new(
            RemotePath::parse("v 1").unwrap(),
            "opaquelocktoken:9",
            Duration::from_secs(5),
        );
        let h = dav
            .lock_headers(&Precondition::UnderLock(l.clone()), None)
            .unwrap();
        assert_eq!(
            h.get("If").unwrap(),
            "<http://127.0.0.1:9/dav/my%20root/v%201/> (<opaquelocktoken:9>)"
        );
        let f = RemotePath::parse("v 1/db").unwrap();
        let h = dav
            .lock_headers(&Precondition::UnderLock(l), Some(&f))
            .unwrap();
        assert_eq!(
            h.get("If").unwrap(),
            "<http://127.0.0.1:9/dav/my%20root/v%201/> (<opaquelocktoken:9>) <http://127.0.0.1:9/dav/my%20root/v%201/db> (<opaquelocktoken:9>)"
        );
        assert!(dav
            .lock_headers(&Precondition::None, None)
            .unwrap()
            .is_empty());
    }
}
