//! `syncfabric serve` and `syncfabric pair` end to end, with the real binary on
//! 127.0.0.1 (port 0):
//! 1. `serve` prints the URL, the access password and the pairing text, serves its
//!    sync folder to curl trusting the certificate it keeps in the config dir, stops
//!    with exit status 0 on SIGINT, and a second start keeps the same certificate and
//!    password (a new one would break every pairing).
//! 2. A laptop serves its vault; a phone with no vault pairs with the pairing text,
//!    confirms the verification code, gets the vault, and both sync through the
//!    server both ways, the phone's password coming from its token store; a man in
//!    the middle with another certificate gets not one byte of a pairing.

mod common;

use common::Dev;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

const TOKEN_PASS: &str = "phone token store passphrase";

struct Serving {
    child: Child,
    url: String,
    password: String,
    fingerprint: String,
    pairing: String,
}

impl Serving {
    /// `serve` for `dev`'s vault (its config), until it says it listens.
    fn start(dev: &Dev) -> Serving {
        Serving::start_with(dev, &["--no-mdns"])
    }

    /// `serve` with `extra` arguments.
    fn start_with(dev: &Dev, extra: &[&str]) -> Serving {
        let mut args = vec!["--quiet", "serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = dev
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut s = Serving {
            child,
            url: String::new(),
            password: String::new(),
            fingerprint: String::new(),
            pairing: String::new(),
        };
        for line in out.lines() {
            let line = line.unwrap();
            let field = |name: &str| line.split_once(name).map(|(_, v)| v.trim().to_string());
            if let Some(v) = field("url:") {
                s.url = v;
            } else if let Some(v) = field("access password:") {
                s.password = v.replace('-', "");
            } else if let Some(v) = field("certificate:") {
                s.fingerprint = v.trim_start_matches("sha256 ").to_string();
            } else if let Some(v) = field("pairing text:") {
                s.pairing = v;
            } else if line.starts_with("listening on") {
                break;
            }
        }
        assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
        s
    }

    /// SIGINT; the exit status must be 0.
    fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "serve exit status after SIGINT: {status:?}"
        );
    }
}

