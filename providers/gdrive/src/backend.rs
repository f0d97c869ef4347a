//! [`GdriveStorage`]: the [`Storage`] contract on Drive v2's files endpoints.

use crate::client::{with_query, Client, Meta, FIELDS, FOLDER_MIME};
use crate::config::{GdriveConfig, API_URL};
use crate::error::{ApiError, SERVER};
use crate::upload::Target;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use syncfabric_core::auth::BearerAuth;
use syncfabric_core::retry::{Pacer, Retrier, RetryingStorage};
use syncfabric_core::{
    Body, Capabilities, ChangeFeed, Download, Entry, EntryKind, Error, Precondition, RemotePath,
    Result, Storage, Version,
};
use syncfabric_http::{sized_stream, BearerClient, ClientOptions};

pub(crate) struct Inner {
    pub cfg: GdriveConfig,
    pub client: Client,
    pub retrier: Retrier,
    /// Folder ids by path (the storage root is the empty path). A folder deleted or
    /// recreated by another app is found again: see [`GdriveStorage::lookup`].
    pub dirs: Mutex<HashMap<RemotePath, String>>,
    /// File ids by path, checked on every use.
    pub files: Mutex<HashMap<RemotePath, String>>,
}

/// One folder of one Google Drive ("My Drive") as a [`Storage`]. Cheap to clone
/// (shares the connection pool and the id cache).
#[derive(Clone)]
pub struct GdriveStorage {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for GdriveStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GdriveStorage")
            .field("location", &self.describe())
            .finish_non_exhaustive()
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `v` can be sent as an `If-Match` value (an etag is visible ASCII).
fn sendable(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl GdriveStorage {
    /// A storage for `config`, acting as the account behind `bearer`. Nothing is sent
    /// yet. [`Error::InvalidInput`] for a bad configuration.
    pub fn new(config: GdriveConfig, bearer: Arc<dyn BearerAuth>) -> Result<Self> {
        config.validate()?;
        // Redirects are not followed: a 308 is "Resume Incomplete" here.
        let http = ClientOptions::with_connect_timeout(config.connect_timeout).build()?;
        // Drive limits per user and project: storages of one endpoint share a pacer.
        let pacer = Pacer::for_account(&format!("gdrive:{}", config.api_url));
        let retrier = Retrier::new(config.retry.clone(), pacer);
        let client = Client {
            http: BearerClient::new(http, bearer, SERVER),
            api: format!("{}/drive/v2", config.api_url.trim_end_matches('/')),
            upload: format!(
                "{}/upload/drive/v2",
                config.upload_url.trim_end_matches('/')
            ),
        };
        Ok(GdriveStorage {
            inner: Arc::new(Inner {
                cfg: config,
                client,
                retrier,
                dirs: Mutex::new(HashMap::new()),
                files: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// This storage wrapped in core's [`RetryingStorage`] with the configured policy
    /// and the endpoint's shared pacer: what the registry factory hands out.
    pub fn retrying(self) -> RetryingStorage<GdriveStorage> {
        let r = self.inner.retrier.clone();
        RetryingStorage::new(self, r)
    }

    /// The configuration.
    pub fn config(&self) -> &GdriveConfig {
        &self.inner.cfg
    }

    pub(crate) fn entry(&self, path: RemotePath, m: &Meta) -> Result<Entry> {
        if m.is_folder() {
            return Ok(Entry {
                path,
                kind: EntryKind::Dir,
                size: 0,
                modified: m.modified(),
                version: None,
            });
        }
        let etag = m.etag.clone().ok_or_else(|| Error::Corrupt {
            message: format!("{path}: Drive returned a file without an etag"),
        })?;
        Ok(Entry {
            path,
            kind: EntryKind::File,
            size: m.size().unwrap_or(0),
            modified: m.modified(),
            version: Some(Version::new(etag)),
        })
    }

    /// `files.get` metadata of `id`; `None` when Drive does not know it (404).
    pub(crate) async fn get_meta(&self, id: &str, what: &str) -> Result<Option<Meta>> {
        let path = format!("files/{id}");
        match self
            .inner
            .client
            .get_json::<Meta>(&path, &[("fields", FIELDS)], what)
            .await?
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.status == 404 => Ok(None),
            Err(e) => Err(e.into_error(what)),
        }
    }

    /// Every page of a `files.list` query, ordered by `createdDate` (then id).
    pub(crate) async fn query(&self, q: &str, what: &str) -> Result<Vec<Meta>> {
        let fields = format!("nextPageToken,items({FIELDS})");
        let mut out: Vec<Meta> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = vec![
                ("q", q),
                ("orderBy", "createdDate"),
                ("maxResults", "1000"),
                ("fields", fields.as_str()),
            ];
            if let Some(t) = &token {
                params.push(("pageToken", t.as_str()));
            }
            let page: serde_json::Value = self
                .inner
                .client
                .get_json("files", &params, what)
                .await?
                .map_err(|e| e.into_error(what))?;
            let items: Vec<Meta> = serde_json::from_value(
                page.get("items").cloned().unwrap_or_default(),
            )
            .map_err(|e| Error::Corrupt {
                message: format!("{what}: Google answered with unexpected JSON: {e}"),
            })?;
            out.extend(items.into_iter().filter(|m| !m.labels.trashed));
            token = page
                .get("nextPageToken")
                .and_then(|v| v.as_str())
                .map(String::from);
            if token.is_none() {
                out.sort_by(|a, b| a.rank().cmp(&b.rank()));
                return Ok(out);
            }
        }
    }

    /// The live entries titled `name` in folder `parent`, oldest first.
    pub(crate) async fn named(&self, parent: &str, name: &str, what: &str) -> Result<Vec<Meta>> {
        let q = format!(
            "{} in parents and title = {} and trashed = false",
            crate::client::q_string(parent),
            crate::client::q_string(name)
        );
        self.query(&q, what).await
    }

    /// A shortcut's target in its place (keeping the shortcut's title), or a clear
    /// refusal when the target is gone. Anything else is returned as it is.
    pub(crate) async fn follow(&self, m: Meta, what: &str) -> Result<(Meta, bool)> {
        if !m.is_shortcut() {
            return Ok((m, false));
        }
        let dangling = || Error::InvalidInput {
            message: format!(
                "{what} is a Google Drive shortcut whose target is gone or trashed; \
                 remove the shortcut or point it at the file"
            ),
        };
        let target = m
            .shortcut_details
            .as_ref()
            .and_then(|d| d.target_id.clone())
            .ok_or_else(dangling)?;
        match self.get_meta(&target, what).await? {
            Some(t) if !t.labels.trashed && !t.is_shortcut() => Ok((
                Meta {
                    title: m.title,
                    ..t
                },
                true,
            )),
            _ => Err(dangling()),
        }
    }

    /// The folder named `name` in `parent`: the oldest entry of that title, through a
    /// shortcut if it is one. `InvalidInput` when that is a file.
    async fn folder_child(&self, parent: &str, name: &str, what: &str) -> Result<Option<String>> {
        let Some(first) = self.named(parent, name, what).await?.into_iter().next() else {
            return Ok(None);
        };
        let (m, _) = self.follow(first, what).await?;
        if !m.is_folder() {
            return Err(Error::InvalidInput {
                message: format!("{what}: {name} is a file, not a folder"),
            });
        }
        Ok(Some(m.id))
    }

    /// Creates folder `name` in `parent` and returns the id every device uses: when
    /// two devices created it at once, the oldest wins and the other trashes its own
    /// (it is empty: nobody could have resolved the name to it).
    async fn make_folder(&self, parent: &str, name: &str, what: &str) -> Result<String> {
        let body = json!({
            "title": name,
            "parents": [{"id": parent}],
            "mimeType": FOLDER_MIME,
        })
        .to_string();
        let url = with_query(
            &format!("{}/files", self.inner.client.api),
            &[("fields", FIELDS)],
        )?;
        let resp = self
            .inner
            .client
            .send(what, |c| {
                c.post(url.clone())
                    .header("Content-Type", "application/json")
                    .body(body.clone())
            })
            .await?
            .map_err(|e| e.into_error(what))?;
        let mine: Meta = crate::client::read_json(resp, what).await?;
        match self.folder_child(parent, name, what).await? {
            Some(winner) if winner != mine.id => {
                self.trash_own(&mine.id, what).await;
                Ok(winner)
            }
            _ => Ok(mine.id),
        }
    }

    /// Trashes a duplicate this client made (best effort: a duplicate left behind
    /// is never used, as every device takes the oldest of a title).
    pub(crate) async fn trash_own(&self, id: &str, what: &str) {
        let url = format!("{}/files/{id}/trash", self.inner.client.api);
        let r = self
            .inner
            .retrier
            .run(|| async {
                match self.inner.client.send(what, |c| c.post(&url)).await? {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_retryable() => Err(e.into_error(what)),
                    Err(_) => Ok(()),
                }
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(what, error = %e, "could not trash our duplicate; every device ignores it");
        }
    }

    /// The id of folder `dir`, created (with its parents) when `create`; `None` when
    /// it does not exist.
    pub(crate) async fn dir_id(&self, dir: &RemotePath, create: bool) -> Result<Option<String>> {
        if let Some(id) = locked(&self.inner.dirs).get(dir).cloned() {
            return Ok(Some(id));
        }
        let what = dir.to_string();
        let root_len = self.inner.cfg.root.len();
        let names: Vec<&str> = self
            .inner
            .cfg
            .root
            .iter()
            .map(String::as_str)
            .chain(dir.segments())
            .collect();
        let mut id = "root".to_string();
        let mut cur = RemotePath::root();
        for (i, name) in names.iter().enumerate() {
            if i >= root_len {
                cur = cur.join(name)?;
                if let Some(c) = locked(&self.inner.dirs).get(&cur).cloned() {
                    id = c;
                    continue;
                }
            }
            id = match self.folder_child(&id, name, &what).await? {
                Some(c) => c,
                None if create => self.make_folder(&id, name, &what).await?,
                None => return Ok(None),
            };
            if i + 1 == root_len {
                locked(&self.inner.dirs).insert(RemotePath::root(), id.clone());
            }
            if i >= root_len {
                locked(&self.inner.dirs).insert(cur.clone(), id.clone());
            }
        }
        locked(&self.inner.dirs).insert(dir.clone(), id.clone());
        Ok(Some(id))
    }

    /// Forgets every cached id at or under `dir` (it was deleted or recreated).
    fn forget_dir(&self, dir: &RemotePath) {
        let under = |p: &RemotePath| {
            let mut cur = Some(p.clone());
            while let Some(c) = cur {
                if &c == dir {
                    return true;
                }
                cur = c.parent();
            }
            false
        };
        locked(&self.inner.dirs).retain(|p, _| !under(p));
        locked(&self.inner.files).retain(|p, _| !under(p));
    }

    /// Whether the cached id of folder `dir` still names a live folder.
    async fn dir_alive(&self, dir: &RemotePath, id: &str, what: &str) -> Result<bool> {
        let alive = matches!(
            self.get_meta(id, what).await?,
            Some(m) if m.is_folder() && !m.labels.trashed
        );
        if !alive {
            self.forget_dir(dir);
        }
        Ok(alive)
    }

    /// What is at `path` (the oldest entry of its title, a shortcut followed) and
    /// whether it was reached through a shortcut. Cached ids are checked: an id that
    /// disappeared (another app deleted the file, or deleted and created it again)
    /// is resolved again by path rather than reported missing.
    pub(crate) async fn lookup(&self, path: &RemotePath) -> Result<Option<(Meta, bool)>> {
        let what = path.to_string();
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Error::InvalidInput {
                message: "the storage root is a folder".into(),
            });
        };
        let cached = locked(&self.inner.files).get(path).cloned();
        if let Some(id) = cached {
            let pid = locked(&self.inner.dirs).get(&parent).cloned();
            match self.get_meta(&id, &what).await? {
                Some(m)
                    if !m.labels.trashed
                        && m.title == name
                        && pid.as_deref().is_none_or(|p| m.has_parent(p)) =>
                {
                    return self.follow(m, &what).await.map(Some);
                }
                _ => {
                    locked(&self.inner.files).remove(path);
                }
            }
        }
        for attempt in 0..2 {
            let Some(pid) = self.dir_id(&parent, false).await? else {
                return Ok(None);
            };
            let found = self.named(&pid, name, &what).await?;
            let Some(first) = found.into_iter().next() else {
                // Nothing there, or a cached folder id that went stale: check it once.
                if attempt == 0 && !self.dir_alive(&parent, &pid, &what).await? {
                    continue;
                }
                return Ok(None);
            };
            locked(&self.inner.files).insert(path.clone(), first.id.clone());
            return self.follow(first, &what).await.map(Some);
        }
        Ok(None)
    }

    /// The file at `path` for a write or delete: `None` when absent; refused when
    /// it is a folder or a shortcut (writes never go through shortcuts).
    async fn writable(&self, path: &RemotePath) -> Result<Option<Meta>> {
        match self.lookup(path).await? {
            None => Ok(None),
            Some((_, true)) => Err(Error::Unsupported {
                message: format!(
                    "{path} is a Google Drive shortcut: syncfabric reads through it but \
                     never writes or deletes through it; replace it with the file itself"
                ),
            }),
            Some((m, false)) if m.is_folder() => Err(Error::InvalidInput {
                message: format!("{path} is a folder"),
            }),
            Some((m, false)) => Ok(Some(m)),
        }
    }

    /// [`writable`](Self::writable), its failures worth retrying retried here. The
    /// lookup changes nothing, so its failures must not reach a retrying caller as
    /// the failure of a write or delete whose fate is unknown: `RetryingStorage`
    /// would then take a later refusal for the echo of its own first attempt (an
    /// `IfMatch` delete of a missing file reported done; seen behind the flaky proxy).
    async fn looked_up(&self, path: &RemotePath) -> Result<Option<Meta>> {
        self.inner.retrier.run(|| self.writable(path)).await
    }

    /// Checks an upload's answer (the title we asked for, the size we sent) and
    /// makes it an entry.
    fn written(&self, path: &RemotePath, m: &Meta, size: u64) -> Result<Entry> {
        if Some(m.title.as_str()) != path.file_name() || m.size() != Some(size) {
            return Err(Error::Corrupt {
                message: format!(
                    "{path}: Drive's answer does not match the upload (title or size)"
                ),
            });
        }
        self.entry(path.clone(), m)
    }

    /// A new file, created only if no other device created one first: create, then
    /// list the title; the oldest wins. A loser trashes its own file and reports
    /// `AlreadyExists`, so exactly one creator succeeds and every device uses the
    /// same file.
    async fn create_exclusive(
        &self,
        path: &RemotePath,
        parent: &str,
        body: &Body,
    ) -> Result<Entry> {
        let what = path.to_string();
        let name = path.file_name().unwrap_or_default();
        let mine = self
            .upload(
                Target::Create {
                    parent,
                    title: name,
                },
                body,
                &what,
            )
            .await?
            .map_err(|e| e.into_error(&what))?;
        let entry = self.written(path, &mine, body.len())?;
        // Our file exists now: from here on, a failure must not look like a lost
        // race. The check is retried on its own, and if it still fails the error is
        // Transient (the write's fate unknown), so that a retrying caller checks
        // whether its bytes landed instead of taking its own file for another's.
        let first = self
            .inner
            .retrier
            .run(|| self.named(parent, name, &what))
            .await
            .map_err(|e| {
                Error::transient(format!(
                    "{what}: created, but could not check for a duplicate: {e}"
                ))
            })?
            .into_iter()
            .next();
        match first {
            Some(w) if w.id != mine.id => {
                tracing::info!(
                    what,
                    "another device created this file first; trashing ours"
                );
                self.trash_own(&mine.id, &what).await;
                Err(Error::AlreadyExists { path: what })
            }
            _ => {
                locked(&self.inner.files).insert(path.clone(), mine.id);
                Ok(entry)
            }
        }
    }

    /// An unconditional write of a new file: created, and when another device
    /// created the title first, our bytes go onto that file instead (last writer
    /// wins, as for any unconditional write) and our copy is trashed.
    async fn create_overwrite(
        &self,
        path: &RemotePath,
        parent: &str,
        body: &Body,
    ) -> Result<Entry> {
        let what = path.to_string();
        match self.create_exclusive(path, parent, body).await {
            Err(Error::AlreadyExists { .. }) => {}
            other => return other,
        }
        let Some(m) = self.writable(path).await? else {
            return Err(Error::transient(format!(
                "{what}: the file vanished while written"
            )));
        };
        let m = self
            .upload(
                Target::Update {
                    id: &m.id,
                    if_match: None,
                },
                body,
                &what,
            )
            .await?
            .map_err(|e| e.into_error(&what))?;
        self.written(path, &m, body.len())
    }
}

fn refused(e: ApiError, what: &str) -> Error {
    match e.status {
        // The file is gone (404) or changed (412): either way not the version asked.
        404 | 412 => Error::PreconditionFailed {
            path: what.to_string(),
        },
        _ => e.into_error(what),
    }
}

#[async_trait::async_trait]
impl Storage for GdriveStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            if_match: true,
            // Emulated (create, then the oldest of the title wins): see the crate doc.
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
        let mut s = format!("gdrive:/{}", self.inner.cfg.root.join("/"));
        if self.inner.cfg.api_url != API_URL {
            s.push_str(&format!(" (api {})", self.inner.cfg.api_url));
        }
        s
    }

    async fn stat(&self, path: &RemotePath) -> Result<Option<Entry>> {
        if path.is_root() {
            return Ok(self.dir_id(path, false).await?.map(|_| Entry {
                path: path.clone(),
                kind: EntryKind::Dir,
                size: 0,
                modified: None,
                version: None,
            }));
        }
        match self.lookup(path).await? {
            Some((m, _)) => Ok(Some(self.entry(path.clone(), &m)?)),
            None => Ok(None),
        }
    }

    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let what = dir.to_string();
        let mut all = Vec::new();
        for attempt in 0..2 {
            let Some(id) = self.dir_id(dir, false).await? else {
                return Err(Error::NotFound { path: what });
            };
            let q = format!(
                "{} in parents and trashed = false",
                crate::client::q_string(&id)
            );
            all = self.query(&q, &what).await?;
            // An empty listing may come from a cached folder id that went stale.
            if !all.is_empty() || attempt == 1 || self.dir_alive(dir, &id, &what).await? {
                break;
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        // Oldest first: the first of each title is the one every device uses.
        for m in all {
            if !seen.insert(m.title.clone()) {
                continue;
            }
            let path = match dir.join(&m.title) {
                Ok(p) if p.parent().as_ref() == Some(dir) => p,
                _ => {
                    tracing::debug!(dir = %dir, "skipping a Drive title that is no path segment");
                    continue;
                }
            };
            match self.follow(m, &what).await {
                Ok((m, _)) => out.push(self.entry(path, &m)?),
                Err(Error::InvalidInput { .. }) => continue, // a dangling shortcut
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn read(&self, path: &RemotePath) -> Result<Download> {
        let what = path.to_string();
        let m = match self.lookup(path).await? {
            Some((m, _)) if !m.is_folder() => m,
            Some(_) => {
                return Err(Error::InvalidInput {
                    message: format!("{path} is a folder"),
                })
            }
            None => return Err(Error::NotFound { path: what }),
        };
        let url = with_query(
            &format!("{}/files/{}", self.inner.client.api, m.id),
            &[("alt", "media")],
        )?;
        let resp = match self
            .inner
            .client
            .send(&what, |c| c.get(url.clone()))
            .await?
        {
            Ok(r) => r,
            Err(e) if e.status == 404 => {
                locked(&self.inner.files).remove(path);
                return Err(Error::NotFound { path: what });
            }
            Err(e) => return Err(e.into_error(&what)),
        };
        // The answer's own length: the file may have changed since the metadata.
        let size = resp.content_length().or(m.size());
        // The version is the one seen before the download: if the file changed in
        // between, the bytes are newer than the version, and a commit conditioned
        // on it is refused (safe); never the other way round.
        Ok(Download {
            version: m.etag.clone().map(Version::new),
            size,
            stream: sized_stream(resp, size, what),
        })
    }

    async fn write(&self, path: &RemotePath, body: Body, pre: Precondition) -> Result<Entry> {
        let what = path.to_string();
        let Some(parent_path) = path.parent() else {
            return Err(Error::InvalidInput {
                message: "cannot write the storage root as a file".into(),
            });
        };
        if let Precondition::UnderLock(_) = pre {
            return Err(Error::Unsupported {
                message: format!("{what}: Google Drive has no server-enforced folder lock"),
            });
        }
        if let Precondition::IfMatch(v) = &pre {
            if !sendable(v.as_str()) {
                return Err(Error::PreconditionFailed { path: what });
            }
        }
        // The lookup first: it notices a cached folder id that went stale (another
        // app deleted or recreated the folder) and forgets it before we use it.
        let existing = self.looked_up(path).await?;
        let parent = self
            .dir_id(&parent_path, true)
            .await?
            .ok_or_else(|| Error::transient(format!("{what}: the folder vanished")))?;
        match (pre, existing) {
            (Precondition::IfMatch(_), None) => Err(Error::PreconditionFailed { path: what }),
            (Precondition::IfMatch(v), Some(m)) => {
                let target = Target::Update {
                    id: &m.id,
                    if_match: Some(v.as_str()),
                };
                let m = self
                    .upload(target, &body, &what)
                    .await?
                    .map_err(|e| refused(e, &what))?;
                self.written(path, &m, body.len())
            }
            (Precondition::IfAbsent, Some(_)) => Err(Error::AlreadyExists { path: what }),
            (Precondition::IfAbsent, None) => self.create_exclusive(path, &parent, &body).await,
            (_, Some(m)) => {
                let target = Target::Update {
                    id: &m.id,
                    if_match: None,
                };
                match self.upload(target, &body, &what).await? {
                    Ok(m) => self.written(path, &m, body.len()),
                    Err(e) if e.status == 404 => {
                        locked(&self.inner.files).remove(path);
                        self.create_overwrite(path, &parent, &body).await
                    }
                    Err(e) => Err(e.into_error(&what)),
                }
            }
            (_, None) => self.create_overwrite(path, &parent, &body).await,
        }
    }

    async fn delete(&self, path: &RemotePath, pre: Precondition) -> Result<()> {
        let what = path.to_string();
        if path.is_root() {
            return Err(Error::InvalidInput {
                message: "cannot delete the storage root".into(),
            });
        }
        let if_match = match &pre {
            Precondition::None => None,
            Precondition::IfMatch(v) if sendable(v.as_str()) => Some(v.as_str().to_string()),
            Precondition::IfMatch(_) => return Err(Error::PreconditionFailed { path: what }),
            Precondition::IfAbsent => {
                return Err(Error::Unsupported {
                    message: format!("{what}: a delete with IfAbsent means nothing"),
                })
            }
            Precondition::UnderLock(_) => {
                return Err(Error::Unsupported {
                    message: format!("{what}: Google Drive has no server-enforced folder lock"),
                })
            }
        };
        let Some(m) = self.looked_up(path).await? else {
            return match pre {
                Precondition::None => Ok(()),
                _ => Err(Error::PreconditionFailed { path: what }),
            };
        };
        let url = format!("{}/files/{}", self.inner.client.api, m.id);
        let r = self
            .inner
            .client
            .send(&what, |c| {
                let b = c.delete(&url);
                match &if_match {
                    Some(v) => b.header("If-Match", v.as_str()),
                    None => b,
                }
            })
            .await?;
        locked(&self.inner.files).remove(path);
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.status == 404 && if_match.is_none() => Ok(()),
            Err(e) => Err(refused(e, &what)),
        }
    }

    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        self.dir_id(path, true).await.map(|_| ())
    }

    async fn watch(&self, dir: &RemotePath) -> Result<syncfabric_core::watch::ChangeStream> {
        self.watch_changes(dir).await
    }
}
