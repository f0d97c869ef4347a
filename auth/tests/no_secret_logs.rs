//! No token, device code or passphrase reaches a log line, at trace level, through a
//! whole login / refresh / revocation against the fake authorisation server. Its own
//! test binary: tracing caches per-callsite interest, and tests running beside it
//! without a subscriber would hide events from this one's scoped subscriber.

use std::sync::{Arc, Mutex};
use syncfabric_auth::{
    DeviceFlow, EncryptedFileTokenStore, HttpAdapter, KdfParams, OAuthBearer, OAuthConfig, TokenSet,
};
use syncfabric_core::auth::{BearerAuth, SecretToken, TokenStore};
use syncfabric_testkit::oauth_fake::{OAuthFake, Step};

const CLIENT: &str = "test-client-id";

fn config(fake: &OAuthFake) -> OAuthConfig {
    OAuthConfig {
        provider: "onedrive".into(),
        device_authorization_url: fake.device_authorization_url(),
        token_url: fake.token_url(),
        client_id: CLIENT.into(),
        scopes: vec!["offline_access".into(), "Files.ReadWrite".into()],
        ..Default::default()
    }
}

fn http() -> HttpAdapter {
    HttpAdapter::from_client(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(None)
            .build()
            .unwrap(),
    )
}

async fn login(fake: &OAuthFake, store: &dyn TokenStore, name: &str) -> TokenSet {
    fake.script([Step::Approve]);
    let flow = DeviceFlow::with_http(config(fake), http()).unwrap();
    let pending = flow.start().await.unwrap();
    tracing::trace!(?pending, "pending login");
    let tokens = flow.finish(pending).await.unwrap();
    flow.store(store, name, &tokens).await.unwrap();
    tokens
}

fn bearer(fake: &OAuthFake, store: Arc<dyn TokenStore>, name: &str) -> OAuthBearer {
    OAuthBearer::with_http(config(fake), store, name, http()).unwrap()
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

#[test]
fn no_secret_in_trace_logs() {
    let buf = Buf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(buf.clone())
        .with_ansi(false)
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let passphrase = "passphrase-sentinel-7f3a";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let fake = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let fake = OAuthFake::start(CLIENT).await.unwrap();
            fake.set_access_ttl(30);
            fake.script([Step::Pending, Step::SlowDown]);
            let store: Arc<dyn TokenStore> = Arc::new(
                EncryptedFileTokenStore::open_with(
                    dir.path().join("tokens.enc"),
                    &SecretToken::new(passphrase),
                    KdfParams::fast_for_tests(),
                )
                .unwrap(),
            );
            let tokens = login(&fake, store.as_ref(), "alice").await;
            tracing::trace!(?tokens, ?store, "debug formatting of the holders");
            let b = bearer(&fake, store.clone(), "alice");
            tracing::trace!(?b, "bearer");
            let t = b.bearer().await.unwrap(); // refresh (30 s token)
            b.rejected(&t).await.unwrap(); // another refresh
            fake.revoke_all();
            let err = b.bearer().await.unwrap_err(); // 30 s token: refresh refused
            tracing::error!(%err, "revoked");
            fake
        })
    });
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("device login approved") && log.contains("refreshed"),
        "{log}"
    );
    assert!(
        log.contains("oauth request"),
        "http adapter logs at debug: {log}"
    );
    let mut secrets = fake.issued_access_tokens();
    secrets.extend(fake.issued_refresh_tokens());
    secrets.push(passphrase.to_string());
    assert!(secrets.len() >= 7);
    for s in secrets {
        assert!(!log.contains(&s), "secret {s} in the log");
    }
    assert!(!log.contains("fake-dc-"), "device code in the log");
}
