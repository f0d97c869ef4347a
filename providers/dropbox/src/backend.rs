//! [`DropboxStorage`]: the [`Storage`] contract on Dropbox's files endpoints.

use crate::client::{from_value, Client, Metadata};
use crate::config::{DropboxConfig, API_URL};
use crate::error::{ApiError, SERVER};
use crate::hash::{content_hash, ContentHasher};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use syncfabric_core::auth::BearerAuth;
use syncfabric_core::retry::{Pacer, Retrier, RetryingStorage};
use syncfabric_core::{
    Body, Capabilities, ChangeFeed, Download, Entry, EntryKind, Error, Precondition, RemotePath,
    Result, Storage, Version,
};
use syncfabric_http::{read_range, sized_stream, BearerClient, ClientOptions};

pub(crate) struct Inner {
    pub cfg: DropboxConfig,
    pub client: Client,
    pub retrier: Retrier,
}

/// One folder of one Dropbox account as a [`Storage`]. Cheap to clone (shares the
/// connection pool).
#[derive(Clone)]
pub struct DropboxStorage {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for DropboxStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropboxStorage")
            .field("location", &self.describe())
            .finish_non_exhaustive()
    }
}

/// A Dropbox rev: `[0-9a-f]+`, at least 9 long (files/upload, `WriteMode.update`).
/// Anything else cannot be any file's rev, and Dropbox would refuse it with 400.
pub(crate) fn is_rev(s: &str) -> bool {
    s.len() >= 9
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a write asks Dropbox for, from its precondition.
pub(crate) enum Mode {
    /// Send this `mode` value.
    Send(Value),
    /// Refused before any request (a version that cannot be a rev).
    Refused(Error),
}

pub(crate) fn write_mode(pre: &Precondition, what: &str) -> Mode {
    match pre {
        Precondition::None => Mode::Send(json!({".tag": "overwrite"})),
        Precondition::IfAbsent => Mode::Send(json!({".tag": "add"})),
        Precondition::IfMatch(v) if is_rev(v.as_str()) => {
            Mode::Send(json!({".tag": "update", "update": v.as_str()}))
        }
        Precondition::IfMatch(_) => Mode::Refused(Error::PreconditionFailed {
            path: what.to_string(),
        }),
        Precondition::UnderLock(_) => Mode::Refused(Error::Unsupported {
            message: format!("{what}: Dropbox has no server-enforced folder lock"),
        }),
    }
}

/// The meaning of an error answer to a write with `pre`: a conflict is
/// `PreconditionFailed` for `IfMatch` and `AlreadyExists` for `IfAbsent`.
pub(crate) fn write_error(e: ApiError, pre: &Precondition, what: &str) -> Error {
    if e.status == 409 && e.has("conflict") {
        return match pre {
            Precondition::IfMatch(_) => Error::PreconditionFailed {
                path: what.to_string(),
            },
            _ => Error::AlreadyExists {
                path: what.to_string(),
            },
        };
    }
    e.into_error(what)
}

/// 429, 5xx and `too_many_write_operations` are worth sending again: as errors, so
/// that a [`Retrier`] retries them; every other answer is kept for the caller.
pub(crate) fn retry_worthy(e: ApiError, what: &str) -> Result<ApiError> {
    if syncfabric_http::worth_retrying(e.status) || e.has("too_many_write_operations") {
        Err(e.into_error(what))
    } else {
        Ok(e)
    }
}

impl DropboxStorage {
    /// A storage for `config`, acting as the account behind `bearer`. Nothing is sent
    /// yet. [`Error::InvalidInput`] for a bad configuration.
    pub fn new(config: DropboxConfig, bearer: Arc<dyn BearerAuth>) -> Result<Self> {
        config.validate()?;
        let http = ClientOptions::with_connect_timeout(config.connect_timeout).build()?;
        // Dropbox limits per account and app: storages of one endpoint share a pacer.
        let pacer = Pacer::for_account(&format!("dropbox:{}", config.api_url));
        let retrier = Retrier::new(config.retry.clone(), pacer);
        let client = Client {
            http: BearerClient::new(http, bearer, SERVER),
            api: config.api_url.trim_end_matches('/').to_string(),
            content: config.content_url.trim_end_matches('/').to_string(),
        };
        Ok(DropboxStorage {
            inner: Arc::new(Inner {
                cfg: config,
                client,
                retrier,
            }),
        })
    }

    /// This storage wrapped in core's [`RetryingStorage`] with the configured policy
    /// and the endpoint's shared pacer: what the registry factory hands out.
    pub fn retrying(self) -> RetryingStorage<DropboxStorage> {
        let r = self.inner.retrier.clone();
        RetryingStorage::new(self, r)
    }

    /// The configuration.
    pub fn config(&self) -> &DropboxConfig {
        &self.inner.cfg
    }

    /// The Dropbox path of `path` under the root (`""` for the top of the account).
    pub(crate) fn dbx_path(&self, path: &RemotePath) -> String {
        let mut s = self.inner.cfg.root_path();
        for seg in path.segments() {
            s.push('/');
            s.push_str(seg);
        }
        s
    }

    pub(crate) fn entry(&self, path: RemotePath, m: &Metadata) -> Result<Entry> {
        if m.is_folder() {
            return Ok(Entry {
                path,
                kind: EntryKind::Dir,
                size: 0,
                modified: m.modified(),
                version: None,
            });
        }
        let rev = m.rev.clone().ok_or_else(|| Error::Corrupt {
            message: format!("{path}: Dropbox returned a file without a rev"),
        })?;
        Ok(Entry {
            path,
            kind: EntryKind::File,
            size: m.size.unwrap_or(0),
            modified: m.modified(),
            version: Some(Version::new(rev)),
        })
    }

    /// Checks a write's answer: the name we asked for (never an autorenamed copy),
    /// the size and `content_hash` of what we sent.
    pub(crate) fn written(
        &self,
        path: &RemotePath,
        m: &Metadata,
        size: u64,
        hash: &str,
    ) -> Result<Entry> {
        let what = path.to_string();
        let asked = path.file_name().unwrap_or("");
        if m.name.to_lowercase() != asked.to_lowercase() {
            return Err(Error::Corrupt {
                message: format!("{what}: Dropbox stored the upload under another name"),
            });
        }
        if m.size != Some(size) || m.content_hash.as_deref() != Some(hash) {
            return Err(Error::Corrupt {
                message: format!(
                    "{what}: Dropbox's answer does not match the bytes sent (size or content_hash)"
                ),
            });
        }
        self.entry(path.clone(), m)
    }

    /// `files/upload` of a body up to the threshold, in one request.
    async fn simple_upload(
        &self,
        path: &RemotePath,
        body: &Body,
        mode: Value,
        pre: &Precondition,
    ) -> Result<Entry> {
        let what = path.to_string();
        let data = read_range(body, 0, body.len(), &what).await?;
        let hash = content_hash(&data);
        let arg = json!({
            "path": self.dbx_path(path),
            "mode": mode,
            "autorename": false,
            "strict_conflict": true,
            "mute": true,
            "content_hash": hash,
        });
        let size = data.len() as u64;
        match self
            .inner
            .client
            .upload("files/upload", &arg, data, &what)
            .await?
        {
            Ok(v) => self.written(path, &from_value(v, &what)?, size, &hash),
            Err(e) => Err(write_error(e, pre, &what)),
        }
    }
}

#[async_trait::async_trait]
impl Storage for DropboxStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            if_match: true,
            if_absent: true,
            conditional_delete: true,
            max_single_write: None,
            chunked_upload: true,
            change_feed: ChangeFeed::Native,
            read_after_write: true,
            server_clock: true,
            server_lock: false,
            strong_versions: true,
            spaced_writes: false,
        }
    }

    fn describe(&self) -> String {
        let mut s = format!("dropbox:{}", self.inner.cfg.root_path());
        if self.inner.cfg.api_url != API_URL {
            s.push_str(&format!(" (api {})", self.inner.cfg.api_url));
        }
        s
    }

    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        let p = self.dbx_path(path);
        if p.is_empty() {
            // files/get_metadata: "Metadata for the root folder is unsupported."
            return Ok(Some(Entry {
                path: path.clone(),
                kind: EntryKind::Dir,
                size: 0,
                modified: None,
                version: None,
            }));
        }
        let what = path.to_string();
        let arg = json!({ "path": p });
        match self
            .inner
            .client
            .rpc("files/get_metadata", &arg, &what)
            .await?
        {
            Ok(v) => {
                let m: Metadata = from_value(v, &what)?;
                if m.tag == "deleted" {
                    return Ok(None);
                }
                Ok(Some(self.entry(path.clone(), &m)?))
            }
            Err(e) if e.status == 409 && e.has("not_found") => Ok(None),
            Err(e) => Err(e.into_error(&what)),
        }
    }

    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let what = dir.to_string();
        let first = json!({ "path": self.dbx_path(dir), "recursive": false });
        let mut page = match self
            .inner
            .client
            .rpc("files/list_folder", &first, &what)
            .await?
        {
            Ok(v) => v,
            Err(e) if e.status == 409 && e.has("not_folder") => {
                return Err(Error::InvalidInput {
                    message: format!("{dir} is a file, not a folder"),
                })
            }
            Err(e) => return Err(e.into_error(&what)),
        };
        let mut out = Vec::new();
        loop {
            let entries: Vec<Metadata> =
                from_value(page.get("entries").cloned().unwrap_or_default(), &what)?;
            for m in entries.iter().filter(|m| m.tag != "deleted") {
                let path = dir.join(&m.name).map_err(|_| Error::Corrupt {
                    message: format!("{dir}: a child name that is not a valid path segment"),
                })?;
                if path.parent().as_ref() != Some(dir) {
                    return Err(Error::Corrupt {
                        message: format!("{dir}: a child name that is not a single segment"),
                    });
                }
                out.push(self.entry(path, m)?);
            }
            if page.get("has_more").and_then(Value::as_bool) != Some(true) {
                return Ok(out);
            }
            let cursor =
                page.get("cursor")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::Corrupt {
                        message: format!("{what}: has_more without a cursor"),
                    })?;
            let arg = json!({ "cursor": cursor });
            page = match self
                .inner
                .client
                .rpc("files/list_folder/continue", &arg, &what)
                .await?
            {
                Ok(v) => v,
                // An expired cursor ("reset"): the caller lists again.
                Err(e) => return Err(e.into_error(&what)),
            };
        }
    }

    async fn read(&self, path: &RemotePath) -> Result<Download> {
        let what = path.to_string();
        let (resp, meta) = match self
            .inner
            .client
            .download(&self.dbx_path(path), &what)
            .await?
        {
            Ok(x) => x,
            Err(e) if e.status == 409 && (e.has("not_found") || e.has("not_file")) => {
                return Err(Error::NotFound { path: what })
            }
            Err(e) => return Err(e.into_error(&what)),
        };
        let expected_hash = meta.content_hash.clone().ok_or_else(|| Error::Corrupt {
            message: format!("{what}: a download without a content_hash"),
        })?;
        let version = meta.rev.clone().map(Version::new);
        let size = meta.size.or(resp.content_length());
        Ok(Download {
            version,
            size,
            stream: checked_stream(resp, expected_hash, size, what),
        })
    }

    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot write the storage root as a file".into(),
            });
        }
        let what = path.to_string();
        let mode = match write_mode(&pre, &what) {
            Mode::Send(m) => m,
            Mode::Refused(e) => return Err(e),
        };
        if body.len() <= self.inner.cfg.upload_threshold {
            self.simple_upload(path, &body, mode, &pre).await
        } else {
            self.session_upload(path, &body, mode, &pre).await
        }
    }

    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot delete the storage root".into(),
            });
        }
        let what = path.to_string();
        let mut arg = json!({ "path": self.dbx_path(path) });
        match &pre {
            Precondition::None => {}
            Precondition::IfMatch(v) if is_rev(v.as_str()) => {
                // files/delete_v2: "parent_rev: Perform delete if given rev matches the
                // existing file's latest rev."
                arg["parent_rev"] = json!(v.as_str());
            }
            Precondition::IfMatch(_) => return Err(Error::PreconditionFailed { path: what }),
            Precondition::IfAbsent => {
                return Err(Error::Unsupported {
                    message: format!("{what}: a delete with IfAbsent means nothing"),
                })
            }
            Precondition::UnderLock(_) => {
                return Err(Error::Unsupported {
                    message: format!("{what}: Dropbox has no server-enforced folder lock"),
                })
            }
        }
        match self
            .inner
            .client
            .rpc("files/delete_v2", &arg, &what)
            .await?
        {
            Ok(_) => Ok(()),
            Err(e) if e.status == 409 && e.has("not_found") => match pre {
                Precondition::None => Ok(()),
                _ => Err(Error::PreconditionFailed { path: what }),
            },
            Err(e) if e.status == 409 && e.has("conflict") && pre != Precondition::None => {
                Err(Error::PreconditionFailed { path: what })
            }
            Err(e) => Err(e.into_error(&what)),
        }
    }

    async fn watch(&self, dir: &RemotePath) -> Result<syncfabric_core::watch::ChangeStream> {
        self.watch_longpoll(dir).await
    }

    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        let p = self.dbx_path(path);
        if p.is_empty() {
            return Ok(());
        }
        let what = path.to_string();
        let arg = json!({ "path": p, "autorename": false });
        match self
            .inner
            .client
            .rpc("files/create_folder_v2", &arg, &what)
            .await?
        {
            Ok(_) => Ok(()),
            // path/conflict/folder: it is there already.
            Err(e) if e.status == 409 && e.has("conflict") && e.has("folder") => Ok(()),
            Err(e) => Err(e.into_error(&what)),
        }
    }
}

