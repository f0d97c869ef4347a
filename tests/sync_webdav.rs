//! End-to-end over real WebDAV servers (Apache mod_dav and SabreDAV, Nextcloud's
//! engine): two devices converge, and concurrent devices lose nothing. The servers are
//! started by the WebDAV provider's test harness.

mod common;
#[path = "../providers/webdav/tests/servers/mod.rs"]
mod servers;

use servers::{Kind, Server, PASS, USER};
use syncfabric::engine::{restore_from_remote, sync_vault, StateDir, SyncOptions, SyncOutcome};
use syncfabric::remote::{Credentials, Recorded, Remote, Trust};
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

/// The URL of a scratch folder `folder` on `server`.
fn folder_url(server: &Server, folder: &str) -> String {
    server.scratch(folder);
    match server.url.split_once(&format!("127.0.0.1:{}", server.port)) {
        // The served root may sit below the host (e.g. /dav/): keep its path.
        Some((_, path)) => format!(
            "webdav+http://{USER}@127.0.0.1:{}{path}{folder}",
            server.port
        ),
        None => format!("webdav+http://{USER}@127.0.0.1:{}/{folder}", server.port),
    }
}

/// The remote as an app opens it: `Remote::open`, which probes.
async fn open(server: &Server, folder: &str) -> (Remote, syncfabric::remote::Trust) {
    let url = folder_url(server, folder);
    let login = Credentials::Password(Secret::new(PASS));
    let remote = Remote::open(&url, &login, Recorded::default())
        .await
        .unwrap();
    let report = remote.probe().expect("probed");
    eprintln!("{}: {}", server.kind.name(), report.summary());
    let trust = remote.verdict().trust;
    (remote, trust)
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
            &storage,
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

/// An app written from the crate doc (`src/lib.rs`), as its ten lines read, syncs a
/// vault through a WebDAV server it knows nothing about, and commits with the verdict
/// (and so the lock) the CLI records for the same server folder.
fn an_app_from_the_crate_doc(kind: Kind) {
    let Some(server) = Server::start(kind) else {
        return;
    };
    let url = folder_url(&server, "app");
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let create = CreateOptions {
        kdf_iter: 1000,
        ..Default::default()
    };
    let dir = tmp.path().join("primary");
    Vault::create(&dir, &Secret::new(PW), &create)
        .unwrap()
        .add_item(NewItem::login("Bank", "me", Secret::new("b1"), ""))
        .unwrap();
    let remote = rt.block_on(async {
        // The crate doc's example, with this test's paths and passwords.
        let mut vault = Vault::open(&dir, &Secret::new(PW), None).unwrap();
        let login = Credentials::Password(Secret::new(PASS));
        let remote = Remote::open(&url, &login, Recorded::default())
            .await
            .unwrap();
        let state = StateDir::open(dir.join(".syncfabric/cloud")).unwrap();
        let report = sync_vault(&mut vault, &remote, &state, &SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(report.outcome, SyncOutcome::Pushed);
        remote
    });
    let verdict = remote.verdict();
    let caps = remote.storage().capabilities();
    let trust = verdict.trust;
    assert_eq!(caps.has_truthful_cas(), trust == Trust::Truthful);
    assert_eq!(caps.server_lock, trust == Trust::ServerLock);
    assert_eq!(caps.strong_versions, verdict.strong_versions);

    // The CLI, on the same server folder.
    let cli = common::Dev::new(tmp.path(), "cli");
    cli.run(&["vault", "create", "--name", "C", "--kdf-iter", "1000"]);
    let out = cli
        .cmd(&["remote", "add", "r", &url, "--json"])
        .env("SYNCFABRIC_REMOTE_PASSWORD", PASS)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["cas"], trust.as_str(), "{added}");
    assert_eq!(added["versions"], verdict.versions_str(), "{added}");
    assert_eq!(added["writes"], verdict.writes.as_str(), "{added}");
}

/// Apache: the server's own lock.
#[test]
fn an_app_from_the_crate_doc_commits_as_the_cli_over_apache() {
    an_app_from_the_crate_doc(Kind::Apache);
}

/// nginx: neither conditions nor locks, the lease.
#[test]
fn an_app_from_the_crate_doc_commits_as_the_cli_over_nginx() {
    an_app_from_the_crate_doc(Kind::Nginx);
}

/// wsgidav: a server added after the profiles were written.
#[test]
fn an_app_from_the_crate_doc_commits_as_the_cli_over_wsgidav() {
    an_app_from_the_crate_doc(Kind::Wsgidav);
}
