//! A small typed client for the Dropbox API v2 endpoints this crate uses (their
//! error answers are read in `error`).
//!
//! Two request styles (Dropbox HTTP reference, "Request and response formats"):
//! *RPC* endpoints take a JSON body and answer JSON; *content* endpoints take their
//! argument as JSON in the `Dropbox-API-Arg` header (non-ASCII escaped: "HTTP
//! header-safe JSON") and carry file bytes in the body (upload) or answer them with
//! the metadata in the `Dropbox-API-Result` header (download). Errors are `409` with
//! `{"error_summary": "path/not_found/…", "error": {…}}`, `401` for a bad token,
//! `429` with `Retry-After` for rate limits, `5xx` for server trouble.

use crate::error::{api_error, Answer, ApiError, SERVER};
use serde::Deserialize;
use std::time::SystemTime;
use syncfabric_core::{Error, Result};
use syncfabric_http::BearerClient;

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

    #[test]
    fn header_json_escapes_non_ascii() {
        let s = header_json(&json!({"path": "/Ünï 😀\u{7f}"}));
        assert!(s.is_ascii(), "{s}");
        assert!(s.contains("\\u00dc") && s.contains("\\ud83d\\ude00") && s.contains("\\u007f"));
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["path"], "/Ünï 😀\u{7f}");
    }
}
