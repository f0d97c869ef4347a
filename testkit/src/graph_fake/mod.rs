//! A Microsoft Graph fake for the OneDrive/SharePoint provider's tests: an HTTP server
//! on 127.0.0.1 that keeps drives, folders and files (contents on disk, in a private
//! temporary folder) and answers the driveItem API the way the Microsoft Graph
//! reference describes it. Each behaviour cites the page it comes from; where the
//! reference is silent the fake picks the *stricter* reading, so a client that passes
//! here does not depend on leniency, and says so in a comment.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use syncfabric_testkit::graph_fake::{GraphFake, FakeConfig, ThrottlePlan};
//! let fake = GraphFake::start(FakeConfig::default()).await?;
//! let graph_url = fake.url();        // "http://127.0.0.1:<port>/v1.0"
//! let token = fake.token();          // the bearer token it accepts
//! fake.set_throttle(ThrottlePlan::rate(0.1, 42)); // 10 % of requests throttled
//! # let _ = (graph_url, token);
//! println!("{:?}", fake.stats());
//! # Ok(()) }
//! ```
//!
//! What it implements (pages under `https://learn.microsoft.com/en-us/graph/api/`):
//!
//! * drives: `/me/drive`, `/drives/{id}`, the app folder `/me/drive/special/approot`
//!   (created on first use), SharePoint sites by path and their document libraries;
//! * items by path (`root:/a/b:`), by id (`items/{id}`), children with paging, content
//!   download through a pre-authenticated redirect, simple upload up to 4 MiB with
//!   `If-Match` and `@microsoft.graph.conflictBehavior`, folder creation, delete with
//!   `If-Match`, upload sessions with 320 KiB fragment rules, ranges and
//!   `nextExpectedRanges`, `delta` with tokens;
//! * `eTag` (changes on every change of the item) and `cTag` (changes on content
//!   changes), names compared case-insensitively, the naming rules of OneDrive;
//! * a bearer token it checks (and can rotate), throttling (429/503 with and without
//!   `Retry-After`) at a configurable rate, late visibility of writes in listings and
//!   delta (a configurable lag), and faults: a connection cut inside an upload
//!   fragment, an upload session that expires, delta tokens that expire.

pub(crate) mod http;

use http::{pct_decode, BodyReader, Request, RespBody, Response};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// 320 KiB: upload-session fragments other than the last must be a multiple of it.
/// "If your app splits a file into multiple byte ranges, the size of each byte range
/// MUST be a multiple of 320 KiB (327,680 bytes)." — driveitem-createuploadsession.
pub const FRAGMENT_UNIT: u64 = 327_680;
/// "The maximum bytes in any given request is less than 60 MiB."
/// — driveitem-createuploadsession ("Upload bytes to the upload session").
pub const MAX_FRAGMENT: u64 = 60 * 1024 * 1024;
/// The simple upload limit the project builds for (driveitem-put-content: "only
/// supports files up to 4 MB"; later revisions of the page say 250 MB: the fake keeps
/// the stricter, older limit and answers 413 above it).
pub const SIMPLE_UPLOAD_MAX: u64 = 4 * 1024 * 1024;

/// Throttling to inject, per request, from a seeded generator.
#[derive(Clone, Debug)]
pub struct ThrottlePlan {
    /// The share of requests (0.0..=1.0) answered 429 or 503 instead of served.
    pub rate: f64,
    /// Of those, the share answered 503 (the rest 429).
    pub share_503: f64,
    /// Of those, the share that carries `Retry-After` (the rest carry none: "the
    /// Retry-After header might not be present in all cases", graph/throttling).
    pub with_retry_after: f64,
    /// The `Retry-After` value in seconds.
    pub retry_after_secs: u64,
    /// The seed of the schedule.
    pub seed: u64,
}

impl ThrottlePlan {
    /// No throttling.
    pub fn none() -> Self {
        ThrottlePlan {
            rate: 0.0,
            share_503: 0.0,
            with_retry_after: 0.0,
            retry_after_secs: 1,
            seed: 0,
        }
    }

    /// `rate` of requests throttled: one in four of them 503, half of them with
    /// `Retry-After: 1`, half without.
    pub fn rate(rate: f64, seed: u64) -> Self {
        ThrottlePlan {
            rate,
            share_503: 0.25,
            with_retry_after: 0.5,
            retry_after_secs: 1,
            seed,
        }
    }
}

/// How the fake starts.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// The bearer token it accepts at first.
    pub token: String,
    /// Throttling from the start.
    pub throttle: ThrottlePlan,
    /// How late a write shows in children listings and in `delta`.
    pub lag: Duration,
    /// Children per page when the client does not ask (`$top`).
    pub page_size: usize,
    /// Whether an upload session created with `If-Match` checks the tag again when
    /// the last fragment commits the file. The createUploadSession page documents the
    /// check only for the request that creates the session, so the default is `false`
    /// (the client must not rely on a check at commit time).
    pub if_match_at_commit: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            token: format!("fake-graph-token-{:016x}", fastrand::u64(..)),
            throttle: ThrottlePlan::none(),
            lag: Duration::ZERO,
            page_size: 200,
            if_match_at_commit: false,
        }
    }
}

/// One accepted upload-session fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The session it belongs to.
    pub session: String,
    /// First byte.
    pub start: u64,
    /// Its length.
    pub len: u64,
    /// The file's total size.
    pub total: u64,
}

/// What the fake saw, for tests.
#[derive(Clone, Debug, Default)]
pub struct FakeStats {
    /// Every request that reached the fake.
    pub requests: u64,
    /// Requests answered 401 (no, wrong or rotated token; or a token sent to an upload URL).
    pub unauthorized: u64,
    /// 429 answers with `Retry-After`.
    pub throttled_429_with_retry_after: u64,
    /// 429 answers without `Retry-After`.
    pub throttled_429_without: u64,
    /// 503 answers with `Retry-After`.
    pub throttled_503_with_retry_after: u64,
    /// 503 answers without `Retry-After`.
    pub throttled_503_without: u64,
    /// Simple uploads (PUT content) that stored a file.
    pub simple_uploads: u64,
    /// Upload sessions created.
    pub sessions_created: u64,
    /// Upload sessions that committed a file.
    pub sessions_committed: u64,
    /// Upload sessions cancelled by the client (DELETE uploadUrl).
    pub sessions_cancelled: u64,
    /// Accepted fragments, in order.
    pub fragments: Vec<Fragment>,
    /// Fragments refused for their size (not a multiple of 320 KiB, too large, or not
    /// matching `Content-Length`).
    pub bad_fragment_sizes: u64,
    /// Fragments refused with 416 (not the next expected byte).
    pub out_of_order: u64,
    /// Fragment uploads the fake cut on purpose.
    pub cut_fragments: u64,
    /// The most request-body bytes the fake held in memory at once.
    pub max_body_in_memory: u64,
    /// 412 answers.
    pub precondition_failed: u64,
    /// 409 answers.
    pub conflicts: u64,
}

#[derive(Clone, Debug)]
struct Snap {
    parent: Option<String>,
    name: String,
    folder: bool,
    size: u64,
    etag: String,
    ctag: String,
    modified: SystemTime,
}

#[derive(Debug)]
struct Item {
    id: String,
    drive: String,
    parent: Option<String>,
    name: String,
    folder: bool,
    blob: Option<PathBuf>,
    size: u64,
    version: u64,
    cversion: u64,
    created: SystemTime,
    modified: SystemTime,
    deleted: bool,
    /// (when, state from then on) — `None` = deleted. Listings and delta read the
    /// state as of `now - lag`.
    history: Vec<(Instant, Option<Snap>)>,
}

