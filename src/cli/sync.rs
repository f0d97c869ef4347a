//! `syncfabric remote|sync|status|restore`

use super::config::{canonical, check_remote_name, check_remote_url, RemoteConfig};
use super::escape::for_terminal as t;
use super::{when, CliResult, Ctx};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use syncfabric::core::registry::OpenOptions;
use syncfabric::engine::{
    find_conflict_copies, merge_conflict_copy, remove_conflict_copy,
    restore_from_remote_with_progress, sync_vault, ConflictCopy, CopyBase, CopyMerge, Layout,
    StateDir, SyncError, SyncOptions,
};
use syncfabric::remote::{Credentials, Recorded, Remote, Verdict, Writes};
use syncfabric::vault::Vault;

#[derive(Subcommand, Debug)]
pub enum RemoteCmd {
    /// Add a remote for the vault.
    ///
    /// Example: syncfabric remote add nas folder:///mnt/nas/Enpass
    Add {
        /// A short name for it.
        name: String,
        /// Where (the providers below describe themselves).
        #[arg(long_help = remote_url_help())]
        url: String,
        /// For onedrive:/sharepoint: URLs, the login to use (see `syncfabric login`).
        #[arg(long)]
        account: Option<String>,
        /// Where the vault is kept there: `enpass` to share the Enpass apps' sync file
        /// (`Enpass/vault.enpassdbsync`); default: `enpass` when the remote holds such a
        /// file, else `syncfabric`.
        #[arg(long, value_enum)]
        layout: Option<LayoutArg>,
    },
    /// List the vault's remotes.
    List,
    /// Run the honesty probe again: are the remote's conditional writes truthful?
    Probe {
        /// The remote's name.
        name: String,
    },
    /// Run the storage conformance suite against the remote, in a scratch folder that
    /// is removed after: PASS, FAIL or SKIP per behaviour, then the probe's verdict.
    /// For qualifying a server (your own, or one in a container) or a new provider.
    ///
    /// Example: syncfabric remote check nas
    Check {
        /// The remote's name.
        name: String,
    },
    /// Break the server lock on the remote's vault folder, left by a sync that stopped
    /// mid-commit on another device (a crash, a lost connection). Shows who holds it
    /// and asks first.
    Unlock {
        /// The remote's name.
        name: String,
        /// Do not ask (needed with --json or without a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Forget a remote (its local sync state is removed; the remote is untouched).
    Rm {
        /// The remote's name.
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Sync only with this remote.
    remote: Option<String>,
    /// Show what the merge would do; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Allow a merge that deletes more than half of the vault's items.
    #[arg(long)]
    allow_mass_delete: bool,
    /// Upload this device's vault as the remote's copy when the remote copy is gone or
    /// corrupt (what was in a corrupt copy is lost; everything this device holds stays).
    #[arg(long)]
    recreate_remote: bool,
    /// Merge the conflict copies a desktop sync client (Dropbox, OneDrive, iCloud,
    /// Nextcloud) left beside the remote vault into this one, then remove them once the
    /// sync has pushed the result. Without it, copies found are named, and on a
    /// terminal `sync` asks whether to merge them (never with --json or --dry-run).
    /// A copy that does not open with the vault's key is reported and left.
    #[arg(long)]
    merge_copies: bool,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Watch only this remote (default: the vault's first remote).
    remote: Option<String>,
    /// Seconds between polls of a remote without a change feed.
    #[arg(long, default_value_t = 30)]
    interval: u64,
    /// Seconds of quiet after a local save before syncing it.
    #[arg(long, default_value_t = 2)]
    debounce: u64,
    /// Stop after this many syncs (for scripts and tests; default: run until killed).
    #[arg(long)]
    max_syncs: Option<u64>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The remote URL to restore a new local copy from ("restore from cloud").
    #[arg(required_unless_present = "journal")]
    url: Option<String>,
    /// Instead: undo a bad push by making journal entry SEQ (see `syncfabric status`)
    /// the vault's content again, here and on the remote.
    #[arg(long, value_name = "SEQ", conflicts_with = "url")]
    journal: Option<u64>,
    /// With --journal: the remote whose journal to use (default: the vault's first).
    #[arg(long)]
    remote: Option<String>,
    /// The vault's uuid (the remote's folder name); default: the only vault there.
    #[arg(long)]
    uuid: Option<String>,
    /// Also add the URL as a remote of the restored vault, with this name.
    #[arg(long, default_value = "origin")]
    name: String,
    /// For onedrive:/sharepoint: URLs, the login to use (see `syncfabric login`).
    #[arg(long)]
    account: Option<String>,
    /// Where the vault is kept there; default: the Enpass apps' sync file when the
    /// remote holds one, else syncfabric's own layout.
    #[arg(long, value_enum)]
    layout: Option<LayoutArg>,
}

impl RestoreArgs {
    /// A restore from `url` into the vault folder, its remote named `name`.
    #[cfg_attr(not(feature = "wifi"), allow(dead_code))]
    pub(super) fn from_remote(url: String, name: String) -> RestoreArgs {
        RestoreArgs {
            url: Some(url),
            journal: None,
            remote: None,
            uuid: None,
            name,
            account: None,
            layout: None,
        }
    }
}

/// The URL forms of every registered provider, as they describe themselves.
fn remote_url_help() -> String {
    let mut help = String::from("Where the vault is kept, one of:");
    for p in syncfabric::remote::registry().providers() {
        help.push_str(&format!("\n  {}  {}", p.example, p.summary));
    }
    help
}

pub(super) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// How a remote is reached: its URL and the credentials it needs, asked for once.
pub(super) struct Opener {
    url: String,
    creds: Credentials,
}

impl Opener {
    /// The credentials of `url`: a logged-in account's bearer for cloud remotes, or a
    /// password (`$SYNCFABRIC_REMOTE_PASSWORD`, the next stdin line with
    /// --password-stdin, or a prompt) for WebDAV.
    pub(super) fn new(ctx: &mut Ctx, url: &str, account: Option<&str>) -> CliResult<Opener> {
        let creds = if let Some(provider) = syncfabric::remote::account_provider(url) {
            Credentials::Bearer(super::accounts::bearer_for(ctx, provider, account)?)
        } else if syncfabric::remote::needs_password(url) {
            Credentials::Password(remote_password(ctx, url)?)
        } else {
            Credentials::None
        };
        Ok(Opener {
            url: url.to_string(),
            creds,
        })
    }

    /// `url` opened with `creds` as they are.
    #[cfg_attr(not(feature = "wifi"), allow(dead_code))]
    pub(super) fn with(url: &str, creds: Credentials) -> Opener {
        Opener {
            url: url.to_string(),
            creds,
        }
    }

    /// Opens the remote as it is, unprobed: for looking at it, never for the engine.
    pub(super) async fn open_raw(
        &self,
        opts: OpenOptions,
    ) -> Result<std::sync::Arc<dyn syncfabric::core::Storage>, syncfabric::core::Error> {
        syncfabric::remote::open_url(&self.url, &self.creds, opts).await
    }

    /// Opens and readies the remote for the engine (see [`Remote::open_with`]): with
    /// `recorded`, or probed now.
    pub(super) fn connect(
        &self,
        rt: &tokio::runtime::Runtime,
        opts: OpenOptions,
        recorded: Recorded<'_>,
    ) -> CliResult<Remote> {
        let open = Remote::open_with(&self.url, &self.creds, opts, recorded);
        Ok(rt.block_on(open)?)
    }
}

/// A password remote's password: `$SYNCFABRIC_REMOTE_PASSWORD`, else the token store
/// when a remote with this URL keeps it there (`pair`), else the next stdin line with
/// --password-stdin, or a prompt.
fn remote_password(ctx: &mut Ctx, url: &str) -> CliResult<syncfabric::vault::Secret> {
    const ENV: &str = "SYNCFABRIC_REMOTE_PASSWORD";
    let stored = ctx
        .config
        .remotes
        .iter()
        .any(|r| r.url == url && r.stored_password);
    if !stored || std::env::var_os(ENV).is_some() {
        return ctx.secret(ENV, "Remote password");
    }
    let store = super::accounts::open_store(ctx)?;
    let key = syncfabric::core::registry::password_key(
        &syncfabric::core::registry::StorageUrl::parse(url)?,
    );
    let secret = runtime()?
        .block_on(syncfabric::core::auth::TokenStore::get(
            store.as_ref(),
            &key,
        ))?
        .ok_or_else(|| {
            format!(
                "the token store holds no password for {}: pair again",
                t(url)
            )
        })?;
    Ok(syncfabric::vault::Secret::new(secret.expose()))
}

/// Opens a remote as it is, unprobed (for looking at its locks).
pub(super) fn open_remote(
    ctx: &mut Ctx,
    rt: &tokio::runtime::Runtime,
    url: &str,
    account: Option<&str>,
) -> CliResult<std::sync::Arc<dyn syncfabric::core::Storage>> {
    let opener = Opener::new(ctx, url, account)?;
    Ok(rt.block_on(opener.open_raw(OpenOptions::default()))?)
}

/// What the honesty probe measured, at default verbosity: the verdict's reasons, and
/// the warnings a person must see (versions that repeat, writes that damage files).
fn print_probe(report: &syncfabric::core::probe::ProbeReport, verdict: &Verdict) {
    println!("  why: {}", verdict.explain());
    println!("  probe: {}", report.summary());
    if !report.strong_versions {
        println!(
            "  warning: this server gave two writes in a row the same version (its ETag is \
likely built from a whole-second time and the size); syncfabric does not trust it and \
marks every commit with a file of its own, {}",
            syncfabric::engine::marker::MARKER
        );
    }
    match verdict.writes {
        Writes::Atomic => {}
        Writes::Staged => println!(
            "  note: a write cut mid-body damaged the file on this server; every upload \
now goes to a temporary name and is moved into place, which kept the old content"
        ),
        Writes::Unsafe => println!(
            "  warning: a write cut mid-body damaged the file on this server, even when \
uploaded to a temporary name first: a broken connection during a sync can leave a \
damaged vault file there until the next sync replaces it (this device's copy is never \
touched)"
        ),
    }
}

/// Records `verdict` for the remote `name` of the vault `vault` in the config.
fn record_verdict(ctx: &mut Ctx, name: &str, vault: &Path, verdict: &Verdict) -> CliResult {
    for r in ctx
        .config
        .remotes
        .iter_mut()
        .filter(|r| r.name == name && canonical(&r.vault) == vault)
    {
        r.record(verdict);
    }
    ctx.config.save(&ctx.config_path)?;
    Ok(())
}

/// The remote `r` of the vault `vault`, ready for the engine: opened, and wrapped with
/// its recorded verdict, or probed now (and the verdict recorded) when it has none.
fn connect_remote(
    ctx: &mut Ctx,
    rt: &tokio::runtime::Runtime,
    r: &RemoteConfig,
    vault: &Path,
) -> CliResult<Remote> {
    let opener = Opener::new(ctx, &r.url, r.account.as_deref())?;
    let remote = opener.connect(rt, OpenOptions::default(), r.recorded())?;
    if remote.probe().is_some() {
        record_verdict(ctx, &r.name, vault, &remote.verdict())?;
    }
    Ok(remote.with_layout(r.layout()?))
}

/// The layout a person chose with `--layout`, else the one an Enpass file found on the
/// remote calls for (`Enpass/vault.enpassdbsync`, or at the URL itself), else
/// syncfabric's.
fn choose_layout(
    rt: &tokio::runtime::Runtime,
    storage: &dyn syncfabric::core::Storage,
    asked: Option<LayoutArg>,
) -> CliResult<Layout> {
    let found = rt.block_on(syncfabric::engine::find_enpass_file(storage))?;
    Ok(match (asked, found) {
        (Some(LayoutArg::Syncfabric), _) => Layout::Syncfabric,
        (Some(LayoutArg::Enpass), Some(found)) | (None, Some(found)) => found,
        (Some(LayoutArg::Enpass), None) => Layout::enpass(),
        (None, None) => Layout::Syncfabric,
    })
}

/// `--layout`: where a remote keeps the vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    /// A folder per vault (`<uuid>/vault.enpassdb`, `vault.json`, attachment files).
    Syncfabric,
    /// The Enpass apps' own sync file, `Enpass/vault.enpassdbsync`, to share one folder
    /// with them (attachments stored in files are not carried).
    Enpass,
}

fn describe_layout(l: &Layout) -> String {
    match l.enpass_dir() {
        None => "syncfabric (a folder per vault)".into(),
        Some(d) if d.is_root() => "enpass (vault.enpassdbsync at the URL)".into(),
        Some(d) => format!("enpass ({}/vault.enpassdbsync)", d.as_str()),
    }
}

/// The sync state folder of `remote` (a checked name: it becomes a path component).
pub fn state_dir(vault: &Path, remote: &str) -> CliResult<StateDir> {
    check_remote_name(remote)?;
    Ok(StateDir::open(vault.join(".syncfabric").join(remote))?)
}

/// A remote about to be added.
pub(super) struct NewRemote {
    pub name: String,
    pub url: String,
    pub account: Option<String>,
    pub layout: Option<LayoutArg>,
    /// Its password is in the token store (see [`remote_password`]).
    pub stored_password: bool,
}

/// Adds remote `r` to `vault` through `opener`: creates its folder, probes it, finds
/// its layout, records the verdict, and says so.
pub(super) fn add_remote(ctx: &mut Ctx, vault: &Path, r: NewRemote, opener: &Opener) -> CliResult {
    if ctx
        .config
        .remotes_of(vault)
        .iter()
        .any(|x| x.name == r.name)
    {
        return Err(format!("remote {:?} exists already (remove it first)", r.name).into());
    }
    let rt = runtime()?;
    let create = OpenOptions::default().with_create_root();
    let connected = opener.connect(&rt, create, Recorded::default())?;
    let verdict = connected.verdict();
    let report = connected.probe().ok_or("the probe did not run")?.clone();
    let layout = choose_layout(&rt, connected.storage().as_ref(), r.layout)?;
    let name = r.name.clone();
    let mut remote = RemoteConfig {
        name: r.name,
        vault: vault.to_path_buf(),
        url: r.url,
        cas: None,
        versions: None,
        writes: None,
        account: r.account,
        layout: None,
        layout_dir: None,
        stored_password: r.stored_password,
    };
    remote.record(&verdict);
    remote.set_layout(&layout);
    ctx.config.remotes.push(remote);
    ctx.config.save(&ctx.config_path)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "added": name, "cas": verdict.trust.as_str(), "versions": verdict.versions_str(), "writes": verdict.writes.as_str(), "probe": report.summary() }));
    } else {
        println!(
            "added remote {name} (commits: {}; layout: {}); run `syncfabric sync` to sync",
            verdict.trust.as_str(),
            describe_layout(&layout)
        );
        print_probe(&report, &verdict);
    }
    Ok(())
}

