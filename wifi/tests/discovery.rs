//! mDNS advertise and browse, inside a private network namespace (`unshare -n`, or
//! `unshare -rn` without root): the namespace has only its own loopback, so nothing is
//! sent on a real network. The test runs itself again in the namespace, on the ignored
//! test `mdns_in_a_private_network`, after bringing its loopback up with multicast.
//! Where no namespace can be made it skips loudly (fails with
//! `SYNCFABRIC_REQUIRE_SERVERS=1`).

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;
use syncfabric_wifi::discovery::{advertise, browse, Announce, SERVICE_TYPE};

const INNER: &str = "mdns_in_a_private_network";

#[test]
fn servers_are_advertised_and_browsed_in_a_private_network() {
    let exe = std::env::current_exe().unwrap();
    let setup = "ip link set lo up && ip link set lo multicast on && \
                 ip route add 224.0.0.0/4 dev lo && exec \"$0\" \"$1\" --exact --ignored --nocapture";
    let root = unsafe { libc_geteuid() } == 0;
    let flags = if root { "-n" } else { "-rn" };
    let out = Command::new("unshare")
        .args([flags, "sh", "-c", setup])
        .arg(&exe)
        .arg(INNER)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return skip(&format!("unshare not runnable: {e}")),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && text.contains("unshare failed") {
        return skip(&format!("no network namespace here: {text}"));
    }
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the inner test ran: {text}");
    println!("{text}");
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn skip(why: &str) {
    if std::env::var_os("SYNCFABRIC_REQUIRE_SERVERS").is_some_and(|v| v == "1") {
        panic!("{why} (SYNCFABRIC_REQUIRE_SERVERS=1)");
    }
    eprintln!("!!!!! {why}: SKIPPING");
}

/// Runs inside the namespace only.
#[test]
#[ignore = "run by servers_are_advertised_and_browsed_in_a_private_network in a namespace"]
fn mdns_in_a_private_network() {
    // The namespace holds the loopback and nothing else: no packet can leave.
    // (/proc/self/net is the namespace's own; /sys/class/net is the mount's.)
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap();
    let links: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(links, ["lo"], "not a private network namespace");
    let fp = [0xA5u8; 32];
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let vaults = vec!["vault-one".to_string(), "vault-two".to_string()];
    let ad = advertise(&Announce {
        instance: "Test laptop",
        host: "test-laptop",
        addresses: &[ip],
        port: 8443,
        vaults: &vaults,
        fingerprint: &fp,
        only_on: Some(ip),
    })
    .unwrap();
    let found = browse(Duration::from_secs(3)).unwrap();
    println!("browsing {SERVICE_TYPE} found {found:?}");
    let f = found
        .iter()
        .find(|f| f.instance == "Test laptop")
        .expect("our advertisement is found");
    assert_eq!(f.port, 8443);
    assert_eq!(f.vaults, vaults);
    assert_eq!(f.fingerprint_prefix, "a5".repeat(8));
    assert!(f.addresses.contains(&ip), "{f:?}");
    assert_eq!(f.host, "test-laptop.local.");
    assert_eq!(
        f.url("vault-one").unwrap(),
        "https://127.0.0.1:8443/dav/vault-one/"
    );
    // Withdrawn: a later browse no longer finds it.
    drop(ad);
    let later = browse(Duration::from_secs(2)).unwrap();
    assert!(
        later.iter().all(|f| f.instance != "Test laptop"),
        "{later:?}"
    );
}
