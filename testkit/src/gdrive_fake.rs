//! A Google Drive API fake on 127.0.0.1 for the Google Drive provider's tests,
//! written from Google's references; every behaviour names the page it comes from.
//! Files live in memory. Where a reference is silent the fake takes the stricter
//! reading, and says so.
//!
//! References (cited below by their short names):
//!
//! * **v2 files**: <https://developers.google.com/drive/api/v2/reference/files>
//!   (`etag`, `title`, `parents[].id`, `labels.trashed`, `createdDate`,
//!   `modifiedDate`, `fileSize`, `shortcutDetails`), `files/get`, `files/list`
//!   (`q`, `orderBy`, `pageToken`), `files/insert`, `files/update`, `files/delete`,
//!   `files/trash`.
//! * **v3 files**: <https://developers.google.com/drive/api/reference/rest/v3/files>
//!   (no `etag` field: `fields=etag` is `400 invalidParameter`), `files/update`
//!   (`PATCH`): the fake ignores `If-Match` there, as issue #15 observed of v3.
//! * **conditional requests**: <https://developers.google.com/drive/api/v2/performance#etags>
//!   (v2: `If-Match` on update and delete; a stale etag is `412 Precondition Failed`).
//! * **uploads**: <https://developers.google.com/drive/api/guides/manage-uploads#resumable>
//!   (session started by `POST`/`PUT …?uploadType=resumable`, session URI in
//!   `Location`; chunks `PUT` with `Content-Range: bytes a-b/total`; `308 Resume
//!   Incomplete` with `Range: bytes=0-n`; every chunk but the last a multiple of
//!   256 KiB; status query `Content-Range: bytes */total`; an expired session is
//!   `404`, "start the upload from the beginning").
//! * **changes**: <https://developers.google.com/drive/api/v2/reference/changes/getStartPageToken>,
//!   <https://developers.google.com/drive/api/v2/reference/changes/list>
//!   (`items[].fileId`, `deleted`, `file`; `nextPageToken` / `newStartPageToken`).
//! * **limits**: <https://developers.google.com/drive/api/guides/limits>
//!   ("403: User rate limit exceeded", "429: Too many requests", exponential backoff)
//!   and <https://developers.google.com/drive/api/guides/handle-errors>
//!   (`{"error": {"errors": [{"domain": "usageLimits", "reason":
//!   "userRateLimitExceeded"}], "code": 403}}`; `rateLimitExceeded` likewise).
//! * **shortcuts**: <https://developers.google.com/drive/api/guides/shortcuts>
//!   (`mimeType: application/vnd.google-apps.shortcut`, `shortcutDetails.targetId`;
//!   a shortcut has no content of its own: the fake answers its `alt=media` with
//!   0 bytes, which is what a client that does not resolve it would read).
//!
//! Names are not unique: a folder may hold any number of files with one `title`
//! (v2 files, "title"; nothing in files/insert refuses a duplicate), and
//! `If-None-Match: *` creates nothing exclusive (v3 ignores it; on v2 the fake
//! answers every `If-None-Match` on insert with 412, as issue #15 observed). Ids are
//! never reused: a file deleted and created again by another app has a new id.
//!
//! Switches: [`GdriveFake::set_ignore_if_match`] (v2 lies like v3),
//! throttling at a seeded rate (403 `userRateLimitExceeded` and 429 with
//! `Retry-After`, alternating), chunks cut mid-body ([`GdriveFake::cut_next_chunks`]),
//! sessions expired ([`GdriveFake::expire_sessions`]), and direct edits as another app
//! would make them ([`GdriveFake::recreate`], [`GdriveFake::add_duplicate`],
//! [`GdriveFake::add_shortcut`]).
//!
//! Not modelled: multipart uploads, Google Docs formats, shared drives, files with
//! several parents, revisions, `changes.watch` push channels.

use crate::graph_fake::http::{self, BodyReader, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};

/// The folder MIME type (v2 files, "mimeType").
pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// The shortcut MIME type (shortcuts guide).
pub const SHORTCUT_MIME: &str = "application/vnd.google-apps.shortcut";
/// Every chunk but the last is a multiple of this (manage-uploads, "resumable").
pub const CHUNK_UNIT: u64 = 256 * 1024;
/// The largest body the fake reads into memory.
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// How the fake starts.
#[derive(Clone, Debug)]
pub struct GdriveFakeConfig {
    /// The bearer token it accepts.
    pub token: String,
    /// Entries per `files.list` / `changes.list` page.
    pub page_size: usize,
    /// The share of requests (0.0..=1.0) refused as rate limited.
    pub throttle_rate: f64,
    /// The `Retry-After` of those answers, in seconds.
    pub retry_after_secs: u64,
    /// The seed of the throttling schedule.
    pub seed: u64,
}

