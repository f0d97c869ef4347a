//! The tokens of one account, and how they are serialised into one [`SecretToken`].

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use syncfabric_core::auth::SecretToken;
use zeroize::Zeroizing;

/// The tokens of one logged-in account: what a [`TokenStore`] keeps, as one secret
/// (JSON: `access_token`, `refresh_token`, `expires_at` in Unix seconds, `scope`,
/// and which app registration and flow issued them: `client_id`, `browser`).
/// `Debug` shows only the expiry, scope and issuer.
///
/// [`TokenStore`]: syncfabric_core::auth::TokenStore
#[derive(Clone)]
pub struct TokenSet {
    /// The bearer token sent with each API request.
    pub access_token: SecretToken,
    /// The refresh token (RFC 6749 §6), if the server gave one.
    pub refresh_token: Option<SecretToken>,
    /// When the access token expires (Unix seconds), if the server said.
    pub expires_at: Option<u64>,
    /// The scopes granted, space-separated, if the server said.
    pub scope: Option<String>,
    /// The client id the tokens were issued to (a refresh must use the same one);
    /// `None` for tokens stored before it was recorded.
    pub client_id: Option<String>,
    /// Whether they came from the provider's browser login (its broader-scoped
    /// loopback flow) rather than its default one: refreshed with that login's
    /// settings.
    pub browser: bool,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    browser: bool,
}

impl Drop for Wire {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.access_token.zeroize();
        if let Some(r) = self.refresh_token.as_mut() {
            r.zeroize();
        }
    }
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .field("browser", &self.browser)
            .finish()
    }
}

/// Seconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

impl TokenSet {
    /// The secret a token store keeps for this account.
    pub fn to_secret(&self) -> SecretToken {
        let wire = Wire {
            access_token: self.access_token.expose().to_string(),
            refresh_token: self.refresh_token.as_ref().map(|r| r.expose().to_string()),
            expires_at: self.expires_at,
            scope: self.scope.clone(),
            client_id: self.client_id.clone(),
            browser: self.browser,
        };
        // Serialising a struct of strings and integers cannot fail.
        let json = Zeroizing::new(serde_json::to_string(&wire).unwrap_or_default());
        SecretToken::new(json.as_str())
    }

    /// Reads a secret written by [`to_secret`](Self::to_secret); `None` if it is not one
    /// (the caller treats that as "log in again").
    pub fn from_secret(secret: &SecretToken) -> Option<TokenSet> {
        let wire: Wire = serde_json::from_str(secret.expose()).ok()?;
        Some(TokenSet {
            access_token: SecretToken::new(wire.access_token.as_str()),
            refresh_token: wire.refresh_token.as_deref().map(SecretToken::new),
            expires_at: wire.expires_at,
            scope: wire.scope.clone(),
            client_id: wire.client_id.clone(),
            browser: wire.browser,
        })
    }

    /// Whether the access token expires within `margin` of `now` (Unix seconds). A
    /// token without a known expiry is treated as valid until the server refuses it.
    pub fn expires_within(&self, now: u64, margin: Duration) -> bool {
        match self.expires_at {
            Some(at) => now.saturating_add(margin.as_secs()) >= at,
            None => false,
        }
    }

    /// Builds a set from an oauth2 token response received at `now` (Unix seconds)
    /// by the app registration `client_id`.
    pub(crate) fn from_response<R>(resp: &R, now: u64, client_id: &str) -> TokenSet
    where
        R: oauth2::TokenResponse,
    {
        TokenSet {
            access_token: SecretToken::new(resp.access_token().secret().as_str()),
            refresh_token: resp
                .refresh_token()
                .map(|r| SecretToken::new(r.secret().as_str())),
            expires_at: resp.expires_in().map(|d| now.saturating_add(d.as_secs())),
            scope: resp
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
            client_id: Some(client_id.to_string()),
            browser: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hides_secrets() {
        let t = TokenSet {
            access_token: SecretToken::new("AT-secret-1"),
            refresh_token: Some(SecretToken::new("RT-secret-2")),
            expires_at: Some(1000),
            scope: Some("a b".into()),
            client_id: Some("app-1".into()),
            browser: true,
        };
        let s = t.to_secret();
        let back = TokenSet::from_secret(&s).unwrap();
        assert_eq!(back.client_id.as_deref(), Some("app-1"));
        assert!(back.browser);
        let old = TokenSet::from_secret(&SecretToken::new(r#"{"access_token":"a"}"#)).unwrap();
        assert!(old.client_id.is_none() && !old.browser);
        assert_eq!(back.access_token.expose(), "AT-secret-1");
        assert_eq!(back.refresh_token.unwrap().expose(), "RT-secret-2");
        assert_eq!(back.expires_at, Some(1000));
        let dbg = format!("{t:?} {s:?}");
        assert!(
            !dbg.contains("secret-1") && !dbg.contains("secret-2"),
            "{dbg}"
        );
        assert!(t.expires_within(950, Duration::from_secs(60)));
        assert!(!t.expires_within(900, Duration::from_secs(60)));
        assert!(TokenSet::from_secret(&SecretToken::new("not json")).is_none());
    }
}
