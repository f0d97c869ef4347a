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
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One remote of one vault.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteConfig {
    pub name: String,
    pub vault: PathBuf,
    pub url: String,
    /// The honesty probe's verdict: "truthful" or "lock" (re-run: `remote probe NAME`).
    #[serde(default)]
    pub cas: Option<String>,
}

/// The whole file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Config {
    pub default_vault: Option<PathBuf>,
    pub device_name: Option<String>,
    #[serde(default, rename = "remote")]
    pub remotes: Vec<RemoteConfig>,
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

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        match std::fs::read_to_string(path) {
            Ok(s) => toml::from_str(&s).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = toml::to_string_pretty(self).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
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