impl Item {
    fn etag(&self) -> String {
        format!("\"{{{}}},{}\"", self.id, self.version)
    }
    fn ctag(&self) -> String {
        format!("\"c:{{{}}},{}\"", self.id, self.cversion)
    }
    fn snap(&self) -> Snap {
        Snap {
            parent: self.parent.clone(),
            name: self.name.clone(),
            folder: self.folder,
            size: self.size,
            etag: self.etag(),
            ctag: self.ctag(),
            modified: self.modified,
        }
    }
    fn visible(&self, at: Instant) -> Option<Snap> {
        self.history
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .and_then(|(_, s)| s.clone())
    }
    /// "eTag (or cTag)" — both are accepted by If-Match (driveitem-createuploadsession,
    /// driveitem-delete: "If this request header is included and the eTag (or cTag)
    /// provided does not match the current tag on the item, a 412 Precondition Failed
    /// response is returned").
    fn tag_matches(&self, tag: &str) -> bool {
        let t = tag.trim();
        t == "*" || t == self.etag() || t == self.ctag()
    }
}

#[derive(Debug)]
struct Drive {
    root: String,
    approot: Option<String>,
}

#[derive(Debug)]
struct Site {
    id: String,
    host: String,
    /// Server-relative path, e.g. `sites/Team` (empty for the root site).
    path: String,
    libraries: Vec<(String, String)>,
}

#[derive(Debug)]
enum SessTarget {
    Existing(String),
    New { parent: String, name: String },
}

#[derive(Debug)]
struct Session {
    drive: String,
    target: SessTarget,
    fail_on_conflict: bool,
    if_match: Option<String>,
    total: Option<u64>,
    received: u64,
    file: PathBuf,
    busy: bool,
    expires: SystemTime,
}

#[derive(Debug, Default)]
struct Faults {
    cut_fragments: u32,
    expire_sessions: u32,
    /// (fragments to let through first, drive, path, content): another client's write
    /// that lands while an upload session is under way.
    interleave: Option<(u32, String, String, Vec<u8>)>,
    /// A hostile server: every session status names this offset, whatever was
    /// received (tests that the client checks the server's word).
    lie_next_range: Option<u64>,
}

struct State {
    drives: HashMap<String, Drive>,
    items: HashMap<String, Item>,
    sessions: HashMap<String, Session>,
    /// (seq, when, item id)
    changes: Vec<(u64, Instant, String)>,
    seq: u64,
    delta_epoch: u64,
    next_id: u64,
    tokens: HashSet<String>,
    throttle: ThrottlePlan,
    rng: fastrand::Rng,
    lag: Duration,
    page_size: usize,
    if_match_at_commit: bool,
    faults: Faults,
    stats: FakeStats,
    sites: Vec<Site>,
    /// Pre-authenticated download names → blob file.
    downloads: HashMap<String, (PathBuf, u64)>,
}