pub fn remote_cmd(ctx: &mut Ctx, cmd: RemoteCmd) -> CliResult {
    let vault = canonical(&ctx.vault_dir()?);
    match cmd {
        RemoteCmd::Add {
            name,
            url,
            account,
            layout,
        } => {
            check_remote_name(&name)?;
            check_remote_url(&url)?;
            let account = syncfabric::remote::account_provider(&url)
                .map(|_| account.unwrap_or_else(|| "default".to_string()));
            let opener = Opener::new(ctx, &url, account.as_deref())?;
            let added = NewRemote {
                name,
                url,
                account,
                layout,
                stored_password: false,
            };
            add_remote(ctx, &vault, added, &opener)?;
        }
        RemoteCmd::List => {
            let rs = ctx.config.remotes_of(&vault);
            if ctx.json {
                ctx.print_json(&serde_json::json!(rs
                    .iter()
                    .map(|r| serde_json::json!({"name": r.name, "url": r.url, "layout": r.layout.as_deref().unwrap_or("syncfabric")}))
                    .collect::<Vec<_>>()));
            } else {
                for r in rs {
                    let layout = match r.layout.as_deref() {
                        Some("enpass") => "  (the Enpass apps' sync file)",
                        _ => "",
                    };
                    println!("{:<12} {}{layout}", r.name, t(&r.url));
                }
            }
        }
        RemoteCmd::Probe { name } => {
            let rt = runtime()?;
            let Some(url) = ctx
                .config
                .remotes_of(&vault)
                .iter()
                .find(|r| r.name == name)
                .map(|r| (r.url.clone(), r.account.clone()))
            else {
                return Err(format!("no remote {name:?} for this vault").into());
            };
            let (url, account) = url;
            let opener = Opener::new(ctx, &url, account.as_deref())?;
            let connected = opener.connect(&rt, OpenOptions::default(), Recorded::default())?;
            let verdict = connected.verdict();
            let report = connected.probe().ok_or("the probe did not run")?.clone();
            record_verdict(ctx, &name, &vault, &verdict)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "remote": name, "cas": verdict.trust.as_str(), "versions": verdict.versions_str(), "writes": verdict.writes.as_str(), "probe": report.summary() }));
            } else {
                println!("{name}: commits: {}", verdict.trust.as_str());
                print_probe(&report, &verdict);
            }
        }
        RemoteCmd::Check { name } => super::check::check_cmd(ctx, &vault, &name)?,
        RemoteCmd::Unlock { name, yes } => super::unlock::unlock_cmd(ctx, &vault, &name, yes)?,
        RemoteCmd::Rm { name } => {
            let before = ctx.config.remotes.len();
            ctx.config
                .remotes
                .retain(|r| !(r.name == name && canonical(&r.vault) == vault));
            if ctx.config.remotes.len() == before {
                return Err(format!("no remote {name:?} for this vault").into());
            }
            ctx.config.save(&ctx.config_path)?;
            // The name was checked when the config was read: one path component.
            check_remote_name(&name)?;
            let _ = std::fs::remove_dir_all(vault.join(".syncfabric").join(&name));
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "removed": name }));
            } else {
                println!("removed remote {name}");
            }
        }
    }
    Ok(())
}

