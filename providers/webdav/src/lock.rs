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
//! * **A lost answer.** When the answer to a `LOCK` is lost, the server may hold a lock
//!   whose token we never learnt, and the retry meets `423`. The `owner` we write names
//!   this storage value (random per [`WebDavStorage`]); on `423` the provider reads
//!   `lockdiscovery` and adopts a lock whose owner is its own and whose token it has not
//!   handed out already. Servers that do not show tokens there (golang.org/x/net/webdav,
//!   under rclone) leave the lock to expire after its timeout.

use crate::{read_capped, trunc, xml, Profile, WebDavStorage};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use syncfabric_core::{DirLock, Error, Precondition, RemotePath, Result};

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

/// `what`, and how long the server says the lock on it lasts, for the `Locked` error
/// another client's lock gives (a crashed device's lock blocks commits that long).
fn held_until(what: &str, held: &[xml::ActiveLock]) -> String {
    match held.iter().filter_map(|l| l.timeout_secs()).max() {
        Some(s) => format!("{what} (the server keeps that lock for up to {s} s more unless its holder releases it)"),
        None => what.to_string(),
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

    /// `owner` href of our locks: the same for every lock this storage value takes, so a
    /// retried `LOCK` can find the lock an earlier, unanswered attempt took.
    fn lock_owner(&self) -> String {
        format!("syncfabric:{}", self.inner.lock_owner_id)
    }

    pub(crate) async fn lock_dir_impl(&self, dir: &RemotePath, ttl: Duration) -> Result<DirLock> {
        if !self.inner.server_locks {
            return Err(Error::Unsupported {
                message: format!("{}: the server has no WebDAV locks (DAV class 2)", dir),
            });
        }
        let what = dir.to_string();
        let url = self.url_for(dir, true);
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>{}</D:href></D:owner></D:lockinfo>"#,
            self.lock_owner()
        );
        let resp = self
            .request(lock_method(), url)
            .header("Depth", "infinity")
            .header("Timeout", timeout_header(ttl))
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| crate::transport_error(e, &what))?;
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
                let longer = granted.filter(|g| *g > ttl + Duration::from_secs(5));
                if let Some(g) = longer.filter(|_| !TOLD_LONG_LOCKS.swap(true, Relaxed)) {
                    // A crashed holder blocks everyone's commits this long (SabreDAV
                    // grants 1800 s whatever is asked).
                    tracing::warn!(
                        "{what}: the server granted a {} s lock where {} s were asked; if this device stops before releasing it, other devices wait up to that long",
                        g.as_secs(),
                        ttl.as_secs()
                    );
                }
                let lock = DirLock::new(dir.clone(), token, granted.unwrap_or(ttl));
                self.remember(&lock);
                Ok(lock)
            }
            423 => {
                let _ = read_capped(resp, 64 * 1024, &what).await;
                let held = self.active_locks(dir).await.unwrap_or_default();
                match self.adopt(dir, ttl, &held).await {
                    Some(lock) => Ok(lock),
                    None => Err(Error::Locked {
                        path: held_until(&what, &held),
                    }),
                }
            }
            404 | 409 => Err(Error::NotFound { path: what }),
            405 | 501 => Err(Error::Unsupported {
                message: format!("{what}: the server refused LOCK (HTTP {status})"),
            }),
            _ => Err(self.status_error(resp, &what).await),
        }
    }

    /// The locks the server shows on `dir` (`lockdiscovery`); `None` when it shows
    /// none or the look-up fails.
    async fn active_locks(&self, dir: &RemotePath) -> Option<Vec<xml::ActiveLock>> {
        if self.inner.profile == Profile::Rclone {
            return None; // x/net/webdav has no lockdiscovery property
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
            .ok()?;
        if resp.status() != StatusCode::MULTI_STATUS {
            return None;
        }
        let body = read_capped(resp, 256 * 1024, &what).await.ok()?;
        xml::parse_activelocks(&body).ok()
    }

    /// A lock on `dir` among `held` that an earlier attempt of ours took without hearing
    /// the answer, if the server shows its token in `lockdiscovery`; refreshed to `ttl`.
    async fn adopt(
        &self,
        dir: &RemotePath,
        ttl: Duration,
        held: &[xml::ActiveLock],
    ) -> Option<DirLock> {
        let owner = self.lock_owner();
        let found = held
            .iter()
            .filter(|l| l.owner.contains(&owner))
            .filter_map(|l| l.token.clone())
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
            .map_err(|e| crate::transport_error(e, &what))?;
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
            .map_err(|e| crate::transport_error(e, &what))?;
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