impl Default for GdriveFakeConfig {
    fn default() -> Self {
        GdriveFakeConfig {
            token: format!("fake-gdrive-token-{:016x}", fastrand::u64(..)),
            page_size: 100,
            throttle_rate: 0.0,
            retry_after_secs: 1,
            seed: 1,
        }
    }
}

/// What the fake saw.
#[derive(Clone, Debug, Default)]
pub struct GdriveFakeStats {
    /// Requests that reached it.
    pub requests: u64,
    /// Answered 401.
    pub unauthorized: u64,
    /// Answered 403 `userRateLimitExceeded`.
    pub throttled_403: u64,
    /// Answered 429.
    pub throttled_429: u64,
    /// Answered 412.
    pub precondition_failed: u64,
    /// Resumable sessions started.
    pub sessions_started: u64,
    /// Chunks accepted (308 or final).
    pub chunks: u64,
    /// Status queries (`bytes */total`).
    pub status_queries: u64,
    /// Chunks cut mid-body on purpose.
    pub cut_chunks: u64,
    /// Requests to a session that had expired (404).
    pub expired_hits: u64,
    /// Files created (any way).
    pub creates: u64,
    /// Files trashed.
    pub trashed: u64,
}

#[derive(Clone)]
struct File {
    title: String,
    parent: String,
    mime: String,
    data: Arc<Vec<u8>>,
    etag: String,
    /// Creation order; `createdDate` is derived from it, so it is strictly increasing.
    created: u64,
    modified: u64,
    trashed: bool,
    target: Option<String>,
}

enum SessionKind {
    Insert {
        title: String,
        parent: String,
    },
    Update {
        id: String,
        if_match: Option<String>,
    },
}

struct Session {
    kind: SessionKind,
    data: Vec<u8>,
    done: Option<String>,
}

struct State {
    token: String,
    root: String,
    files: HashMap<String, File>,
    sessions: HashMap<String, Session>,
    /// (change number, file id), in order.
    changes: Vec<(u64, String)>,
    seq: u64,
    next_id: u64,
    salt: u64,
    page_size: usize,
    throttle_rate: f64,
    retry_after_secs: u64,
    rng: fastrand::Rng,
    ignore_if_match: bool,
    cut_chunks: u32,
    /// Sessions expire after this many more accepted chunks (`None`: never).
    expire_after: Option<u32>,
    stats: GdriveFakeStats,
}

