//! A Dropbox API v2 fake on 127.0.0.1 for the Dropbox provider's tests, written from
//! Dropbox's HTTP reference (<https://www.dropbox.com/developers/documentation/http/documentation>;
//! sections named below as `files/upload` and so on). Files live in memory. Where the
//! reference is silent the fake takes the stricter reading, and says so.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use syncfabric_testkit::dropbox_fake::{DropboxFake, DropboxFakeConfig};
//! let fake = DropboxFake::start(DropboxFakeConfig::default()).await?;
//! let url = format!("dropbox:/Apps/Enpass?api_url={0}&content_url={0}", fake.url());
//! fake.set_ignore_rev(true); // a lying server, for the probe to catch
//! # let _ = url;
//! # Ok(()) }
//! ```
//!
//! What it implements:
//!
//! * **Request formats** ("Formats"): RPC endpoints take JSON in the body; content
//!   endpoints (`files/upload`, `files/download`, `upload_session/*`) take the
//!   argument in `Dropbox-API-Arg`, which must be ASCII ("HTTP header-safe": non-ASCII
//!   escaped as `\uXXXX`, else 400 here), and `files/download` answers the metadata in
//!   `Dropbox-API-Result`. Errors: 400 bad input, 401 bad token, 409 endpoint errors as
//!   `{"error_summary": "<tags>/..", "error": {…}}`, 429 rate limits with
//!   `Retry-After` and `{"reason": {".tag": "too_many_requests" |
//!   "too_many_write_operations"}, "retry_after": n}` ("Errors by status code").
//! * **Paths** are case-insensitive and case-preserving (`path_lower` /
//!   `path_display`, "Path formats"); the top of the Dropbox is `""`.
//! * **Revs** (`FileMetadata.rev`, "A unique identifier for the current revision of
//!   a file"; pattern `[0-9a-f]+`, at least 9 long): a new one on every write that
//!   changes the file. An `update` rev not of that pattern is 400.
//! * **Write modes** (`files/upload`, `WriteMode`): `add`, `overwrite`,
//!   `update(rev)`. "If the target path refers to a file with identical contents,
//!   nothing gets written; no conflict" (so the rev stays) — unless `strict_conflict`,
//!   which "forces a conflict even when the target path refers to a file with
//!   identical contents" and, for `update`, conflicts "even if the existing file has
//!   been deleted". The reference gives the identical-contents rule under `update`'s
//!   example; the fake applies `strict_conflict` to `add` too (stricter). A conflict
//!   is `409 path/conflict/file/..` (`UploadError.path` → `WriteError.conflict`);
//!   with `autorename: true` the file is instead stored as `name (1).ext` (`add`,
//!   `overwrite`) or `name (conflicted copy).ext` (`update`), as the reference
//!   describes: the provider must never cause that, and tests check it never did.
//! * **`content_hash`** ("Content hash" page): SHA-256 of each 4 MiB block,
//!   concatenated, hashed again. An upload whose `content_hash` argument differs from
//!   the bytes is `409 content_hash_mismatch/..`.
//! * **Upload sessions** (`upload_session/start`, `append_v2`, `finish`): the cursor's
//!   `offset` must equal the bytes held, else `409 incorrect_offset/..` with
//!   `correct_offset` (for `finish`: `lookup_failed/incorrect_offset/..`); an unknown
//!   or finished session is `lookup_failed/not_found` (`not_found` for an append).
//!   `finish` carries a `commit` with the same mode rules as `files/upload`.
//! * **`files/list_folder`** and **`/continue`**: pages of `page_size` entries with a
//!   cursor and `has_more`; a missing folder is `path/not_found`, a file
//!   `path/not_folder`; an unknown cursor is `reset`.
//! * **`files/delete_v2`** (with `parent_rev`: "Perform delete if given rev matches
//!   the existing file's latest rev"); a folder is deleted with all it holds. The
//!   reference does not name the error of a `parent_rev` mismatch: the fake answers
//!   `409 path_write/conflict/file/..` (a `WriteError` conflict); missing:
//!   `path_lookup/not_found/..`.
//! * **`files/create_folder_v2`** (parents created; an existing folder is
//!   `path/conflict/folder/..`), **`files/get_metadata`** (the top: 400, "metadata
//!   for the root folder is unsupported").
//!
//! Faults: throttling at a seeded rate (429 with `Retry-After`), an append whose
//! answer is lost after it was applied, appends cut mid-body, downloads damaged in transit, and a switch that makes it ignore revs (a
//! lying server: `update` and `parent_rev` are not checked).
//!
//! * **`files/list_folder/get_latest_cursor`**, **`list_folder/longpoll`** (no
//!   Authorization header; `{"changes": bool, "backoff"?: secs}`; the fake can put a
//!   `backoff` in every answer and counts long polls that come before it passed) and
//!   cursors that report later changes through `continue` (`deleted` entries for
//!   removals).
//!
//! Not modelled: the longpoll's jitter, file ids as paths, shared folders, the 150 MB request limit beyond a plain 400.

