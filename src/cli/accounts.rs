//! `syncfabric login|logout|accounts`, and the bearer a cloud remote acts as.
//!
//! Tokens live in one encrypted file (`tokens.enc` beside the config file, or
//! `token_file` in the config, or `$SYNCFABRIC_TOKEN_FILE`), unlocked with a passphrase
//! read like the master password: `$SYNCFABRIC_TOKEN_PASSPHRASE`, the next line of
//! standard input with `--password-stdin`, or a prompt. OAuth settings come from what
//! the provider declares (its `LoginSpec` in the registry), overridden by `[oauth.<provider>]` in the config and
//! then by `$SYNCFABRIC_<PROVIDER>_CLIENT_ID`, `_TENANT`, `_DEVICE_URL`,
//! `_AUTHORIZE_URL`, `_TOKEN_URL`, `_REVOKE_URL` and `_SCOPES` (space-separated), and
//! `_CLIENT_SECRET` for an installed-app registration that has one (Google's).
//!
//! `login --browser` uses the provider's browser login where it declares one (Google
//! Drive: the loopback flow with all of Drive): its app registration may be another
//! (`browser_client_id`, `browser_client_secret`, `$..._BROWSER_CLIENT_ID`,
//! `_BROWSER_CLIENT_SECRET`, `_BROWSER_SCOPES`; else the default login's). The stored
//! tokens record the client and the flow that issued them, and are refreshed and
//! revoked with those settings.
//!
//! A provider logs in by the flow it declares: the device flow (a URL and a code to
//! enter there; we poll) or the PKCE code paste (a URL to open; the person pastes the
//! code the page shows as the next line of standard input). A logout revokes the
//! tokens at the provider when it declares a revoke URL (refreshing an expired or
//! refused access token first), then deletes them here — also when revoking failed,
//! which it then says.

use super::{CliResult, Ctx};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use syncfabric::core::auth::{BearerAuth, SecretToken, TokenStore};
use syncfabric_auth::{
    CodePasteFlow, DeviceFlow, EncryptedFileTokenStore, LoopbackFlow, OAuthBearer, OAuthConfig,
    Revocation, TokenSet,
};

/// The providers one can log in to, as the registered providers describe themselves.
fn login_providers() -> Vec<&'static str> {
    syncfabric::remote::registry()
        .providers()
        .into_iter()
        .filter_map(|p| p.credentials.login().copied())
        .map(|l| l.name)
        .collect()
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Where to log in.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(login_providers()))]
    provider: String,
    /// A name for this login (several accounts of one provider can be logged in).
    #[arg(long, default_value = "default")]
    account: String,
    /// Log in in a browser on this computer (the loopback login) with the provider's
    /// broader access, where it offers one: Google Drive's `drive` scope, to open a
    /// vault another app uploaded.
    #[arg(long)]
    browser: bool,
    /// How long to wait for the browser login, in seconds.
    #[arg(long, default_value_t = 300, requires = "browser")]
    browser_wait: u64,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The account: `onedrive:NAME`, or just NAME when it is unambiguous; default: the
    /// only account.
    account: Option<String>,
}

#[derive(Args, Debug)]
pub struct AccountsArgs {
    /// Also check that each login still works (refreshes its access token).
    #[arg(long)]
    check: bool,
}

fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

/// The OAuth settings of `provider`'s default login: defaults, then the config, then
/// the environment.
#[cfg(test)]
pub fn oauth_config(ctx: &Ctx, provider: &str) -> CliResult<OAuthConfig> {
    oauth_config_for(ctx, provider, false)
}

