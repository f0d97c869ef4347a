//! `syncfabric pair`: adds a Wi-Fi Sync Server's vault as a remote of this vault.
//!
//! The pairing text (`syncfabric-pair:1:…`, what `serve` shows as a QR code and as
//! text) carries the vault's URL on the server, the server certificate's SHA-256 and the
//! vault's access password. It is read like a password: `$SYNCFABRIC_PAIRING`, the
//! next line of standard input with `--password-stdin`, or a hidden prompt; never
//! taken as an argument (other users could read it in the process list).
//!
//! The verification code derived from the certificate is shown and must match the
//! one `serve` shows (asked as `[y/N]`, or `--yes`). The remote is then added with the
//! certificate pinned (`?pin-sha256=`: the only certificate trusted, checked before any
//! request, so a server with another certificate gets no password) and the access
//! password kept in the token store, then probed like any remote. Where the vault
//! folder holds no vault yet (a new device), the server's vault is then restored into
//! it.

use super::sync::{add_remote, runtime, NewRemote, Opener, RestoreArgs};
use super::{CliResult, Ctx};
use clap::Args;
use syncfabric::core::auth::{SecretToken, TokenStore};
use syncfabric::core::registry::{password_key, StorageUrl};
use syncfabric::remote::Credentials;
use syncfabric_wifi::{code, pairing::Pairing, password::AccessPassword};

/// The user name sent to the server (it checks only the password).
const USER: &str = "syncfabric";

#[derive(Args, Debug)]
pub struct PairArgs {
    /// The name of the remote to add.
    #[arg(long, default_value = "wifi")]
    name: String,
    /// Do not ask whether the verification codes match (checked some other way).
    #[arg(long, conflicts_with = "url")]
    yes: bool,
    /// List the servers announced on the local network (mDNS) and stop.
    #[arg(long, conflicts_with = "url")]
    browse: bool,
    /// How long --browse listens, in seconds.
    #[arg(long, default_value_t = 3, requires = "browse")]
    wait: u64,
    /// Pair by the server's URL (from --browse or its screen) instead of the pairing
    /// text: the certificate is taken from the server, so comparing the verification
    /// codes is the only check against a man in the middle; the access password is
    /// asked ($SYNCFABRIC_REMOTE_PASSWORD, --password-stdin, or a prompt).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

pub fn pair_cmd(ctx: &mut Ctx, args: PairArgs) -> CliResult {
    if args.browse {
        return browse(ctx, args.wait);
    }
    let pairing = match &args.url {
        Some(url) => from_server(ctx, url)?,
        None => {
            let text = ctx.secret("SYNCFABRIC_PAIRING", "Pairing text shown by the server")?;
            Pairing::parse(text.expose())?
        }
    };
    pair_with(ctx, args, pairing)
}

/// A pairing from the server's URL: its certificate as the handshake shows it (shown
/// in full, and checked by the person through the codes), the password as typed.
fn from_server(ctx: &mut Ctx, url: &str) -> CliResult<Pairing> {
    let timeout = std::time::Duration::from_secs(15);
    let (_, fingerprint) =
        runtime()?.block_on(syncfabric::remote::server_certificate(url, timeout))?;
    if !ctx.json {
        eprintln!(
            "the server's certificate: SHA-256 {}",
            hex::encode(fingerprint)
        );
    }
    let typed = ctx.secret(
        "SYNCFABRIC_REMOTE_PASSWORD",
        "Access password shown by the server",
    )?;
    let password = AccessPassword::parse(typed.expose())?;
    Ok(Pairing::new(url, fingerprint, password)?)
}

/// `pair --browse`: the servers announced nearby, a URL per vault.
fn browse(ctx: &mut Ctx, wait: u64) -> CliResult {
    let found = syncfabric_wifi::discovery::browse(std::time::Duration::from_secs(wait))?;
    if ctx.json {
        let list: Vec<_> = found
            .iter()
            .map(|f| {
                let urls: Vec<_> = f.vaults.iter().filter_map(|v| f.url(v)).collect();
                serde_json::json!({ "server": f.instance, "host": f.host, "urls": urls, "fingerprint_prefix": f.fingerprint_prefix })
            })
            .collect();
        ctx.print_json(&serde_json::Value::Array(list));
        return Ok(());
    }
    if found.is_empty() {
        println!("no server announced itself within {wait} s (is `syncfabric serve` running on this network?)");
    }
    for f in &found {
        let name = super::escape::for_terminal(&f.instance);
        println!("{name} (certificate {}…)", f.fingerprint_prefix);
        for v in &f.vaults {
            if let Some(u) = f.url(v) {
                println!(
                    "  syncfabric pair --url {}",
                    super::escape::for_terminal(&u)
                );
            }
        }
    }
    Ok(())
}

/// Shows the code, asks, stores the password and adds (or restores) the remote.
fn pair_with(ctx: &mut Ctx, args: PairArgs, pairing: Pairing) -> CliResult {
    let dest = ctx.vault_dir()?;
    let fresh = !dest.join("vault.json").exists();
    if fresh {
        syncfabric::vault::create_private_dir_all(&dest)?;
    }
    let vault = super::config::canonical(&dest);
    let url = remote_url(&pairing)?;
    let now = syncfabric_auth::unix_now();
    let shown = code::code_at(pairing.fingerprint(), now)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "event": "verify", "code": shown, "url": url }));
    } else {
        eprintln!(
            "Verification code: {} {} (valid {} s). The server shows one too.",
            &shown[..3],
            &shown[3..],
            code::seconds_left(now)
        );
    }
    if !args.yes && !confirmed(ctx)? {
        return Err("the codes were not confirmed: nothing was paired".into());
    }
    let pw = SecretToken::new(pairing.password().expose());
    let store = super::accounts::open_store(ctx)?;
    let key = password_key(&StorageUrl::parse(&url)?);
    runtime()?.block_on(store.put(&key, pw.clone()))?;
    let opener = Opener::with(
        &url,
        Credentials::Password(syncfabric::vault::Secret::new(pw.expose())),
    );
    let added = NewRemote {
        name: args.name.clone(),
        url: url.clone(),
        account: None,
        layout: None,
        stored_password: true,
    };
    if let Err(e) = add_remote(ctx, &vault, added, &opener) {
        // Nothing was paired: the password does not stay behind.
        let _ = runtime()?.block_on(store.delete(&key));
        return Err(e);
    }
    if fresh {
        // The remote is recorded with its password in the store: restore finds both.
        return super::sync::restore_cmd(ctx, RestoreArgs::from_remote(url, args.name));
    }
    Ok(())
}

/// The remote URL of a pairing: WebDAV over https as the user [`USER`], with the
/// certificate pinned.
fn remote_url(p: &Pairing) -> CliResult<String> {
    let rest = p
        .url()
        .strip_prefix("https://")
        .ok_or("a pairing URL is https")?;
    if rest.contains('@') || rest.contains('?') || rest.contains('#') {
        return Err("a pairing URL has no user, query or fragment".into());
    }
    let fp: String = p.fingerprint().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("webdav+https://{USER}@{rest}?pin-sha256={fp}"))
}

/// Asks `[y/N]` on standard error; the answer is the next line of standard input.
fn confirmed(ctx: &mut Ctx) -> CliResult<bool> {
    eprint!("Does the server show the same code? [y/N] ");
    let answer = ctx.next_stdin_line()?.unwrap_or_default();
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}