struct Shared {
    state: Mutex<State>,
    dir: PathBuf,
    origin: String,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn new_blob_path(&self) -> PathBuf {
        self.dir.join(format!(
            "blob-{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        ))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The personal drive's id.
pub const ME_DRIVE: &str = "me-drive-0001";
/// The SharePoint host of the built-in site.
pub const SP_HOST: &str = "contoso.sharepoint.com";
/// The built-in site's path.
pub const SP_SITE_PATH: &str = "sites/Team";
/// The built-in site's document library name.
pub const SP_LIBRARY: &str = "Documents";
/// That library's drive id.
pub const SP_DRIVE: &str = "sp-drive-team-docs";

/// A running Graph fake. Dropping it stops the server and removes its files.
pub struct GraphFake {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for GraphFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphFake")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for GraphFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GraphFake {
    /// Starts the fake on a free port of 127.0.0.1.
    pub async fn start(cfg: FakeConfig) -> std::io::Result<GraphFake> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let dir = std::env::temp_dir().join(format!(
            "syncfabric-graph-fake-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut st = State {
            drives: HashMap::new(),
            items: HashMap::new(),
            sessions: HashMap::new(),
            changes: Vec::new(),
            seq: 0,
            delta_epoch: 1,
            next_id: 1,
            tokens: [cfg.token.clone()].into_iter().collect(),
            rng: fastrand::Rng::with_seed(cfg.throttle.seed),
            throttle: cfg.throttle,
            lag: cfg.lag,
            page_size: cfg.page_size.max(1),
            if_match_at_commit: cfg.if_match_at_commit,
            faults: Faults::default(),
            stats: FakeStats::default(),
            sites: Vec::new(),
            downloads: HashMap::new(),
        };
        st.add_drive(ME_DRIVE);
        st.add_drive(SP_DRIVE);
        st.sites.push(Site {
            id: format!("{SP_HOST},site-team"),
            host: SP_HOST.into(),
            path: SP_SITE_PATH.into(),
            libraries: vec![(SP_LIBRARY.into(), SP_DRIVE.into())],
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            dir,
            origin: format!("http://{addr}"),
        });
        let s2 = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let s = s2.clone();
                tokio::spawn(async move {
                    let _ = serve_conn(s, sock).await;
                });
            }
        });
        Ok(GraphFake { shared, addr, task })
    }

    /// The Graph base URL to give the provider: `http://127.0.0.1:<port>/v1.0`.
    pub fn url(&self) -> String {
        format!("{}/v1.0", self.shared.origin)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A token the fake accepts now.
    pub fn token(&self) -> String {
        self.shared
            .lock()
            .tokens
            .iter()
            .next()
            .cloned()
            .unwrap_or_default()
    }

    /// Revokes every token and accepts only `new` from now on (an expired access token).
    pub fn rotate_token(&self, new: &str) {
        let mut st = self.shared.lock();
        st.tokens.clear();
        st.tokens.insert(new.to_string());
    }

    /// Changes the throttling plan (and reseeds its schedule).
    pub fn set_throttle(&self, plan: ThrottlePlan) {
        let mut st = self.shared.lock();
        st.rng = fastrand::Rng::with_seed(plan.seed);
        st.throttle = plan;
    }

    /// Changes the visibility lag of listings and delta.
    pub fn set_lag(&self, lag: Duration) {
        self.shared.lock().lag = lag;
    }

    /// Cuts the connection in the middle of the next `n` fragment uploads (the fake
    /// reads half of the fragment, keeps none of it, and closes without answering).
    pub fn cut_next_fragments(&self, n: u32) {
        self.shared.lock().faults.cut_fragments = n;
    }

    /// Hostile, not Graph's behaviour: from now on every upload-session status (the
    /// `202` to a fragment and `GET` of the session) answers
    /// `nextExpectedRanges: ["<offset>-"]`, whatever the session received.
    pub fn lie_in_session_status(&self, offset: u64) {
        self.shared.lock().faults.lie_next_range = Some(offset);
    }

    /// The next `n` fragment uploads find their session expired (404, session gone).
    pub fn expire_next_sessions(&self, n: u32) {
        self.shared.lock().faults.expire_sessions = n;
    }

    /// Invalidates every delta token handed out so far (the next use answers 410).
    pub fn expire_delta_tokens(&self) {
        self.shared.lock().delta_epoch += 1;
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FakeStats {
        self.shared.lock().stats.clone()
    }

    /// Clears the counters.
    pub fn reset_stats(&self) {
        self.shared.lock().stats = FakeStats::default();
    }

    /// The content of the file at `path` (`/`-separated, relative to the drive root)
    /// of drive `drive` (e.g. [`ME_DRIVE`]), read straight from the fake's store.
    pub fn file_content(&self, drive: &str, path: &str) -> Option<Vec<u8>> {
        let blob = {
            let st = self.shared.lock();
            let root = st.drives.get(drive)?.root.clone();
            let segs: Vec<String> = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let id = st.walk(&root, &segs)?;
            st.items.get(&id)?.blob.clone()?
        };
        std::fs::read(blob).ok()
    }

    /// The current eTag of the item at `path` of `drive`, if any.
    pub fn etag(&self, drive: &str, path: &str) -> Option<String> {
        let st = self.shared.lock();
        let root = st.drives.get(drive)?.root.clone();
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let id = st.walk(&root, &segs)?;
        Some(st.items.get(&id)?.etag())
    }

    /// Writes `content` at `path` of `drive` as another client would (parents
    /// created), bypassing HTTP: for tests that change a file behind the client's back.
    pub fn put_file(&self, drive: &str, path: &str, content: &[u8]) -> std::io::Result<()> {
        self.shared.put_file(drive, path, content)
    }

    /// When the next upload session has received `after_fragments` fragments, another
    /// client writes `content` at `path` of `drive` (before the next fragment is handled).
    pub fn write_during_next_session(
        &self,
        after_fragments: u32,
        drive: &str,
        path: &str,
        content: &[u8],
    ) {
        self.shared.lock().faults.interleave = Some((
            after_fragments,
            drive.to_string(),
            path.to_string(),
            content.to_vec(),
        ));
    }
}

impl Shared {
    fn put_file(&self, drive: &str, path: &str, content: &[u8]) -> std::io::Result<()> {
        let blob = self.new_blob_path();
        std::fs::write(&blob, content)?;
        let mut st = self.lock();
        let Some(root) = st.drives.get(drive).map(|d| d.root.clone()) else {
            return Err(std::io::Error::other("no such drive"));
        };
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let Some((name, dirs)) = segs.split_last() else {
            return Err(std::io::Error::other("empty path"));
        };
        let mut parent = root;
        for d in dirs {
            parent = match st.child(&parent, d) {
                Some(id) => id,
                None => st.new_item(drive, &parent, d, true, None, 0),
            };
        }
        match st.child(&parent, name) {
            Some(id) => st.replace_content(&id, blob, content.len() as u64),
            None => {
                st.new_item(
                    drive,
                    &parent,
                    name,
                    false,
                    Some(blob),
                    content.len() as u64,
                );
            }
        }
        Ok(())
    }
}

impl State {
    fn add_drive(&mut self, id: &str) {
        let root = self.fresh_id();
        let now = SystemTime::now();
        let mut item = Item {
            id: root.clone(),
            drive: id.to_string(),
            parent: None,
            name: "root".into(),
            folder: true,
            blob: None,
            size: 0,
            version: 1,
            cversion: 1,
            created: now,
            modified: now,
            deleted: false,
            history: Vec::new(),
        };
        // The root exists "forever" (visible whatever the lag).
        item.history.push((
            Instant::now()
                .checked_sub(Duration::from_secs(3600))
                .unwrap_or_else(Instant::now),
            Some(item.snap()),
        ));
        self.items.insert(root.clone(), item);
        self.drives.insert(
            id.to_string(),
            Drive {
                root,
                approot: None,
            },
        );
    }

    fn fresh_id(&mut self) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("01FAKE{n:010}")
    }

    fn record(&mut self, id: &str) {
        self.seq += 1;
        let now = Instant::now();
        self.changes.push((self.seq, now, id.to_string()));
        if let Some(it) = self.items.get_mut(id) {
            let snap = (!it.deleted).then(|| it.snap());
            it.history.push((now, snap));
            if it.history.len() > 16 {
                it.history.remove(0);
            }
        }
    }

    /// The live child of `parent` named `name` (case-insensitive: "OneDrive is not
    /// case-sensitive" — onedrive/developer/rest-api/concepts/addressing-driveitems).
    fn child(&self, parent: &str, name: &str) -> Option<String> {
        let lname = name.to_lowercase();
        self.items
            .values()
            .find(|i| {
                !i.deleted && i.parent.as_deref() == Some(parent) && i.name.to_lowercase() == lname
            })
            .map(|i| i.id.clone())
    }

    fn walk(&self, from: &str, segs: &[String]) -> Option<String> {
        let mut cur = from.to_string();
        for s in segs {
            let it = self.items.get(&cur)?;
            if !it.folder || it.deleted {
                return None;
            }
            cur = self.child(&cur, s)?;
        }
        let it = self.items.get(&cur)?;
        (!it.deleted).then_some(cur)
    }

    fn new_item(
        &mut self,
        drive: &str,
        parent: &str,
        name: &str,
        folder: bool,
        blob: Option<PathBuf>,
        size: u64,
    ) -> String {
        let id = self.fresh_id();
        let now = SystemTime::now();
        self.items.insert(
            id.clone(),
            Item {
                id: id.clone(),
                drive: drive.to_string(),
                parent: Some(parent.to_string()),
                name: name.to_string(),
                folder,
                blob,
                size,
                version: 1,
                cversion: 1,
                created: now,
                modified: now,
                deleted: false,
                history: Vec::new(),
            },
        );
        self.record(&id);
        self.touch_folder(parent);
        id
    }

    /// A folder's eTag changes when its children change.
    fn touch_folder(&mut self, id: &str) {
        if let Some(f) = self.items.get_mut(id) {
            f.version += 1;
            f.modified = SystemTime::now();
        }
    }

    fn replace_content(&mut self, id: &str, blob: PathBuf, size: u64) {
        if let Some(it) = self.items.get_mut(id) {
            if let Some(old) = it.blob.replace(blob) {
                let _ = std::fs::remove_file(old);
            }
            it.size = size;
            it.version += 1;
            it.cversion += 1;
            it.modified = SystemTime::now();
        }
        self.record(id);
    }

    fn delete_tree(&mut self, id: &str) {
        let kids: Vec<String> = self
            .items
            .values()
            .filter(|i| !i.deleted && i.parent.as_deref() == Some(id))
            .map(|i| i.id.clone())
            .collect();
        for k in kids {
            self.delete_tree(&k);
        }
        let parent = self.items.get(id).and_then(|i| i.parent.clone());
        if let Some(it) = self.items.get_mut(id) {
            it.deleted = true;
            it.version += 1;
            if let Some(b) = it.blob.take() {
                let _ = std::fs::remove_file(b);
            }
        }
        self.record(id);
        if let Some(p) = parent {
            self.touch_folder(&p);
        }
    }

    fn approot(&mut self, drive: &str) -> Option<String> {
        if let Some(a) = self.drives.get(drive)?.approot.clone() {
            if self.items.get(&a).is_some_and(|i| !i.deleted) {
                return Some(a);
            }
        }
        // "If the app folder doesn't exist, it's created on first access":
        // onedrive/developer/rest-api/concepts/special-folders-appfolder — as
        // `/Apps/<application name>`.
        let root = self.drives.get(drive)?.root.clone();
        let apps = match self.child(&root, "Apps") {
            Some(a) => a,
            None => self.new_item(drive, &root, "Apps", true, None, 0),
        };
        let app = match self.child(&apps, "syncfabric-test") {
            Some(a) => a,
            None => self.new_item(drive, &apps, "syncfabric-test", true, None, 0),
        };
        self.drives.get_mut(drive)?.approot = Some(app.clone());
        Some(app)
    }

    fn path_of(&self, id: &str) -> String {
        let mut segs = Vec::new();
        let mut cur = self.items.get(id);
        while let Some(it) = cur {
            match &it.parent {
                Some(p) => {
                    segs.push(it.name.clone());
                    cur = self.items.get(p);
                }
                None => break,
            }
        }
        segs.reverse();
        segs.join("/")
    }

    fn is_under(&self, id: &str, ancestor: &str, at: Instant) -> bool {
        let mut cur = id.to_string();
        for _ in 0..1000 {
            if cur == ancestor {
                return true;
            }
            let Some(it) = self.items.get(&cur) else {
                return false;
            };
            // A deleted item is judged by where it was last seen.
            let parent = it
                .visible(at)
                .and_then(|s| s.parent)
                .or_else(|| it.parent.clone());
            match parent {
                Some(p) => cur = p,
                None => return false,
            }
        }
        false
    }

    fn item_json(&self, id: &str, snap: &Snap) -> Value {
        let Some(it) = self.items.get(id) else {
            return json!({});
        };
        let mut v = json!({
            "id": it.id,
            "name": snap.name,
            "eTag": snap.etag,
            "cTag": snap.ctag,
            "size": snap.size,
            "createdDateTime": rfc3339(it.created),
            "lastModifiedDateTime": rfc3339(snap.modified),
            "parentReference": {
                "driveId": it.drive,
                "driveType": if it.drive == ME_DRIVE { "personal" } else { "documentLibrary" },
                "id": snap.parent,
                "path": snap.parent.as_ref().map(|p| format!("/drive/root:/{}", self.path_of(p))),
            },
        });
        if snap.folder {
            let count = self
                .items
                .values()
                .filter(|c| !c.deleted && c.parent.as_deref() == Some(id))
                .count();
            v["folder"] = json!({ "childCount": count });
        } else {
            v["file"] = json!({ "mimeType": "application/octet-stream" });
        }
        if snap.parent.is_none() {
            v["root"] = json!({});
        }
        v
    }

    fn live_json(&self, id: &str) -> Value {
        match self.items.get(id) {
            Some(it) => self.item_json(id, &it.snap()),
            None => json!({}),
        }
    }
}

/// `{"error": {"code": .., "message": ..}}` — the error resource of
/// https://learn.microsoft.com/en-us/graph/errors (codes from
/// onedrive/developer/rest-api/concepts/errors).
fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({ "error": { "code": code, "message": message, "innerError": { "request-id": format!("{:016x}", fastrand::u64(..)) } } }),
    )
}