/// The OAuth settings of `provider`'s default login, or of its browser login
/// (`browser`: `[oauth.<provider>] browser_client_id`/`browser_client_secret`, else
/// the default login's, and `$SYNCFABRIC_<PROVIDER>_BROWSER_CLIENT_ID`,
/// `_BROWSER_CLIENT_SECRET`, `_BROWSER_SCOPES`).
pub fn oauth_config_for(ctx: &Ctx, provider: &str, browser: bool) -> CliResult<OAuthConfig> {
    let o = ctx.config.oauth.get(provider).cloned().unwrap_or_default();
    let env = |key: &str| {
        std::env::var(format!(
            "SYNCFABRIC_{}_{key}",
            provider.to_ascii_uppercase()
        ))
        .ok()
        .filter(|v| !v.is_empty())
    };
    let default_spec = syncfabric::remote::login_spec(provider)
        .ok_or_else(|| format!("no login for provider {provider:?}"))?;
    let spec = match browser {
        false => default_spec,
        true => default_spec
            .browser_login()
            .ok_or_else(|| format!("{provider} has no browser login; log in without --browser"))?,
    };
    let client_id = env("CLIENT_ID").or(o.client_id.clone());
    let secret = env("CLIENT_SECRET").or(o.client_secret.clone());
    let (client_id, secret) = match browser {
        false => (client_id, secret),
        true => (
            env("BROWSER_CLIENT_ID")
                .or(o.browser_client_id.clone())
                .or(client_id),
            env("BROWSER_CLIENT_SECRET")
                .or(o.browser_client_secret.clone())
                .or(secret),
        ),
    };
    let tenant = env("TENANT").or(o.tenant.clone());
    let mut c = OAuthConfig::from_login(&spec, &client_id.unwrap_or_default(), tenant.as_deref());
    c.client_secret = secret;
    override_endpoints(&mut c, &spec, &o, &env);
    let scopes_env = if browser { "BROWSER_SCOPES" } else { "SCOPES" };
    if let Some(s) = env(scopes_env) {
        c.scopes = s.split_whitespace().map(str::to_string).collect();
    } else if let (Some(s), false) = (o.scopes, browser) {
        c.scopes = s;
    }
    c.validate()?;
    Ok(c)
}

/// The endpoint overrides of the config and the environment; only those of the flow
/// the login uses.
fn override_endpoints(
    c: &mut OAuthConfig,
    spec: &syncfabric::core::registry::LoginSpec,
    o: &crate::cli::config::OAuthOverride,
    env: &dyn Fn(&str) -> Option<String>,
) {
    if spec.has_device_flow() {
        if let Some(u) = env("DEVICE_URL").or(o.device_authorization_url.clone()) {
            c.device_authorization_url = u;
        }
    } else if let Some(u) = env("AUTHORIZE_URL").or(o.authorize_url.clone()) {
        c.authorize_url = u;
    }
    if let Some(u) = env("TOKEN_URL").or(o.token_url.clone()) {
        c.token_url = u;
    }
    if c.revoke_url.is_some() {
        if let Some(u) = env("REVOKE_URL").or(o.revoke_url.clone()) {
            c.revoke_url = Some(u);
        }
    }
}

/// The OAuth settings the stored login `key` (`provider:name`) refreshes and revokes
/// with: its browser login's when it came from `login --browser` (then `true`).
fn stored_login_config(
    ctx: &Ctx,
    rt: &tokio::runtime::Runtime,
    store: &dyn TokenStore,
    provider: &str,
    name: &str,
) -> CliResult<(OAuthConfig, bool)> {
    let key = format!("{provider}:{name}");
    let browser = rt
        .block_on(store.get(&key))?
        .and_then(|s| TokenSet::from_secret(&s))
        .is_some_and(|t| t.browser);
    Ok((oauth_config_for(ctx, provider, browser)?, browser))
}

/// The token file's path.
pub fn token_file(ctx: &Ctx) -> PathBuf {
    if let Some(p) = std::env::var_os("SYNCFABRIC_TOKEN_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = &ctx.config.token_file {
        return p.clone();
    }
    ctx.config_path
        .parent()
        .map(|d| d.join("tokens.enc"))
        .unwrap_or_else(|| PathBuf::from("tokens.enc"))
}

/// Unlocks the token file (creating it on the first write). A new file's passphrase
/// is asked twice when it comes from the interactive prompt.
pub fn open_store(ctx: &mut Ctx) -> CliResult<Arc<EncryptedFileTokenStore>> {
    const ENV: &str = "SYNCFABRIC_TOKEN_PASSPHRASE";
    let path = token_file(ctx);
    let new = !path.exists();
    let interactive = std::env::var_os(ENV).is_none() && !ctx.password_stdin;
    let prompt = if new {
        "New token-store passphrase (protects your cloud logins)"
    } else {
        "Token-store passphrase"
    };
    let pass = ctx.secret(ENV, prompt)?;
    if pass.is_empty() {
        return Err("the token-store passphrase must not be empty".into());
    }
    if new && interactive {
        let again = ctx.secret(ENV, "Repeat the passphrase")?;
        if again.expose() != pass.expose() {
            return Err("the passphrases differ; nothing was stored".into());
        }
    }
    let pass = SecretToken::new(pass.expose());
    Ok(Arc::new(EncryptedFileTokenStore::open(&path, &pass)?))
}