/// A running fake; stops when dropped.
pub struct GdriveFake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for GdriveFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GdriveFake")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for GdriveFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GdriveFake {
    /// Starts an empty Drive on `127.0.0.1:0`.
    pub async fn start(cfg: GdriveFakeConfig) -> std::io::Result<GdriveFake> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let salt = fastrand::u64(..) & 0xffff_ffff;
        let state = Arc::new(Mutex::new(State {
            token: cfg.token,
            root: format!("0AROOT{salt:08x}"),
            files: HashMap::new(),
            sessions: HashMap::new(),
            changes: Vec::new(),
            seq: 0,
            next_id: 0,
            salt,
            page_size: cfg.page_size.max(1),
            throttle_rate: cfg.throttle_rate,
            retry_after_secs: cfg.retry_after_secs,
            rng: fastrand::Rng::with_seed(cfg.seed),
            ignore_if_match: false,
            cut_chunks: 0,
            expire_after: None,
            stats: GdriveFakeStats::default(),
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve_conn(st, sock, addr).await;
                });
            }
        });
        Ok(GdriveFake { addr, state, task })
    }

    /// The base URL of the API and the upload endpoints: `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on (for a proxy in front of it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token it accepts.
    pub fn token(&self) -> String {
        lock(&self.state).token.clone()
    }

    /// What the fake saw so far.
    pub fn stats(&self) -> GdriveFakeStats {
        lock(&self.state).stats.clone()
    }

    /// Makes v2 lie like v3: `If-Match` is not checked on update or delete.
    pub fn set_ignore_if_match(&self, on: bool) {
        lock(&self.state).ignore_if_match = on;
    }

    /// Throttles this share of requests from now on.
    pub fn set_throttle_rate(&self, rate: f64) {
        lock(&self.state).throttle_rate = rate;
    }

    /// The next `n` chunk uploads are cut mid-body: the fake reads half of the body,
    /// keeps what it read rounded down to 256 KiB (as a server that persisted part of
    /// it would), and closes the connection without an answer.
    pub fn cut_next_chunks(&self, n: u32) {
        lock(&self.state).cut_chunks = n;
    }

    /// Every open upload session expires now: later requests to it are 404.
    pub fn expire_sessions(&self) {
        lock(&self.state).sessions.clear();
    }

    /// Every open session expires right after the `n`-th chunk accepted from now
    /// on (its answer is still sent): the next request to it is 404.
    pub fn expire_sessions_after_chunks(&self, n: u32) {
        lock(&self.state).expire_after = Some(n);
    }

    /// How many upload sessions are open.
    pub fn open_sessions(&self) -> usize {
        lock(&self.state)
            .sessions
            .values()
            .filter(|s| s.done.is_none())
            .count()
    }

    /// The content of the file at `path` (`a/b`, titles from the top of the Drive,
    /// the oldest of equal titles), if any.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        let st = lock(&self.state);
        let id = st.resolve(path)?;
        let f = st.files.get(&id)?;
        (f.mime != FOLDER_MIME).then(|| f.data.as_ref().clone())
    }

    /// The id of the live file or folder at `path`, if any.
    pub fn id_of(&self, path: &str) -> Option<String> {
        lock(&self.state).resolve(path)
    }

    /// How many live (untrashed) entries titled `name` the folder at `dir` holds.
    pub fn count_named(&self, dir: &str, name: &str) -> usize {
        let st = lock(&self.state);
        let Some(parent) = st.resolve(dir) else {
            return 0;
        };
        st.files
            .values()
            .filter(|f| f.parent == parent && f.title == name && !f.trashed)
            .count()
    }

    /// As another app would: deletes the file at `path` and creates it again with
    /// `data` (a new id). Returns the new id.
    pub fn recreate(&self, path: &str, data: &[u8]) -> Option<String> {
        let mut st = lock(&self.state);
        let id = st.resolve(path)?;
        let old = st.files.remove(&id)?;
        st.change(&id);
        Some(st.create(&old.title, &old.parent, &old.mime, data.to_vec(), None))
    }

    /// As another app would: a second file titled like the last segment of `path`
    /// in its folder (the folder must exist), created now (so it is the newest).
    pub fn add_duplicate(&self, path: &str, data: &[u8]) -> Option<String> {
        let mut st = lock(&self.state);
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent = st.resolve(dir)?;
        Some(st.create(
            name,
            &parent,
            "application/octet-stream",
            data.to_vec(),
            None,
        ))
    }

    /// As another app would: a shortcut at `path` (its folder must exist) to the
    /// entry with id `target`.
    pub fn add_shortcut(&self, path: &str, target: &str) -> Option<String> {
        let mut st = lock(&self.state);
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent = st.resolve(dir)?;
        Some(st.create(
            name,
            &parent,
            SHORTCUT_MIME,
            Vec::new(),
            Some(target.into()),
        ))
    }

    /// Every live path (titles joined by `/`), files and folders; duplicates repeat.
    pub fn paths(&self) -> Vec<String> {
        let st = lock(&self.state);
        let mut out: Vec<String> = st.files.keys().filter_map(|id| st.path_of(id)).collect();
        out.sort();
        out
    }
}

impl State {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("1F{:08x}{:06}", self.salt, self.next_id)
    }

    fn new_etag(&mut self) -> String {
        // v2 files, "etag": "ETag of the file"; a new one on every change (quoted,
        // as Drive's are).
        self.seq += 1;
        format!("\"E{:08x}-{}\"", self.salt, self.seq)
    }

    fn change(&mut self, id: &str) {
        self.seq += 1;
        let s = self.seq;
        self.changes.push((s, id.to_string()));
    }

    fn create(
        &mut self,
        title: &str,
        parent: &str,
        mime: &str,
        data: Vec<u8>,
        target: Option<String>,
    ) -> String {
        let id = self.new_id();
        let etag = self.new_etag();
        let now = self.seq;
        self.files.insert(
            id.clone(),
            File {
                title: title.to_string(),
                parent: parent.to_string(),
                mime: mime.to_string(),
                data: Arc::new(data),
                etag,
                created: now,
                modified: now,
                trashed: false,
                target,
            },
        );
        self.stats.creates += 1;
        self.change(&id);
        id
    }

    fn write(&mut self, id: &str, data: Vec<u8>) {
        let etag = self.new_etag();
        let now = self.seq;
        if let Some(f) = self.files.get_mut(id) {
            f.data = Arc::new(data);
            f.etag = etag;
            f.modified = now;
        }
        self.change(id);
    }

    /// `"root"` is an alias of the root folder's id (v2 files/get, "fileId").
    fn real_id(&self, id: &str) -> String {
        if id == "root" {
            self.root.clone()
        } else {
            id.to_string()
        }
    }

    /// The oldest live entry titled `name` in `parent`.
    fn child(&self, parent: &str, name: &str) -> Option<String> {
        self.files
            .iter()
            .filter(|(_, f)| f.parent == parent && f.title == name && !f.trashed)
            .min_by_key(|(id, f)| (f.created, (*id).clone()))
            .map(|(id, _)| id.clone())
    }

    fn resolve(&self, path: &str) -> Option<String> {
        let mut cur = self.root.clone();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            cur = self.child(&cur, seg)?;
        }
        Some(cur)
    }

    fn path_of(&self, id: &str) -> Option<String> {
        let mut names = Vec::new();
        let mut cur = id.to_string();
        while cur != self.root {
            let f = self.files.get(&cur)?;
            if f.trashed {
                return None;
            }
            names.push(f.title.clone());
            cur = f.parent.clone();
        }
        names.reverse();
        Some(names.join("/"))
    }

    /// The v2 file resource (v2 files, "Resource representations").
    fn resource(&self, id: &str) -> Value {
        let Some(f) = self.files.get(id) else {
            return json!({});
        };
        let mut v = json!({
            "kind": "drive#file",
            "id": id,
            "etag": f.etag,
            "title": f.title,
            "mimeType": f.mime,
            "labels": {"trashed": f.trashed},
            "parents": [{"id": f.parent, "isRoot": f.parent == self.root}],
            "createdDate": time(f.created),
            "modifiedDate": time(f.modified),
        });
        if f.mime != FOLDER_MIME && f.mime != SHORTCUT_MIME {
            v["fileSize"] = json!(f.data.len().to_string());
        }
        if let Some(t) = &f.target {
            let tm = self
                .files
                .get(t)
                .map(|x| x.mime.clone())
                .unwrap_or_default();
            v["shortcutDetails"] = json!({"targetId": t, "targetMimeType": tm});
        }
        v
    }
}

