//! The Microsoft Graph side of a storage: the driveItem types read, where the
//! drive is, URLs of items, and the requests every operation is made of (through the
//! shared [`BearerClient`](syncfabric_http::BearerClient)).

use crate::backend::OneDriveStorage;
use crate::error::{graph_error, SERVER};
use crate::{names, Location};
use serde::Deserialize;
use syncfabric_core::{Error, RemotePath, Result, Version};
use syncfabric_http::client::on_origin;
use syncfabric_http::{encode_segment, transport_error};

/// A Microsoft Graph driveItem, the fields this crate reads.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct DriveItem {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "eTag", default)]
    pub etag: Option<String>,
    #[serde(rename = "cTag", default)]
    pub ctag: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(rename = "lastModifiedDateTime", default)]
    pub modified: Option<String>,
    #[serde(default)]
    pub folder: Option<serde_json::Value>,
    #[serde(default)]
    pub deleted: Option<serde_json::Value>,
    #[serde(rename = "parentReference", default)]
    pub parent: Option<ParentRef>,
}

/// `parentReference` of a driveItem.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ParentRef {
    #[serde(default)]
    pub id: Option<String>,
}

impl DriveItem {
    pub(crate) fn is_folder(&self) -> bool {
        self.folder.is_some()
    }
    pub(crate) fn tag_is(&self, v: &Version) -> bool {
        self.etag.as_deref() == Some(v.as_str()) || self.ctag.as_deref() == Some(v.as_str())
    }
}

/// A page of a listing or of the delta feed.
#[derive(Deserialize)]
pub(crate) struct Page {
    #[serde(default)]
    pub value: Vec<DriveItem>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    pub delta: Option<String>,
}

/// Where the drive's items live, once resolved (`/me/drive/root`, `/drives/{id}/root`,
/// `/me/drive/special/approot`) and the drive itself (`/me/drive`, `/drives/{id}`).
#[derive(Clone, Debug)]
pub(crate) struct DriveBase {
    pub items: String,
    pub drive: String,
}

impl OneDriveStorage {
    /// Resolves (once) where the drive's items are.
    pub(crate) async fn base(&self) -> Result<DriveBase> {
        self.inner
            .base
            .get_or_try_init(|| self.resolve_base())
            .await
            .cloned()
    }

