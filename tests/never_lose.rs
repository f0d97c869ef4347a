//! The never-lose-data run (issue #7): five device processes, each with its own copy
//! of one vault, make random edits and sync at random moments, several at once,
//! through a real storage; an oracle records every edit; at the end every device syncs
//! until quiet and the oracle checks that nothing was lost.
//!
//! Storages: the folder provider; Apache mod_dav behind the flaky proxy (10% 5xx, 5%
//! resets, 5% 429 with `Retry-After`, 5% truncated answers, added latency); and
//! `rclone serve webdav`, whose conditional writes are not truthful, through the same
//! proxy. Both WebDAV servers commit under their own WebDAV locks (the probe must say
//! so); the lease-lock fallback is exercised by `tests/engine.rs`. Our own Wi-Fi Sync
//! Server (`syncfabric-server`, HTTPS only) runs behind the same proxy, which forwards
//! over TLS to it; its commits are compare-and-swap.
//!
//! What is checked after the final syncs (see [`check`]):
//! * every device, and the remote database itself, hold identical content;
//! * every field value the oracle saw set is the field's live value or in its history;
//! * every title is one that some device set (titles have no history in Enpass);
//! * no deleted item is live again unless some device changed it later than the
//!   delete (rule 6 of the merge: an edit revives only if strictly later);
//! * every added item is present; every attachment is present, and live unless a
//!   device removed it or deleted its item (an item revived by a later edit elsewhere
//!   does not revive the attachments its delete removed: merge rules are per row);
//!   every live attachment's content reads back on every device with the hash it was
//!   added with;
//! * every remote database any device committed (each device keeps its whole
//!   journal here) opens with the key and passes `PRAGMA integrity_check`.
//!
//! The seed fixes each device's operations, values and pauses; how the five processes
//! interleave is up to the OS, so a replay repeats the same workload, not the same
//! schedule. Knobs: `SYNCFABRIC_NLD_SEEDS` (comma-separated seeds),
//! `SYNCFABRIC_NLD_RUNS` (that many seeds from 1), `SYNCFABRIC_NLD_OPS` (operations per
//! device). The CI version runs seeds 1 and 2 with 200 operations per device on the
//! folder, and seed 1 with 30 on each WebDAV server (20 on the lease servers; under the faults a sync takes
//! seconds, and five devices queue for the lock). The long run:
//!
//! ```text
//! SYNCFABRIC_NLD_RUNS=10 SYNCFABRIC_NLD_OPS=200 cargo nextest run -p syncfabric-cli \
//!     --test never_lose --no-capture
//! ```
//!
//! A failing seed prints the command that replays it and keeps the run's folder
//! (vaults, states, journals, oracle, device logs) under the temp dir;
//! `SYNCFABRIC_NLD_LOG=debug` writes each device's log into it, and the run's own
//! (setup and final rounds) into `main.log`.
//!
//! The device processes are this test binary started again on the ignored test
//! `device_process`, with its job in the `SYNCFABRIC_NLD_WORKER` environment variable.
//!
//! The Enpass layout (`never_lose_data_enpass_layout_*`, issue #20): the vault in the
//! Enpass apps' sync file, and the last device an Enpass-like writer ([`enpass_app::app_sync`])
//! instead of a syncfabric one. Every value the syncfabric devices set must survive as
//! above; what the writer's own item-level merge loses of its own values is counted and
//! printed, not a failure; the writer's vault is not compared.

#[path = "common/enpass_app.rs"]
mod enpass_app;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use syncfabric::engine::{
    remote_layout, restore_from_remote, sync_vault, Layout, StateDir, SyncError, SyncOptions,
    SyncOutcome,
};
use syncfabric::remote::{Remote, Trust, Verdict, Writes};
use syncfabric::vault::{field_type, CreateOptions, NewItem, Secret, Vault};
use syncfabric_testkit::dropbox_fake::{DropboxFake, DropboxFakeConfig};
use syncfabric_testkit::flaky_proxy::{FaultPlan, FlakyProxy};
use syncfabric_testkit::gdrive_fake::{GdriveFake, GdriveFakeConfig};
use syncfabric_testkit::servers::{Kind, Server, USER};

const PW: &str = "never lose data password";
const DEVICES: usize = 5;
/// Items every device starts with (the ones devices fight over).
const SHARED_ITEMS: usize = 12;
const FOLDERS: usize = 4;
const WORKER_ENV: &str = "SYNCFABRIC_NLD_WORKER";

// ------------------------------------------------------------------ the oracle

/// One thing a device did, as the oracle records it. `ts` is the item's `updated_at`
/// read back from the vault right after the change (the clock the merge compares).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Rec {
    Add {
        item: String,
        title: String,
        fields: Vec<(i64, String)>,
        ts: i64,
    },
    Field {
        item: String,
        uid: i64,
        value: String,
        ts: i64,
    },
    Title {
        item: String,
        title: String,
        ts: i64,
    },
    Trash {
        item: String,
        ts: i64,
    },
    Untrash {
        item: String,
        ts: i64,
    },
    Delete {
        item: String,
        ts: i64,
    },
    Move {
        item: String,
        to: String,
    },
    AttachAdd {
        item: String,
        uuid: String,
        sha256: String,
        size: u64,
    },
    AttachRemove {
        uuid: String,
    },
    Sync {
        ok: bool,
        outcome: String,
        error: Option<String>,
        attempts: u32,
        ms: u64,
    },
}

/// What a device process is told to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WorkerSpec {
    device: usize,
    seed: u64,
    ops: usize,
    vault: PathBuf,
    state: PathBuf,
    oracle: PathBuf,
    url: String,
    cred: Cred,
    trust: String,
    /// The probe's verdict on versions ("strong" or "repeating").
    versions: String,
    /// The probe's verdict on cut writes ([`Writes::as_str`]).
    writes: String,
    /// Unix milliseconds at which every device edits the "Hot" password, then syncs.
    hot_at_ms: Vec<u64>,
    /// The vault lives in the Enpass apps' sync file (`Enpass/vault.enpassdbsync`).
    #[serde(default)]
    enpass_layout: bool,
    /// This device is the Enpass-like writer (see [`enpass_app::app_sync`]), not a syncfabric one.
    #[serde(default)]
    enpass_app: bool,
}

/// How the devices authenticate to the remote.
#[derive(Clone, Serialize, Deserialize)]
enum Cred {
    None,
    /// A WebDAV password.
    Password(String),
    /// A bearer token (the Dropbox fake's).
    Bearer(String),
}

impl std::fmt::Debug for Cred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cred::None => "None",
            Cred::Password(_) => "Password(<redacted>)",
            Cred::Bearer(_) => "Bearer(<redacted>)",
        })
    }
}

