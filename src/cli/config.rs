//! The CLI's TOML configuration: `$SYNCFABRIC_CONFIG`, else
//! `$XDG_CONFIG_HOME/syncfabric/config.toml`, else `~/.config/syncfabric/config.toml`.
//!
//! ```toml
//! default_vault = "/home/me/Enpass/primary"
//! device_name = "laptop"
//!
//! [[remote]]
//! name = "nas"
//! vault = "/home/me/Enpass/primary"
//! url = "folder:///mnt/nas/Enpass"
//!
//! [[remote]]
//! name = "cloud"
//! vault = "/home/me/Enpass/primary"
//! url = "onedrive:/Apps/Enpass"
//! account = "default"            # the login it uses: `syncfabric login onedrive`
//!
//! # Optional: where logins go and how (each key also from the environment,
//! # e.g. $SYNCFABRIC_ONEDRIVE_CLIENT_ID, $SYNCFABRIC_ONEDRIVE_TOKEN_URL).
//! token_file = "/home/me/.config/syncfabric/tokens.enc"
//! [oauth.onedrive]
//! client_id = "00000000-0000-0000-0000-000000000000"
//! tenant = "consumers"
//! scopes = ["offline_access", "Files.ReadWrite.AppFolder"]
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One remote of one vault.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteConfig {
    pub name: String,
    pub vault: PathBuf,
    pub url: String,
    /// The honesty probe's verdict: "truthful", "server-lock" or "lease" ("lock"
    /// before server locks; probed again). Re-run: `remote probe NAME`.
    #[serde(default)]
    pub cas: Option<String>,
    /// Whether the probe saw a new version on every write: "strong" or "repeating"
    /// (commits are then told apart by a commit marker). Missing in configs written
    /// before it was measured: probed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<String>,
    /// Whether a write cut mid-body kept the file whole: "atomic", "staged" (only when
    /// uploaded to a temporary name and moved into place, which is then always done)
    /// or "unsafe". Missing in configs written before it was measured: probed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<String>,
    /// For cloud remotes (`onedrive:`, `sharepoint:`): the logged-in account it uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Where the vault is kept there: "syncfabric" (the default: a folder per vault)
    /// or "enpass" (the Enpass apps' sync file, `vault.enpassdbsync`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// With layout "enpass": the folder of the file under the URL ("Enpass" when
    /// missing; "" for the URL itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout_dir: Option<String>,
    /// The remote's password is kept in the token store (a paired Wi-Fi Sync Server's
    /// access password), not asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stored_password: bool,
}

impl RemoteConfig {
    /// The probe's verdict as recorded here.
    pub fn recorded(&self) -> syncfabric::remote::Recorded<'_> {
        syncfabric::remote::Recorded {
            cas: self.cas.as_deref(),
            versions: self.versions.as_deref(),
            writes: self.writes.as_deref(),
        }
    }

    /// Where the vault is kept on this remote.
    pub fn layout(&self) -> Result<syncfabric::engine::Layout, String> {
        let name = self.layout.as_deref().unwrap_or("syncfabric");
        syncfabric::engine::Layout::parse(name, self.layout_dir.as_deref()).ok_or_else(|| {
            format!(
                "remote {:?}: layout {name:?} is neither \"syncfabric\" nor \"enpass\" (with a plain folder in layout_dir)",
                self.name
            )
        })
    }

    /// Records `layout`.
    pub fn set_layout(&mut self, layout: &syncfabric::engine::Layout) {
        self.layout = Some(layout.name().to_string());
        self.layout_dir = layout.enpass_dir().map(|d| d.as_str().to_string());
    }

    /// Records `verdict`.
    pub fn record(&mut self, verdict: &syncfabric::remote::Verdict) {
        self.cas = Some(verdict.trust.as_str().to_string());
        self.versions = Some(verdict.versions_str().to_string());
        self.writes = Some(verdict.writes.as_str().to_string());
    }
}