/// `createdDate`/`modifiedDate` (RFC 3339, UTC, milliseconds): a fixed day plus one
/// millisecond per change number, so later changes always have later times.
fn time(n: u64) -> String {
    let ms = n % 1000;
    let s = n / 1000;
    format!(
        "2026-12-05T{:02}:{:02}:{:02}.{ms:03}Z",
        (10 + s / 3600) % 24,
        (s / 60) % 60,
        s % 60
    )
}

/// A Google API error answer (handle-errors): `{"error": {"errors": [{domain,
/// reason, message}], "code", "message"}}`.
fn gerror(status: u16, domain: &str, reason: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({"error": {
            "errors": [{"domain": domain, "reason": reason, "message": message}],
            "code": status,
            "message": message,
        }}),
    )
}

fn not_found(id: &str) -> Response {
    gerror(404, "global", "notFound", &format!("File not found: {id}"))
}

fn bad(message: &str) -> Response {
    gerror(400, "global", "badRequest", message)
}

fn precondition(st: &mut State) -> Response {
    st.stats.precondition_failed += 1;
    gerror(412, "global", "conditionNotMet", "Precondition Failed")
}

async fn serve_conn(
    state: Arc<Mutex<State>>,
    sock: TcpStream,
    addr: SocketAddr,
) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let mut conn = BufReader::with_capacity(64 * 1024, sock);
    loop {
        let Some(req) = http::read_head(&mut conn).await? else {
            return Ok(());
        };
        if req.query_param("upload_id").is_some() && req.content_length > 0 && take_cut(&state) {
            let half = req.content_length / 2;
            let mut body = BodyReader::new(&mut conn, half);
            let got = body.read_all(MAX_BODY).await?.unwrap_or_default();
            keep_partial(&state, &req, &got);
            return Ok(());
        }
        let mut body = BodyReader::new(&mut conn, req.content_length);
        let data = match body.read_all(MAX_BODY).await? {
            Some(d) => d,
            None => {
                body.drain().await?;
                http::write_response(&mut conn, bad("request body too large"), false).await?;
                continue;
            }
        };
        let resp = handle(&state, &req, data, addr);
        http::write_response(&mut conn, resp, false).await?;
    }
}

fn take_cut(state: &Mutex<State>) -> bool {
    let mut st = lock(state);
    if st.cut_chunks == 0 {
        return false;
    }
    st.cut_chunks -= 1;
    st.stats.cut_chunks += 1;
    true
}

/// A cut chunk: the session keeps the whole 256 KiB units it received in order.
fn keep_partial(state: &Mutex<State>, req: &http::Request, got: &[u8]) {
    let mut st = lock(state);
    let Some(id) = req.query_param("upload_id") else {
        return;
    };
    let Some((first, _, _)) = req.header("content-range").and_then(parse_range) else {
        return;
    };
    if let Some(s) = st.sessions.get_mut(&id) {
        let have = s.data.len() as u64;
        if first == Some(have) {
            let keep = (got.len() as u64 / CHUNK_UNIT) * CHUNK_UNIT;
            s.data.extend_from_slice(&got[..keep as usize]);
        }
    }
}

