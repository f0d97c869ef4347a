//! `watch` through Dropbox's change feed: `files/list_folder/get_latest_cursor` (the
//! feed starts "now"), then, in a loop, `files/list_folder/longpoll` on the notify
//! host, which blocks until the cursor's folder changes or its timeout passes and
//! "does not require an Authorization header" (so none is sent: the token stays off
//! that host), and, when it says `changes`, `files/list_folder/continue` for the
//! entries. A `backoff` in a longpoll answer is waited out before the next longpoll
//! ("If present, backoff for at least this many seconds before calling
//! list_folder/longpoll again"). An expired cursor (`reset`) is a
//! [`Change::Rescan`], and the feed starts again from a new latest cursor.

use crate::backend::DropboxStorage;
use crate::client::{from_value, read_json, Metadata};
use serde_json::{json, Value};
use std::time::Duration;
use syncfabric_core::watch::{Change, ChangeStream};
use syncfabric_core::{Error, RemotePath, Result};
use syncfabric_http::transport_error;

/// The longpoll timeout asked for (the reference's default and minimum: 30 s).
const LONGPOLL_SECS: u64 = 30;
/// Dropbox adds "up to 90 seconds of random jitter"; the request may take that long.
const JITTER_SECS: u64 = 90;

/// One longpoll's answer.
struct Poll {
    changes: bool,
    backoff: Option<Duration>,
}

impl DropboxStorage {
    async fn latest_cursor(&self, dir: &RemotePath, what: &str) -> Result<String> {
        let arg = json!({ "path": self.dbx_path(dir), "recursive": false });
        let v = self
            .inner
            .client
            .rpc("files/list_folder/get_latest_cursor", &arg, what)
            .await?
            .map_err(|e| e.into_error(what))?;
        cursor_of(&v, what)
    }

    /// `files/list_folder/longpoll`, without a token.
    async fn longpoll(&self, cursor: &str, what: &str) -> Result<std::result::Result<Poll, ()>> {
        let url = format!(
            "{}/files/list_folder/longpoll",
            self.inner.cfg.notify_url.trim_end_matches('/')
        );
        let body = json!({ "cursor": cursor, "timeout": LONGPOLL_SECS }).to_string();
        let resp = self
            .inner
            .client
            .http
            .http()
            .post(url)
            .header("Content-Type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(LONGPOLL_SECS + JITTER_SECS + 30))
            .send()
            .await
            .map_err(|e| transport_error(e, what))?;
        if !resp.status().is_success() {
            let e = crate::error::api_error(resp, what).await;
            if e.has("reset") {
                return Ok(Err(()));
            }
            return Err(e.into_error(what));
        }
        let v: Value = read_json(resp, what).await?;
        Ok(Ok(Poll {
            changes: v.get("changes").and_then(Value::as_bool).unwrap_or(false),
            backoff: v
                .get("backoff")
                .and_then(Value::as_u64)
                .map(Duration::from_secs),
        }))
    }

    /// The changes after `cursor` (all pages) and the next cursor; `Ok(None)` when the
    /// cursor expired.
    async fn changes(
        &self,
        dir: &RemotePath,
        mut cursor: String,
        what: &str,
    ) -> Result<Option<(Vec<Change>, String)>> {
        let mut out = Vec::new();
        loop {
            let arg = json!({ "cursor": cursor });
            let v = match self
                .inner
                .client
                .rpc("files/list_folder/continue", &arg, what)
                .await?
            {
                Ok(v) => v,
                Err(e) if e.has("reset") => return Ok(None),
                Err(e) => return Err(e.into_error(what)),
            };
            let entries: Vec<Metadata> =
                from_value(v.get("entries").cloned().unwrap_or_default(), what)?;
            for m in &entries {
                let Ok(path) = dir.join(&m.name) else {
                    continue;
                };
                if path.parent().as_ref() != Some(dir) {
                    continue;
                }
                out.push(if m.tag == "deleted" {
                    Change::Removed { path }
                } else {
                    let entry = self.entry(path.clone(), m).ok();
                    Change::Changed { path, entry }
                });
            }
            cursor = cursor_of(&v, what)?;
            if v.get("has_more").and_then(Value::as_bool) != Some(true) {
                return Ok(Some((out, cursor)));
            }
        }
    }

    /// One round of the feed: wait for changes, read them. Returns what to send and
    /// the next cursor.
    async fn round(
        &self,
        dir: &RemotePath,
        cursor: String,
        what: &str,
    ) -> (Vec<Result<Change>>, String) {
        let poll = match self.longpoll(&cursor, what).await {
            Ok(Ok(p)) => p,
            Ok(Err(())) => return self.restart(dir, cursor, what).await,
            Err(e) => {
                // Not a reason to stop watching: wait a little and poll again.
                tokio::time::sleep(Duration::from_secs(1)).await;
                return (vec![Err(e)], cursor);
            }
        };
        let mut out = Vec::new();
        let mut next = cursor.clone();
        if poll.changes {
            match self.changes(dir, cursor.clone(), what).await {
                Ok(Some((changes, c))) => {
                    out.extend(changes.into_iter().map(Ok));
                    next = c;
                }
                Ok(None) => return self.restart(dir, cursor, what).await,
                Err(e) => out.push(Err(e)),
            }
        }
        if let Some(b) = poll.backoff {
            tokio::time::sleep(b).await;
        }
        (out, next)
    }

    /// After an expired cursor: `Rescan`, and a new latest cursor.
    async fn restart(
        &self,
        dir: &RemotePath,
        old: String,
        what: &str,
    ) -> (Vec<Result<Change>>, String) {
        match self.latest_cursor(dir, what).await {
            Ok(c) => (vec![Ok(Change::Rescan)], c),
            Err(e) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                (vec![Ok(Change::Rescan), Err(e)], old)
            }
        }
    }

    pub(crate) async fn watch_longpoll(&self, dir: &RemotePath) -> Result<ChangeStream> {
        let what = dir.to_string();
        let mut cursor = self.latest_cursor(dir, &what).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Change>>(256);
        let me = self.clone();
        let dir = dir.clone();
        tokio::spawn(async move {
            loop {
                if tx.is_closed() {
                    return;
                }
                let (out, next) = me.round(&dir, cursor, &what).await;
                cursor = next;
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

fn cursor_of(v: &Value, what: &str) -> Result<String> {
    v.get("cursor")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::Corrupt {
            message: format!("{what}: a listing answer without a cursor"),
        })
}
