//! Argument parsing and command dispatch.

mod accounts;
mod attach;
mod audit;
mod breach;
mod check;
mod config;
pub mod escape;
mod generate;
mod items;
#[cfg(feature = "wifi")]
mod pair;
mod progress;
#[cfg(feature = "wifi")]
mod serve;
mod strength;
mod summary;
mod sync;
mod unlock;
mod when;

use clap::{Parser, Subcommand};
use config::Config;
use std::io::BufRead;
use std::path::PathBuf;
use syncfabric::vault::{Keyfile, Secret, Vault};

/// A CLI failure: one line that says what went wrong and what to do.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser, Debug)]
#[command(
    name = "syncfabric",
    version,
    about = "Keep an Enpass 6 vault in sync through storage you own.",
    long_about = "Keep an Enpass 6 vault in sync through storage you own.\n\n\
The master password is read from $SYNCFABRIC_PASSWORD, from the first line of standard \
input with --password-stdin, or from an interactive prompt; never from an argument.\n\n\
Example:\n  syncfabric --vault ~/Enpass/primary vault create --name Personal\n  \
syncfabric --vault ~/Enpass/primary item add --title Bank --username me --generate 20\n  \
syncfabric --vault ~/Enpass/primary remote add nas folder:///mnt/nas/Enpass\n  \
syncfabric --vault ~/Enpass/primary sync"
)]
pub struct Cli {
    /// The vault folder (holds vault.json and vault.enpassdb). Default: the config's default_vault.
    #[arg(long, global = true, env = "SYNCFABRIC_VAULT")]
    vault: Option<PathBuf>,
    /// The vault's keyfile, if it has one.
    #[arg(long, global = true, env = "SYNCFABRIC_KEYFILE")]
    keyfile: Option<PathBuf>,
    /// Read the master password from the first line of standard input.
    #[arg(long, global = true)]
    password_stdin: bool,
    /// The config file (default: $XDG_CONFIG_HOME/syncfabric/config.toml).
    #[arg(long, global = true, env = "SYNCFABRIC_CONFIG")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v, -vv). Secrets are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars. (They are drawn on stderr only when it is a terminal, and
    /// never with --json.)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a vault, show it, change its master password.
    #[command(subcommand)]
    Vault(VaultCmd),
    /// Add, list, show, edit, trash and delete items.
    #[command(subcommand)]
    Item(items::ItemCmd),
    /// Make keyfiles.
    #[command(subcommand)]
    Keyfile(KeyfileCmd),
    /// Add, list and remove the remotes a vault syncs with.
    #[command(subcommand)]
    Remote(sync::RemoteCmd),
    /// Sync the vault with its remotes (all, or the one named).
    ///
    /// Example: syncfabric sync nas --dry-run
    Sync(sync::SyncArgs),
    /// Show the sync state of the vault's remotes: the last sync and the journal of
    /// commits, with dates (UTC) and how long ago.
    ///
    /// Example: syncfabric status --changes
    Status {
        /// Also say what each journal commit changed (opens the vault).
        #[arg(long)]
        changes: bool,
    },
    /// Keep syncing: at start, whenever the remote changes (change feed where the
    /// storage has one, polling otherwise), and after local saves (debounced).
    ///
    /// Example: syncfabric watch --interval 30
    Watch(sync::WatchArgs),
    /// Make a local copy of a vault from a remote ("restore from cloud").
    ///
    /// Example: syncfabric --vault ~/Enpass/primary restore folder:///mnt/nas/Enpass --uuid <vault-uuid>
    Restore(sync::RestoreArgs),
    /// Log in to a cloud provider, and keep the tokens in the encrypted token file
    /// (passphrase from $SYNCFABRIC_TOKEN_PASSPHRASE, stdin, or a prompt). OneDrive
    /// and SharePoint (OAuth device flow): prints a URL and a code to enter there,
    /// waits for the approval. Dropbox (PKCE code paste): prints a URL; approve
    /// there, then paste the code it shows (the next line of standard input; with
    /// --json the prompt is {"event":"prompt","authorize_url":…}).
    ///
    /// Example: syncfabric login onedrive --account personal
    Login(accounts::LoginArgs),
    /// Log out: revoke the login's tokens at the provider where it offers that
    /// (Dropbox), then forget them on this machine (even if revoking failed).
    ///
    /// Example: syncfabric logout onedrive:personal
    Logout(accounts::LogoutArgs),
    /// List the logged-in accounts (--check: refresh each to prove it still works).
    Accounts(accounts::AccountsArgs),
    /// Generate a password (random characters from OpenSSL's RAND_bytes, every
    /// character equally likely) or a passphrase (--words N, from the EFF large word
    /// list), with its entropy and strength on standard error.
    ///
    /// Example: syncfabric generate --length 24 --no-lookalikes
    Generate(generate::GenerateArgs),
    /// Report weak, reused and old passwords, and with --breached those Have I Been
    /// Pwned knows (only the first 5 hex characters of each SHA-1 are sent).
    ///
    /// Example: syncfabric audit --breached --days 180
    Audit(audit::AuditArgs),
    /// Pre-shared keys for `item share` / `item receive`.
    #[command(subcommand)]
    Psk(PskCmd),
    /// Pair this vault with a vault on a Wi-Fi Sync Server (`syncfabric serve` on
    /// another device): paste the pairing text it shows, check that both show the
    /// same verification code, and the server is added as a remote that trusts only
    /// its certificate, its access password kept in the token store.
    ///
    /// Example: syncfabric pair --name laptop
    #[cfg(feature = "wifi")]
    Pair(pair::PairArgs),
    /// Run the Wi-Fi Sync Server: serve vault folders over HTTPS WebDAV on the local
    /// network, each with its own access password, and show the pairing QR codes and
    /// the verification code. Runs until Ctrl-C.
    ///
    /// Example: syncfabric serve ~/Enpass/primary --listen 0.0.0.0:8443
    #[cfg(feature = "wifi")]
    Serve(serve::ServeArgs),
}

