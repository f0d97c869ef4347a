//! # syncfabric-dropbox
//!
//! One folder of a Dropbox account as syncfabric [`Storage`],
//! through a small client of our own for the dozen endpoints it needs, over the
//! project's one `reqwest` (native-tls, the system OpenSSL). Dropbox checks a file's
//! `rev` on the server when it writes, so compare-and-swap is truthful here: the
//! engine commits with `IfMatch` and needs no lock.
//!
//! ```no_run
//! # async fn demo(bearer: std::sync::Arc<dyn syncfabric_core::auth::BearerAuth>) -> syncfabric_core::Result<()> {
//! use syncfabric_core::{Body, Precondition, RemotePath, Storage};
//! use syncfabric_dropbox::{DropboxConfig, DropboxStorage};
//! let cfg = DropboxConfig::from_url("dropbox:/Apps/Enpass")?;
//! let dbx = DropboxStorage::new(cfg, bearer)?.retrying();
//! let path = RemotePath::parse("vault/vault.json")?;
//! let e = dbx.write(&path, Body::from(b"{}".to_vec()), Precondition::IfAbsent).await?;
//! dbx.write(&path, Body::from(b"{\"a\":1}".to_vec()), Precondition::IfMatch(e.version.unwrap())).await?;
//! # Ok(()) }
//! ```
//!
//! ## Logging in
//!
//! [`DROPBOX_LOGIN`] declares the PKCE code-paste flow (Dropbox has no device flow):
//! the person opens the authorisation URL, approves, and pastes the code shown;
//! `syncfabric_auth::CodePasteFlow` exchanges it, `OAuthBearer` refreshes it, and a
//! logout revokes it at [`DROPBOX_REVOKE_URL`]. Status and usage: `docs.md`.
//!
//! ## How each precondition is sent
//!
//! Every write carries `autorename: false` (so Dropbox never makes a
//! "(conflicted copy)" file) and `strict_conflict: true` ("forces a conflict even when
//! the target path refers to a file with identical contents", files/upload: without
//! it a stale `update` with the same bytes is a silent no-op success).
//!
//! | precondition | request | refusal |
//! |---|---|---|
//! | `None` | `files/upload` (or session `finish`) `mode: overwrite` | — |
//! | `IfAbsent` | `mode: add` | `409 path/conflict/…` → `AlreadyExists` |
//! | `IfMatch(rev)` | `mode: {".tag": "update", "update": rev}` | `409 path/conflict/…` → `PreconditionFailed`; a version that is no rev (`[0-9a-f]{9,}`) is refused without a request |
//! | delete `IfMatch(rev)` | `files/delete_v2` with `parent_rev` | `409 …/not_found` or `…/conflict/…` → `PreconditionFailed` |
//! | `UnderLock` | — | `Unsupported` (Dropbox has no folder lock; the engine never asks, CAS is truthful) |
//!
//! A file's [`Version`](syncfabric_core::Version) is its `rev`. Every upload sends
//! the body's `content_hash` (SHA-256 per 4 MiB block, via OpenSSL) and checks the
//! answer's hash, size and name; every download is hashed as it streams and fails
//! with `Corrupt` at its end when the hash differs from the one in
//! `Dropbox-API-Result`.
//!
//! ## Capability checklist
//!
//! | capability | claimed | shown where |
//! |---|---|---|
//! | `if_match`, `if_absent`, `conditional_delete` | yes | conformance suite and honesty probe over `syncfabric_testkit::dropbox_fake` (`tests/fake.rs`), plain and behind the flaky proxy; a fake that ignores the rev is caught |
//! | `chunked_upload` | yes: sessions above `upload_threshold` (16 MiB; a query parameter for tests), progress by accepted bytes | `tests/fake.rs`: small threshold, a lost append answer resumed from `correct_offset`; `tests/large_upload.rs`: 200 MB with two appends cut mid-body, whole; `tests/large_upload_memory.rs`: the same with the client's peak RSS measured (+20 MiB up, +1 MiB down) |
//! | `strong_versions` | yes (a new rev per write) | probe; **but** an unconditional write of identical bytes keeps the rev (no new revision): harmless, the content is the same |
//! | `read_after_write` | yes (Dropbox's files endpoints are strongly consistent) | fake only |
//! | `server_clock` | yes (`server_modified`) | fake only |
//! | `change_feed` | `Native`: `list_folder/get_latest_cursor`, then `list_folder/longpoll` (no token sent) and `continue`, honouring `backoff`; an expired cursor (`reset`) is a `Rescan` | `tests/fake.rs` |
//! | `remove_empty_dir` | `Unsupported`: Dropbox has no delete-if-empty, and `delete_v2` of a folder is recursive, so list-then-delete could remove a file written in between | — |
//! | real Dropbox servers | **not verified** (no account or network here) | — |
//!
//! **Retried conditional writes.** After a failure that leaves a write's fate unknown
//! (5xx, a reset), `RetryingStorage` retries and, on `PreconditionFailed`, takes the
//! write as landed when the file holds exactly our bytes. Two clients writing the same
//! bytes from one base would both pass: callers make every conditional write unique
//! (the engine's commits are; the conformance race now tags each write, after its
//! counter behind the flaky proxy ended one short once).
//!
//! ## Sync over Dropbox
//!
//! The engine suite (`tests/engine.rs` with `SYNCFABRIC_TEST_BACKEND=dropbox-fake`)
//! and the never-lose run (`never_lose_data_dropbox_fake_through_flaky_proxy`: five
//! device processes behind the flaky proxy and the fake's own 429s) run over the fake;
//! the run checks that no "(conflicted copy)" file appeared. A conflict copy made by
//! Dropbox's *desktop* client in a synced folder is merged by `sync --merge-copies`.