/// OneDrive's naming rules (support.microsoft.com, "Restrictions and limitations in
/// OneDrive and SharePoint", invalid characters): none of `" * : < > ? / \ |`, and no
/// leading or trailing spaces.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| "\"*:<>?/\\|".contains(c) || c.is_control())
        && !name.starts_with(' ')
        && !name.ends_with(' ')
}

/// Formats a UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(t: SystemTime) -> String {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

enum Reply {
    Send(Response),
    /// Close the connection without answering.
    Cut,
}

async fn serve_conn(shared: Arc<Shared>, sock: TcpStream) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let mut conn = BufReader::with_capacity(64 * 1024, sock);
    loop {
        let Some(req) = http::read_head(&mut conn).await? else {
            return Ok(());
        };
        let head_only = req.method == "HEAD";
        let mut body = BodyReader::new(&mut conn, req.content_length);
        let reply = handle(&shared, &req, &mut body).await;
        let resp = match reply {
            Reply::Cut => return Ok(()),
            Reply::Send(r) => r,
        };
        // Whatever the handler did not read is drained, so the connection stays usable.
        body.drain().await?;
        http::write_response(&mut conn, resp, head_only).await?;
    }
}

async fn handle(shared: &Shared, req: &Request, body: &mut BodyReader<'_>) -> Reply {
    {
        let mut st = shared.lock();
        st.stats.requests += 1;
    }
    let path = req.path.clone();
    if let Some(name) = path.strip_prefix("/_dl/") {
        return Reply::Send(download(shared, name));
    }
    // Throttling (https://learn.microsoft.com/en-us/graph/throttling): "429 Too Many
    // Requests" (and, for OneDrive, "503 Service Unavailable") with a `Retry-After`
    // header in seconds that "might not be present in all cases" — then the client
    // backs off exponentially.
    if let Some(r) = throttle(shared) {
        return Reply::Send(r);
    }
    if let Some(sid) = path.strip_prefix("/_up/") {
        // "If you include the Authorization header when issuing the PUT call, it may
        // result in an HTTP 401 Unauthorized response. Only send the Authorization
        // header and bearer token when issuing the POST during the first step." —
        // driveitem-createuploadsession. The fake always answers 401.
        if req.header("authorization").is_some() {
            shared.lock().stats.unauthorized += 1;
            return Reply::Send(error(
                401,
                "unauthenticated",
                "the upload URL is pre-authenticated: do not send Authorization",
            ));
        }
        return upload_session_request(shared, sid, req, body).await;
    }
    let Some(api) = path.strip_prefix("/v1.0") else {
        return Reply::Send(error(400, "BadRequest", "unknown API version"));
    };
    // Every Graph call carries `Authorization: Bearer {token}` (graph/auth).
    let ok = {
        let st = shared.lock();
        req.header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| st.tokens.contains(t.trim()))
    };
    if !ok {
        shared.lock().stats.unauthorized += 1;
        return Reply::Send(
            error(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure.",
            )
            .header("WWW-Authenticate", "Bearer realm=\"\""),
        );
    }
    api_request(shared, api, req, body).await
}

fn throttle(shared: &Shared) -> Option<Response> {
    let mut st = shared.lock();
    let plan = st.throttle.clone();
    if plan.rate <= 0.0 || st.rng.f64() >= plan.rate {
        return None;
    }
    let is_503 = st.rng.f64() < plan.share_503;
    let with_ra = st.rng.f64() < plan.with_retry_after;
    match (is_503, with_ra) {
        (false, true) => st.stats.throttled_429_with_retry_after += 1,
        (false, false) => st.stats.throttled_429_without += 1,
        (true, true) => st.stats.throttled_503_with_retry_after += 1,
        (true, false) => st.stats.throttled_503_without += 1,
    }
    let r = if is_503 {
        error(
            503,
            "serviceNotAvailable",
            "The service is temporarily unavailable.",
        )
    } else {
        error(
            429,
            "activityLimitReached",
            "The app or user has been throttled.",
        )
    };
    Some(if with_ra {
        r.header("Retry-After", plan.retry_after_secs.to_string())
    } else {
        r
    })
}

/// Which item a request addresses.
#[derive(Debug)]
enum Base {
    Root,
    AppRoot,
    Id(String),
}

#[derive(Debug)]
struct Addr {
    drive: String,
    base: Base,
    /// Path segments after `base` (decoded).
    rel: Vec<String>,
    /// `children`, `content`, `createUploadSession`, `delta`, or empty.
    action: String,
}