/// Item stamps before a sync, of the vault and of the last committed base.
struct Before {
    local: syncfabric::vault::ItemStamps,
    base: syncfabric::vault::ItemStamps,
}

impl Before {
    fn take(vault: &Vault, state: &StateDir) -> CliResult<Before> {
        let base = state.base_db();
        let base = if base.exists() {
            // Unreadable (re-keyed elsewhere, damaged): the sync says so; the summary
            // then counts every item as going out.
            syncfabric::vault::item_stamps_in_file(&base, vault.key()).unwrap_or_default()
        } else {
            Default::default()
        };
        Ok(Before {
            local: vault.item_stamps()?,
            base,
        })
    }
}

/// What one sync did: items in (changed here by the sync), items out (local changes
/// since the base, when a commit was made), and the engine's report.
struct Done {
    items_in: super::summary::Changes,
    items_out: super::summary::Changes,
    report: syncfabric::engine::SyncReport,
}

impl Done {
    fn of(
        vault: &Vault,
        before: Before,
        report: syncfabric::engine::SyncReport,
    ) -> CliResult<Done> {
        let after = vault.item_stamps()?;
        let items_out = if report.uploaded_db {
            super::summary::diff(&before.base, &before.local)
        } else {
            Default::default()
        };
        Ok(Done {
            items_in: super::summary::diff(&before.local, &after),
            items_out,
            report,
        })
    }

