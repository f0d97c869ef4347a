//! `syncfabric serve`: the Wi-Fi Sync Server in the foreground.
//!
//! Kept in `<config dir>/server/` (beside config.toml): the server certificate
//! (`server-key.pem` 0600, `server-cert.pem`; kept across restarts, since a new one
//! breaks every pairing) and one access password per vault
//! (`passwords/<vault id>`, mode 0600). The passwords are not in the encrypted token
//! store on purpose: that store needs a passphrase typed at each start, and a server
//! run by a service manager has nobody to type it; the files are readable by their
//! owner only, like the certificate's key beside them.
//!
//! What is served is not the vault folder itself but a sync folder for it,
//! `<config dir>/server/store/<vault id>/`, under `/dav/<vault id>/`: the other
//! devices sync with it as with any WebDAV remote, and this device's vault syncs with it
//! through a folder remote (`wifi-server`, added on the first start), so edits on this
//! device reach the others through the same engine and merge, and nothing writes into
//! a vault folder an app may have open.
//!
//! Prints, per vault, its URL, access password, pairing QR code (and with --qr-png a
//! PNG of it) and the verification code; then a status line until Ctrl-C or SIGTERM.

use super::{CliResult, Ctx};
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use syncfabric_server::{AccessPassword, Server, ServerHandle};
use syncfabric_wifi::cert::{Names, ServerCert};
use syncfabric_wifi::pairing::Pairing;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The vault folders to serve (default: --vault, or the config's default_vault).
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// The address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Also write the pairing QR code as a PNG: to FILE for one vault, to
    /// FILE-<vault id>.png for each of several.
    #[arg(long, value_name = "FILE")]
    pub qr_png: Option<PathBuf>,
    /// The host name or address other devices reach this one by (in the URLs and QR
    /// codes). Default: the --listen address when it names one, else this machine's
    /// address on its default route.
    #[arg(long)]
    pub host: Option<String>,
    /// Do not announce the server on the local network by mDNS (`_syncfabric._tcp`;
    /// on the --listen address's interface only when it names one).
    #[arg(long)]
    pub no_mdns: bool,
}

/// This machine's address on its default route: a UDP socket "connected" to a
/// documentation address sends nothing but is given the source address.
fn primary_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    s.local_addr()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
}

fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()?;
    let h = h.trim();
    (!h.is_empty()).then(|| h.to_string())
}

fn cert_names(listen: &SocketAddr) -> Names {
    let mut n = Names::default();
    if let Some(h) = hostname() {
        n.dns.push(format!("{h}.local"));
    }
    n.dns.push("localhost".into());
    n.ips.push(IpAddr::from([127, 0, 0, 1]));
    n.ips.extend(primary_ip());
    if !listen.ip().is_unspecified() && !n.ips.contains(&listen.ip()) {
        n.ips.push(listen.ip());
    }
    n
}

/// The vault's access password, made (and kept, mode 0600) on first use.
fn access_password(dir: &Path, id: &str) -> CliResult<AccessPassword> {
    let path = dir.join(id);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return AccessPassword::parse(&text)
            .map_err(|e| format!("{}: {e} (delete it to make a new one)", path.display()).into());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let pw = AccessPassword::generate()?;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(pw.expose().as_bytes())?;
    f.sync_all()?;
    Ok(pw)
}