/// Overrides of one provider's OAuth settings (`[oauth.onedrive]`); unset keys keep
/// the built-in defaults (Microsoft identity platform).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OAuthOverride {
    pub client_id: Option<String>,
    /// The "client secret" of an installed-app registration whose token endpoint asks
    /// for one (Google's); not a secret of the person.
    pub client_secret: Option<String>,
    /// The app registration of the browser login (`login --browser`), when it is
    /// another than `client_id`'s (Google: a "Desktop app" client; the device flow
    /// needs a "TVs and Limited Input" one).
    pub browser_client_id: Option<String>,
    /// Its client secret.
    pub browser_client_secret: Option<String>,
    pub tenant: Option<String>,
    pub device_authorization_url: Option<String>,
    /// The authorisation page of a code-paste login.
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    /// Where a logout revokes the tokens.
    pub revoke_url: Option<String>,
    pub scopes: Option<Vec<String>>,
}

/// The whole file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Config {
    pub default_vault: Option<PathBuf>,
    pub device_name: Option<String>,
    /// Where logins keep their tokens (default: `tokens.enc` beside this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(default, rename = "remote")]
    pub remotes: Vec<RemoteConfig>,
    /// Per-provider OAuth overrides, `[oauth.<provider>]`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub oauth: std::collections::BTreeMap<String, OAuthOverride>,
    /// `syncfabric audit` defaults, `[audit]`.
    #[serde(default, skip_serializing_if = "AuditConfig::is_default")]
    pub audit: AuditConfig,
}

/// `[audit]`: whether `syncfabric audit` checks breaches without `--breached`, the
/// range API's address, and the age in days that makes a password old.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditConfig {
    #[serde(default)]
    pub breached: bool,
    pub endpoint: Option<String>,
    pub days: Option<u32>,
}

impl AuditConfig {
    fn is_default(&self) -> bool {
        self == &AuditConfig::default()
    }
}

pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SYNCFABRIC_CONFIG") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("syncfabric").join("config.toml")
}

/// The longest remote name: it becomes a folder name under `<vault>/.syncfabric/`.
pub const MAX_REMOTE_NAME: usize = 64;

/// Checks a remote name: 1 to [`MAX_REMOTE_NAME`] ASCII letters, digits, `-` and `_`,
/// starting with a letter or digit. The name becomes a path component of the vault's
/// state folder, so nothing else (no `.`, `..`, `/`) may pass.
pub fn check_remote_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_REMOTE_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        return Ok(());
    }
    Err(format!(
        "remote name {:?}: a remote name is 1 to {MAX_REMOTE_NAME} letters, digits, '-' or '_', starting with a letter or digit",
        super::escape::for_terminal(&name.chars().take(80).collect::<String>())
    ))
}

/// Refuses a remote URL that holds a password: the URL is stored in config.toml and
/// printed by `remote list` and `status`. The message never repeats the password.
pub fn check_remote_url(url: &str) -> Result<(), String> {
    // A plain absolute path (a folder remote) or a URL that does not parse holds no
    // password; opening it says what is wrong with it.
    let Ok(parsed) = syncfabric::core::registry::StorageUrl::parse(url) else {
        return Ok(());
    };
    if parsed.password().is_none() {
        return Ok(());
    }
    Err(format!(
        "{}: a password in the URL would be stored in config.toml and shown by `syncfabric remote list`; \
         leave it out ({}://{}@{}…) and give it in $SYNCFABRIC_REMOTE_PASSWORD or at the prompt",
        parsed.redacted(),
        parsed.scheme(),
        parsed.username().unwrap_or_default(),
        parsed.host().unwrap_or(""),
    ))
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        match std::fs::read_to_string(path) {
            Ok(s) => Config::parse(&s).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Parses the file's text and checks every remote: its name (it becomes a path)
    /// and its URL (no password in it). A bad entry is an error that names it, never
    /// something acted on.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        for r in &config.remotes {
            check_remote_name(&r.name)
                .and_then(|()| check_remote_url(&r.url))
                .map_err(|e| format!("[[remote]] entry: {e}; fix or remove that entry"))?;
        }
        Ok(config)
    }

    /// Writes the file atomically, owner-only (0600, in a 0700 folder when it makes it).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = toml::to_string_pretty(self).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            syncfabric::vault::create_private_dir_all(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        syncfabric::engine::state::write_atomic(path, text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn remotes_of(&self, vault: &Path) -> Vec<&RemoteConfig> {
        let canon = canonical(vault);
        self.remotes
            .iter()
            .filter(|r| canonical(&r.vault) == canon)
            .collect()
    }
}

pub fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
