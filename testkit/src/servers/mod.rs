//! Real WebDAV servers for the tests: each started on 127.0.0.1 at a free port with a
//! scratch folder and basic auth, in its own process group, killed on drop.
//!
//! A missing server binary makes `start` return `None` with a loud message, or panic
//! when `SYNCFABRIC_REQUIRE_SERVERS=1` (CI).
//!
//! Most servers are Debian packages. WsgiDAV (PyPI) and `webdav-server` (npm) are pinned
//! in `requirements.txt` and `package-lock.json` beside this file; `scripts/test`
//! installs them into [`installed_servers_dir`] (inside the workspace's `target/`, so
//! nothing global is assumed), where the launcher finds them.
//!
//! Our own Wi-Fi Sync Server ([`Kind::Syncfabric`], the `syncfabric-server` library) is
//! started in this process instead, on a thread with its own tokio runtime (so it
//! outlives no test and serves whatever runtime the test uses): HTTPS only, with a fresh
//! self-signed certificate ([`Server::cert_pem`], [`Server::pin_sha256`]) and its own
//! random access password ([`Server::pass`]; any user name). It is not in [`Kind::ALL`],
//! the loops over the external servers that speak plain HTTP with [`USER`] and [`PASS`];
//! [`Server::remote_url`] gives the registry URL that reaches any kind.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The basic-auth user name every external server ([`Kind::ALL`]) accepts.
pub const USER: &str = "syncuser";
/// [`USER`]'s password on every external server ([`Kind::ALL`]).
pub const PASS: &str = "s3cret-Pass";

/// Which WebDAV server to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Apache httpd with `mod_dav_fs` (Debian `apache2`).
    Apache,
    /// nginx with its DAV module and `dav_ext` (Debian `nginx`, `libnginx-mod-http-dav-ext`).
    Nginx,
    /// lighttpd with `mod_webdav` (Debian `lighttpd`, `lighttpd-mod-webdav`).
    Lighttpd,
    /// `rclone serve webdav` on a local folder (Debian `rclone`).
    Rclone,
    /// SabreDAV on PHP's built-in server (Debian `php-cli`, `php-sabre-dav`).
    Sabre,
    /// WsgiDAV 4 (PyPI) on cheroot, its filesystem provider and its lock manager.
    Wsgidav,
    /// `webdav-server` 2 (npm, Node.js): its `PhysicalFileSystem` and lock manager.
    NodeWebdav,
    /// Our Wi-Fi Sync Server (`syncfabric-server`), in this process; not in
    /// [`Kind::ALL`] (see the module doc).
    Syncfabric,
}

impl Kind {
    /// The external servers (every kind but [`Kind::Syncfabric`]), for loops over them.
    pub const ALL: [Kind; 7] = [
        Kind::Apache,
        Kind::Nginx,
        Kind::Lighttpd,
        Kind::Rclone,
        Kind::Sabre,
        Kind::Wsgidav,
        Kind::NodeWebdav,
    ];
    /// The kind called `name` ([`Kind::name`]), [`Kind::Syncfabric`] included.
    pub fn by_name(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .chain([Kind::Syncfabric])
            .find(|k| k.name() == name)
    }
    /// The kind's short name, as in test names and messages (`"apache"`, `"sabredav"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Apache => "apache",
            Kind::Nginx => "nginx",
            Kind::Lighttpd => "lighttpd",
            Kind::Rclone => "rclone",
            Kind::Sabre => "sabredav",
            Kind::Wsgidav => "wsgidav",
            Kind::NodeWebdav => "webdav-server",
            Kind::Syncfabric => "syncfabric",
        }
    }
    fn binary(self) -> &'static str {
        match self {
            Kind::Apache => "/usr/sbin/apache2",
            Kind::Nginx => "/usr/sbin/nginx",
            Kind::Lighttpd => "/usr/sbin/lighttpd",
            Kind::Rclone => "rclone",
            Kind::Sabre => "php",
            Kind::Wsgidav => "python3",
            Kind::NodeWebdav => "node",
            // In this process: nothing to find.
            Kind::Syncfabric => "/",
        }
    }
    /// Extra files that must exist (modules, packages).
    fn needs(self) -> Vec<PathBuf> {
        let installed = installed_servers_dir();
        match self {
            Kind::Apache => vec!["/usr/lib/apache2/modules/mod_dav_fs.so".into()],
            Kind::Nginx => vec!["/usr/lib/nginx/modules/ngx_http_dav_ext_module.so".into()],
            Kind::Lighttpd => vec!["/usr/lib/lighttpd/mod_webdav.so".into()],
            Kind::Rclone | Kind::Syncfabric => vec![],
            Kind::Sabre => vec!["/usr/share/php/Sabre/autoload.php".into()],
            Kind::Wsgidav => vec![
                installed.join("python/wsgidav/__init__.py"),
                installed.join("python/cheroot/__init__.py"),
            ],
            Kind::NodeWebdav => {
                vec![installed.join("node/node_modules/webdav-server/package.json")]
            }
        }
    }
    /// How to get it.
    fn install_hint(self) -> &'static str {
        match self {
            Kind::Wsgidav | Kind::NodeWebdav => {
                "run scripts/test once: it installs the pinned wsgidav (pip) and webdav-server (npm) into target/test-servers/"
            }
            _ => "install apache2 nginx libnginx-mod-http-dav-ext lighttpd lighttpd-mod-webdav rclone php-cli php-sabre-dav",
        }
    }
}

