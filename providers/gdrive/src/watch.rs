//! `watch` through Drive's change feed: `changes.getStartPageToken` (the feed starts
//! "now"), then, every `poll_interval`, `changes.list` from the saved token
//! (<https://developers.google.com/drive/api/v2/reference/changes/list>: `items`
//! with `fileId`, `deleted` and `file`; `nextPageToken` while there are more pages,
//! `newStartPageToken` at the end). Changes of files whose parent is the watched
//! folder become [`Change::Changed`]; a file deleted, trashed or moved away that we
//! saw there becomes [`Change::Removed`]. A token Drive refuses (400/404/410) is a
//! [`Change::Rescan`] and the feed starts again from a new start token.

use crate::backend::GdriveStorage;
use crate::client::Meta;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use syncfabric_core::watch::{Change, ChangeStream};
use syncfabric_core::{Error, RemotePath, Result};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeItem {
    #[serde(default)]
    file_id: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    file: Option<Meta>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangePage {
    #[serde(default)]
    items: Vec<ChangeItem>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    new_start_page_token: Option<String>,
}

/// The feed's state: the folder, its id, the token, and the titles of the files
/// seen in the folder by id (to name a removal, which carries no file).
struct Feed {
    dir: RemotePath,
    dir_id: String,
    token: String,
    known: HashMap<String, String>,
}

impl GdriveStorage {
    async fn start_token(&self, what: &str) -> Result<String> {
        let v: serde_json::Value = self
            .inner
            .client
            .get_json("changes/startPageToken", &[], what)
            .await?
            .map_err(|e| e.into_error(what))?;
        v.get("startPageToken")
            .and_then(|t| t.as_str())
            .map(String::from)
            .ok_or_else(|| Error::Corrupt {
                message: format!("{what}: no startPageToken"),
            })
    }

    /// Every page of changes since the feed's token; `Ok(None)` when Drive refused
    /// the token.
    async fn changes_since(&self, feed: &mut Feed, what: &str) -> Result<Option<Vec<Change>>> {
        let mut out = Vec::new();
        let mut token = feed.token.clone();
        loop {
            let page: ChangePage = match self
                .inner
                .client
                .get_json(
                    "changes",
                    &[("pageToken", token.as_str()), ("maxResults", "1000")],
                    what,
                )
                .await?
            {
                Ok(p) => p,
                Err(e) if matches!(e.status, 400 | 404 | 410) => return Ok(None),
                Err(e) => return Err(e.into_error(what)),
            };
            for item in page.items {
                if let Some(c) = Self::change_of(feed, item) {
                    out.push(c);
                }
            }
            match (page.next_page_token, page.new_start_page_token) {
                (Some(n), _) => token = n,
                (None, Some(n)) => {
                    feed.token = n;
                    return Ok(Some(out));
                }
                (None, None) => {
                    return Err(Error::Corrupt {
                        message: format!("{what}: a change page without a next token"),
                    })
                }
            }
        }
    }

    fn change_of(feed: &mut Feed, item: ChangeItem) -> Option<Change> {
        let live = item
            .file
            .filter(|f| !item.deleted && !f.labels.trashed && f.has_parent(&feed.dir_id));
        match live {
            Some(f) => {
                let path = feed.dir.join(&f.title).ok()?;
                if path.parent().as_ref() != Some(&feed.dir) {
                    return None;
                }
                feed.known.insert(item.file_id, f.title);
                // No entry: the changed file may be a stray duplicate of its title or
                // a shortcut, so the consumer stats the path (which resolves both).
                Some(Change::Changed { path, entry: None })
            }
            None => {
                let title = feed.known.remove(&item.file_id)?;
                let path = feed.dir.join(&title).ok()?;
                Some(Change::Removed { path })
            }
        }
    }

    pub(crate) async fn watch_changes(&self, dir: &RemotePath) -> Result<ChangeStream> {
        let what = dir.to_string();
        let dir_id = self
            .dir_id(dir, false)
            .await?
            .ok_or_else(|| Error::NotFound { path: what.clone() })?;
        let token = self.start_token(&what).await?;
        let mut known = HashMap::new();
        let q = format!(
            "{} in parents and trashed = false",
            crate::client::q_string(&dir_id)
        );
        for m in self.query(&q, &what).await? {
            known.insert(m.id, m.title);
        }
        let mut feed = Feed {
            dir: dir.clone(),
            dir_id,
            token,
            known,
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Change>>(256);
        let me = self.clone();
        let every = self.inner.cfg.poll_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if tx.is_closed() {
                    return;
                }
                let out = match me.changes_since(&mut feed, &what).await {
                    Ok(Some(c)) => c.into_iter().map(Ok).collect(),
                    Ok(None) => match me.start_token(&what).await {
                        Ok(t) => {
                            feed.token = t;
                            vec![Ok(Change::Rescan)]
                        }
                        Err(e) => vec![Ok(Change::Rescan), Err(e)],
                    },
                    Err(e) => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        vec![Err(e)]
                    }
                };
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