use crate::graph_fake::http::{self, BodyReader, RespBody, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};

/// The most one request body may carry ("Do not use this to upload a file larger
/// than 150 MB", files/upload).
pub const MAX_BODY: u64 = 150 * 1024 * 1024;
const BLOCK: usize = 4 * 1024 * 1024;

/// How the fake starts.
#[derive(Clone, Debug)]
pub struct DropboxFakeConfig {
    /// The bearer token it accepts.
    pub token: String,
    /// Entries per `list_folder` page.
    pub page_size: usize,
    /// The share of requests (0.0..=1.0) answered 429.
    pub throttle_rate: f64,
    /// The `Retry-After` of those answers, in seconds.
    pub retry_after_secs: u64,
    /// The seed of the throttling schedule.
    pub seed: u64,
    /// A `backoff` (seconds) to put in every `list_folder/longpoll` answer.
    pub longpoll_backoff: Option<u64>,
}

impl Default for DropboxFakeConfig {
    fn default() -> Self {
        DropboxFakeConfig {
            token: format!("fake-dropbox-token-{:016x}", fastrand::u64(..)),
            page_size: 100,
            throttle_rate: 0.0,
            retry_after_secs: 1,
            seed: 1,
            longpoll_backoff: None,
        }
    }
}

/// What the fake saw.
#[derive(Clone, Debug, Default)]
pub struct DropboxFakeStats {
    /// Requests that reached it.
    pub requests: u64,
    /// Answered 401.
    pub unauthorized: u64,
    /// Answered 429.
    pub throttled: u64,
    /// `files/upload` calls that stored or kept a file.
    pub uploads: u64,
    /// Upload sessions started.
    pub sessions_started: u64,
    /// Appends accepted.
    pub appends: u64,
    /// Sessions finished into a file.
    pub sessions_finished: u64,
    /// Appends answered `incorrect_offset`.
    pub incorrect_offsets: u64,
    /// Writes refused as conflicts.
    pub conflicts: u64,
    /// Writes stored under another name (autorename) — must stay 0 for our provider.
    pub autorenamed: u64,
    /// Writes of identical contents that kept the file as it was.
    pub identical_noops: u64,
    /// Upload requests whose `Dropbox-API-Arg` had `autorename: true`.
    pub autorename_requested: u64,
    /// `list_folder/longpoll` requests.
    pub longpolls: u64,
    /// Appends cut mid-body on purpose.
    pub cut_appends: u64,
    /// Long polls that came before the `backoff` of the previous answer had passed.
    pub longpolls_too_early: u64,
}

#[derive(Clone)]
enum Node {
    Folder {
        display: String,
    },
    File {
        display: String,
        data: Arc<Vec<u8>>,
        rev: String,
        modified: SystemTime,
    },
}

struct Session {
    data: Vec<u8>,
}

/// A `list_folder` cursor: the folder, the entries of the listing still to page
/// out, and the change number it has seen up to.
#[derive(Clone)]
struct Cursor {
    folder: String,
    rest: Vec<Value>,
    seq: u64,
}

struct State {
    token: String,
    /// Keyed by the lower-cased path (`/a/b`); the top `""` is implicit.
    nodes: BTreeMap<String, Node>,
    sessions: HashMap<String, Session>,
    cursors: HashMap<String, Cursor>,
    /// Bumped on every change; nodes and tombstones carry the value of their change.
    seq: u64,
    changed_at: HashMap<String, u64>,
    tombstones: Vec<(u64, String)>,
    longpoll_backoff: Option<u64>,
    /// When `list_folder/longpoll` may be called again (after a `backoff`: "backoff
    /// for at least this many seconds before calling list_folder/longpoll again",
    /// whatever the cursor).
    not_before: Option<std::time::Instant>,
    next: u64,
    salt: u64,
    page_size: usize,
    throttle_rate: f64,
    retry_after_secs: u64,
    rng: fastrand::Rng,
    ignore_rev: bool,
    drop_next_append_answer: bool,
    cut_appends: u32,
    corrupt_downloads: bool,
    stats: DropboxFakeStats,
}

