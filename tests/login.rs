//! `syncfabric login|accounts|logout` as a person runs them: the real binary, one
//! process per command, against the fake authorisation server
//! (`syncfabric_testkit::oauth_fake`) on 127.0.0.1. A login in one process must
//! be usable by the next; the token file must hold no token in plaintext and refuse a
//! wrong passphrase or a flipped byte; a revoked login must say "log in again"; and
//! no secret may reach any output, at trace level.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use syncfabric_testkit::oauth_fake::{OAuthFake, Step};

const CLIENT: &str = "cli-test-client";
const PASSPHRASE: &str = "token-pass-sentinel-91c2";

struct Env {
    dir: tempfile::TempDir,
    device_url: String,
    token_url: String,
}

impl Env {
    fn new(fake: &OAuthFake) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            device_url: fake.device_authorization_url(),
            token_url: fake.token_url(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("tokens.enc")
    }

    fn command(&self, passphrase: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_syncfabric"));
        c.args(["-vvv"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("SYNCFABRIC_CONFIG", self.config())
            .env("SYNCFABRIC_LOG", "trace")
            .env("SYNCFABRIC_TOKEN_PASSPHRASE", passphrase)
            .env("SYNCFABRIC_ONEDRIVE_CLIENT_ID", CLIENT)
            .env("SYNCFABRIC_ONEDRIVE_DEVICE_URL", &self.device_url)
            .env("SYNCFABRIC_ONEDRIVE_TOKEN_URL", &self.token_url)
            .stdin(std::process::Stdio::null());
        c
    }
}

/// Runs the binary off the runtime's threads, so the fake keeps answering.
async fn run(env: &Env, passphrase: &str, args: &[&str], log: &mut String) -> Output {
    let mut cmd = env.command(passphrase, args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    log.push_str(&String::from_utf8_lossy(&out.stdout));
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    out
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_in_one_process_is_used_by_the_next_and_never_leaks() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    fake.set_interval(1);
    fake.script([Step::Pending, Step::SlowDown, Step::Pending, Step::Approve]);
    let env = Env::new(&fake);
    let mut log = String::new();

    // 1. login: shows the URL and the code, polls as asked, stores the tokens.
    let out = run(
        &env,
        PASSPHRASE,
        &["login", "onedrive", "--account", "alice"],
        &mut log,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let code = fake.last_user_code().unwrap();
    assert!(
        stdout.contains(&format!(
            "open {} and enter the code {code}",
            fake.verification_uri()
        )),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("logged in: onedrive:alice"),
        "{}",
        text(&out)
    );
    let polls = fake.polls();
    let answers: Vec<_> = polls.iter().map(|p| p.answer).collect();
    assert_eq!(
        answers,
        [
            "authorization_pending",
            "slow_down",
            "authorization_pending",
            "tokens"
        ]
    );
    let asked: Vec<u64> = polls.iter().map(|p| p.interval_asked.as_secs()).collect();
    assert_eq!(asked, [1, 1, 6, 6], "slow_down adds 5 s");
    for p in &polls {
        assert!(
            !p.early(),
            "polled after {:?}, asked {:?}",
            p.gap,
            p.interval_asked
        );
    }
    assert_eq!(fake.scopes_asked(), ["offline_access Files.ReadWrite"]);

    // The token file: 0600, no token (nor the passphrase) in it in plaintext.
    let file = std::fs::read(env.token_file()).unwrap();
    let issued_rt = fake.issued_refresh_tokens();
    let issued_at = fake.issued_access_tokens();
    assert_eq!((issued_rt.len(), issued_at.len()), (1, 1));
    for s in issued_rt.iter().chain(&issued_at) {
        assert!(!contains(&file, s), "token in plaintext");
        assert!(
            !contains(&file, &s[s.len() - 12..]),
            "token tail in plaintext"
        );
    }
    assert!(!contains(&file, PASSPHRASE) && !contains(&file, "onedrive:alice"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.token_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // 2. A later process lists the account and proves the stored login works: it
    //    refreshes with exactly the refresh token issued to process 1.
    let out = run(
        &env,
        PASSPHRASE,
        &["--json", "accounts", "--check"],
        &mut log,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["account"], "onedrive:alice");
    assert_eq!(rows[0]["check"], "ok");
    assert_eq!(rows[0]["refresh_token"], true);
    let refreshes = fake.refreshes();
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].presented, issued_rt[0]);
    assert_eq!(refreshes[0].answer, "tokens");

    // 3. A third process uses the refresh token rotated in by process 2.
    let out = run(&env, PASSPHRASE, &["accounts", "--check"], &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("onedrive:alice"));
    let refreshes = fake.refreshes();
    assert_eq!(refreshes.len(), 2);
    assert_eq!(refreshes[1].presented, fake.issued_refresh_tokens()[1]);
    assert_eq!(refreshes[1].answer, "tokens");

    // 4. A wrong passphrase is refused with a clear message.
    let out = run(&env, "not-the-passphrase", &["accounts"], &mut log).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong token-store passphrase"),
        "{}",
        text(&out)
    );

    // 5. A flipped byte (in the ciphertext, then in the salt) is refused, never garbage.
    let good = std::fs::read(env.token_file()).unwrap();
    for at in [good.len() - 20, 20] {
        flip_byte(&env.token_file(), at);
        let out = run(&env, PASSPHRASE, &["accounts"], &mut log).await;
        assert!(!out.status.success(), "byte {at}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("damaged or was modified") || err.contains("wrong token-store passphrase"),
            "byte {at}: {}",
            text(&out)
        );
        assert!(
            out.stdout.is_empty(),
            "printed something from a damaged file"
        );
        std::fs::write(env.token_file(), &good).unwrap();
    }

    // 6. Revoked at the server: the next use says to log in again, naming the command.
    fake.revoke_all();
    let out = run(&env, PASSPHRASE, &["accounts", "--check"], &mut log).await;
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("revoked") && all.contains("syncfabric login onedrive --account alice"),
        "{all}"
    );

    // 7. Log out: the account is gone for later processes.
    let out = run(&env, PASSPHRASE, &["logout", "alice"], &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&env, PASSPHRASE, &["--json", "accounts"], &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );

    // No secret in any output of any process, at trace level.
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace logging was on"
    );
    let mut secrets = fake.issued_access_tokens();
    secrets.extend(fake.issued_refresh_tokens());
    secrets.push(PASSPHRASE.to_string());
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "secret in output: {s}");
    }
    assert!(!log.contains("fake-dc-"), "device code in output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_and_expired_logins_store_nothing() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    fake.set_interval(1);
    let env = Env::new(&fake);
    let mut log = String::new();
    for (step, says) in [(Step::Denied, "denied"), (Step::Expired, "expired")] {
        fake.script([Step::Pending, step]);
        let out = run(&env, PASSPHRASE, &["login", "onedrive"], &mut log).await;
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{}",
            text(&out)
        );
    }
    assert!(!env.token_file().exists(), "nothing stored");
    assert!(fake.issued_access_tokens().is_empty());
    // A cloud remote of a provider nobody logged in to says how to log in.
    let vault = env.dir.path().join("vault");
    let out = run(
        &env,
        PASSPHRASE,
        &[
            "--vault",
            vault.to_str().unwrap(),
            "remote",
            "add",
            "c",
            "onedrive:/Apps/x",
        ],
        &mut log,
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("run `syncfabric login onedrive --account default` first"),
        "{}",
        text(&out)
    );
}