/// `Content-Range: bytes a-b/total`, `bytes */total` or `bytes a-b/*`:
/// (first, last, total).
fn parse_range(h: &str) -> Option<(Option<u64>, Option<u64>, Option<u64>)> {
    let r = h.trim().strip_prefix("bytes ")?;
    let (span, total) = r.split_once('/')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    if span == "*" {
        return Some((None, None, total));
    }
    let (a, b) = span.split_once('-')?;
    Some((Some(a.parse().ok()?), Some(b.parse().ok()?), total))
}

/// Routes one request.
fn handle(state: &Mutex<State>, req: &http::Request, body: Vec<u8>, addr: SocketAddr) -> Response {
    let mut st = lock(state);
    let st = &mut *st;
    st.stats.requests += 1;
    let want = format!("Bearer {}", st.token);
    if req.header("authorization") != Some(want.as_str()) {
        st.stats.unauthorized += 1;
        return gerror(401, "global", "authError", "Invalid Credentials");
    }
    if st.throttle_rate > 0.0 && st.rng.f64() < st.throttle_rate {
        let secs = st.retry_after_secs.to_string();
        // limits: "403: User rate limit exceeded" and "429: Too many requests".
        if st.rng.bool() {
            st.stats.throttled_403 += 1;
            return gerror(
                403,
                "usageLimits",
                "userRateLimitExceeded",
                "User Rate Limit Exceeded",
            )
            .header("Retry-After", secs);
        }
        st.stats.throttled_429 += 1;
        return gerror(
            429,
            "usageLimits",
            "rateLimitExceeded",
            "Rate Limit Exceeded",
        )
        .header("Retry-After", secs);
    }
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let m = req.method.as_str();
    match (m, segs.as_slice()) {
        (_, ["upload", "drive", "v2", "files", ..]) if req.query_param("upload_id").is_some() => {
            chunk(st, req, body)
        }
        ("GET", ["drive", "v2", "files"]) => list(st, req),
        ("GET", ["drive", "v2", "files", id]) => get(st, req, id),
        ("POST", ["drive", "v2", "files"]) => insert_meta(st, &body),
        ("DELETE", ["drive", "v2", "files", id]) => delete(st, req, id),
        ("POST", ["drive", "v2", "files", id, "trash"]) => trash(st, id),
        ("POST", ["upload", "drive", "v2", "files"]) => start_insert(st, req, &body, addr),
        ("PUT", ["upload", "drive", "v2", "files", id]) => {
            match req.query_param("uploadType").as_deref() {
                Some("resumable") => start_update(st, req, id, addr),
                Some("media") => media_update(st, req, id, body, true),
                _ => bad("uploadType must be media or resumable"),
            }
        }
        // v3 files/update: PATCH, and (issue #15) If-Match is not enforced.
        ("PATCH", ["upload", "drive", "v3", "files", id]) => media_update(st, req, id, body, false),
        ("GET", ["drive", "v3", "files", _])
            if req
                .query_param("fields")
                .is_some_and(|f| f.contains("etag")) =>
        {
            // v3 files: the resource has no etag field.
            gerror(
                400,
                "global",
                "invalidParameter",
                "Invalid field selection etag",
            )
        }
        ("GET", ["drive", "v2", "changes", "startPageToken"]) => {
            Response::json(200, &json!({"startPageToken": (st.seq + 1).to_string()}))
        }
        ("GET", ["drive", "v2", "changes"]) => changes(st, req),
        _ => gerror(404, "global", "notFound", "Not Found"),
    }
}

fn get(st: &mut State, req: &http::Request, id: &str) -> Response {
    let id = st.real_id(id);
    if id == st.root {
        return Response::json(
            200,
            &json!({"id": id, "title": "My Drive", "mimeType": FOLDER_MIME, "etag": "\"root\"",
                    "labels": {"trashed": false}, "parents": []}),
        );
    }
    let Some(f) = st.files.get(&id) else {
        return not_found(&id);
    };
    if req.query_param("alt").as_deref() == Some("media") {
        if f.mime == FOLDER_MIME {
            return gerror(
                403,
                "global",
                "fileNotDownloadable",
                "Only files with binary content can be downloaded",
            );
        }
        // A shortcut has no content: 0 bytes (shortcuts guide; see the crate doc).
        let mut r = Response::new(200);
        r.headers
            .push(("Content-Type".into(), "application/octet-stream".into()));
        r.headers.push(("ETag".into(), f.etag.clone()));
        r.body = http::RespBody::Bytes(f.data.as_ref().clone());
        return r;
    }
    Response::json(200, &st.resource(&id))
}

