//! The OAuth 2 device authorisation grant (RFC 8628) over the `oauth2` crate.

use crate::http::{HttpAdapter, HttpError};
use crate::tokens::{unix_now, TokenSet};
use crate::{AuthError, OAuthConfig, Result};
use oauth2::basic::{BasicClient, BasicErrorResponse};
use oauth2::{
    ClientId, DeviceAuthorizationUrl, DeviceCodeErrorResponse, DeviceCodeErrorResponseType,
    EndpointNotSet, EndpointSet, RequestTokenError, Scope, StandardDeviceAuthorizationResponse,
    TokenUrl,
};
use std::sync::Arc;
use std::time::Duration;
use syncfabric_core::auth::TokenStore;

/// The oauth2 client with only the token endpoint set: refresh and code exchange.
pub(crate) type TokenClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The oauth2 client with the device-authorisation and token endpoints set.
pub(crate) type Client =
    BasicClient<EndpointNotSet, EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn bad_url(what: &str, e: oauth2::url::ParseError) -> AuthError {
    AuthError::Config {
        message: format!("{what}: {e}"),
    }
}

/// The client that talks to `config`'s token endpoint (after checking `config`).
pub(crate) fn token_client(config: &OAuthConfig) -> Result<TokenClient> {
    config.validate()?;
    let client = BasicClient::new(ClientId::new(config.client_id.clone())).set_token_uri(
        TokenUrl::new(config.token_url.clone()).map_err(|e| bad_url(&config.token_url, e))?,
    );
    Ok(match &config.client_secret {
        // In the form, as Google's token endpoint documents it (not HTTP Basic).
        Some(s) => client
            .set_client_secret(oauth2::ClientSecret::new(s.clone()))
            .set_auth_type(oauth2::AuthType::RequestBody),
        None => client,
    })
}

fn build_client(config: &OAuthConfig) -> Result<Client> {
    if config.device_authorization_url.is_empty() {
        return Err(AuthError::Config {
            message: format!(
                "{} has no device authorisation endpoint: it logs in by another flow",
                config.provider
            ),
        });
    }
    Ok(token_client(config)?.set_device_authorization_url(
        DeviceAuthorizationUrl::new(config.device_authorization_url.clone())
            .map_err(|e| bad_url(&config.device_authorization_url, e))?,
    ))
}

/// What the person must see to approve a device login (RFC 8628 §3.2/§3.3): open
/// [`verification_uri`](Self::verification_uri) and type [`user_code`](Self::user_code)
/// — or open [`verification_uri_complete`](Self::verification_uri_complete), which
/// carries the code, when the server gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePrompt {
    /// Where to go.
    pub verification_uri: String,
    /// The code to type there (shown to the person on purpose; short-lived).
    pub user_code: String,
    /// The URI with the code already in it, if the server gave one (RFC 8628 §3.3.1).
    pub verification_uri_complete: Option<String>,
    /// How long the code is valid.
    pub expires_in: Duration,
    /// How long the client waits between polls, as the server asked (5 s if it did
    /// not say, RFC 8628 §3.2).
    pub interval: Duration,
}

impl DevicePrompt {
    /// The text a CLI prints: where to go and which code to enter.
    pub fn instructions(&self) -> String {
        let mut s = format!(
            "To sign in, open {} and enter the code {}",
            self.verification_uri, self.user_code
        );
        if let Some(c) = &self.verification_uri_complete {
            s.push_str(&format!("\n(or open {c} , which carries the code)"));
        }
        s.push_str(&format!(
            "\nThe code expires in {} minutes.",
            self.expires_in.as_secs().div_ceil(60)
        ));
        s
    }
}

/// A started device login: show its [`prompt`](Self::prompt) to the person, then
/// [`DeviceFlow::finish`] it. Holds the device code (a secret; not shown by `Debug`).
pub struct PendingLogin {
    details: StandardDeviceAuthorizationResponse,
    prompt: DevicePrompt,
}

impl PendingLogin {
    /// What the person must see.
    pub fn prompt(&self) -> &DevicePrompt {
        &self.prompt
    }
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("prompt", &self.prompt)
            .field("device_code", &"<redacted>")
            .finish()
    }
}

/// Logs an account in with the device authorisation grant (RFC 8628):
/// [`start`](Self::start) asks the device authorisation endpoint for a code,
/// [`finish`](Self::finish) polls the token endpoint at the interval the server asked
/// (5 s more after each `slow_down`, §3.5) until the person approved, refused
/// ([`AuthError::Denied`]) or let the code expire ([`AuthError::Expired`]).
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn syncfabric_core::auth::TokenStore>, spec: syncfabric_core::registry::LoginSpec) -> syncfabric_auth::Result<()> {
/// use syncfabric_auth::{DeviceFlow, OAuthConfig};
/// // `spec`: what the provider declares (`syncfabric_onedrive::ONEDRIVE_LOGIN`).
/// let flow = DeviceFlow::new(OAuthConfig::from_login(&spec, "my-client-id", None))?;
/// let pending = flow.start().await?;
/// println!("{}", pending.prompt().instructions());
/// let tokens = flow.finish(pending).await?;
/// flow.store(store.as_ref(), "alice", &tokens).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DeviceFlow {
    config: OAuthConfig,
    client: Arc<Client>,
    http: HttpAdapter,
}

