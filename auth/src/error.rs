//! The typed errors of login, refresh and the token file.

use syncfabric_core::Error as CoreError;

/// What can go wrong while logging in, refreshing or keeping tokens. No variant carries
/// a token, a passphrase or a key: messages are safe to print and to log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The person did not enter the code before it expired (RFC 8628 §3.5
    /// `expired_token`): start the login again.
    #[error("the login code expired before it was entered: run the login again")]
    Expired,
    /// The person (or the administrator) refused access (RFC 8628 §3.5 `access_denied`).
    #[error("access was denied at the sign-in page: nothing was stored")]
    Denied,
    /// The refresh token is no longer valid (RFC 6749 §5.2 `invalid_grant`: revoked,
    /// expired, or the password changed), or the account was never logged in: the
    /// person must log in again to `provider` as `account`.
    #[error("{why}: log in to {provider} again (account {account})")]
    LoginRequired {
        /// The login name (`"onedrive"`).
        provider: String,
        /// The account's name.
        account: String,
        /// What is wrong with the stored login.
        why: String,
    },
    /// The authorisation server answered with an RFC 6749 §5.2 error we do not handle
    /// (e.g. `invalid_client`, `invalid_scope`, `unauthorized_client`).
    #[error("the authorisation server refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Server {
        /// The `error` code.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The server could not be reached or answered something that is not OAuth 2
    /// (a transport error, a 5xx, a body that is not the JSON the RFCs describe).
    #[error("could not talk to the authorisation server: {message}")]
    Transport {
        /// What happened.
        message: String,
    },
    /// The configuration is unusable (a bad URL, no client id).
    #[error("login configuration: {message}")]
    Config {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The token file was opened with the wrong passphrase (or its key header is damaged).
    #[error("wrong token-store passphrase for {path} (or its header is damaged)")]
    WrongPassphrase {
        /// The token file.
        path: String,
    },
    /// The token file is damaged or was tampered with: its authentication tag does not
    /// match, or it is not a token file of a version we know. Nothing was read from it.
    #[error("the token file {path} is damaged or was modified: {message}")]
    Corrupt {
        /// The token file.
        path: String,
        /// What check failed.
        message: String,
    },
    /// A storage or I/O error from the token store.
    #[error(transparent)]
    Store(#[from] CoreError),
}

impl From<AuthError> for CoreError {
    /// `LoginRequired`, `Expired` and `Denied` become [`CoreError::Unauthorized`] (the
    /// message tells the person what to do); `Transport` becomes `Transient`; a bad
    /// configuration, passphrase or file becomes `InvalidInput` / `Corrupt`.
    fn from(e: AuthError) -> CoreError {
        match e {
            AuthError::Store(e) => e,
            e @ (AuthError::LoginRequired { .. } | AuthError::Expired | AuthError::Denied) => {
                CoreError::Unauthorized {
                    message: e.to_string(),
                }
            }
            e @ AuthError::Server { .. } => CoreError::Unauthorized {
                message: e.to_string(),
            },
            e @ AuthError::Transport { .. } => CoreError::Transient {
                message: e.to_string(),
                source: None,
            },
            e @ (AuthError::Config { .. } | AuthError::WrongPassphrase { .. }) => {
                CoreError::InvalidInput {
                    message: e.to_string(),
                }
            }
            e @ AuthError::Corrupt { .. } => CoreError::Corrupt {
                message: e.to_string(),
            },
        }
    }
}

/// This crate's result type.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;