/// A clause of `q` (v2 "Search for files": `'<id>' in parents`, `title = '<s>'`,
/// `trashed = <bool>`, `mimeType = '<s>'` / `!=`, joined by `and`).
enum Clause {
    InParents(String),
    Title(String),
    Trashed(bool),
    Mime(String, bool),
}

/// A quoted string of `q` (`\'` and `\\` escaped) and the rest after it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start().strip_prefix('\'')?;
    let mut out = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => out.push(it.next()?.1),
            '\'' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

fn parse_q(q: &str) -> Option<Vec<Clause>> {
    let mut out = Vec::new();
    let mut rest = q.trim();
    while !rest.is_empty() {
        if let Some((v, r)) = quoted(rest) {
            rest = r.trim_start().strip_prefix("in parents")?;
            out.push(Clause::InParents(v));
        } else if let Some(r) = rest.strip_prefix("title =") {
            let (v, r) = quoted(r)?;
            out.push(Clause::Title(v));
            rest = r;
        } else if let Some(r) = rest.strip_prefix("trashed =") {
            let r = r.trim_start();
            let (b, r) = if let Some(r) = r.strip_prefix("false") {
                (false, r)
            } else {
                (true, r.strip_prefix("true")?)
            };
            out.push(Clause::Trashed(b));
            rest = r;
        } else if let Some(r) = rest.strip_prefix("mimeType") {
            let r = r.trim_start();
            let (eq, r) = match r.strip_prefix("!=") {
                Some(r) => (false, r),
                None => (true, r.strip_prefix('=')?),
            };
            let (v, r) = quoted(r)?;
            out.push(Clause::Mime(v, eq));
            rest = r;
        } else {
            return None;
        }
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("and ") {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

fn list(st: &mut State, req: &http::Request) -> Response {
    let q = req.query_param("q").unwrap_or_default();
    let Some(clauses) = parse_q(&q) else {
        return gerror(400, "global", "invalid", "Invalid Value (q)");
    };
    let root = st.root.clone();
    let mut hits: Vec<(&String, &File)> = st
        .files
        .iter()
        .filter(|(_, f)| {
            clauses.iter().all(|c| match c {
                Clause::InParents(p) => &f.parent == if p == "root" { &root } else { p },
                Clause::Title(t) => &f.title == t,
                Clause::Trashed(t) => f.trashed == *t,
                Clause::Mime(m, eq) => (&f.mime == m) == *eq,
            })
        })
        .collect();
    // orderBy=createdDate (v2 files/list, "orderBy"); id breaks ties. Without it
    // the order is unspecified: the fake then reverses it, so nobody relies on it.
    hits.sort_by_key(|(id, f)| (f.created, (*id).clone()));
    if req.query_param("orderBy").as_deref() != Some("createdDate") {
        hits.reverse();
    }
    let start: usize = req
        .query_param("pageToken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let size = req
        .query_param("maxResults")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(st.page_size)
        .min(st.page_size)
        .max(1);
    let ids: Vec<String> = hits.iter().map(|(id, _)| (*id).clone()).collect();
    let items: Vec<Value> = ids
        .iter()
        .skip(start)
        .take(size)
        .map(|id| st.resource(id))
        .collect();
    let mut v = json!({"kind": "drive#fileList", "items": items});
    if start + size < ids.len() {
        v["nextPageToken"] = json!((start + size).to_string());
    }
    Response::json(200, &v)
}

/// Metadata of a new file from an insert's JSON body: (title, parent, mime, target).
fn new_meta(st: &State, body: &[u8]) -> Result<(String, String, String, Option<String>), Response> {
    let v: Value = serde_json::from_slice(body).map_err(|_| bad("the body is not JSON"))?;
    let title = v
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("Untitled")
        .to_string();
    let parent = v
        .pointer("/parents/0/id")
        .and_then(Value::as_str)
        .map(|p| st.real_id(p))
        .unwrap_or_else(|| st.root.clone());
    if parent != st.root
        && !st
            .files
            .get(&parent)
            .is_some_and(|f| f.mime == FOLDER_MIME && !f.trashed)
    {
        return Err(not_found(&parent));
    }
    let mime = v
        .get("mimeType")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_string();
    let target = v
        .pointer("/shortcutDetails/targetId")
        .and_then(Value::as_str)
        .map(String::from);
    Ok((title, parent, mime, target))
}

/// `POST /drive/v2/files`: a metadata-only insert (folders, shortcuts, empty files).
fn insert_meta(st: &mut State, body: &[u8]) -> Response {
    let (title, parent, mime, target) = match new_meta(st, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let id = st.create(&title, &parent, &mime, Vec::new(), target);
    Response::json(200, &st.resource(&id))
}

/// Checks `If-Match` against the file's etag (v2 performance, "etags"). `None`:
/// go ahead.
fn if_match(st: &mut State, req: &http::Request, id: &str) -> Option<Response> {
    let want = req.header("if-match")?;
    if st.ignore_if_match {
        return None;
    }
    let cur = st.files.get(id).map(|f| f.etag.clone());
    match cur {
        Some(e) if want == "*" || want == e => None,
        _ => Some(precondition(st)),
    }
}

fn delete(st: &mut State, req: &http::Request, id: &str) -> Response {
    let id = st.real_id(id);
    if !st.files.contains_key(&id) {
        return not_found(&id);
    }
    if let Some(r) = if_match(st, req, &id) {
        return r;
    }
    // files/delete: "Permanently deletes a file … skipping the trash"; a folder's
    // descendants go with it.
    let mut gone = vec![id.clone()];
    let mut i = 0;
    while i < gone.len() {
        let p = gone[i].clone();
        gone.extend(
            st.files
                .iter()
                .filter(|(_, f)| f.parent == p)
                .map(|(k, _)| k.clone()),
        );
        i += 1;
    }
    for g in gone {
        st.files.remove(&g);
        st.change(&g);
    }
    Response::new(204)
}

fn trash(st: &mut State, id: &str) -> Response {
    let id = st.real_id(id);
    let etag = st.new_etag();
    let Some(f) = st.files.get_mut(&id) else {
        return not_found(&id);
    };
    f.trashed = true;
    f.etag = etag;
    st.stats.trashed += 1;
    st.change(&id);
    Response::json(200, &st.resource(&id))
}

fn session_location(st: &mut State, addr: SocketAddr, path: &str, kind: SessionKind) -> Response {
    st.stats.sessions_started += 1;
    let sid = format!("S{:08x}{}", st.salt, st.rng.u64(..));
    st.sessions.insert(
        sid.clone(),
        Session {
            kind,
            data: Vec::new(),
            done: None,
        },
    );
    let mut r = Response::new(200);
    r.headers.push((
        "Location".into(),
        format!("http://{addr}{path}?uploadType=resumable&upload_id={sid}"),
    ));
    r
}

fn start_insert(st: &mut State, req: &http::Request, body: &[u8], addr: SocketAddr) -> Response {
    if req.query_param("uploadType").as_deref() != Some("resumable") {
        return bad("only uploadType=resumable is modelled for inserts");
    }
    if req.header("if-none-match").is_some() {
        // Issue #15: on v2 an insert with If-None-Match is always 412.
        return precondition(st);
    }
    let (title, parent, _, _) = match new_meta(st, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    session_location(
        st,
        addr,
        "/upload/drive/v2/files",
        SessionKind::Insert { title, parent },
    )
}

fn start_update(st: &mut State, req: &http::Request, id: &str, addr: SocketAddr) -> Response {
    let id = st.real_id(id);
    if st.files.get(&id).is_none_or(|f| f.mime == FOLDER_MIME) {
        return not_found(&id);
    }
    if let Some(r) = if_match(st, req, &id) {
        return r;
    }
    // The reference does not say whether the condition is checked again when the
    // upload completes; the fake checks it then too (stricter), so a write that
    // lands between the session's start and its last chunk still wins.
    let if_match = req.header("if-match").map(String::from);
    let path = format!("/upload/drive/v2/files/{id}");
    session_location(st, addr, &path, SessionKind::Update { id, if_match })
}

fn media_update(
    st: &mut State,
    req: &http::Request,
    id: &str,
    body: Vec<u8>,
    v2: bool,
) -> Response {
    let id = st.real_id(id);
    if st.files.get(&id).is_none_or(|f| f.mime == FOLDER_MIME) {
        return not_found(&id);
    }
    if v2 {
        if let Some(r) = if_match(st, req, &id) {
            return r;
        }
    }
    st.write(&id, body);
    Response::json(200, &st.resource(&id))
}

/// `308 Resume Incomplete` with the bytes held (manage-uploads, "resume").
fn incomplete(have: u64) -> Response {
    let r = Response::new(308);
    if have == 0 {
        r
    } else {
        r.header("Range", format!("bytes=0-{}", have - 1))
    }
}

fn chunk(st: &mut State, req: &http::Request, body: Vec<u8>) -> Response {
    let sid = req.query_param("upload_id").unwrap_or_default();
    let Some(range) = req.header("content-range").and_then(parse_range) else {
        return bad("Content-Range required");
    };
    let Some(s) = st.sessions.get_mut(&sid) else {
        st.stats.expired_hits += 1;
        return gerror(
            404,
            "global",
            "notFound",
            "upload session not found or expired",
        );
    };
    if let Some(id) = s.done.clone() {
        return Response::json(200, &st.resource(&id));
    }
    let have = s.data.len() as u64;
    let (first, last, total) = range;
    match (first, last) {
        (None, _) => {
            st.stats.status_queries += 1;
            if total != Some(have) || !body.is_empty() {
                return incomplete(have);
            }
        }
        (Some(a), Some(b)) => {
            if b < a || b - a + 1 != body.len() as u64 || a > have {
                return bad("Content-Range does not match the body or the bytes held");
            }
            let end = b + 1;
            let last_chunk = total == Some(end);
            if !last_chunk && !(body.len() as u64).is_multiple_of(CHUNK_UNIT) {
                // manage-uploads: chunks must be multiples of 256 KiB but the last.
                return bad("chunk size must be a multiple of 256 KiB");
            }
            if total.is_some_and(|t| end > t) {
                return bad("Content-Range beyond the declared total");
            }
            // Bytes it already holds are not taken twice.
            s.data.extend_from_slice(&body[(have - a) as usize..]);
            st.stats.chunks += 1;
            if !last_chunk {
                if let Some(n) = st.expire_after {
                    if n <= 1 {
                        st.expire_after = None;
                        st.sessions.clear();
                    } else {
                        st.expire_after = Some(n - 1);
                    }
                }
                return incomplete(end);
            }
        }
        _ => return bad("bad Content-Range"),
    }
    finish(st, &sid)
}

fn finish(st: &mut State, sid: &str) -> Response {
    let Some(s) = st.sessions.get_mut(sid) else {
        return bad("no session");
    };
    let data = std::mem::take(&mut s.data);
    let id = match &s.kind {
        SessionKind::Insert { title, parent } => {
            let (title, parent) = (title.clone(), parent.clone());
            if parent != st.root && st.files.get(&parent).is_none_or(|f| f.trashed) {
                st.sessions.remove(sid);
                return not_found(&parent);
            }
            st.create(&title, &parent, "application/octet-stream", data, None)
        }
        SessionKind::Update { id, if_match } => {
            let (id, want) = (id.clone(), if_match.clone());
            let cur = st.files.get(&id).map(|f| f.etag.clone());
            let ok = st.ignore_if_match || want.is_none() || (cur.is_some() && cur == want);
            if cur.is_none() {
                st.sessions.remove(sid);
                return not_found(&id);
            }
            if !ok {
                st.sessions.remove(sid);
                return precondition(st);
            }
            st.write(&id, data);
            id
        }
    };
    if let Some(s) = st.sessions.get_mut(sid) {
        s.done = Some(id.clone());
    }
    Response::json(200, &st.resource(&id))
}

fn changes(st: &mut State, req: &http::Request) -> Response {
    let Some(from) = req
        .query_param("pageToken")
        .and_then(|t| t.parse::<u64>().ok())
    else {
        return gerror(400, "global", "invalid", "Invalid Value (pageToken)");
    };
    let pending: Vec<(u64, String)> = st
        .changes
        .iter()
        .filter(|(n, _)| *n >= from)
        .cloned()
        .collect();
    // changes/list: one entry per file, its latest state.
    let mut latest: BTreeMap<String, u64> = BTreeMap::new();
    let page: Vec<(u64, String)> = pending.into_iter().take(st.page_size).collect();
    for (n, id) in &page {
        latest.insert(id.clone(), *n);
    }
    let items: Vec<Value> = latest
        .keys()
        .map(|id| match st.files.get(id) {
            Some(_) => json!({"kind": "drive#change", "fileId": id, "deleted": false, "file": st.resource(id)}),
            None => json!({"kind": "drive#change", "fileId": id, "deleted": true}),
        })
        .collect();
    let mut v = json!({"kind": "drive#changeList", "items": items});
    let more = st.changes.iter().filter(|(n, _)| *n >= from).count() > page.len();
    match page.last() {
        Some((n, _)) if more => v["nextPageToken"] = json!((n + 1).to_string()),
        _ => v["newStartPageToken"] = json!((st.seq + 1).to_string()),
    }
    Response::json(200, &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_parses() {
        let c = parse_q("'abc' in parents and title = 'it\\'s' and trashed = false").unwrap();
        assert!(matches!(&c[0], Clause::InParents(p) if p == "abc"));
        assert!(matches!(&c[1], Clause::Title(t) if t == "it's"));
        assert!(matches!(&c[2], Clause::Trashed(false)));
        assert!(parse_q("name = 'x'").is_none());
        assert_eq!(
            parse_range("bytes 0-9/10"),
            Some((Some(0), Some(9), Some(10)))
        );
        assert_eq!(parse_range("bytes */10"), Some((None, None, Some(10))));
        assert!(time(1) < time(2) && time(999) < time(1000));
    }
}
