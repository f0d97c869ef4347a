//! Login for syncfabric's cloud providers: the OAuth 2 device authorisation grant
//! (RFC 8628), the authorisation code grant with PKCE and a pasted code (RFC 7636),
//! token refresh (RFC 6749 §6), revocation at logout, and an encrypted token file.
//!
//! A person logs an account in once, by the flow the provider declares:
//! - [`DeviceFlow`] (OneDrive, SharePoint): it shows a URL and a code, then polls
//!   until the person approved;
//! - [`CodePasteFlow`] (Dropbox, which has no device flow): it shows an authorisation
//!   URL carrying an S256 `code_challenge`; the person approves there and pastes back
//!   the code the page shows, which is exchanged with the verifier. No redirect URI,
//!   no client secret;
//! - [`LoopbackFlow`] (RFC 8252 §7.3, for a provider whose wider access needs a
//!   browser: Google Drive beyond its app folder): it listens on `127.0.0.1` at a port
//!   the system picks, sends the browser to the authorisation page with that address
//!   as the `redirect_uri` and a random `state`, takes the one redirect carrying that
//!   state (others are answered 404 and ignored), and exchanges the code with the
//!   verifier and the same `redirect_uri`. A provider whose installed-app clients have
//!   a non-confidential "client secret" (Google's) gets it through
//!   [`OAuthConfig::client_secret`].
//!
//! The tokens go into a [`TokenStore`](syncfabric_core::auth::TokenStore) —
//! [`EncryptedFileTokenStore`] in the CLI — as one secret per account key
//! (`<login name>:<account>`). The auth code knows no vendor: a provider declares its
//! flow, endpoints and scopes as a [`LoginSpec`](syncfabric_core::registry::LoginSpec)
//! and [`OAuthConfig::from_login`] builds the settings from it. Later, in any process,
//! [`OAuthBearer`] reads them back, refreshes the access token before it expires
//! (keeping a rotated refresh token), and hands it to a provider as its
//! [`BearerAuth`](syncfabric_core::auth::BearerAuth). At logout,
//! [`OAuthBearer::revoke`] ends the tokens at the provider when it declares a revoke
//! URL (refreshing first, and once more if the provider refuses the access token).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use syncfabric_auth::{CodePasteFlow, DeviceFlow, EncryptedFileTokenStore, OAuthBearer, OAuthConfig};
//! use syncfabric_core::auth::{BearerAuth, SecretToken};
//! use syncfabric_core::registry::{LoginFlow, LoginSpec};
//! let store = Arc::new(EncryptedFileTokenStore::open("tokens.enc", &SecretToken::new("passphrase"))?);
//! // What a provider crate declares (the OneDrive crate's `ONEDRIVE_LOGIN`, say):
//! let spec = LoginSpec {
//!     name: "acme",
//!     flow: LoginFlow::Device { device_authorization_url: "https://login.acme.example/device" },
//!     token_url: "https://login.acme.example/token",
//!     revoke_url: None,
//!     default_tenant: None,
//!     scopes: &["offline_access", "files"],
//!     browser: None,
//! };
//! let config = OAuthConfig::from_login(&spec, "my-app-client-id", None);
//! let flow = DeviceFlow::new(config.clone())?;
//! let pending = flow.start().await?;
//! println!("{}", pending.prompt().instructions()); // URL + code for the person
//! let tokens = flow.finish(pending).await?;
//! flow.store(store.as_ref(), "alice", &tokens).await?;
//!
//! // A provider with `LoginFlow::CodePaste { .. }` (Dropbox) instead:
//! # let paste_config = config.clone();
//! let flow = CodePasteFlow::new(paste_config)?;
//! let pending = flow.start()?;
//! println!("{}", pending.instructions()); // the URL to open
//! let code = "the code the page showed, pasted by the person";
//! let tokens = flow.finish(pending, code).await?;
//! flow.store(store.as_ref(), "bob", &tokens).await?;
//!
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
//! them ([`TokenSet`], [`PendingLogin`], [`PendingCodeLogin`], the stores) print `<redacted>` in `Debug`.
#![deny(missing_docs)]

mod bearer;
mod code_paste;
mod config;
mod device;
mod error;
pub mod file_store;
mod http;
mod loopback;
mod revoke;
mod tokens;

pub use bearer::{OAuthBearer, REFRESH_MARGIN};
pub use code_paste::{pkce_challenge, CodePasteFlow, PendingCodeLogin, MAX_CODE_LEN};
pub use config::OAuthConfig;
pub use device::{DeviceFlow, DevicePrompt, PendingLogin};
pub use error::{AuthError, Result};
pub use file_store::{EncryptedFileTokenStore, KdfParams};
pub use http::{HttpAdapter, HttpError};
pub use loopback::{LoopbackFlow, PendingLoopbackLogin};
pub use revoke::{revoke, revoke_with_http, Revocation};
pub use tokens::{unix_now, TokenSet};
