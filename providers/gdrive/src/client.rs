//! A small client for the Drive v2 endpoints this crate uses, and the mapping of
//! Google's error answers to [`syncfabric_core::Error`].
//!
//! Errors are `{"error": {"errors": [{"domain", "reason", "message"}], "code",
//! "message"}}` (<https://developers.google.com/drive/api/guides/handle-errors>):
//! `401` a bad token, `403` with reason `userRateLimitExceeded` or
//! `rateLimitExceeded` and `429` throttling
//! (<https://developers.google.com/drive/api/guides/limits>), `404` an unknown id or
//! an expired upload session, `412` a stale `If-Match`, `5xx` server trouble.

use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use syncfabric_core::auth::BearerAuth;
use syncfabric_core::{Error, Result};
use syncfabric_http::{read_capped, retry_after, transport_error};

/// The largest JSON answer read into memory.
const MAX_JSON: usize = 8 * 1024 * 1024;
/// The folder MIME type.
pub(crate) const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// The shortcut MIME type (<https://developers.google.com/drive/api/guides/shortcuts>).
pub(crate) const SHORTCUT_MIME: &str = "application/vnd.google-apps.shortcut";
/// The fields of a v2 file resource this crate reads.
pub(crate) const FIELDS: &str = "id,etag,title,mimeType,fileSize,createdDate,modifiedDate,labels(trashed),parents(id),shortcutDetails(targetId)";

/// A v2 file resource (<https://developers.google.com/drive/api/v2/reference/files>),
/// the fields this crate reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meta {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub mime_type: String,
    /// int64 as a string.
    #[serde(default)]
    pub file_size: Option<String>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub modified_date: Option<String>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub parents: Vec<ParentRef>,
    #[serde(default)]
    pub shortcut_details: Option<ShortcutDetails>,
}

/// `labels` of a file resource.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Labels {
    #[serde(default)]
    pub trashed: bool,
}

/// One of `parents`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ParentRef {
    #[serde(default)]
    pub id: String,
}

/// `shortcutDetails` of a shortcut.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShortcutDetails {
    #[serde(default)]
    pub target_id: Option<String>,
}

impl Meta {
    pub fn is_folder(&self) -> bool {
        self.mime_type == FOLDER_MIME
    }
    pub fn is_shortcut(&self) -> bool {
        self.mime_type == SHORTCUT_MIME
    }
    pub fn size(&self) -> Option<u64> {
        self.file_size.as_deref().and_then(|s| s.parse().ok())
    }
    pub fn modified(&self) -> Option<SystemTime> {
        self.modified_date.as_deref().and_then(parse_time)
    }
    pub fn has_parent(&self, id: &str) -> bool {
        self.parents.iter().any(|p| p.id == id)
    }
    /// The order in which duplicates of one title are ranked: oldest first, then id.
    pub fn rank(&self) -> (Option<SystemTime>, &str) {
        (self.created_date.as_deref().and_then(parse_time), &self.id)
    }
}

/// A Google error answer, before the call that got it gives it a meaning.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `errors[0].reason`, e.g. `userRateLimitExceeded`; empty when there was none.
    pub reason: String,
    /// `message`, control characters removed, at most 200 characters.
    pub message: String,
}

impl ApiError {
    /// Whether Google asks us to slow down (403 with a rate-limit reason, or 429).
    pub fn is_throttle(&self) -> bool {
        self.status == 429
            || (self.status == 403
                && matches!(
                    self.reason.as_str(),
                    "userRateLimitExceeded" | "rateLimitExceeded" | "sharingRateLimitExceeded"
                ))
    }

    /// Whether sending the same request again may succeed (throttling, 5xx).
    pub fn is_retryable(&self) -> bool {
        self.is_throttle() || self.status >= 500
    }

    /// The general meaning of this error; callers first handle what depends on the
    /// call (412 is `PreconditionFailed` for a conditional write).
    pub fn into_error(self, what: &str) -> Error {
        let text = format!(
            "{what}: HTTP {} {} {}",
            self.status, self.reason, self.message
        );
        if self.is_throttle() {
            return Error::RateLimited {
                retry_after: self.retry_after,
                message: text,
            };
        }
        match self.status {
            401 => Error::Unauthorized {
                message: format!("{what}: Google refused the token ({})", self.reason),
            },
            403 if self.reason == "storageQuotaExceeded" || self.reason == "quotaExceeded" => {
                Error::QuotaExceeded { message: text }
            }
            404 => Error::NotFound {
                path: what.to_string(),
            },
            412 => Error::PreconditionFailed {
                path: what.to_string(),
            },
            s => Error::from_http_status(s, what, self.retry_after, &self.reason),
        }
    }
}

/// A finished request: the answer, or Google's error.
pub(crate) type Answer = std::result::Result<reqwest::Response, ApiError>;

/// Reads an error answer.
pub(crate) async fn api_error(resp: reqwest::Response, what: &str) -> ApiError {
    let status = resp.status().as_u16();
    let ra = retry_after(resp.headers());
    let raw = read_capped(resp, 64 * 1024, what).await;
    let v: serde_json::Value = raw
        .ok()
        .and_then(|r| serde_json::from_slice(&r).ok())
        .unwrap_or_default();
    let clean = |s: Option<&str>| -> String {
        s.unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect()
    };
    ApiError {
        status,
        retry_after: ra,
        reason: clean(v.pointer("/error/errors/0/reason").and_then(|x| x.as_str())),
        message: clean(v.pointer("/error/message").and_then(|x| x.as_str())),
    }
}

