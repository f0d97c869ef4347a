//! `syncfabric serve` end to end: it starts on 127.0.0.1 (port 0), prints the URL and
//! the access password, serves the vault to curl trusting the certificate it keeps in
//! the config dir, stops with exit status 0 on SIGINT, and a second start keeps the
//! same certificate and password (a new one would break every pairing).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

struct Started {
    url: String,
    password: String,
    fingerprint: String,
}

fn start_and_stop(cfg: &Path, vault: &Path) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_syncfabric"))
        .env("SYNCFABRIC_CONFIG", cfg.join("config.toml"))
        .env_remove("SYNCFABRIC_VAULT")
        .args(["--quiet", "serve"])
        .arg(vault)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (mut url, mut password, mut fingerprint) = (String::new(), String::new(), String::new());
    for line in out.lines() {
        let line = line.unwrap();
        let field = |name: &str| line.split_once(name).map(|(_, v)| v.trim().to_string());
        if let Some(v) = field("url:") {
            url = v;
        } else if let Some(v) = field("access password:") {
            password = v.replace('-', "");
        } else if let Some(v) = field("certificate:") {
            fingerprint = v;
        } else if line.starts_with("listening on") {
            break;
        }
    }
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let cert = cfg.join("server").join("server-cert.pem");
    let got = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&cert)
        .args(["-u", &format!("me:{password}"), &format!("{url}vault.json")])
        .output()
        .expect("curl runs");
    assert!(
        got.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(String::from_utf8_lossy(&got.stdout).contains("serve-test-uuid"));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "serve exit status after SIGINT: {status:?}"
    );
    Started {
        url,
        password,
        fingerprint,
    }
}

#[test]
fn serve_starts_serves_and_stops_and_keeps_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    std::fs::write(vault.join("vault.json"), r#"{"uuid":"serve-test-uuid"}"#).unwrap();
    let cfg = dir.path().join("cfg");
    let a = start_and_stop(&cfg, &vault);
    let pw_file = cfg.join("server/passwords/serve-test-uuid");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pw_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the password file is the owner's only");
    assert_eq!(std::fs::read_to_string(&pw_file).unwrap(), a.password);
    let b = start_and_stop(&cfg, &vault);
    assert_eq!((a.password, a.fingerprint), (b.password, b.fingerprint));
    assert!(b.url.ends_with("/dav/serve-test-uuid/"));
}
