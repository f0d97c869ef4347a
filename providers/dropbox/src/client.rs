//! A small typed client for the Dropbox API v2 endpoints this crate uses, and the
//! mapping of Dropbox's error answers to [`syncfabric_core::Error`].
//!
//! Two request styles (Dropbox HTTP reference, "Request and response formats"):
//! *RPC* endpoints take a JSON body and answer JSON; *content* endpoints take their
//! argument as JSON in the `Dropbox-API-Arg` header (non-ASCII escaped: "HTTP
//! header-safe JSON") and carry file bytes in the body (upload) or answer them with
//! the metadata in the `Dropbox-API-Result` header (download). Errors are `409` with
//! `{"error_summary": "path/not_found/…", "error": {…}}`, `401` for a bad token,
//! `429` with `Retry-After` for rate limits, `5xx` for server trouble.

use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use syncfabric_core::auth::BearerAuth;
use syncfabric_core::{Error, Result};
use syncfabric_http::{read_capped, retry_after, transport_error};

/// The largest JSON answer read into memory.
const MAX_JSON: usize = 8 * 1024 * 1024;

/// File or folder metadata (`FileMetadata` / `FolderMetadata` / `DeletedMetadata`,
/// told apart by `.tag`), the fields this crate reads.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Metadata {
    #[serde(rename = ".tag", default)]
    pub tag: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub rev: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub server_modified: Option<String>,
    #[serde(default)]
    pub content_hash: Option<String>,
}

impl Metadata {
    pub fn is_folder(&self) -> bool {
        self.tag == "folder"
    }
    pub fn modified(&self) -> Option<SystemTime> {
        self.server_modified.as_deref().and_then(parse_time)
    }
}

/// A Dropbox error answer, before it is given a meaning by the call that got it.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `error_summary`, e.g. `path/conflict/file/..`; empty when there was none.
    pub summary: String,
    /// The `error` object.
    pub error: serde_json::Value,
    /// The answer's body broke off or was not Dropbox's error JSON: nothing in it
    /// can be trusted, so the error is `Transient` whatever the status.
    pub garbled: bool,
}

impl ApiError {
    /// Whether the summary names `tag` as one of its parts (`path/conflict/file/..`
    /// has `path`, `conflict` and `file`).
    pub fn has(&self, tag: &str) -> bool {
        self.summary.split('/').any(|p| p == tag)
    }

    /// `correct_offset` of an `incorrect_offset` error (upload sessions), wherever
    /// the union nests it.
    pub fn correct_offset(&self) -> Option<u64> {
        if !self.has("incorrect_offset") {
            return None;
        }
        ["/correct_offset", "/lookup_failed/correct_offset"]
            .iter()
            .find_map(|p| self.error.pointer(p).and_then(|v| v.as_u64()))
    }

    /// The general meaning of this error; callers first handle what depends on the
    /// call (a conflict means `PreconditionFailed` for `IfMatch`, `AlreadyExists` for
    /// `IfAbsent`).
    pub fn into_error(self, what: &str) -> Error {
        let text = format!("{what}: HTTP {} {}", self.status, self.summary);
        if self.garbled && self.status != 429 && self.status != 401 {
            return Error::transient(format!("{text}: the error answer was unreadable"));
        }
        let wait = self.retry_after.or_else(|| {
            self.error
                .pointer("/retry_after")
                .and_then(|v| v.as_u64())
                .map(Duration::from_secs)
        });
        if self.status == 429
            || self.has("too_many_write_operations")
            || self.has("too_many_requests")
        {
            return Error::RateLimited {
                retry_after: wait,
                message: text,
            };
        }
        match self.status {
            401 => Error::Unauthorized {
                message: format!("{what}: Dropbox refused the token ({})", self.summary),
            },
            409 if self.has("not_found") => Error::NotFound {
                path: what.to_string(),
            },
            409 if self.has("insufficient_space") => Error::QuotaExceeded { message: text },
            409 if self.has("conflict") => Error::AlreadyExists {
                path: what.to_string(),
            },
            409 => Error::InvalidInput { message: text },
            s => Error::from_http_status(s, what, wait, &self.summary),
        }
    }
}