/// Where `scripts/test` installs the servers that come from PyPI and npm:
/// `$SYNCFABRIC_TEST_SERVERS`, else `target/test-servers` of the workspace (the folder
/// above this crate that holds `Cargo.lock`).
pub fn installed_servers_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SYNCFABRIC_TEST_SERVERS") {
        return d.into();
    }
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").exists() {
        match dir.parent() {
            Some(up) => dir = up,
            None => break,
        }
    }
    dir.join("target/test-servers")
}

/// A started server; stopped (its process group killed, or its thread joined) on drop.
pub struct Server {
    /// Which server this is.
    pub kind: Kind,
    /// The server's process; `None` for [`Kind::Syncfabric`] (in this process).
    child: Option<Child>,
    /// [`Kind::Syncfabric`]'s thread.
    in_process: Option<InProcess>,
    dir: tempfile::TempDir,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Root URL of the served scratch folder, ending in '/'.
    pub url: String,
    /// The folder the server serves.
    pub data: PathBuf,
    /// The password to give with any user name: [`PASS`], or [`Kind::Syncfabric`]'s
    /// generated access password.
    pub pass: String,
    /// [`Kind::Syncfabric`]'s certificate (PEM), the only one to trust.
    pub cert_pem: Option<Vec<u8>>,
    /// [`Kind::Syncfabric`]'s certificate's SHA-256, 64 hex digits (`?pin-sha256=`).
    pub pin_sha256: Option<String>,
}

/// A [`Kind::Syncfabric`] server's thread and the way to stop it.
struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The id [`Kind::Syncfabric`] serves its scratch folder under: `/dav/<id>/`.
pub const SYNCFABRIC_VAULT_ID: &str = "syncfabric-test-vault";

fn which(bin: &str) -> bool {
    if bin.starts_with('/') {
        return Path::new(bin).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).exists()))
        .unwrap_or(false)
}

/// Whether a missing server is a failure (`SYNCFABRIC_REQUIRE_SERVERS=1`, as in CI)
/// rather than a skipped test.
pub fn require_servers() -> bool {
    std::env::var("SYNCFABRIC_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn www_data_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "www-data" {
            return Some((f[2].parse().ok()?, f[3].parse().ok()?));
        }
    }
    None
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let _ = std::os::unix::fs::chown(p, Some(uid), Some(gid));
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

fn sha_htpasswd() -> String {
    let digest = openssl::sha::sha1(PASS.as_bytes());
    format!("{USER}:{{SHA}}{}\n", openssl::base64::encode_block(&digest))
}

