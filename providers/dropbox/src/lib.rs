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
//! Every write carries `autorename: false` and `strict_conflict: true`; `IfMatch(rev)`
//! is Dropbox's `update` mode, `IfAbsent` its `add` mode, a conditional delete
//! `parent_rev`. Every upload and download is checked against Dropbox's
//! `content_hash`. Errors are read from `error_summary` (module `error`), then the
//! shared status table of `syncfabric-http`, which also gives the client, the bearer
//! send loop (a 401 refreshes the token once) and `read_range`. The token goes only
//! into the `Authorization` header.
//!
//! The modules: `config`, `backend` (the `Storage` impl), `client` (the typed
//! requests), `error`, `upload` (sessions), `watch` (longpoll), `hash`
//! (`content_hash`). How each precondition is sent, the capability checklist with
//! where each claim is shown, sync over Dropbox, and why not `dropbox-sdk`: `docs.md`.
//!
//! ## Logging in
//!
//! [`DROPBOX_LOGIN`] declares the PKCE code-paste flow (Dropbox has no device flow):
//! the person opens the authorisation URL, approves, and pastes the code shown;
//! `syncfabric_auth::CodePasteFlow` exchanges it, `OAuthBearer` refreshes it, and a
//! logout revokes it at [`DROPBOX_REVOKE_URL`]. Status and usage: `docs.md`.
#![deny(missing_docs)]

mod backend;
mod client;
mod config;
mod error;
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