fn curl(cert: &Path, password: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(cert)
        .args(["-u", &format!("me:{password}")])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn uuid_of(dev: &Dev) -> String {
    let json = std::fs::read_to_string(dev.vault.join("vault.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["vault_uuid"].as_str().unwrap().to_string()
}

#[test]
fn serve_starts_serves_and_stops_and_keeps_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let laptop = Dev::new(dir.path(), "laptop");
    laptop.run(&["vault", "create", "--kdf-iter", "1000"]);
    let uuid = uuid_of(&laptop);
    let cfg = dir.path();
    let a = Serving::start(&laptop);
    let cert = cfg.join("server").join("server-cert.pem");
    let url = format!("{}hello.txt", a.url);
    curl(&cert, &a.password, &["-T", "-", &url]);
    let got = curl(&cert, &a.password, &[&url]);
    assert_eq!(got.stdout, b"", "an empty upload reads back empty");
    // What is served is the vault's sync folder, not the vault folder.
    assert!(cfg.join(format!("server/store/{uuid}/hello.txt")).exists());
    assert!(!laptop.vault.join("hello.txt").exists());
    let (pw, fp) = (a.password.clone(), a.fingerprint.clone());
    a.stop();
    let pw_file = cfg.join(format!("server/passwords/{uuid}"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pw_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the password file is the owner's only");
    assert_eq!(std::fs::read_to_string(&pw_file).unwrap(), pw);
    let b = Serving::start(&laptop);
    assert_eq!((&pw, &fp), (&b.password, &b.fingerprint));
    assert!(b.url.ends_with(&format!("/dav/{uuid}/")));
    // This device syncs with the others through the folder remote serve added.
    let remotes = String::from_utf8_lossy(&laptop.run(&["remote", "list"]).stdout).to_string();
    assert!(remotes.contains("wifi-server"), "{remotes}");
    b.stop();
}

/// A TLS listener with `cert`/`key` that completes handshakes and records every byte
/// a client sends after one: a man in the middle, on loopback.
fn mitm(cert_pem: &[u8], key_pem: &[u8]) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    use openssl::pkey::PKey;
    use openssl::ssl::{SslAcceptor, SslMethod};
    use openssl::x509::X509;
    let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    a.set_certificate(&X509::from_pem(cert_pem).unwrap())
        .unwrap();
    a.set_private_key(&PKey::private_key_from_pem(key_pem).unwrap())
        .unwrap();
    let acceptor = Arc::new(a.build());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let got = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (acceptor, got) = (acceptor.clone(), got.clone());
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                if let Ok(mut tls) = acceptor.accept(tcp) {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = std::io::Read::read(&mut tls, &mut buf) {
                        got.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// `pair` on `dev` with `text`, answering `answer` to the code question: the JSON
/// lines it printed, whether it succeeded, and all it said.
fn pair(dev: &Dev, text: &str, answer: &str) -> (Vec<serde_json::Value>, bool, String) {
    let mut child = dev
        .cmd(&["--json", "pair", "--name", "laptop"])
        .env("SYNCFABRIC_PAIRING", text)
        .env("SYNCFABRIC_TOKEN_PASSPHRASE", TOKEN_PASS)
        .env("SYNCFABRIC_TOKEN_FILE", dev.vault.with_extension("tokens"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{answer}").unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<serde_json::Value>()
        .map(|v| v.unwrap())
        .collect();
    // With --json an error is a JSON line on stdout; the prompt is on stderr.
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (lines, out.status.success(), err)
}

#[test]
fn a_phone_pairs_and_syncs_both_ways_and_a_man_in_the_middle_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let laptop = Dev::new(dir.path(), "laptop");
    laptop.run(&["vault", "create", "--kdf-iter", "1000"]);
    laptop.run(&[
        "item",
        "add",
        "--title",
        "Made on the laptop",
        "--username",
        "l",
    ]);
    let server = Serving::start(&laptop);
    laptop.run(&["sync", "wifi-server"]);
    let fp: [u8; 32] = hex::decode(&server.fingerprint)
        .unwrap()
        .try_into()
        .unwrap();

    // The person says the codes differ: nothing is paired, nothing stored.
    let phone = Dev::new(dir.path(), "phone");
    let (said, ok, _) = pair(&phone, &server.pairing, "n");
    assert!(!ok);
    assert!(!phone.vault.join("vault.json").exists());
    // The code shown is the server certificate's (the one serve shows).
    let code = said[0]["code"].as_str().unwrap().to_string();
    let now = syncfabric_auth::unix_now();
    assert!(
        syncfabric_wifi::code::matches(&fp, &code, now).unwrap(),
        "{said:?}"
    );

    // Confirmed: the phone gets the vault, and its password is kept in its token store.
    let (said, ok, err) = pair(&phone, &server.pairing, "y");
    assert!(ok, "{said:?} {err}");
    assert_eq!(phone.titles(), ["Made on the laptop"]);
    let config = std::fs::read_to_string(&phone.config).unwrap();
    assert!(config.contains("pin-sha256=") && config.contains("stored_password = true"));
    assert!(
        !config.contains(&server.password),
        "the password is not in the config"
    );

    // Both ways through the server; the phone's syncs find the password themselves.
    phone.run(&[
        "item",
        "add",
        "--title",
        "Made on the phone",
        "--username",
        "p",
    ]);
    let sync = |d: &Dev, remote: &str| {
        let out = d
            .cmd(&["sync", remote])
            .env("SYNCFABRIC_TOKEN_PASSPHRASE", TOKEN_PASS)
            .env("SYNCFABRIC_TOKEN_FILE", d.vault.with_extension("tokens"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sync(&phone, "laptop");
    sync(&laptop, "wifi-server");
    assert_eq!(laptop.titles(), ["Made on the laptop", "Made on the phone"]);

    // A man in the middle with another certificate, and the real fingerprint in the
    // pairing text: refused before a byte is sent, and the codes would differ.
    let (other_cert, other_key) = {
        let c = syncfabric_wifi::cert::ServerCert::generate(&Default::default()).unwrap();
        (
            c.certificate().to_pem().unwrap(),
            c.key().private_key_to_pem_pkcs8().unwrap(),
        )
    };
    let (addr, seen) = mitm(&other_cert, &other_key);
    let real = server.url.trim_start_matches("https://");
    let port_end = real.find('/').unwrap();
    let forged = server.pairing.replace(
        &format!("https://{}", &real[..port_end]),
        &format!("https://{addr}"),
    );
    let tablet = Dev::new(dir.path(), "tablet");
    let (_, ok, err) = pair(&tablet, &forged, "y");
    assert!(!ok && err.contains("another certificate"), "{err}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        seen.lock().unwrap().is_empty(),
        "bytes reached the man in the middle"
    );
    let other_fp = openssl::x509::X509::from_pem(&other_cert)
        .unwrap()
        .digest(openssl::hash::MessageDigest::sha256())
        .unwrap();
    let other_fp: [u8; 32] = other_fp.as_ref().try_into().unwrap();
    let theirs = syncfabric_wifi::code::code_at(&other_fp, now).unwrap();
    assert_ne!(theirs, code, "the man in the middle's code differs");

    // Pairing by the URL alone (as `pair --browse` lists it): the certificate comes
    // from the server, the code is confirmed, the password typed.
    let desk = Dev::new(dir.path(), "desk");
    let mut child = desk
        .cmd(&["--json", "pair", "--name", "laptop", "--url", &server.url])
        .env("SYNCFABRIC_REMOTE_PASSWORD", &server.password)
        .env("SYNCFABRIC_TOKEN_PASSPHRASE", TOKEN_PASS)
        .env("SYNCFABRIC_TOKEN_FILE", desk.vault.with_extension("tokens"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "y").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let said: serde_json::Value = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert!(syncfabric_wifi::code::matches(&fp, said["code"].as_str().unwrap(), now).unwrap());
    assert_eq!(desk.titles(), ["Made on the laptop", "Made on the phone"]);
    server.stop();
}

/// `pair --browse` finds a running `serve` by mDNS, inside a private network
/// namespace (only its loopback: nothing is sent on a real network). Runs itself
/// again in the namespace on the ignored test below; skips loudly where no namespace
/// can be made (fails with `SYNCFABRIC_REQUIRE_SERVERS=1`).
#[test]
fn pair_browse_finds_serve_in_a_private_network() {
    let exe = std::env::current_exe().unwrap();
    let setup = "ip link set lo up && ip link set lo multicast on && \
                 ip route add 224.0.0.0/4 dev lo && exec \"$0\" \"$1\" --exact --ignored --nocapture";
    let flags = if unsafe { libc::geteuid() } == 0 {
        "-n"
    } else {
        "-rn"
    };
    let out = Command::new("unshare")
        .args([flags, "sh", "-c", setup])
        .arg(&exe)
        .arg("browse_in_a_private_network")
        .output();
    let text = match &out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => e.to_string(),
    };
    if out.as_ref().map_or(true, |o| {
        !o.status.success() && text.contains("unshare failed")
    }) {
        if std::env::var_os("SYNCFABRIC_REQUIRE_SERVERS").is_some_and(|v| v == "1") {
            panic!("no network namespace: {text}");
        }
        eprintln!("!!!!! no network namespace here ({text}): SKIPPING");
        return;
    }
    assert!(out.unwrap().status.success(), "{text}");
    assert!(text.contains("1 passed"), "the inner test ran: {text}");
}

#[test]
#[ignore = "run by pair_browse_finds_serve_in_a_private_network in a namespace"]
fn browse_in_a_private_network() {
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap();
    assert_eq!(dev.lines().count(), 3, "only the loopback: {dev}");
    let dir = tempfile::tempdir().unwrap();
    let laptop = Dev::new(dir.path(), "laptop");
    laptop.run(&["vault", "create", "--kdf-iter", "1000"]);
    let server = Serving::start_with(&laptop, &[]);
    let phone = Dev::new(dir.path(), "phone");
    let out = phone.run(&["--json", "pair", "--browse", "--wait", "3"]);
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let urls: Vec<&str> = found[0]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(urls, [server.url.as_str()], "{found}");
    assert_eq!(
        found[0]["fingerprint_prefix"].as_str().unwrap(),
        &server.fingerprint[..16]
    );
    server.stop();
}
