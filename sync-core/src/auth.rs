//! Credentials for cloud providers: the [`TokenStore`] they keep tokens in, and the
//! redacting [`SecretToken`] those tokens travel in.
//!
//! A provider stores one opaque secret per account (typically its own serialisation
//! of an access token, refresh token and expiry) under an account key it chooses
//! (e.g. `"onedrive:<user id>"`). Where the secret rests is the app's choice: the OS
//! keyring or an encrypted file in production (later), [`MemoryTokenStore`] in tests.
//! Never plaintext on disk, never in logs: `SecretToken`'s `Debug` prints no content,
//! it has no `Display`, and its memory is wiped when dropped.
//!
//! ```
//! # async fn demo() -> syncfabric_core::Result<()> {
//! use syncfabric_core::auth::{MemoryTokenStore, SecretToken, TokenStore};
//! let store = MemoryTokenStore::new();
//! store.put("onedrive:alice", SecretToken::new("refresh-token-value")).await?;
//! let t = store.get("onedrive:alice").await?.expect("stored");
//! assert_eq!(t.expose(), "refresh-token-value");
//! assert_eq!(format!("{t:?}"), "SecretToken(<redacted>)");
//! # Ok(()) }
//! ```

use crate::Result;
use std::collections::HashMap;
use zeroize::Zeroizing;

/// A secret string (token, password) that never shows itself: `Debug` prints
/// `SecretToken(<redacted>)`, there is no `Display`, and the bytes are zeroed on drop.
/// Read it only where it is sent, with [`expose`](SecretToken::expose).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(Zeroizing<String>);

impl SecretToken {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretToken(Zeroizing::new(secret.into()))
    }

    /// The secret itself. Do not log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

impl From<String> for SecretToken {
    fn from(s: String) -> Self {
        SecretToken::new(s)
    }
}

/// Where a provider keeps its tokens, one secret per account key. Implementations
/// must be safe to share between tasks and must never log the secrets.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// The secret of `account`, or `Ok(None)` if none is stored.
    async fn get(&self, account: &str) -> Result<Option<SecretToken>>;

    /// Stores `token` for `account`, replacing any previous one.
    async fn put(&self, account: &str, token: SecretToken) -> Result<()>;

    /// Forgets the secret of `account` (log out). Succeeds if there was none.
    async fn delete(&self, account: &str) -> Result<()>;
}

/// Gives a cloud provider the bearer token of one logged-in account, fresh at the time
/// of asking. An OAuth implementation refreshes the access token before it expires
/// and keeps the refreshed tokens in its [`TokenStore`]; a provider never sees the
/// refresh token.
///
/// The protocol a provider follows for each request: call [`bearer`](Self::bearer),
/// send the request with `Authorization: Bearer <token>`; if the server answers 401,
/// call [`rejected`](Self::rejected) with that token and try once more with a new
/// `bearer()`. A second 401 is [`Error::Unauthorized`](crate::Error::Unauthorized).
#[async_trait::async_trait]
pub trait BearerAuth: Send + Sync + std::fmt::Debug {
    /// A token that is valid now (refreshed first if it expires within a minute).
    /// [`Error::Unauthorized`](crate::Error::Unauthorized) with a message telling the
    /// person to log in again when the account has no usable refresh token (never
    /// logged in, logged out, or the server revoked it).
    async fn bearer(&self) -> Result<SecretToken>;

    /// The server refused `token` (HTTP 401): the next [`bearer`](Self::bearer) must
    /// not return it again (it refreshes). Errors as for `bearer` when a refresh is
    /// impossible.
    async fn rejected(&self, token: &SecretToken) -> Result<()>;
}

/// A [`BearerAuth`] that always hands out the same token: for tests and for tokens
/// that an outside tool manages. [`rejected`](BearerAuth::rejected) fails with
/// `Unauthorized`, since it cannot get a new one.
#[derive(Clone)]
pub struct StaticBearer(SecretToken);

impl StaticBearer {
    /// Hands out `token`.
    pub fn new(token: SecretToken) -> Self {
        StaticBearer(token)
    }
}

impl std::fmt::Debug for StaticBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticBearer(<redacted>)")
    }
}

#[async_trait::async_trait]
impl BearerAuth for StaticBearer {
    async fn bearer(&self) -> Result<SecretToken> {
        Ok(self.0.clone())
    }
    async fn rejected(&self, _token: &SecretToken) -> Result<()> {
        Err(crate::Error::Unauthorized {
            message: "the server refused the fixed token".into(),
        })
    }
}

/// A [`TokenStore`] in memory, for tests and for apps that log in every run.
/// Clones share the same map.
#[derive(Clone, Default)]
pub struct MemoryTokenStore {
    map: std::sync::Arc<std::sync::Mutex<HashMap<String, SecretToken>>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SecretToken>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut accounts: Vec<String> = self.lock().keys().cloned().collect();
        accounts.sort();
        f.debug_struct("MemoryTokenStore")
            .field("accounts", &accounts)
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenStore for MemoryTokenStore {
    async fn get(&self, account: &str) -> Result<Option<SecretToken>> {
        Ok(self.lock().get(account).cloned())
    }
    async fn put(&self, account: &str, token: SecretToken) -> Result<()> {
        self.lock().insert(account.to_string(), token);
        Ok(())
    }
    async fn delete(&self, account: &str) -> Result<()> {
        self.lock().remove(account);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_round_trips_per_account() {
        let s = MemoryTokenStore::new();
        assert!(s.get("a").await.unwrap().is_none());
        s.put("a", SecretToken::new("one")).await.unwrap();
        s.put("b", SecretToken::new("two")).await.unwrap();
        s.put("a", SecretToken::new("three")).await.unwrap();
        let shared = s.clone();
        assert_eq!(shared.get("a").await.unwrap().unwrap().expose(), "three");
        assert_eq!(s.get("b").await.unwrap().unwrap().expose(), "two");
        s.delete("a").await.unwrap();
        s.delete("a").await.unwrap();
        assert!(s.get("a").await.unwrap().is_none());
        assert!(s.get("b").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn secrets_never_show_in_debug() {
        let t = SecretToken::new("hunter2-super-secret");
        assert!(!format!("{t:?}").contains("hunter2"));
        let s = MemoryTokenStore::new();
        s.put("acct", t).await.unwrap();
        let dbg = format!("{s:?}");
        assert!(dbg.contains("acct") && !dbg.contains("hunter2"), "{dbg}");
    }
}
