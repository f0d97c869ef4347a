//! End-to-end over real WebDAV servers (Apache mod_dav and SabreDAV, Nextcloud's
//! engine): two devices converge, and concurrent devices lose nothing. The servers are
//! started by the WebDAV provider's test harness.

#[path = "../providers/webdav/tests/servers/mod.rs"]
mod servers;

use servers::{Kind, Server, PASS, USER};
use std::sync::Arc;
use syncfabric::core::Storage;
use syncfabric::engine::{restore_from_remote, sync_vault, StateDir, SyncOptions, SyncOutcome};
use syncfabric::vault::{CreateOptions, NewItem, Secret, Vault};

const PW: &str = "webdav e2e password";

fn titles(v: &Vault) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = v
        .items()
        .unwrap()
        .into_iter()
        .filter(|i| i.is_live())
        .map(|i| {
            (
                i.title.clone(),
                i.field("password")
                    .map(|f| f.value.expose().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    t.sort();
    t
}

async fn open(server: &Server, folder: &str) -> (Arc<dyn Storage>, syncfabric::remote::Trust) {
    server.scratch(folder);
    let url = format!("webdav+http://{USER}@127.0.0.1:{}/{folder}", server.port);
    let url = match server.url.split_once(&format!("127.0.0.1:{}", server.port)) {
        // The served root may sit below the host (e.g. /dav/): keep its path.
        Some((_, path)) => format!(
            "webdav+http://{USER}@127.0.0.1:{}{path}{folder}",
            server.port
        ),
        None => url,
    };
    let raw = syncfabric::remote::open_with_password(&url, Some(PASS))
        .await
        .unwrap();
    let (verdict, report) = syncfabric::remote::probe(raw.as_ref()).await.unwrap();
    eprintln!("{}: {}", server.kind.name(), report.summary());
    (syncfabric::remote::wrap(raw, verdict), verdict.trust)
}

fn two_devices(kind: Kind) {
    let Some(server) = Server::start(kind) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (storage, trust) = open(&server, "e2e").await;
        // Neither server's conditional writes are truthful, but both enforce their
        // WebDAV locks: the commits run under them.
        assert_eq!(trust, syncfabric::remote::Trust::ServerLock);
        let mut opts = SyncOptions::default();
        opts.lease.settle = std::time::Duration::from_millis(300);
        opts.lease.poll_interval = std::time::Duration::from_millis(100);
        let tmp = tempfile::tempdir().unwrap();
        let create = CreateOptions {
            kdf_iter: 1000,
            ..Default::default()
        };
        let mut a = Vault::create(tmp.path().join("a"), &Secret::new(PW), &create).unwrap();
        let sa = StateDir::open(tmp.path().join("sa")).unwrap();
        a.add_item(NewItem::login("Bank", "me", Secret::new("b1"), ""))
            .unwrap();
        assert_eq!(
            sync_vault(&mut a, &storage, &sa, &opts)
                .await
                .unwrap()
                .outcome,
            SyncOutcome::Pushed
        );
        let uuid = a.meta().vault_uuid().unwrap().to_string();
        let sb = StateDir::open(tmp.path().join("sb")).unwrap();
        let mut b = restore_from_remote(
            storage.as_ref(),
            &uuid,
            &tmp.path().join("b"),
            &sb,
            &Secret::new(PW),
            None,
        )
        .await
        .unwrap();
        assert_eq!(titles(&a), titles(&b));

        a.add_item(NewItem::login("Mail", "me", Secret::new("m1"), ""))
            .unwrap();
        let mut bank = b
            .items()
            .unwrap()
            .into_iter()
            .find(|i| i.title == "Bank")
            .unwrap();
        bank.field_mut("password").unwrap().value = Secret::new("b2");
        b.update_item(&bank).unwrap();
        // Both sync at once, then once more each.
        let (ra, rb) = futures_util::future::join(
            sync_vault(&mut a, &storage, &sa, &opts),
            sync_vault(&mut b, &storage, &sb, &opts),
        )
        .await;
        ra.unwrap();
        rb.unwrap();
        sync_vault(&mut a, &storage, &sa, &opts).await.unwrap();
        sync_vault(&mut b, &storage, &sb, &opts).await.unwrap();
        assert_eq!(titles(&a), titles(&b));
        assert_eq!(
            titles(&a),
            vec![("Bank".into(), "b2".into()), ("Mail".into(), "m1".into())]
        );
        assert_eq!(
            sync_vault(&mut a, &storage, &sa, &opts)
                .await
                .unwrap()
                .outcome,
            SyncOutcome::UpToDate
        );
    });
}

#[test]
fn two_devices_over_apache() {
    two_devices(Kind::Apache);
}

#[test]
fn two_devices_over_sabredav() {
    two_devices(Kind::Sabre);
}