#[derive(Subcommand, Debug)]
enum PskCmd {
    /// Make a new pre-shared key (256 random bits, base32) and print it. Give it to
    /// the other person through another channel than the shared items.
    ///
    /// Example: syncfabric psk new
    New,
}

#[derive(Subcommand, Debug)]
enum VaultCmd {
    /// Create a new, empty vault in --vault DIR (320,000 PBKDF2 rounds).
    ///
    /// Example: SYNCFABRIC_PASSWORD=... syncfabric --vault ./v vault create --name Personal
    Create {
        /// The vault's display name.
        #[arg(long, default_value = "Primary")]
        name: String,
        /// Key-derivation rounds (PBKDF2-HMAC-SHA512), 1,000 to 5,000,000.
        #[arg(long, default_value_t = syncfabric::vault::DEFAULT_KDF_ITER,
              value_parser = clap::value_parser!(u32).range(
                  i64::from(syncfabric::vault::MIN_KDF_ITER)..=i64::from(syncfabric::vault::MAX_KDF_ITER)))]
        kdf_iter: u32,
        /// Accept a master password the strength meter rates Very Poor.
        #[arg(long)]
        force: bool,
    },
    /// Show the vault's metadata and item counts.
    Info,
    /// Change the master password (new one from $SYNCFABRIC_NEW_PASSWORD or a prompt)
    /// and optionally the keyfile.
    Passwd {
        /// Use this keyfile from now on.
        #[arg(long, conflicts_with = "remove_keyfile")]
        new_keyfile: Option<PathBuf>,
        /// Stop using a keyfile.
        #[arg(long)]
        remove_keyfile: bool,
        /// Accept a master password the strength meter rates Very Poor.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeyfileCmd {
    /// Write a new keyfile (32 random bytes, Enpass XML) to FILE; refuses to overwrite.
    New {
        /// Where to write it.
        file: PathBuf,
    },
}

pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // $SYNCFABRIC_LOG, else $RUST_LOG (what Rust users try first), else -v's level.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SYNCFABRIC_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The next step for an error whose message alone leaves a person stuck.
pub fn hint_for(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use syncfabric::engine::SyncError;
    if let Some(hint) = e.downcast_ref::<SyncError>().and_then(sync_hint) {
        return Some(hint.into());
    }
    let storage_err = e.downcast_ref::<syncfabric::core::Error>().or_else(|| {
        match e.downcast_ref::<SyncError>() {
            Some(SyncError::Storage(s)) => Some(s),
            _ => None,
        }
    });
    if let Some(syncfabric::core::Error::Unauthorized { .. }) = storage_err {
        if let Some(hint) = accounts::login_again_hint() {
            return Some(hint);
        }
    }
    if let Some(SyncError::Storage(syncfabric::core::Error::Locked {
        holder: Some(_), ..
    })) = e.downcast_ref::<SyncError>()
    {
        return Some(
            "a sync holds the remote's lock while it commits. If the device named above is not syncing right now (it crashed or lost its connection mid-sync), `syncfabric remote unlock NAME` breaks the lock; otherwise sync again in a moment".into(),
        );
    }
    let vault_err = e.downcast_ref::<syncfabric::vault::Error>().or_else(|| {
        match e.downcast_ref::<SyncError>() {
            Some(SyncError::Vault(v)) => Some(v),
            _ => None,
        }
    });
    vault_err.filter(|v| v.is_damage()).map(|_| {
        "the local vault file is damaged. Your synced data is safe on the remote: make a fresh copy \
with `syncfabric --vault NEW_FOLDER restore URL` (`syncfabric remote list` shows the URL) and use that \
folder; keep the damaged one until you have checked the copy".into()
    })
}

/// The commands that do what a sync error says to do (the engine words it without them).
fn sync_hint(e: &syncfabric::engine::SyncError) -> Option<&'static str> {
    use syncfabric::engine::SyncError;
    Some(match e {
        SyncError::RemoteCorrupt(_) => "to replace the remote copy with this device's: `syncfabric sync --recreate-remote`",
        SyncError::KeyChanged => "a fresh copy: `syncfabric --vault NEW_FOLDER restore URL` (`syncfabric remote list` shows the URL)",
        SyncError::RemoteGone { .. } => "to upload this device's copy again: `syncfabric sync --recreate-remote`; to stop syncing with this remote: `syncfabric remote rm NAME`",
        SyncError::MassDelete { .. } => "check with `syncfabric sync --dry-run`, then `syncfabric sync --allow-mass-delete` if that is really intended",
        SyncError::AttachmentsInContainer { .. } => "`syncfabric item attachments TITLE` lists them and `syncfabric item detach TITLE NAME` removes one; or `syncfabric remote add NAME URL --layout syncfabric`",
        _ => return None,
    })
}

/// Everything a command needs from the global options.
pub struct Ctx {
    pub json: bool,
    pub quiet: bool,
    vault: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    password_stdin: bool,
    pub config_path: PathBuf,
    pub config: Config,
    stdin_lines: Option<std::io::Lines<std::io::StdinLock<'static>>>,
}

impl Ctx {
    pub fn vault_dir(&self) -> CliResult<PathBuf> {
        self.vault
            .clone()
            .or_else(|| self.config.default_vault.clone())
            .ok_or_else(|| "no vault given: pass --vault DIR (or set SYNCFABRIC_VAULT, or default_vault in the config)".into())
    }

    fn next_stdin_line(&mut self) -> CliResult<Option<String>> {
        let lines = self
            .stdin_lines
            .get_or_insert_with(|| std::io::stdin().lock().lines());
        Ok(lines.next().transpose()?)
    }

    /// Reads a secret: from `env`, from stdin when --password-stdin, else a prompt.
    pub fn secret(&mut self, env: &str, prompt: &str) -> CliResult<Secret> {
        if let Ok(v) = std::env::var(env) {
            return Ok(Secret::new(v));
        }
        if self.password_stdin {
            return match self.next_stdin_line()? {
                Some(l) => Ok(Secret::new(l.trim_end_matches(['\r', '\n']).to_string())),
                None => Err(
                    format!("--password-stdin: standard input ended before the {prompt}").into(),
                ),
            };
        }
        rpassword::prompt_password(format!("{prompt}: "))
            .map(Secret::new)
            .map_err(|e| {
                format!(
                    "cannot ask for the {prompt} ({e}: no terminal?): set ${env}, or pass it on standard input with --password-stdin"
                )
                .into()
            })
    }

