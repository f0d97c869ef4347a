//! Attachments: inline and file-backed, streamed both ways, tombstoned, pruned.

use std::io::Read;
use syncfabric_vault::{CreateOptions, Error, NewItem, Secret, Vault, CHUNK_SIZE, INLINE_MAX};

/// A deterministic pseudo-random stream of `len` bytes (xorshift), read in odd sizes.
struct Gen {
    state: u64,
    left: u64,
}
impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize).min(77_777);
        for b in &mut buf[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn sha1_of(r: &mut dyn Read) -> (u64, String) {
    let mut h = openssl::sha::Sha1::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    (total, hex::encode(h.finish()))
}

fn vault() -> (tempfile::TempDir, Vault, String) {
    let td = tempfile::tempdir().unwrap();
    let mut v = Vault::create(
        td.path().join("v"),
        &Secret::new("pw"),
        &CreateOptions {
            kdf_iter: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let it = v
        .add_item(NewItem::login("t", "u", Secret::new("p"), ""))
        .unwrap();
    (td, v, it.uuid)
}

#[test]
fn inline_and_file_attachments_round_trip() {
    let (_td, mut v, item) = vault();
    for len in [
        0u64,
        1,
        INLINE_MAX as u64,
        INLINE_MAX as u64 + 1,
        CHUNK_SIZE as u64,
        3 * CHUNK_SIZE as u64 + 12345,
    ] {
        let want = sha1_of(&mut Gen {
            state: len + 1,
            left: len,
        });
        let a = v
            .add_attachment(
                &item,
                &format!("f{len}.bin"),
                "application/octet-stream",
                &mut Gen {
                    state: len + 1,
                    left: len,
                },
            )
            .unwrap();
        assert_eq!(a.size, len);
        assert_eq!(a.inline, len <= INLINE_MAX as u64, "len {len}");
        assert_eq!(v.attachment_path(&a.uuid).exists(), !a.inline);
        let got = sha1_of(&mut v.open_attachment(&a.uuid).unwrap());
        assert_eq!(got, want, "len {len}");
    }
    assert_eq!(v.attachments(Some(&item)).unwrap().len(), 6);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v.dir().join("vault.json")).unwrap()).unwrap();
    assert_eq!(meta["vault_att_count"], 6);
}

#[test]
fn attachment_file_is_sqlcipher_with_the_key_from_the_row() {
    let (_td, mut v, item) = vault();
    let a = v
        .add_attachment(
            &item,
            "big",
            "x",
            &mut Gen {
                state: 9,
                left: 5000,
            },
        )
        .unwrap();
    let key: Vec<u8> = v
        .connection()
        .query_row(
            "SELECT password FROM attachment WHERE uuid=?1",
            [&a.uuid],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(key.len(), 32);
    // Independent reader: the Debian sqlcipher CLI.
    let out = std::process::Command::new("sqlcipher")
        .arg(v.attachment_path(&a.uuid))
        .arg(format!("PRAGMA key=\"x'{}'\"; SELECT value FROM info WHERE key='size'; SELECT count(*), sum(length(data)) FROM chunk;", hex::encode(&key)))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5000\n1|5000");
}

#[test]
fn tampered_attachment_is_detected_and_remove_prune() {
    let (_td, mut v, item) = vault();
    let a = v
        .add_attachment(
            &item,
            "big",
            "x",
            &mut Gen {
                state: 3,
                left: 200_000,
            },
        )
        .unwrap();
    let path = v.attachment_path(&a.uuid);
    let pristine = std::fs::read(&path).unwrap();
    let mut bad = pristine.clone();
    let off = bad.len() / 2;
    bad[off] ^= 0x40;
    std::fs::write(&path, &bad).unwrap();
    let res = v.open_attachment(&a.uuid).map(|mut r| {
        let mut sink = Vec::new();
        r.read_to_end(&mut sink)
    });
    assert!(
        matches!(res, Err(Error::Corrupt(_)) | Ok(Err(_))),
        "tampering must not go unnoticed"
    );
    std::fs::write(&path, &pristine).unwrap();

    v.remove_attachment(&a.uuid).unwrap();
    assert!(v.attachments(None).unwrap()[0].deleted);
    assert!(matches!(
        v.remove_attachment(&a.uuid),
        Err(Error::NotFound(_))
    ));
    assert!(path.exists(), "the file stays until pruned");
    assert_eq!(v.prune_attachment_files().unwrap(), vec![path.clone()]);
    assert!(!path.exists());
    // Attachments of a deleted item are tombstoned with it.
    let b = v
        .add_attachment(&item, "small", "x", &mut &b"hello"[..])
        .unwrap();
    v.delete_item(&item).unwrap();
    assert!(
        v.attachments(Some(&item))
            .unwrap()
            .iter()
            .find(|x| x.uuid == b.uuid)
            .unwrap()
            .deleted
    );
    assert!(matches!(
        v.add_attachment(&item, "n", "x", &mut &b"x"[..]),
        Err(Error::NotFound(_))
    ));
}

/// Content over the limit is refused while streaming (its length is not known
/// beforehand), inline or file-backed, and leaves neither a row nor a file behind.
#[test]
fn attachments_over_the_limit_leave_nothing() {
    let (_td, mut v, item) = vault();
    let files = |v: &Vault| {
        std::fs::read_dir(v.dir())
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                let n = n.to_string_lossy();
                n.contains("enpassattach") || n.contains(".new")
            })
            .count()
    };
    for (len, limit) in [
        (600u64, 500u64),
        (3 * CHUNK_SIZE as u64 + 5, 2 * CHUNK_SIZE as u64 + 7),
    ] {
        let err = v
            .add_attachment_limited(
                &item,
                "big.bin",
                "x",
                &mut Gen {
                    state: 5,
                    left: len,
                },
                limit,
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::TooLarge { limit: l, what } if *l == limit && what.contains("big.bin")),
            "{err:?}"
        );
        assert!(v.attachments(None).unwrap().is_empty());
        assert_eq!(files(&v), 0, "no attachment file or temp file is left");
    }
    // Exactly at the limit is accepted.
    let a = v
        .add_attachment_limited(
            &item,
            "ok",
            "x",
            &mut Gen {
                state: 5,
                left: 2000,
            },
            2000,
        )
        .unwrap();
    assert_eq!(a.size, 2000);
    assert!(matches!(
        v.add_attachment(&item, "", "x", &mut &b"x"[..]),
        Err(Error::InvalidInput(_))
    ));
}