//! ## Errors and secrets
//!
//! `409` answers are read by their `error_summary` tags: `not_found` → `NotFound`,
//! `conflict` → by mode (above), `insufficient_space` → `QuotaExceeded`,
//! `too_many_write_operations` and `429` → `RateLimited` with `Retry-After` (or the
//! body's `retry_after`), `5xx` → `Transient`. A `401` reports the token to
//! [`BearerAuth::rejected`](syncfabric_core::auth::BearerAuth::rejected) and sends the
//! request once more; a second `401` is `Unauthorized`. The token goes only into the
//! `Authorization` header: never into `Debug`, errors or logs.
//!
//! ## Why our own client and not `dropbox-sdk`
//!
//! `dropbox-sdk` 0.19.1 (its Cargo.toml): `ring = "0.17"` is a plain, non-optional
//! dependency, and both of its default clients use rustls (`reqwest` 0.12 with
//! `rustls-tls`, `ureq` 3 with `rustls`). With `default-features = false` and
//! `dbx_files` + `async_routes` it takes a caller's HTTP client, but `ring` stays,
//! along with 9 other mandatory crates (async-lock, base64, bytes, futures, log,
//! serde, serde_json, thiserror, url) and a large generated API surface. Our rule is
//! one crypto and TLS library, the system OpenSSL; the endpoints used here are ten
//! and their JSON is small. Build time was not measured (no network to fetch it here).
#![deny(missing_docs)]

mod backend;
mod client;
mod config;
pub mod hash;
mod upload;
mod watch;

pub use backend::DropboxStorage;
pub use config::{DropboxConfig, API_URL, CONTENT_URL, MAX_REQUEST_BODY, NOTIFY_URL};

use std::sync::Arc;
use syncfabric_core::registry::{
    Credentials, LoginFlow, LoginSpec, OpenOptions, ProviderFactory, ProviderInfo, Registry,
    StorageUrl,
};
use syncfabric_core::{Error, Result, Storage};

/// The URL schemes this crate opens.
pub const SCHEMES: &[&str] = &["dropbox"];

/// Dropbox's OAuth 2 authorisation page (PKCE "code paste": no redirect URI, the
/// person pastes the code shown).
pub const DROPBOX_AUTHORIZE_URL: &str = "https://www.dropbox.com/oauth2/authorize";
/// Dropbox's OAuth 2 token endpoint.
pub const DROPBOX_TOKEN_URL: &str = "https://api.dropboxapi.com/oauth2/token";

/// Dropbox's token revocation endpoint (an RPC call authorised by the access token
/// it revokes; it also disables the refresh token behind it).
pub const DROPBOX_REVOKE_URL: &str = "https://api.dropboxapi.com/2/auth/token/revoke";

/// Logging in to Dropbox, as data: the PKCE code-paste flow (Dropbox has no device
/// flow, RFC 8628), with offline access for a refresh token. Dropbox scopes are set on
/// the app in its console; none are asked for here. A logout revokes the tokens at
/// [`DROPBOX_REVOKE_URL`].
pub const DROPBOX_LOGIN: LoginSpec = LoginSpec {
    name: "dropbox",
    flow: LoginFlow::CodePaste {
        authorize_url: DROPBOX_AUTHORIZE_URL,
        // "offline": a short-lived access token and a refresh token; without it
        // (the app's default) no refresh token is issued
        // (https://developers.dropbox.com/oauth-guide).
        authorize_params: &[("token_access_type", "offline")],
    },
    token_url: DROPBOX_TOKEN_URL,
    revoke_url: Some(DROPBOX_REVOKE_URL),
    default_tenant: None,
    scopes: &[],
    browser: None,
};

/// Opens `dropbox:` URLs (see [`DropboxConfig::from_url`]) as the account of
/// [`OpenOptions::bearer`], wrapped in core's retrying storage. No bearer:
/// [`Error::Unauthorized`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DropboxFactory;

#[async_trait::async_trait]
impl ProviderFactory for DropboxFactory {
    async fn open(&self, url: &StorageUrl, opts: &OpenOptions) -> Result<Arc<dyn Storage>> {
        let bearer = opts.bearer.clone().ok_or_else(|| Error::Unauthorized {
            message: format!(
                "{}: no logged-in dropbox account was given to act as",
                url.redacted()
            ),
        })?;
        let mut cfg = DropboxConfig::from_storage_url(url)?;
        cfg.retry = opts.retry.clone();
        Ok(Arc::new(DropboxStorage::new(cfg, bearer)?.retrying()))
    }
}

/// Registers [`DropboxFactory`] for [`SCHEMES`].
pub fn register(registry: &Registry) {
    registry.register_provider(
        ProviderInfo {
            schemes: SCHEMES,
            summary: "a Dropbox folder, as a logged-in account",
            example: "dropbox:/Apps/Enpass",
            credentials: Credentials::Login(DROPBOX_LOGIN),
        },
        DropboxFactory,
    );
}