/// The HTTP side of a storage: the connection pool, the account, the base URLs.
pub(crate) struct Client {
    pub http: reqwest::Client,
    pub bearer: Arc<dyn BearerAuth>,
    /// `…/drive/v2`.
    pub api: String,
    /// `…/upload/drive/v2`.
    pub upload: String,
}

impl Client {
    /// Sends a request with the bearer token. On 401 the token is reported as
    /// rejected and the request is sent once more with a fresh one; a second 401 is
    /// [`Error::Unauthorized`]. A `308` (resumable upload, "Resume Incomplete") and
    /// every 2xx are answers; anything else is an [`ApiError`].
    pub async fn send<F>(&self, what: &str, build: F) -> Result<Answer>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let mut token = self.bearer.bearer().await?;
        let mut refreshed = false;
        loop {
            let resp = build(&self.http)
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(|e| transport_error(e, what))?;
            let s = resp.status().as_u16();
            if resp.status().is_success() || s == 308 {
                return Ok(Ok(resp));
            }
            if s != 401 {
                return Ok(Err(api_error(resp, what).await));
            }
            if refreshed {
                return Err(api_error(resp, what).await.into_error(what));
            }
            tracing::debug!(what, "Google answered 401; asking for a fresh token");
            self.bearer.rejected(&token).await?;
            token = self.bearer.bearer().await?;
            refreshed = true;
        }
    }

    /// `GET {api}/{path}` with `query`; the JSON answer.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<std::result::Result<T, ApiError>> {
        let url = with_query(&format!("{}/{path}", self.api), query)?;
        match self.send(what, |c| c.get(url.clone())).await? {
            Ok(resp) => Ok(Ok(read_json(resp, what).await?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

/// `base` with `query` appended, percent-encoded.
pub(crate) fn with_query(base: &str, query: &[(&str, &str)]) -> Result<reqwest::Url> {
    let mut u = reqwest::Url::parse(base).map_err(|_| Error::InvalidInput {
        message: "a request URL that does not parse".into(),
    })?;
    if !query.is_empty() {
        u.query_pairs_mut().extend_pairs(query);
    }
    Ok(u)
}

/// Reads a JSON answer of at most [`MAX_JSON`] bytes.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T> {
    let raw = read_capped(resp, MAX_JSON, what).await?;
    serde_json::from_slice(&raw).map_err(|e| Error::Corrupt {
        message: format!("{what}: Google answered with unexpected JSON: {e}"),
    })
}

/// A string for a `q` query: `'…'` with `\` and `'` escaped
/// (<https://developers.google.com/drive/api/guides/search-files>).
pub(crate) fn q_string(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Parses RFC 3339 UTC times as Drive writes them (`2026-12-05T12:00:01.123Z`).
// Same civil-date arithmetic as the Dropbox crate's parse_time (a copy to fold into
// syncfabric-http later), plus fractional seconds.
pub(crate) fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.trim().strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let (time, frac) = time.split_once('.').unwrap_or((time, ""));
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    let (y, m, day, hh, mm, ss) = (*y, *m, *day, *hh, *mm, *ss);
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hh)
        || !(0..60).contains(&mm)
        || !(0..=60).contains(&ss)
        || frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, reason: &str) -> ApiError {
        ApiError {
            status,
            retry_after: Some(Duration::from_secs(2)),
            reason: reason.into(),
            message: String::new(),
        }
    }

    #[test]
    fn errors_map() {
        for (s, r) in [
            (403, "userRateLimitExceeded"),
            (403, "rateLimitExceeded"),
            (429, ""),
        ] {
            let e = err(s, r).into_error("a");
            assert!(
                matches!(e, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(2)),
                "{e:?}"
            );
        }
        assert!(matches!(
            err(412, "conditionNotMet").into_error("a"),
            Error::PreconditionFailed { .. }
        ));
        assert!(matches!(
            err(404, "notFound").into_error("a"),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            err(401, "authError").into_error("a"),
            Error::Unauthorized { .. }
        ));
        assert!(matches!(
            err(403, "storageQuotaExceeded").into_error("a"),
            Error::QuotaExceeded { .. }
        ));
        assert!(matches!(
            err(403, "insufficientFilePermissions").into_error("a"),
            Error::Forbidden { .. }
        ));
        assert!(err(503, "").into_error("a").is_retryable());
        assert!(!err(403, "insufficientFilePermissions").is_retryable());
    }

    #[test]
    fn times_and_queries() {
        let a = parse_time("2026-12-05T10:00:00.001Z").unwrap();
        let b = parse_time("2026-12-05T10:00:00.002Z").unwrap();
        assert!(a < b);
        assert!(parse_time("2026-12-05T10:00:00Z").is_some());
        assert!(parse_time("2026-12-05T10:00:00.x1Z").is_none());
        assert_eq!(q_string("it's a\\b"), "'it\\'s a\\\\b'");
    }
}
