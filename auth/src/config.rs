//! Where to log in: endpoints, client id and scopes of one provider.

use crate::{AuthError, Result};
use syncfabric_core::registry::LoginSpec;

/// How to log in to one provider — with the OAuth 2 device authorisation grant
/// (RFC 8628, [`DeviceFlow`](crate::DeviceFlow)) or the PKCE code-paste grant
/// (RFC 7636, [`CodePasteFlow`](crate::CodePasteFlow)) — refresh its tokens
/// (RFC 6749 §6) and revoke them. Every field can be overridden (the CLI reads its
/// config file and environment), so tests point it at a fake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OAuthConfig {
    /// The provider name used in messages and account keys (`"onedrive"`).
    pub provider: String,
    /// The device authorisation endpoint (RFC 8628 §3.1); empty when the provider
    /// logs in by another flow.
    pub device_authorization_url: String,
    /// The authorisation endpoint of a code-paste login (RFC 6749 §3.1); empty when
    /// the provider logs in by another flow.
    pub authorize_url: String,
    /// Vendor parameters the authorisation URL of a code-paste login carries besides
    /// the standard ones (see `LoginFlow::CodePaste`).
    pub authorize_params: Vec<(String, String)>,
    /// Where [`revoke`](crate::revoke) sends a logout, if the provider has one.
    pub revoke_url: Option<String>,
    /// The token endpoint (RFC 6749 §3.2).
    pub token_url: String,
    /// The public client id of the app registration (no secret: a device-flow client
    /// cannot keep one).
    pub client_id: String,
    /// The "client secret" of an installed-app registration whose token endpoint asks
    /// for one although it cannot be kept secret (Google's desktop clients); sent with
    /// every token request when set. Not a credential of the person: it ships with the
    /// app's configuration.
    pub client_secret: Option<String>,
    /// The scopes asked for, in order.
    pub scopes: Vec<String>,
}

impl OAuthConfig {
    /// The settings `spec` declares (its default scopes), for the app `client_id`
    /// and `tenant` (else the spec's default tenant).
    pub fn from_login(spec: &LoginSpec, client_id: &str, tenant: Option<&str>) -> Self {
        OAuthConfig {
            provider: spec.name.to_string(),
            device_authorization_url: spec.device_authorization_url(tenant).unwrap_or_default(),
            authorize_url: spec.authorize_url(tenant).unwrap_or_default(),
            authorize_params: spec
                .authorize_params()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            revoke_url: spec.revoke_url(tenant),
            token_url: spec.token_url(tenant),
            client_id: client_id.to_string(),
            client_secret: None,
            scopes: spec.scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The account key under which `name`'s tokens are stored: `"<provider>:<name>"`.
    pub fn account_key(&self, name: &str) -> String {
        format!("{}:{name}", self.provider)
    }

    /// Checks the fields: non-empty client id, a token URL, absolute `http(s)` URLs
    /// (the empty ones are the flows the provider does not use). Plain `http` is
    /// allowed only for loopback hosts (tests).
    pub fn validate(&self) -> Result<()> {
        if self.client_id.trim().is_empty() {
            return Err(AuthError::Config {
                message: format!(
                    "no client id for {}: register an app that allows public client flows and \
                     set its id (config `[oauth.{0}] client_id`, or $SYNCFABRIC_{1}_CLIENT_ID)",
                    self.provider,
                    self.provider.to_ascii_uppercase()
                ),
            });
        }
        let urls = [
            &self.device_authorization_url,
            &self.authorize_url,
            &self.token_url,
        ];
        let revoke = self.revoke_url.iter();
        for url in urls.into_iter().chain(revoke) {
            if url.is_empty() && *url != self.token_url {
                continue;
            }
            let ok = url.starts_with("https://")
                || url.starts_with("http://127.0.0.1")
                || url.starts_with("http://localhost")
                || url.starts_with("http://[::1]");
            if !ok {
                return Err(AuthError::Config {
                    message: format!(
                        "{url}: an OAuth endpoint must be https:// (http only on loopback)"
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: LoginSpec = LoginSpec {
        name: "acme",
        flow: syncfabric_core::registry::LoginFlow::Device {
            device_authorization_url: "https://login.acme.example/{tenant}/device",
        },
        token_url: "https://login.acme.example/{tenant}/token",
        revoke_url: None,
        default_tenant: Some("common"),
        scopes: &["offline_access", "files"],
        browser: None,
    };

    #[test]
    fn settings_from_a_login_spec_and_validation() {
        let c = OAuthConfig::from_login(&SPEC, "abc", None);
        assert_eq!(
            c.device_authorization_url,
            "https://login.acme.example/common/device"
        );
        assert_eq!(c.token_url, "https://login.acme.example/common/token");
        assert_eq!(c.scopes, ["offline_access", "files"]);
        assert_eq!(c.account_key("alice"), "acme:alice");
        c.validate().unwrap();
        let t = OAuthConfig::from_login(&SPEC, "abc", Some("contoso"));
        assert!(t.token_url.contains("/contoso/"));

        assert!(matches!(
            OAuthConfig::from_login(&SPEC, " ", None).validate(),
            Err(AuthError::Config { .. })
        ));
        let mut bad = c.clone();
        bad.token_url = "http://evil.example/token".into();
        assert!(bad.validate().is_err());
        bad.token_url = "http://127.0.0.1:9/token".into();
        bad.validate().unwrap();
        bad.revoke_url = Some("http://evil.example/revoke".into());
        assert!(bad.validate().is_err(), "the revoke URL is checked too");
        bad.revoke_url = None;
        bad.token_url = String::new();
        assert!(bad.validate().is_err(), "a token URL is needed");
    }

    #[test]
    fn code_paste_settings() {
        const PASTE: LoginSpec = LoginSpec {
            name: "box",
            flow: syncfabric_core::registry::LoginFlow::CodePaste {
                authorize_url: "https://box.example/authorize",
                authorize_params: &[("access", "offline")],
            },
            token_url: "https://api.box.example/token",
            revoke_url: Some("https://api.box.example/revoke"),
            default_tenant: None,
            scopes: &[],
            browser: None,
        };
        let c = OAuthConfig::from_login(&PASTE, "abc", None);
        assert_eq!(c.authorize_url, "https://box.example/authorize");
        assert_eq!(c.device_authorization_url, "");
        assert_eq!(c.authorize_params, [("access".into(), "offline".into())]);
        assert_eq!(
            c.revoke_url.as_deref(),
            Some("https://api.box.example/revoke")
        );
        c.validate().unwrap();
    }
}