/// Parses the driveItem addressing forms of
/// onedrive/developer/rest-api/concepts/addressing-driveitems:
/// `/me/drive/root`, `/drives/{id}/root`, `/…/items/{id}`, `/me/drive/special/approot`,
/// each optionally followed by `:/relative/path` (with a closing `:` before an action)
/// and by an action (`/children`, `/content`, `/createUploadSession`, `/delta`).
fn parse_addr(api: &str) -> Option<Addr> {
    let (head, tail) = match api.find(':') {
        Some(i) => (&api[..i], Some(&api[i + 1..])),
        None => (api, None),
    };
    let segs: Vec<&str> = head.split('/').filter(|s| !s.is_empty()).collect();
    let (drive, rest) = match segs.as_slice() {
        ["me", "drive", rest @ ..] => (ME_DRIVE.to_string(), rest),
        ["drives", id, rest @ ..] => (pct_decode(id)?, rest),
        _ => return None,
    };
    let (base, mut action) = match rest {
        ["root", a @ ..] => (Base::Root, a.join("/")),
        ["special", "approot", a @ ..] => (Base::AppRoot, a.join("/")),
        ["items", id, a @ ..] => (Base::Id(pct_decode(id)?), a.join("/")),
        _ => return None,
    };
    let mut rel = Vec::new();
    if let Some(tail) = tail {
        if !action.is_empty() {
            return None;
        }
        let (p, a) = match tail.find(':') {
            Some(i) => (&tail[..i], tail[i + 1..].trim_start_matches('/')),
            None => (tail, ""),
        };
        for s in p.split('/').filter(|s| !s.is_empty()) {
            rel.push(pct_decode(s)?);
        }
        action = a.to_string();
    }
    Some(Addr {
        drive,
        base,
        rel,
        action,
    })
}

fn base_id(st: &mut State, a: &Addr) -> Option<String> {
    match &a.base {
        Base::Root => st.drives.get(&a.drive).map(|d| d.root.clone()),
        Base::AppRoot => st.approot(&a.drive),
        Base::Id(id) => st
            .items
            .get(id)
            .filter(|i| !i.deleted && i.drive == a.drive)
            .map(|i| i.id.clone()),
    }
}

fn not_found() -> Response {
    error(404, "itemNotFound", "The resource could not be found.")
}

async fn api_request(
    shared: &Shared,
    api: &str,
    req: &Request,
    body: &mut BodyReader<'_>,
) -> Reply {
    if let Some(r) = sites_request(shared, api, req) {
        return Reply::Send(r);
    }
    let Some(addr) = parse_addr(api) else {
        return Reply::Send(error(400, "invalidRequest", "unsupported address"));
    };
    let m = req.method.as_str();
    match (m, addr.action.as_str()) {
        ("GET", "") => Reply::Send(get_item(shared, &addr)),
        ("GET", "children") => Reply::Send(list_children(shared, &addr, req, api)),
        ("GET", "content") => Reply::Send(get_content(shared, &addr)),
        ("GET", "delta") => Reply::Send(delta(shared, &addr, req, api)),
        ("PUT", "content") => simple_upload(shared, &addr, req, body).await,
        ("POST", "children") => Reply::Send(create_folder(shared, &addr, body).await),
        ("POST", "createUploadSession") => {
            Reply::Send(create_session(shared, &addr, req, body).await)
        }
        ("DELETE", "") => Reply::Send(delete_item(shared, &addr, req)),
        _ => Reply::Send(error(400, "invalidRequest", "unsupported method or action")),
    }
}

/// `GET /sites/{hostname}:/{server-relative-path}` (site-getbypath), `GET
/// /sites/{hostname}` (the root site, site-get) and `GET /sites/{site-id}/drives`
/// (drive-list: the site's document libraries).
fn sites_request(shared: &Shared, api: &str, req: &Request) -> Option<Response> {
    let rest = api.strip_prefix("/sites/")?;
    if req.method != "GET" {
        return Some(error(400, "invalidRequest", "sites are read-only here"));
    }
    let st = shared.lock();
    if let Some(site_id) = rest.strip_suffix("/drives") {
        let site_id = pct_decode(site_id)?;
        let site = st.sites.iter().find(|s| s.id == site_id);
        return Some(match site {
            Some(s) => Response::json(
                200,
                &json!({ "value": s.libraries.iter().map(|(name, id)| json!({
                    "id": id, "name": name, "driveType": "documentLibrary"
                })).collect::<Vec<_>>() }),
            ),
            None => not_found(),
        });
    }
    let (host, path) = match rest.split_once(':') {
        Some((h, p)) => (h, p.trim_matches('/')),
        None => (rest.trim_end_matches('/'), ""),
    };
    let path = pct_decode(path)?;
    let site = st
        .sites
        .iter()
        .find(|s| s.host.eq_ignore_ascii_case(host) && s.path.eq_ignore_ascii_case(&path));
    Some(match site {
        Some(s) => Response::json(
            200,
            &json!({ "id": s.id, "displayName": s.path, "webUrl": format!("https://{}/{}", s.host, s.path) }),
        ),
        None => not_found(),
    })
}

/// driveitem-get: `200` with the driveItem, `404 itemNotFound` when nothing is there.
fn get_item(shared: &Shared, a: &Addr) -> Response {
    let mut st = shared.lock();
    let Some(base) = base_id(&mut st, a) else {
        return not_found();
    };
    match st.walk(&base, &a.rel) {
        Some(id) => Response::json(200, &st.live_json(&id)),
        None => not_found(),
    }
}

