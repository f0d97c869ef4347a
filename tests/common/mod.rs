//! What the facade's integration tests share: a device driving the real `syncfabric`
//! binary with its own vault folder and config file.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The master password of every test device.
pub const PW: &str = "cli test device password";

/// One device: a vault folder and a config file, driven through the CLI.
pub struct Dev {
    pub vault: PathBuf,
    pub config: PathBuf,
}

impl Dev {
    pub fn new(root: &Path, name: &str) -> Dev {
        Dev {
            vault: root.join(name),
            config: root.join(format!("{name}.toml")),
        }
    }

    /// The command, with this device's vault, config and password, no terminal
    /// input, and none of the caller's logging or remote-password variables.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_syncfabric"));
        c.arg("--vault").arg(&self.vault).args(args);
        c.env("SYNCFABRIC_PASSWORD", PW)
            .env("SYNCFABRIC_CONFIG", &self.config)
            .env_remove("SYNCFABRIC_VAULT")
            .env_remove("SYNCFABRIC_LOG")
            .env_remove("RUST_LOG")
            .env_remove("SYNCFABRIC_REMOTE_PASSWORD");
        c.stdin(Stdio::null());
        c
    }

    pub fn try_run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command that must succeed.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.try_run(args);
        assert!(
            out.status.success(),
            "syncfabric {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a command that must fail; returns its stderr.
    pub fn fail(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(
            !out.status.success(),
            "syncfabric {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The live items' titles, sorted.
    pub fn titles(&self) -> Vec<String> {
        let out = self.run(&["item", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut t: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    }

    /// The sync state folder of one of its remotes.
    pub fn state(&self, remote: &str) -> PathBuf {
        self.vault.join(".syncfabric").join(remote)
    }
}

/// The remote the engine gets for a storage whose claims the test chose on purpose (a
/// double, a counting or cutting wrapper): its claims taken as the probe's verdict.
/// Only tests do this; an app goes through `Remote::open` or `remote::connect`.
pub fn as_claimed(
    storage: std::sync::Arc<dyn syncfabric::core::Storage>,
) -> syncfabric::remote::Remote {
    use syncfabric::remote::{Trust, Verdict, Writes};
    let caps = storage.capabilities();
    let trust = if caps.has_truthful_cas() && caps.strong_versions {
        Trust::Truthful
    } else if caps.server_lock {
        Trust::ServerLock
    } else {
        Trust::Lease
    };
    let verdict = Verdict {
        trust,
        strong_versions: caps.strong_versions,
        writes: Writes::Atomic,
    };
    syncfabric::remote::wrap(storage, verdict)
}
