//! Conflict copies left by desktop sync clients.
//!
//! When two devices change a synced file at once, desktop clients keep both by renaming
//! one side. Providers never read such a copy in place of the real file (they only
//! ever open the exact path they are asked for); this module finds them in a listing so
//! the engine can merge them. It lives in core, not in the folder provider, because the
//! copies turn up on any storage a desktop client also syncs (a Nextcloud server whose
//! desktop client made one is read over WebDAV; a Dropbox folder through the Dropbox
//! API): the names are a fact about the files, not about one provider. Recognised
//! forms, for a file `vault.enpassdb`:
//!
//! | client | conflict copy |
//! |---|---|
//! | Dropbox | `vault (conflicted copy).enpassdb`, `vault (John's conflicted copy 2024-01-02).enpassdb`, `vault (John's conflicted copy 2024-01-02 (1)).enpassdb`, `vault (Case Conflict).enpassdb`, `vault (Selective Sync Conflict).enpassdb` |
//! | Nextcloud / ownCloud | `vault (conflicted copy 2024-01-02 120000).enpassdb`, `vault_conflict-20240101-120000.enpassdb` |
//! | iCloud Drive, macOS Finder | `vault 2.enpassdb` (a space and a number) |
//! | Google Drive, Windows | `vault (1).enpassdb` |
//! | OneDrive | `vault-DESKTOP-ABC.enpassdb`, `vault-DESKTOP-ABC-2.enpassdb` (a hyphen and a computer name: letters, digits, `-` and `_`, containing at least one capital letter or digit) |
//! | Syncthing | `vault.sync-conflict-20240101-120000-ABCDEF.enpassdb` |
//!
//! The OneDrive form is a heuristic (a file really named `vault-Backup.enpassdb` would
//! be taken for one); the others are exact patterns.

use crate::{Entry, EntryKind, RemotePath};

/// Which client's naming a conflict copy follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConflictStyle {
    /// `name (… conflicted copy …).ext` and the other parenthesised Dropbox/Nextcloud tags.
    ConflictedCopy,
    /// `name N.ext`: iCloud Drive / Finder.
    Numbered,
    /// `name (N).ext`: Google Drive / Windows.
    ParenNumbered,
    /// `name-COMPUTER.ext`: OneDrive.
    ComputerName,
    /// `name.sync-conflict-YYYYMMDD-HHMMSS-DEVICE.ext`: Syncthing.
    Syncthing,
    /// `name_conflict-YYYYMMDD-HHMMSS.ext`: older ownCloud clients.
    OwnCloud,
}

/// One conflict copy found in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictCopy {
    /// The copy's entry, as listed.
    pub entry: Entry,
    /// The naming it follows.
    pub style: ConflictStyle,
}

/// Splits `name` into stem and extension (with its dot): `vault.enpassdb` →
/// (`vault`, `.enpassdb`); no extension → (`name`, ``). A leading dot is part of the stem.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `candidate` is a conflict copy of file `original` (both bare file names),
/// and in which style.
pub fn conflict_style(original: &str, candidate: &str) -> Option<ConflictStyle> {
    if candidate == original {
        return None;
    }
    let (stem, ext) = split_ext(original);
    // Syncthing: stem.sync-conflict-<date>-<time>-<device>ext
    if let Some(rest) = candidate.strip_prefix(stem) {
        if let Some(rest) = rest.strip_prefix(".sync-conflict-") {
            if let Some(mid) = rest.strip_suffix(ext) {
                let parts: Vec<&str> = mid.splitn(3, '-').collect();
                if parts.len() == 3
                    && parts[0].len() == 8
                    && all_digits(parts[0])
                    && parts[1].len() == 6
                    && all_digits(parts[1])
                    && !parts[2].is_empty()
                    && parts[2].bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Some(ConflictStyle::Syncthing);
                }
            }
        }
    }
    let mid = candidate.strip_prefix(stem)?.strip_suffix(ext)?;
    if mid.is_empty() {
        return None;
    }
    // " (…)" forms.
    if let Some(inner) = mid.strip_prefix(" (").and_then(|m| m.strip_suffix(')')) {
        let lower = inner.to_ascii_lowercase();
        if lower.contains("conflicted copy")
            || lower == "case conflict"
            || lower == "selective sync conflict"
        {
            return Some(ConflictStyle::ConflictedCopy);
        }
        if all_digits(inner) {
            return Some(ConflictStyle::ParenNumbered);
        }
        return None;
    }
    // " N"
    if let Some(n) = mid.strip_prefix(' ') {
        if all_digits(n) {
            return Some(ConflictStyle::Numbered);
        }
        return None;
    }
    // "_conflict-YYYYMMDD-HHMMSS"
    if let Some(r) = mid.strip_prefix("_conflict-") {
        let parts: Vec<&str> = r.split('-').collect();
        if parts.len() == 2 && parts.iter().all(|p| all_digits(p)) {
            return Some(ConflictStyle::OwnCloud);
        }
        return None;
    }
    // "-COMPUTER" (OneDrive), optionally "-COMPUTER-N".
    if let Some(r) = mid.strip_prefix('-') {
        let ok_chars = !r.is_empty()
            && r.len() <= 64
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !r.starts_with('-')
            && !r.ends_with('-');
        let looks_like_host = r
            .bytes()
            .any(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok_chars && looks_like_host {
            return Some(ConflictStyle::ComputerName);
        }
    }
    None
}

