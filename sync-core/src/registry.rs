//! Opening a storage from a URL: `folder:///mnt/nas/Enpass`, `icloud:`,
//! `webdav+https://alice@host/remote.php/dav/files/alice/Enpass`, `onedrive:/Apps/Enpass`…
//!
//! Core knows no provider (providers depend on core, never the reverse). Each provider
//! crate exposes a factory and registers it under its scheme; the `syncfabric` facade
//! wires the built-in ones into a [`Registry`], and an app can [`Registry::register`]
//! its own factory for its own scheme (or replace a built-in one).
//!
//! Scheme lookup: the exact scheme first (`webdav+https`), then the part before the
//! first `+` (`webdav`), so one factory can serve `webdav+http` and `webdav+https` and
//! read the transport from [`StorageUrl::scheme`].
//!
//! ```
//! # async fn demo(my_storage: std::sync::Arc<dyn syncfabric_core::Storage>) -> syncfabric_core::Result<()> {
//! use syncfabric_core::registry::{OpenOptions, Registry, StorageUrl};
//! let registry = Registry::new();
//! let s = my_storage.clone();
//! registry.register_fn("mine", move |url: StorageUrl, _opts: OpenOptions| {
//!     let s = s.clone();
//!     async move { let _root = url.decoded_path()?; Ok(s) }
//! });
//! let storage = registry.open("mine:/vaults").await?;
//! # Ok(()) }
//! ```

use crate::auth::TokenStore;
use crate::{Error, Result, Storage};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

/// A parsed storage URL: `scheme:rest`, where `rest` is either `//authority/path` or a
/// plain path (possibly empty), each optionally followed by `?query` and `#fragment`.
/// Nothing is percent-decoded until asked ([`decoded_path`](StorageUrl::decoded_path)).
///
/// `Debug` and `Display` hide a password in the authority (`user:secret@host` shows as
/// `user:***@host`).
#[derive(Clone, PartialEq, Eq)]
pub struct StorageUrl {
    raw: String,
    scheme: String,
    authority: Option<String>,
    path: String,
    query: Option<String>,
    fragment: Option<String>,
}