    fn json(&self, remote: &str) -> serde_json::Value {
        let r = &self.report;
        let (down, up, gone) = r.attachments;
        serde_json::json!({
            "remote": remote,
            "outcome": format!("{:?}", r.outcome),
            "downloaded_db": r.downloaded_db,
            "uploaded_db": r.uploaded_db,
            "items_in": self.items_in.json(),
            "items_out": self.items_out.json(),
            "conflicts": r.conflicts,
            "attachments": { "downloaded": down, "uploaded": up, "deleted_remotely": gone },
            "attempts": r.attempts,
            "report": r.merge_report,
        })
    }

    fn print(&self, remote: &str, dry_run: bool) {
        let r = &self.report;
        println!("{remote}: {:?}", r.outcome);
        if !dry_run {
            println!("    in   {}", self.items_in.describe());
            println!("    out  {}", self.items_out.describe());
        }
        if r.conflicts > 0 {
            println!(
                "    {} conflict{} resolved; each losing value is kept in its field's history (`syncfabric item history TITLE`)",
                r.conflicts,
                if r.conflicts == 1 { "" } else { "s" }
            );
        }
        let (down, up, gone) = r.attachments;
        if down + up + gone > 0 {
            println!(
                "    attachments: {down} downloaded, {up} uploaded, {gone} removed from the remote"
            );
        }
        if dry_run {
            if let Some(m) = &r.merge_report {
                println!("{}", t(m));
            }
        }
    }
}