impl Server {
    /// Starts `kind`; `None` (after a loud message) if its binary is missing and
    /// servers are not required.
    pub fn start(kind: Kind) -> Option<Server> {
        Server::start_with(kind, None, false)
    }

    /// SabreDAV whose lock backend grants the timeout a `LOCK` asks (at most its own
    /// 1800 s) instead of always 1800 s; the Locks plugin, its `If` evaluation and the
    /// rest stay SabreDAV's. For runs that must see a lock whose `LOCK` answer was lost
    /// expire within the run: nobody can release such a lock on SabreDAV (it shows no
    /// tokens), so the stock backend keeps it half an hour.
    pub fn start_sabre_granting_asked_timeouts() -> Option<Server> {
        Server::start_with(Kind::Sabre, None, true)
    }

    /// Starts `kind` serving HTTPS with the PEM certificate `cert` and private key `key`
    /// (only `rclone serve webdav` supports it here: `--cert`/`--key`); [`Server::url`]
    /// is then `https://127.0.0.1:PORT/`. `None` as for [`Server::start`].
    pub fn start_tls(kind: Kind, cert: &Path, key: &Path) -> Option<Server> {
        assert_eq!(
            kind,
            Kind::Rclone,
            "start_tls: only rclone serves HTTPS here"
        );
        Server::start_with(kind, Some((cert, key)), false)
    }