/// A running fake; stops when dropped.
pub struct DropboxFake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for DropboxFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropboxFake")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for DropboxFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DropboxFake {
    /// Starts an empty Dropbox on `127.0.0.1:0`.
    pub async fn start(cfg: DropboxFakeConfig) -> std::io::Result<DropboxFake> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            token: cfg.token,
            nodes: BTreeMap::new(),
            sessions: HashMap::new(),
            cursors: HashMap::new(),
            seq: 0,
            changed_at: HashMap::new(),
            tombstones: Vec::new(),
            longpoll_backoff: cfg.longpoll_backoff,
            not_before: None,
            next: 0,
            salt: fastrand::u64(..) & 0xffff_ffff,
            page_size: cfg.page_size.max(1),
            throttle_rate: cfg.throttle_rate,
            retry_after_secs: cfg.retry_after_secs,
            rng: fastrand::Rng::with_seed(cfg.seed),
            ignore_rev: false,
            drop_next_append_answer: false,
            cut_appends: 0,
            corrupt_downloads: false,
            stats: DropboxFakeStats::default(),
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve_conn(st, sock).await;
                });
            }
        });
        Ok(DropboxFake { addr, state, task })
    }

    /// The base URL of both the RPC and the content endpoints: `http://127.0.0.1:<port>/2`.
    pub fn url(&self) -> String {
        format!("http://{}/2", self.addr)
    }

    /// The address it listens on (for a proxy in front of it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token it accepts.
    pub fn token(&self) -> String {
        lock(&self.state).token.clone()
    }

    /// Accepts `token` from now on (the old one gets 401).
    pub fn set_token(&self, token: &str) {
        lock(&self.state).token = token.to_string();
    }

    /// What the fake saw so far.
    pub fn stats(&self) -> DropboxFakeStats {
        lock(&self.state).stats.clone()
    }

    /// Makes the fake lie: `update` revs and `parent_rev` are not checked.
    pub fn set_ignore_rev(&self, on: bool) {
        lock(&self.state).ignore_rev = on;
    }

    /// Throttles this share of requests from now on.
    pub fn set_throttle_rate(&self, rate: f64) {
        lock(&self.state).throttle_rate = rate;
    }

    /// The next `append_v2` is applied, then its connection is closed before the answer.
    pub fn drop_next_append_answer(&self) {
        lock(&self.state).drop_next_append_answer = true;
    }

    /// The next `n` appends are cut mid-body: the fake reads half of the body and
    /// closes the connection; nothing of it is kept.
    pub fn cut_next_appends(&self, n: u32) {
        lock(&self.state).cut_appends = n;
    }

    /// Downloads flip their first byte from now on (the `Dropbox-API-Result` still
    /// names the stored file's `content_hash`): damage in transit, for the client's
    /// hash check.
    pub fn set_corrupt_downloads(&self, on: bool) {
        lock(&self.state).corrupt_downloads = on;
    }

    /// The content of the file at `path` (`/a/b`, any case), if any.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        match lock(&self.state).nodes.get(&path.to_lowercase()) {
            Some(Node::File { data, .. }) => Some(data.as_ref().clone()),
            _ => None,
        }
    }

    /// Every path it holds (display form), files and folders.
    pub fn paths(&self) -> Vec<String> {
        lock(&self.state)
            .nodes
            .values()
            .map(|n| match n {
                Node::Folder { display } | Node::File { display, .. } => display.clone(),
            })
            .collect()
    }
}

async fn serve_conn(state: Arc<Mutex<State>>, sock: TcpStream) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let mut conn = BufReader::with_capacity(64 * 1024, sock);
    loop {
        let Some(req) = http::read_head(&mut conn).await? else {
            return Ok(());
        };
        if req.path == "/2/files/upload_session/append_v2" && take_cut(&state) {
            let mut body = BodyReader::new(&mut conn, req.content_length / 2);
            body.drain().await?;
            return Ok(());
        }
        let mut body = BodyReader::new(&mut conn, req.content_length);
        // The whole body first: one cut short ends the connection and changes nothing.
        let data = match body.read_all(MAX_BODY).await? {
            Some(d) => d,
            None => {
                body.drain().await?;
                let r = error(400, "request body larger than 150 MB", json!({}));
                http::write_response(&mut conn, r, false).await?;
                continue;
            }
        };
        if req.path == "/2/files/list_folder/longpoll" {
            let r = longpoll(&state, &req, &data).await;
            http::write_response(&mut conn, r, false).await?;
            continue;
        }
        match handle(&state, &req, data) {
            Some(resp) => http::write_response(&mut conn, resp, false).await?,
            None => return Ok(()), // an answer lost on purpose
        }
    }
}

/// Whether to cut this append (and count it off).
fn take_cut(state: &Mutex<State>) -> bool {
    let mut st = lock(state);
    if st.cut_appends == 0 {
        return false;
    }
    st.cut_appends -= 1;
    st.stats.cut_appends += 1;
    true
}

