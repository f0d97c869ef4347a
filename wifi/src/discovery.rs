//! Finding the server on the local network: multicast DNS service discovery (RFC 6762,
//! RFC 6763) of the service type [`SERVICE_TYPE`], with TXT records saying the
//! protocol version (`v`), the vault ids served (`vaults`, comma-separated) and the
//! first 16 hex digits of the certificate's SHA-256 (`fp`).
//!
//! Nothing found this way is trusted: anyone on the network can answer. A device that
//! pairs from a browse result takes the certificate from the TLS handshake and the
//! person compares the verification codes both sides show ([`crate::code`]); the short
//! fingerprint only tells servers apart in a list.

use crate::{Error, Result};
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The DNS-SD service type of a syncfabric Wi-Fi Sync Server.
pub const SERVICE_TYPE: &str = "_syncfabric._tcp.local.";
/// The protocol version advertised (`v=1`).
pub const PROTOCOL: &str = "1";
/// At most this many vault ids fit one advertisement (a TXT string is at most 255
/// bytes, RFC 6763 §6.1).
pub const MAX_VAULTS: usize = 6;

/// One server as a browse found it (unauthenticated, see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The service instance's name (the server machine's, usually).
    pub instance: String,
    /// Its host name (`laptop.local.`).
    pub host: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Its port.
    pub port: u16,
    /// The vault ids it serves.
    pub vaults: Vec<String>,
    /// The first 16 hex digits of its certificate's SHA-256, as it claims.
    pub fingerprint_prefix: String,
}

impl Found {
    /// The URL of vault `id` on it (its first address; IPv6 in brackets).
    pub fn url(&self, id: &str) -> Option<String> {
        let ip = self.addresses.first()?;
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        Some(format!("https://{host}:{}/dav/{id}/", self.port))
    }
}

/// A running advertisement; dropping it withdraws it (a goodbye packet) and stops
/// the responder.
pub struct Advertisement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl std::fmt::Debug for Advertisement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advertisement")
            .field("fullname", &self.fullname)
            .finish()
    }
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
        let _ = self.daemon.shutdown();
    }
}

fn mdns(e: mdns_sd::Error) -> Error {
    Error::Discovery(e.to_string())
}

/// What a server advertises: `instance` (a name people read), reachable as `host` (a
/// `.local` name) at `addresses` and `port`, serving `vaults`, with the certificate
/// whose SHA-256 is `fingerprint`; only on the interface of `only_on` when given (a
/// server listening on one address is announced there alone).
#[derive(Clone, Debug)]
pub struct Announce<'a> {
    /// The instance name.
    pub instance: &'a str,
    /// The host name.
    pub host: &'a str,
    /// The addresses.
    pub addresses: &'a [IpAddr],
    /// The port.
    pub port: u16,
    /// The vault ids.
    pub vaults: &'a [String],
    /// The certificate's SHA-256.
    pub fingerprint: &'a [u8; 32],
    /// The one interface to announce on (by one of its addresses).
    pub only_on: Option<IpAddr>,
}

/// Advertises a server (see [`Announce`]) until the returned value is dropped.
pub fn advertise(a: &Announce<'_>) -> Result<Advertisement> {
    let Announce {
        instance,
        host,
        addresses,
        port,
        vaults,
        fingerprint,
        only_on,
    } = *a;
    if vaults.len() > MAX_VAULTS || vaults.iter().any(|v| v.contains(',')) {
        return Err(Error::Invalid(format!(
            "at most {MAX_VAULTS} vaults (ids without commas) can be advertised"
        )));
    }
    let host = if host.ends_with(".local.") {
        host.to_string()
    } else {
        format!("{}.local.", host.trim_end_matches(".local"))
    };
    let txt: HashMap<String, String> = [
        ("v", PROTOCOL.to_string()),
        ("vaults", vaults.join(",")),
        ("fp", hex::encode(&fingerprint[..8])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let ips: Vec<IpAddr> = addresses.to_vec();
    let info =
        ServiceInfo::new(SERVICE_TYPE, instance, &host, &ips[..], port, txt).map_err(mdns)?;
    let fullname = info.get_fullname().to_string();
    let daemon = ServiceDaemon::new().map_err(mdns)?;
    if let Some(ip) = only_on {
        daemon.disable_interface(IfKind::All).map_err(mdns)?;
        daemon.enable_interface(IfKind::Addr(ip)).map_err(mdns)?;
    }
    daemon.register(info).map_err(mdns)?;
    Ok(Advertisement { daemon, fullname })
}

/// Browses for `wait` and returns the servers that answered, by instance name.
/// Advertisements of another protocol version are left out.
pub fn browse(wait: Duration) -> Result<Vec<Found>> {
    let daemon = ServiceDaemon::new().map_err(mdns)?;
    let events = daemon.browse(SERVICE_TYPE).map_err(mdns)?;
    let deadline = Instant::now() + wait;
    let mut found = BTreeMap::new();
    while let Ok(event) = events.recv_deadline(deadline) {
        if let ServiceEvent::ServiceResolved(s) = event {
            if s.txt_properties.get_property_val_str("v") != Some(PROTOCOL) {
                continue;
            }
            let prop = |k: &str| {
                s.txt_properties
                    .get_property_val_str(k)
                    .unwrap_or_default()
                    .to_string()
            };
            let mut addresses: Vec<IpAddr> = s.addresses.iter().map(|a| a.to_ip_addr()).collect();
            addresses.sort();
            let instance = s
                .fullname
                .strip_suffix(&format!(".{SERVICE_TYPE}"))
                .unwrap_or(&s.fullname)
                .to_string();
            let vaults = prop("vaults")
                .split(',')
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect();
            found.insert(
                instance.clone(),
                Found {
                    instance,
                    host: s.host.clone(),
                    addresses,
                    port: s.port,
                    vaults,
                    fingerprint_prefix: prop("fp"),
                },
            );
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    let _ = daemon.shutdown();
    Ok(found.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_bracket_ipv6_and_need_an_address() {
        let mut f = Found {
            instance: "laptop".into(),
            host: "laptop.local.".into(),
            addresses: vec!["fe80::1".parse().unwrap()],
            port: 8443,
            vaults: vec!["v1".into()],
            fingerprint_prefix: "00".repeat(8),
        };
        assert_eq!(f.url("v1").unwrap(), "https://[fe80::1]:8443/dav/v1/");
        f.addresses.clear();
        assert_eq!(f.url("v1"), None);
    }

    #[test]
    fn too_many_vaults_are_refused_before_anything_is_sent() {
        let ids: Vec<String> = (0..=MAX_VAULTS).map(|i| format!("vault-{i}")).collect();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = Announce {
            instance: "x",
            host: "x",
            addresses: &[ip],
            port: 1,
            vaults: &ids,
            fingerprint: &[0; 32],
            only_on: Some(ip),
        };
        assert!(advertise(&a).is_err());
    }
}
