//! The certificate kept across restarts, access passwords, and pairing payloads.

use std::net::IpAddr;
use syncfabric_wifi::cert::{fingerprint_of, Names, ServerCert};
use syncfabric_wifi::pairing::Pairing;
use syncfabric_wifi::password::AccessPassword;
use syncfabric_wifi::Error;

fn names() -> Names {
    Names {
        dns: vec!["laptop.local".into()],
        ips: vec![
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap(),
        ],
    }
}

#[test]
fn the_certificate_is_kept_across_restarts_and_rotated_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let a = ServerCert::load_or_create(dir.path(), &names()).unwrap();
    let b = ServerCert::load_or_create(dir.path(), &names()).unwrap();
    assert_eq!(a.fingerprint().unwrap(), b.fingerprint().unwrap());
    assert_eq!(
        fingerprint_of(b.certificate()).unwrap(),
        a.fingerprint().unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("server-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let c = ServerCert::rotate(dir.path(), &names()).unwrap();
    assert_ne!(c.fingerprint().unwrap(), a.fingerprint().unwrap());
    let d = ServerCert::load_or_create(dir.path(), &names()).unwrap();
    assert_eq!(d.fingerprint().unwrap(), c.fingerprint().unwrap());
    assert!(!format!("{d:?}").contains("PRIVATE"));
}

#[test]
fn the_certificate_names_the_host_and_its_addresses_and_openssl_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = ServerCert::load_or_create(dir.path(), &names()).unwrap();
    // An independent reader: the openssl command-line tool.
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.path().join("server-cert.pem"))
        .output()
        .expect("openssl CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DNS:laptop.local"), "{text}");
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(dir.path().join("server-cert.pem"))
        .output()
        .unwrap();
    let shown: String = String::from_utf8_lossy(&out.stdout)
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(shown, hex::encode(c.fingerprint().unwrap()));
}

#[test]
fn a_damaged_or_mismatched_certificate_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    ServerCert::load_or_create(dir.path(), &names()).unwrap();
    let other = tempfile::tempdir().unwrap();
    ServerCert::load_or_create(other.path(), &names()).unwrap();
    std::fs::copy(
        other.path().join("server-cert.pem"),
        dir.path().join("server-cert.pem"),
    )
    .unwrap();
    let e = ServerCert::load_or_create(dir.path(), &names()).unwrap_err();
    assert!(matches!(e, Error::BadCertificate(..)), "{e}");
    std::fs::write(dir.path().join("server-key.pem"), "junk").unwrap();
    assert!(matches!(
        ServerCert::load_or_create(dir.path(), &names()),
        Err(Error::BadCertificate(..))
    ));
}

#[test]
fn access_passwords_are_long_typeable_and_compared_whole() {
    let a = AccessPassword::generate().unwrap();
    let b = AccessPassword::generate().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.expose().len(), 32);
    let shown = a.grouped();
    assert_eq!(shown.len(), 32 + 7);
    let typed = shown.to_lowercase().replace('-', " ");
    let back = AccessPassword::parse(&typed).unwrap();
    assert!(a.verify(back.expose()));
    assert!(!a.verify(b.expose()));
    assert!(!a.verify(&a.expose()[..31]));
    assert!(!a.verify(&format!("{}A", a.expose())));
    assert!(!a.verify(""));
    assert!(!format!("{a:?}").contains(&a.expose()[..8]));
    for bad in ["", "abc", &"1".repeat(32), &"A".repeat(33)] {
        assert!(AccessPassword::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn pairing_payloads_round_trip_and_bad_ones_are_refused() {
    let pw = AccessPassword::generate().unwrap();
    let fp = [0xabu8; 32];
    let p = Pairing::new("https://laptop.local:8443/dav/0b1e/", fp, pw.clone()).unwrap();
    let text = p.to_payload();
    assert!(
        text.starts_with("syncfabric-pair:1:abab"),
        "{}",
        &text[..30]
    );
    let back = Pairing::parse(&format!("  {}\n", text.as_str())).unwrap();
    assert_eq!(back, p);
    assert!(!format!("{p:?}").contains(pw.expose()));
    let good_fp = hex::encode(fp);
    let cases = [
        "".to_string(),
        "syncfabric-pair:2:x".to_string(),
        format!("syncfabric-pair:1:{good_fp}"),
        format!(
            "syncfabric-pair:1:{}:{}:https://h/",
            &good_fp[..62],
            pw.expose()
        ),
        format!("syncfabric-pair:1:{good_fp}:short:https://h/"),
        format!("syncfabric-pair:1:{good_fp}:{}:http://h/", pw.expose()),
        format!("syncfabric-pair:1:{good_fp}:{}:https://h/ x", pw.expose()),
        format!(
            "syncfabric-pair:1:{good_fp}:{}:https://{}",
            pw.expose(),
            "h".repeat(600)
        ),
    ];
    for c in &cases {
        let e = Pairing::parse(c).unwrap_err();
        assert!(!e.to_string().contains(pw.expose()), "{e}");
    }
}