/// The conflict copies of file `file` among `listing` (typically `list` of its parent
/// folder): files in the same folder whose name is a conflict copy of `file`'s name.
/// The file itself, folders, and files in other folders are never returned. Sorted by
/// path, so the result is deterministic.
pub fn conflict_copies(listing: &[Entry], file: &RemotePath) -> Vec<ConflictCopy> {
    let Some(name) = file.file_name() else {
        return Vec::new();
    };
    let parent = file.parent();
    let mut out: Vec<ConflictCopy> = listing
        .iter()
        .filter(|e| e.kind == EntryKind::File && e.path.parent() == parent)
        .filter_map(|e| {
            let cand = e.path.file_name()?;
            conflict_style(name, cand).map(|style| ConflictCopy {
                entry: e.clone(),
                style,
            })
        })
        .collect();
    out.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "vault.enpassdb";

    #[test]
    fn recognises_every_client() {
        let cases = [
            (
                "vault (conflicted copy).enpassdb",
                ConflictStyle::ConflictedCopy,
            ),
            (
                "vault (John's conflicted copy 2024-01-02).enpassdb",
                ConflictStyle::ConflictedCopy,
            ),
            (
                "vault (John's conflicted copy 2024-01-02 (1)).enpassdb",
                ConflictStyle::ConflictedCopy,
            ),
            (
                "vault (conflicted copy 2024-01-02 120000).enpassdb",
                ConflictStyle::ConflictedCopy,
            ),
            (
                "vault (Case Conflict).enpassdb",
                ConflictStyle::ConflictedCopy,
            ),
            ("vault 2.enpassdb", ConflictStyle::Numbered),
            ("vault 13.enpassdb", ConflictStyle::Numbered),
            ("vault (1).enpassdb", ConflictStyle::ParenNumbered),
            ("vault-DESKTOP-ABC.enpassdb", ConflictStyle::ComputerName),
            ("vault-DESKTOP-ABC-2.enpassdb", ConflictStyle::ComputerName),
            ("vault-laptop7.enpassdb", ConflictStyle::ComputerName),
            (
                "vault.sync-conflict-20240101-120000-ABCDEF.enpassdb",
                ConflictStyle::Syncthing,
            ),
            (
                "vault_conflict-20240101-120000.enpassdb",
                ConflictStyle::OwnCloud,
            ),
        ];
        for (name, style) in cases {
            assert_eq!(conflict_style(F, name), Some(style), "{name}");
        }
    }

    #[test]
    fn rejects_non_copies() {
        for name in [
            "vault.enpassdb",
            "vault.json",
            "vault.enpassdb-wal",
            "vault.enpassdb.icloud",
            ".vault.enpassdb.icloud",
            "vault (notes).enpassdb",
            "vault 2a.enpassdb",
            "vaults.enpassdb",
            "vault-backup.enpassdb",
            "vault-.enpassdb",
            "vault.sync-conflict-2024-120000-ABCDEF.enpassdb",
            "myvault (conflicted copy).enpassdb",
            "vault (conflicted copy).json",
        ] {
            assert_eq!(conflict_style(F, name), None, "{name}");
        }
    }

    #[test]
    fn files_without_extension() {
        assert_eq!(
            conflict_style("notes", "notes 2"),
            Some(ConflictStyle::Numbered)
        );
        assert_eq!(
            conflict_style("notes", "notes (conflicted copy)"),
            Some(ConflictStyle::ConflictedCopy)
        );
        assert_eq!(conflict_style("notes", "notes.txt"), None);
    }

    fn file(p: &str) -> Entry {
        Entry {
            path: RemotePath::parse(p).unwrap(),
            kind: EntryKind::File,
            size: 1,
            modified: None,
            version: Some(crate::Version::new("v")),
        }
    }

    #[test]
    fn filters_a_listing() {
        let mut dir = file("v/vault 2.enpassdb");
        dir.kind = EntryKind::Dir;
        dir.version = None;
        let listing = vec![
            file("v/vault.enpassdb"),
            file("v/vault.json"),
            file("v/vault (conflicted copy).enpassdb"),
            file("v/vault.sync-conflict-20240101-120000-ABCDEF.enpassdb"),
            file("other/vault 3.enpassdb"),
            dir,
        ];
        let got = conflict_copies(&listing, &RemotePath::parse("v/vault.enpassdb").unwrap());
        let names: Vec<_> = got
            .iter()
            .map(|c| c.entry.path.as_str().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "v/vault (conflicted copy).enpassdb",
                "v/vault.sync-conflict-20240101-120000-ABCDEF.enpassdb"
            ]
        );
    }
}