impl StorageUrl {
    /// Parses `s`. The scheme (letters, digits, `+`, `-`, `.`, starting with a letter)
    /// is lower-cased. [`Error::InvalidInput`] when there is no valid scheme.
    pub fn parse(s: &str) -> Result<StorageUrl> {
        let bad = |why: &str| Error::InvalidInput {
            message: format!("storage URL: {why}"),
        };
        let s = s.trim();
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("no scheme (expected e.g. folder:///path)"))?;
        let mut chars = scheme.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(bad("the scheme must be letters, digits, '+', '-' or '.'"));
        }
        if rest.chars().any(|c| c.is_control()) {
            return Err(bad("control characters"));
        }
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f.to_string())),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_string())),
            None => (rest, None),
        };
        let (authority, path) = match rest.strip_prefix("//") {
            Some(after) => match after.find('/') {
                Some(i) => (Some(after[..i].to_string()), after[i..].to_string()),
                None => (Some(after.to_string()), String::new()),
            },
            None => (None, rest.to_string()),
        };
        Ok(StorageUrl {
            raw: s.to_string(),
            scheme: scheme.to_ascii_lowercase(),
            authority,
            path,
            query,
            fragment,
        })
    }

    /// The scheme, lower-cased (`"webdav+https"`).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The part of the scheme before the first `+` (`"webdav"`), or the whole scheme.
    pub fn base_scheme(&self) -> &str {
        self.scheme.split('+').next().unwrap_or(&self.scheme)
    }

    /// The part after the first `+` (`"https"` for `webdav+https`), if any.
    pub fn transport(&self) -> Option<&str> {
        self.scheme.split_once('+').map(|(_, t)| t)
    }

    /// The authority after `//` (`"alice@host:8443"`, `""` for `folder:///x`), or `None`
    /// when the URL has no `//`. Still percent-encoded; may hold a password.
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    /// The host of the authority (without user info and port); `None` without one.
    pub fn host(&self) -> Option<&str> {
        let a = self.authority.as_deref()?;
        let hp = a.rsplit_once('@').map_or(a, |(_, h)| h);
        let host = if hp.starts_with('[') {
            hp.find(']').map_or(hp, |i| &hp[..=i])
        } else {
            hp.rsplit_once(':').map_or(hp, |(h, _)| h)
        };
        (!host.is_empty()).then_some(host)
    }

    /// The port of the authority, if one is given and valid.
    pub fn port(&self) -> Option<u16> {
        let a = self.authority.as_deref()?;
        let hp = a.rsplit_once('@').map_or(a, |(_, h)| h);
        let after = match hp.rfind(']') {
            Some(i) => &hp[i + 1..],
            None => hp,
        };
        after.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
    }

    /// The user name of the authority, percent-decoded, if any.
    pub fn username(&self) -> Option<String> {
        let (user, _) = self.authority.as_deref()?.rsplit_once('@')?;
        let name = user.split(':').next().unwrap_or(user);
        percent_decode(name).ok()
    }

    /// The password of the authority, percent-decoded, if any. Prefer a
    /// [`TokenStore`] to passwords in URLs.
    pub fn password(&self) -> Option<crate::auth::SecretToken> {
        let (user, _) = self.authority.as_deref()?.rsplit_once('@')?;
        let (_, pw) = user.split_once(':')?;
        percent_decode(pw).ok().map(crate::auth::SecretToken::new)
    }

    /// The path as written (`"/mnt/nas/My%20Vault"`, `""` for `icloud:`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path with `%XX` escapes decoded; [`Error::InvalidInput`] for a bad escape or
    /// bytes that are not UTF-8.
    pub fn decoded_path(&self) -> Result<String> {
        percent_decode(&self.path)
    }

    /// The query after `?`, undecoded.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The value of query parameter `key` (first occurrence), percent-decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k).ok()? == key).then(|| percent_decode(&v.replace('+', " ")).ok())?
        })
    }

    /// The fragment after `#`, undecoded.
    pub fn fragment(&self) -> Option<&str> {
        self.fragment.as_deref()
    }

    /// The URL as given, with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self.authority.as_deref().and_then(|a| a.rsplit_once('@')) {
            Some((user, _)) if user.contains(':') => {
                let name = user.split(':').next().unwrap_or("");
                self.raw.replacen(user, &format!("{name}:***"), 1)
            }
            _ => self.raw.clone(),
        }
    }
}

impl std::fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StorageUrl({:?})", self.redacted())
    }
}

impl std::str::FromStr for StorageUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        StorageUrl::parse(s)
    }
}