    fn start_with(
        kind: Kind,
        tls: Option<(&Path, &Path)>,
        asked_lock_timeouts: bool,
    ) -> Option<Server> {
        if kind == Kind::Syncfabric {
            return Some(Server::start_syncfabric());
        }
        let missing: Vec<String> = std::iter::once(kind.binary().to_string())
            .chain(kind.needs().iter().map(|p| p.display().to_string()))
            .filter(|b| !which(b))
            .collect();
        if !missing.is_empty() {
            let msg = format!(
                "!!!!! WebDAV server {} not installed (missing {missing:?}); {}",
                kind.name(),
                kind.install_hint()
            );
            if require_servers() {
                panic!("{msg} (SYNCFABRIC_REQUIRE_SERVERS=1)");
            }
            eprintln!("{msg}: SKIPPING");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("syncfabric-{}-", kind.name()))
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let port = free_port();
        let d = dir.path().display().to_string();
        let mut cmd;
        match kind {
            Kind::Apache => {
                std::fs::create_dir(dir.path().join("lock")).unwrap();
                std::fs::write(dir.path().join("htpasswd"), sha_htpasswd()).unwrap();
                let m = "/usr/lib/apache2/modules";
                let conf = format!(
                    r#"ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {d}/httpd.pid
ErrorLog {d}/error.log
LogLevel warn
LoadModule mpm_event_module {m}/mod_mpm_event.so
StartServers 2
ServerLimit 4
ThreadsPerChild 8
MaxRequestWorkers 32
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule authn_core_module {m}/mod_authn_core.so
LoadModule authn_file_module {m}/mod_authn_file.so
LoadModule auth_basic_module {m}/mod_auth_basic.so
LoadModule authz_user_module {m}/mod_authz_user.so
LoadModule dav_module {m}/mod_dav.so
LoadModule dav_fs_module {m}/mod_dav_fs.so
User www-data
Group www-data
DocumentRoot "{d}/data"
DavLockDB "{d}/lock/DavLock"
<Directory "{d}/data">
  Dav On
  AuthType Basic
  AuthName "dav"
  AuthBasicProvider file
  AuthUserFile "{d}/htpasswd"
  Require valid-user
</Directory>
"#
                );
                std::fs::write(dir.path().join("httpd.conf"), conf).unwrap();
                if let Some((uid, gid)) = www_data_ids() {
                    if unsafe { libc::geteuid() } == 0 {
                        chown_tree(&data, uid, gid);
                        chown_tree(&dir.path().join("lock"), uid, gid);
                    }
                }
                cmd = Command::new(kind.binary());
                // Several worker processes and threads, as in production: requests run
                // concurrently, so the race test sees Apache's real conditional writes.
                cmd.args(["-DFOREGROUND", "-f"])
                    .arg(dir.path().join("httpd.conf"));
            }
            Kind::Nginx => {
                std::fs::write(dir.path().join("htpasswd"), sha_htpasswd()).unwrap();
                for t in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
                    std::fs::create_dir(dir.path().join(t)).unwrap();
                }
                let conf = format!(
                    r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
events {{ worker_connections 128; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {d}/data;
    client_max_body_size 0;
    location / {{
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      create_full_put_path on;
      dav_access user:rw group:rw all:r;
      auth_basic "dav";
      auth_basic_user_file {d}/htpasswd;
    }}
  }}
}}
"#
                );
                std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
                cmd = Command::new(kind.binary());
                cmd.arg("-p")
                    .arg(dir.path())
                    .arg("-e")
                    .arg(dir.path().join("error.log"))
                    .arg("-c")
                    .arg(dir.path().join("nginx.conf"));
            }
            Kind::Lighttpd => {
                std::fs::write(dir.path().join("users"), format!("{USER}:{PASS}\n")).unwrap();
                std::fs::create_dir(dir.path().join("upload")).unwrap();
                let conf = format!(
                    r#"server.document-root = "{d}/data"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/error.log"
server.upload-dirs = ( "{d}/upload" )
server.modules = ( "mod_auth", "mod_authn_file", "mod_webdav" )
webdav.activate = "enable"
webdav.is-readonly = "disable"
auth.backend = "plain"
auth.backend.plain.userfile = "{d}/users"
auth.require = ( "" => ( "method" => "basic", "realm" => "dav", "require" => "valid-user" ) )
"#
                );
                std::fs::write(dir.path().join("lighttpd.conf"), conf).unwrap();
                cmd = Command::new(kind.binary());
                cmd.arg("-D")
                    .arg("-f")
                    .arg(dir.path().join("lighttpd.conf"));
            }
            Kind::Rclone => {
                cmd = Command::new(kind.binary());
                cmd.env("RCLONE_CONFIG", dir.path().join("rclone.conf"))
                    .args([
                        "serve",
                        "webdav",
                        "--addr",
                        &format!("127.0.0.1:{port}"),
                        "--user",
                        USER,
                        "--pass",
                        PASS,
                    ]);
                if let Some((cert, key)) = tls {
                    cmd.arg("--cert").arg(cert).arg("--key").arg(key);
                }
                cmd.arg(&data);
            }
            Kind::Sabre => {
                std::fs::create_dir(dir.path().join("locks")).unwrap();
                let backend = if asked_lock_timeouts {
                    "SfAskedTimeouts"
                } else {
                    "\\Sabre\\DAV\\Locks\\Backend\\File"
                };
                let php = format!(
                    r#"<?php
require_once '/usr/share/php/Sabre/autoload.php';
class SfAuth extends \Sabre\DAV\Auth\Backend\AbstractBasic {{
    protected function validateUserPass($u, $p) {{ return $u === '{USER}' && $p === '{PASS}'; }}
}}
// The stock file backend, except that a lock lasts what the LOCK asked (the plugin
// puts the Timeout header into $lockInfo->timeout), at most the stock 1800 s.
class SfAskedTimeouts extends \Sabre\DAV\Locks\Backend\File {{
    public function lock($uri, \Sabre\DAV\Locks\LockInfo $lockInfo) {{
        $asked = $lockInfo->timeout;
        $lockInfo->timeout = ($asked > 0 && $asked < 1800) ? $asked : 1800;
        $lockInfo->created = time();
        $lockInfo->uri = $uri;
        $locks = array();
        foreach ($this->getData() as $lock) {{
            if ($lock->token != $lockInfo->token && time() <= $lock->timeout + $lock->created) {{
                $locks[] = $lock;
            }}
        }}
        $locks[] = $lockInfo;
        $this->putData($locks);
        return true;
    }}
}}
$server = new \Sabre\DAV\Server(new \Sabre\DAV\FSExt\Directory('{d}/data'));
$server->setBaseUri('/');
$server->addPlugin(new \Sabre\DAV\Auth\Plugin(new SfAuth(), 'dav'));
$server->addPlugin(new \Sabre\DAV\Locks\Plugin(new {backend}('{d}/locks/locks')));
$server->exec();
"#
                );
                std::fs::write(dir.path().join("server.php"), php).unwrap();
                cmd = Command::new(kind.binary());
                cmd.args([
                    "-d",
                    "error_reporting=E_ALL & ~E_DEPRECATED",
                    "-d",
                    "display_errors=stderr",
                    "-S",
                    &format!("127.0.0.1:{port}"),
                ])
                .arg(dir.path().join("server.php"))
                .current_dir(dir.path());
            }
            Kind::Wsgidav => cmd = wsgidav_command(dir.path(), port),
            Kind::NodeWebdav => cmd = node_webdav_command(dir.path(), port),
            Kind::Syncfabric => unreachable!("started in process above"),
        }
        let log = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let log2 = log.try_clone().unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", kind.name()));
        let mut server = Server {
            kind,
            child: Some(child),
            in_process: None,
            pass: PASS.to_string(),
            cert_pem: None,
            pin_sha256: None,
            url: format!(
                "{}://127.0.0.1:{port}/",
                if tls.is_some() { "https" } else { "http" }
            ),
            port,
            data,
            dir,
        };
        server.wait_ready();
        Some(server)
    }

    /// Our Wi-Fi Sync Server on 127.0.0.1 at a free port (bound to port 0), serving
    /// `<scratch>/data` as the vault [`SYNCFABRIC_VAULT_ID`], dead properties kept in
    /// `<scratch>/state`, with a fresh certificate for 127.0.0.1 and a fresh access
    /// password; on its own thread and runtime, stopped on drop.
    fn start_syncfabric() -> Server {
        use syncfabric_wifi::cert::{Names, ServerCert};
        let dir = tempfile::Builder::new()
            .prefix("syncfabric-syncfabric-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        let state = dir.path().join("state");
        std::fs::create_dir(&data).expect("data dir");
        let names = Names {
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
        };
        let cert = ServerCert::generate(&names).expect("certificate");
        let pem = cert.certificate().to_pem().expect("certificate PEM");
        let pin: String = cert
            .fingerprint()
            .expect("fingerprint")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let password = syncfabric_server::AccessPassword::generate().expect("password");
        let pass = password.expose().to_string();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = data.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let bound = async {
                    syncfabric_server::Server::builder()
                        .vault_with_id(SYNCFABRIC_VAULT_ID, &served, password)?
                        .cert(cert)
                        .state_dir(state)
                        .bind("127.0.0.1:0".parse().unwrap())
                        .await
                };
                let handle = match bound.await {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(handle.local_addr().port()));
                let _ = stop_rx.await;
                let _ = tokio::time::timeout(Duration::from_secs(5), handle.shutdown()).await;
            });
        });
        let port = match ready_rx.recv() {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => panic!("starting the syncfabric server: {e}"),
            Err(_) => panic!("the syncfabric server's thread ended at start"),
        };
        Server {
            kind: Kind::Syncfabric,
            child: None,
            in_process: Some(InProcess {
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            url: format!("https://127.0.0.1:{port}/dav/{SYNCFABRIC_VAULT_ID}/"),
            port,
            data,
            dir,
            pass,
            cert_pem: Some(pem),
            pin_sha256: Some(pin),
        }
    }

    /// The registry URL (`webdav+http://` or `webdav+https://`, as [`USER`]) of `url`,
    /// one of this server's URLs (such as [`Server::scratch`] gives); pinned to the
    /// certificate (`?pin-sha256=`) for [`Kind::Syncfabric`]. Its password: [`Server::pass`].
    pub fn remote_url(&self, url: &str) -> String {
        let url = url
            .replacen("http://", &format!("webdav+http://{USER}@"), 1)
            .replacen("https://", &format!("webdav+https://{USER}@"), 1);
        match &self.pin_sha256 {
            Some(pin) => format!("{url}?pin-sha256={pin}"),
            None => url,
        }
    }

    fn wait_ready(&mut self) {
        if self.child.is_none() {
            return;
        }
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "{} exited at start ({status}): {}",
                    self.kind.name(),
                    self.logs()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not start listening: {}",
                    self.kind.name(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's logs (for failure messages).
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["stdout.log", "error.log"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.path().join(f)) {
                s.push_str(&format!(
                    "--- {f}\n{}\n",
                    t.chars()
                        .rev()
                        .take(4000)
                        .collect::<String>()
                        .chars()
                        .rev()
                        .collect::<String>()
                ));
            }
        }
        s
    }

    /// A fresh empty sub-folder of the served root (created on disk), and its URL.
    pub fn scratch(&self, name: &str) -> String {
        let p = self.data.join(name);
        std::fs::create_dir_all(&p).unwrap();
        if self.kind == Kind::Apache && unsafe { libc::geteuid() } == 0 {
            if let Some((uid, gid)) = www_data_ids() {
                chown_tree(&p, uid, gid);
            }
        }
        format!("{}{}/", self.url, name)
    }
}

