//! [`OAuthBearer`]: fresh access tokens for one logged-in account.

use crate::device::{map_basic_error, token_client, TokenClient};
use crate::http::HttpAdapter;
use crate::tokens::{unix_now, TokenSet};
use crate::{AuthError, OAuthConfig, Result};
use oauth2::{RefreshToken, Scope};
use std::sync::Arc;
use std::time::Duration;
use syncfabric_core::auth::{BearerAuth, SecretToken, TokenStore};

/// How long before its expiry an access token is refreshed.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The [`BearerAuth`] of one account logged in with [`DeviceFlow`](crate::DeviceFlow):
/// reads the account's [`TokenSet`] from a [`TokenStore`], refreshes the access token
/// (RFC 6749 §6) when it expires within [`REFRESH_MARGIN`] or the server refused it,
/// and stores the new tokens (a rotated refresh token replaces the old one; a
/// response without one keeps the old one).
///
/// Concurrent callers share one refresh: the state sits behind an async mutex, so the
/// first caller refreshes and the others then see its fresh token (single-flight).
/// A refresh token the server no longer accepts (`invalid_grant`), or an account with
/// no tokens, is [`Error::Unauthorized`](syncfabric_core::Error::Unauthorized) with a
/// message naming the login and account to log in again. Clones share state.
#[derive(Clone)]
pub struct OAuthBearer {
    inner: Arc<Inner>,
}

struct Inner {
    config: OAuthConfig,
    client: TokenClient,
    http: HttpAdapter,
    store: Arc<dyn TokenStore>,
    name: String,
    key: String,
    state: tokio::sync::Mutex<Option<TokenSet>>,
}

impl std::fmt::Debug for OAuthBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthBearer")
            .field("account", &self.inner.key)
            .field("token_url", &self.inner.config.token_url)
            .finish_non_exhaustive()
    }
}

impl OAuthBearer {
    /// The bearer of account `name` (stored under [`OAuthConfig::account_key`]) of
    /// `config`'s provider, over a default [`HttpAdapter`]. Nothing is read until the
    /// first [`bearer`](BearerAuth::bearer).
    pub fn new(config: OAuthConfig, store: Arc<dyn TokenStore>, name: &str) -> Result<Self> {
        Self::with_http(config, store, name, HttpAdapter::new()?)
    }

