//! Unit tests of URL building, href confinement, the status table and Debug.

use crate::error::status_to_error;
use crate::*;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use std::time::{Duration, SystemTime};
use syncfabric_core::{Error, RemotePath, Storage};
use syncfabric_http::retry_after;

fn dav(url: &str) -> WebDavStorage {
    WebDavStorage::new(WebDavConfig::new(url)).unwrap()
}

#[test]
fn hrefs_are_confined() {
    let d = dav("http://127.0.0.1:9/dav/my%20root");
    assert_eq!(
        d.href_to_path("/dav/my%20root/").unwrap(),
        RemotePath::root()
    );
    assert_eq!(
        d.href_to_path("/dav/my%20root").unwrap(),
        RemotePath::root()
    );
    assert_eq!(
        d.href_to_path("/dav/my%20root/a%2Fb/c%20d")
            .unwrap()
            .as_str(),
        "a/b/c d"
    );
    assert_eq!(
        d.href_to_path("http://127.0.0.1:9/dav/my%20root/x")
            .unwrap()
            .as_str(),
        "x"
    );
    // `?` and `#` left unescaped (webdav-server) belong to the name.
    for href in [
        "/dav/my%20root/a b/hash#tag ?x",
        "http://127.0.0.1:9/dav/my%20root/a%20b/hash#tag%20?x",
        "http://127.0.0.1:9/dav/my%20root/a%20b/hash%23tag%20%3Fx",
    ] {
        assert_eq!(
            d.href_to_path(href).unwrap().as_str(),
            "a b/hash#tag ?x",
            "{href}"
        );
    }
    for bad in [
        "/dav/other/x",
        "/dav/my%20rootx/y",
        "/dav/my%20root/../escape",
        "/dav/my%20root/a/%2e%2e/%2e%2e/x",
        "http://evil.example/dav/my%20root/x",
        "http://127.0.0.1:10/dav/my%20root/x",
        "https://127.0.0.1:9/dav/my%20root/x",
        "/dav/my%20root/%ff",
    ] {
        assert!(
            matches!(d.href_to_path(bad), Err(Error::Corrupt { .. })),
            "{bad}"
        );
    }
}

#[test]
fn urls_are_encoded() {
    let d = dav("http://h/dav");
    let p = RemotePath::parse("a b/c#d?e%f").unwrap();
    assert_eq!(
        d.url_for(&p, false).as_str(),
        "http://h/dav/a%20b/c%23d%3Fe%25f"
    );
    assert_eq!(
        d.url_for(&p, true).as_str(),
        "http://h/dav/a%20b/c%23d%3Fe%25f/"
    );
}

#[test]
fn status_mapping() {
    let ra = Some(Duration::from_secs(3));
    assert!(matches!(
        status_to_error(StatusCode::UNAUTHORIZED, None, "/x"),
        Error::Unauthorized { .. }
    ));
    assert!(matches!(
        status_to_error(StatusCode::PRECONDITION_FAILED, None, "/x"),
        Error::PreconditionFailed { .. }
    ));
    assert!(matches!(
        status_to_error(StatusCode::NOT_FOUND, None, "/x"),
        Error::NotFound { .. }
    ));
    assert!(matches!(
        status_to_error(StatusCode::TOO_MANY_REQUESTS, ra, "/x"),
        Error::RateLimited {
            retry_after: Some(_),
            ..
        }
    ));
    assert!(matches!(
        status_to_error(StatusCode::SERVICE_UNAVAILABLE, ra, "/x"),
        Error::RateLimited { .. }
    ));
    assert!(matches!(
        status_to_error(StatusCode::SERVICE_UNAVAILABLE, None, "/x"),
        Error::Transient { .. }
    ));
    assert!(matches!(
        status_to_error(StatusCode::INTERNAL_SERVER_ERROR, None, "/x"),
        Error::Transient { .. }
    ));
    assert!(matches!(
        status_to_error(StatusCode::INSUFFICIENT_STORAGE, None, "/x"),
        Error::QuotaExceeded { .. }
    ));
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("7"));
    assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(100));
    h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
    assert!(retry_after(&h).unwrap() > Duration::from_secs(90));
}

#[test]
fn debug_has_no_password() {
    let cfg = WebDavConfig::new("http://h/").with_credentials("u", Secret::new("s3cr3t-pw"));
    let d = WebDavStorage::new(cfg.clone()).unwrap();
    assert!(!format!("{d:?} {cfg:?} {}", d.describe()).contains("s3cr3t-pw"));
}