/// A finished request: the answer, or Dropbox's error.
pub(crate) type Answer = std::result::Result<reqwest::Response, ApiError>;

/// Reads an error answer (status, `Retry-After`, `error_summary`, `error`).
pub(crate) async fn api_error(resp: reqwest::Response, what: &str) -> ApiError {
    let status = resp.status().as_u16();
    let ra = retry_after(resp.headers());
    let raw = read_capped(resp, 64 * 1024, what).await;
    let v: Option<serde_json::Value> = raw.ok().and_then(|r| serde_json::from_slice(&r).ok());
    // 409 answers are always JSON (Errors by status code); others may be plain text.
    let garbled = v.is_none() && status == 409;
    let v = v.unwrap_or_default();
    let summary = v
        .get("error_summary")
        .and_then(|s| s.as_str())
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    ApiError {
        status,
        retry_after: ra,
        summary,
        error: v.get("error").cloned().unwrap_or_default(),
        garbled,
    }
}

/// JSON made safe for an HTTP header: `0x7F` and every non-ASCII character escaped
/// as `\uXXXX` (UTF-16, surrogate pairs where needed), as the reference requires
/// for `Dropbox-API-Arg`.
pub(crate) fn header_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// The HTTP side of a storage: the connection pool, the account, the two base URLs.
pub(crate) struct Client {
    pub http: reqwest::Client,
    pub bearer: Arc<dyn BearerAuth>,
    pub api: String,
    pub content: String,
}