/// A cloud remote opened by a later process with the stored login: `remote add` with
/// `--account` against the Graph fake, which accepts the access token the
/// authorisation fake issued at login. Needs the OneDrive provider (feature
/// `onedrive`).
mod cloud {
    #[cfg(feature = "onedrive")]
    mod remote {
        use super::super::*;
        use syncfabric_testkit::graph_fake::{FakeConfig, GraphFake};

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn remote_add_uses_the_login_of_an_earlier_process() {
            let fake = OAuthFake::start(CLIENT).await.unwrap();
            fake.set_interval(1);
            fake.script([Step::Approve]);
            let env = Env::new(&fake);
            let mut log = String::new();
            let out = run(
                &env,
                PASSPHRASE,
                &["login", "onedrive", "--account", "alice"],
                &mut log,
            )
            .await;
            assert!(out.status.success(), "{}", text(&out));

            let graph = GraphFake::start(FakeConfig::default()).await.unwrap();
            graph.rotate_token(&fake.issued_access_tokens()[0]);
            let url = format!("onedrive:/Apps/Enpass?graph_url={}", graph.url());
            let vault = env.dir.path().join("vault");
            std::fs::create_dir_all(&vault).unwrap();
            let vault = vault.to_str().unwrap();
            let out = run(
                &env,
                PASSPHRASE,
                &[
                    "--vault",
                    vault,
                    "remote",
                    "add",
                    "cloud",
                    &url,
                    "--account",
                    "alice",
                ],
                &mut log,
            )
            .await;
            assert!(out.status.success(), "{}", text(&out));
            let config = std::fs::read_to_string(env.config()).unwrap();
            assert!(config.contains("account = \"alice\""), "{config}");
            assert!(
                fake.refreshes().is_empty(),
                "the stored access token was still valid"
            );

            let out = run(&env, PASSPHRASE, &["--json", "accounts"], &mut log).await;
            let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(rows[0]["remotes"], serde_json::json!(["cloud"]));

            // The server now refuses the token and the login was revoked: the remote's
            // next use (its 401, then a refused refresh) says to log in again.
            graph.rotate_token("a-token-nobody-has");
            fake.revoke_all();
            let out = run(
                &env,
                PASSPHRASE,
                &["--vault", vault, "remote", "probe", "cloud"],
                &mut log,
            )
            .await;
            assert!(!out.status.success(), "{}", text(&out));
            assert!(
                text(&out).contains("syncfabric login onedrive --account alice"),
                "{}",
                text(&out)
            );
            for s in fake
                .issued_access_tokens()
                .iter()
                .chain(&fake.issued_refresh_tokens())
            {
                assert!(!log.contains(s.as_str()), "secret in output");
            }
        }
    }
}