/// The download's bytes, checked as they stream: a body that breaks off or ends
/// short fails (`Transient`, [`sized_stream`]), and at its end the `content_hash` of
/// what came must be the one Dropbox announced (else `Corrupt`), so a caller never
/// takes a damaged file for a whole one.
fn checked_stream(
    resp: reqwest::Response,
    expected: String,
    size: Option<u64>,
    what: String,
) -> syncfabric_core::ByteStream {
    let inner = sized_stream(resp, size, what.clone());
    let hasher = Some(ContentHasher::new());
    Box::pin(futures_util::stream::unfold(
        (inner, hasher),
        move |(mut inner, mut hasher)| {
            let (expected, what) = (expected.clone(), what.clone());
            async move {
                let h = hasher.as_mut()?;
                match inner.next().await {
                    Some(Ok(chunk)) => {
                        h.update(&chunk);
                        Some((Ok(chunk), (inner, hasher)))
                    }
                    Some(Err(e)) => Some((Err(e), (inner, None))),
                    None if hasher.take()?.finish() != expected => {
                        let message = format!(
                            "{what}: the downloaded bytes do not match Dropbox's content_hash"
                        );
                        Some((Err(Error::Corrupt { message }), (inner, None)))
                    }
                    None => None,
                }
            }
        },
    ))
}
