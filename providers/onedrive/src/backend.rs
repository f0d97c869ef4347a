//! [`OneDriveStorage`]: the [`Storage`] contract on Microsoft Graph's driveItems.

use crate::client::DriveBase;
use crate::client::DriveItem;
use crate::config::{Location, OneDriveConfig, GRAPH_URL};
use crate::error::{graph_error, no_server_lock, SERVER};
use crate::names;
use std::sync::Arc;
use syncfabric_core::auth::BearerAuth;
use syncfabric_core::retry::{Pacer, Retrier, RetryingStorage};
use syncfabric_core::{
    Body, Capabilities, ChangeFeed, Download, Entry, EntryKind, Error, Precondition, RemotePath,
    Result, Storage, Version,
};
use syncfabric_http::{sized_stream, BearerClient, ClientOptions};

/// What the clones of one storage share.
pub(crate) struct Inner {
    pub cfg: OneDriveConfig,
    /// The connection pool and the account.
    pub client: BearerClient,
    pub retrier: Retrier,
    /// The Graph base URL, without a trailing `/`.
    pub graph: String,
    /// Its origin: the only one links from answers may point to.
    pub origin: String,
    /// Where the drive's items are, once resolved.
    pub base: tokio::sync::OnceCell<DriveBase>,
}

/// One folder of a OneDrive / SharePoint drive as a [`Storage`]. Cheap to clone (shares
/// the connection pool and the resolved drive).
#[derive(Clone)]
pub struct OneDriveStorage {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for OneDriveStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneDriveStorage")
            .field("location", &self.describe())
            .finish_non_exhaustive()
    }
}

/// The pacer key of every storage on one Graph endpoint in this process: Graph
/// throttles per user and app, so storages of one account share one pacer.
fn pacer_key(cfg: &OneDriveConfig) -> String {
    format!("msgraph:{}", cfg.graph_url.trim_end_matches('/'))
}

impl OneDriveStorage {
    /// A storage for `config`, acting as the account behind `bearer`. Nothing is sent
    /// yet (a SharePoint library is resolved on first use). [`Error::InvalidInput`]
    /// for a bad configuration.
    pub fn new(config: OneDriveConfig, bearer: Arc<dyn BearerAuth>) -> Result<Self> {
        config.validate()?;
        // Redirects are not followed: a download's 302 leads to a pre-authenticated
        // URL that is fetched without the token.
        let http = ClientOptions::with_connect_timeout(config.connect_timeout).build()?;
        let graph = config.graph_url.trim_end_matches('/').to_string();
        let u = reqwest::Url::parse(&graph).map_err(|_| Error::InvalidInput {
            message: "graph_url is not a URL".into(),
        })?;
        let origin = u.origin().ascii_serialization();
        let retrier = Retrier::new(
            config.retry.clone(),
            Pacer::for_account(&pacer_key(&config)),
        );
        Ok(OneDriveStorage {
            inner: Arc::new(Inner {
                cfg: config,
                client: BearerClient::new(http, bearer, SERVER),
                retrier,
                graph,
                origin,
                base: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// This storage wrapped in core's [`RetryingStorage`] with the configured retry
    /// policy and the account's shared pacer: what the registry factory hands out.
    pub fn retrying(self) -> RetryingStorage<OneDriveStorage> {
        let r = self.inner.retrier.clone();
        RetryingStorage::new(self, r)
    }

    /// The configuration.
    pub fn config(&self) -> &OneDriveConfig {
        &self.inner.cfg
    }

    pub(crate) fn cfg(&self) -> &OneDriveConfig {
        &self.inner.cfg
    }

    pub(crate) fn entry(&self, path: RemotePath, it: &DriveItem) -> Result<Entry> {
        let modified = it
            .modified
            .as_deref()
            .and_then(syncfabric_http::parse_rfc3339);
        if it.is_folder() {
            return Ok(Entry {
                path,
                kind: EntryKind::Dir,
                size: 0,
                modified,
                version: None,
            });
        }
        let etag = it.etag.clone().ok_or_else(|| Error::Corrupt {
            message: format!("{path}: Graph returned a file without an eTag"),
        })?;
        Ok(Entry {
            path,
            kind: EntryKind::File,
            size: it.size.unwrap_or(0),
            modified,
            version: Some(Version::new(etag)),
        })
    }
}

#[async_trait::async_trait]
impl Storage for OneDriveStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            if_match: true,
            if_absent: true,
            conditional_delete: true,
            max_single_write: None,
            chunked_upload: true,
            change_feed: ChangeFeed::Native,
            read_after_write: false,
            server_clock: true,
            server_lock: false,
            strong_versions: true,
            spaced_writes: false,
        }
    }

    fn describe(&self) -> String {
        let root = self.cfg().root.join("/");
        let mut s = match &self.cfg().location {
            Location::Me => format!("onedrive:/{root}"),
            Location::AppRoot => format!("onedrive:approot/{root}"),
            Location::SharePoint {
                host,
                site_path,
                library,
            } => {
                let site = if site_path.is_empty() {
                    String::new()
                } else {
                    format!("/{site_path}")
                };
                format!("sharepoint://{host}{site}/{library}/{root}")
            }
        };
        if self.inner.graph != GRAPH_URL {
            s.push_str(&format!(" (graph {})", self.inner.graph));
        }
        s
    }

    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        let base = self.base().await?;
        match self.item_at(&base, path).await? {
            Some(it) => Ok(Some(self.entry(path.clone(), &it)?)),
            None => Ok(None),
        }
    }

    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let base = self.base().await?;
        let items = self.children(&base, dir).await?;
        let mut out = Vec::with_capacity(items.len());
        for it in &items {
            let Some(name) = it.name.as_deref() else {
                return Err(Error::Corrupt {
                    message: format!("{dir}: a child without a name"),
                });
            };
            let path = dir.join(&names::decode(name)).map_err(|_| Error::Corrupt {
                message: format!("{dir}: a child name that is not a valid path segment"),
            })?;
            if path.parent().as_ref() != Some(dir) {
                return Err(Error::Corrupt {
                    message: format!("{dir}: a child name that is not a single segment"),
                });
            }
            out.push(self.entry(path, it)?);
        }
        Ok(out)
    }