/// driveitem-list-children: a page of `value` and an `@odata.nextLink` while more
/// remain ("the response contains @odata.nextLink … use it to fetch the next page").
/// Listings show the drive as it was `lag` ago: OneDrive does not promise that a write
/// shows in listings at once.
fn list_children(shared: &Shared, a: &Addr, req: &Request, api: &str) -> Response {
    let mut st = shared.lock();
    let Some(base) = base_id(&mut st, a) else {
        return not_found();
    };
    let Some(dir) = st.walk(&base, &a.rel) else {
        return not_found();
    };
    if !st.items[&dir].folder {
        return Response::json(200, &json!({ "value": [] }));
    }
    let at = Instant::now()
        .checked_sub(st.lag)
        .unwrap_or_else(Instant::now);
    let mut kids: Vec<(String, Snap)> = st
        .items
        .values()
        .filter_map(|i| i.visible(at).map(|s| (i.id.clone(), s)))
        .filter(|(_, s)| s.parent.as_deref() == Some(dir.as_str()))
        .collect();
    kids.sort_by(|x, y| x.0.cmp(&y.0));
    let top = req
        .query_param("$top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(st.page_size)
        .max(1);
    let skip: usize = req
        .query_param("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = kids
        .iter()
        .skip(skip)
        .take(top)
        .map(|(id, s)| st.item_json(id, s))
        .collect();
    let mut v = json!({ "value": page });
    if skip + top < kids.len() {
        v["@odata.nextLink"] = json!(format!(
            "{}/v1.0{api}?$top={top}&$skiptoken={}",
            shared.origin,
            skip + top
        ));
    }
    Response::json(200, &v)
}

/// driveitem-get-content: "returns a 302 Found response redirecting to a
/// pre-authenticated download URL for the file"; the download URL needs no
/// Authorization header.
fn get_content(shared: &Shared, a: &Addr) -> Response {
    let mut st = shared.lock();
    let Some(base) = base_id(&mut st, a) else {
        return not_found();
    };
    let Some(id) = st.walk(&base, &a.rel) else {
        return not_found();
    };
    let it = &st.items[&id];
    let Some(blob) = it.blob.clone() else {
        return error(400, "invalidRequest", "a folder has no content");
    };
    let size = it.size;
    let name = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    st.downloads.insert(name.clone(), (blob, size));
    Response::new(302).header("Location", format!("{}/_dl/{name}", shared.origin))
}

fn download(shared: &Shared, name: &str) -> Response {
    let st = shared.lock();
    // A blob replaced since the redirect is gone: 404, the client starts over. The file
    // is opened under the lock (blobs are removed under it too).
    match st.downloads.get(name) {
        Some((p, n)) => match std::fs::File::open(p) {
            Ok(f) => {
                let mut r = Response::new(200);
                r.body = RespBody::File(f, *n);
                r.header("Content-Type", "application/octet-stream")
            }
            Err(_) => not_found(),
        },
        _ => not_found(),
    }
}

/// Streams the request body into a new blob file. `Err` when the body ended early.
async fn body_to_file(
    shared: &Shared,
    body: &mut BodyReader<'_>,
    file: &std::path::Path,
    append_at: Option<u64>,
    cut_after: Option<u64>,
) -> std::io::Result<u64> {
    let mut f = match append_at {
        Some(off) => {
            let mut f = tokio::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(file)
                .await?;
            f.seek(std::io::SeekFrom::Start(off)).await?;
            f
        }
        None => tokio::fs::File::create(file).await?,
    };
    let mut buf = vec![0u8; 64 * 1024];
    {
        let mut st = shared.lock();
        st.stats.max_body_in_memory = st.stats.max_body_in_memory.max(buf.len() as u64);
    }
    let mut n = 0u64;
    loop {
        if cut_after.is_some_and(|c| n >= c) {
            return Err(std::io::Error::other("cut on purpose"));
        }
        let want = match cut_after {
            Some(c) => ((c - n) as usize).min(buf.len()),
            None => buf.len(),
        };
        let k = body.read(&mut buf[..want]).await?;
        if k == 0 {
            break;
        }
        f.write_all(&buf[..k]).await?;
        n += k as u64;
    }
    f.flush().await?;
    Ok(n)
}

/// driveitem-put-content (simple upload): `PUT …/content`. Replaces an existing file
/// (`200`) or creates a new one (`201`). `If-Match` with a stale tag: `412`.
/// `?@microsoft.graph.conflictBehavior=fail` on an existing name: `409
/// nameAlreadyExists` (driveItem resource, instance attributes: "the parameter
/// @microsoft.graph.conflictBehavior should be included in the URL").
/// The parent folder must exist (the page does not promise that missing parents are
/// created: the fake answers `404 itemNotFound`, the stricter reading).
async fn simple_upload(
    shared: &Shared,
    a: &Addr,
    req: &Request,
    body: &mut BodyReader<'_>,
) -> Reply {
    if body.remaining() > SIMPLE_UPLOAD_MAX {
        return Reply::Send(error(
            413,
            "requestTooLarge",
            "simple upload is limited to 4 MB; use an upload session",
        ));
    }
    let fail = req
        .query_param("@microsoft.graph.conflictBehavior")
        .is_some_and(|v| v == "fail");
    let if_match = req.header("if-match").map(str::to_string);
    // Where it goes, checked before the body is read (and again at commit).
    let pre = {
        let mut st = shared.lock();
        locate_for_write(&mut st, a)
    };
    if let Err(r) = pre {
        return Reply::Send(r);
    }
    let blob = shared.new_blob_path();
    let n = match body_to_file(shared, body, &blob, None, None).await {
        Ok(n) => n,
        Err(_) => {
            let _ = std::fs::remove_file(&blob);
            return Reply::Cut;
        }
    };
    let mut st = shared.lock();
    let (parent, name, existing) = match locate_for_write(&mut st, a) {
        Ok(x) => x,
        Err(r) => {
            let _ = std::fs::remove_file(&blob);
            return Reply::Send(r);
        }
    };
    match existing {
        Some(id) => {
            let it = &st.items[&id];
            if it.folder {
                let _ = std::fs::remove_file(&blob);
                return Reply::Send(error(409, "nameAlreadyExists", "a folder has that name"));
            }
            if fail {
                st.stats.conflicts += 1;
                let _ = std::fs::remove_file(&blob);
                return Reply::Send(error(
                    409,
                    "nameAlreadyExists",
                    "The specified item name already exists.",
                ));
            }
            if let Some(t) = &if_match {
                if !it.tag_matches(t) {
                    st.stats.precondition_failed += 1;
                    let _ = std::fs::remove_file(&blob);
                    return Reply::Send(error(
                        412,
                        "resourceModified",
                        "The resource has changed since the caller last read it.",
                    ));
                }
            }
            st.replace_content(&id, blob, n);
            st.stats.simple_uploads += 1;
            Reply::Send(Response::json(200, &st.live_json(&id)))
        }
        None => {
            // If-Match has nothing to compare with on a create: the brief's table
            // ("If-Match does nothing on create") — the file is created.
            let (Some(parent), Some(name)) = (parent, name) else {
                let _ = std::fs::remove_file(&blob);
                return Reply::Send(not_found());
            };
            let drive = a.drive.clone();
            let id = st.new_item(&drive, &parent, &name, false, Some(blob), n);
            st.stats.simple_uploads += 1;
            Reply::Send(Response::json(201, &st.live_json(&id)))
        }
    }
}

type Located = (Option<String>, Option<String>, Option<String>);

/// For a write: `(parent id, new name, existing item id)`. By id: the item must exist.
/// By path: the parent must exist and be a folder, the name must be valid.
fn locate_for_write(st: &mut State, a: &Addr) -> Result<Located, Response> {
    let base = base_id(st, a).ok_or_else(not_found)?;
    let Some((name, dirs)) = a.rel.split_last() else {
        return Ok((None, None, Some(base)));
    };
    let parent = st.walk(&base, dirs).ok_or_else(not_found)?;
    if !st.items[&parent].folder {
        return Err(error(409, "nameAlreadyExists", "a parent is a file"));
    }
    let existing = st.child(&parent, name);
    if existing.is_none() && !valid_name(name) {
        return Err(error(
            400,
            "invalidRequest",
            "The name contains characters that are not allowed.",
        ));
    }
    Ok((Some(parent), Some(name.clone()), existing))
}

/// driveitem-post-children: `POST …/children` with `{"name", "folder": {},
/// "@microsoft.graph.conflictBehavior"}` → `201` with the folder; `409
/// nameAlreadyExists` with `fail` when the name is taken.
async fn create_folder(shared: &Shared, a: &Addr, body: &mut BodyReader<'_>) -> Response {
    let Ok(Some(raw)) = body.read_all(64 * 1024).await else {
        return error(400, "invalidRequest", "body too large or cut");
    };
    let Ok(v) = serde_json::from_slice::<Value>(&raw) else {
        return error(400, "invalidRequest", "body is not JSON");
    };
    let Some(name) = v.get("name").and_then(Value::as_str) else {
        return error(400, "invalidRequest", "name missing");
    };
    if v.get("folder").is_none() {
        return error(400, "invalidRequest", "only folders are created here");
    }
    let behaviour = v
        .get("@microsoft.graph.conflictBehavior")
        .and_then(Value::as_str)
        .unwrap_or("fail");
    if !valid_name(name) {
        return error(
            400,
            "invalidRequest",
            "The name contains characters that are not allowed.",
        );
    }
    let mut st = shared.lock();
    let Some(base) = base_id(&mut st, a) else {
        return not_found();
    };
    let Some(parent) = st.walk(&base, &a.rel) else {
        return not_found();
    };
    if let Some(existing) = st.child(&parent, name) {
        if behaviour == "fail" {
            st.stats.conflicts += 1;
            return error(
                409,
                "nameAlreadyExists",
                "The specified item name already exists.",
            );
        }
        return Response::json(200, &st.live_json(&existing));
    }
    let drive = a.drive.clone();
    let id = st.new_item(&drive, &parent, name, true, None, 0);
    Response::json(201, &st.live_json(&id))
}

/// driveitem-delete: `204`; `If-Match` with a stale tag: `412` and the item stays;
/// nothing there: `404`. Folders go with their contents.
fn delete_item(shared: &Shared, a: &Addr, req: &Request) -> Response {
    let mut st = shared.lock();
    let Some(base) = base_id(&mut st, a) else {
        return not_found();
    };
    let Some(id) = st.walk(&base, &a.rel) else {
        return not_found();
    };
    if st.items[&id].parent.is_none() {
        return error(403, "accessDenied", "the root cannot be deleted");
    }
    if let Some(t) = req.header("if-match") {
        if !st.items[&id].tag_matches(t) {
            st.stats.precondition_failed += 1;
            return error(
                412,
                "resourceModified",
                "The resource has changed since the caller last read it.",
            );
        }
    }
    st.delete_tree(&id);
    Response::new(204)
}

/// driveitem-createuploadsession: `POST …/createUploadSession` (by path for a new or
/// existing file, by id for an existing one) → `200` with `uploadUrl`,
/// `expirationDateTime`, `nextExpectedRanges: ["0-"]`. `If-Match` that does not match
/// the current tag: `412`; body `{"item": {"@microsoft.graph.conflictBehavior":
/// "fail"}}` on an existing name: `409`.
async fn create_session(
    shared: &Shared,
    a: &Addr,
    req: &Request,
    body: &mut BodyReader<'_>,
) -> Response {
    let raw = match body.read_all(64 * 1024).await {
        Ok(Some(r)) => r,
        _ => return error(400, "invalidRequest", "body too large or cut"),
    };
    let v: Value = if raw.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&raw) {
            Ok(v) => v,
            Err(_) => return error(400, "invalidRequest", "body is not JSON"),
        }
    };
    let behaviour = v
        .pointer("/item/@microsoft.graph.conflictBehavior")
        .and_then(Value::as_str)
        .unwrap_or("replace")
        .to_string();
    let if_match = req.header("if-match").map(str::to_string);
    let mut st = shared.lock();
    let (parent, name, existing) = match locate_for_write(&mut st, a) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let target = match (&existing, parent, name) {
        (Some(id), _, _) => {
            let it = &st.items[id];
            if it.folder {
                return error(409, "nameAlreadyExists", "a folder has that name");
            }
            if behaviour == "fail" {
                st.stats.conflicts += 1;
                return error(
                    409,
                    "nameAlreadyExists",
                    "The specified item name already exists.",
                );
            }
            if let Some(t) = &if_match {
                if !it.tag_matches(t) {
                    st.stats.precondition_failed += 1;
                    return error(
                        412,
                        "resourceModified",
                        "The resource has changed since the caller last read it.",
                    );
                }
            }
            SessTarget::Existing(id.clone())
        }
        (None, Some(parent), Some(name)) => SessTarget::New { parent, name },
        _ => return not_found(),
    };
    let sid = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let expires = SystemTime::now() + Duration::from_secs(15 * 60);
    st.sessions.insert(
        sid.clone(),
        Session {
            drive: a.drive.clone(),
            target,
            fail_on_conflict: behaviour == "fail",
            if_match,
            total: None,
            received: 0,
            file: shared.new_blob_path(),
            busy: false,
            expires,
        },
    );
    st.stats.sessions_created += 1;
    Response::json(
        200,
        &json!({
            "uploadUrl": format!("{}/_up/{sid}", shared.origin),
            "expirationDateTime": rfc3339(expires),
            "nextExpectedRanges": ["0-"],
        }),
    )
}

