//! Text from another person or device never panics the parsers of the tools around the
//! vault: otpauth URIs and TOTP secrets, word lists, shared-item blobs (also valid
//! armour around random bytes, and real blobs with random bytes changed).

use proptest::prelude::*;
use syncfabric_vault::generate::WordList;
use syncfabric_vault::share::{receive_item, share_item};
use syncfabric_vault::totp::Totp;
use syncfabric_vault::{Item, NewItem, Secret};

const BEGIN: &str = "-----BEGIN SYNCFABRIC SHARED ITEM-----";
const END: &str = "-----END SYNCFABRIC SHARED ITEM-----";

fn blob() -> String {
    let n = NewItem::login("T", "u", Secret::new("p"), "");
    let item = Item {
        uuid: "u".into(),
        title: n.title,
        subtitle: n.subtitle,
        note: n.note,
        icon: n.icon,
        category: n.category,
        template: n.template,
        favorite: false,
        trashed: false,
        archived: false,
        deleted: false,
        created_at: 0,
        updated_at: 0,
        meta_updated_at: 0,
        field_updated_at: 0,
        fields: n.fields,
    };
    share_item(&item, &[], &Secret::new("k")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn totp_parse_never_panics(s in "\\PC{0,80}", q in "[a-z=&%0-9A-Z]{0,60}") {
        let _ = Totp::parse(&s).map(|t| t.at(1_700_000_000));
        let _ = Totp::parse(&format!("otpauth://totp/x?{q}")).map(|t| t.at(59));
    }

    #[test]
    fn word_lists_never_panic(s in "(\\PC{0,12}\n){0,20}") {
        if let Ok(l) = WordList::parse(&s) {
            prop_assert!(l.len() >= 2);
        }
    }

    #[test]
    fn random_armoured_bytes_never_import(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let text = format!("{BEGIN}\n{}\n{END}\n", openssl::base64::encode_block(&bytes));
        prop_assert!(receive_item(&text, &Secret::new("k")).is_err());
    }
}

proptest! {
    // A real blob costs one PBKDF2 run (600,000 rounds) per attempt: fewer cases.
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn changed_blobs_never_import(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let text = blob();
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let mut bin = openssl::base64::decode_block(&body).unwrap();
        let i = pos.index(bin.len());
        bin[i] ^= 1 << bit;
        let changed = format!("{BEGIN}\n{}\n{END}\n", openssl::base64::encode_block(&bin));
        prop_assert!(receive_item(&changed, &Secret::new("k")).is_err());
    }
}
