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
use std::time::{Duration, SystemTime};
use syncfabric_core::{Error, Result};
use syncfabric_http::{clean_detail, BearerClient, ErrorAnswer, StatusTable};

/// The server, as errors name it.
pub(crate) const SERVER: &str = "Dropbox";
/// The generic status table, for what Dropbox's `error_summary` does not decide.
const TABLE: StatusTable = StatusTable::new(SERVER);

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
        self.server_modified
            .as_deref()
            .and_then(syncfabric_http::parse_rfc3339)
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
            409 if self.has("not_found") => Error::NotFound {
                path: what.to_string(),
            },
            409 if self.has("insufficient_space") => Error::QuotaExceeded { message: text },
            409 if self.has("conflict") => Error::AlreadyExists {
                path: what.to_string(),
            },
            409 => Error::InvalidInput { message: text },
            s => TABLE.error(s, wait, what, &self.summary),
        }
    }
}

/// A finished request: the answer, or Dropbox's error.
pub(crate) type Answer = std::result::Result<reqwest::Response, ApiError>;

/// Reads an error answer (status, `Retry-After`, `error_summary`, `error`).
pub(crate) async fn api_error(resp: reqwest::Response, what: &str) -> ApiError {
    let a = ErrorAnswer::read(resp, what).await;
    let v = a.json();
    // 409 answers are always JSON (Errors by status code); others may be plain text.
    let garbled = v.is_none() && a.status == 409;
    let v = v.unwrap_or_default();
    let summary = clean_detail(
        v.get("error_summary")
            .and_then(|s| s.as_str())
            .unwrap_or(""),
    );
    ApiError {
        status: a.status,
        retry_after: a.retry_after,
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

/// The HTTP side of a storage: the connection pool and the account, the two base URLs.
pub(crate) struct Client {
    pub http: BearerClient,
    pub api: String,
    pub content: String,
}

impl Client {
    /// Sends a request with the bearer token (refreshed once on 401, see
    /// [`BearerClient::send`]); any other non-2xx answer is returned as an
    /// [`ApiError`].
    async fn send<F>(&self, what: &str, build: F) -> Result<Answer>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let refused = |r| async move { api_error(r, what).await.into_error(what) };
        let resp = self.http.send(what, build, refused).await?;
        if resp.status().is_success() {
            Ok(Ok(resp))
        } else {
            Ok(Err(api_error(resp, what).await))
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

/// Reads a JSON answer (at most [`syncfabric_http::body::MAX_JSON`] bytes).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T> {
    syncfabric_http::read_json(resp, what, SERVER).await
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
}
