//! A small client for the Drive v2 endpoints this crate uses (their error answers
//! are read in `error`).

use crate::error::{api_error, Answer, ApiError, SERVER};
use serde::Deserialize;
use std::time::SystemTime;
use syncfabric_core::{Error, Result};
use syncfabric_http::{parse_rfc3339, BearerClient};

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
        self.modified_date.as_deref().and_then(parse_rfc3339)
    }
    pub fn has_parent(&self, id: &str) -> bool {
        self.parents.iter().any(|p| p.id == id)
    }
    /// The order in which duplicates of one title are ranked: oldest first, then id.
    pub fn rank(&self) -> (Option<SystemTime>, &str) {
        (
            self.created_date.as_deref().and_then(parse_rfc3339),
            &self.id,
        )
    }
}

/// The HTTP side of a storage: the connection pool and the account, the base URLs.
pub(crate) struct Client {
    pub http: BearerClient,
    /// `…/drive/v2`.
    pub api: String,
    /// `…/upload/drive/v2`.
    pub upload: String,
}

impl Client {
    /// Sends a request with the bearer token (refreshed once on 401, see
    /// [`BearerClient::send`]). A `308` (resumable upload, "Resume Incomplete") and
    /// every 2xx are answers; anything else is an [`ApiError`].
    pub async fn send<F>(&self, what: &str, build: F) -> Result<Answer>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let refused = |r| async move { api_error(r, what).await.into_error(what) };
        let resp = self.http.send(what, build, refused).await?;
        if resp.status().is_success() || resp.status().as_u16() == 308 {
            Ok(Ok(resp))
        } else {
            Ok(Err(api_error(resp, what).await))
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

/// Reads a JSON answer (at most [`syncfabric_http::body::MAX_JSON`] bytes).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T> {
    syncfabric_http::read_json(resp, what, SERVER).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_queries() {
        let m = |d: &str| Meta {
            modified_date: Some(d.into()),
            ..Meta::default()
        };
        assert!(
            m("2026-12-05T10:00:00.001Z").modified() < m("2026-12-05T10:00:00.002Z").modified()
        );
        assert!(m("2026-12-05T10:00:00.x1Z").modified().is_none());
        assert_eq!(q_string("it's a\\b"), "'it\\'s a\\\\b'");
    }
}