fn session_status(s: &Session) -> Value {
    let range = match s.total {
        Some(t) if s.received < t => format!("{}-{}", s.received, t - 1),
        _ => format!("{}-", s.received),
    };
    json!({ "expirationDateTime": rfc3339(s.expires), "nextExpectedRanges": [range] })
}

fn drop_session(st: &mut State, sid: &str) {
    if let Some(s) = st.sessions.remove(sid) {
        let _ = std::fs::remove_file(s.file);
    }
}

/// The upload URL: `PUT` a fragment with `Content-Range: bytes a-b/total` (`202` with
/// `nextExpectedRanges` until the last byte, then `201`/`200` with the driveItem),
/// `GET` the status ("resume an in-progress upload": `nextExpectedRanges`), `DELETE`
/// to cancel (`204`). Fragments must come in order: one that does not start at the
/// next expected byte is refused with `416 Requested Range Not Satisfiable` (the page
/// lists 416 for a range already received). Every fragment but the last must be a
/// multiple of 320 KiB and under 60 MiB.
async fn upload_session_request(
    shared: &Shared,
    sid: &str,
    req: &Request,
    body: &mut BodyReader<'_>,
) -> Reply {
    let sid = sid.to_string();
    match req.method.as_str() {
        "GET" => {
            let st = shared.lock();
            let lie = st.faults.lie_next_range;
            Reply::Send(match (st.sessions.get(&sid), lie) {
                (Some(_), Some(at)) => {
                    Response::json(200, &json!({ "nextExpectedRanges": [format!("{at}-")] }))
                }
                (Some(s), None) => Response::json(200, &session_status(s)),
                (None, _) => not_found(),
            })
        }
        "DELETE" => {
            let mut st = shared.lock();
            if st.sessions.contains_key(&sid) {
                drop_session(&mut st, &sid);
                st.stats.sessions_cancelled += 1;
                Reply::Send(Response::new(204))
            } else {
                Reply::Send(not_found())
            }
        }
        "PUT" => put_fragment(shared, &sid, req, body).await,
        _ => Reply::Send(error(400, "invalidRequest", "unsupported method")),
    }
}

fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let r = v.trim().strip_prefix("bytes ")?;
    let (range, total) = r.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

async fn put_fragment(
    shared: &Shared,
    sid: &str,
    req: &Request,
    body: &mut BodyReader<'_>,
) -> Reply {
    let len = req.content_length;
    let Some((start, end, total)) = req.header("content-range").and_then(parse_content_range)
    else {
        return Reply::Send(error(
            400,
            "invalidRequest",
            "Content-Range missing or malformed",
        ));
    };
    let behind = {
        let mut st = shared.lock();
        match st.faults.interleave.as_mut() {
            Some((0, ..)) => st.faults.interleave.take(),
            Some((n, ..)) => {
                *n -= 1;
                None
            }
            None => None,
        }
    };
    if let Some((_, drive, path, content)) = behind {
        let _ = shared.put_file(&drive, &path, &content);
    }
    let (file, cut) = {
        let mut st = shared.lock();
        if st.faults.expire_sessions > 0 && st.sessions.contains_key(sid) {
            st.faults.expire_sessions -= 1;
            drop_session(&mut st, sid);
        }
        let bad_size = end < start || end - start + 1 != len || end >= total || len > MAX_FRAGMENT;
        let not_last = end + 1 < total;
        let Some(s) = st.sessions.get_mut(sid) else {
            return Reply::Send(error(
                404,
                "itemNotFound",
                "The upload session was not found.",
            ));
        };
        if s.busy {
            return Reply::Send(error(
                416,
                "invalidRange",
                "another fragment is being uploaded",
            ));
        }
        if s.total.is_some_and(|t| t != total) {
            st.stats.bad_fragment_sizes += 1;
            return Reply::Send(error(400, "invalidRequest", "the total size changed"));
        }
        if start != s.received {
            st.stats.out_of_order += 1;
            return Reply::Send(error(
                416,
                "invalidRange",
                "The fragment does not start at the next expected byte.",
            ));
        }
        if bad_size || (not_last && !len.is_multiple_of(FRAGMENT_UNIT)) {
            st.stats.bad_fragment_sizes += 1;
            return Reply::Send(error(
                400,
                "invalidRequest",
                "fragment size must be a multiple of 320 KiB (except the last) and under 60 MiB",
            ));
        }
        s.total = Some(total);
        s.busy = true;
        let file = s.file.clone();
        let cut = if st.faults.cut_fragments > 0 {
            st.faults.cut_fragments -= 1;
            st.stats.cut_fragments += 1;
            Some(len / 2)
        } else {
            None
        };
        (file, cut)
    };
    let res = body_to_file(shared, body, &file, Some(start), cut).await;
    let mut st = shared.lock();
    let Some(s) = st.sessions.get_mut(sid) else {
        return Reply::Cut;
    };
    s.busy = false;
    match res {
        Ok(n) if n == len => {}
        _ => {
            // A fragment that did not arrive whole is not kept.
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&file) {
                let _ = f.set_len(start);
            }
            return Reply::Cut;
        }
    }
    s.received = end + 1;
    st.stats.fragments.push(Fragment {
        session: sid.to_string(),
        start,
        len,
        total,
    });
    if end + 1 < total {
        let v = match st.faults.lie_next_range {
            Some(at) => json!({ "nextExpectedRanges": [format!("{at}-")] }),
            None => session_status(&st.sessions[sid]),
        };
        return Reply::Send(Response::json(202, &v));
    }
    Reply::Send(commit_session(&mut st, sid, total))
}