impl DeviceFlow {
    /// A flow for `config` over a default [`HttpAdapter`]. [`AuthError::Config`] for
    /// an invalid configuration (see [`OAuthConfig::validate`]).
    pub fn new(config: OAuthConfig) -> Result<DeviceFlow> {
        Self::with_http(config, HttpAdapter::new()?)
    }

    /// A flow for `config` over `http`.
    pub fn with_http(config: OAuthConfig, http: HttpAdapter) -> Result<DeviceFlow> {
        let client = Arc::new(build_client(&config)?);
        Ok(DeviceFlow {
            config,
            client,
            http,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// Asks the device authorisation endpoint for a device code and a user code
    /// (RFC 8628 §3.1–3.2) for the configured scopes.
    pub async fn start(&self) -> Result<PendingLogin> {
        let scopes = self.config.scopes.iter().map(|s| Scope::new(s.clone()));
        let details: StandardDeviceAuthorizationResponse = self
            .client
            .exchange_device_code()
            .add_scopes(scopes)
            .request_async(&self.http)
            .await
            .map_err(map_basic_error)?;
        let prompt = DevicePrompt {
            verification_uri: details.verification_uri().to_string(),
            user_code: details.user_code().secret().clone(),
            verification_uri_complete: details
                .verification_uri_complete()
                .map(|u| u.secret().clone()),
            expires_in: details.expires_in(),
            interval: details.interval(),
        };
        tracing::info!(
            provider = %self.config.provider,
            interval_s = prompt.interval.as_secs(),
            expires_in_s = prompt.expires_in.as_secs(),
            "device login started"
        );
        Ok(PendingLogin { details, prompt })
    }

    /// Polls the token endpoint (RFC 8628 §3.4) until the person acted: at the
    /// interval the server asked, plus 5 s for this and every later poll after a
    /// `slow_down` (§3.5); on a transport error the interval doubles (at most 10 s).
    /// Gives up when the code's lifetime has passed. Returns the tokens (not stored:
    /// see [`store`](Self::store)).
    pub async fn finish(&self, pending: PendingLogin) -> Result<TokenSet> {
        let provider = self.config.provider.clone();
        let sleep = move |d: Duration| {
            tracing::debug!(provider = %provider, wait_s = d.as_secs_f64(), "waiting before the next poll");
            tokio::time::sleep(d)
        };
        let resp = self
            .client
            .exchange_device_access_token(&pending.details)
            .request_async(&self.http, sleep, None)
            .await
            .map_err(map_device_error)?;
        let tokens = TokenSet::from_response(&resp, unix_now(), &self.config.client_id);
        tracing::info!(provider = %self.config.provider, expires_at = ?tokens.expires_at,
            refresh = tokens.refresh_token.is_some(), "device login approved");
        Ok(tokens)
    }

    /// Stores `tokens` as account `name` (key [`OAuthConfig::account_key`]) in `store`.
    pub async fn store(&self, store: &dyn TokenStore, name: &str, tokens: &TokenSet) -> Result<()> {
        store
            .put(&self.config.account_key(name), tokens.to_secret())
            .await?;
        Ok(())
    }
}

/// Maps a token-endpoint failure with RFC 6749 §5.2 error bodies.
pub(crate) fn map_basic_error(e: RequestTokenError<HttpError, BasicErrorResponse>) -> AuthError {
    match e {
        RequestTokenError::ServerResponse(r) => AuthError::Server {
            error: r.error().to_string(),
            description: r.error_description().cloned(),
        },
        other => transport(other),
    }
}

fn map_device_error(e: RequestTokenError<HttpError, DeviceCodeErrorResponse>) -> AuthError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            DeviceCodeErrorResponseType::ExpiredToken => AuthError::Expired,
            DeviceCodeErrorResponseType::AccessDenied => AuthError::Denied,
            other => AuthError::Server {
                error: other.to_string(),
                description: r.error_description().cloned(),
            },
        },
        other => transport(other),
    }
}

/// A failure that is not an OAuth error body. The raw body of an unparsable answer is
/// never included (it may hold tokens).
fn transport<T: oauth2::ErrorResponse + 'static>(e: RequestTokenError<HttpError, T>) -> AuthError {
    let message = match e {
        RequestTokenError::Request(e) => e.to_string(),
        RequestTokenError::Parse(e, body) => format!(
            "the answer ({} bytes) is not the JSON OAuth 2 describes: {}",
            body.len(),
            e.path()
        ),
        RequestTokenError::Other(s) => s,
        RequestTokenError::ServerResponse(_) => "error answer".to_string(),
    };
    AuthError::Transport { message }
}