impl Client {
    /// Sends a request with the bearer token. On 401 the token is reported as
    /// rejected and the request is sent once more with a fresh one (the
    /// [`BearerAuth`] refresh path); a second 401 is [`Error::Unauthorized`].
    /// Any other non-2xx answer is returned as an [`ApiError`].
    async fn send<F>(&self, what: &str, build: F) -> Result<Answer>
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
            if resp.status().is_success() {
                return Ok(Ok(resp));
            }
            if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
                return Ok(Err(api_error(resp, what).await));
            }
            if refreshed {
                return Err(api_error(resp, what).await.into_error(what));
            }
            tracing::debug!(what, "Dropbox answered 401; asking for a fresh token");
            self.bearer.rejected(&token).await?;
            token = self.bearer.bearer().await?;
            refreshed = true;
        }
    }

    /// An RPC call: `POST {api}/{endpoint}` with a JSON argument; the JSON answer.
    pub async fn rpc(
        &self,
        endpoint: &str,
        arg: &serde_json::Value,
        what: &str,
    ) -> Result<std::result::Result<serde_json::Value, ApiError>> {
        let url = format!("{}/{endpoint}", self.api);
        let body = arg.to_string();
        match self
            .send(what, |c| {
                c.post(&url)
                    .header("Content-Type", "application/json")
                    .body(body.clone())
            })
            .await?
        {
            Ok(resp) => Ok(Ok(read_json(resp, what).await?)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// A content upload call: `POST {content}/{endpoint}` with the argument in
    /// `Dropbox-API-Arg` and `body` as `application/octet-stream`; the JSON answer.
    pub async fn upload(
        &self,
        endpoint: &str,
        arg: &serde_json::Value,
        body: bytes::Bytes,
        what: &str,
    ) -> Result<std::result::Result<serde_json::Value, ApiError>> {
        let url = format!("{}/{endpoint}", self.content);
        let arg = header_json(arg);
        match self
            .send(what, |c| {
                c.post(&url)
                    .header("Dropbox-API-Arg", arg.as_str())
                    .header("Content-Type", "application/octet-stream")
                    .body(body.clone())
            })
            .await?
        {
            Ok(resp) => Ok(Ok(read_json(resp, what).await?)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// `files/download`: the answer (bytes in the body) and its metadata from the
    /// `Dropbox-API-Result` header.
    pub async fn download(
        &self,
        path: &str,
        what: &str,
    ) -> Result<std::result::Result<(reqwest::Response, Metadata), ApiError>> {
        let url = format!("{}/files/download", self.content);
        let arg = header_json(&serde_json::json!({ "path": path }));
        let resp = match self
            .send(what, |c| {
                c.post(&url).header("Dropbox-API-Arg", arg.as_str())
            })
            .await?
        {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let meta = resp
            .headers()
            .get("dropbox-api-result")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| serde_json::from_str::<Metadata>(s).ok())
            .ok_or_else(|| Error::Corrupt {
                message: format!("{what}: a download without a readable Dropbox-API-Result"),
            })?;
        Ok(Ok((resp, meta)))
    }
}

/// Reads a JSON answer of at most [`MAX_JSON`] bytes.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T> {
    let raw = read_capped(resp, MAX_JSON, what).await?;
    serde_json::from_slice(&raw).map_err(|e| Error::Corrupt {
        message: format!("{what}: Dropbox answered with unexpected JSON: {e}"),
    })
}

/// Reads `v` as `T`, or [`Error::Corrupt`].
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
    what: &str,
) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Corrupt {
        message: format!("{what}: Dropbox answered with unexpected JSON: {e}"),
    })
}

/// Parses Dropbox's timestamps, `%Y-%m-%dT%H:%M:%SZ` (UTC).
pub(crate) fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.trim().strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
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
    {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(status: u16, summary: &str, error: serde_json::Value) -> ApiError {
        ApiError {
            status,
            retry_after: None,
            summary: summary.into(),
            error,
            garbled: false,
        }
    }

    #[test]
    fn errors_map() {
        let e = err(409, "path/not_found/..", json!({})).into_error("a");
        assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
        let e = err(409, "path/conflict/file/..", json!({})).into_error("a");
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
        let e = err(
            429,
            "too_many_write_operations/..",
            json!({"reason": {".tag": "too_many_write_operations"}, "retry_after": 3}),
        )
        .into_error("a");
        assert!(
            matches!(e, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3)),
            "{e:?}"
        );
        let e = err(409, "too_many_write_operations/.", json!({})).into_error("a");
        assert!(matches!(e, Error::RateLimited { .. }), "{e:?}");
        let e = err(401, "expired_access_token/..", json!({})).into_error("a");
        assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
        let e = err(409, "path/insufficient_space/..", json!({})).into_error("a");
        assert!(matches!(e, Error::QuotaExceeded { .. }), "{e:?}");
        let e = err(500, "", json!({})).into_error("a");
        assert!(matches!(e, Error::Transient { .. }), "{e:?}");
        let e = err(400, "", json!({})).into_error("a");
        assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
        let o = err(
            409,
            "lookup_failed/incorrect_offset/..",
            json!({"lookup_failed": {".tag": "incorrect_offset", "correct_offset": 7}}),
        );
        assert_eq!(o.correct_offset(), Some(7));
        let mut g = err(409, "", json!({}));
        g.garbled = true;
        assert!(matches!(g.into_error("a"), Error::Transient { .. }));
    }

    #[test]
    fn header_json_escapes_non_ascii() {
        let s = header_json(&json!({"path": "/Ünï 😀\u{7f}"}));
        assert!(s.is_ascii(), "{s}");
        assert!(s.contains("\\u00dc") && s.contains("\\ud83d\\ude00") && s.contains("\\u007f"));
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["path"], "/Ünï 😀\u{7f}");
    }

    #[test]
    fn times_parse() {
        let t = parse_time("2026-12-05T12:00:01Z").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_796_472_001);
        for bad in [
            "",
            "2026-12-05 12:00:00Z",
            "2026-13-01T00:00:00Z",
            "x-y-zTa:b:cZ",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