    /// As [`new`](Self::new), over `http`.
    pub fn with_http(
        config: OAuthConfig,
        store: Arc<dyn TokenStore>,
        name: &str,
        http: HttpAdapter,
    ) -> Result<Self> {
        let client = token_client(&config)?;
        let key = config.account_key(name);
        Ok(OAuthBearer {
            inner: Arc::new(Inner {
                config,
                client,
                http,
                store,
                name: name.to_string(),
                key,
                state: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The account key (`"onedrive:alice"`).
    pub fn account_key(&self) -> &str {
        &self.inner.key
    }

    /// The settings this bearer refreshes with.
    pub fn config(&self) -> &OAuthConfig {
        &self.inner.config
    }

    pub(crate) fn http(&self) -> &HttpAdapter {
        &self.inner.http
    }

    /// The access token, refreshed first if it expires within [`REFRESH_MARGIN`]
    /// (what [`BearerAuth::bearer`] hands out, with this crate's error type).
    pub async fn fresh_access_token(&self) -> Result<SecretToken> {
        self.bearer_inner().await
    }

    /// The tokens as last read or refreshed (loads them from the store first).
    /// [`AuthError::LoginRequired`] when the account has none.
    pub async fn tokens(&self) -> Result<TokenSet> {
        let mut state = self.inner.state.lock().await;
        Ok(self.inner.loaded(&mut state).await?.clone())
    }

    /// Refreshes now, whatever the expiry, and returns the new tokens.
    pub async fn refresh_now(&self) -> Result<TokenSet> {
        let mut state = self.inner.state.lock().await;
        let current = self.inner.loaded(&mut state).await?.clone();
        let fresh = self.inner.refresh(&current).await?;
        *state = Some(fresh.clone());
        Ok(fresh)
    }

    async fn bearer_inner(&self) -> Result<SecretToken> {
        let mut state = self.inner.state.lock().await;
        let current = self.inner.loaded(&mut state).await?.clone();
        if !current.expires_within(unix_now(), REFRESH_MARGIN) {
            return Ok(current.access_token);
        }
        tracing::debug!(account = %self.inner.key, "access token expires soon: refreshing");
        let fresh = self.inner.refresh(&current).await?;
        let token = fresh.access_token.clone();
        *state = Some(fresh);
        Ok(token)
    }

    async fn rejected_inner(&self, token: &SecretToken) -> Result<()> {
        let mut state = self.inner.state.lock().await;
        let current = self.inner.loaded(&mut state).await?.clone();
        if current.access_token != *token {
            // Someone refreshed since `token` was handed out: nothing to do.
            return Ok(());
        }
        tracing::debug!(account = %self.inner.key, "server refused the access token: refreshing");
        let fresh = self.inner.refresh(&current).await?;
        *state = Some(fresh);
        Ok(())
    }
}

impl Inner {
    fn login_again(&self, why: &str) -> AuthError {
        AuthError::LoginRequired {
            provider: self.config.provider.clone(),
            account: self.name.clone(),
            why: why.to_string(),
        }
    }

    async fn loaded<'a>(&self, state: &'a mut Option<TokenSet>) -> Result<&'a TokenSet> {
        if state.is_none() {
            let secret = self.store.get(&self.key).await?;
            let set = match secret {
                None => return Err(self.login_again(&format!("{} is not logged in", self.key))),
                Some(s) => TokenSet::from_secret(&s).ok_or_else(|| {
                    self.login_again(&format!("the stored sign-in of {} is unreadable", self.key))
                })?,
            };
            if set
                .client_id
                .as_ref()
                .is_some_and(|id| *id != self.config.client_id)
            {
                // A refresh with another client would be refused (invalid_grant) or,
                // worse, be taken as another app's; say so instead.
                return Err(self.login_again(&format!(
                    "the sign-in of {} was made with another app registration (client id) \
                     than the one configured now",
                    self.key
                )));
            }
            *state = Some(set);
        }
        state.as_ref().ok_or_else(|| self.login_again("no tokens"))
    }

    /// One refresh-token grant (RFC 6749 §6); stores and returns the new set.
    async fn refresh(&self, current: &TokenSet) -> Result<TokenSet> {
        // Another process (or bearer) sharing the store may have refreshed already, and
        // a rotated refresh token makes ours invalid: prefer what the store holds now.
        let stored = self
            .store
            .get(&self.key)
            .await?
            .and_then(|s| TokenSet::from_secret(&s));
        let current = match stored {
            Some(s) if s.access_token != current.access_token => {
                if !s.expires_within(unix_now(), REFRESH_MARGIN) {
                    tracing::debug!(account = %self.key, "the store holds newer tokens: using them");
                    return Ok(s);
                }
                s
            }
            _ => current.clone(),
        };
        let current = &current;
        let Some(rt) = current.refresh_token.as_ref() else {
            return Err(self.login_again(&format!(
                "the sign-in of {} has no refresh token and its access token expired",
                self.key
            )));
        };
        let rt = RefreshToken::new(rt.expose().to_string());
        let resp = self
            .client
            .exchange_refresh_token(&rt)
            .add_scopes(self.config.scopes.iter().map(|s| Scope::new(s.clone())))
            .request_async(&self.http)
            .await
            .map_err(map_basic_error)
            .map_err(|e| match e {
                AuthError::Server { error, .. } if error == "invalid_grant" => self.login_again(
                    &format!("the sign-in of {} was revoked or has expired", self.key),
                ),
                e => e,
            })?;
        let mut fresh = TokenSet::from_response(&resp, unix_now(), &self.config.client_id);
        let rotated = fresh.refresh_token.is_some();
        if !rotated {
            fresh.refresh_token = current.refresh_token.clone();
        }
        if fresh.scope.is_none() {
            fresh.scope = current.scope.clone();
        }
        fresh.browser = current.browser;
        self.store.put(&self.key, fresh.to_secret()).await?;
        tracing::info!(account = %self.key, rotated, expires_at = ?fresh.expires_at, "access token refreshed");
        Ok(fresh)
    }
}

#[async_trait::async_trait]
impl BearerAuth for OAuthBearer {
    async fn bearer(&self) -> syncfabric_core::Result<SecretToken> {
        Ok(self.bearer_inner().await?)
    }

    async fn rejected(&self, token: &SecretToken) -> syncfabric_core::Result<()> {
        Ok(self.rejected_inner(token).await?)
    }
}
