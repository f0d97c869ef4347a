//! # syncfabric-testkit
//!
//! **For tests only.** The servers and fakes syncfabric's tests share across crates:
//! every user takes this crate as a dev-dependency, and nothing shipped depends on it
//! (the behaviour suite itself lives in `syncfabric-conformance`, which the CLI's
//! `remote check` runs; this crate is what the suite's tests run *against*).
//!
//! Everything listens on 127.0.0.1 at a free port and stops when dropped:
//!
//! | Module | What it is | Used by |
//! |---|---|---|
//! | [`flaky_proxy`] | an HTTP/1.1 proxy that injects seeded faults (5xx, resets, 429, latency, cut bodies and uploads), plain or with a TLS upstream | WebDAV, Dropbox, Google Drive tests; the never-lose run |
//! | [`dropbox_fake`] | the Dropbox API v2, files in memory | the Dropbox provider, the engine suite |
//! | [`gdrive_fake`] | the Google Drive API (v2 and v3), files in memory | the Google Drive provider, the engine suite |
//! | [`graph_fake`] | Microsoft Graph's driveItem API (OneDrive, SharePoint), with throttling | the OneDrive provider, the engine suite |
//! | [`nextcloud_fake`] | Nextcloud's files endpoint and chunked upload v2 | the WebDAV provider's Nextcloud profile |
//! | [`oauth_fake`] | an OAuth 2 server: device flow, PKCE code, refresh, revocation | the login tests (`syncfabric-auth`, the CLI) |
//! | [`servers`] | launchers for real WebDAV servers (Apache, nginx, lighttpd, rclone, SabreDAV, WsgiDAV, webdav-server) and our own Wi-Fi Sync Server in process | the WebDAV provider's and the CLI's tests |
//!
//! The fakes are written from the vendors' references and cite them; where a
//! reference is silent they take the stricter reading. A missing real server makes
//! [`servers::Server::start`] return `None` (or panic when
//! `SYNCFABRIC_REQUIRE_SERVERS=1`); `scripts/test` installs them all.
#![deny(missing_docs)]

pub mod dropbox_fake;
pub mod flaky_proxy;
pub mod gdrive_fake;
pub mod graph_fake;
pub mod nextcloud_fake;
pub mod oauth_fake;
pub mod servers;
