//! `syncfabric login gdrive`, by the device flow (RFC 8628) and with `--browser` (the
//! loopback login, RFC 8252 §7.3), as a person runs it: the real binary against the fake authorisation server on 127.0.0.1, which
//! plays Google's installed-app endpoint (a client secret on every token request, a
//! 302 back to the loopback address). The test plays the browser: it opens the URL
//! from the `--json` prompt and follows the redirect to the CLI's listener. Later
//! processes then refresh and revoke the login with the browser login's settings
//! (its own client secret and scope), not the default login's.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use syncfabric_testkit::oauth_fake::{OAuthFake, Step};

const CLIENT: &str = "desktop-client.apps.example";
const SECRET: &str = "installed-app-secret-5c1e";
const PASSPHRASE: &str = "token-pass-sentinel-4f2d";

struct Env {
    dir: tempfile::TempDir,
    fake: Arc<OAuthFake>,
}

impl Env {
    async fn new() -> Env {
        let fake = OAuthFake::start(CLIENT).await.unwrap();
        fake.set_client_secret(Some(SECRET));
        Env {
            dir: tempfile::tempdir().unwrap(),
            fake: Arc::new(fake),
        }
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("tokens.enc")
    }

    /// The CLI with the fake's endpoints. The browser login's secret is configured
    /// apart (`_BROWSER_CLIENT_SECRET`); the default login has none, so a refresh
    /// with the default login's settings is refused by the fake.
    fn command(&self, args: &[&str], vars: &[(&str, &str)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_syncfabric"));
        c.args(["-vvv"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("SYNCFABRIC_CONFIG", self.dir.path().join("config.toml"))
            .env("SYNCFABRIC_LOG", "trace")
            .env("SYNCFABRIC_TOKEN_PASSPHRASE", PASSPHRASE)
            .env("SYNCFABRIC_GDRIVE_CLIENT_ID", CLIENT)
            .env("SYNCFABRIC_GDRIVE_BROWSER_CLIENT_SECRET", SECRET)
            .env(
                "SYNCFABRIC_GDRIVE_AUTHORIZE_URL",
                self.fake.loopback_authorize_url(),
            )
            .env(
                "SYNCFABRIC_GDRIVE_DEVICE_URL",
                self.fake.device_authorization_url(),
            )
            .env("SYNCFABRIC_GDRIVE_TOKEN_URL", self.fake.token_url())
            .env("SYNCFABRIC_GDRIVE_REVOKE_URL", self.fake.revoke_url())
            .envs(vars.iter().copied())
            .stdin(Stdio::null());
        c
    }

    async fn run(&self, args: &[&str], vars: &[(&str, &str)], log: &mut String) -> Output {
        let mut cmd = self.command(args, vars);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    /// `--json login gdrive --browser --account NAME`, the test being the browser:
    /// it opens the printed URL and follows the fake's redirect to the CLI.
    async fn login(&self, name: &str, log: &mut String) -> Output {
        let args = [
            "--json",
            "login",
            "gdrive",
            "--browser",
            "--browser-wait",
            "60",
            "--account",
            name,
        ];
        let mut cmd = self.command(&args, &[]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            let mut stderr = child.stderr.take().unwrap();
            let errors = std::thread::spawn(move || {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut stderr, &mut v).unwrap();
                v
            });
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut first = String::new();
            stdout.read_line(&mut first).unwrap();
            let prompt: serde_json::Value = serde_json::from_str(&first)
                .unwrap_or_else(|e| panic!("{e}: not a JSON prompt: {first:?}"));
            assert_eq!(prompt["event"], "prompt", "{first}");
            let url = reqwest::Url::parse(prompt["authorize_url"].as_str().unwrap()).unwrap();
            let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
            assert_eq!(q["client_id"], CLIENT);
            assert_eq!(q["code_challenge_method"], "S256");
            assert_eq!(q["access_type"], "offline");
            // The browser login asks for all of Drive, not the default drive.file.
            assert_eq!(q["scope"], "https://www.googleapis.com/auth/drive");
            assert!(q["redirect_uri"].starts_with("http://127.0.0.1:"));
            assert_eq!(q["redirect_uri"], prompt["redirect_uri"].as_str().unwrap());
            tokio::runtime::Handle::current().block_on(browse(url));
            let mut all = first.into_bytes();
            std::io::Read::read_to_end(&mut stdout, &mut all).unwrap();
            let mut out = child.wait_with_output().unwrap();
            out.stdout = all;
            out.stderr = errors.join().unwrap();
            out
        })
        .await
        .unwrap();
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }
}

/// What a browser does: opens the authorisation page, which redirects (302) to the
/// loopback address, and follows that redirect.
async fn browse(url: reqwest::Url) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(
        resp.status().as_u16(),
        302,
        "the authorisation page refused"
    );
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(back.starts_with("http://127.0.0.1:"), "{back}");
    let page = client.get(&back).send().await.unwrap();
    assert_eq!(
        page.status().as_u16(),
        200,
        "the CLI did not take the redirect"
    );
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn last_json(o: &Output) -> serde_json::Value {
    let s = String::from_utf8_lossy(&o.stdout);
    let line = s.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// The account list: the first JSON value printed (a failed check adds an error line).
fn accounts(o: &Output) -> serde_json::Value {
    let mut values = serde_json::Deserializer::from_slice(&o.stdout).into_iter();
    match values.next() {
        Some(Ok(v)) => v,
        other => panic!("{other:?}: {}", text(o)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdrive_browser_login_refreshes_and_revokes_with_its_own_settings() {
    let env = Env::new().await;
    let fake = env.fake.clone();
    let mut log = String::new();

    // 1. Log in in the browser: the code comes back to the CLI's listener and is
    //    exchanged with the browser login's client secret.
    let out = env.login("ann", &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    let done = last_json(&out);
    assert_eq!(done["event"], "logged_in", "{}", text(&out));
    assert_eq!(done["account"], "gdrive:ann");
    assert_eq!(fake.authorizations(), ["approved"]);
    assert_eq!(fake.code_exchanges(), ["tokens"]);
    let rt = fake.issued_refresh_tokens()[0].clone();
    let file = std::fs::read(env.token_file()).unwrap();
    assert!(!file.windows(rt.len()).any(|w| w == rt.as_bytes()));

    // 2. A later process refreshes it with the browser login's settings: the default
    //    login has no client secret here, and the fake refuses a refresh without one.
    let out = env
        .run(&["--json", "accounts", "--check"], &[], &mut log)
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let rows = accounts(&out);
    assert_eq!(rows[0]["account"], "gdrive:ann");
    assert_eq!(rows[0]["browser"], true);
    assert_eq!(rows[0]["check"], "ok", "{}", text(&out));
    assert_eq!(fake.refreshes().len(), 1);
    assert_eq!(fake.refreshes()[0].presented, rt);

    // 3. Tokens are refreshed only by the app registration that was given them: with
    //    another browser client configured, the check says to log in again and
    //    nothing reaches the token endpoint.
    let other = [("SYNCFABRIC_GDRIVE_BROWSER_CLIENT_ID", "another-client")];
    let out = env
        .run(&["--json", "accounts", "--check"], &other, &mut log)
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    let check = accounts(&out)[0]["check"].as_str().unwrap().to_string();
    assert!(
        check.contains("another app registration")
            && check.contains("syncfabric login gdrive --browser"),
        "{check}"
    );
    assert_eq!(fake.refreshes().len(), 1);

    // 4. Logout revokes it at the provider.
    let out = env
        .run(&["--json", "logout", "gdrive:ann"], &[], &mut log)
        .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(accounts(&out)["revoked"], true, "{}", text(&out));
    assert!(!fake.refresh_token_valid(&rt));

    // 5. The person refuses in the browser: nothing is stored, and the CLI says so.
    fake.set_deny_consent(true);
    let out = env.login("bob", &mut log).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        last_json(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains("denied") && e.contains("nothing was stored")),
        "{}",
        text(&out)
    );
    let out = env.run(&["--json", "accounts"], &[], &mut log).await;
    assert_eq!(accounts(&out), serde_json::json!([]));

    // No code, token or client secret in any output, at trace level.
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace was on"
    );
    let secrets = fake
        .issued_access_tokens()
        .into_iter()
        .chain(fake.issued_refresh_tokens())
        .chain([SECRET.to_string()]);
    for s in secrets {
        assert!(!log.contains(&s), "{s} leaked:\n{log}");
    }
}

/// The default login: the device flow with `drive.file`, its token requests carrying
/// the configured client secret (Google asks installed and limited-input clients for
/// one); a later process refreshes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdrive_device_login_sends_the_client_secret_and_asks_for_drive_file() {
    let env = Env::new().await;
    let fake = env.fake.clone();
    fake.set_interval(1);
    fake.script([Step::Approve]);
    let mut log = String::new();
    let secret = [("SYNCFABRIC_GDRIVE_CLIENT_SECRET", SECRET)];
    let login = ["--json", "login", "gdrive", "--account", "cy"];
    let out = env.run(&login, &secret, &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(last_json(&out)["account"], "gdrive:cy", "{}", text(&out));
    assert_eq!(
        fake.scopes_asked(),
        ["https://www.googleapis.com/auth/drive.file"]
    );
    let out = env
        .run(&["--json", "accounts", "--check"], &secret, &mut log)
        .await;
    let rows = accounts(&out);
    assert_eq!(rows[0]["browser"], false);
    assert_eq!(rows[0]["check"], "ok", "{}", text(&out));
    // Without the secret Google's token endpoint refuses the refresh (the fake too).
    let out = env
        .run(&["--json", "accounts", "--check"], &[], &mut log)
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    let check = accounts(&out)[0]["check"].as_str().unwrap().to_string();
    assert!(check.contains("invalid_client"), "{check}");
    assert_eq!(fake.refreshes().len(), 1);
    assert!(!log.contains(SECRET), "the client secret leaked");
}

/// A provider without a browser login refuses `--browser` before anything is asked.
#[test]
fn browser_login_is_refused_where_the_provider_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_syncfabric"))
        .args(["login", "dropbox", "--browser"])
        .env_clear()
        .env("HOME", dir.path())
        .env("SYNCFABRIC_CONFIG", dir.path().join("config.toml"))
        .env("SYNCFABRIC_DROPBOX_CLIENT_ID", "app-key")
        .env("SYNCFABRIC_TOKEN_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no browser login"),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("tokens.enc").exists());
}
