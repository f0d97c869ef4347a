//! Property tests: arbitrary values survive encryption; snapshot → apply reproduces a
//! vault's content exactly and is idempotent.

use proptest::prelude::*;
use syncfabric_vault::{field_type, CreateOptions, NewItem, Secret, Vault};

#[derive(Debug, Clone)]
enum Op {
    Add(String, String),
    SetPassword(usize, String),
    Retitle(usize, String),
    Trash(usize),
    Delete(usize),
    Folder(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let s = "\\PC{0,24}";
    prop_oneof![
        (s, s).prop_map(|(a, b)| Op::Add(a, b)),
        (0usize..8, s).prop_map(|(i, p)| Op::SetPassword(i, p)),
        (0usize..8, s).prop_map(|(i, t)| Op::Retitle(i, t)),
        (0usize..8).prop_map(Op::Trash),
        (0usize..8).prop_map(Op::Delete),
        (0usize..8).prop_map(Op::Folder),
    ]
}

fn new_vault(dir: &std::path::Path) -> Vault {
    Vault::create(
        dir,
        &Secret::new("pw"),
        &CreateOptions {
            kdf_iter: syncfabric_vault::MIN_KDF_ITER,
            ..Default::default()
        },
    )
    .unwrap()
}

fn run(v: &mut Vault, ops: &[Op]) {
    let folder = v.create_folder("F", None).unwrap();
    for op in ops {
        let live: Vec<String> = v
            .items()
            .unwrap()
            .into_iter()
            .filter(|i| !i.deleted)
            .map(|i| i.uuid)
            .collect();
        let pick = |i: usize| live.get(i % live.len().max(1)).cloned();
        match op {
            Op::Add(t, p) => {
                v.add_item(NewItem::login(t, "u", Secret::new(p.clone()), ""))
                    .unwrap();
            }
            Op::SetPassword(i, p) => {
                if let Some(u) = pick(*i) {
                    let mut it = v.get_item(&u).unwrap().unwrap();
                    it.field_mut(field_type::PASSWORD).unwrap().value = Secret::new(p.clone());
                    v.update_item(&it).unwrap();
                }
            }
            Op::Retitle(i, t) => {
                if let Some(u) = pick(*i) {
                    let mut it = v.get_item(&u).unwrap().unwrap();
                    it.title = t.clone();
                    v.update_item(&it).unwrap();
                }
            }
            Op::Trash(i) => {
                if let Some(u) = pick(*i) {
                    v.trash_item(&u).unwrap();
                }
            }
            Op::Delete(i) => {
                if let Some(u) = pick(*i) {
                    v.delete_item(&u).unwrap();
                }
            }
            Op::Folder(i) => {
                if let Some(u) = pick(*i) {
                    v.add_to_folder(&folder.uuid, &u).unwrap();
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn values_round_trip(pw in "\\PC{0,64}", note in "\\PC{0,64}", user in "\\PC{0,32}") {
        let td = tempfile::tempdir().unwrap();
        let mut v = new_vault(&td.path().join("v"));
        let mut n = NewItem::login("t", &user, Secret::new(pw.clone()), "");
        n.note = Secret::new(note.clone());
        let it = v.add_item(n).unwrap();
        let back = v.get_item(&it.uuid).unwrap().unwrap();
        let f = back.field(field_type::PASSWORD).unwrap();
        prop_assert_eq!(f.value.expose(), pw.as_str());
        prop_assert_eq!(back.note.expose(), note.as_str());
        let want = if pw.is_empty() { String::new() } else { hex::encode(openssl::sha::sha1(pw.as_bytes())) };
        prop_assert_eq!(&f.hash, &want);
    }

    #[test]
    fn snapshot_apply_reproduces_content(ops in proptest::collection::vec(op(), 1..14)) {
        let td = tempfile::tempdir().unwrap();
        let mut a = new_vault(&td.path().join("a"));
        let mut b = new_vault(&td.path().join("b"));
        run(&mut a, &ops);
        let sa = a.snapshot().unwrap();
        let report = b.apply(&sa).unwrap();
        let sb = b.snapshot().unwrap();
        // Every table matches (Identity too: apply copied A's row over B's).
        for (name, t) in &sa.tables {
            prop_assert_eq!(Some(t), sb.tables.get(name), "table {}", name);
        }
        prop_assert!(report.changed_rows() > 0);
        // Idempotent.
        let again = b.apply(&sa).unwrap();
        prop_assert!(again.is_empty(), "{:?}", again);
        b.verify().unwrap();
        // B's items decrypt to the same values as A's.
        let (ia, ib) = (a.items().unwrap(), b.items().unwrap());
        prop_assert_eq!(ia.len(), ib.len());
        for x in &ia {
            let y = ib.iter().find(|y| y.uuid == x.uuid).unwrap();
            prop_assert_eq!(x, y);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The parsers of bytes from disk or network never panic, and errors carry no input.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), s in "\\PC{0,120}") {
        for input in [&bytes[..], s.as_bytes()] {
            match syncfabric_vault::Keyfile::parse(input) {
                Ok(_) => {}
                Err(e) => prop_assert!(matches!(e, syncfabric_vault::Error::BadKeyfile(_))),
            }
            if let Ok(m) = syncfabric_vault::VaultMeta::parse(input) {
                let _ = m.check_supported();
                let _ = m.kdf_iter();
                let _ = m.to_json_string();
            }
        }
        let wrapped = format!("<?xml version=\"1.0\"?><keyfile><key>{s}</key></keyfile>");
        let _ = syncfabric_vault::Keyfile::parse(wrapped.as_bytes());
    }
}
