//! # syncfabric-onedrive
//!
//! OneDrive (personal and for Business) and SharePoint document libraries as
//! syncfabric [`Storage`], through a small typed Microsoft Graph client of our own over
//! the shared HTTP client (`syncfabric-http`). One folder of one drive behaves as a
//! dumb drive with strong versions and truthful compare-and-swap: a file's
//! [`Version`](syncfabric_core::Version) is its Graph `eTag`, sent back as `If-Match`.
//! Large files go up in resumable upload sessions streamed from disk; `watch` follows
//! the drive's `delta` feed.
//!
//! ```no_run
//! # async fn demo(bearer: std::sync::Arc<dyn syncfabric_core::auth::BearerAuth>) -> syncfabric_core::Result<()> {
//! use syncfabric_core::{Body, Precondition, RemotePath, Storage};
//! use syncfabric_onedrive::{OneDriveConfig, OneDriveStorage};
//! let cfg = OneDriveConfig::from_url("onedrive:/Apps/Enpass")?;
//! let drive = OneDriveStorage::new(cfg, bearer)?.retrying(); // shared pacer + retries
//! let path = RemotePath::parse("vault/vault.json")?;
//! let first = drive.write(&path, Body::from(b"{}".to_vec()), Precondition::IfAbsent).await?;
//! let v = first.version.clone().expect("files have versions");
//! drive.write(&path, Body::from(b"{\"a\":1}".to_vec()), Precondition::IfMatch(v)).await?;
//! # Ok(()) }
//! ```
//!
//! From a registry, [`register`] adds the [`SCHEMES`] `onedrive` (`onedrive:/path`,
//! `onedrive:approot/path`) and `sharepoint` (`sharepoint://host/sites/Team/Documents/path`);
//! the account comes from [`OpenOptions::bearer`](syncfabric_core::registry::OpenOptions)
//! (none: `Unauthorized`, "no logged-in account"). `?graph_url=http://127.0.0.1:PORT/v1.0`
//! points a storage at a fake (https, or http on loopback only).
//!
//! The modules: `config` (URLs and settings), `backend` (the `Storage` impl),
//! `client` (Graph types, URLs, requests), `error` (Graph's error answers), `upload`
//! (simple uploads and upload sessions), `watch` (the delta feed), `names` (names
//! OneDrive refuses, stored with full-width substitutes). How each precondition is
//! sent, the capability checklist with what was measured, and what has not met a
//! real Microsoft server: `docs.md`.
//!
//! Tokens are only ever placed in the `Authorization` header of Graph requests (never
//! on upload or download URLs, which are pre-authenticated), never in `Debug`, errors
//! or logs; a 401 refreshes the token once, a second one is `Unauthorized`.
#![deny(missing_docs)]

mod backend;
mod client;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzz;
mod names;
mod upload;
mod watch;

pub use backend::OneDriveStorage;
pub use config::{Location, OneDriveConfig, FRAGMENT_UNIT, GRAPH_URL, SIMPLE_UPLOAD_MAX};

use std::sync::Arc;
use syncfabric_core::{Error, Result, Storage};

/// The URL schemes this crate opens.
pub const SCHEMES: &[&str] = &["onedrive", "sharepoint"];

/// Opens `onedrive:` and `sharepoint:` URLs (see [`OneDriveConfig::from_url`]) as the
/// account of [`OpenOptions::bearer`](syncfabric_core::registry::OpenOptions), wrapped
/// in [`RetryingStorage`](syncfabric_core::retry::RetryingStorage) with the options' retry policy and the Graph endpoint's
/// shared pacer. No bearer: [`Error::Unauthorized`] ("no logged-in account").
#[derive(Clone, Copy, Debug, Default)]
pub struct OneDriveFactory;

/// The Microsoft identity platform v2.0 endpoints, per tenant (`common`,
/// `organizations`, `consumers` or a tenant id).
const MICROSOFT_DEVICE_URL: &str =
    "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode";
const MICROSOFT_TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";

/// Logging in to OneDrive (personal and business, the `common` tenant): read/write the
/// person's files (which includes the app folder) and a refresh token
/// (`offline_access`). Narrow the scopes to `offline_access Files.ReadWrite.AppFolder`
/// in the settings when the vault lives in the app folder.
pub const ONEDRIVE_LOGIN: syncfabric_core::registry::LoginSpec =
    syncfabric_core::registry::LoginSpec {
        name: "onedrive",
        flow: syncfabric_core::registry::LoginFlow::Device {
            device_authorization_url: MICROSOFT_DEVICE_URL,
        },
        token_url: MICROSOFT_TOKEN_URL,
        // Microsoft's identity platform has no token revocation endpoint for these.
        revoke_url: None,
        default_tenant: Some("common"),
        scopes: &["offline_access", "Files.ReadWrite"],
        browser: None,
    };

/// Logging in to SharePoint document libraries: the `organizations` tenant
/// (SharePoint needs a work or school account), with the sites scopes.
pub const SHAREPOINT_LOGIN: syncfabric_core::registry::LoginSpec =
    syncfabric_core::registry::LoginSpec {
        name: "sharepoint",
        flow: syncfabric_core::registry::LoginFlow::Device {
            device_authorization_url: MICROSOFT_DEVICE_URL,
        },
        token_url: MICROSOFT_TOKEN_URL,
        // Microsoft's identity platform has no token revocation endpoint for these.
        revoke_url: None,
        default_tenant: Some("organizations"),
        scopes: &[
            "offline_access",
            "Files.ReadWrite.All",
            "Sites.ReadWrite.All",
        ],
        browser: None,
    };

/// Registers [`OneDriveFactory`] for the schemes `onedrive` and `sharepoint`.
pub fn register(registry: &syncfabric_core::registry::Registry) {
    use syncfabric_core::registry::{Credentials, ProviderInfo};
    registry.register_provider(
        ProviderInfo {
            schemes: &SCHEMES[..1],
            summary: "OneDrive, personal or for Business, as a logged-in account",
            example: "onedrive:/Apps/Enpass",
            credentials: Credentials::Login(ONEDRIVE_LOGIN),
        },
        OneDriveFactory,
    );
    registry.register_provider(
        ProviderInfo {
            schemes: &SCHEMES[1..],
            summary: "a SharePoint document library, as a logged-in work account",
            example: "sharepoint://contoso.sharepoint.com/sites/Team/Shared%20Documents/Enpass",
            credentials: Credentials::Login(SHAREPOINT_LOGIN),
        },
        OneDriveFactory,
    );
}

#[async_trait::async_trait]
impl syncfabric_core::registry::ProviderFactory for OneDriveFactory {
    async fn open(
        &self,
        url: &syncfabric_core::registry::StorageUrl,
        opts: &syncfabric_core::registry::OpenOptions,
    ) -> Result<Arc<dyn Storage>> {
        let bearer = opts.bearer.clone().ok_or_else(|| Error::Unauthorized {
            message: format!(
                "{}: no logged-in {} account was given to act as",
                url.redacted(),
                url.base_scheme()
            ),
        })?;
        let mut cfg = OneDriveConfig::from_storage_url(url)?;
        cfg.retry = opts.retry.clone();
        Ok(Arc::new(OneDriveStorage::new(cfg, bearer)?.retrying()))
    }
}
