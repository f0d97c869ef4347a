//! Revoking a login at the provider (a logout): a `POST` to the revoke URL the
//! provider declares, authorised by the access token it revokes, with no body — the
//! shape of Dropbox's `auth/token/revoke`, which also disables the refresh token
//! behind that access token.

use crate::bearer::OAuthBearer;
use crate::http::HttpAdapter;
use crate::{AuthError, OAuthConfig, Result};
use syncfabric_core::auth::SecretToken;
use zeroize::Zeroizing;

/// What [`OAuthBearer::revoke`] found at the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// The provider accepted the revocation: the login's tokens no longer work.
    Revoked,
    /// The provider no longer accepted the login (its refresh token was refused, or
    /// it had none and its access token expired): nothing was left to revoke.
    AlreadyInvalid,
}

/// Revokes `access_token` (and, where the server does so, the refresh token behind
/// it) at `config`'s revoke URL: a `POST` with `Authorization: Bearer` and no body.
/// [`AuthError::Config`] when the provider declares no revoke URL;
/// [`AuthError::Server`] when the server refuses (an error status), with its status
/// only (the answer is not echoed); [`AuthError::Transport`] when it cannot be
/// reached. [`OAuthBearer::revoke`] is the usual way: it refreshes an expired token
/// first.
pub async fn revoke(config: &OAuthConfig, access_token: &SecretToken) -> Result<()> {
    revoke_with_http(config, access_token, &HttpAdapter::new()?).await
}

/// As [`revoke`], over `http`.
pub async fn revoke_with_http(
    config: &OAuthConfig,
    access_token: &SecretToken,
    http: &HttpAdapter,
) -> Result<()> {
    match send(config, access_token, http).await? {
        Answer::Revoked => Ok(()),
        Answer::TokenRefused => Err(refused(401)),
    }
}

enum Answer {
    Revoked,
    /// `401`: the provider does not accept this access token (expired or revoked).
    TokenRefused,
}

fn refused(status: u16) -> AuthError {
    AuthError::Server {
        error: format!("revocation refused (HTTP {status})"),
        description: None,
    }
}

/// One revocation request; `401` is [`Answer::TokenRefused`], another error
/// status [`AuthError::Server`].
async fn send(
    config: &OAuthConfig,
    access_token: &SecretToken,
    http: &HttpAdapter,
) -> Result<Answer> {
    config.validate()?;
    let Some(url) = config.revoke_url.as_deref().filter(|u| !u.is_empty()) else {
        return Err(AuthError::Config {
            message: format!("{} has no token revocation endpoint", config.provider),
        });
    };
    let auth = Zeroizing::new(format!("Bearer {}", access_token.expose()));
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(url)
        .header(http::header::AUTHORIZATION, auth.as_str())
        .body(Vec::new())
        .map_err(|e| AuthError::Config {
            message: format!("{url}: {e}"),
        })?;
    let resp = http.send(request).await.map_err(|e| AuthError::Transport {
        message: e.to_string(),
    })?;
    let status = resp.status();
    if status == http::StatusCode::UNAUTHORIZED {
        return Ok(Answer::TokenRefused);
    }
    if !status.is_success() {
        return Err(refused(status.as_u16()));
    }
    tracing::info!(provider = %config.provider, "tokens revoked");
    Ok(Answer::Revoked)
}

impl OAuthBearer {
    /// Revokes this login at the provider's revoke URL (a logout), with its access
    /// token — refreshed first when it expires within
    /// [`REFRESH_MARGIN`](crate::REFRESH_MARGIN). When the provider refuses that
    /// token (`401`: revoked or invalidated before its expiry), refreshes once and
    /// tries again. A refresh the provider refuses (`invalid_grant`) means the login
    /// was already dead: [`Revocation::AlreadyInvalid`]. The stored tokens are not
    /// deleted (the caller does that, whatever this returns).
    ///
    /// [`AuthError::Config`] when the provider declares no revoke URL,
    /// [`AuthError::LoginRequired`] when the account has no (readable) tokens,
    /// [`AuthError::Transport`] when the provider cannot be reached.
    pub async fn revoke(&self) -> Result<Revocation> {
        let config = self.config();
        if config.revoke_url.as_deref().is_none_or(str::is_empty) {
            return Err(AuthError::Config {
                message: format!("{} has no token revocation endpoint", config.provider),
            });
        }
        self.tokens().await?;
        let token = match self.fresh_access_token().await {
            Ok(t) => t,
            Err(AuthError::LoginRequired { .. }) => return Ok(Revocation::AlreadyInvalid),
            Err(e) => return Err(e),
        };
        if let Answer::Revoked = send(config, &token, self.http()).await? {
            return Ok(Revocation::Revoked);
        }
        tracing::debug!(account = %self.account_key(), "the access token was refused: refreshing once to revoke");
        let token = match self.refresh_now().await {
            Ok(t) => t.access_token,
            Err(AuthError::LoginRequired { .. }) => return Ok(Revocation::AlreadyInvalid),
            Err(e) => return Err(e),
        };
        match send(config, &token, self.http()).await? {
            Answer::Revoked => Ok(Revocation::Revoked),
            // A token refreshed a moment ago, refused: not a dead login, a refusal.
            Answer::TokenRefused => Err(refused(401)),
        }
    }
}