fn runtime() -> CliResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn login_cmd(ctx: &mut Ctx, args: LoginArgs) -> CliResult {
    let provider = args.provider.as_str();
    if !valid_account_name(&args.account) {
        return Err("an account name uses letters, digits, '-', '_', '.' and '@'".into());
    }
    let config = oauth_config_for(ctx, provider, args.browser)?;
    // Unlock the store first: a wrong passphrase should fail before the person signs in.
    let store = open_store(ctx)?;
    let rt = runtime()?;
    let mut tokens = if args.browser {
        let wait = std::time::Duration::from_secs(args.browser_wait);
        login_loopback(ctx, &rt, &config, wait)?
    } else if config.authorize_url.is_empty() {
        login_device(ctx, &rt, &config)?
    } else {
        login_code_paste(ctx, &rt, &config)?
    };
    tokens.browser = args.browser;
    store_login(&rt, store.as_ref(), &config, &args.account, &tokens)?;
    let key = config.account_key(&args.account);
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({
                "event": "logged_in",
                "account": key,
                "token_file": store.path(),
                "scope": tokens.scope,
            })
        );
    } else {
        println!(
            "logged in: {key} (tokens encrypted in {})\nuse it with: syncfabric remote add NAME {provider}:/Apps/Enpass --account {}",
            store.path().display(),
            args.account
        );
    }
    Ok(())
}

fn store_login(
    rt: &tokio::runtime::Runtime,
    store: &EncryptedFileTokenStore,
    config: &OAuthConfig,
    account: &str,
    tokens: &TokenSet,
) -> CliResult {
    rt.block_on(store.put(&config.account_key(account), tokens.to_secret()))?;
    Ok(())
}

fn flush_stdout() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// The device flow: show the URL and code, poll until approved.
fn login_device(
    ctx: &Ctx,
    rt: &tokio::runtime::Runtime,
    config: &OAuthConfig,
) -> CliResult<TokenSet> {
    let flow = DeviceFlow::new(config.clone())?;
    let pending = rt.block_on(flow.start())?;
    let p = pending.prompt();
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({
                "event": "prompt",
                "verification_uri": p.verification_uri,
                "user_code": p.user_code,
                "verification_uri_complete": p.verification_uri_complete,
                "expires_in": p.expires_in.as_secs(),
                "interval": p.interval.as_secs(),
            })
        );
    } else {
        println!("{}", p.instructions());
        println!("Waiting for the sign-in to be approved…");
    }
    flush_stdout();
    Ok(rt.block_on(flow.finish(pending))?)
}

/// The loopback login: show the URL (the person opens it in a browser here), wait
/// for the browser to come back with the code, exchange it.
fn login_loopback(
    ctx: &Ctx,
    rt: &tokio::runtime::Runtime,
    config: &OAuthConfig,
    wait: std::time::Duration,
) -> CliResult<TokenSet> {
    let flow = LoopbackFlow::new(config.clone())?;
    let pending = rt.block_on(flow.start())?;
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({
                "event": "prompt",
                "authorize_url": pending.authorize_url(),
                "redirect_uri": pending.redirect_uri(),
            })
        );
    } else {
        println!("{}", pending.instructions());
        println!("Waiting for the browser…");
    }
    flush_stdout();
    Ok(rt.block_on(flow.finish(pending, wait))?)
}

/// The PKCE code paste: show the URL, read the code the person pastes (the next line
/// of standard input), exchange it.
fn login_code_paste(
    ctx: &mut Ctx,
    rt: &tokio::runtime::Runtime,
    config: &OAuthConfig,
) -> CliResult<TokenSet> {
    let flow = CodePasteFlow::new(config.clone())?;
    let pending = flow.start()?;
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({ "event": "prompt", "authorize_url": pending.authorize_url() })
        );
    } else {
        println!("{}", pending.instructions());
        print!("paste the code: ");
    }
    flush_stdout();
    let Some(code) = ctx.next_stdin_line()? else {
        return Err("standard input ended before the code was pasted: nothing was stored".into());
    };
    // Held as a secret (wiped on drop) though it is single-use and short-lived.
    let code = syncfabric::vault::Secret::new(code);
    Ok(rt.block_on(flow.finish(pending, code.expose()))?)
}