impl Cred {
    fn credentials(&self) -> syncfabric::remote::Credentials {
        use syncfabric::core::auth::{SecretToken, StaticBearer};
        use syncfabric::remote::Credentials;
        match self {
            Cred::None => Credentials::None,
            Cred::Password(p) => Credentials::Password(Secret::new(p.as_str())),
            Cred::Bearer(t) => {
                Credentials::Bearer(Arc::new(StaticBearer::new(SecretToken::new(t.as_str()))))
            }
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(bytes))
}

fn sync_options(verdict: Verdict) -> SyncOptions {
    // The guard is about one device's merge; this workload trashes and deletes on
    // purpose, so it must not stop the run (its own tests are in engine.rs).
    let mut opts = SyncOptions {
        allow_mass_delete: true,
        race: syncfabric::core::retry::RetryPolicy {
            max_attempts: 20,
            ..SyncOptions::default().race
        },
        ..SyncOptions::default()
    };
    if verdict.trust != Trust::Truthful {
        // The same timings serve the server lock (its lease length and polling).
        // Loopback servers show a write at once; the default settle is for clouds.
        // A shorter lease (refreshed every 3 s) lets a lock whose holder lost every
        // refresh to the faults expire in 20 s instead of a minute.
        // The settle pause bounds every lock write's look-to-answer window (a longer
        // one is refused): through the proxy's latency a staged lock write
        // (webdav-server, wsgidav: PUT, PROPFIND, MOVE) takes 150-300 ms.
        opts.lease.settle = Duration::from_millis(2000);
        opts.lease.poll_interval = Duration::from_millis(150);
        opts.lease.ttl = Duration::from_secs(20);
        opts.lease.refresh_every = Duration::from_secs(3);
    }
    opts
}

/// An error the run accepts from one sync: the network or the storage failed, or
/// other devices kept winning. Anything else (a "corrupt remote", a vault or merge
/// error) is a false alarm or a bug, and fails the run.
fn acceptable(e: &SyncError) -> bool {
    matches!(e, SyncError::Storage(_) | SyncError::TooManyRaces { .. })
}

/// Opens the run's storage as the CLI would, except for a retry policy scaled to
/// loopback (first retry after 50 ms instead of 500 ms; `Retry-After` is obeyed as
/// always), so that a run with a fault in every fifth request ends in minutes.
async fn open_storage(url: &str, cred: &Cred, verdict: Verdict) -> Remote {
    let retry = syncfabric::core::retry::RetryPolicy {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(2),
        max_attempts: 10,
        max_total: Duration::from_secs(60),
        ..Default::default()
    };
    let opts = syncfabric::core::registry::OpenOptions::default().with_retry(retry);
    let opts = verdict.writes.open_options(opts);
    let raw = syncfabric::remote::open_url(url, &cred.credentials(), opts)
        .await
        .expect("open remote");
    syncfabric::remote::wrap(raw, verdict)
}

// ------------------------------------------------------------ device process

/// The body of one device process (see the module doc). Ignored in normal runs.
#[test]
#[ignore = "a device process of the never-lose-data run; the run starts it itself"]
fn device_process() {
    let spec: WorkerSpec = serde_json::from_str(
        &std::env::var(WORKER_ENV).expect("started by the never-lose-data run"),
    )
    .expect("worker spec");
    if let Ok(filter) = std::env::var("SYNCFABRIC_NLD_LOG") {
        // e.g. SYNCFABRIC_NLD_LOG=debug: the device's log lands in device-<n>.log.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(worker(spec));
}

struct Dev {
    vault: Vault,
    rng: fastrand::Rng,
    oracle: std::fs::File,
    device: usize,
    n: usize,
    /// Only attachments stored inline (the Enpass layout carries no attachment files).
    inline_only: bool,
    /// It syncs as the Enpass-like writer does, not with the engine.
    enpass_app: bool,
}

impl Rec {
    /// The item an item-level record is about, what happened, and its clock.
    fn item_event(&self) -> Option<(&str, &'static str, i64)> {
        match self {
            Rec::Add { item, ts, .. } => Some((item, "add", *ts)),
            Rec::Field { item, ts, .. } => Some((item, "edit", *ts)),
            Rec::Title { item, ts, .. } => Some((item, "title", *ts)),
            Rec::Trash { item, ts } => Some((item, "trash", *ts)),
            Rec::Untrash { item, ts } => Some((item, "untrash", *ts)),
            Rec::Delete { item, ts } => Some((item, "delete", *ts)),
            _ => None,
        }
    }
}

impl Dev {
    fn rec(&mut self, r: Rec) {
        let mut line = serde_json::to_vec(&r).unwrap();
        line.push(b'\n');
        self.oracle.write_all(&line).unwrap();
        self.oracle.flush().unwrap();
    }

    fn value(&mut self, what: &str) -> String {
        self.n += 1;
        format!(
            "{what}-d{}-{}-{:08x}",
            self.device,
            self.n,
            self.rng.u32(..)
        )
    }

    fn ts(&self, item: &str) -> i64 {
        self.vault
            .get_item(item)
            .unwrap()
            .map(|i| i.updated_at)
            .unwrap_or(0)
    }

    /// Picks an item: mostly the shared ones (by title "Shared N"), so devices collide.
    fn pick(&mut self, pred: impl Fn(&syncfabric::vault::Item) -> bool) -> Option<String> {
        let items: Vec<_> = self
            .vault
            .items()
            .unwrap()
            .into_iter()
            .filter(|i| !i.deleted && pred(i))
            .collect();
        if items.is_empty() {
            return None;
        }
        let shared: Vec<_> = items
            .iter()
            .filter(|i| i.title.starts_with("Shared") || i.title == "Hot")
            .collect();
        if !shared.is_empty() && self.rng.f64() < 0.7 {
            return Some(shared[self.rng.usize(..shared.len())].uuid.clone());
        }
        Some(items[self.rng.usize(..items.len())].uuid.clone())
    }

    fn edit_field(&mut self, uuid: &str, kind: &str) {
        let Some(mut item) = self.vault.get_item(uuid).unwrap() else {
            return;
        };
        let value = self.value(kind);
        let Some(f) = item.field_mut(kind) else {
            return;
        };
        f.value = Secret::new(value.as_str());
        let uid = f.uid;
        self.vault.update_item(&item).unwrap();
        let ts = self.ts(uuid);
        self.rec(Rec::Field {
            item: uuid.to_string(),
            uid,
            value,
            ts,
        });
    }

    fn op(&mut self) {
        let x = self.rng.f64();
        if x < 0.10 {
            let title = self.value("Item");
            let user = self.value("user");
            let pass = self.value("password");
            let item = self
                .vault
                .add_item(NewItem::login(
                    &title,
                    &user,
                    Secret::new(pass.as_str()),
                    "",
                ))
                .unwrap();
            let fields = item
                .fields
                .iter()
                .map(|f| (f.uid, f.value.expose().to_string()))
                .collect();
            let ts = item.updated_at;
            self.rec(Rec::Add {
                item: item.uuid,
                title,
                fields,
                ts,
            });
        } else if x < 0.45 {
            if let Some(uuid) = self.pick(|_| true) {
                let kind = if self.rng.bool() {
                    field_type::PASSWORD
                } else {
                    field_type::USERNAME
                };
                self.edit_field(&uuid, kind);
            }
        } else if x < 0.52 {
            if let Some(uuid) = self.pick(|_| true) {
                let mut item = self.vault.get_item(&uuid).unwrap().unwrap();
                item.title = self.value("Title");
                self.vault.update_item(&item).unwrap();
                let ts = self.ts(&uuid);
                self.rec(Rec::Title {
                    item: uuid,
                    title: item.title,
                    ts,
                });
            }
        } else if x < 0.58 {
            if let Some(uuid) = self.pick(|i| !i.trashed && i.title != "Hot") {
                self.vault.trash_item(&uuid).unwrap();
                let ts = self.ts(&uuid);
                self.rec(Rec::Trash { item: uuid, ts });
            }
        } else if x < 0.64 {
            if let Some(uuid) = self.pick(|i| i.trashed) {
                self.vault.untrash_item(&uuid).unwrap();
                let ts = self.ts(&uuid);
                self.rec(Rec::Untrash { item: uuid, ts });
            }
        } else if x < 0.68 {
            if let Some(uuid) = self.pick(|i| i.title != "Hot") {
                self.vault.delete_item(&uuid).unwrap();
                let ts = self.ts(&uuid);
                self.rec(Rec::Delete { item: uuid, ts });
            }
        } else if x < 0.77 {
            let folders: Vec<String> = self
                .vault
                .folders()
                .unwrap()
                .into_iter()
                .filter(|f| !f.deleted)
                .map(|f| f.uuid)
                .collect();
            if let (Some(uuid), false) = (self.pick(|_| true), folders.is_empty()) {
                let to = folders[self.rng.usize(..folders.len())].clone();
                for from in self.vault.item_folders(&uuid).unwrap() {
                    if from != to {
                        self.vault.remove_from_folder(&from, &uuid).unwrap();
                    }
                }
                self.vault.add_to_folder(&to, &uuid).unwrap();
                self.rec(Rec::Move { item: uuid, to });
            }
        } else if x < 0.82 {
            if let Some(uuid) = self.pick(|_| true) {
                // Small ones are stored inline, large ones as their own file.
                let size = if self.inline_only {
                    self.rng.usize(1..=syncfabric::vault::INLINE_MAX)
                } else if self.rng.bool() {
                    self.rng.usize(1..2000)
                } else {
                    self.rng.usize(100_000..300_000)
                };
                let mut data = vec![0u8; size];
                self.rng.fill(&mut data);
                let name = self.value("file");
                let a = self
                    .vault
                    .add_attachment(&uuid, &name, "application/octet-stream", &mut &data[..])
                    .unwrap();
                self.rec(Rec::AttachAdd {
                    item: uuid,
                    uuid: a.uuid,
                    sha256: sha256(&data),
                    size: size as u64,
                });
            }
        } else if x < 0.86 {
            let live: Vec<String> = self
                .vault
                .attachments(None)
                .unwrap()
                .into_iter()
                .filter(|a| !a.deleted)
                .map(|a| a.uuid)
                .collect();
            if !live.is_empty() {
                let uuid = live[self.rng.usize(..live.len())].clone();
                self.vault.remove_attachment(&uuid).unwrap();
                self.rec(Rec::AttachRemove { uuid });
            }
        }
        // else: a pause with no edit.
    }
}

async fn worker(spec: WorkerSpec) {
    let vault = Vault::open(&spec.vault, &Secret::new(PW), None).expect("open vault");
    let oracle = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.oracle)
        .unwrap();
    let rng = fastrand::Rng::with_seed(
        spec.seed
            .wrapping_mul(1000)
            .wrapping_add(spec.device as u64),
    );
    let mut dev = Dev {
        vault,
        rng,
        oracle,
        device: spec.device,
        n: 0,
        inline_only: spec.enpass_layout,
        enpass_app: spec.enpass_app,
    };
    dev.vault.set_device_name(format!("device {}", spec.device));
    let verdict = Verdict {
        trust: Trust::parse(&spec.trust).expect("trust"),
        strong_versions: spec.versions == "strong",
        writes: Writes::parse(&spec.writes).expect("writes"),
    };
    let storage = open_storage(&spec.url, &spec.cred, verdict).await;
    let storage = if spec.enpass_layout {
        storage.with_layout(Layout::enpass())
    } else {
        storage
    };
    let state = StateDir::open(&spec.state)
        .unwrap()
        .with_journal_len(100_000);
    let opts = sync_options(verdict);
    let hot = dev
        .vault
        .items()
        .unwrap()
        .into_iter()
        .find(|i| i.title == "Hot")
        .map(|i| i.uuid);
    let mut hot_at = spec.hot_at_ms.clone().into_iter().peekable();
    for _ in 0..spec.ops {
        if hot_at.peek().is_some_and(|&t| unix_ms() >= t) {
            hot_at.next();
            // Every device changes the same password in the same second, then syncs.
            if let Some(h) = &hot {
                if dev.vault.get_item(h).unwrap().is_some_and(|i| !i.deleted) {
                    dev.edit_field(h, field_type::PASSWORD);
                }
            }
            sync_once(&mut dev, &storage, &state, &opts).await;
        }
        if dev.rng.f64() < 0.06 {
            sync_once(&mut dev, &storage, &state, &opts).await;
        } else {
            dev.op();
        }
        let pause = dev.rng.u64(0..40);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    sync_once(&mut dev, &storage, &state, &opts).await;
}

async fn sync_once(dev: &mut Dev, storage: &Remote, state: &StateDir, opts: &SyncOptions) {
    if dev.enpass_app {
        let t = Instant::now();
        let pause = Duration::from_millis(dev.rng.u64(0..300));
        let r = enpass_app::app_sync(&mut dev.vault, storage.storage(), PW, pause).await;
        let ms = t.elapsed().as_millis() as u64;
        let outcome = match &r {
            Ok(()) => "EnpassApp",
            Err(e) if e.starts_with("BUG") => "BUG",
            Err(_) => "failed",
        };
        dev.rec(Rec::Sync {
            ok: r.is_ok(),
            outcome: outcome.into(),
            error: r.err(),
            attempts: 1,
            ms,
        });
        return;
    }
    let t = Instant::now();
    let r = sync_vault(&mut dev.vault, storage, state, opts).await;
    let ms = t.elapsed().as_millis() as u64;
    let rec = match r {
        Ok(rep) => Rec::Sync {
            ok: true,
            outcome: format!("{:?}", rep.outcome),
            error: None,
            attempts: rep.attempts,
            ms,
        },
        Err(e) => Rec::Sync {
            ok: false,
            outcome: if acceptable(&e) { "failed" } else { "BUG" }.into(),
            error: Some(e.to_string()),
            attempts: 0,
            ms,
        },
    };
    dev.rec(rec);
}

// ------------------------------------------------------------------ the run

/// Where the run's storage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Folder,
    /// A real WebDAV server of the suite behind the flaky proxy.
    Flaky(Kind),
    /// The Dropbox fake (the test-kit's, written from Dropbox's HTTP
    /// reference) behind the flaky proxy, throttling too.
    DropboxFake,
    /// The Google Drive fake (written from the Drive v2/v3 references) behind the
    /// flaky proxy, throttling too.
    GdriveFake,
}

/// What one seed's run found.
#[derive(Debug, Default)]
struct RunResult {
    ops: usize,
    syncs_ok: usize,
    syncs_failed: usize,
    final_rounds: usize,
    journal_dbs: usize,
    proxy_requests: u64,
    proxy_faults: u64,
    /// Broken promises (lost edits, divergence, revived deletes, bad databases).
    violations: Vec<String>,
    /// Sync errors the run does not accept (false corruption alarms, vault errors).
    bad_errors: Vec<String>,
    /// Why syncs failed cleanly: the first words of each error, counted.
    failures: std::collections::BTreeMap<String, usize>,
    /// The Enpass-like writer's successful syncs (its final one included).
    app_syncs: usize,
    /// Values the Enpass-like writer set that its own merge lost (not violations:
    /// the run promises nothing about a writer that is not ours).
    app_losses: Vec<String>,
    secs: f64,
}

fn seeds(backend: Backend) -> Vec<u64> {
    if let Ok(s) = std::env::var("SYNCFABRIC_NLD_SEEDS") {
        return s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    if let Some(n) = std::env::var("SYNCFABRIC_NLD_RUNS")
        .ok()
        .and_then(|x| x.parse::<u64>().ok())
    {
        return (1..=n).collect();
    }
    // The CI version: a WebDAV run under the faults takes minutes.
    match backend {
        Backend::Folder => vec![1, 2],
        _ => vec![1],
    }
}

fn ops(backend: Backend) -> usize {
    std::env::var("SYNCFABRIC_NLD_OPS")
        .ok()
        .and_then(|x| x.parse().ok())
        .unwrap_or(match backend {
            Backend::Folder => 200,
            // Compare-and-swap on Dropbox's rev, Drive's v2 etag and our server's
            // If-Match: no lock to queue for.
            Backend::DropboxFake | Backend::GdriveFake | Backend::Flaky(Kind::Syncfabric) => 30,
            // The lease servers: under these faults a lock write is often answered
            // later than `settle` after its look, and such an attempt leaves its lock
            // to expire (one lease, see sync-core's lock.rs). 30 operations per device
            // (one run, 2 cores): lighttpd 278 s, nginx 170 s, WsgiDAV 400 s,
            // webdav-server 471 s, 0 lost. nginx, where every look hashes a download,
            // used to take up to 20 minutes with 6: a device whose first request met
            // an injected 503 had guessed the generic profile and could never commit
            // a merge (fixed in the WebDAV provider's profile probe).
            Backend::Flaky(Kind::Nginx | Kind::Lighttpd | Kind::Wsgidav | Kind::NodeWebdav) => 20,
            // The CI version; the long run sets SYNCFABRIC_NLD_OPS=200.
            Backend::Flaky(_) => 30,
        })
}

fn run_seeds(backend: Backend, server: Option<&Server>, test: &str) -> Vec<(u64, RunResult)> {
    run_seeds_in(backend, server, test, false)
}

/// [`run_seeds`]; `enpass`: in the Enpass layout, the last device being the
/// Enpass-like writer.
fn run_seeds_in(
    backend: Backend,
    server: Option<&Server>,
    test: &str,
    enpass: bool,
) -> Vec<(u64, RunResult)> {
    let mut out = Vec::new();
    for seed in seeds(backend) {
        let r = run_one_in(backend, server, seed, ops(backend), enpass, &|_| {});
        eprintln!(
            "never-lose {backend:?} seed {seed}: {} ops, syncs {} ok / {} failed, {} final rounds, {} journal databases checked, proxy {} requests / {} faults, {} violations, {:.1} s",
            r.ops, r.syncs_ok, r.syncs_failed, r.final_rounds, r.journal_dbs, r.proxy_requests,
            r.proxy_faults, r.violations.len(), r.secs
        );
        if !r.failures.is_empty() {
            eprintln!("  clean failures by kind: {:?}", r.failures);
        }
        if enpass {
            eprintln!(
                "  the Enpass-like writer: {} syncs, {} of its own values lost by its item-level merge: {:?}",
                r.app_syncs,
                r.app_losses.len(),
                r.app_losses.iter().take(5).collect::<Vec<_>>()
            );
        }
        if !r.violations.is_empty() || !r.bad_errors.is_empty() {
            eprintln!(
                "replay: SYNCFABRIC_NLD_SEEDS={seed} SYNCFABRIC_NLD_OPS={} cargo nextest run -p syncfabric-cli --test never_lose {test} --no-capture",
                ops(backend)
            );
        }
        out.push((seed, r));
    }
    out
}

/// The issue's mix: 10% 5xx, 5% resets (before and after the server did the work),
/// 429 with Retry-After, latency; plus a few bodies cut short.
fn fault_plan(seed: u64) -> FaultPlan {
    let mut plan = FaultPlan::chaos(seed);
    plan.too_many_requests = 0.02;
    plan.truncate_body = 0.02;
    plan.latency = Duration::from_millis(30);
    plan
}

fn run_one_then(
    backend: Backend,
    server: Option<&Server>,
    seed: u64,
    ops: usize,
    tamper: &dyn Fn(&Path),
) -> RunResult {
    run_one_in(backend, server, seed, ops, false, tamper)
}

/// [`run_one`], with `tamper` applied to the run's folder (devices `dev<N>`, their
/// states, the oracle) right before the checks: how the oracle's own test breaks a
/// finished run on purpose. `enpass`: the vault lives in the Enpass layout and the last
/// device is the Enpass-like writer ([`enpass_app::app_sync`]).
fn run_one_in(
    backend: Backend,
    server: Option<&Server>,
    seed: u64,
    ops: usize,
    enpass: bool,
    tamper: &dyn Fn(&Path),
) -> RunResult {
    let app = enpass.then_some(DEVICES - 1);
    let with_layout = |r: Remote| {
        if enpass {
            r.with_layout(Layout::enpass())
        } else {
            r
        }
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    if let Ok(filter) = std::env::var("SYNCFABRIC_NLD_LOG") {
        // The run's own syncs (setup, final rounds) log into main.log.
        let log = std::fs::File::create(root.join("main.log")).unwrap();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::sync::Mutex::new(log))
            .with_ansi(false)
            .try_init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The storage, reached directly for the setup and through the proxy for the run.
    let mut _gdrive = None;
    let (direct_url, proxy, run_url, cred, dropbox) = match (backend, server) {
        (Backend::GdriveFake, _) => {
            let fake = rt.block_on(GdriveFake::start(GdriveFakeConfig {
                throttle_rate: 0.02,
                seed,
                ..GdriveFakeConfig::default()
            }));
            let fake = fake.unwrap();
            let proxy = rt.block_on(FlakyProxy::start(fake.addr(), fault_plan(seed)));
            let proxy = proxy.unwrap();
            let at = |base: &str| format!("gdrive:/nld-{seed}?api_url={base}&poll_ms=200");
            let (direct, via) = (at(&fake.url()), at(proxy.url().trim_end_matches('/')));
            let cred = Cred::Bearer(fake.token());
            _gdrive = Some(fake);
            (direct, Some(proxy), via, cred, None)
        }
        (Backend::DropboxFake, _) => {
            let fake = rt.block_on(DropboxFake::start(DropboxFakeConfig {
                throttle_rate: 0.02,
                seed,
                ..DropboxFakeConfig::default()
            }));
            let fake = fake.unwrap();
            let proxy = rt.block_on(FlakyProxy::start(fake.addr(), fault_plan(seed)));
            let proxy = proxy.unwrap();
            // The fake answers under `/2` (as api.dropboxapi.com does).
            let at = |base: &str| {
                format!("dropbox:/nld-{seed}?api_url={base}&content_url={base}&notify_url={base}")
            };
            let via = format!("{}/2", proxy.url().trim_end_matches('/'));
            let (direct, via) = (at(&fake.url()), at(&via));
            let cred = Cred::Bearer(fake.token());
            (direct, Some(proxy), via, cred, Some(fake))
        }
        (_, None) => {
            let shared = root.join("shared");
            std::fs::create_dir_all(&shared).unwrap();
            let url = format!("folder://{}", shared.display());
            (url.clone(), None, url, Cred::None, None)
        }
        (_, Some(s)) => {
            // One folder for every seed (each seed's vault has its own uuid, hence its
            // own sub-folder): rclone caches directory listings, so a folder made on
            // its disk after the first seed would not show for minutes.
            // The Enpass layout keeps one vault per folder: one per seed there.
            let folder = if enpass {
                format!("nld-enpass-{seed}")
            } else {
                "nld".to_string()
            };
            let folder = folder.as_str();
            s.scratch(folder);
            let path = match s.url.split_once(&format!("127.0.0.1:{}", s.port)) {
                Some((_, p)) => p.to_string(),
                None => "/".into(),
            };
            // Our server speaks HTTPS only: reached directly with its certificate
            // pinned, and through the proxy as plain HTTP that the proxy forwards over
            // TLS, trusting that certificate alone.
            let direct = s.remote_url(&format!("{}{folder}", s.url));
            let addr = format!("127.0.0.1:{}", s.port).parse().unwrap();
            let proxy = match &s.cert_pem {
                Some(pem) => rt.block_on(FlakyProxy::start_tls(addr, fault_plan(seed), pem)),
                None => rt.block_on(FlakyProxy::start(addr, fault_plan(seed))),
            };
            let proxy = proxy.unwrap();
            let via = format!(
                "webdav+http://{USER}@127.0.0.1:{}{path}{folder}",
                proxy.addr().port()
            );
            (
                direct,
                Some(proxy),
                via,
                Cred::Password(s.pass.clone()),
                None,
            )
        }
    };

    // Setup: device 0 creates the vault and pushes it; the others restore from it.
    let (verdict, vault_uuid, key) = rt.block_on(async {
        let raw =
            syncfabric::remote::open_url(&direct_url, &cred.credentials(), Default::default())
                .await
                .unwrap();
        let (verdict, report) = syncfabric::remote::probe(raw.as_ref()).await.unwrap();
        if matches!(
            backend,
            Backend::Flaky(Kind::Apache | Kind::Rclone | Kind::Sabre)
        ) {
            // Apache, rclone and SabreDAV enforce their WebDAV locks: commits run under
            // them.
            assert_eq!(verdict.trust, Trust::ServerLock, "{}", report.summary());
        }
        if matches!(
            backend,
            Backend::DropboxFake | Backend::GdriveFake | Backend::Flaky(Kind::Syncfabric)
        ) {
            // Compare-and-swap: Dropbox's rev, Drive's etag, our server's If-Match.
            assert_eq!(verdict.trust, Trust::Truthful, "{}", report.summary());
        }
        // Every server of the suite, with its profile, keeps a file whole when a write
        // to it breaks off.
        assert_eq!(verdict.writes, Writes::Atomic, "{}", report.summary());
        let storage = with_layout(open_storage(&direct_url, &cred, verdict).await);
        let create = CreateOptions {
            kdf_iter: 1000,
            ..Default::default()
        };
        let mut v = Vault::create(root.join("dev0"), &Secret::new(PW), &create).unwrap();
        let mut setup = std::fs::File::create(root.join("oracle-setup.jsonl")).unwrap();
        let mut new_items = vec![NewItem::login("Hot", "hot-user", Secret::new("hot-0"), "")];
        for i in 0..SHARED_ITEMS {
            new_items.push(NewItem::login(
                &format!("Shared {i}"),
                &format!("user-{i}"),
                Secret::new(format!("pass-{i}")),
                "",
            ));
        }
        for n in new_items {
            let it = v.add_item(n).unwrap();
            let r = Rec::Add {
                item: it.uuid.clone(),
                title: it.title.clone(),
                fields: it
                    .fields
                    .iter()
                    .map(|f| (f.uid, f.value.expose().to_string()))
                    .collect(),
                ts: it.updated_at,
            };
            writeln!(setup, "{}", serde_json::to_string(&r).unwrap()).unwrap();
        }
        for f in 0..FOLDERS {
            v.create_folder(&format!("Folder {f}"), None).unwrap();
        }
        let st0 = StateDir::open(root.join("state0"))
            .unwrap()
            .with_journal_len(100_000);
        sync_vault(&mut v, &storage, &st0, &sync_options(verdict))
            .await
            .unwrap();
        let uuid = v.meta().vault_uuid().expect("vault uuid").to_string();
        let key = v.key().clone();
        drop(v);
        for d in 1..DEVICES {
            let st = StateDir::open(root.join(format!("state{d}")))
                .unwrap()
                .with_journal_len(100_000);
            restore_from_remote(
                &storage,
                &uuid,
                &root.join(format!("dev{d}")),
                &st,
                &Secret::new(PW),
                None,
            )
            .await
            .unwrap();
        }
        (verdict, uuid, key)
    });

    // The run: five processes at once.
    let start = unix_ms();
    let hot_at_ms: Vec<u64> = [1_500, 6_000, 15_000].iter().map(|d| start + d).collect();
    let mut children = Vec::new();
    for d in 0..DEVICES {
        let spec = WorkerSpec {
            device: d,
            seed,
            ops,
            vault: root.join(format!("dev{d}")),
            state: root.join(format!("state{d}")),
            oracle: root.join(format!("oracle-{d}.jsonl")),
            url: run_url.clone(),
            cred: cred.clone(),
            trust: verdict.trust.as_str().to_string(),
            versions: verdict.versions_str().to_string(),
            writes: verdict.writes.as_str().to_string(),
            hot_at_ms: hot_at_ms.clone(),
            enpass_layout: enpass,
            enpass_app: app == Some(d),
        };
        let log = std::fs::File::create(root.join(format!("device-{d}.log"))).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["device_process", "--exact", "--ignored", "--nocapture"])
            .env(WORKER_ENV, serde_json::to_string(&spec).unwrap())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        children.push(child);
    }
    let mut result = RunResult::default();
    for (d, mut c) in children.into_iter().enumerate() {
        let status = c.wait().unwrap();
        if !status.success() {
            let log =
                std::fs::read_to_string(root.join(format!("device-{d}.log"))).unwrap_or_default();
            let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
            result
                .bad_errors
                .push(format!("device {d} process failed ({status}): {tail}"));
        }
    }

    // The end: every device syncs until a whole round changes nothing.
    let final_rounds = rt.block_on(async {
        let storage = with_layout(open_storage(&run_url, &cred, verdict).await);
        let opts = sync_options(verdict);
        if let Some(a) = app {
            // The writer's last edits go up first (retried through the faults).
            let mut v = Vault::open(root.join(format!("dev{a}")), &Secret::new(PW), None).unwrap();
            for _ in 0..20 {
                let pause = Duration::ZERO;
                if enpass_app::app_sync(&mut v, storage.storage(), PW, pause)
                    .await
                    .is_ok()
                {
                    result.app_syncs += 1;
                    break;
                }
            }
        }
        let mut vaults: Vec<(Vault, StateDir)> = (0..DEVICES)
            .filter(|d| Some(*d) != app)
            .map(|d| {
                (
                    Vault::open(root.join(format!("dev{d}")), &Secret::new(PW), None).unwrap(),
                    StateDir::open(root.join(format!("state{d}")))
                        .unwrap()
                        .with_journal_len(100_000),
                )
            })
            .collect();
        for round in 1..=30 {
            let mut quiet = true;
            for (d, (v, st)) in vaults.iter_mut().enumerate() {
                let mut tries = 0;
                loop {
                    tries += 1;
                    match sync_vault(v, &storage, st, &opts).await {
                        Ok(r) => {
                            quiet &= r.outcome == SyncOutcome::UpToDate;
                            break;
                        }
                        Err(e) if acceptable(&e) && tries < 10 => continue,
                        Err(e) => {
                            result
                                .bad_errors
                                .push(format!("final sync of device {d}: {e}"));
                            return round;
                        }
                    }
                }
            }
            if quiet {
                return round;
            }
        }
        result
            .bad_errors
            .push("devices never became quiet in 30 rounds".into());
        30
    });
    result.final_rounds = final_rounds;
    if let Some(p) = &proxy {
        let s = p.stats();
        result.proxy_requests = s.requests;
        result.proxy_faults =
            s.server_errors + s.resets_before + s.resets_after + s.too_many_requests + s.truncated;
    }
    drop(proxy);
    // Dropbox never makes a conflict copy of ours (we never ask for `autorename`).
    if let Some(fake) = &dropbox {
        let copies: Vec<String> = fake
            .paths()
            .into_iter()
            .filter(|p| p.to_ascii_lowercase().contains("conflicted copy"))
            .collect();
        if !copies.is_empty() {
            result
                .violations
                .push(format!("conflict copies on Dropbox: {copies:?}"));
        }
    }

    // The remote database itself, as another reader sees it.
    let remote_dir = root.join("remote-copy");
    rt.block_on(async {
        let storage = open_storage(&direct_url, &cred, verdict).await;
        let read = |p: syncfabric::core::RemotePath| {
            let storage = storage.clone();
            async move {
                let mut d = storage.read(&p).await.unwrap();
                let mut bytes = Vec::new();
                use futures_util::StreamExt;
                while let Some(c) = d.stream.next().await {
                    bytes.extend_from_slice(&c.unwrap());
                }
                bytes
            }
        };
        std::fs::create_dir_all(&remote_dir).unwrap();
        if enpass {
            let layout = Layout::enpass().locate(&vault_uuid).unwrap();
            let bytes = read(layout.db).await;
            let meta = syncfabric::vault::container::unpack(
                &mut &bytes[..],
                &remote_dir.join("vault.enpassdb"),
            )
            .unwrap();
            meta.write_atomic(&remote_dir.join("vault.json")).unwrap();
            return;
        }
        let layout = remote_layout(&vault_uuid).unwrap();
        let (db, json) = (
            layout.db,
            layout.json.expect("the syncfabric layout has a vault.json"),
        );
        for (p, name) in [(db, "vault.enpassdb"), (json, "vault.json")] {
            std::fs::write(remote_dir.join(name), read(p).await).unwrap();
        }
    });

    tamper(root);
    check(root, &remote_dir, &key, app, &mut result);
    result.secs = started.elapsed().as_secs_f64();
    if !result.violations.is_empty() || !result.bad_errors.is_empty() {
        // Keep the evidence for a look.
        let keep = std::env::temp_dir().join(format!("never-lose-{backend:?}-{seed}"));
        let _ = std::fs::remove_dir_all(&keep);
        let _ = copy_dir(root, &keep);
        eprintln!("evidence kept in {}", keep.display());
    }
    result
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let t = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &t)?;
        } else {
            std::fs::copy(e.path(), t)?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ the checks

/// Everything a person sees in a vault, in a canonical order, values included.
#[derive(Debug, PartialEq, Eq)]
struct Content {
    items: BTreeMap<String, ItemContent>,
    folders: BTreeMap<String, (String, bool)>,
    memberships: BTreeMap<String, BTreeSet<String>>,
    attachments: BTreeMap<String, (String, u64, bool)>,
}

#[derive(Debug, PartialEq, Eq)]
struct ItemContent {
    title: String,
    trashed: bool,
    deleted: bool,
    /// uid → (value, deleted, history values)
    fields: BTreeMap<i64, (String, bool, Vec<String>)>,
}

fn content(v: &Vault) -> Content {
    let mut items = BTreeMap::new();
    for i in v.items().unwrap() {
        let fields = i
            .fields
            .iter()
            .map(|f| {
                let mut h: Vec<String> = f
                    .history
                    .iter()
                    .map(|e| e.value.expose().to_string())
                    .collect();
                h.sort();
                (f.uid, (f.value.expose().to_string(), f.deleted, h))
            })
            .collect();
        items.insert(
            i.uuid.clone(),
            ItemContent {
                title: i.title,
                trashed: i.trashed,
                deleted: i.deleted,
                fields,
            },
        );
    }
    let folders: BTreeMap<String, (String, bool)> = v
        .folders()
        .unwrap()
        .into_iter()
        .map(|f| (f.uuid, (f.title, f.deleted)))
        .collect();
    let memberships = folders
        .keys()
        .map(|f| (f.clone(), v.folder_items(f).unwrap().into_iter().collect()))
        .collect();
    let attachments = v
        .attachments(None)
        .unwrap()
        .into_iter()
        .map(|a| (a.uuid, (a.item_uuid, a.size, a.deleted)))
        .collect();
    Content {
        items,
        folders,
        memberships,
        attachments,
    }
}

/// The oracle's records, with: operations, syncs that succeeded, syncs that failed
/// cleanly, errors the run does not accept, and the clean failures by kind.
type OracleSummary = (
    Vec<(Option<usize>, Rec)>,
    usize,
    usize,
    usize,
    Vec<String>,
    std::collections::BTreeMap<String, usize>,
);

fn read_oracle(root: &Path) -> OracleSummary {
    let mut recs = Vec::new();
    let (mut ops, mut ok, mut failed) = (0, 0, 0);
    let mut failures = std::collections::BTreeMap::new();
    let mut bad = Vec::new();
    let mut files = vec![(None, root.join("oracle-setup.jsonl"))];
    files.extend((0..DEVICES).map(|d| (Some(d), root.join(format!("oracle-{d}.jsonl")))));
    for (source, f) in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines() {
            let r: Rec = serde_json::from_str(line).unwrap();
            match &r {
                Rec::Sync { ok: true, .. } => ok += 1,
                Rec::Sync {
                    ok: false,
                    outcome,
                    error,
                    ..
                } => {
                    failed += 1;
                    // The kind and the step, without the changing details.
                    let kind: String = error
                        .as_deref()
                        .unwrap_or("")
                        .split(|c: char| c == '/' || c.is_ascii_digit())
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(60)
                        .collect();
                    *failures.entry(kind).or_insert(0) += 1;
                    if outcome == "BUG" {
                        bad.push(format!(
                            "{}: {}",
                            f.display(),
                            error.clone().unwrap_or_default()
                        ));
                    }
                }
                _ => ops += 1,
            }
            recs.push((source, r));
        }
    }
    (recs, ops, ok, failed, bad, failures)
}

/// `app`: the Enpass-like writer's device, whose vault is not compared and whose lost
/// values are counted in `out.app_losses`, not as violations.
fn check(
    root: &Path,
    remote_dir: &Path,
    key: &syncfabric::vault::VaultKey,
    app: Option<usize>,
    out: &mut RunResult,
) {
    let (recs, ops, ok, failed, bad, failures) = read_oracle(root);
    out.failures = failures;
    out.ops = ops;
    out.syncs_ok = ok;
    out.syncs_failed = failed;
    out.bad_errors.extend(bad);
    let mut app_losses = Vec::new();
    out.app_syncs += recs
        .iter()
        .filter(|(d, r)| app.is_some() && *d == app && matches!(r, Rec::Sync { ok: true, .. }))
        .count();
    let v = &mut out.violations;

    // 1. Every device and the remote hold the same content.
    let devices: Vec<Vault> = (0..DEVICES)
        .filter(|d| Some(*d) != app)
        .map(|d| Vault::open(root.join(format!("dev{d}")), &Secret::new(PW), None).unwrap())
        .collect();
    let contents: Vec<Content> = devices.iter().map(content).collect();
    for (d, c) in contents.iter().enumerate().skip(1) {
        if *c != contents[0] {
            v.push(format!("device {d} differs from device 0"));
        }
    }
    match Vault::open(remote_dir, &Secret::new(PW), None) {
        Ok(r) => {
            if content(&r) != contents[0] {
                v.push("the remote database differs from the devices".into());
            }
        }
        Err(e) => v.push(format!("the remote database does not open: {e}")),
    }
    let c = &contents[0];

    // 2.-5. Per oracle record.
    let mut titles: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut changed_at: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut deleted_at: BTreeMap<&str, i64> = BTreeMap::new();
    let mut removed: BTreeSet<&str> = BTreeSet::new();
    // Who trashed, restored, deleted or edited each item, and when: printed with a
    // revived item, so a rare interleaving can be read from the CI log alone.
    let mut story: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (source, r) in &recs {
        if let Some((item, what, ts)) = r.item_event() {
            let dev = source.map_or("setup".to_string(), |d| format!("d{d}"));
            story
                .entry(item)
                .or_default()
                .push(format!("{dev} {what} {ts}"));
        }
        // What the Enpass-like writer itself set may be lost by its own merge.
        let v: &mut Vec<String> = if app.is_some() && *source == app {
            &mut app_losses
        } else {
            &mut *v
        };
        match r {
            Rec::Add {
                item,
                title,
                fields,
                ..
            } => {
                titles.entry(item).or_default().insert(title);
                match c.items.get(item) {
                    None => v.push(format!("added item {item} is gone")),
                    Some(it) => {
                        for (uid, value) in fields {
                            field_kept(v, item, it, *uid, value);
                        }
                    }
                }
            }
            Rec::Field {
                item,
                uid,
                value,
                ts,
            } => {
                changed_at.entry(item).or_default().push(*ts);
                match c.items.get(item) {
                    None => v.push(format!("edited item {item} is gone")),
                    Some(it) => field_kept(v, item, it, *uid, value),
                }
            }
            Rec::Title { item, title, ts } => {
                titles.entry(item).or_default().insert(title);
                changed_at.entry(item).or_default().push(*ts);
            }
            Rec::Trash { item, ts } | Rec::Untrash { item, ts } => {
                changed_at.entry(item).or_default().push(*ts);
            }
            Rec::Delete { item, ts } => {
                let e = deleted_at.entry(item).or_insert(*ts);
                *e = (*e).max(*ts);
            }
            Rec::AttachRemove { uuid } => {
                removed.insert(uuid);
            }
            Rec::Move { .. } | Rec::AttachAdd { .. } | Rec::Sync { .. } => {}
        }
    }
    for (item, it) in &c.items {
        if let Some(set) = titles.get(item.as_str()) {
            if !set.contains(it.title.as_str()) {
                v.push(format!("item {item} has a title no device set"));
            }
        }
        if let Some(&del) = deleted_at.get(item.as_str()) {
            let later = changed_at
                .get(item.as_str())
                .is_some_and(|ts| ts.iter().any(|&t| t > del));
            if !it.deleted && !later {
                let told = story
                    .get(item.as_str())
                    .map_or(String::new(), |s| s.join(", "));
                v.push(format!(
                    "item {item} was deleted at {del} and is back without a later edit \
                     (now trashed={}; records: {told})",
                    it.trashed
                ));
            }
        }
    }
    for (source, r) in &recs {
        let v: &mut Vec<String> = if app.is_some() && *source == app {
            &mut app_losses
        } else {
            &mut *v
        };
        if let Rec::AttachAdd {
            item,
            uuid,
            sha256: want,
            size,
        } = r
        {
            let Some((owner, sz, deleted)) = c.attachments.get(uuid) else {
                v.push(format!("attachment {uuid} is gone"));
                continue;
            };
            if owner != item || sz != size {
                v.push(format!("attachment {uuid} changed owner or size"));
            }
            // Deleting an item tombstones the attachments the deleting device has;
            // an edit elsewhere may revive the item (merge rule 6) but not them (rules
            // are per row), so an item delete counts as their removal.
            let item_was_deleted = deleted_at.contains_key(item.as_str());
            if *deleted && !removed.contains(uuid.as_str()) && !item_was_deleted {
                v.push(format!("attachment {uuid} was removed by no device"));
            }
            if !*deleted {
                for (d, dev) in devices.iter().enumerate() {
                    let mut buf = Vec::new();
                    match dev.read_attachment_to(uuid, &mut buf) {
                        Ok(_) if sha256(&buf) == *want => {}
                        Ok(_) => v.push(format!("attachment {uuid} on device {d}: wrong content")),
                        Err(e) => v.push(format!("attachment {uuid} on device {d}: {e}")),
                    }
                }
            }
        }
    }

    out.app_losses = app_losses;
    let v = &mut out.violations;
    // 6. Every committed remote database opens and passes integrity_check.
    let mut seen = BTreeSet::new();
    for d in (0..DEVICES).filter(|d| Some(*d) != app) {
        let journal = root.join(format!("state{d}")).join("journal");
        for e in std::fs::read_dir(&journal).unwrap() {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            if !seen.insert(sha256(&bytes)) {
                continue;
            }
            out.journal_dbs += 1;
            if let Err(e) = syncfabric::vault::verify_database_file(&p, key) {
                v.push(format!("committed database {} fails: {e}", p.display()));
            }
        }
    }
}

fn field_kept(v: &mut Vec<String>, item: &str, it: &ItemContent, uid: i64, value: &str) {
    match it.fields.get(&uid) {
        None => v.push(format!("field {uid} of item {item} is gone")),
        Some((live, _, history)) => {
            if live != value && !history.iter().any(|h| h == value) {
                v.push(format!(
                    "a value of field {uid} of item {item} is lost (neither live nor in history)"
                ));
            }
        }
    }
}

fn assert_clean(results: &[(u64, RunResult)]) {
    let broken: Vec<String> = results
        .iter()
        .filter(|(_, r)| !r.violations.is_empty() || !r.bad_errors.is_empty())
        .map(|(s, r)| {
            format!(
                "seed {s}: {} violations {:?}; bad errors {:?}",
                r.violations.len(),
                r.violations.iter().take(10).collect::<Vec<_>>(),
                r.bad_errors.iter().take(10).collect::<Vec<_>>()
            )
        })
        .collect();
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    for (_, r) in results {
        assert!(r.ops > 0 && r.syncs_ok > 0, "the run did nothing: {r:?}");
    }
}

/// The Enpass layout (issue #20): the vault in `Enpass/vault.enpassdbsync`, four
/// syncfabric devices and one Enpass-like writer ([`enpass_app::app_sync`]) that downloads, merges
/// a whole item at a time by timestamps and writes the file back with plain writes.
/// No value a syncfabric device set may be lost; the writer's own losses are counted.
#[test]
fn never_lose_data_enpass_layout_folder() {
    let results = run_seeds_in(
        Backend::Folder,
        None,
        "never_lose_data_enpass_layout_folder",
        true,
    );
    assert_clean(&results);
}

/// The same over Apache behind the flaky proxy: syncfabric commits under Apache's
/// WebDAV lock, which the writer ignores (Apache refuses its writes while a lock is
/// held: a failed sync of the writer, tried again later).
#[test]
fn never_lose_data_enpass_layout_apache_through_flaky_proxy() {
    let Some(server) = Server::start(Kind::Apache) else {
        return;
    };
    let test = "never_lose_data_enpass_layout_apache_through_flaky_proxy";
    let results = run_seeds_in(Backend::Flaky(Kind::Apache), Some(&server), test, true);
    assert_clean(&results);
}

/// The same over the Dropbox fake behind the flaky proxy: compare-and-swap on the
/// file's rev for syncfabric, plain `overwrite` uploads for the writer.
#[test]
fn never_lose_data_enpass_layout_dropbox_fake_through_flaky_proxy() {
    let test = "never_lose_data_enpass_layout_dropbox_fake_through_flaky_proxy";
    let results = run_seeds_in(Backend::DropboxFake, None, test, true);
    assert_clean(&results);
}

#[test]
fn never_lose_data_folder() {
    let results = run_seeds(Backend::Folder, None, "never_lose_data_folder");
    assert_clean(&results);
}

/// A WebDAV server behind the flaky proxy: the proxy must really have injected
/// faults, and nothing may be lost.
fn through_flaky_proxy(kind: Kind, test: &str) {
    let Some(server) = Server::start(kind) else {
        return;
    };
    run_through_flaky_proxy(kind, &server, test);
}

fn run_through_flaky_proxy(kind: Kind, server: &Server, test: &str) {
    let results = run_seeds(Backend::Flaky(kind), Some(server), test);
    for (_, r) in &results {
        assert!(r.proxy_faults > 0, "the proxy injected no fault: {r:?}");
    }
    assert_clean(&results);
}

#[test]
fn never_lose_data_apache_through_flaky_proxy() {
    through_flaky_proxy(Kind::Apache, "never_lose_data_apache_through_flaky_proxy");
}

/// rclone's conditional writes are not truthful. Under the lease lock this run lost
/// values (8 in seed 3 with 100 operations per device, see the WebDAV crate docs): a
/// lease cannot fence. Under rclone's own WebDAV lock it must lose nothing.
#[test]
fn never_lose_data_rclone_through_flaky_proxy() {
    through_flaky_proxy(Kind::Rclone, "never_lose_data_rclone_through_flaky_proxy");
}

/// WsgiDAV (PyPI) and webdav-server (npm): neither has a lock that fences, so commits
/// run under the lease lock; their PUTs write in place, so every upload goes through a
/// temporary name.
#[test]
fn never_lose_data_wsgidav_through_flaky_proxy() {
    through_flaky_proxy(Kind::Wsgidav, "never_lose_data_wsgidav_through_flaky_proxy");
}

#[test]
fn never_lose_data_webdav_server_through_flaky_proxy() {
    through_flaky_proxy(
        Kind::NodeWebdav,
        "never_lose_data_webdav_server_through_flaky_proxy",
    );
}

/// nginx with dav-ext: neither conditions nor locks are enforced (the lease); its
/// versions are content hashes.
#[test]
fn never_lose_data_nginx_through_flaky_proxy() {
    through_flaky_proxy(Kind::Nginx, "never_lose_data_nginx_through_flaky_proxy");
}

/// Dropbox (the fake from its HTTP reference) behind the flaky proxy and its own
/// throttling: commits are compare-and-swap on the file's `rev`.
#[test]
fn never_lose_data_dropbox_fake_through_flaky_proxy() {
    let results = run_seeds(
        Backend::DropboxFake,
        None,
        "never_lose_data_dropbox_fake_through_flaky_proxy",
    );
    for (_, r) in &results {
        assert!(r.proxy_faults > 0, "the proxy injected no fault: {r:?}");
    }
    assert_clean(&results);
}

/// lighttpd's mod_webdav: the lease (its locks are not used), versions hashed.
/// The Google Drive fake behind the flaky proxy (and its own 403/429 rate limits):
/// compare-and-swap on the v2 etag, every commit an `If-Match` upload.
#[test]
fn never_lose_data_gdrive_fake_through_flaky_proxy() {
    let results = run_seeds(
        Backend::GdriveFake,
        None,
        "never_lose_data_gdrive_fake_through_flaky_proxy",
    );
    for (_, r) in &results {
        assert!(r.proxy_faults > 0, "the proxy injected no fault: {r:?}");
    }
    assert_clean(&results);
}

#[test]
fn never_lose_data_lighttpd_through_flaky_proxy() {
    through_flaky_proxy(
        Kind::Lighttpd,
        "never_lose_data_lighttpd_through_flaky_proxy",
    );
}

/// Our own Wi-Fi Sync Server (`syncfabric-server`, in process) behind the flaky proxy:
/// the provider talks plain HTTP to the proxy, the proxy HTTPS to the server (trusting
/// its certificate alone). Commits are compare-and-swap on the server's strong ETags
/// (`If-Match` checked under a per-path lock right before the atomic rename).
#[test]
fn never_lose_data_syncfabric_server_through_flaky_proxy() {
    through_flaky_proxy(
        Kind::Syncfabric,
        "never_lose_data_syncfabric_server_through_flaky_proxy",
    );
}

/// SabreDAV under `php -S`: commits run under its WebDAV lock. When the proxy cuts
/// the answer to a `LOCK` the server granted, nobody can release that lock (SabreDAV
/// shows no tokens): it blocks every commit until it expires, and the stock backend
/// grants 1800 s whatever is asked (one CI run sat 20 minutes in it). The device that
/// took it fails its syncs at once saying so (`tests/stale_locks.rs`, on the stock
/// backend); this run's server grants the asked timeout instead, so that such a lock
/// ends within the run and the run goes on to show that nothing was lost.
#[test]
fn never_lose_data_sabredav_through_flaky_proxy() {
    let Some(server) = Server::start_sabre_granting_asked_timeouts() else {
        return;
    };
    run_through_flaky_proxy(
        Kind::Sabre,
        &server,
        "never_lose_data_sabredav_through_flaky_proxy",
    );
}

/// The oracle can fail: a finished, clean run is broken on purpose on device 0 (a
/// field's history wiped, a deleted item revived by hand without a later edit), and
/// the checks must see the lost values, the revived item and the divergence.
#[test]
fn the_oracle_catches_lost_values_revived_deletes_and_divergence() {
    let tamper = |root: &Path| {
        let mut v = Vault::open(root.join("dev0"), &Secret::new(PW), None).unwrap();
        let items = v.items().unwrap();
        let with_history = items
            .iter()
            .find(|i| !i.deleted && i.fields.iter().any(|f| f.history.len() >= 2))
            .expect("a field with history after the run")
            .clone();
        let mut edited = with_history.clone();
        for f in edited.fields.iter_mut().filter(|f| f.history.len() >= 2) {
            f.history.clear();
        }
        v.update_item(&edited).unwrap();
        let deleted = items
            .iter()
            .find(|i| i.deleted)
            .expect("a deleted item after the run");
        v.connection()
            .execute("UPDATE item SET deleted=0 WHERE uuid=?1", [&deleted.uuid])
            .unwrap();
    };
    let r = run_one_then(Backend::Folder, None, 7, 120, &tamper);
    let all = r.violations.join("\n");
    assert!(all.contains("differs from device 0"), "{all}");
    assert!(
        all.contains("is lost (neither live nor in history)"),
        "{all}"
    );
    assert!(all.contains("is back without a later edit"), "{all}");
}