/// "When the last byte of the file has been uploaded, the upload session is completed
/// and the final file is shown in the destination folder" (driveitem-createuploadsession):
/// the file is replaced or created only now, atomically; until then readers see the
/// previous version. A name taken meanwhile with conflictBehavior `fail` is `409`.
fn commit_session(st: &mut State, sid: &str, total: u64) -> Response {
    let Some(s) = st.sessions.remove(sid) else {
        return not_found();
    };
    let existing = match &s.target {
        SessTarget::Existing(id) => match st.items.get(id) {
            Some(it) if !it.deleted => Some(id.clone()),
            _ => {
                let _ = std::fs::remove_file(&s.file);
                return not_found();
            }
        },
        SessTarget::New { parent, name } => {
            if st.items.get(parent).is_none_or(|p| p.deleted) {
                let _ = std::fs::remove_file(&s.file);
                return not_found();
            }
            st.child(parent, name)
        }
    };
    match existing {
        Some(id) => {
            if s.fail_on_conflict {
                st.stats.conflicts += 1;
                let _ = std::fs::remove_file(&s.file);
                return error(
                    409,
                    "nameAlreadyExists",
                    "The specified item name already exists.",
                );
            }
            if st.if_match_at_commit {
                if let Some(t) = &s.if_match {
                    if !st.items[&id].tag_matches(t) {
                        st.stats.precondition_failed += 1;
                        let _ = std::fs::remove_file(&s.file);
                        return error(412, "resourceModified", "The resource has changed.");
                    }
                }
            }
            st.replace_content(&id, s.file, total);
            st.stats.sessions_committed += 1;
            Response::json(200, &st.live_json(&id))
        }
        None => {
            let SessTarget::New { parent, name } = &s.target else {
                return not_found();
            };
            let (parent, name) = (parent.clone(), name.clone());
            let id = st.new_item(&s.drive, &parent, &name, false, Some(s.file), total);
            st.stats.sessions_committed += 1;
            Response::json(201, &st.live_json(&id))
        }
    }
}

/// driveitem-delta: without a token, every item under the addressed folder; with
/// `token=latest`, no items and a deltaLink for "now"; with a token from an earlier
/// deltaLink, the current state of every item changed since (deleted ones with the
/// `deleted` facet and, as observed on OneDrive, a parentReference that no longer names
/// their folder — track them by id). Pages end with `@odata.nextLink`, the last with
/// `@odata.deltaLink`. An expired token is `410 Gone` with code `resyncRequired`
/// (onedrive/developer/rest-api/concepts/scan-guidance). Changes show `lag` late.
fn delta(shared: &Shared, a: &Addr, req: &Request, api: &str) -> Response {
    let mut st = shared.lock();
    let Some(base) = base_id(&mut st, a) else {
        return not_found();
    };
    let Some(folder) = st.walk(&base, &a.rel) else {
        return not_found();
    };
    let at = Instant::now()
        .checked_sub(st.lag)
        .unwrap_or_else(Instant::now);
    let visible_seq = st
        .changes
        .iter()
        .rev()
        .find(|(_, t, _)| *t <= at)
        .map_or(0, |(s, _, _)| *s);
    let link = |token: String| format!("{}/v1.0{api}?token={token}", shared.origin);
    let epoch = st.delta_epoch;
    let token = req.query_param("token");
    let skip: usize = req
        .query_param("skip")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (since, upto) = match token.as_deref() {
        Some("latest") => {
            return Response::json(
                200,
                &json!({ "value": [], "@odata.deltaLink": link(format!("{epoch}.{visible_seq}")) }),
            )
        }
        None => (0, visible_seq),
        Some(t) => {
            // "{epoch}.{since}" or, inside a page run, "{epoch}.{since}.{upto}".
            let parts: Vec<&str> = t.split('.').collect();
            let nums: Option<Vec<u64>> = parts.iter().map(|p| p.parse().ok()).collect();
            match nums.as_deref() {
                Some([e, s]) if *e == epoch => (*s, visible_seq),
                Some([e, s, u]) if *e == epoch => (*s, *u),
                _ => {
                    return error(
                        410,
                        "resyncRequired",
                        "The delta token is no longer valid; start over.",
                    )
                }
            }
        }
    };
    let mut ids: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for (seq, _, id) in &st.changes {
        if *seq > since && *seq <= upto && seen.insert(id.clone()) {
            ids.push(id.clone());
        }
    }
    let ids: Vec<String> = ids
        .into_iter()
        .filter(|id| *id != folder && st.is_under(id, &folder, at))
        .collect();
    let page_size = st.page_size;
    let root = st.drives.get(&a.drive).map(|d| d.root.clone());
    let page: Vec<Value> = ids
        .iter()
        .skip(skip)
        .take(page_size)
        .map(|id| match st.items[id].visible(at) {
            Some(snap) => st.item_json(id, &snap),
            None => json!({ "id": id, "deleted": { "state": "deleted" }, "parentReference": { "id": root } }),
        })
        .collect();
    let mut v = json!({ "value": page });
    if skip + page_size < ids.len() {
        v["@odata.nextLink"] = json!(format!(
            "{}&skip={}",
            link(format!("{epoch}.{since}.{upto}")),
            skip + page_size
        ));
    } else {
        v["@odata.deltaLink"] = json!(link(format!("{epoch}.{upto}")));
    }
    Response::json(200, &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let a = parse_addr("/me/drive/root:/a%20b/c.txt:/content").unwrap();
        assert_eq!(a.drive, ME_DRIVE);
        assert!(matches!(a.base, Base::Root));
        assert_eq!(a.rel, vec!["a b", "c.txt"]);
        assert_eq!(a.action, "content");
        let a = parse_addr("/drives/x/items/01/children").unwrap();
        assert!(matches!(a.base, Base::Id(ref i) if i == "01"));
        assert_eq!(a.action, "children");
        let a = parse_addr("/me/drive/special/approot:/v").unwrap();
        assert!(matches!(a.base, Base::AppRoot));
        assert_eq!((a.rel.len(), a.action.as_str()), (1, ""));
        assert!(parse_addr("/users/x").is_none());
    }

    #[test]
    fn names_and_times() {
        assert!(valid_name("vault.enpassdb"));
        for bad in ["a:b", "a?", " lead", "trail ", "x|y", "q\"", ""] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_445_412_480_123);
        assert_eq!(rfc3339(t), "2015-10-21T07:28:00.123Z");
    }
}
