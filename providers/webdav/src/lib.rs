#![doc = include_str!("../docs.md")]
#![deny(missing_docs)]

mod backend;
mod client;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzz;
mod lock;
mod pin;
mod read;
mod root;
#[cfg(test)]
mod tests;
mod traits;
mod upload;
mod xml;

pub use backend::WebDavStorage;
pub use config::{Credentials, Profile, Secret, WebDavConfig};
pub use pin::server_certificate;
pub use upload::LARGE_UPLOAD;

use std::sync::Arc;
use syncfabric_core::{Result, Storage};

/// The schemes this provider registers (each also in its `+http` / `+https` form).
pub const SCHEMES: &[&str] = &["webdav", "nextcloud"];

/// The registry factory for `webdav+https://`, `webdav+http://`, `nextcloud+https://`
/// (and `nextcloud+http://`) URLs. Register it under the base schemes:
///
/// ```
/// use syncfabric_core::registry::Registry;
/// let registry = Registry::new();
/// syncfabric_webdav::register(&registry);
/// assert!(registry.schemes().iter().any(|s| s == "webdav"));
/// ```
///
/// The password comes from the URL (`user:pw@host`, discouraged) or, when the
/// [`OpenOptions`](syncfabric_core::registry::OpenOptions) carry a token store, from its
/// entry `webdav:<user>@<host>`. The storage is [`connect`](WebDavStorage::connect)ed
/// (profile probed) and wrapped in
/// [`RetryingStorage`](syncfabric_core::retry::RetryingStorage) with the options' retry
/// policy and one pacer per `host/user`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WebDavFactory;

/// Registers [`WebDavFactory`] for `webdav` and `nextcloud` (and their `+http(s)`
/// forms, through the registry's base-scheme lookup).
pub fn register(registry: &syncfabric_core::registry::Registry) {
    use syncfabric_core::registry::{Credentials, ProviderInfo};
    registry.register_provider(
        ProviderInfo {
            schemes: SCHEMES,
            summary: "a WebDAV server or Nextcloud (its password: $SYNCFABRIC_REMOTE_PASSWORD or a prompt)",
            example: "webdav+https://me@dav.example.com/Enpass",
            credentials: Credentials::Password,
        },
        WebDavFactory,
    );
}

#[async_trait::async_trait]
impl syncfabric_core::registry::ProviderFactory for WebDavFactory {
    async fn open(
        &self,
        url: &syncfabric_core::registry::StorageUrl,
        opts: &syncfabric_core::registry::OpenOptions,
    ) -> Result<Arc<dyn Storage>> {
        let authority = url.authority().unwrap_or("");
        let hostport = authority.rsplit('@').next().unwrap_or("");
        let user = url.username();
        // The registry refuses URLs that hold a password: it comes from the token store.
        let mut password = None;
        if let (Some(tokens), Some(_)) = (&opts.tokens, &user) {
            let key = syncfabric_core::registry::password_key(url);
            password = tokens.get(&key).await?.map(|t| Secret::new(t.expose()));
        }
        // The URL as the registry parsed it: never re-assembled as a string.
        let mut config = WebDavConfig::from_storage_url(url, password)?;
        config.create_root = opts.create_root;
        if opts.staged_writes {
            config.temp_uploads = Some(true);
        }
        let pacer = syncfabric_core::retry::Pacer::for_account(&format!(
            "webdav:{}@{hostport}",
            user.unwrap_or_default()
        ));
        let retrier = syncfabric_core::retry::Retrier::new(opts.retry.clone(), pacer);
        // Connecting is two reads (OPTIONS, PROPFIND): a 503 or a reset there is as
        // transient as anywhere else, so it gets the same retries.
        let dav = retrier
            .run(|| WebDavStorage::connect(config.clone()))
            .await?;
        Ok(Arc::new(syncfabric_core::retry::RetryingStorage::new(
            dav, retrier,
        )))
    }
}
