//! Where to log in: endpoints, client id and scopes of one provider.

use crate::{AuthError, Result};

/// The Microsoft identity platform's host.
pub const MICROSOFT_LOGIN_HOST: &str = "https://login.microsoftonline.com";

/// Default scopes for OneDrive (personal and business): read/write the person's files
/// (which includes the app folder), and a refresh token (`offline_access`). Narrow to
/// `offline_access Files.ReadWrite.AppFolder` in the config when the vault lives in
/// the app folder.
pub const ONEDRIVE_SCOPES: &[&str] = &["offline_access", "Files.ReadWrite"];

/// Default scopes for SharePoint document libraries.
pub const SHAREPOINT_SCOPES: &[&str] = &[
    "offline_access",
    "Files.ReadWrite.All",
    "Sites.ReadWrite.All",
];

/// How to log in to one provider with the OAuth 2 device authorisation grant
/// (RFC 8628) and refresh its tokens (RFC 6749 §6). Every field can be overridden
/// (the CLI reads its config file and environment), so tests point it at a fake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthConfig {
    /// The provider name used in messages and account keys (`"onedrive"`).
    pub provider: String,
    /// The device authorisation endpoint (RFC 8628 §3.1).
    pub device_authorization_url: String,
    /// The token endpoint (RFC 6749 §3.2).
    pub token_url: String,
    /// The public client id of the app registration (no secret: a device-flow client
    /// cannot keep one).
    pub client_id: String,
    /// The scopes asked for, in order.
    pub scopes: Vec<String>,
}

impl OAuthConfig {
    /// The Microsoft identity platform v2.0 endpoints of `tenant` (`"common"`,
    /// `"organizations"`, `"consumers"` or a tenant id) for `provider` with `scopes`.
    pub fn microsoft(provider: &str, tenant: &str, client_id: &str, scopes: &[&str]) -> Self {
        OAuthConfig {
            provider: provider.to_string(),
            device_authorization_url: format!(
                "{MICROSOFT_LOGIN_HOST}/{tenant}/oauth2/v2.0/devicecode"
            ),
            token_url: format!("{MICROSOFT_LOGIN_HOST}/{tenant}/oauth2/v2.0/token"),
            client_id: client_id.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// OneDrive through the `common` tenant with [`ONEDRIVE_SCOPES`].
    pub fn onedrive(client_id: &str) -> Self {
        Self::microsoft("onedrive", "common", client_id, ONEDRIVE_SCOPES)
    }

    /// SharePoint through the `organizations` tenant (SharePoint needs a work or school
    /// account) with [`SHAREPOINT_SCOPES`].
    pub fn sharepoint(client_id: &str) -> Self {
        Self::microsoft("sharepoint", "organizations", client_id, SHAREPOINT_SCOPES)
    }

    /// The defaults of a provider by name (`onedrive`, `sharepoint`), or `None`.
    pub fn for_provider(provider: &str, client_id: &str) -> Option<Self> {
        match provider {
            "onedrive" => Some(Self::onedrive(client_id)),
            "sharepoint" => Some(Self::sharepoint(client_id)),
            _ => None,
        }
    }

    /// The account key under which `name`'s tokens are stored: `"<provider>:<name>"`.
    pub fn account_key(&self, name: &str) -> String {
        format!("{}:{name}", self.provider)
    }

    /// Checks the fields: non-empty client id, absolute `http(s)` URLs. Plain `http`
    /// is allowed only for loopback hosts (tests).
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
        for url in [&self.device_authorization_url, &self.token_url] {
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

    #[test]
    fn microsoft_defaults_and_validation() {
        let c = OAuthConfig::onedrive("abc");
        assert_eq!(
            c.device_authorization_url,
            "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"
        );
        assert_eq!(
            c.token_url,
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert!(c.scopes.contains(&"offline_access".to_string()));
        assert_eq!(c.account_key("alice"), "onedrive:alice");
        c.validate().unwrap();
        let s = OAuthConfig::for_provider("sharepoint", "abc").unwrap();
        assert!(s.scopes.contains(&"Sites.ReadWrite.All".to_string()));
        assert!(s.token_url.contains("/organizations/"));
        assert!(OAuthConfig::for_provider("gdrive", "x").is_none());

        assert!(matches!(
            OAuthConfig::onedrive(" ").validate(),
            Err(AuthError::Config { .. })
        ));
        let mut bad = OAuthConfig::onedrive("abc");
        bad.token_url = "http://evil.example/token".into();
        assert!(bad.validate().is_err());
        bad.token_url = "http://127.0.0.1:9/token".into();
        bad.validate().unwrap();
    }
}