/// `provider:name` from what the person typed, given the stored accounts.
fn resolve_account(given: Option<&str>, stored: &[String]) -> CliResult<String> {
    match given {
        Some(a) if a.contains(':') => Ok(a.to_string()),
        Some(name) => {
            let hits: Vec<&String> = stored
                .iter()
                .filter(|k| k.split_once(':').is_some_and(|(_, n)| n == name))
                .collect();
            match hits.as_slice() {
                [one] => Ok((*one).clone()),
                [] => Err(format!("no account named {name:?} (see `syncfabric accounts`)").into()),
                _ => Err(format!(
                    "{name:?} is logged in at several providers: say which ({})",
                    hits.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
                .into()),
            }
        }
        None => match stored {
            [one] => Ok(one.clone()),
            [] => Err("no account is logged in".into()),
            _ => Err(format!(
                "several accounts are logged in: say which ({})",
                stored.join(", ")
            )
            .into()),
        },
    }
}

pub fn logout_cmd(ctx: &mut Ctx, args: LogoutArgs) -> CliResult {
    if !token_file(ctx).exists() {
        return Err("no account is logged in".into());
    }
    let store = open_store(ctx)?;
    let rt = runtime()?;
    let stored = rt.block_on(store.accounts())?;
    let key = resolve_account(args.account.as_deref(), &stored)?;
    if !stored.contains(&key) {
        return Err(format!("{key} is not logged in (see `syncfabric accounts`)").into());
    }
    let revoked = revoke_login(ctx, &rt, &store, &key);
    rt.block_on(store.delete(&key))?;
    let users: Vec<String> = remotes_using(ctx, &key);
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "logged_out": key,
            // true: nothing of this login works at the provider any more.
            "revoked": revoked.as_ref().map(|r| r.is_ok()),
            "already_invalid": revoked.as_ref().map(|r| matches!(r, Ok(Revocation::AlreadyInvalid))),
            "revoke_error": revoked.as_ref().and_then(|r| r.as_ref().err()),
            "remotes_using_it": users,
        }));
    } else {
        match &revoked {
            Some(Ok(Revocation::Revoked)) => println!(
                "logged out: {key} (its tokens were revoked at the provider and removed from this machine)"
            ),
            Some(Ok(_)) => println!(
                "logged out: {key} (the provider no longer accepted this login: it was revoked or had expired already; its tokens were removed from this machine)"
            ),
            Some(Err(e)) => println!(
                "logged out: {key} (its tokens were removed from this machine, but revoking them at the provider failed: {e}; revoke the app's access in your account settings to end it everywhere)"
            ),
            None => println!(
                "logged out: {key} (its tokens were removed from this machine; revoke the app's access in your account settings to end it everywhere)"
            ),
        }
        if !users.is_empty() {
            println!(
                "remotes that used it need a new login: {}",
                users.join(", ")
            );
        }
    }
    Ok(())
}

/// Revokes the login `key` at its provider, when the provider declares a revoke URL
/// (`None` otherwise): with its access token, refreshed first if it expired, and once
/// more if the provider refuses it. A failure is returned as text; the caller deletes
/// the local tokens anyway.
fn revoke_login(
    ctx: &Ctx,
    rt: &tokio::runtime::Runtime,
    store: &Arc<EncryptedFileTokenStore>,
    key: &str,
) -> Option<Result<Revocation, String>> {
    let (provider, name) = key.split_once(':')?;
    syncfabric::remote::login_spec(provider)?.revoke_url?;
    let result = stored_login_config(ctx, rt, store.as_ref(), provider, name)
        .map_err(|e| e.to_string())
        .and_then(|(config, _)| {
            let store: Arc<dyn TokenStore> = store.clone();
            let bearer = OAuthBearer::new(config, store, name).map_err(|e| e.to_string())?;
            rt.block_on(bearer.revoke()).map_err(|e| e.to_string())
        });
    Some(result)
}

fn remotes_using(ctx: &Ctx, key: &str) -> Vec<String> {
    let Some((provider, name)) = key.split_once(':') else {
        return Vec::new();
    };
    ctx.config
        .remotes
        .iter()
        .filter(|r| {
            syncfabric::remote::account_provider(&r.url) == Some(provider)
                && r.account.as_deref().unwrap_or("default") == name
        })
        .map(|r| r.name.clone())
        .collect()
}

