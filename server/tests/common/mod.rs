//! A server on 127.0.0.1 (port 0) serving one scratch vault folder, with a fresh
//! certificate; the certificate's PEM is written beside it for clients to trust.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use syncfabric_server::{AccessPassword, Limits, Server, ServerHandle};
use syncfabric_wifi::cert::{Names, ServerCert};

pub const VAULT_ID: &str = "4f1b2c3d-0000-4000-8000-00000000beef";

pub struct TestServer {
    pub handle: ServerHandle,
    pub password: AccessPassword,
    pub dir: tempfile::TempDir,
    pub vault: PathBuf,
    pub cert_pem: PathBuf,
    pub cert: Vec<u8>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        std::fs::create_dir(&vault).unwrap();
        std::fs::write(
            vault.join("vault.json"),
            format!("{{\"vault_uuid\": \"{VAULT_ID}\", \"version\": 1}}"),
        )
        .unwrap();
        let names = Names {
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
        };
        let state = dir.path().join("state");
        let cert = ServerCert::load_or_create(&state, &names).unwrap();
        let pem = cert.certificate().to_pem().unwrap();
        let cert_pem = dir.path().join("server-cert.pem");
        std::fs::write(&cert_pem, &pem).unwrap();
        let password = AccessPassword::generate().unwrap();
        let handle = Server::builder()
            .vault(&vault, password.clone())
            .unwrap()
            .cert(cert)
            .limits(limits)
            .state_dir(&state)
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        TestServer {
            handle,
            password,
            dir,
            vault,
            cert_pem,
            cert: pem,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The vault's URL, ending in `/`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/dav/{VAULT_ID}/", self.addr().port())
    }

    /// A reqwest client trusting only this server's certificate.
    pub fn client(&self) -> reqwest::Client {
        let cert = reqwest::Certificate::from_pem(&self.cert).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([cert])
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    }

    pub fn pass(&self) -> &str {
        self.password.expose()
    }
}
