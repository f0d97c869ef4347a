//! # syncfabric-http
//!
//! The HTTP client every HTTP provider (Dropbox, Google Drive, OneDrive, and WebDAV
//! as it adopts it) shares, written once so that no provider logic is written twice:
//!
//! * [`client`]: [`ClientOptions`] → `reqwest::Client` (timeouts, user agent,
//!   redirects refused or same-origin, one extra trusted or pinned certificate);
//! * [`send`]: [`BearerClient`], the send loop with the bearer token, refreshed
//!   once on `401`;
//! * [`status`]: reading an error answer ([`ErrorAnswer`]) and the generic status
//!   table ([`StatusTable`]) a provider falls back on after its own refinements;
//! * [`encode`]: one percent-encoding of a path segment;
//! * [`time`]: RFC 3339 UTC timestamps;
//! * [`body`]: bounded answer bodies, length-checked download streams, slices of
//!   request bodies;
//! * [`transport`]: failures on the way, **without the request's URL** (some URLs
//!   carry credentials, and `reqwest::Error`'s `Display` names the URL).
//!
//! What a vendor's error body means (Dropbox's `error_summary`, Graph's
//! `error.code`, Drive's `reason`) stays in its provider crate: this crate knows no
//! vendor.
//!
//! ```
//! # async fn demo(resp: reqwest::Response) -> syncfabric_core::Result<()> {
//! let retry = syncfabric_http::retry_after(resp.headers());
//! let body = syncfabric_http::read_capped(resp, 64 * 1024, "vault/vault.json").await?;
//! # let _ = (retry, body);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod body;
pub mod client;
pub mod encode;
pub mod send;
pub mod status;
pub mod time;
pub mod transport;

pub use body::{body_length_error, read_capped, read_json, read_range, sized_stream};
pub use client::{ClientOptions, Redirects, TrustedCertificate};
pub use encode::{encode_path, encode_segment};
pub use send::BearerClient;
pub use status::{clean_detail, retry_after, worth_retrying, ErrorAnswer, StatusTable};
pub use time::parse_rfc3339;
pub use transport::{body_error, transport_error};