/// WsgiDAV 4 on cheroot: its filesystem provider serving `<dir>/data`, basic auth
/// only (digest off), its lock manager with the in-memory lock storage, and its
/// in-memory property manager. Configuration keys as in WsgiDAV's `default_conf.py`.
fn wsgidav_command(dir: &Path, port: u16) -> Command {
    let data = dir.join("data").display().to_string();
    let conf = format!(
        r#"{{
  "host": "127.0.0.1",
  "port": {port},
  "server": "cheroot",
  "provider_mapping": {{ "/": {data:?} }},
  "http_authenticator": {{
    "accept_basic": true,
    "accept_digest": false,
    "default_to_digest": false
  }},
  "simple_dc": {{ "user_mapping": {{ "*": {{ {USER:?}: {{ "password": {PASS:?} }} }} }} }},
  "lock_storage": true,
  "property_manager": true,
  "dir_browser": {{ "enable": false }},
  "verbose": 2
}}
"#
    );
    std::fs::write(dir.join("wsgidav.json"), conf).unwrap();
    let mut cmd = Command::new(Kind::Wsgidav.binary());
    cmd.env("PYTHONPATH", installed_servers_dir().join("python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-m", "wsgidav.server.server_cli", "--config"])
        .arg(dir.join("wsgidav.json"))
        .current_dir(dir);
    cmd
}