/// The remote through which this device's vault `dir` syncs with the folder the server
/// serves for it (`wifi-server`), added when missing.
fn local_remote(ctx: &mut Ctx, dir: &Path, store: &Path) -> CliResult {
    const NAME: &str = "wifi-server";
    let vault = super::config::canonical(dir);
    let store = super::config::canonical(store);
    let url = format!("folder://{}", store.display());
    let remotes = ctx.config.remotes_of(&vault);
    if remotes.iter().any(|r| r.url == url) {
        return Ok(());
    }
    if remotes.iter().any(|r| r.name == NAME) {
        return Err(format!(
            "the vault already has a remote named {NAME} for another folder: remove it, or serve \
             from the config it was made with"
        )
        .into());
    }
    let opener = super::sync::Opener::with(&url, syncfabric::remote::Credentials::None);
    let added = super::sync::NewRemote {
        name: NAME.into(),
        url,
        account: None,
        layout: None,
        stored_password: false,
    };
    super::sync::add_remote(ctx, &vault, added, &opener)?;
    println!(
        "this device syncs with the others through its remote {NAME}: `syncfabric --vault {} \
         watch` (or `sync`)",
        dir.display()
    );
    Ok(())
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn serve_cmd(ctx: &mut Ctx, a: ServeArgs) -> CliResult {
    let dirs = if a.dirs.is_empty() {
        vec![ctx.vault_dir()?]
    } else {
        a.dirs.clone()
    };
    let state = ctx
        .config_path
        .parent()
        .map_or_else(|| PathBuf::from("server"), |p| p.join("server"));
    let cert = ServerCert::load_or_create(&state, &cert_names(&a.listen))?;
    let fingerprint = cert.fingerprint()?;
    let mut b = Server::builder()
        .cert(cert)
        .state_dir(state.join("properties"));
    let mut shown = Vec::new();
    for d in &dirs {
        let id = syncfabric_server::vault_id(d)?;
        let pw = access_password(&state.join("passwords"), &id)?;
        let store = state.join("store").join(&id);
        std::fs::create_dir_all(&store)?;
        b = b.vault_with_id(id.clone(), &store, pw.clone())?;
        local_remote(ctx, d, &store)?;
        shown.push((id, d.clone(), pw));
    }
    std::fs::create_dir_all(state.join("properties"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = rt.block_on(b.bind(a.listen))?;
    let port = server.local_addr().port();
    let listen_ip = Some(a.listen.ip()).filter(|ip| !ip.is_unspecified());
    let host = a
        .host
        .clone()
        .or_else(|| listen_ip.or_else(primary_ip).map(|ip| ip.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    for (id, dir, pw) in &shown {
        let url = format!("https://{host}:{port}/dav/{id}/");
        let pairing = Pairing::new(&url, fingerprint, pw.clone())?;
        let qr = pairing.qr()?;
        println!("vault {} ({id})", dir.display());
        println!("  url:             {url}");
        println!("  access password: {}", pw.grouped().as_str());
        println!("  certificate:     sha256 {}", hex::encode(fingerprint));
        // The pairing text, for a device without a camera: paste it into `pair`.
        println!("  pairing text:    {}", pairing.to_payload().as_str());
        if !ctx.quiet {
            println!("  scan to pair:\n{}", qr.to_terminal());
        }
        if let Some(png) = &a.qr_png {
            let path = if shown.len() == 1 {
                png.clone()
            } else {
                png.with_file_name(format!(
                    "{}-{id}.png",
                    png.file_stem().unwrap_or_default().to_string_lossy()
                ))
            };
            std::fs::write(&path, qr.to_png(8))?;
            println!("  QR code written to {}", path.display());
        }
    }
    // Handlers installed before "listening" is said: a signal from then on stops cleanly.
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        let _rt = rt.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    let ids: Vec<String> = shown.iter().map(|(id, _, _)| id.clone()).collect();
    // Kept until the server stops; dropping it withdraws the announcement.
    let _announced = (!a.no_mdns)
        .then(|| announce(&a, port, &ids, &fingerprint))
        .flatten();
    println!("listening on {} (Ctrl-C stops)", server.local_addr());
    std::io::stdout().flush()?;
    rt.block_on(run_until_stopped(server, fingerprint, signals))
}

/// Announces the server by mDNS; a failure is said, not fatal (pairing by the text
/// or the QR code still works).
fn announce(
    a: &ServeArgs,
    port: u16,
    ids: &[String],
    fingerprint: &[u8; 32],
) -> Option<syncfabric_wifi::discovery::Advertisement> {
    use syncfabric_wifi::discovery::{advertise, Announce};
    let only_on = Some(a.listen.ip()).filter(|ip| !ip.is_unspecified());
    let addresses: Vec<IpAddr> = only_on.or_else(primary_ip).into_iter().collect();
    let name = hostname().unwrap_or_else(|| "syncfabric".into());
    let announce = Announce {
        instance: &name,
        host: &name,
        addresses: &addresses,
        port,
        vaults: ids,
        fingerprint,
        only_on,
    };
    match advertise(&announce) {
        Ok(ad) => Some(ad),
        Err(e) => {
            eprintln!("not announced on the network ({e}); pair with the pairing text");
            None
        }
    }
}

type Signals = (tokio::signal::unix::Signal, tokio::signal::unix::Signal);

/// One status line a second (rewritten in place on a terminal; a new line when the
/// clients or last sync change otherwise), until Ctrl-C or SIGTERM.
async fn run_until_stopped(
    server: ServerHandle,
    fingerprint: [u8; 32],
    (mut int, mut term): Signals,
) -> CliResult {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let tty = std::io::stderr().is_terminal();
    let mut last_logged = String::new();
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {}
        }
        let st = server.status();
        let now = now_unix();
        let code = syncfabric_wifi::code::code_at(&fingerprint, now)?;
        let sync = match st.last_sync.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
            Some(t) => format!("{} s ago", now.saturating_sub(t.as_secs())),
            None => "never".into(),
        };
        let clients: Vec<String> = st.clients.iter().map(IpAddr::to_string).collect();
        let what = format!(
            "clients: {} [{}]; failed logins: {}",
            clients.len(),
            clients.join(", "),
            st.failed_logins
        );
        if tty {
            eprint!(
                "\r{what}; last sync: {sync}; verification code: {} {} ({:2} s)\x1b[K",
                &code[..3],
                &code[3..],
                syncfabric_wifi::code::seconds_left(now)
            );
        } else if what != last_logged || st.last_sync.is_some() && sync.starts_with("0 s") {
            eprintln!("{what}; last sync: {sync}");
            last_logged = what;
        }
    }
    if tty {
        eprintln!();
    }
    eprintln!("stopping: letting open requests finish");
    server.shutdown().await;
    Ok(())
}