    async fn read(&self, path: &RemotePath) -> Result<Download> {
        let base = self.base().await?;
        let what = path.to_string();
        let url = self.url_for(&base, &self.full_segs(path), Some("content"));
        let resp = self.send(&what, |c| c.get(&url)).await?;
        let resp = match resp.status().as_u16() {
            200 => resp,
            301 | 302 | 303 | 307 | 308 => self.follow_download(resp, &what).await?,
            404 => return Err(Error::NotFound { path: what }),
            _ => return Err(graph_error(resp, &what).await),
        };
        let size = resp.content_length();
        Ok(Download {
            version: None,
            size,
            stream: sized_stream(resp, size, what),
        })
    }

    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot write the storage root as a file".into(),
            });
        }
        let base = self.base().await?;
        if body.len() <= self.cfg().simple_upload_max {
            self.simple_upload(&base, path, &body, &pre).await
        } else {
            self.session_upload(&base, path, &body, &pre).await
        }
    }

    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot delete the storage root".into(),
            });
        }
        let base = self.base().await?;
        let what = path.to_string();
        let url = self.url_for(&base, &self.full_segs(path), None);
        let if_match = match &pre {
            Precondition::UnderLock(_) => return Err(no_server_lock(&what)),
            Precondition::None => None,
            Precondition::IfMatch(v) => Some(v.as_str().to_string()),
            Precondition::IfAbsent => {
                return Err(Error::Unsupported {
                    message: format!("{what}: a delete with IfAbsent means nothing"),
                })
            }
        };
        let resp = self
            .send(&what, |c| {
                let b = c.delete(&url);
                match &if_match {
                    Some(t) => b.header("If-Match", t.as_str()),
                    None => b,
                }
            })
            .await?;
        match (resp.status().as_u16(), &pre) {
            (200 | 204, _) => Ok(()),
            (404, Precondition::None) => Ok(()),
            (404 | 412, Precondition::IfMatch(_)) => Err(Error::PreconditionFailed { path: what }),
            _ => Err(graph_error(resp, &what).await),
        }
    }

    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        let base = self.base().await?;
        self.ensure_dirs(&base, &self.full_segs(path), &path.to_string())
            .await
    }

    async fn watch(&self, dir: &RemotePath) -> Result<syncfabric_core::watch::ChangeStream> {
        self.watch_delta(dir).await
    }
}