/// Decodes `%XX` escapes; the result must be UTF-8.
pub fn percent_decode(s: &str) -> Result<String> {
    let bad = || Error::InvalidInput {
        message: format!("bad percent-escape in {s:?}"),
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// What an app passes to every factory besides the URL.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Where cloud providers find and keep their tokens.
    pub tokens: Option<Arc<dyn TokenStore>>,
    /// The logged-in account a cloud provider acts as (see
    /// [`BearerAuth`](crate::auth::BearerAuth)). Cloud factories fail with
    /// `Unauthorized` ("no logged-in account") when it is `None`.
    pub bearer: Option<Arc<dyn crate::auth::BearerAuth>>,
    /// The retry policy providers should use (see [`crate::retry`]).
    pub retry: crate::retry::RetryPolicy,
    /// Create the storage's root folder (and its missing parents) when it is not
    /// there, for a remote being set up; providers where a missing root more likely
    /// means a mistake (an unmounted local folder) ignore it.
    pub create_root: bool,
    /// Every write must leave the file's previous content whole when it breaks off:
    /// providers that can upload to a temporary name and move it into place do so. Set
    /// where the honesty probe measured that a write cut mid-body damaged the file
    /// ([`ProbeReport::atomic_writes`](crate::probe::ProbeReport::atomic_writes));
    /// providers whose writes are already atomic ignore it.
    pub staged_writes: bool,
}

impl OpenOptions {
    /// Options with this token store.
    pub fn with_tokens(mut self, tokens: Arc<dyn TokenStore>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Options acting as this account.
    pub fn with_bearer(mut self, bearer: Arc<dyn crate::auth::BearerAuth>) -> Self {
        self.bearer = Some(bearer);
        self
    }

    /// Options that create a missing root folder (see [`OpenOptions::create_root`]).
    pub fn with_create_root(mut self) -> Self {
        self.create_root = true;
        self
    }

    /// Options that stage every write (see [`OpenOptions::staged_writes`]).
    pub fn with_staged_writes(mut self) -> Self {
        self.staged_writes = true;
        self
    }

    /// Options with this retry policy.
    pub fn with_retry(mut self, retry: crate::retry::RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// Opens storages of one scheme. Providers implement it (or use
/// [`Registry::register_fn`] with a closure).
#[async_trait::async_trait]
pub trait ProviderFactory: Send + Sync {
    /// Opens the storage `url` points at. [`Error::InvalidInput`] for a URL this
    /// provider cannot use; other errors as the provider's connect step returns them.
    async fn open(&self, url: &StorageUrl, opts: &OpenOptions) -> Result<Arc<dyn Storage>>;
}

struct FnFactory<F>(F);

#[async_trait::async_trait]
impl<F, Fut> ProviderFactory for FnFactory<F>
where
    F: Fn(StorageUrl, OpenOptions) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Arc<dyn Storage>>> + Send,
{
    async fn open(&self, url: &StorageUrl, opts: &OpenOptions) -> Result<Arc<dyn Storage>> {
        (self.0)(url.clone(), opts.clone()).await
    }
}

/// What opening a provider's storages takes besides the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing (local folders).
    None,
    /// A password for the URL's user, handed to the provider through
    /// [`OpenOptions::tokens`] under [`password_key`] of the URL.
    Password,
    /// A logged-in account ([`OpenOptions::bearer`]) of the OAuth provider that logs
    /// in as the spec says; its name keys the account's tokens and settings.
    Login(LoginSpec),
}

impl Credentials {
    /// The login the provider needs, if it is an OAuth provider.
    pub fn login(&self) -> Option<&LoginSpec> {
        match self {
            Credentials::Login(spec) => Some(spec),
            _ => None,
        }
    }
}

/// Which OAuth 2 grant a person logs in with, and where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFlow {
    /// The device authorisation grant (RFC 8628): the front end shows a URL and a
    /// code, then polls the token endpoint.
    Device {
        /// The device authorisation endpoint (RFC 8628 §3.1); `{tenant}` stands for
        /// the tenant where the vendor has them.
        device_authorization_url: &'static str,
    },
    /// The authorisation code grant with PKCE (RFC 6749 §4.1, RFC 7636) and no
    /// redirect URI: the person opens the authorisation page, approves, and pastes
    /// the code it shows back into the front end.
    CodePaste {
        /// The authorisation endpoint (RFC 6749 §3.1), with `{tenant}` as above.
        authorize_url: &'static str,
        /// Vendor parameters the authorisation URL carries besides RFC 6749's and
        /// RFC 7636's (e.g. one that asks for a refresh token where the vendor gives
        /// none by default); usually empty.
        authorize_params: &'static [(&'static str, &'static str)],
    },
    /// The authorisation code grant with PKCE for a native app with a loopback
    /// redirect (RFC 8252 §7.3): the front end listens on `127.0.0.1` at a port of its
    /// choosing, the person approves in a browser on the same machine, and the browser
    /// brings the code back to that listener.
    Loopback {
        /// The authorisation endpoint (RFC 6749 §3.1), with `{tenant}` as above.
        authorize_url: &'static str,
        /// Vendor parameters the authorisation URL carries (as for `CodePaste`).
        authorize_params: &'static [(&'static str, &'static str)],
    },
}

/// How to log in to an OAuth provider, as plain data the provider crate declares
/// once: a front end builds its OAuth settings from it, so the login code knows no
/// vendor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginSpec {
    /// The login name (`"onedrive"`): the account keys and the settings' section.
    pub name: &'static str,
    /// The grant a person logs in with.
    pub flow: LoginFlow,
    /// The token endpoint (RFC 6749 §3.2); `{tenant}` stands for the tenant where
    /// the vendor has them.
    pub token_url: &'static str,
    /// Where a logout revokes the account's tokens (a `POST` with the access token
    /// as bearer), if the provider has such an endpoint.
    pub revoke_url: Option<&'static str>,
    /// The tenant used when none is configured (`None`: the URLs have no `{tenant}`).
    pub default_tenant: Option<&'static str>,
    /// The scopes asked for by default, in order.
    pub scopes: &'static [&'static str],
    /// A second way in, for a person who asks for it (`login --browser`): the
    /// loopback login in a browser, with broader scopes than the default flow allows
    /// (Google's device flow cannot ask for all of Drive). `None`: no such login.
    pub browser: Option<BrowserLogin>,
}