/// What became of one conflict copy.
enum CopyFate {
    /// Found, not merged (no --merge-copies, no "y", or a dry run).
    Named,
    /// Merged into the vault; removed once the sync pushed it.
    Merged { merge: CopyMerge, removed: bool },
    /// Left in place: a sentence that names it and says why.
    Left(String),
}

/// The conflict copies of one remote, and what became of each.
struct Copies {
    found: Vec<(ConflictCopy, CopyFate)>,
}

impl Copies {
    /// Merges each copy when `merge` (a copy that fails is kept and reported).
    fn merge(
        rt: &tokio::runtime::Runtime,
        vault: &mut Vault,
        remote: &Remote,
        state: &StateDir,
        opts: &SyncOptions,
        copies: Vec<ConflictCopy>,
        merge: bool,
    ) -> Copies {
        let mut found = Vec::new();
        for c in copies {
            let fate = if !merge || opts.dry_run {
                CopyFate::Named
            } else {
                match rt.block_on(merge_conflict_copy(vault, remote, state, opts, &c)) {
                    Ok(merge) => CopyFate::Merged {
                        merge,
                        removed: false,
                    },
                    Err(e @ SyncError::CopyUnreadable { .. }) => CopyFate::Left(e.to_string()),
                    Err(e) => CopyFate::Left(format!("{} was left in place: {e}", c.path)),
                }
            };
            found.push((c, fate));
        }
        Copies { found }
    }

    /// After a sync that pushed the merged rows: removes the merged copies.
    fn remove_merged(&mut self, rt: &tokio::runtime::Runtime, remote: &Remote) {
        for (c, fate) in self.found.iter_mut() {
            if let CopyFate::Merged { merge, removed } = fate {
                match rt.block_on(remove_conflict_copy(remote, c, merge)) {
                    Ok(()) => *removed = true,
                    Err(e) => {
                        *fate =
                            CopyFate::Left(format!("{} was merged, but not removed: {e}", c.path))
                    }
                }
            }
        }
    }

    fn json(&self) -> serde_json::Value {
        let one = |(c, fate): &(ConflictCopy, CopyFate)| {
            let (merged, removed, base, error) = match fate {
                CopyFate::Named => (false, false, None, None),
                CopyFate::Merged { merge, removed } => {
                    (true, *removed, Some(base_name(merge.base)), None)
                }
                CopyFate::Left(e) => (false, false, None, Some(e.as_str())),
            };
            serde_json::json!({
                "path": c.path.as_str(),
                "merged": merged,
                "removed": removed,
                "base": base,
                "error": error,
            })
        };
        self.found.iter().map(one).collect()
    }

    fn print(&self, remote: &str) {
        let mut unmerged = 0;
        for (c, fate) in &self.found {
            // A copy's name comes from the remote: shown escaped.
            let path = t(c.path.as_str());
            match fate {
                CopyFate::Merged { merge, removed } => {
                    let done = if *removed {
                        "merged and removed"
                    } else {
                        "merged"
                    };
                    println!(
                        "{remote}: {done} the conflict copy {path} (against {}; {} conflict(s))",
                        base_name(merge.base),
                        merge.conflicts
                    )
                }
                CopyFate::Named => {
                    unmerged += 1;
                    println!("{remote}: conflict copy {path} (not merged)")
                }
                // Names the copy; text from the remote: escaped.
                CopyFate::Left(e) => println!("{remote}: conflict copy {}", t(e)),
            }
        }
        if unmerged > 0 {
            println!("  merge them into the vault with: syncfabric sync --merge-copies");
        }
    }
}

