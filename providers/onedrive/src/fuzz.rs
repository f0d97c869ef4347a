//! Entry point for the fuzzers in `fuzz/` (not an API: hidden, and free to change).
//!
//! [`graph_json`] takes bytes as Microsoft Graph could answer and runs them through
//! every deserialisation this crate does on an answer (a driveItem, a children or
//! delta page, an upload session, an error body) and on into what the storage makes of
//! it (an [`Entry`](syncfabric_core::Entry), a child path, a followed link). It panics only when an invariant
//! breaks: that is what the fuzzer looks for. A malformed answer must come back as an
//! error.

use crate::client::{DriveItem, Page};
use crate::error::{map_error, parse_error_body};
use crate::{names, upload, OneDriveStorage};
use crate::{Location, OneDriveConfig};
use std::sync::{Arc, OnceLock};
use syncfabric_core::auth::{SecretToken, StaticBearer};
use syncfabric_core::{EntryKind, RemotePath};

fn storage() -> &'static OneDriveStorage {
    static S: OnceLock<OneDriveStorage> = OnceLock::new();
    S.get_or_init(|| {
        // Never sends anything: only the answer handling is exercised.
        let bearer = Arc::new(StaticBearer::new(SecretToken::new("fuzz")));
        OneDriveStorage::new(OneDriveConfig::new(Location::Me), bearer)
            .expect("the default configuration is valid")
    })
}

/// The folder a fuzzed listing is read from.
fn dir() -> RemotePath {
    RemotePath::parse("vault-uuid").unwrap_or_else(|_| RemotePath::root())
}

/// Every Graph answer type this crate reads, fed `raw`.
pub fn graph_json(raw: &[u8]) {
    let od = storage();
    let dir = dir();
    // `stat`, the end of a simple upload or of an upload session.
    if let Ok(it) = serde_json::from_slice::<DriveItem>(raw) {
        item(od, &dir, &it);
        let _ = od.written(&dir, &it, 0);
    }
    // `list` (children) and the delta feed of `watch`.
    if let Ok(page) = serde_json::from_slice::<Page>(raw) {
        for it in &page.value {
            item(od, &dir, it);
        }
        for link in [page.next, page.delta].into_iter().flatten() {
            link_stays_home(od, link);
        }
    }
    // An upload session: its URL and where to resume.
    if let Some((Some(url), _next)) = upload::fuzz_session(raw) {
        let _ = reqwest::Url::parse(&url);
    }
    // An error answer.
    let (code, message) = parse_error_body(raw);
    for s in [&code, &message] {
        assert!(s.chars().count() <= 200, "unbounded error text");
        assert!(!s.chars().any(char::is_control), "control character kept");
    }
    for status in [400, 401, 403, 404, 409, 412, 416, 423, 429, 500, 503, 507] {
        let e = map_error(status, None, &code, &message, "fuzz");
        let shown = e.to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }
}

/// One driveItem of an answer, as `stat`, `list` and `watch` treat it.
fn item(od: &OneDriveStorage, dir: &RemotePath, it: &DriveItem) {
    // `stat` of a path we asked for.
    if let Ok(e) = od.entry(dir.clone(), it) {
        match e.kind {
            EntryKind::Dir => assert!(it.is_folder() && e.version.is_none()),
            EntryKind::File => {
                assert!(!it.is_folder());
                let v = e.version.as_ref().map(|v| v.as_str());
                assert_eq!(v, it.etag.as_deref(), "the version is the eTag");
            }
        }
    }
    // `list` and `watch`: the child's name decoded into a path one level below.
    let Some(name) = it.name.as_deref() else {
        return;
    };
    let decoded = names::decode(name);
    if let Ok(path) = dir.join(&decoded) {
        if path.parent().as_ref() == Some(dir) {
            // Writing that name back stores a legal OneDrive name that reads as itself.
            let seg = path.file_name().unwrap_or_default();
            let enc = names::encode(seg);
            assert_eq!(names::decode(&enc), seg, "name round trip");
            assert!(
                !enc.chars().any(|c| "\"*:<>?/\\|".contains(c)),
                "{enc:?} is not a legal OneDrive name"
            );
            let _ = od.entry(path, it);
        }
    }
}

/// A `@odata.nextLink` / `deltaLink` is followed (with the token) only on Graph.
fn link_stays_home(od: &OneDriveStorage, link: String) {
    if let Ok(l) = od.same_origin(link, "fuzz") {
        if let Ok(u) = reqwest::Url::parse(&l) {
            let origin = u.origin().ascii_serialization();
            assert_eq!(origin, od.inner.origin, "followed a link to {l:?}");
        }
    }
}