    pub(crate) async fn resolve_base(&self) -> Result<DriveBase> {
        match &self.cfg().location {
            Location::Me => Ok(DriveBase {
                items: "/me/drive/root".into(),
                drive: "/me/drive".into(),
            }),
            Location::AppRoot => Ok(DriveBase {
                items: "/me/drive/special/approot".into(),
                drive: "/me/drive".into(),
            }),
            Location::SharePoint {
                host,
                site_path,
                library,
            } => {
                #[derive(Deserialize)]
                struct Site {
                    id: String,
                }
                #[derive(Deserialize)]
                struct Lib {
                    id: String,
                    #[serde(default)]
                    name: String,
                }
                #[derive(Deserialize)]
                struct Libs {
                    value: Vec<Lib>,
                }
                let site_url = if site_path.is_empty() {
                    format!("{}/sites/{}", self.inner.graph, encode_segment(host))
                } else {
                    let p: Vec<String> = site_path.split('/').map(encode_segment).collect();
                    format!(
                        "{}/sites/{}:/{}",
                        self.inner.graph,
                        encode_segment(host),
                        p.join("/")
                    )
                };
                let what = format!("SharePoint site {host}/{site_path}");
                let site: Site = self.get_json(&site_url, &what).await?;
                let libs: Libs = self
                    .get_json(
                        &format!(
                            "{}/sites/{}/drives",
                            self.inner.graph,
                            encode_segment(&site.id)
                        ),
                        &what,
                    )
                    .await?;
                let lib = libs
                    .value
                    .iter()
                    .find(|l| l.name.eq_ignore_ascii_case(library))
                    .ok_or_else(|| Error::InvalidInput {
                        message: format!(
                            "{what} has no document library named {library:?} (it has: {})",
                            libs.value
                                .iter()
                                .map(|l| l.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })?;
                Ok(DriveBase {
                    items: format!("/drives/{}/root", encode_segment(&lib.id)),
                    drive: format!("/drives/{}", encode_segment(&lib.id)),
                })
            }
        }
    }

    /// The encoded names from the drive base to `path` (root folder included).
    pub(crate) fn full_segs(&self, path: &RemotePath) -> Vec<String> {
        self.cfg()
            .root
            .iter()
            .map(String::as_str)
            .chain(path.segments())
            .map(names::encode)
            .collect()
    }

    /// The URL of the item at `segs` (encoded names) below the base, with an action.
    pub(crate) fn url_for(
        &self,
        base: &DriveBase,
        segs: &[String],
        action: Option<&str>,
    ) -> String {
        let g = &self.inner.graph;
        if segs.is_empty() {
            match action {
                Some(a) => format!("{g}{}/{a}", base.items),
                None => format!("{g}{}", base.items),
            }
        } else {
            let p: Vec<String> = segs.iter().map(|s| encode_segment(s)).collect();
            let p = p.join("/");
            match action {
                Some(a) => format!("{g}{}:/{p}:/{a}", base.items),
                None => format!("{g}{}:/{p}", base.items),
            }
        }
    }

    pub(crate) fn id_url(&self, base: &DriveBase, id: &str, action: Option<&str>) -> String {
        let g = &self.inner.graph;
        match action {
            Some(a) => format!("{g}{}/items/{}/{a}", base.drive, encode_segment(id)),
            None => format!("{g}{}/items/{}", base.drive, encode_segment(id)),
        }
    }

    /// Sends a Graph API request with the bearer token (refreshed once on 401, see
    /// [`BearerClient::send`](syncfabric_http::BearerClient::send)). Every other
    /// status is returned for the caller.
    pub(crate) async fn send<F>(&self, what: &str, build: F) -> Result<reqwest::Response>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let refused = |r| graph_error(r, what);
        self.inner.client.send(what, build, refused).await
    }

    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T> {
        let resp = self.send(what, |c| c.get(url)).await?;
        if !resp.status().is_success() {
            return Err(graph_error(resp, what).await);
        }
        read_json(resp, what).await
    }

    /// The item at `path`, or `None` when nothing is there.
    pub(crate) async fn item_at(
        &self,
        base: &DriveBase,
        path: &RemotePath,
    ) -> Result<Option<DriveItem>> {
        let url = self.url_for(base, &self.full_segs(path), None);
        let what = path.to_string();
        let resp = self.send(&what, |c| c.get(&url)).await?;
        match resp.status().as_u16() {
            200 => Ok(Some(read_json(resp, &what).await?)),
            404 => Ok(None),
            _ => Err(graph_error(resp, &what).await),
        }
    }

    /// The item with id `id`, or `None` when it is gone.
    pub(crate) async fn item_by_id(
        &self,
        base: &DriveBase,
        id: &str,
        what: &str,
    ) -> Result<Option<DriveItem>> {
        let url = self.id_url(base, id, None);
        let resp = self.send(what, |c| c.get(&url)).await?;
        match resp.status().as_u16() {
            200 => Ok(Some(read_json(resp, what).await?)),
            404 => Ok(None),
            _ => Err(graph_error(resp, what).await),
        }
    }

    /// Every child item of the folder at `dir` (following `@odata.nextLink`);
    /// `NotFound` when the folder does not exist.
    pub(crate) async fn children(
        &self,
        base: &DriveBase,
        dir: &RemotePath,
    ) -> Result<Vec<DriveItem>> {
        let what = dir.to_string();
        let mut url = self.url_for(base, &self.full_segs(dir), Some("children"));
        let mut out = Vec::new();
        for _ in 0..100_000 {
            let resp = self.send(&what, |c| c.get(&url)).await?;
            match resp.status().as_u16() {
                200 => {}
                404 => return Err(Error::NotFound { path: what }),
                _ => return Err(graph_error(resp, &what).await),
            }
            let page: Page = read_json(resp, &what).await?;
            out.extend(page.value);
            match page.next {
                Some(n) => url = self.same_origin(n, &what)?,
                None => return Ok(out),
            }
        }
        Err(Error::Corrupt {
            message: format!("{what}: the listing never ends"),
        })
    }

    /// A link from a Graph answer, accepted only on the Graph origin (the token goes
    /// with it).
    pub(crate) fn same_origin(&self, link: String, what: &str) -> Result<String> {
        if on_origin(&link, &self.inner.origin) {
            Ok(link)
        } else {
            Err(Error::Corrupt {
                message: format!("{what}: Graph sent a link to another origin"),
            })
        }
    }

    /// Creates the folder at `segs` (encoded names) and any missing parents.
    pub(crate) async fn ensure_dirs(
        &self,
        base: &DriveBase,
        segs: &[String],
        what: &str,
    ) -> Result<()> {
        if segs.is_empty() {
            return Ok(());
        }
        if self.mkdir_one(base, segs, what).await? {
            return Ok(());
        }
        for i in 1..=segs.len() {
            if !self.mkdir_one(base, &segs[..i], what).await? {
                return Err(Error::transient(format!(
                    "{what}: a parent folder vanished while creating folders"
                )));
            }
        }
        Ok(())
    }

    /// `POST …/children {name, folder}`; true when the folder exists afterwards, false
    /// when its parent is missing.
    pub(crate) async fn mkdir_one(
        &self,
        base: &DriveBase,
        segs: &[String],
        what: &str,
    ) -> Result<bool> {
        let Some((name, parent)) = segs.split_last() else {
            return Ok(true);
        };
        let url = self.url_for(base, parent, Some("children"));
        let body = serde_json::json!({
            "name": name,
            "folder": {},
            "@microsoft.graph.conflictBehavior": "fail",
        })
        .to_string();
        let resp = self
            .send(what, |c| {
                c.post(&url)
                    .header("Content-Type", "application/json")
                    .body(body.clone())
            })
            .await?;
        match resp.status().as_u16() {
            200 | 201 => Ok(true),
            404 => Ok(false),
            409 => {
                // Already there: fine if it is a folder.
                let url = self.url_for(base, segs, None);
                let resp = self.send(what, |c| c.get(&url)).await?;
                if !resp.status().is_success() {
                    return Err(graph_error(resp, what).await);
                }
                let it: DriveItem = read_json(resp, what).await?;
                if it.is_folder() {
                    Ok(true)
                } else {
                    Err(Error::AlreadyExists {
                        path: format!("{what} (a file is where a folder must be)"),
                    })
                }
            }
            _ => Err(graph_error(resp, what).await),
        }
    }

    /// Follows a download's redirect (`301`/`302`/`303`/`307`/`308`) to the
    /// pre-authenticated URL, fetched **without** the token; the file's answer.
    pub(crate) async fn follow_download(
        &self,
        resp: reqwest::Response,
        what: &str,
    ) -> Result<reqwest::Response> {
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| Error::Corrupt {
                message: format!("{what}: a redirect without a Location"),
            })?;
        let u = reqwest::Url::parse(&loc)
            .or_else(|_| reqwest::Url::parse(&self.inner.graph).and_then(|g| g.join(&loc)))
            .map_err(|_| Error::Corrupt {
                message: format!("{what}: a download URL that is not a URL"),
            })?;
        if !matches!(u.scheme(), "https" | "http") {
            return Err(Error::Corrupt {
                message: format!("{what}: a download URL that is not http(s)"),
            });
        }
        let dl = self
            .inner
            .client
            .http()
            .get(u)
            .send()
            .await
            .map_err(|e| transport_error(e, what))?;
        match dl.status().as_u16() {
            200 => Ok(dl),
            // The URL went stale (the file changed since): ask again.
            404 | 410 => Err(Error::transient(format!(
                "{what}: the download URL expired"
            ))),
            _ => Err(graph_error(dl, what).await),
        }
    }
}

/// Reads a JSON answer (at most [`syncfabric_http::body::MAX_JSON`] bytes).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T> {
    syncfabric_http::read_json(resp, what, SERVER).await
}
