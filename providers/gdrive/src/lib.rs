//! # syncfabric-gdrive
//!
//! One folder of a Google Drive ("My Drive") as syncfabric [`Storage`], through a
//! small client of our own for the Drive **v2** endpoints it needs, over the
//! project's one `reqwest` (native-tls, the system OpenSSL). Issue #15 is the design.
//!
//! ```no_run
//! # async fn demo(bearer: std::sync::Arc<dyn syncfabric_core::auth::BearerAuth>) -> syncfabric_core::Result<()> {
//! use syncfabric_core::{Body, Precondition, RemotePath, Storage};
//! use syncfabric_gdrive::{GdriveConfig, GdriveStorage};
//! let cfg = GdriveConfig::from_url("gdrive:/Apps/Enpass")?;
//! let drive = GdriveStorage::new(cfg, bearer)?.retrying();
//! let path = RemotePath::parse("vault/vault.json")?;
//! let e = drive.write(&path, Body::from(b"{}".to_vec()), Precondition::IfAbsent).await?;
//! drive.write(&path, Body::from(b"{\"a\":1}".to_vec()), Precondition::IfMatch(e.version.unwrap())).await?;
//! # Ok(()) }
//! ```
//!
//! Drive **v2**, because v2 resources carry an `etag` and v2 enforces `If-Match`
//! (`412`) on update and delete; a file's [`Version`](syncfabric_core::Version) is its
//! etag. Create-if-absent is emulated (create, then the oldest of the title wins), and
//! since names are not unique on Drive, the oldest file of a title is the file
//! everywhere. Errors are read from Google's `reason` (module `error`), then the shared
//! status table of `syncfabric-http`, which also gives the client, the bearer send
//! loop (a 401 refreshes the token once) and `read_range`. The token goes only into
//! the `Authorization` header.
//!
//! The modules: `config`, `backend` (the `Storage` impl), `client` (the requests),
//! `error`, `upload` (resumable sessions), `watch` (the changes feed). Why v2, how
//! each precondition is sent, names and shortcuts, and the capability checklist:
//! `docs.md`.
//!
//! ## Logging in
//!
//! [`GDRIVE_LOGIN`] declares the device flow (RFC 8628) at Google's endpoints with
//! the `drive.file` scope, and a browser login (the loopback flow with PKCE, RFC 8252)
//! with the `drive` scope for a vault another app uploaded. Tested against the OAuth
//! fake across processes, not against Google. Status: `docs.md`.
#![deny(missing_docs)]

mod backend;
mod client;
mod config;
mod error;
mod upload;
mod watch;

pub use backend::GdriveStorage;
pub use config::{GdriveConfig, API_URL, CHUNK_UNIT};

use std::sync::Arc;
use syncfabric_core::registry::{
    BrowserLogin, Credentials, LoginFlow, LoginSpec, OpenOptions, ProviderFactory, ProviderInfo,
    Registry, StorageUrl,
};
use syncfabric_core::{Error, Result, Storage};

/// The URL schemes this crate opens.
pub const SCHEMES: &[&str] = &["gdrive"];

/// Google's device authorisation endpoint (RFC 8628 §3.1).
pub const GOOGLE_DEVICE_URL: &str = "https://oauth2.googleapis.com/device/code";
/// Google's OAuth 2 token endpoint.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's token revocation endpoint.
pub const GOOGLE_REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";

/// Google's authorisation endpoint for installed apps (the loopback login).
pub const GOOGLE_AUTHORIZE_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";

/// Logging in to Google Drive, as data: the device flow, with `drive.file` (only
/// files this app created or opened); and, with `--browser`, the loopback flow with
/// `drive`, to open a vault another app uploaded (Google's device flow refuses that
/// scope). `access_type=offline` asks for a refresh token, as Google's installed-app
/// guide says.
pub const GDRIVE_LOGIN: LoginSpec = LoginSpec {
    name: "gdrive",
    flow: LoginFlow::Device {
        device_authorization_url: GOOGLE_DEVICE_URL,
    },
    token_url: GOOGLE_TOKEN_URL,
    revoke_url: Some(GOOGLE_REVOKE_URL),
    default_tenant: None,
    scopes: &["https://www.googleapis.com/auth/drive.file"],
    browser: Some(BrowserLogin {
        authorize_url: GOOGLE_AUTHORIZE_URL,
        authorize_params: &[("access_type", "offline")],
        scopes: &["https://www.googleapis.com/auth/drive"],
    }),
};

/// Opens `gdrive:` URLs (see [`GdriveConfig::from_url`]) as the account of
/// [`OpenOptions::bearer`], wrapped in core's retrying storage. No bearer:
/// [`Error::Unauthorized`].
#[derive(Clone, Copy, Debug, Default)]
pub struct GdriveFactory;

#[async_trait::async_trait]
impl ProviderFactory for GdriveFactory {
    async fn open(&self, url: &StorageUrl, opts: &OpenOptions) -> Result<Arc<dyn Storage>> {
        let bearer = opts.bearer.clone().ok_or_else(|| Error::Unauthorized {
            message: format!(
                "{}: no logged-in Google account was given to act as",
                url.redacted()
            ),
        })?;
        let mut cfg = GdriveConfig::from_storage_url(url)?;
        cfg.retry = opts.retry.clone();
        Ok(Arc::new(GdriveStorage::new(cfg, bearer)?.retrying()))
    }
}

/// Registers [`GdriveFactory`] for [`SCHEMES`].
pub fn register(registry: &Registry) {
    registry.register_provider(
        ProviderInfo {
            schemes: SCHEMES,
            summary: "a Google Drive folder, as a logged-in account",
            example: "gdrive:/Apps/Enpass",
            credentials: Credentials::Login(GDRIVE_LOGIN),
        },
        GdriveFactory,
    );
}