    pub fn keyfile(&self) -> CliResult<Option<Keyfile>> {
        Ok(match &self.keyfile {
            Some(p) => Some(Keyfile::from_path(p)?),
            None => None,
        })
    }

    pub fn open_vault(&mut self) -> CliResult<Vault> {
        let dir = self.vault_dir()?;
        if !dir.join("vault.json").exists() {
            return Err(format!(
                "no vault at {} (create one with `syncfabric vault create`)",
                dir.display()
            )
            .into());
        }
        let pw = self.secret("SYNCFABRIC_PASSWORD", "Master password")?;
        let kf = self.keyfile()?;
        let mut v = Vault::open(&dir, &pw, kf.as_ref())?;
        if let Some(name) = &self.config.device_name {
            v.set_device_name(name.clone());
        }
        Ok(v)
    }

    /// The progress-bar hook for transfers, when bars are to be drawn (see
    /// `progress::hook`).
    pub fn progress(&self) -> Option<syncfabric::core::progress::ProgressHook> {
        progress::hook(self.json, self.quiet)
    }

    pub fn print_json(&self, v: &serde_json::Value) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }
}

pub fn run(cli: Cli) -> CliResult {
    if let Command::Psk(PskCmd::New) = cli.command {
        let psk = syncfabric::vault::share::new_psk()?;
        if cli.json {
            println!("{}", serde_json::json!({ "psk": psk.expose() }));
        } else {
            println!("{}", psk.expose());
            if !cli.quiet {
                eprintln!("give this key to the other person through another channel than the items you share (in person, by phone); then `syncfabric item share TITLE` with it in $SYNCFABRIC_PSK");
            }
        }
        return Ok(());
    }
    if let Command::Generate(a) = cli.command {
        // Needs no vault and no config.
        let ctx = Ctx {
            json: cli.json,
            quiet: cli.quiet,
            vault: None,
            keyfile: None,
            password_stdin: false,
            config_path: PathBuf::new(),
            config: Config::default(),
            stdin_lines: None,
        };
        return generate::generate_cmd(&ctx, a);
    }
    let config_path = cli.config.clone().unwrap_or_else(config::default_path);
    let config = Config::load(&config_path)?;
    let mut ctx = Ctx {
        json: cli.json,
        quiet: cli.quiet,
        vault: cli.vault,
        keyfile: cli.keyfile,
        password_stdin: cli.password_stdin,
        config_path,
        config,
        stdin_lines: None,
    };
    match cli.command {
        Command::Vault(c) => vault_cmd(&mut ctx, c),
        Command::Item(c) => items::run(&mut ctx, c),
        Command::Keyfile(KeyfileCmd::New { file }) => {
            let k = Keyfile::generate()?;
            k.write_new(&file)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "keyfile": file }));
            } else {
                println!("wrote a new keyfile to {} — keep a copy somewhere safe: without it the vault cannot be opened", file.display());
            }
            Ok(())
        }
        Command::Remote(c) => sync::remote_cmd(&mut ctx, c),
        Command::Sync(a) => sync::sync_cmd(&mut ctx, a),
        Command::Status { changes } => sync::status_cmd(&mut ctx, changes),
        Command::Watch(a) => sync::watch_cmd(&mut ctx, a),
        Command::Restore(a) => sync::restore_cmd(&mut ctx, a),
        Command::Login(a) => accounts::login_cmd(&mut ctx, a),
        Command::Logout(a) => accounts::logout_cmd(&mut ctx, a),
        Command::Accounts(a) => accounts::accounts_cmd(&mut ctx, a),
        Command::Generate(a) => generate::generate_cmd(&ctx, a),
        Command::Audit(a) => audit::audit_cmd(&mut ctx, a),
        #[cfg(feature = "wifi")]
        Command::Pair(a) => pair::pair_cmd(&mut ctx, a),
        #[cfg(feature = "wifi")]
        Command::Serve(a) => serve::serve_cmd(&mut ctx, a),
        Command::Psk(PskCmd::New) => Ok(()), // handled above
    }
}