/// The browser login a provider may offer beside its default one: the loopback flow
/// (RFC 8252 §7.3) at `authorize_url`, asking for `scopes`; the token and revoke
/// endpoints are the provider's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrowserLogin {
    /// The authorisation endpoint (RFC 6749 §3.1), with `{tenant}` as in [`LoginSpec`].
    pub authorize_url: &'static str,
    /// Vendor parameters of the authorisation URL (as for [`LoginFlow::Loopback`]).
    pub authorize_params: &'static [(&'static str, &'static str)],
    /// The scopes asked for, in order.
    pub scopes: &'static [&'static str],
}

impl LoginSpec {
    /// The provider's browser login as a login of its own (its loopback flow and
    /// scopes, the same name and endpoints), if it offers one.
    pub fn browser_login(&self) -> Option<LoginSpec> {
        self.browser.map(|b| LoginSpec {
            flow: LoginFlow::Loopback {
                authorize_url: b.authorize_url,
                authorize_params: b.authorize_params,
            },
            scopes: b.scopes,
            browser: None,
            ..*self
        })
    }

    /// Whether the provider logs in by the device flow (RFC 8628).
    pub fn has_device_flow(&self) -> bool {
        matches!(self.flow, LoginFlow::Device { .. })
    }

    /// The device authorisation endpoint for `tenant` (else the default tenant);
    /// `None` when the provider logs in otherwise.
    pub fn device_authorization_url(&self, tenant: Option<&str>) -> Option<String> {
        match self.flow {
            LoginFlow::Device {
                device_authorization_url,
            } => Some(self.with_tenant(device_authorization_url, tenant)),
            LoginFlow::CodePaste { .. } | LoginFlow::Loopback { .. } => None,
        }
    }

    /// The authorisation endpoint of a code-paste or loopback login for `tenant`;
    /// `None` for the device flow.
    pub fn authorize_url(&self, tenant: Option<&str>) -> Option<String> {
        match self.flow {
            LoginFlow::CodePaste { authorize_url, .. }
            | LoginFlow::Loopback { authorize_url, .. } => {
                Some(self.with_tenant(authorize_url, tenant))
            }
            LoginFlow::Device { .. } => None,
        }
    }

    /// The vendor parameters of a code-paste or loopback login's authorisation URL
    /// (empty for the device flow).
    pub fn authorize_params(&self) -> &'static [(&'static str, &'static str)] {
        match self.flow {
            LoginFlow::CodePaste {
                authorize_params, ..
            }
            | LoginFlow::Loopback {
                authorize_params, ..
            } => authorize_params,
            LoginFlow::Device { .. } => &[],
        }
    }

    /// The token endpoint for `tenant` (else the default tenant).
    pub fn token_url(&self, tenant: Option<&str>) -> String {
        self.with_tenant(self.token_url, tenant)
    }

    /// The revocation endpoint for `tenant`, if the provider has one.
    pub fn revoke_url(&self, tenant: Option<&str>) -> Option<String> {
        self.revoke_url.map(|u| self.with_tenant(u, tenant))
    }

    fn with_tenant(&self, url: &str, tenant: Option<&str>) -> String {
        match tenant.or(self.default_tenant) {
            Some(t) => url.replace("{tenant}", t),
            None => url.to_string(),
        }
    }
}

