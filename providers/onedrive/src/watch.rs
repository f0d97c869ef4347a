//! `watch` through Graph's `delta`: the drive's change feed.
//!
//! Setup: a `token=latest` delta link (the feed starts "now"), then the folder's
//! children, remembered by item id. Every [`OneDriveConfig::delta_interval`]
//! (crate::OneDriveConfig::delta_interval) the link is followed (pages and all);
//! each item whose parent is the watched folder is a [`Change::Changed`], each known id
//! that is now deleted or elsewhere a [`Change::Removed`] (deleted items are tracked by
//! id: their parentReference need not name the folder any more). An expired link
//! (`410 resyncRequired`) yields [`Change::Rescan`] and the feed starts over. `delta` is
//! called on the drive root (OneDrive for Business and SharePoint support it only
//! there), or on the app folder.

use crate::backend::OneDriveStorage;
use crate::client::{read_json, DriveBase, DriveItem, Page};
use crate::error::graph_error;
use std::collections::HashMap;
use syncfabric_core::watch::{Change, ChangeStream};
use syncfabric_core::{Error, RemotePath, Result};

enum Round {
    Items(Vec<DriveItem>, String),
    Expired,
}

impl OneDriveStorage {
    fn delta_url(&self, base: &DriveBase) -> String {
        format!("{}{}/delta", self.inner.graph, base.items)
    }

    async fn delta_latest(&self, base: &DriveBase, what: &str) -> Result<String> {
        let url = format!("{}?token=latest", self.delta_url(base));
        let page: Page = self.get_json(&url, what).await?;
        page.delta.ok_or_else(|| Error::Corrupt {
            message: format!("{what}: delta?token=latest returned no deltaLink"),
        })
    }

    async fn delta_round(&self, link: &str, what: &str) -> Result<Round> {
        let mut url = self.same_origin(link.to_string(), what)?;
        let mut items = Vec::new();
        for _ in 0..100_000 {
            let resp = self.send(what, |c| c.get(&url)).await?;
            match resp.status().as_u16() {
                200 => {}
                410 => return Ok(Round::Expired),
                _ => return Err(graph_error(resp, what).await),
            }
            let page: Page = read_json(resp, what).await?;
            items.extend(page.value);
            match (page.next, page.delta) {
                (Some(n), _) => url = self.same_origin(n, what)?,
                (None, Some(d)) => return Ok(Round::Items(items, self.same_origin(d, what)?)),
                (None, None) => {
                    return Err(Error::Corrupt {
                        message: format!(
                            "{what}: a delta page with neither nextLink nor deltaLink"
                        ),
                    })
                }
            }
        }
        Err(Error::Corrupt {
            message: format!("{what}: the delta feed never ends"),
        })
    }

    async fn snapshot(
        &self,
        base: &DriveBase,
        dir: &RemotePath,
    ) -> Result<HashMap<String, RemotePath>> {
        let kids = match self.children(base, dir).await {
            Ok(k) => k,
            Err(Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut map = HashMap::new();
        for k in kids {
            if let Some(p) = k
                .name
                .as_deref()
                .and_then(|n| dir.join(&crate::names::decode(n)).ok())
            {
                map.insert(k.id, p);
            }
        }
        Ok(map)
    }

    pub(crate) async fn watch_delta(&self, dir: &RemotePath) -> Result<ChangeStream> {
        let base = self.base().await?;
        let what = format!("{dir} (delta)");
        let dir_item = self
            .item_at(&base, dir)
            .await?
            .ok_or_else(|| Error::NotFound {
                path: dir.to_string(),
            })?;
        if !dir_item.is_folder() {
            return Err(Error::InvalidInput {
                message: format!("{dir}: watch needs a folder"),
            });
        }
        let dir_id = dir_item.id;
        let mut link = self.delta_latest(&base, &what).await?;
        let mut known = self.snapshot(&base, dir).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Change>>(256);
        let me = self.clone();
        let dir = dir.clone();
        let interval = self.cfg().delta_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if tx.is_closed() {
                    return;
                }
                let mut out = Vec::new();
                match me.delta_round(&link, &what).await {
                    Ok(Round::Items(items, next)) => {
                        link = next;
                        for it in items {
                            let here = it.deleted.is_none()
                                && it.parent.as_ref().and_then(|p| p.id.as_deref())
                                    == Some(dir_id.as_str());
                            if here {
                                let Some(path) = it
                                    .name
                                    .as_deref()
                                    .and_then(|n| dir.join(&crate::names::decode(n)).ok())
                                else {
                                    continue;
                                };
                                if let Some(old) = known.insert(it.id.clone(), path.clone()) {
                                    if old != path {
                                        out.push(Ok(Change::Removed { path: old }));
                                    }
                                }
                                let entry = me.entry(path.clone(), &it).ok();
                                out.push(Ok(Change::Changed { path, entry }));
                            } else if let Some(old) = known.remove(&it.id) {
                                out.push(Ok(Change::Removed { path: old }));
                            }
                        }
                    }
                    Ok(Round::Expired) => {
                        out.push(Ok(Change::Rescan));
                        match me.delta_latest(&base, &what).await {
                            Ok(l) => link = l,
                            Err(e) => out.push(Err(e)),
                        }
                        match me.snapshot(&base, &dir).await {
                            Ok(k) => known = k,
                            Err(e) => out.push(Err(e)),
                        }
                    }
                    Err(e) => out.push(Err(e)),
                }
                for c in out {
                    if tx.send(c).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(ChangeStream::from_receiver(rx))
    }
}
