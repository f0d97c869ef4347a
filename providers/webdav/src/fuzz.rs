//! Entry points for the fuzzers in `fuzz/` (not an API: hidden, and free to change).
//!
//! Each takes bytes as a server could send them, runs them through the parsing the
//! storage does on a real answer, and panics only when an invariant breaks: that is
//! what the fuzzer looks for. A malformed answer must come back as an error.

use crate::xml::{self, MAX_RESPONSES};
use crate::{WebDavConfig, WebDavStorage};
use std::sync::OnceLock;

/// The root the hrefs of fuzzed answers are mapped against (never contacted).
const ROOT: &str = "https://dav.example:8443/remote.php/dav/files/me%20too/Enpass";

fn storage() -> Option<&'static WebDavStorage> {
    static S: OnceLock<Option<WebDavStorage>> = OnceLock::new();
    S.get_or_init(|| WebDavStorage::new(WebDavConfig::new(ROOT)).ok())
        .as_ref()
}

/// A `207 Multi-Status` body through `xml::parse_multistatus`, then every href
/// through the mapping to a path under the root, as a listing does.
///
/// Panics when an accepted answer breaks an invariant: an empty href, more than
/// `MAX_RESPONSES` entries, or a path that does not map back to itself.
pub fn multistatus(body: &[u8]) {
    let Ok(responses) = xml::parse_multistatus(body) else {
        return;
    };
    assert!(responses.len() <= MAX_RESPONSES, "too many responses kept");
    let dav = storage().expect("the fuzzing root is a valid WebDAV URL");
    for r in &responses {
        assert!(
            !r.href.is_empty(),
            "a response without an href was accepted"
        );
        if let Some(tag) = &r.etag {
            let again = xml::normalize_etag(tag);
            assert_eq!(again.as_deref(), Some(tag.as_str()), "an ETag in two forms");
        }
        if let Ok(path) = dav.href_to_path(&r.href) {
            // Our own URL for that path lists as the same path again.
            let url = dav.url_for(&path, false);
            assert!(
                url.as_str().starts_with(dav.root_url()),
                "{path:?} maps outside the root: {url}"
            );
            let again = dav.href_to_path(url.path());
            assert_eq!(again.ok().as_ref(), Some(&path), "href round trip of {url}");
        }
    }
}

/// An `ETag` header value (or a `getetag` text) through `xml::normalize_etag`: its
/// one form is quoted, and normalising it again changes nothing.
pub fn etag(raw: &str) {
    if let Some(tag) = xml::normalize_etag(raw) {
        let inner = tag.strip_prefix("W/").unwrap_or(&tag);
        assert!(inner.len() >= 3 && inner.starts_with('"') && inner.ends_with('"'));
        assert_eq!(xml::normalize_etag(&tag).as_deref(), Some(tag.as_str()));
    }
}

/// A `LOCK` answer (or a `lockdiscovery` multistatus) through
/// `xml::parse_activelocks` and each lock's timeout.
pub fn activelocks(body: &[u8]) {
    let Ok(locks) = xml::parse_activelocks(body) else {
        return;
    };
    for l in &locks {
        if let Some(secs) = l.timeout_secs() {
            let t = l.timeout.as_deref().unwrap_or_default();
            assert!(t.contains(&secs.to_string()) || secs == 0, "timeout {t:?}");
        }
    }
}
