//! A local vault damaged or tampered with while closed: `open` checks page 1 (key,
//! header, schema) and the length; every other page is authenticated by SQLCipher
//! (HMAC-SHA1) when it is read. These tests prove that a flipped byte anywhere is
//! reported as `Error::Corrupt` by `open` or by the first read that touches the page,
//! and never turns into wrong data.

use syncfabric_vault::{CreateOptions, Error, Item, NewItem, Secret, Vault, VaultKey};

fn make_vault(n: usize) -> (tempfile::TempDir, std::path::PathBuf, VaultKey, Vec<u8>) {
    let td = tempfile::tempdir().unwrap();
    let dir = td.path().join("v");
    let mut v = Vault::create(
        &dir,
        &Secret::new("pw"),
        &CreateOptions {
            kdf_iter: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let items: Vec<NewItem> = (0..n)
        .map(|i| {
            NewItem::login(
                &format!("item {i}"),
                &format!("user{i}"),
                Secret::new(format!("password {i}")),
                "https://x.example/",
            )
        })
        .collect();
    v.add_items(items).unwrap();
    let key = v.key().clone();
    drop(v);
    let pristine = std::fs::read(dir.join("vault.enpassdb")).unwrap();
    (td, dir, key, pristine)
}

/// Comparable content of a listing (Item's PartialEq would do, but keep the
/// comparison explicit about what must not change).
/// (uuid, title, [(field uid, value)]) of each item.
type ItemContent = (String, String, Vec<(i64, String)>);
type Content = Vec<ItemContent>;

fn content(items: &[Item]) -> Content {
    items
        .iter()
        .map(|i| {
            (
                i.uuid.clone(),
                i.title.clone(),
                i.fields
                    .iter()
                    .map(|f| (f.uid, f.value.expose().to_owned()))
                    .collect(),
            )
        })
        .collect()
}

#[derive(Debug, PartialEq)]
enum Outcome {
    /// `open` refused the file with `Error::Corrupt`.
    OpenRefused,
    /// `open` succeeded; listing the items failed with `Error::Corrupt`.
    ReadRefused,
    /// Open and listing succeeded with exactly the original content: the page is
    /// not read by a listing (an index page); `verify()` still reports it.
    NotRead,
}

fn flip_and_check(
    dir: &std::path::Path,
    key: &VaultKey,
    pristine: &[u8],
    want: &[ItemContent],
    page: usize,
    off: usize,
) -> Outcome {
    let mut bad = pristine.to_vec();
    bad[page * 1024 + off] ^= 0x01;
    std::fs::write(dir.join("vault.enpassdb"), &bad).unwrap();
    let label = format!("page {} offset {off}", page + 1);
    let v = match Vault::open_with_key(dir, key.clone()) {
        Err(Error::Corrupt(_)) => return Outcome::OpenRefused,
        Err(e) => panic!("{label}: open gave {e:?}, want Corrupt"),
        Ok(v) => v,
    };
    match v.items() {
        Err(Error::Corrupt(msg)) => {
            // The connection stays refused: SQLCipher puts the pager in an error
            // state, so a later read cannot return the page's garbage either.
            assert!(
                matches!(v.items(), Err(Error::Corrupt(_))),
                "{label}: a second read after the failure did not fail"
            );
            assert!(!msg.contains("password "), "{label}: message leaks a value");
            Outcome::ReadRefused
        }
        Err(e) => panic!("{label}: items() gave {e:?}, want Corrupt"),
        Ok(items) => {
            assert_eq!(
                content(&items),
                want,
                "{label}: a tampered file listed different content"
            );
            assert!(
                matches!(v.verify(), Err(Error::Corrupt(_))),
                "{label}: the full verify() missed the flipped byte"
            );
            Outcome::NotRead
        }
    }
}

#[test]
fn a_flipped_byte_in_any_page_is_corrupt_on_open_or_first_read() {
    let (_td, dir, key, pristine) = make_vault(120);
    let want = content(
        &Vault::open_with_key(&dir, key.clone())
            .unwrap()
            .items()
            .unwrap(),
    );
    assert_eq!(want.len(), 120);
    let pages = pristine.len() / 1024;
    assert!(pages > 50, "{pages} pages");
    let mut outcomes = Vec::new();
    for page in 0..pages {
        // Page 1's first 16 bytes are the salt (not used once the key is derived).
        // Bytes 1012..1024 of a page are the reserve's random padding after IV (16)
        // and HMAC (20): neither read nor authenticated, so a flip there changes
        // nothing. Anywhere else: payload, IV, HMAC.
        let off = if page == 0 { 100 } else { (page * 131) % 1012 };
        outcomes.push(flip_and_check(&dir, &key, &pristine, &want, page, off));
    }
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    let (open, read, not_read) = (
        count(Outcome::OpenRefused),
        count(Outcome::ReadRefused),
        count(Outcome::NotRead),
    );
    eprintln!("{pages} pages: {open} refused on open, {read} on first read, {not_read} not read by a listing");
    // Page 1 (key, header, schema) is always checked on open.
    assert_eq!(outcomes[0], Outcome::OpenRefused);
    // Every page that holds items or fields is read by a listing.
    assert!(read > pages / 2, "only {read} of {pages} detected on read");
    std::fs::write(dir.join("vault.enpassdb"), &pristine).unwrap();
    Vault::open_with_key(&dir, key).unwrap().verify().unwrap();
}

#[test]
fn tampered_field_page_is_corrupt_for_every_reader_and_nothing_is_written() {
    let (_td, dir, key, pristine) = make_vault(200);
    let pages = pristine.len() / 1024;
    // The last page belongs to the last rows written: itemfield rows (or its index).
    // Find a page whose flip a listing detects, then check each read API on it.
    let want = content(
        &Vault::open_with_key(&dir, key.clone())
            .unwrap()
            .items()
            .unwrap(),
    );
    let page = (1..pages)
        .rev()
        .find(|&p| flip_and_check(&dir, &key, &pristine, &want, p, 500) == Outcome::ReadRefused)
        .expect("some page is read by a listing");
    let before = std::fs::read(dir.join("vault.enpassdb")).unwrap();
    assert_ne!(before, pristine);
    let uuid = &want.last().unwrap().0;
    let v = Vault::open_with_key(&dir, key.clone());
    let v = match v {
        Ok(v) => v,
        Err(e) => panic!("page {}: {e:?}", page + 1),
    };
    let s = v.snapshot();
    assert!(
        matches!(s, Err(Error::Corrupt(_))),
        "snapshot: {:?}",
        s.map(|_| ())
    );
    let mut v2 = Vault::open_with_key(&dir, key.clone()).unwrap();
    assert!(matches!(v2.verify(), Err(Error::Corrupt(_))), "verify");
    // A write on the damaged file fails and leaves the file as it was.
    let r = v2.add_item(NewItem::login(
        "new",
        "u",
        Secret::new("p"),
        "https://y.example/",
    ));
    assert!(r.is_err(), "a write on a tampered file succeeded");
    drop(v2);
    let _ = v.get_item(uuid);
    drop(v);
    assert_eq!(std::fs::read(dir.join("vault.enpassdb")).unwrap(), before);
}