pub fn accounts_cmd(ctx: &mut Ctx, args: AccountsArgs) -> CliResult {
    if !token_file(ctx).exists() {
        if ctx.json {
            ctx.print_json(&serde_json::json!([]));
        } else {
            println!("no account is logged in (log in with `syncfabric login onedrive`)");
        }
        return Ok(());
    }
    let store = open_store(ctx)?;
    let rt = runtime()?;
    let keys = rt.block_on(store.accounts())?;
    let mut rows = Vec::new();
    let mut failed = 0;
    for key in &keys {
        let (provider, name) = key.split_once(':').unwrap_or(("?", key));
        let set = rt
            .block_on(store.get(key))?
            .and_then(|s| TokenSet::from_secret(&s));
        let mut row = serde_json::json!({
            "account": key,
            "provider": provider,
            "name": name,
            "expires_at": set.as_ref().and_then(|s| s.expires_at),
            "refresh_token": set.as_ref().is_some_and(|s| s.refresh_token.is_some()),
            "scope": set.as_ref().and_then(|s| s.scope.clone()),
            "browser": set.as_ref().is_some_and(|s| s.browser),
            "remotes": remotes_using(ctx, key),
        });
        if args.check {
            let browser = set.as_ref().is_some_and(|s| s.browser);
            let result = stored_login_config(ctx, &rt, store.as_ref(), provider, name)
                .map_err(|e| e.to_string())
                .and_then(|(c, _)| {
                    let b = OAuthBearer::new(c, store.clone(), name).map_err(|e| e.to_string())?;
                    rt.block_on(b.refresh_now()).map_err(|e| match e {
                        syncfabric_auth::AuthError::LoginRequired { .. } => {
                            let browser = if browser { " --browser" } else { "" };
                            format!("{e}: `syncfabric login {provider}{browser} --account {name}`")
                        }
                        e => e.to_string(),
                    })
                });
            match result {
                Ok(fresh) => {
                    row["check"] = "ok".into();
                    row["expires_at"] = fresh.expires_at.into();
                }
                Err(e) => {
                    failed += 1;
                    row["check"] = e.into();
                }
            }
        }
        rows.push(row);
    }
    if ctx.json {
        ctx.print_json(&serde_json::Value::Array(rows));
    } else if rows.is_empty() {
        println!("no account is logged in (log in with `syncfabric login onedrive`)");
    } else {
        let now = syncfabric_auth::unix_now();
        for r in &rows {
            let expiry = match r["expires_at"].as_u64() {
                Some(at) if at > now => format!("access token valid {} min", (at - now) / 60),
                Some(_) => "access token expired (refreshed on use)".to_string(),
                None => "no expiry given".to_string(),
            };
            let remotes = r["remotes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            print!("{:<28} {expiry}", r["account"].as_str().unwrap_or("?"));
            if !remotes.is_empty() {
                print!("; remotes: {remotes}");
            }
            if let Some(c) = r.get("check").and_then(|c| c.as_str()) {
                print!("; check: {c}");
            }
            println!();
        }
    }
    if failed > 0 {
        return Err(format!("{failed} login(s) no longer work (see above)").into());
    }
    Ok(())
}

/// The bearer of a cloud remote: `account` (default `"default"`) of `provider`, from
/// the token file.
pub fn bearer_for(
    ctx: &mut Ctx,
    provider: &str,
    account: Option<&str>,
) -> CliResult<Arc<dyn BearerAuth>> {
    let name = account.unwrap_or("default");
    if !token_file(ctx).exists() {
        return Err(format!(
            "no login for {provider}: run `syncfabric login {provider} --account {name}` first"
        )
        .into());
    }
    let store: Arc<dyn TokenStore> = open_store(ctx)?;
    let (config, browser) = stored_login_config(ctx, &runtime()?, store.as_ref(), provider, name)?;
    let bearer = OAuthBearer::new(config, store, name)?;
    *LOGIN_IN_USE.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((provider.to_string(), name.to_string(), browser));
    Ok(Arc::new(bearer))
}

/// The login this run handed to a remote (provider, account), for the hint after a
/// refused login: the layers below say which login failed in words, and only the
/// command line knows its own command.
static LOGIN_IN_USE: std::sync::Mutex<Option<(String, String, bool)>> = std::sync::Mutex::new(None);

/// The command that logs in again the account this run used, if it used one.
pub fn login_again_hint() -> Option<String> {
    let used = LOGIN_IN_USE.lock().unwrap_or_else(|p| p.into_inner());
    used.as_ref().map(|(provider, account, browser)| {
        let browser = if *browser { " --browser" } else { "" };
        format!("log in again with `syncfabric login {provider}{browser} --account {account}`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::config::{Config, OAuthOverride};

    fn ctx(config: Config) -> Ctx {
        Ctx {
            json: false,
            quiet: false,
            vault: None,
            keyfile: None,
            password_stdin: false,
            config_path: PathBuf::from("/cfg/syncfabric/config.toml"),
            config,
            stdin_lines: None,
        }
    }

    #[test]
    fn config_overrides_defaults() {
        let mut config = Config::default();
        config.oauth.insert(
            "sharepoint".into(),
            OAuthOverride {
                client_id: Some("cid".into()),
                tenant: Some("contoso.example".into()),
                scopes: Some(vec!["offline_access".into(), "Sites.Selected".into()]),
                ..Default::default()
            },
        );
        let c = oauth_config(&ctx(config.clone()), "sharepoint").unwrap();
        assert_eq!(c.client_id, "cid");
        assert_eq!(
            c.token_url,
            "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token"
        );
        assert_eq!(c.scopes, ["offline_access", "Sites.Selected"]);
        config.oauth.get_mut("sharepoint").unwrap().token_url =
            Some("http://evil.example/token".into());
        assert!(
            oauth_config(&ctx(config), "sharepoint").is_err(),
            "http off loopback"
        );
        assert_eq!(
            token_file(&ctx(Config::default())),
            PathBuf::from("/cfg/syncfabric/tokens.enc")
        );
    }

    #[test]
    fn a_code_paste_login_takes_its_own_overrides() {
        let mut config = Config::default();
        config.oauth.insert(
            "dropbox".into(),
            OAuthOverride {
                client_id: Some("app-key".into()),
                authorize_url: Some("http://127.0.0.1:9/oauth2/authorize".into()),
                revoke_url: Some("http://127.0.0.1:9/2/auth/token/revoke".into()),
                // Not its flow: ignored rather than turning it into a device login.
                device_authorization_url: Some("http://127.0.0.1:9/devicecode".into()),
                ..Default::default()
            },
        );
        let c = oauth_config(&ctx(config.clone()), "dropbox").unwrap();
        assert_eq!(c.authorize_url, "http://127.0.0.1:9/oauth2/authorize");
        assert_eq!(c.device_authorization_url, "");
        assert_eq!(
            c.revoke_url.as_deref(),
            Some("http://127.0.0.1:9/2/auth/token/revoke")
        );
        // The provider's own authorize parameters come from its spec.
        assert!(!c.authorize_params.is_empty());
        config.oauth.get_mut("dropbox").unwrap().client_id = None;
        let err = oauth_config(&ctx(config), "dropbox")
            .unwrap_err()
            .to_string();
        assert!(err.contains("SYNCFABRIC_DROPBOX_CLIENT_ID"), "{err}");
        // OneDrive declares no revoke URL: an override cannot invent one.
        let mut od = Config::default();
        od.oauth.insert(
            "onedrive".into(),
            OAuthOverride {
                client_id: Some("cid".into()),
                revoke_url: Some("https://example.invalid/revoke".into()),
                ..Default::default()
            },
        );
        assert_eq!(oauth_config(&ctx(od), "onedrive").unwrap().revoke_url, None);
    }

    #[test]
    fn account_names_resolve() {
        let stored = vec![
            "onedrive:a".to_string(),
            "sharepoint:a".into(),
            "onedrive:b".into(),
        ];
        assert_eq!(resolve_account(Some("b"), &stored).unwrap(), "onedrive:b");
        assert_eq!(
            resolve_account(Some("sharepoint:a"), &stored).unwrap(),
            "sharepoint:a"
        );
        assert!(resolve_account(Some("a"), &stored).is_err(), "ambiguous");
        assert!(resolve_account(Some("zz"), &stored).is_err());
        assert!(resolve_account(None, &stored).is_err());
        assert_eq!(resolve_account(None, &stored[2..]).unwrap(), "onedrive:b");
        assert!(valid_account_name("alice@example.com") && !valid_account_name("a b"));
    }
}
