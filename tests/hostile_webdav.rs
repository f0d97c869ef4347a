//! A hostile WebDAV server, end to end through the real WebDAV provider and the engine
//! (issue #13, bug 5): it serves a real synced vault's files, but answers the GET of
//! the database with its bytes followed by garbage that never ends (no
//! Content-Length, so only the client can stop it). A restore and a sync must stop at
//! the bound the listing's size sets, fail with a message naming the file, and leave
//! no partial copy behind.
#![cfg(feature = "webdav")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use syncfabric::engine::{restore_from_remote, sync_vault, StateDir, SyncOptions};
use syncfabric::remote::{Credentials, Recorded, Remote};

mod common;
use common::as_claimed;
use syncfabric::vault::{CreateOptions, NewItem, Secret, Vault};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const PW: &str = "hostile webdav password";

/// Serves `root` read-only over just enough WebDAV (OPTIONS, PROPFIND depth 0/1, GET)
/// for a restore and a pull; the GET of any `vault.enpassdb` never ends. Counts the
/// bytes it sent past the real file.
async fn hostile_server(root: PathBuf) -> (u16, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let extra = Arc::new(AtomicU64::new(0));
    let extra2 = extra.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(serve(sock, root.clone(), extra2.clone()));
        }
    });
    (port, extra)
}

async fn serve(sock: TcpStream, root: PathBuf, extra: Arc<AtomicU64>) {
    let mut r = BufReader::new(sock);
    let (mut first, mut depth, mut len) = (String::new(), "1".to_string(), 0usize);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if let Some(v) = lower.strip_prefix("depth:") {
            depth = v.trim().to_string();
        }
        if line == "\r\n" {
            break;
        }
        if first.is_empty() {
            first = line.trim().to_string();
        }
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body).await;
    let mut sock = r.into_inner();
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let rel = path.trim_start_matches("/dav/").trim_end_matches('/');
    let local = root.join(rel);
    let out = match method {
        "OPTIONS" => head("200 OK", "DAV: 1\r\nAllow: OPTIONS, GET, PROPFIND\r\n", 0),
        "PROPFIND" if local.exists() => {
            let xml = multistatus(&root, rel, &depth);
            let mut v = head(
                "207 Multi-Status",
                "Content-Type: application/xml\r\n",
                xml.len(),
            );
            v.extend_from_slice(xml.as_bytes());
            v
        }
        "GET" if local.is_file() && rel.ends_with("vault.enpassdb") => {
            endless(&mut sock, &local, &extra).await;
            return;
        }
        "GET" if local.is_file() => {
            let data = std::fs::read(&local).unwrap();
            let mut v = head("200 OK", "ETag: \"v1\"\r\n", data.len());
            v.extend_from_slice(&data);
            v
        }
        _ => head("404 Not Found", "", 0),
    };
    let _ = sock.write_all(&out).await;
    let _ = sock.shutdown().await;
}

fn head(status: &str, headers: &str, len: usize) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {len}\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// The file, then garbage until the client hangs up (bounded by a test cap of 1 GiB).
async fn endless(sock: &mut TcpStream, file: &Path, extra: &AtomicU64) {
    let data = std::fs::read(file).unwrap();
    let hdr = "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n";
    if sock.write_all(hdr.as_bytes()).await.is_err() || sock.write_all(&data).await.is_err() {
        return;
    }
    let junk = vec![0x5au8; 64 * 1024];
    while extra.load(Ordering::Relaxed) < 1 << 30 {
        if sock.write_all(&junk).await.is_err() {
            return;
        }
        extra.fetch_add(junk.len() as u64, Ordering::Relaxed);
    }
}

/// A multistatus for `rel` (and its children at depth 1), from the files on disk.
fn multistatus(root: &Path, rel: &str, depth: &str) -> String {
    let mut xml = String::from("<?xml version=\"1.0\"?><D:multistatus xmlns:D=\"DAV:\">");
    let mut add = |rel: &str| {
        let p = root.join(rel);
        let href = if rel.is_empty() {
            "/dav/".to_string()
        } else {
            format!("/dav/{rel}{}", if p.is_dir() { "/" } else { "" })
        };
        let props = if p.is_dir() {
            "<D:resourcetype><D:collection/></D:resourcetype>".to_string()
        } else {
            let n = std::fs::metadata(&p).unwrap().len();
            format!("<D:resourcetype/><D:getcontentlength>{n}</D:getcontentlength><D:getetag>\"v1\"</D:getetag>")
        };
        xml.push_str(&format!("<D:response><D:href>{href}</D:href><D:propstat><D:prop>{props}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"));
    };
    add(rel);
    let dir = root.join(rel);
    if depth != "0" && dir.is_dir() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            add(&if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            });
        }
    }
    xml.push_str("</D:multistatus>");
    xml
}

