//! The authorisation code grant with PKCE (RFC 6749 §4.1, RFC 7636) and no redirect
//! URI: the person opens a URL, approves, and pastes back the code the page shows.

use crate::device::{map_basic_error, token_client, TokenClient};
use crate::http::HttpAdapter;
use crate::tokens::{unix_now, TokenSet};
use crate::{AuthError, OAuthConfig, Result};
use oauth2::{AuthorizationCode, PkceCodeVerifier};
use std::sync::Arc;
use syncfabric_core::auth::TokenStore;
use zeroize::Zeroizing;

/// The longest code accepted from the person (real ones are well under 100 chars).
pub const MAX_CODE_LEN: usize = 512;

/// Base64url without padding (RFC 4648 §5, as RFC 7636 §3 defines `BASE64URL`).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// The S256 code challenge of `verifier` (RFC 7636 §4.2):
/// `BASE64URL(SHA256(ASCII(verifier)))`.
pub fn pkce_challenge(verifier: &str) -> String {
    base64url(&openssl::sha::sha256(verifier.as_bytes()))
}

/// A fresh code verifier (RFC 7636 §4.1): 48 bytes from OpenSSL's CSPRNG as
/// base64url, 64 characters of the unreserved set.
pub(crate) fn new_verifier() -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0u8; 48]);
    openssl::rand::rand_bytes(bytes.as_mut()).map_err(|e| AuthError::Config {
        message: format!("no randomness for the PKCE verifier: {e}"),
    })?;
    Ok(Zeroizing::new(base64url(bytes.as_ref())))
}

/// The code as the person pasted it, trimmed; [`AuthError::Config`] unless it is
/// 1 to [`MAX_CODE_LEN`] printable ASCII characters (no spaces inside).
fn clean_code(pasted: &str) -> Result<&str> {
    let code = pasted.trim();
    if code.is_empty() {
        return Err(AuthError::Config {
            message: "no code was pasted: copy the code the sign-in page shows".into(),
        });
    }
    if code.len() > MAX_CODE_LEN || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::Config {
            message: format!(
                "that is not a sign-in code (at most {MAX_CODE_LEN} printable ASCII \
                 characters, no spaces): copy the code the sign-in page shows"
            ),
        });
    }
    Ok(code)
}

/// The token client of a flow that starts at an authorisation page (code paste,
/// loopback): [`AuthError::Config`] when `config` has no valid authorisation URL.
pub(crate) fn authorize_client(config: &OAuthConfig) -> Result<TokenClient> {
    if config.authorize_url.is_empty() {
        return Err(AuthError::Config {
            message: format!(
                "{} has no authorisation URL: it logs in by another flow",
                config.provider
            ),
        });
    }
    oauth2::url::Url::parse(&config.authorize_url).map_err(|e| AuthError::Config {
        message: format!("{}: {e}", config.authorize_url),
    })?;
    token_client(config)
}

/// The authorisation URL of a PKCE login (RFC 6749 §4.1.1, RFC 7636 §4.3): the client,
/// `response_type=code`, `extra` (a loopback login's `redirect_uri` and `state`), the
/// S256 challenge of `verifier`, the provider's own parameters, the scopes if any.
pub(crate) fn authorize_url(
    config: &OAuthConfig,
    verifier: &str,
    extra: &[(&str, &str)],
) -> Result<String> {
    let mut url =
        oauth2::url::Url::parse(&config.authorize_url).map_err(|e| AuthError::Config {
            message: format!("{}: {e}", config.authorize_url),
        })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", &config.client_id)
            .append_pair("response_type", "code");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        q.append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        for (k, v) in &config.authorize_params {
            q.append_pair(k, v);
        }
        if !config.scopes.is_empty() {
            q.append_pair("scope", &config.scopes.join(" "));
        }
    }
    Ok(url.to_string())
}

/// A started code-paste login: show the person its
/// [`authorize_url`](Self::authorize_url), then [`CodePasteFlow::finish`] it with the
/// code they paste. Holds the PKCE verifier (a secret; not shown by `Debug`).
pub struct PendingCodeLogin {
    verifier: Zeroizing<String>,
    authorize_url: String,
}

impl PendingCodeLogin {
    /// The page the person opens to approve (it carries the challenge, not the
    /// verifier: it is safe to show and to log).
    pub fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// The text a CLI prints before asking for the code.
    pub fn instructions(&self) -> String {
        format!(
            "To sign in, open this page, approve the access, and copy the code it shows:\n{}",
            self.authorize_url
        )
    }
}

impl std::fmt::Debug for PendingCodeLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCodeLogin")
            .field("authorize_url", &self.authorize_url)
            .field("verifier", &"<redacted>")
            .finish()
    }
}

