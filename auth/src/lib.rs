//! Login for syncfabric's cloud providers: the OAuth 2 device authorisation grant
//! (RFC 8628), token refresh (RFC 6749 §6), and an encrypted token file.
//!
//! A person logs an account in once with [`DeviceFlow`] (it shows a URL and a code,
//! then polls until they approved); the tokens go into a
//! [`TokenStore`](syncfabric_core::auth::TokenStore) — [`EncryptedFileTokenStore`] in
//! the CLI — as one secret per account key (`<login name>:<account>`). The auth code
//! knows no vendor: a provider declares its endpoints and scopes as a
//! [`LoginSpec`](syncfabric_core::registry::LoginSpec) and [`OAuthConfig::from_login`]
//! builds the settings from it. Later, in any process,
//! [`OAuthBearer`] reads them back, refreshes the access token before it expires,
//! and hands it to a provider as its [`BearerAuth`](syncfabric_core::auth::BearerAuth).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use syncfabric_auth::{DeviceFlow, EncryptedFileTokenStore, OAuthBearer, OAuthConfig};
//! use syncfabric_core::auth::{BearerAuth, SecretToken};
//! let store = Arc::new(EncryptedFileTokenStore::open("tokens.enc", &SecretToken::new("passphrase"))?);
//! // What a provider crate declares (the OneDrive crate's `ONEDRIVE_LOGIN`, say):
//! let spec = syncfabric_core::registry::LoginSpec {
//!     name: "acme",
//!     device_authorization_url: "https://login.acme.example/device",
//!     token_url: "https://login.acme.example/token",
//!     default_tenant: None,
//!     scopes: &["offline_access", "files"],
//! };
//! let config = OAuthConfig::from_login(&spec, "my-app-client-id", None);
//! let flow = DeviceFlow::new(config.clone())?;
//! let pending = flow.start().await?;
//! println!("{}", pending.prompt().instructions()); // URL + code for the person
//! let tokens = flow.finish(pending).await?;
//! flow.store(store.as_ref(), "alice", &tokens).await?;
//! let bearer = OAuthBearer::new(config, store, "alice")?; // later, any process
//! let _access = bearer.bearer().await?;
//! # Ok(()) }
//! ```
//!
//! **OS keyring: not used (decision).** On Linux the `keyring` crate's persistent
//! backend is the Secret Service over D-Bus (zbus: a large build on a 2-core machine,
//! and it needs a desktop session that servers and CI lack); its kernel-keyutils
//! backend builds small but forgets everything at reboot, so it cannot hold a refresh
//! token. The encrypted file is therefore the one store on every platform for now;
//! a macOS Keychain / Windows Credential Manager store can be added behind
//! [`TokenStore`](syncfabric_core::auth::TokenStore) without touching the callers.
//!
//! Nothing here logs or formats a token, a passphrase or a key: the types that hold
//! them ([`TokenSet`], [`PendingLogin`], the stores) print `<redacted>` in `Debug`.
#![deny(missing_docs)]

mod bearer;
mod config;
mod device;
mod error;
pub mod file_store;
mod http;
mod tokens;

pub use bearer::{OAuthBearer, REFRESH_MARGIN};
pub use config::OAuthConfig;
pub use device::{DeviceFlow, DevicePrompt, PendingLogin};
pub use error::{AuthError, Result};
pub use file_store::{EncryptedFileTokenStore, KdfParams};
pub use http::{HttpAdapter, HttpError};
pub use tokens::{unix_now, TokenSet};