fn vault_cmd(ctx: &mut Ctx, cmd: VaultCmd) -> CliResult {
    match cmd {
        VaultCmd::Create {
            name,
            kdf_iter,
            force,
        } => {
            let dir = ctx.vault_dir()?;
            let pw = ctx.secret("SYNCFABRIC_PASSWORD", "New master password")?;
            if pw.is_empty() {
                return Err("the master password must not be empty".into());
            }
            check_master(ctx, &pw, kdf_iter, force)?;
            let kf = ctx.keyfile()?;
            let mut opts = syncfabric::vault::CreateOptions {
                name,
                kdf_iter,
                ..Default::default()
            };
            opts.keyfile = kf;
            if let Some(d) = &ctx.config.device_name {
                opts.device_name = Some(d.clone());
            }
            let v = Vault::create(&dir, &pw, &opts)?;
            info(ctx, &v)
        }
        VaultCmd::Info => {
            let v = ctx.open_vault()?;
            info(ctx, &v)
        }
        VaultCmd::Passwd {
            new_keyfile,
            remove_keyfile,
            force,
        } => {
            let mut v = ctx.open_vault()?;
            let new_pw = ctx.secret("SYNCFABRIC_NEW_PASSWORD", "New master password")?;
            if new_pw.is_empty() {
                return Err("the master password must not be empty".into());
            }
            let iter = v
                .meta()
                .int("kdf_iter")
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(syncfabric::vault::DEFAULT_KDF_ITER);
            check_master(ctx, &new_pw, iter, force)?;
            let kf = match (&new_keyfile, remove_keyfile) {
                (Some(p), _) => Some(Keyfile::from_path(p)?),
                (None, true) => None,
                (None, false) => ctx.keyfile()?,
            };
            let old_key = v.key().clone();
            v.change_password(&new_pw, kf.as_ref(), None)?;
            let (rekeyed, removed) = rekey_sync_copies(v.dir(), &old_key, v.key())?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "changed": true, "sync_copies_rekeyed": rekeyed, "sync_copies_removed": removed }));
            } else {
                println!(
                    "master password changed; {rekeyed} local sync copies re-encrypted with it{}",
                    if removed > 0 {
                        format!(", {removed} unreadable ones deleted")
                    } else {
                        String::new()
                    }
                );
                println!("the next `syncfabric sync` pushes the vault under the new password; other devices then need a fresh copy: `syncfabric --vault NEW_FOLDER restore URL` with the new password");
            }
            Ok(())
        }
    }
}

/// The strength meter on a new master password (with the bonus of its KDF rounds):
/// Very Poor is refused unless `force`, below Average is warned about.
fn check_master(ctx: &Ctx, pw: &Secret, kdf_iter: u32, force: bool) -> CliResult {
    let s = strength::of_master(pw.expose(), kdf_iter);
    if s.level == strength::Level::VeryPoor && !force {
        return Err(format!(
            "this master password is Very Poor ({}): choose a longer one (e.g. `syncfabric generate --words 6`), or pass --force to use it anyway",
            s.describe()
        )
        .into());
    }
    if s.level < strength::Level::Average && !ctx.quiet {
        eprintln!(
            "warning: this master password is {}; a passphrase of 6 random words (`syncfabric generate --words 6`) is Excellent",
            s.describe()
        );
    }
    Ok(())
}

/// Moves every remote's sync copies (`<vault>/.syncfabric/<remote>/`: base and
/// journal) from `old` to `new`, so that none still opens with the old password.
/// Returns how many were re-keyed and how many deleted.
fn rekey_sync_copies(
    vault_dir: &std::path::Path,
    old: &syncfabric::vault::VaultKey,
    new: &syncfabric::vault::VaultKey,
) -> CliResult<(usize, usize)> {
    let root = vault_dir.join(".syncfabric");
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e.into()),
    };
    let (mut rekeyed, mut removed) = (0, 0);
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        // Only real folders with a remote's name: nothing here is followed as a link.
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let Some(name) = name
            .to_str()
            .filter(|n| config::check_remote_name(n).is_ok())
        else {
            continue;
        };
        if !is_dir {
            continue;
        }
        let state = sync::state_dir(vault_dir, name)?;
        let r = syncfabric::engine::rekey_state(&state, old, new)?;
        rekeyed += r.rekeyed;
        removed += r.removed.len();
    }
    Ok((rekeyed, removed))
}

