//! Folders as a whole: the remote's own folder (the URL's path), saying exactly which
//! part of it is missing and creating it when a remote is being set up
//! ([`WebDavConfig::create_root`](crate::WebDavConfig::create_root)); and removing an
//! empty folder ([`Storage::remove_empty_dir`](syncfabric_core::Storage::remove_empty_dir)).

use crate::WebDavStorage;
use reqwest::{Method, StatusCode, Url};
use syncfabric_core::{Error, RemotePath, Result};
use syncfabric_http::read_capped;

impl WebDavStorage {
    /// The root folder's URL and its ancestors', deepest first, each ending in `/`.
    fn root_chain(&self) -> Vec<Url> {
        let root = &self.inner.root;
        let segs: Vec<&str> = root
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        (0..=segs.len())
            .rev()
            .map(|n| {
                let mut u = root.clone();
                let path: String = segs[..n].iter().map(|s| format!("{s}/")).collect();
                u.set_path(&format!("/{path}"));
                u
            })
            .collect()
    }

    /// Whether a collection answers at `url` (PROPFIND, Depth 0).
    async fn collection_at(&self, url: &Url) -> Result<bool> {
        let what = url.path().to_string();
        let resp = self
            .send(
                || {
                    self.request(
                        Method::from_bytes(b"PROPFIND").unwrap_or(Method::GET),
                        url.clone(),
                    )
                    .header("Depth", "0")
                },
                &what,
            )
            .await?;
        let status = resp.status();
        let _ = read_capped(resp, 64 * 1024, &what).await;
        match status {
            StatusCode::MULTI_STATUS => Ok(true),
            StatusCode::UNAUTHORIZED => Err(Error::Unauthorized {
                message: format!("{what}: the server refused the credentials (HTTP 401)"),
            }),
            _ => Ok(false),
        }
    }

    /// How many folders of [`root_chain`](Self::root_chain), counted from the
    /// deepest, are missing (0: the root exists).
    async fn missing_depth(&self, chain: &[Url]) -> Result<usize> {
        for (i, url) in chain.iter().enumerate() {
            if self.collection_at(url).await? {
                return Ok(i);
            }
        }
        Ok(chain.len())
    }

    /// The error for a root folder that is not there: it names the deepest folder of
    /// the path that exists and the first one that does not.
    pub(crate) async fn missing_root(&self) -> Error {
        let chain = self.root_chain();
        let shown = |u: &Url| u.path().to_string();
        match self.missing_depth(&chain).await {
            Ok(n) if n > 0 && n < chain.len() => Error::NotFound {
                path: format!(
                    "{} (the server has {}, but no {})",
                    shown(&chain[0]),
                    shown(&chain[n]),
                    shown(&chain[n - 1])
                ),
            },
            Ok(_) => Error::NotFound {
                path: shown(&chain[0]),
            },
            Err(e) => e,
        }
    }

    /// Creates the root folder and its missing parents, top down (MKCOL each), for a
    /// remote being set up. A folder the server will not create is an error naming it.
    pub(crate) async fn create_root(&self) -> Result<()> {
        let chain = self.root_chain();
        let missing = self.missing_depth(&chain).await?;
        for url in chain[..missing].iter().rev() {
            let what = url.path().to_string();
            let status = self.mkcol_url(url, &what).await?;
            // 405: it exists after all (made at the same moment by someone else).
            if !(status.is_success() || status == StatusCode::METHOD_NOT_ALLOWED) {
                return Err(Error::NotFound {
                    path: format!("{what} (the server refused to create it: HTTP {status})"),
                });
            }
            tracing::info!(folder = %what, "created the remote folder");
        }
        Ok(())
    }

    /// `DELETE` of folder `path` once a `PROPFIND` shows it empty (a collection
    /// `DELETE` is recursive, so the check comes first); a missing folder is fine.
    pub(crate) async fn remove_empty_dir_impl(&self, path: &RemotePath) -> Result<()> {
        let what = path.to_string();
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot remove the root folder".into(),
            });
        }
        match self.propfind(path, true, "1").await? {
            None => return Ok(()),
            Some(list) if list.len() > 1 => {
                return Err(Error::InvalidInput {
                    message: format!("{what}: the folder is not empty"),
                })
            }
            Some(_) => {}
        }
        let url = self.url_for(path, true);
        let resp = self
            .send(|| self.request(Method::DELETE, url.clone()), &what)
            .await?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            let _ = read_capped(resp, 64 * 1024, &what).await;
            return Ok(());
        }
        Err(self.status_error(resp, &what).await)
    }
}