/// An error answer: `{"error_summary": summary, "error": error}`.
fn error(status: u16, summary: &str, error: Value) -> Response {
    Response::json(status, &json!({ "error_summary": summary, "error": error }))
}

/// A 409 endpoint error whose union nests `tags` (`["path", "not_found"]` →
/// `{".tag": "path", "path": {".tag": "not_found"}}`, summary `path/not_found/..`).
fn e409(tags: &[&str], extra: Value) -> Response {
    let mut inner = extra;
    for (i, t) in tags.iter().enumerate().rev() {
        let mut obj = json!({ ".tag": t });
        if i + 1 < tags.len() {
            obj[t] = inner;
        } else if let (Some(o), Some(x)) = (obj.as_object_mut(), inner.as_object()) {
            for (k, v) in x {
                o.insert(k.clone(), v.clone());
            }
        }
        inner = obj;
    }
    error(409, &format!("{}/..", tags.join("/")), inner)
}

fn bad_input(why: &str) -> Response {
    let mut r = Response::new(400);
    r.headers.push(("Content-Type".into(), "text/plain".into()));
    r.body = RespBody::Bytes(format!("Error in call: {why}").into_bytes());
    r
}

/// Routes one request. `None`: close the connection without an answer.
fn handle(state: &Mutex<State>, req: &http::Request, body: Vec<u8>) -> Option<Response> {
    let mut st = lock(state);
    st.stats.requests += 1;
    let want = format!("Bearer {}", st.token);
    if req.header("authorization") != Some(want.as_str()) {
        st.stats.unauthorized += 1;
        return Some(error(
            401,
            "invalid_access_token/..",
            json!({".tag": "invalid_access_token"}),
        ));
    }
    let Some(endpoint) = req.path.strip_prefix("/2/") else {
        return Some(Response::new(404));
    };
    if req.method != "POST" {
        return Some(Response::new(405));
    }
    let writes = !matches!(
        endpoint,
        "files/get_metadata"
            | "files/list_folder"
            | "files/list_folder/continue"
            | "files/download"
    );
    if st.throttle_rate > 0.0 && st.rng.f64() < st.throttle_rate {
        st.stats.throttled += 1;
        let reason = if writes {
            "too_many_write_operations"
        } else {
            "too_many_requests"
        };
        let secs = st.retry_after_secs;
        return Some(
            error(
                429,
                &format!("{reason}/.."),
                json!({"reason": {".tag": reason}, "retry_after": secs}),
            )
            .header("Retry-After", secs.to_string()),
        );
    }
    let content = matches!(
        endpoint,
        "files/upload"
            | "files/download"
            | "files/upload_session/start"
            | "files/upload_session/append_v2"
            | "files/upload_session/finish"
    );
    let arg: Value = if content {
        let Some(h) = req.header("dropbox-api-arg") else {
            return Some(bad_input("no Dropbox-API-Arg"));
        };
        if !h.is_ascii() {
            return Some(bad_input("Dropbox-API-Arg must be HTTP header-safe JSON"));
        }
        match serde_json::from_str(h) {
            Ok(v) => v,
            Err(_) => return Some(bad_input("Dropbox-API-Arg is not JSON")),
        }
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return Some(bad_input("the body is not JSON")),
        }
    };
    let st = &mut *st;
    match endpoint {
        "files/get_metadata" => Some(get_metadata(st, &arg)),
        "files/list_folder" => Some(list_folder(st, &arg)),
        "files/list_folder/continue" => Some(list_continue(st, &arg)),
        "files/list_folder/get_latest_cursor" => Some(latest_cursor(st, &arg)),
        "files/delete_v2" => Some(delete(st, &arg)),
        "files/create_folder_v2" => Some(create_folder(st, &arg)),
        "files/download" => Some(download(st, &arg)),
        "files/upload" => Some(upload(st, &arg, body)),
        "files/upload_session/start" => Some(session_start(st, body)),
        "files/upload_session/append_v2" => session_append(st, &arg, body),
        "files/upload_session/finish" => Some(session_finish(st, &arg, body)),
        _ => Some(Response::new(404)),
    }
}

/// A path argument: `""` (the top, where allowed) or `/…` without empty segments.
fn path_arg(arg: &Value, top_ok: bool) -> Result<String, Response> {
    let p = arg.get("path").and_then(Value::as_str).unwrap_or("\u{0}");
    if p.is_empty() && top_ok {
        return Ok(String::new());
    }
    if !p.starts_with('/')
        || p.len() < 2
        || p.ends_with('/')
        || p.contains("//")
        || p.contains('\u{0}')
    {
        return Err(bad_input("malformed path"));
    }
    Ok(p.to_string())
}

