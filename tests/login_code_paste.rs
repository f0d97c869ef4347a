//! `syncfabric login dropbox` (the PKCE code paste) as a person runs it: the real
//! binary against the fake authorisation server on 127.0.0.1. The test plays the
//! person: it reads the authorisation URL from the `--json` prompt, approves its
//! `code_challenge` at the fake, and pipes the code the page would show into the
//! CLI's standard input. Then a later process refreshes the login, and `logout`
//! revokes it at the fake (whose tokens then stop working), even when that fails.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use syncfabric_testkit::oauth_fake::OAuthFake;

const CLIENT: &str = "dropbox-app-key";
const PASSPHRASE: &str = "token-pass-sentinel-77ab";

struct Env {
    dir: tempfile::TempDir,
    fake: Arc<OAuthFake>,
}

impl Env {
    async fn new() -> Env {
        let fake = OAuthFake::start(CLIENT).await.unwrap();
        fake.set_rotate_refresh_tokens(false); // as Dropbox
        Env {
            dir: tempfile::tempdir().unwrap(),
            fake: Arc::new(fake),
        }
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("tokens.enc")
    }

    fn command(&self, client_id: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_syncfabric"));
        c.args(["-vvv"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("SYNCFABRIC_CONFIG", self.dir.path().join("config.toml"))
            .env("SYNCFABRIC_LOG", "trace")
            .env("SYNCFABRIC_TOKEN_PASSPHRASE", PASSPHRASE)
            .env("SYNCFABRIC_DROPBOX_CLIENT_ID", client_id)
            .env(
                "SYNCFABRIC_DROPBOX_AUTHORIZE_URL",
                self.fake.authorize_url(),
            )
            .env("SYNCFABRIC_DROPBOX_TOKEN_URL", self.fake.token_url())
            .env("SYNCFABRIC_DROPBOX_REVOKE_URL", self.fake.revoke_url())
            .stdin(Stdio::null());
        c
    }

    /// Runs a command to its end, off the runtime's threads (the fake keeps answering).
    async fn run(&self, args: &[&str], log: &mut String) -> Output {
        self.run_env(args, &[], log).await
    }

    /// As [`run`](Self::run), with more environment variables.
    async fn run_env(&self, args: &[&str], vars: &[(&str, &str)], log: &mut String) -> Output {
        let mut cmd = self.command(CLIENT, args);
        cmd.envs(vars.iter().copied());
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    /// `--json login dropbox --account NAME`, the person approving and pasting
    /// `paste(code)`. Returns the output and the code the fake issued.
    async fn login(
        &self,
        name: &str,
        paste: impl Fn(&str) -> String + Send + 'static,
        log: &mut String,
    ) -> (Output, String) {
        let mut cmd = self.command(CLIENT, &["--json", "login", "dropbox", "--account", name]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (out, code) = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            // Trace logs are long: drain stderr aside so the child never blocks on it.
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
            assert!(!q.contains_key("redirect_uri"));
            // The person opens the URL exactly as printed: the fake's page checks it
            // (client, S256, no redirect, offline) and shows the code.
            let page = tokio::runtime::Handle::current().block_on(async {
                let resp = reqwest::get(url.as_str()).await.unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            });
            assert_eq!(page.0, 200, "the authorisation page refused: {}", page.1);
            let page: serde_json::Value = serde_json::from_str(&page.1).unwrap();
            let code = page["code"].as_str().unwrap().to_string();
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{}", paste(&code)).unwrap();
            drop(stdin);
            let mut all = first.into_bytes();
            std::io::Read::read_to_end(&mut stdout, &mut all).unwrap();
            let mut out = child.wait_with_output().unwrap();
            out.stdout = all;
            out.stderr = errors.join().unwrap();
            (out, code)
        })
        .await
        .unwrap();
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        (out, code)
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbox_code_paste_login_refresh_and_revoking_logout() {
    let env = Env::new().await;
    let fake = env.fake.clone();
    let mut log = String::new();

    // 1. Log in: prompt, pasted code (with the spaces a terminal adds), tokens stored.
    let (out, code) = env.login("bob", |c| format!("  {c} "), &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    let done = last_json(&out);
    assert_eq!(done["event"], "logged_in");
    assert_eq!(done["account"], "dropbox:bob");
    assert_eq!(fake.code_exchanges(), ["tokens"]);
    assert_eq!(fake.authorizations(), ["approved"]);
    let at = fake.issued_access_tokens()[0].clone();
    let rt = fake.issued_refresh_tokens()[0].clone();
    let file = std::fs::read(env.token_file()).unwrap();
    assert!(!file.windows(rt.len()).any(|w| w == rt.as_bytes()));

    // 2. A later process refreshes it with the refresh token issued at login.
    let out = env.run(&["--json", "accounts", "--check"], &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["account"], "dropbox:bob");
    assert_eq!(rows[0]["check"], "ok", "{}", text(&out));
    assert_eq!(fake.refreshes().len(), 1);
    assert_eq!(fake.refreshes()[0].presented, rt);
    let refreshed = fake.issued_access_tokens()[1].clone();
    assert!(fake.access_token_valid(&refreshed));

    // 3. Logout revokes at the provider: every token of the login is refused after.
    let out = env
        .run(&["--json", "logout", "dropbox:bob"], &mut log)
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["logged_out"], "dropbox:bob");
    assert_eq!(v["revoked"], true, "{}", text(&out));
    assert_eq!(fake.revocations(), ["revoked"]);
    for t in [&at, &refreshed] {
        assert!(!fake.access_token_valid(t));
    }
    assert!(!fake.refresh_token_valid(&rt));
    let out = env.run(&["--json", "accounts"], &mut log).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );

    // 4. An access token the provider stopped accepting before its expiry: logout
    //    refreshes once and revokes with the new one.
    let (out, _) = env.login("carol", |c| c.to_string(), &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    fake.invalidate_access_tokens();
    let out = env.run(&["--json", "logout", "carol"], &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v["revoked"], &v["already_invalid"]),
        (&true.into(), &false.into())
    );
    assert_eq!(
        fake.revocations(),
        ["revoked", "invalid_access_token", "revoked"]
    );

    // 5. A login already revoked elsewhere: nothing to revoke, said so, deleted.
    let (out, _) = env.login("dan", |c| c.to_string(), &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    fake.invalidate_access_tokens();
    fake.revoke_all();
    let out = env.run(&["logout", "dan"], &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("no longer accepted this login")
            && said.contains("removed from this machine"),
        "{}",
        text(&out)
    );

    // 6. The provider cannot be reached: the local tokens are deleted anyway, and the
    //    person is told the revocation failed and where to end it.
    let (out, _) = env.login("eve", |c| c.to_string(), &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    let eve_rt = fake.issued_refresh_tokens().last().unwrap().clone();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!(
        "http://{}/2/auth/token/revoke",
        closed.local_addr().unwrap()
    );
    drop(closed);
    let out = env
        .run_env(
            &["logout", "dropbox:eve"],
            &[("SYNCFABRIC_DROPBOX_REVOKE_URL", &nowhere)],
            &mut log,
        )
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("removed from this machine")
            && said.contains("revoking them at the provider failed")
            && said.contains("account settings"),
        "{}",
        text(&out)
    );
    assert!(
        fake.refresh_token_valid(&eve_rt),
        "not revoked: the fake was not reached"
    );
    let out = env.run(&["--json", "accounts"], &mut log).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );

    // No code or token in any output, at trace level.
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace was on"
    );
    let secrets = [code]
        .into_iter()
        .chain(fake.issued_access_tokens())
        .chain(fake.issued_refresh_tokens());
    for s in secrets {
        assert!(!log.contains(&s), "{s} leaked:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_or_no_client_id_stores_nothing() {
    let env = Env::new().await;
    let mut log = String::new();

    // A code the fake never issued: refused by the server, nothing stored.
    let (out, _) = env
        .login("dave", |_| "made-up-code".to_string(), &mut log)
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("invalid_grant"), "{}", text(&out));
    // Not a code at all: refused before anything is sent.
    let (out, _) = env
        .login("dave", |_| "two words".to_string(), &mut log)
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(env.fake.code_exchanges(), ["unknown_code"]);
    // A code pasted twice: the first login works, the second is refused.
    let (out, first) = env.login("dave", |c| c.to_string(), &mut log).await;
    assert!(out.status.success(), "{}", text(&out));
    let (out, _) = env.login("dave2", move |_| first.clone(), &mut log).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("invalid_grant"), "{}", text(&out));
    assert_eq!(
        env.fake.code_exchanges(),
        ["unknown_code", "tokens", "reused_code"]
    );
    let out = env
        .run(&["--json", "logout", "dropbox:dave"], &mut log)
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = env.run(&["--json", "accounts"], &mut log).await;
    assert!(
        !env.token_file().exists()
            || serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
                == serde_json::json!([]),
        "{}",
        text(&out)
    );

    // No client id: a clear message naming the variable to set.
    let mut cmd = env.command("", &["login", "dropbox"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SYNCFABRIC_DROPBOX_CLIENT_ID"),
        "{}",
        text(&out)
    );
}
