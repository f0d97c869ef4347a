//! `syncfabric remote unlock NAME`: break a stale server lock on the remote's vault
//! folder by hand.
//!
//! A sync commits under the server's WebDAV lock. When it stops before its `UNLOCK`
//! (a crash, a lost connection), the server keeps the lock until its timeout (30
//! minutes on SabreDAV whatever was asked). The same device releases it by itself at
//! its next sync; from another device, this command breaks it with the token the
//! server shows in `lockdiscovery`.

use super::config::canonical;
use super::escape::for_terminal as t;
use super::{CliResult, Ctx};
use std::path::Path;
use syncfabric::core::{DirLock, LockHolder};

const WARNING: &str = "\
This breaks the lock a sync holds on the remote's vault folder while it commits. Break it
only when the device named below is not syncing right now (it crashed, lost its connection,
or was closed mid-sync): a device that is really committing at this moment is cut off. Its
commit is then refused by the server, so nothing on the remote is damaged, and its edits stay
on that device and are merged at its next sync.";

/// The vault's uuid, which names its folder on the remote.
fn vault_uuid(vault: &Path) -> CliResult<String> {
    let meta = syncfabric::vault::VaultMeta::read(&vault.join("vault.json"))?;
    meta.vault_uuid()
        .map(str::to_string)
        .ok_or_else(|| "vault.json has no vault_uuid".into())
}

pub fn unlock_cmd(ctx: &mut Ctx, vault: &Path, name: &str, yes: bool) -> CliResult {
    let Some((url, account, layout)) = ctx
        .config
        .remotes_of(vault)
        .iter()
        .find(|r| r.name == name && canonical(&r.vault) == vault)
        .map(|r| (r.url.clone(), r.account.clone(), r.layout()))
    else {
        return Err(format!("no remote {name:?} for this vault").into());
    };
    // The vault's folder on the remote, as its layout places it.
    let dir = layout?.locate(&vault_uuid(vault)?)?.dir;
    let rt = super::sync::runtime()?;
    let storage = super::sync::open_remote(ctx, &rt, &url, account.as_deref())?;
    let held = match rt.block_on(storage.dir_locks(&dir)) {
        Ok(h) => h,
        Err(syncfabric::core::Error::Unsupported { message }) => {
            return Err(format!("{name}: cannot look at this remote's locks: {message}").into())
        }
        Err(e) => return Err(e.into()),
    };
    if held.is_empty() {
        report(ctx, name, &[], 0, &[]);
        return Ok(());
    }
    if !ctx.json {
        eprintln!("{WARNING}\n");
        for h in &held {
            eprintln!("  locked by {}", t(&h.to_string()));
        }
    }
    if !yes && !confirm(ctx)? {
        return Err("nothing was changed (not confirmed)".into());
    }
    let mut broken = 0;
    for h in held.iter().filter(|h| h.token.is_some()) {
        let token = h.token.clone().unwrap_or_default();
        let lock = DirLock::new(dir.clone(), token, std::time::Duration::from_secs(1));
        rt.block_on(storage.unlock_dir(&lock))?;
        broken += 1;
    }
    // Look again: what is left is what the server did not let go.
    let left = rt.block_on(storage.dir_locks(&dir))?;
    report(ctx, name, &held, broken, &left);
    if left.is_empty() {
        Ok(())
    } else if held.iter().all(|h| h.token.is_none()) {
        Err(format!(
            "{name}: the server does not show this lock's token (SabreDAV hides it), so it cannot be broken from here. \
It goes when the device that took it syncs again, or when the server lets it expire (see above)"
        )
        .into())
    } else {
        Err(format!(
            "{name}: the server still shows {} lock(s) on the vault folder",
            left.len()
        )
        .into())
    }
}

fn confirm(ctx: &mut Ctx) -> CliResult<bool> {
    if ctx.json {
        return Err("--json: pass --yes to break the lock".into());
    }
    eprint!("Break it? [y/N] ");
    let line = ctx.next_stdin_line()?.unwrap_or_default();
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

fn report(ctx: &Ctx, name: &str, held: &[LockHolder], broken: usize, left: &[LockHolder]) {
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "remote": name,
            "held": held.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            "broken": broken,
            "left": left.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        }));
    } else if held.is_empty() {
        println!("{name}: no lock on the remote's vault folder");
    } else if left.is_empty() {
        println!("{name}: lock broken; syncs on every device can commit again");
    }
}

/// The engine's lock options with this device's name as the label other devices see
/// when it holds the remote's lock: the config's `device_name`, else the host name.
pub fn lease_options(ctx: &Ctx) -> syncfabric::core::lock::LeaseOptions {
    let host = || {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
    };
    let mut o = syncfabric::engine::SyncOptions::default().lease;
    if let Some(name) = ctx.config.device_name.clone().or_else(host) {
        o.label = name;
    }
    o
}