/// A provider's description of itself, given once with its factory
/// ([`Registry::register_provider`]): everything a front end needs to offer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Its URL schemes (`webdav`, `nextcloud`, …); a `+tls` suffix such as
    /// `webdav+https` resolves to the base scheme.
    pub schemes: &'static [&'static str],
    /// One line a person reads (`"WebDAV and Nextcloud servers"`).
    pub summary: &'static str,
    /// A URL to show as an example (`"webdav+https://me@host/path"`).
    pub example: &'static str,
    /// What opening it takes.
    pub credentials: Credentials,
}

/// The token-store key under which a URL's password is handed to its provider: the
/// one rule the front end (which stores it) and the provider (which reads it) share.
pub fn password_key(url: &StorageUrl) -> String {
    let hostport = url
        .authority()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("");
    format!(
        "password:{}:{}@{hostport}",
        url.base_scheme(),
        url.username().unwrap_or_default()
    )
}

/// Schemes → factories, and what each provider says of itself. Cheap to share.
#[derive(Default)]
pub struct Registry {
    factories: RwLock<HashMap<String, Arc<dyn ProviderFactory>>>,
    providers: RwLock<Vec<ProviderInfo>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("schemes", &self.schemes())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `factory` for `scheme` (case-insensitive), replacing and returning any
    /// previous one.
    pub fn register(
        &self,
        scheme: &str,
        factory: impl ProviderFactory + 'static,
    ) -> Option<Arc<dyn ProviderFactory>> {
        let mut map = self.factories.write().unwrap_or_else(|p| p.into_inner());
        map.insert(scheme.to_ascii_lowercase(), Arc::new(factory))
    }

    /// Registers an async closure as the factory for `scheme`.
    pub fn register_fn<F, Fut>(&self, scheme: &str, f: F) -> Option<Arc<dyn ProviderFactory>>
    where
        F: Fn(StorageUrl, OpenOptions) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Arc<dyn Storage>>> + Send + 'static,
    {
        self.register(scheme, FnFactory(f))
    }

    /// Registers a provider: `factory` for each of `info.schemes`, and `info` for
    /// [`Registry::providers`] and [`Registry::provider_of`].
    pub fn register_provider(&self, info: ProviderInfo, factory: impl ProviderFactory + 'static) {
        let factory: Arc<dyn ProviderFactory> = Arc::new(factory);
        {
            let mut map = self.factories.write().unwrap_or_else(|p| p.into_inner());
            for scheme in info.schemes {
                map.insert(scheme.to_ascii_lowercase(), factory.clone());
            }
        }
        let mut infos = self.providers.write().unwrap_or_else(|p| p.into_inner());
        infos.retain(|i| i.schemes != info.schemes);
        infos.push(info);
    }