fn info(ctx: &Ctx, v: &Vault) -> CliResult {
    // Listing columns only: counting needs no decrypted field.
    let items = v.item_summaries()?;
    let live = items.iter().filter(|i| i.is_live()).count();
    let trashed = items.iter().filter(|i| i.trashed && !i.deleted).count();
    let m = v.meta();
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "path": v.dir(),
            "vault_uuid": m.vault_uuid(),
            "vault_name": m.vault_name(),
            "kdf_iter": m.int("kdf_iter"),
            "have_keyfile": m.have_keyfile(),
            "items": live,
            "trashed": trashed,
        }));
    } else {
        println!(
            "vault   {} ({})",
            m.vault_name().unwrap_or("?"),
            m.vault_uuid().unwrap_or("?")
        );
        println!("path    {}", v.dir().display());
        println!(
            "kdf     pbkdf2-sha512, {} rounds{}",
            m.int("kdf_iter").unwrap_or(0),
            if m.have_keyfile() { ", keyfile" } else { "" }
        );
        println!("items   {live} live, {trashed} in trash");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The engine says what to do in words; the CLI adds the commands.
    #[test]
    fn sync_errors_carry_no_command_and_the_cli_names_one() {
        use syncfabric::engine::SyncError;
        let errors = [
            SyncError::RemoteCorrupt("x".into()),
            SyncError::KeyChanged,
            SyncError::RemoteGone { path: "p".into() },
            SyncError::MassDelete {
                deleted: 9,
                live: 10,
            },
            SyncError::AttachmentsInContainer { files: 1 },
        ];
        for e in &errors {
            let words = e.to_string();
            assert!(
                !words.contains("syncfabric ") && !words.contains('`'),
                "{words}"
            );
            let hint = super::hint_for(e).unwrap_or_default();
            assert!(hint.contains("`syncfabric "), "{e:?}: {hint}");
        }
    }

    use super::Cli;
    use clap::error::ErrorKind;
    use clap::Parser;
    use std::path::Path;

    /// Every `` `syncfabric …` `` command quoted in the library and CLI sources: what an
    /// error message or a printed hint tells a person to run.
    fn suggested_commands() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in [
            "src",
            "sync-core/src",
            "vault/src",
            "merge/src",
            "auth/src",
            "providers",
        ] {
            collect_rs(&root.join(dir), &mut files);
        }
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for quoted in text.split('`').skip(1).step_by(2) {
                if let Some(rest) = quoted.strip_prefix("syncfabric ") {
                    // (`remote|sync|…` names a module's commands in its doc, not a command.)
                    if !rest.contains('\n') && !rest.contains('|') {
                        out.push((f.display().to_string(), rest.to_string()));
                    }
                }
            }
        }
        out
    }

    fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.ends_with("tests") {
                collect_rs(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// A placeholder (`NAME`, `URL`, `{provider}`, `…`) as a value the parser takes.
    fn fill(word: &str) -> Option<String> {
        let upper = word.len() > 1
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c == '.');
        match word {
            "…" | "..." => None,
            "<command>" => Some("sync".into()),
            w if w.starts_with('{') || w.starts_with('<') => Some("onedrive".into()),
            w if upper && w.contains("URL") => Some("folder:///x".into()),
            w if upper && w.contains("SEQ") => Some("1".into()),
            _ if upper => Some("x".into()),
            w => Some(w.trim_end_matches('…').to_string()),
        }
    }

    #[test]
    fn every_command_a_message_suggests_exists() {
        let commands = suggested_commands();
        assert!(commands.len() > 10, "found only {commands:?}");
        for (file, cmd) in commands {
            let mut argv = vec!["syncfabric".to_string()];
            argv.extend(cmd.split_whitespace().filter_map(fill));
            match Cli::try_parse_from(&argv) {
                Ok(_) => {}
                Err(e) => assert!(
                    !matches!(
                        e.kind(),
                        ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand
                    ),
                    "{file} suggests `syncfabric {cmd}`, which does not exist: {e}"
                ),
            }
        }
    }
}