/// The common ancestor a copy was merged against, in words.
fn base_name(base: CopyBase) -> String {
    match base {
        CopyBase::LastSync => "the last sync".into(),
        CopyBase::Journal(seq) => format!("journal commit {seq}"),
        CopyBase::None => "no common base: two-way".into(),
    }
}

/// Whether to merge the `n` copies found: `--merge-copies`, else a "y" at the
/// question when standard input is a terminal (never with --json or --dry-run).
fn merge_copies_wanted(ctx: &mut Ctx, args: &SyncArgs, n: usize) -> CliResult<bool> {
    use std::io::IsTerminal;
    if args.merge_copies || n == 0 {
        return Ok(args.merge_copies);
    }
    if ctx.json || args.dry_run || !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("merge {n} conflict copies? [y/N] ");
    let line = ctx.next_stdin_line()?.unwrap_or_default();
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

pub fn sync_cmd(ctx: &mut Ctx, args: SyncArgs) -> CliResult {
    let mut vault = ctx.open_vault()?;
    let dir = canonical(vault.dir());
    let remotes: Vec<RemoteConfig> = ctx
        .config
        .remotes_of(&dir)
        .into_iter()
        .filter(|r| args.remote.as_ref().is_none_or(|n| &r.name == n))
        .cloned()
        .collect();
    if remotes.is_empty() {
        return Err("no remote to sync with: add one with `syncfabric remote add NAME URL`".into());
    }
    let opts = SyncOptions {
        dry_run: args.dry_run,
        allow_mass_delete: args.allow_mass_delete,
        recreate_remote: args.recreate_remote,
        progress: ctx.progress(),
        lease: super::unlock::lease_options(ctx),
        ..Default::default()
    };
    let rt = runtime()?;
    let mut out = Vec::new();
    for r in remotes {
        let remote = connect_remote(ctx, &rt, &r, &dir)?;
        let state = state_dir(&dir, &r.name)?;
        let before = Before::take(&vault, &state)?;
        let copies = rt.block_on(find_conflict_copies(&vault, &remote))?;
        let merge = merge_copies_wanted(ctx, &args, copies.len())?;
        let mut copies = Copies::merge(&rt, &mut vault, &remote, &state, &opts, copies, merge);
        let report = rt.block_on(sync_vault(&mut vault, &remote, &state, &opts))?;
        if !args.dry_run {
            copies.remove_merged(&rt, &remote);
        }
        let done = Done::of(&vault, before, report)?;
        if ctx.json {
            let mut v = done.json(&r.name);
            v["conflict_copies"] = copies.json();
            out.push(v);
        } else {
            copies.print(&r.name);
            done.print(&r.name, args.dry_run);
        }
    }
    if ctx.json {
        ctx.print_json(&serde_json::Value::Array(out));
    }
    Ok(())
}

pub fn status_cmd(ctx: &mut Ctx, changes: bool) -> CliResult {
    let dir = canonical(&ctx.vault_dir()?);
    // With --changes, each journal commit is compared with the one before it (item
    // stamps only; the key is needed to read the files).
    let key = if changes {
        Some(ctx.open_vault()?.key().clone())
    } else {
        None
    };
    let mut out = Vec::new();
    for r in ctx.config.remotes_of(&dir) {
        let state = state_dir(&dir, &r.name)?;
        let st = state.load()?;
        let mut prev: Option<syncfabric::vault::ItemStamps> = None;
        let mut journal = Vec::new();
        for e in &st.journal {
            let changed = match &key {
                Some(k) => {
                    let now = syncfabric::vault::item_stamps_in_file(state.journal_file(e), k).ok();
                    let c = match (&prev, &now) {
                        (Some(p), Some(n)) => Some(super::summary::diff(p, n)),
                        (None, Some(n)) => Some(super::summary::diff(&Default::default(), n)),
                        _ => None,
                    };
                    prev = now;
                    c
                }
                None => None,
            };
            journal.push((e, changed));
        }
        out.push(serde_json::json!({
            "remote": r.name, "url": r.url,
            "last_sync": st.last_sync, "remote_version": st.remote_version,
            "journal": journal.iter().map(|(e, c)| {
                let mut j = serde_json::json!({
                    "seq": e.seq, "remote_version": e.remote_version, "recorded_at": e.recorded_at,
                });
                if let Some(c) = c {
                    j["changed"] = c.json();
                }
                j
            }).collect::<Vec<_>>(),
        }));
        if !ctx.json {
            let last = st
                .last_sync
                .map(|t| format!("last sync {}", when::date_ago(t as i64)))
                .unwrap_or_else(|| "never synced".into());
            println!("{:<12} {}  ({last})", r.name, t(&r.url));
            for (i, (e, c)) in journal.iter().enumerate().rev() {
                let what = match c {
                    Some(c) if i == 0 => format!("  holds {}", c.describe()),
                    Some(c) => format!("  changed {}", c.describe()),
                    None if changes => "  (unreadable)".into(),
                    None => String::new(),
                };
                println!(
                    "    journal {:>4}  committed {}{what}",
                    e.seq,
                    when::date_ago(e.recorded_at as i64)
                );
            }
        }
    }
    if ctx.json {
        ctx.print_json(&serde_json::Value::Array(out));
    }
    Ok(())
}

pub fn restore_cmd(ctx: &mut Ctx, args: RestoreArgs) -> CliResult {
    if let Some(seq) = args.journal {
        return undo_cmd(ctx, seq, args.remote.as_deref());
    }
    let Some(url) = args.url.clone() else {
        return Err(
            "restore needs a URL (restore from cloud) or --journal SEQ (undo a bad push)".into(),
        );
    };
    check_remote_name(&args.name)?;
    check_remote_url(&url)?;
    let dest: PathBuf = ctx.vault_dir()?;
    if dest.join("vault.json").exists() {
        return Err(format!(
            "{} already holds a vault; restore into an empty folder",
            dest.display()
        )
        .into());
    }
    let rt = runtime()?;
    let account = syncfabric::remote::account_provider(&url).map(|_| {
        args.account
            .clone()
            .unwrap_or_else(|| "default".to_string())
    });
    // Probed first: the restore records the version it syncs with next, and where
    // versions repeat that is the commit marker's, not the server's.
    let opener = Opener::new(ctx, &url, account.as_deref())?;
    let remote = opener.connect(&rt, OpenOptions::default(), Recorded::default())?;
    let (storage, verdict) = (remote.storage().clone(), remote.verdict());
    let layout = choose_layout(&rt, storage.as_ref(), args.layout)?;
    let remote = remote.with_layout(layout.clone());
    let uuid = match args.uuid {
        Some(u) => u,
        // The Enpass file holds one vault, whichever it is.
        None if layout != Layout::Syncfabric => String::new(),
        None => {
            let entries = rt.block_on(storage.list(&syncfabric::core::RemotePath::root()))?;
            let mut vaults = Vec::new();
            for e in entries
                .iter()
                .filter(|e| e.kind == syncfabric::core::EntryKind::Dir)
            {
                let db = e.path.join("vault.enpassdb")?;
                if rt.block_on(storage.stat(&db))?.is_some() {
                    vaults.push(e.path.as_str().to_string());
                }
            }
            match vaults.len() {
                1 => vaults.remove(0),
                0 => return Err(format!("no vault found at {url}").into()),
                _ => {
                    return Err(format!(
                        "several vaults at {}: pick one with --uuid ({})",
                        url,
                        vaults.join(", ")
                    )
                    .into())
                }
            }
        }
    };
    let pw = ctx.secret("SYNCFABRIC_PASSWORD", "Master password")?;
    let kf = ctx.keyfile()?;
    let cleanup = RestoreCleanup::new(&dest, &args.name);
    syncfabric::vault::create_private_dir_all(&dest)?;
    let state = state_dir(&dest, &args.name)?;
    let vault = rt.block_on(restore_from_remote_with_progress(
        &remote,
        &uuid,
        &dest,
        &state,
        &pw,
        kf.as_ref(),
        ctx.progress().as_ref(),
    ))?;
    cleanup.done();
    let uuid = vault.meta().vault_uuid().unwrap_or(&uuid).to_string();
    let vdir = canonical(vault.dir());
    if !ctx
        .config
        .remotes_of(&vdir)
        .iter()
        .any(|r| r.name == args.name)
    {
        let mut remote = RemoteConfig {
            name: args.name.clone(),
            vault: vdir,
            url: url.clone(),
            cas: None,
            versions: None,
            writes: None,
            account,
            layout: None,
            layout_dir: None,
            stored_password: false,
        };
        remote.record(&verdict);
        remote.set_layout(&layout);
        ctx.config.remotes.push(remote);
        ctx.config.save(&ctx.config_path)?;
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "restored": uuid, "path": dest }));
    } else {
        println!(
            "restored vault {uuid} into {} (remote {})",
            dest.display(),
            args.name
        );
    }
    Ok(())
}