    /// The registered providers' descriptions, in registration order.
    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The description of the provider that opens `url` (`None` for a URL that does
    /// not parse, or a scheme no described provider has).
    pub fn provider_of(&self, url: &str) -> Option<ProviderInfo> {
        let url = StorageUrl::parse(url).ok()?;
        let infos = self.providers.read().unwrap_or_else(|p| p.into_inner());
        let has = |s: &str| infos.iter().find(|i| i.schemes.contains(&s)).cloned();
        has(url.scheme()).or_else(|| has(url.base_scheme()))
    }

    /// The registered schemes, sorted.
    pub fn schemes(&self) -> Vec<String> {
        let map = self.factories.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = map.keys().cloned().collect();
        v.sort();
        v
    }

    fn factory_for(&self, url: &StorageUrl) -> Option<Arc<dyn ProviderFactory>> {
        let map = self.factories.read().unwrap_or_else(|p| p.into_inner());
        map.get(url.scheme())
            .or_else(|| map.get(url.base_scheme()))
            .cloned()
    }

    /// Opens `url` with default options. See [`open_with`](Registry::open_with).
    pub async fn open(&self, url: &str) -> Result<Arc<dyn Storage>> {
        self.open_with(url, &OpenOptions::default()).await
    }

    /// Parses `url` and opens it with the factory of its scheme.
    /// [`Error::InvalidInput`] for a malformed URL, a URL that holds a password (a
    /// URL is stored and shown; passwords come from [`OpenOptions::with_tokens`]), or a
    /// scheme nobody registered (the message lists the known ones).
    pub async fn open_with(&self, url: &str, opts: &OpenOptions) -> Result<Arc<dyn Storage>> {
        self.open_parsed(&StorageUrl::parse(url)?, opts).await
    }

    /// [`open_with`](Registry::open_with) for a URL already parsed: the factory gets
    /// this very `StorageUrl` (a URL is parsed once on its way to a provider).
    pub async fn open_parsed(
        &self,
        url: &StorageUrl,
        opts: &OpenOptions,
    ) -> Result<Arc<dyn Storage>> {
        if url.password().is_some() {
            return Err(Error::InvalidInput {
                message: format!(
                    "{}: the URL holds a password; take it out of the URL and give it separately",
                    url.redacted()
                ),
            });
        }
        let factory = self.factory_for(url).ok_or_else(|| Error::InvalidInput {
            message: format!(
                "no provider for scheme {:?} (known: {})",
                url.scheme(),
                self.schemes().join(", ")
            ),
        })?;
        factory.open(url, opts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store::MemStore;

    #[test]
    fn a_provider_describes_itself_once() {
        let r = Registry::new();
        let info = ProviderInfo {
            schemes: &["mem", "memory"],
            summary: "an in-memory store",
            example: "mem:/x",
            credentials: Credentials::Password,
        };
        let factory = FnFactory(|_: StorageUrl, _: OpenOptions| async {
            Ok(Arc::new(MemStore::new()) as Arc<dyn Storage>)
        });
        r.register_provider(info.clone(), factory);
        assert_eq!(r.schemes(), vec!["mem".to_string(), "memory".to_string()]);
        assert_eq!(r.providers(), vec![info.clone()]);
        assert_eq!(r.provider_of("memory:/y"), Some(info.clone()));
        assert_eq!(r.provider_of("mem+https://u@h/x"), Some(info));
        assert_eq!(r.provider_of("other:/x"), None);
        assert_eq!(r.provider_of("not a url"), None);
        let url = StorageUrl::parse("mem+https://alice@host:8443/x").unwrap();
        assert_eq!(password_key(&url), "password:mem:alice@host:8443");
    }

    #[test]
    fn parses_the_documented_forms() {
        let u = StorageUrl::parse("folder:///mnt/nas/My%20Vault").unwrap();
        assert_eq!(
            (u.scheme(), u.authority(), u.path()),
            ("folder", Some(""), "/mnt/nas/My%20Vault")
        );
        assert_eq!(u.decoded_path().unwrap(), "/mnt/nas/My Vault");
        assert_eq!(u.host(), None);

        let u = StorageUrl::parse("icloud:").unwrap();
        assert_eq!((u.scheme(), u.authority(), u.path()), ("icloud", None, ""));

        let u = StorageUrl::parse("onedrive:/Apps/Enpass").unwrap();
        assert_eq!(
            (u.scheme(), u.authority(), u.path()),
            ("onedrive", None, "/Apps/Enpass")
        );

        let u = StorageUrl::parse(
            "WebDAV+https://u%40x:p%3Ass@host.example:8443/remote.php/dav?v=1&name=a+b#f",
        )
        .unwrap();
        assert_eq!(u.scheme(), "webdav+https");
        assert_eq!(u.base_scheme(), "webdav");
        assert_eq!(u.transport(), Some("https"));
        assert_eq!(u.host(), Some("host.example"));
        assert_eq!(u.port(), Some(8443));
        assert_eq!(u.username().as_deref(), Some("u@x"));
        assert_eq!(u.password().unwrap().expose(), "p:ss");
        assert_eq!(u.path(), "/remote.php/dav");
        assert_eq!(u.query_param("v").as_deref(), Some("1"));
        assert_eq!(u.query_param("name").as_deref(), Some("a b"));
        assert_eq!(u.fragment(), Some("f"));
        assert!(!format!("{u} {u:?}").contains("p%3Ass"));

        let u = StorageUrl::parse("webdav+http://[::1]:8080/dav").unwrap();
        assert_eq!((u.host(), u.port()), (Some("[::1]"), Some(8080)));

        assert!(StorageUrl::parse("no scheme here").is_err());
        assert!(StorageUrl::parse("1abc:/x").is_err());
        assert!(StorageUrl::parse("/just/a/path").is_err());
        assert!(StorageUrl::parse("folder:///%zz")
            .unwrap()
            .decoded_path()
            .is_err());
        assert!(StorageUrl::parse("folder:///%ff")
            .unwrap()
            .decoded_path()
            .is_err());
    }

    #[tokio::test]
    async fn opens_by_scheme_and_falls_back_to_base_scheme() {
        let reg = Registry::new();
        let a: Arc<dyn Storage> = Arc::new(MemStore::new());
        let b: Arc<dyn Storage> = Arc::new(MemStore::new());
        let (a2, b2) = (a.clone(), b.clone());
        reg.register_fn("webdav", move |url, _| {
            let a = a2.clone();
            async move {
                match url.transport() {
                    Some("https") | Some("http") => Ok(a),
                    _ => Err(Error::InvalidInput {
                        message: "webdav needs +http(s)".into(),
                    }),
                }
            }
        });
        reg.register_fn("folder", move |_, _| {
            let b = b2.clone();
            async move { Ok(b) }
        });
        assert_eq!(reg.schemes(), vec!["folder", "webdav"]);
        let got = reg.open("webdav+https://h/x").await.unwrap();
        assert!(Arc::ptr_eq(&got, &a));
        let got = reg.open("FOLDER:///tmp/x").await.unwrap();
        assert!(Arc::ptr_eq(&got, &b));
        assert!(matches!(
            reg.open("webdav://h/x").await,
            Err(Error::InvalidInput { .. })
        ));
        match reg.open("gdrive:/Enpass").await {
            Err(Error::InvalidInput { message }) => {
                assert!(message.contains("folder, webdav"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        // An app replaces a factory with its own.
        let c: Arc<dyn Storage> = Arc::new(MemStore::new());
        let c2 = c.clone();
        assert!(reg
            .register_fn("folder", move |_, _| {
                let c = c2.clone();
                async move { Ok(c) }
            })
            .is_some());
        assert!(Arc::ptr_eq(&reg.open("folder:///x").await.unwrap(), &c));
    }

    #[tokio::test]
    async fn options_reach_the_factory() {
        use crate::auth::{MemoryTokenStore, SecretToken};
        let reg = Registry::new();
        reg.register_fn("cloud", |url, opts: OpenOptions| async move {
            let tokens = opts.tokens.ok_or(Error::Unauthorized {
                message: "no token store".into(),
            })?;
            match tokens.get(url.path()).await? {
                Some(_) => Ok(Arc::new(MemStore::new()) as Arc<dyn Storage>),
                None => Err(Error::Unauthorized {
                    message: "log in".into(),
                }),
            }
        });
        assert!(matches!(
            reg.open("cloud:acct").await,
            Err(Error::Unauthorized { .. })
        ));
        let store = MemoryTokenStore::new();
        store.put("acct", SecretToken::new("t")).await.unwrap();
        let opts = OpenOptions::default().with_tokens(Arc::new(store));
        assert!(reg.open_with("cloud:acct", &opts).await.is_ok());
    }
}