/// Logs an account in with the authorisation code grant and PKCE (RFC 7636), for a
/// provider without a device flow: [`start`](Self::start) makes a verifier and the
/// authorisation URL (`client_id`, `response_type=code`, the S256 `code_challenge`,
/// the provider's own [`authorize_params`](OAuthConfig::authorize_params), the
/// scopes if any; no `redirect_uri`, so the page shows the code), and
/// [`finish`](Self::finish) exchanges the pasted code with the verifier at the token
/// endpoint. A public client: no secret is sent.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn syncfabric_core::auth::TokenStore>, spec: syncfabric_core::registry::LoginSpec) -> syncfabric_auth::Result<()> {
/// use syncfabric_auth::{CodePasteFlow, OAuthConfig};
/// // `spec`: what the provider declares (`syncfabric_dropbox::DROPBOX_LOGIN`).
/// let flow = CodePasteFlow::new(OAuthConfig::from_login(&spec, "my-app-key", None))?;
/// let pending = flow.start()?;
/// println!("{}", pending.instructions());
/// let mut code = String::new();
/// std::io::stdin().read_line(&mut code).ok();
/// let tokens = flow.finish(pending, &code).await?;
/// flow.store(store.as_ref(), "alice", &tokens).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CodePasteFlow {
    config: OAuthConfig,
    client: Arc<TokenClient>,
    http: HttpAdapter,
}

impl CodePasteFlow {
    /// A flow for `config` over a default [`HttpAdapter`]. [`AuthError::Config`] for
    /// an invalid configuration or one without an authorisation URL.
    pub fn new(config: OAuthConfig) -> Result<CodePasteFlow> {
        Self::with_http(config, HttpAdapter::new()?)
    }

    /// A flow for `config` over `http`.
    pub fn with_http(config: OAuthConfig, http: HttpAdapter) -> Result<CodePasteFlow> {
        let client = Arc::new(authorize_client(&config)?);
        Ok(CodePasteFlow {
            config,
            client,
            http,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// Makes a fresh verifier and the URL the person opens (no network).
    pub fn start(&self) -> Result<PendingCodeLogin> {
        let verifier = new_verifier()?;
        let url = authorize_url(&self.config, &verifier, &[])?;
        tracing::info!(provider = %self.config.provider, "code-paste login started");
        Ok(PendingCodeLogin {
            verifier,
            authorize_url: url,
        })
    }

    /// Exchanges the code the person pasted (trimmed; checked to be printable ASCII
    /// of at most [`MAX_CODE_LEN`] characters) and the verifier for tokens
    /// (RFC 6749 §4.1.3, RFC 7636 §4.5). Returns them (not stored: see
    /// [`store`](Self::store)). A wrong, expired or reused code is
    /// [`AuthError::Server`] `invalid_grant`.
    pub async fn finish(&self, pending: PendingCodeLogin, pasted_code: &str) -> Result<TokenSet> {
        let code = clean_code(pasted_code)?;
        let resp = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(map_basic_error)?;
        let tokens = TokenSet::from_response(&resp, unix_now(), &self.config.client_id);
        tracing::info!(provider = %self.config.provider, expires_at = ?tokens.expires_at,
            refresh = tokens.refresh_token.is_some(), "code-paste login approved");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        // Appendix B: the 32 octets, their base64url (the verifier), its challenge.
        let octets = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        assert_eq!(
            base64url(&octets),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        // RFC 4648 §10, without padding.
        let cases = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (raw, enc) in cases {
            assert_eq!(base64url(raw.as_bytes()), enc);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn verifiers_are_64_unreserved_chars_and_fresh() {
        let a = new_verifier().unwrap();
        let b = new_verifier().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c)));
        assert_ne!(*a, *b);
    }

    #[test]
    fn pasted_codes_are_trimmed_and_checked() {
        assert_eq!(clean_code("  abc-DEF_123\r\n").unwrap(), "abc-DEF_123");
        for bad in [
            "",
            "   ",
            "a b",
            "abc\u{7f}",
            "é",
            &"x".repeat(MAX_CODE_LEN + 1),
        ] {
            assert!(clean_code(bad).is_err(), "{bad:?}");
        }
        assert!(clean_code(&"x".repeat(MAX_CODE_LEN)).is_ok());
    }

    #[test]
    fn the_url_carries_the_challenge_and_debug_hides_the_verifier() {
        let config = OAuthConfig {
            provider: "box".into(),
            authorize_url: "https://box.example/oauth2/authorize".into(),
            token_url: "https://api.box.example/oauth2/token".into(),
            client_id: "app key".into(),
            authorize_params: vec![("token_access_type".into(), "offline".into())],
            ..Default::default()
        };
        let flow = CodePasteFlow::new(config).unwrap();
        let p = flow.start().unwrap();
        let url = oauth2::url::Url::parse(p.authorize_url()).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "app key");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["token_access_type"], "offline");
        assert_eq!(q["code_challenge"], pkce_challenge(&p.verifier));
        assert!(!q.contains_key("redirect_uri") && !q.contains_key("scope"));
        let dbg = format!("{p:?}");
        assert!(!dbg.contains(p.verifier.as_str()) && dbg.contains("<redacted>"));
    }
}