/// `webdav-server` 2 (npm) on Node.js: a `PhysicalFileSystem` on `<dir>/data`, basic
/// auth through its `SimpleUserManager`, all rights for that user, its own lock
/// manager (v2 API as in the package's README).
fn node_webdav_command(dir: &Path, port: u16) -> Command {
    let data = dir.join("data").display().to_string();
    let js = format!(
        r#"const webdav = require('webdav-server').v2;
const users = new webdav.SimpleUserManager();
const user = users.addUser({USER:?}, {PASS:?}, false);
const privileges = new webdav.SimplePathPrivilegeManager();
privileges.setRights(user, '/', ['all']);
const server = new webdav.WebDAVServer({{
  hostname: '127.0.0.1',
  port: {port},
  httpAuthentication: new webdav.HTTPBasicAuthentication(users, 'dav'),
  privilegeManager: privileges,
  rootFileSystem: new webdav.PhysicalFileSystem({data:?}),
}});
server.start(() => console.log('webdav-server listening on 127.0.0.1:{port}'));
"#
    );
    std::fs::write(dir.join("server.js"), js).unwrap();
    let mut cmd = Command::new(Kind::NodeWebdav.binary());
    cmd.env(
        "NODE_PATH",
        installed_servers_dir().join("node/node_modules"),
    )
    .arg(dir.join("server.js"))
    .current_dir(dir);
    cmd
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let pid = child.id() as i32;
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let _ = child.wait();
        }
        if let Some(p) = self.in_process.as_mut() {
            if let Some(stop) = p.stop.take() {
                let _ = stop.send(());
            }
            if let Some(t) = p.thread.take() {
                let _ = t.join();
            }
        }
    }
}