fn name_of(display: &str) -> &str {
    display.rsplit('/').next().unwrap_or("")
}

fn parent_of(key: &str) -> &str {
    key.rfind('/').map_or("", |i| &key[..i])
}

fn metadata(node: &Node) -> Value {
    match node {
        Node::Folder { display } => json!({
            ".tag": "folder",
            "name": name_of(display),
            "id": format!("id:{}", crate_id(display)),
            "path_lower": display.to_lowercase(),
            "path_display": display,
        }),
        Node::File {
            display,
            data,
            rev,
            modified,
        } => json!({
            ".tag": "file",
            "name": name_of(display),
            "id": format!("id:{}", crate_id(display)),
            "path_lower": display.to_lowercase(),
            "path_display": display,
            "rev": rev,
            "size": data.len(),
            "client_modified": format_time(*modified),
            "server_modified": format_time(*modified),
            "content_hash": content_hash(data),
            "is_downloadable": true,
        }),
    }
}

/// A stable id per path (the fake does not model moves).
fn crate_id(display: &str) -> String {
    let d = openssl::sha::sha256(display.to_lowercase().as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The Dropbox content hash ("Content hash" page).
pub fn content_hash(data: &[u8]) -> String {
    let mut cat = Vec::with_capacity(data.len().div_ceil(BLOCK) * 32);
    for block in data.chunks(BLOCK) {
        cat.extend_from_slice(&openssl::sha::sha256(block));
    }
    openssl::sha::sha256(&cat)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `%Y-%m-%dT%H:%M:%SZ` ("Date format" in the reference's data types).
fn format_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn get_metadata(st: &mut State, arg: &Value) -> Response {
    let p = match path_arg(arg, false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match st.nodes.get(&p.to_lowercase()) {
        Some(n) => Response::json(200, &metadata(n)),
        None => e409(&["path", "not_found"], json!({})),
    }
}

fn list_folder(st: &mut State, arg: &Value) -> Response {
    let key = match folder_arg(st, arg) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let entries: Vec<Value> = st
        .nodes
        .iter()
        .filter(|(k, _)| parent_of(k) == key)
        .map(|(_, n)| metadata(n))
        .collect();
    let seq = st.seq;
    page(
        st,
        Cursor {
            folder: key,
            rest: entries,
            seq,
        },
    )
}

/// The folder of a `path` argument (lower-cased), or the error to answer.
fn folder_arg(st: &State, arg: &Value) -> Result<String, Response> {
    let key = path_arg(arg, true)?.to_lowercase();
    match st.nodes.get(&key) {
        Some(Node::File { .. }) => Err(e409(&["path", "not_folder"], json!({}))),
        None if !key.is_empty() => Err(e409(&["path", "not_found"], json!({}))),
        _ => Ok(key),
    }
}

/// `files/list_folder/get_latest_cursor`: a cursor that sees only later changes.
fn latest_cursor(st: &mut State, arg: &Value) -> Response {
    let key = match folder_arg(st, arg) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let c = Cursor {
        folder: key,
        rest: Vec::new(),
        seq: st.seq,
    };
    let id = store_cursor(st, c);
    Response::json(200, &json!({ "cursor": id }))
}

fn store_cursor(st: &mut State, c: Cursor) -> String {
    st.next += 1;
    let id = format!("cursor-{:x}-{}", st.salt, st.next);
    st.cursors.insert(id.clone(), c);
    id
}

fn page(st: &mut State, mut c: Cursor) -> Response {
    let more = c.rest.split_off(c.rest.len().min(st.page_size));
    let entries = std::mem::replace(&mut c.rest, more);
    let has_more = !c.rest.is_empty();
    let id = store_cursor(st, c);
    Response::json(
        200,
        &json!({ "entries": entries, "cursor": id, "has_more": has_more }),
    )
}

/// The changes in a cursor's folder after its change number: changed children's
/// metadata, and `deleted` entries for removed ones (files/list_folder/continue).
fn changes_since(st: &State, c: &Cursor) -> Vec<Value> {
    let mut out: Vec<Value> = st
        .tombstones
        .iter()
        .filter(|(seq, key)| *seq > c.seq && parent_of(&key.to_lowercase()) == c.folder)
        .filter(|(_, key)| !st.nodes.contains_key(&key.to_lowercase()))
        .map(|(_, display)| {
            json!({
                ".tag": "deleted",
                "name": name_of(display),
                "path_lower": display.to_lowercase(),
                "path_display": display,
            })
        })
        .collect();
    out.extend(
        st.nodes
            .iter()
            .filter(|(k, _)| parent_of(k) == c.folder)
            .filter(|(k, _)| st.changed_at.get(*k).is_some_and(|s| *s > c.seq))
            .map(|(_, n)| metadata(n)),
    );
    out
}

fn list_continue(st: &mut State, arg: &Value) -> Response {
    let cursor = arg.get("cursor").and_then(Value::as_str).unwrap_or("");
    let Some(mut c) = st.cursors.get(cursor).cloned() else {
        return e409(&["reset"], json!({}));
    };
    if c.rest.is_empty() {
        c.rest = changes_since(st, &c);
        c.seq = st.seq;
    }
    page(st, c)
}

/// Records a change of `key` (display path `display`); `removed` for deletions.
fn touch(st: &mut State, display: &str, removed: bool) {
    st.seq += 1;
    let key = display.to_lowercase();
    if removed {
        st.changed_at.remove(&key);
        st.tombstones.push((st.seq, display.to_string()));
    } else {
        st.changed_at.insert(key, st.seq);
    }
}

/// `files/list_folder/longpoll` (on notify.dropboxapi.com): whether the cursor's
/// folder has changes, waiting up to `timeout` seconds (30 to 480, default 30; the
/// reference adds up to 90 s of jitter, the fake none). "This endpoint does not
/// require an Authorization header": the fake refuses one (stricter: a token sent
/// there goes to a host that does not need it).
async fn longpoll(state: &Mutex<State>, req: &http::Request, body: &[u8]) -> Response {
    if req.header("authorization").is_some() {
        return bad_input("list_folder/longpoll takes no Authorization header");
    }
    let Ok(arg) = serde_json::from_slice::<Value>(body) else {
        return bad_input("the body is not JSON");
    };
    let cursor = arg
        .get("cursor")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let timeout = arg.get("timeout").and_then(Value::as_u64).unwrap_or(30);
    if !(30..=480).contains(&timeout) {
        return bad_input("timeout must be 30 to 480");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
    {
        let mut st = lock(state);
        st.stats.requests += 1;
        st.stats.longpolls += 1;
        if st.not_before.is_some_and(|t| std::time::Instant::now() < t) {
            st.stats.longpolls_too_early += 1;
        }
    }
    loop {
        {
            let mut st = lock(state);
            let Some(c) = st.cursors.get(&cursor).cloned() else {
                return e409(&["reset"], json!({}));
            };
            let changes = !c.rest.is_empty() || !changes_since(&st, &c).is_empty();
            if changes || std::time::Instant::now() >= deadline {
                let mut v = json!({ "changes": changes });
                if let Some(b) = st.longpoll_backoff {
                    v["backoff"] = json!(b);
                    let t = std::time::Instant::now() + std::time::Duration::from_secs(b);
                    st.not_before = Some(t);
                }
                return Response::json(200, &v);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn delete(st: &mut State, arg: &Value) -> Response {
    let p = match path_arg(arg, false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let key = p.to_lowercase();
    let Some(node) = st.nodes.get(&key).cloned() else {
        return e409(&["path_lookup", "not_found"], json!({}));
    };
    if let Some(want) = arg.get("parent_rev").and_then(Value::as_str) {
        match &node {
            Node::Folder { .. } => return bad_input("parent_rev does not support folders"),
            Node::File { rev, .. } if rev != want && !st.ignore_rev => {
                st.stats.conflicts += 1;
                return e409(&["path_write", "conflict", "file"], json!({}));
            }
            Node::File { .. } => {}
        }
    }
    let prefix = format!("{key}/");
    let gone: Vec<String> = st
        .nodes
        .iter()
        .filter(|(k, _)| *k == &key || k.starts_with(&prefix))
        .map(|(_, n)| match n {
            Node::Folder { display } | Node::File { display, .. } => display.clone(),
        })
        .collect();
    st.nodes.retain(|k, _| k != &key && !k.starts_with(&prefix));
    for d in gone {
        touch(st, &d, true);
    }
    Response::json(200, &json!({ "metadata": metadata(&node) }))
}

/// Creates the folders above `key` (display `display`); `Err` if one is a file.
fn ensure_parents(st: &mut State, display: &str) -> Result<(), Response> {
    let mut at = 0;
    while let Some(i) = display[at + 1..].find('/') {
        let end = at + 1 + i;
        let d = &display[..end];
        match st.nodes.get(&d.to_lowercase()) {
            Some(Node::File { .. }) => {
                return Err(e409(&["path", "conflict", "file_ancestor"], json!({})))
            }
            Some(Node::Folder { .. }) => {}
            None => {
                st.nodes.insert(
                    d.to_lowercase(),
                    Node::Folder {
                        display: d.to_string(),
                    },
                );
                touch(st, d, false);
            }
        }
        at = end;
    }
    Ok(())
}

fn create_folder(st: &mut State, arg: &Value) -> Response {
    let p = match path_arg(arg, false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match st.nodes.get(&p.to_lowercase()) {
        Some(Node::Folder { .. }) => return e409(&["path", "conflict", "folder"], json!({})),
        Some(Node::File { .. }) => return e409(&["path", "conflict", "file"], json!({})),
        None => {}
    }
    if let Err(r) = ensure_parents(st, &p) {
        return r;
    }
    let node = Node::Folder { display: p.clone() };
    let meta = metadata(&node);
    st.nodes.insert(p.to_lowercase(), node);
    touch(st, &p, false);
    Response::json(200, &json!({ "metadata": meta }))
}

fn download(st: &mut State, arg: &Value) -> Response {
    let p = match path_arg(arg, false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match st.nodes.get(&p.to_lowercase()) {
        None => e409(&["path", "not_found"], json!({})),
        Some(Node::Folder { .. }) => e409(&["path", "not_file"], json!({})),
        Some(n @ Node::File { data, .. }) => {
            let meta = header_safe(&metadata(n));
            let mut r = Response::new(200)
                .header("Content-Type", "application/octet-stream")
                .header("Dropbox-API-Result", meta);
            let mut bytes = data.as_ref().clone();
            if st.corrupt_downloads {
                if let Some(b) = bytes.first_mut() {
                    *b ^= 0xff;
                }
            }
            r.body = RespBody::Bytes(bytes);
            r
        }
    }
}

/// JSON with every non-ASCII character escaped, for a header.
fn header_safe(v: &Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

fn upload(st: &mut State, arg: &Value, body: Vec<u8>) -> Response {
    if let Some(h) = arg.get("content_hash").and_then(Value::as_str) {
        if h != content_hash(&body) {
            return e409(&["content_hash_mismatch"], json!({}));
        }
    }
    match commit(st, arg, body) {
        Ok(meta) => {
            st.stats.uploads += 1;
            Response::json(200, &meta)
        }
        Err(r) => r,
    }
}

/// A write mode (files/upload, `WriteMode`).
enum Mode {
    Add,
    Overwrite,
    Update(String),
}

fn mode_arg(arg: &Value) -> Result<Mode, Response> {
    let m = arg.get("mode").cloned().unwrap_or(json!({".tag": "add"}));
    // The short form: a bare tag string.
    let tag = m
        .as_str()
        .or_else(|| m.get(".tag").and_then(Value::as_str))
        .unwrap_or("");
    match tag {
        "add" => Ok(Mode::Add),
        "overwrite" => Ok(Mode::Overwrite),
        "update" => {
            let rev = m.get("update").and_then(Value::as_str).unwrap_or("");
            let ok = rev.len() >= 9
                && rev
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
            if ok {
                Ok(Mode::Update(rev.to_string()))
            } else {
                Err(bad_input(
                    "mode.update: a rev is [0-9a-f]+, at least 9 long",
                ))
            }
        }
        _ => Err(bad_input("unknown write mode")),
    }
}

/// Whether writing `data` with `mode` over `existing` conflicts, and whether it is
/// the identical-contents no-op (see the module docs for the rules and sources).
fn decide(st: &State, existing: Option<&Node>, mode: &Mode, strict: bool, data: &[u8]) -> Decision {
    let Some(node) = existing else {
        return match mode {
            Mode::Update(_) if strict && !st.ignore_rev => Decision::Conflict,
            _ => Decision::Write,
        };
    };
    let Node::File { data: cur, rev, .. } = node else {
        return Decision::Conflict; // a folder is always a conflict
    };
    let rev_ok = |want: &str| st.ignore_rev || want == rev;
    if cur.as_slice() == data {
        let forced = strict
            && match mode {
                Mode::Update(want) => !rev_ok(want),
                Mode::Add => true, // stricter reading: see the module docs
                Mode::Overwrite => false,
            };
        return if forced {
            Decision::Conflict
        } else {
            Decision::Same
        };
    }
    match mode {
        Mode::Overwrite => Decision::Write,
        Mode::Add => Decision::Conflict,
        Mode::Update(want) if rev_ok(want) => Decision::Write,
        Mode::Update(_) => Decision::Conflict,
    }
}

enum Decision {
    Write,
    Same,
    Conflict,
}

/// Stores `data` by the commit info `arg` (path, mode, autorename, strict_conflict).
fn commit(st: &mut State, arg: &Value, data: Vec<u8>) -> Result<Value, Response> {
    let path = path_arg(arg, false)?;
    let mode = mode_arg(arg)?;
    let autorename = arg.get("autorename").and_then(Value::as_bool) == Some(true);
    let strict = arg.get("strict_conflict").and_then(Value::as_bool) == Some(true);
    if autorename {
        st.stats.autorename_requested += 1;
    }
    let key = path.to_lowercase();
    let decision = decide(st, st.nodes.get(&key), &mode, strict, &data);
    let target = match decision {
        Decision::Same => {
            st.stats.identical_noops += 1;
            let node = st.nodes.get(&key).ok_or_else(|| Response::new(500))?;
            return Ok(strip_tag(metadata(node)));
        }
        Decision::Write => path,
        Decision::Conflict if autorename => {
            st.stats.autorenamed += 1;
            renamed(st, &path, matches!(mode, Mode::Update(_)))
        }
        Decision::Conflict => {
            st.stats.conflicts += 1;
            let what = match st.nodes.get(&key) {
                Some(Node::Folder { .. }) => "folder",
                _ => "file",
            };
            return Err(e409(&["path", "conflict", what], json!({})));
        }
    };
    ensure_parents(st, &target)?;
    // Keep the stored case of an existing file (Dropbox is case-preserving).
    let display = match st.nodes.get(&target.to_lowercase()) {
        Some(Node::File { display, .. }) => display.clone(),
        _ => target.clone(),
    };
    st.next += 1;
    let rev = format!("{:08x}{:08x}", st.salt, st.next);
    let node = Node::File {
        display,
        data: Arc::new(data),
        rev,
        modified: SystemTime::now(),
    };
    let meta = strip_tag(metadata(&node));
    st.nodes.insert(target.to_lowercase(), node);
    touch(st, &target, false);
    Ok(meta)
}

/// Upload answers are a `FileMetadata` struct, not the `Metadata` union: no `.tag`.
fn strip_tag(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove(".tag");
    }
    v
}

/// The autorename target: `name (conflicted copy).ext` for `update`, else
/// `name (n).ext` for the first free `n` (files/upload, `WriteMode`).
fn renamed(st: &State, path: &str, update: bool) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    if update {
        return format!("{dir}/{stem} (conflicted copy){ext}");
    }
    (1..)
        .map(|n| format!("{dir}/{stem} ({n}){ext}"))
        .find(|p| !st.nodes.contains_key(&p.to_lowercase()))
        .unwrap_or_default()
}

fn session_start(st: &mut State, body: Vec<u8>) -> Response {
    st.next += 1;
    let id = format!("session-{:x}-{}", st.salt, st.next);
    st.sessions.insert(id.clone(), Session { data: body });
    st.stats.sessions_started += 1;
    Response::json(200, &json!({ "session_id": id }))
}

/// The session of a cursor, or the error to answer.
fn cursor_of(arg: &Value) -> Option<(String, u64)> {
    let c = arg.get("cursor")?;
    Some((
        c.get("session_id")?.as_str()?.to_string(),
        c.get("offset")?.as_u64()?,
    ))
}

fn session_append(st: &mut State, arg: &Value, body: Vec<u8>) -> Option<Response> {
    let Some((id, offset)) = cursor_of(arg) else {
        return Some(bad_input("cursor"));
    };
    let Some(s) = st.sessions.get_mut(&id) else {
        return Some(e409(&["not_found"], json!({})));
    };
    let held = s.data.len() as u64;
    if offset != held {
        st.stats.incorrect_offsets += 1;
        return Some(e409(
            &["incorrect_offset"],
            json!({ "correct_offset": held }),
        ));
    }
    s.data.extend_from_slice(&body);
    st.stats.appends += 1;
    if std::mem::take(&mut st.drop_next_append_answer) {
        return None;
    }
    Some(Response::json(200, &Value::Null))
}

fn session_finish(st: &mut State, arg: &Value, body: Vec<u8>) -> Response {
    let Some((id, offset)) = cursor_of(arg) else {
        return bad_input("cursor");
    };
    let Some(s) = st.sessions.get(&id) else {
        return e409(&["lookup_failed", "not_found"], json!({}));
    };
    let held = s.data.len() as u64;
    if offset != held {
        st.stats.incorrect_offsets += 1;
        return e409(
            &["lookup_failed", "incorrect_offset"],
            json!({ "correct_offset": held }),
        );
    }
    let mut data = st.sessions.remove(&id).map(|s| s.data).unwrap_or_default();
    data.extend_from_slice(&body);
    if let Some(h) = arg.get("content_hash").and_then(Value::as_str) {
        if h != content_hash(&data) {
            return e409(&["content_hash_mismatch"], json!({}));
        }
    }
    let commit_arg = arg.get("commit").cloned().unwrap_or_default();
    match commit(st, &commit_arg, data) {
        Ok(meta) => {
            st.stats.sessions_finished += 1;
            Response::json(200, &meta)
        }
        Err(r) => r,
    }
}