/// No file in `dir` (recursively) is larger than `max` bytes.
fn largest_file(dir: &Path) -> u64 {
    let mut max = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        max = max.max(if m.is_dir() {
            largest_file(&p)
        } else {
            m.len()
        });
    }
    max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_database_body_stops_at_the_announced_size() {
    let tmp = tempfile::tempdir().unwrap();
    // A real vault, synced to a folder that the hostile server then serves.
    let shared = tmp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let opts = CreateOptions {
        kdf_iter: 1000,
        ..Default::default()
    };
    let mut a = Vault::create(tmp.path().join("a"), &Secret::new(PW), &opts).unwrap();
    a.add_item(NewItem::login("Bank", "me", Secret::new("p"), ""))
        .unwrap();
    let url = format!("folder://{}", shared.display());
    let folder = Remote::open(&url, &Credentials::None, Recorded::default())
        .await
        .unwrap();
    let a_state = StateDir::open(tmp.path().join("a-state")).unwrap();
    sync_vault(&mut a, &folder, &a_state, &SyncOptions::default())
        .await
        .unwrap();
    let uuid = a.meta().vault_uuid().unwrap().to_string();
    let db_size = std::fs::metadata(shared.join(&uuid).join("vault.enpassdb"))
        .unwrap()
        .len();

    let (port, extra) = hostile_server(shared.clone()).await;
    let url = format!("webdav+http://u@127.0.0.1:{port}/dav/");
    let dav = syncfabric::remote::open_with_password(&url, Some("pw"))
        .await
        .unwrap();
    // The hostile server answers only what the attack needs: no probe against it.
    let dav = as_claimed(dav);

    // A restore onto a new device.
    let dest = tmp.path().join("b");
    let b_state = StateDir::open(tmp.path().join("b-state")).unwrap();
    let err = restore_from_remote(&dav, &uuid, &dest, &b_state, &Secret::new(PW), None)
        .await
        .map(|_| ())
        .expect_err("the endless body must fail the restore")
        .to_string();
    assert!(err.contains("vault.enpassdb"), "{err}");
    let sent = extra.load(Ordering::Relaxed);
    assert!(
        sent < 1 << 30,
        "the client read on until the server's own cap"
    );
    assert!(!dest.join("vault.enpassdb").exists());
    let biggest = largest_file(tmp.path().join("b-state").as_path());
    assert!(biggest <= db_size, "a partial copy stayed: {biggest} bytes");

    // A pull of a device that synced before: the remote changed (a new size), so the
    // database is downloaded.
    let mut edit = Vault::open(tmp.path().join("a"), &Secret::new(PW), None).unwrap();
    for i in 0..30 {
        edit.add_item(NewItem::login(
            &format!("more {i}"),
            "me",
            Secret::new("p"),
            "",
        ))
        .unwrap();
    }
    let c_state = StateDir::open(tmp.path().join("c-state")).unwrap();
    let copy = tmp.path().join("c");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["vault.json", "vault.enpassdb"] {
        std::fs::copy(tmp.path().join("a").join(f), copy.join(f)).unwrap();
    }
    // `c` is `a` before its last sync: give it `a`'s old state, then let `a` commit.
    let mut c = Vault::open(&copy, &Secret::new(PW), None).unwrap();
    sync_vault(&mut c, &folder, &c_state, &SyncOptions::default())
        .await
        .unwrap();
    sync_vault(&mut edit, &folder, &a_state, &SyncOptions::default())
        .await
        .unwrap();
    let before = std::fs::read(copy.join("vault.enpassdb")).unwrap();
    let err = sync_vault(&mut c, &dav, &c_state, &SyncOptions::default())
        .await
        .map(|_| ())
        .expect_err("the endless body must fail the sync")
        .to_string();
    assert!(err.contains("vault.enpassdb"), "{err}");
    assert_eq!(std::fs::read(copy.join("vault.enpassdb")).unwrap(), before);
    let new_size = std::fs::metadata(shared.join(&uuid).join("vault.enpassdb"))
        .unwrap()
        .len();
    let biggest = largest_file(tmp.path().join("c-state").as_path());
    assert!(
        biggest <= new_size,
        "a partial copy stayed: {biggest} bytes"
    );
}