/// What `restore` makes before the engine runs (the vault folder, its `.syncfabric`
/// and the remote's state folder), removed again if the restore fails. The engine
/// removes what it makes itself (staging folder, vault files, state files).
struct RestoreCleanup {
    made: Vec<PathBuf>,
    state: Option<PathBuf>,
}

impl RestoreCleanup {
    fn new(dest: &Path, remote: &str) -> RestoreCleanup {
        let sf = dest.join(".syncfabric");
        let state = sf.join(remote);
        let missing = |p: &Path| std::fs::symlink_metadata(p).is_err();
        RestoreCleanup {
            // Innermost first: each is removed only if empty.
            made: [sf.clone(), dest.to_path_buf()]
                .into_iter()
                .filter(|p| missing(p))
                .collect(),
            state: missing(&state).then_some(state),
        }
    }

    fn done(mut self) {
        self.made.clear();
        self.state = None;
    }
}

impl Drop for RestoreCleanup {
    fn drop(&mut self) {
        if let Some(state) = &self.state {
            let _ = std::fs::remove_dir_all(state);
        }
        for dir in &self.made {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

pub fn watch_cmd(ctx: &mut Ctx, args: WatchArgs) -> CliResult {
    use std::time::Duration;
    use syncfabric::core::{watch::watch_or_poll, RemotePath};
    let mut vault = ctx.open_vault()?;
    let dir = canonical(vault.dir());
    let Some(r) = ctx
        .config
        .remotes_of(&dir)
        .into_iter()
        .find(|r| args.remote.as_ref().is_none_or(|n| &r.name == n))
        .cloned()
    else {
        return Err("no remote to watch: add one with `syncfabric remote add NAME URL`".into());
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let remote = connect_remote(ctx, &rt, &r, &dir)?;
    let state = state_dir(&dir, &r.name)?;
    let uuid = vault.meta().vault_uuid().unwrap_or_default().to_string();
    let remote_dir = remote.layout().locate(&uuid)?.dir;
    // The local vault folder, watched through the folder provider's own change feed.
    let local: std::sync::Arc<dyn syncfabric::core::Storage> =
        std::sync::Arc::new(syncfabric::folder::FolderStorage::new(&dir)?);
    let json = ctx.json;
    let opts = SyncOptions {
        progress: ctx.progress(),
        lease: super::unlock::lease_options(ctx),
        ..Default::default()
    };
    let interval = Duration::from_secs(args.interval.max(1));
    let debounce = Duration::from_secs(args.debounce);
    rt.block_on(async move {
        let mut remote_feed = watch_or_poll(remote.storage().clone(), &remote_dir, interval).await?;
        let mut local_feed = watch_or_poll(local.clone(), &RemotePath::root(), interval).await?;
        let mut syncs = 0u64;
        let mut failures = 0u32;
        loop {
            let before = Before::take(&vault, &state)?;
            match sync_vault(&mut vault, &remote, &state, &opts).await {
                Ok(report) => {
                    failures = 0;
                    let done = Done::of(&vault, before, report)?;
                    if json {
                        println!("{}", done.json(&r.name));
                    } else {
                        done.print(&r.name, false);
                    }
                }
                Err(e) => {
                    // Keep watching through outages, backing off; say what happened.
                    failures += 1;
                    eprintln!("{}: sync failed: {}", r.name, t(&e.to_string()));
                    let wait = Duration::from_secs((1u64 << failures.min(8)).min(300));
                    tokio::time::sleep(wait).await;
                }
            }
            syncs += 1;
            if args.max_syncs.is_some_and(|m| syncs >= m) {
                return Ok::<(), Box<dyn std::error::Error>>(());
            }
            // Wait for a change on either side; local saves are debounced.
            tokio::select! {
                c = remote_feed.next() => { if c.is_none() { return Err("the remote change feed ended".into()); } }
                c = local_feed.next() => {
                    if c.is_none() { return Err("the local change feed ended".into()); }
                    // Let a burst of saves settle (and ignore our own sync-state writes).
                    while let Ok(Some(_)) = tokio::time::timeout(debounce, local_feed.next()).await {}
                }
            }
        }
    })?;
    Ok(())
}

fn undo_cmd(ctx: &mut Ctx, seq: u64, remote: Option<&str>) -> CliResult {
    let mut vault = ctx.open_vault()?;
    let dir = canonical(vault.dir());
    let Some(r) = ctx
        .config
        .remotes_of(&dir)
        .into_iter()
        .find(|r| remote.is_none_or(|n| r.name == n))
        .cloned()
    else {
        return Err(
            "no remote with that name for this vault (see `syncfabric remote list`)".into(),
        );
    };
    let rt = runtime()?;
    let remote = connect_remote(ctx, &rt, &r, &dir)?;
    let state = state_dir(&dir, &r.name)?;
    let report = rt.block_on(syncfabric::engine::restore_journal(
        &mut vault,
        &remote,
        &state,
        seq,
        &SyncOptions {
            progress: ctx.progress(),
            lease: super::unlock::lease_options(ctx),
            ..Default::default()
        },
    ))?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "restored_journal": seq, "remote": r.name, "outcome": format!("{:?}", report.outcome) }));
    } else {
        println!(
            "{}: journal entry {seq} restored ({:?}); other devices get it on their next sync",
            r.name, report.outcome
        );
    }
    Ok(())
}
