//! Names: awkward ones stored as they are, and escapes refused or stored literally.

use super::*;

/// The awkward names a vault folder or a person can produce, each written, listed,
/// stat'ed and read back under exactly its own name.
pub const AWKWARD_NAMES: &[&str] = &[
    "with space.txt",
    "  leading and trailing spaces  ",
    "100%.txt",
    "%41%42",
    "%2e%2e",
    "hash#tag",
    "question?mark",
    "amp&semi;eq=plus+",
    "quote'dq\"",
    "[brackets]{braces}",
    "caf\u{e9} nfc",
    "\u{65e5}\u{672c}\u{8a9e}",
    "emoji \u{1f510}\u{1f600}",
    ".hidden",
    "..double-dot",
    "...",
    "colon:name",
    "star*pipe|lt<gt>",
];

/// The NFD form of a name with a combining accent, written in its own folder (servers
/// that normalise to NFC may list it as NFC; both are accepted in the listing).
pub const NFD_NAME: &str = "cafe\u{301} nfd";

const NFD_AS_NFC: &str = "caf\u{e9} nfd";

/// Files named with spaces, `%`, `#`, `?`, unicode (NFC and NFD), emoji and leading dots
/// can be written, listed under the same name, stat'ed and read back.
pub async fn awkward_names(s: &dyn Storage, dir: &RemotePath) -> Check {
    for name in AWKWARD_NAMES {
        let f = p(dir, name)?;
        put(s, &f, name.as_bytes(), Precondition::None).await?;
    }
    let listed = names(&s.list(dir).await?);
    let wanted: BTreeSet<String> = AWKWARD_NAMES.iter().map(|n| n.to_string()).collect();
    ensure!(
        listed == wanted,
        "listing differs: missing {:?}, unexpected {:?}",
        wanted.difference(&listed).collect::<Vec<_>>(),
        listed.difference(&wanted).collect::<Vec<_>>()
    );
    for name in AWKWARD_NAMES {
        let f = p(dir, name)?;
        let st = s
            .stat(&f)
            .await?
            .ok_or_else(|| Failure::new(format!("stat {name:?}: nothing there")))?;
        ensure!(
            st.size == name.len() as u64 && st.path == f,
            "stat {name:?} gave {st:?}"
        );
        ensure!(
            content(s, &f).await? == name.as_bytes(),
            "reading {name:?} returned other bytes"
        );
    }
    let nfd_dir = p(dir, "nfd")?;
    let f = p(&nfd_dir, NFD_NAME)?;
    put(s, &f, b"nfd", Precondition::None).await?;
    ensure!(
        content(s, &f).await? == b"nfd",
        "reading the NFD name returned other bytes"
    );
    let listed = names(&s.list(&nfd_dir).await?);
    ensure!(
        listed.len() == 1 && (listed.contains(NFD_NAME) || listed.contains(NFD_AS_NFC)),
        "the NFD name is listed as {listed:?}"
    );
    for name in AWKWARD_NAMES {
        s.delete(&p(dir, name)?, Precondition::None).await?;
    }
    Ok(Outcome::Passed)
}

/// Paths that try to leave the root are refused before they reach the provider, and
/// names that only *look* like escapes once decoded (`%2e%2e`, `..%2f…`) are stored
/// literally inside the scratch folder.
pub async fn escape_attempts_refused(s: &dyn Storage, dir: &RemotePath) -> Check {
    for bad in [
        "..",
        "../x",
        "a/../../x",
        "/../etc/passwd",
        "a\\..\\x",
        "x\u{0}y",
        "a/\u{7f}",
    ] {
        ensure!(
            RemotePath::parse(bad).is_err(),
            "RemotePath::parse accepted {bad:?}"
        );
        ensure!(dir.join(bad).is_err(), "RemotePath::join accepted {bad:?}");
    }
    let parent = dir.parent().unwrap_or_default();
    let outside_before = names(&s.list(&parent).await.unwrap_or_default());
    let literal = [
        "%2e%2e",
        "..%2fescaped",
        "%2e%2e%2fescaped",
        "%2F",
        "..%5cescaped",
    ];
    for name in literal {
        put(s, &p(dir, name)?, name.as_bytes(), Precondition::None).await?;
    }
    let inside = names(&s.list(dir).await?);
    let wanted: BTreeSet<String> = literal.iter().map(|n| n.to_string()).collect();
    ensure!(
        inside == wanted,
        "names were not stored literally: listed {inside:?}"
    );
    let mut outside_now = names(&s.list(&parent).await.unwrap_or_default());
    if let Some(me) = dir.file_name() {
        outside_now.remove(me);
    }
    let mut outside_before = outside_before;
    if let Some(me) = dir.file_name() {
        outside_before.remove(me);
    }
    ensure!(
        outside_now == outside_before,
        "writing inside the scratch folder changed its parent: {outside_now:?}"
    );
    Ok(Outcome::Passed)
}
