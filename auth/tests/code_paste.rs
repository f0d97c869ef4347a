//! The PKCE code-paste login, refresh and revocation against the fake authorisation
//! server (syncfabric_testkit::oauth_fake) on 127.0.0.1: the test plays the
//! person, reading the challenge from the URL the flow built and approving it at the
//! fake, which checks the verifier as RFC 7636 §4.6 says.

use std::sync::Arc;
use std::time::Duration;
use syncfabric_auth::{
    pkce_challenge, revoke_with_http, AuthError, CodePasteFlow, HttpAdapter, OAuthBearer,
    OAuthConfig, PendingCodeLogin, Revocation, TokenSet,
};
use syncfabric_core::auth::{BearerAuth, MemoryTokenStore, TokenStore};
use syncfabric_testkit::oauth_fake::OAuthFake;

const CLIENT: &str = "paste-client-id";

fn config(fake: &OAuthFake) -> OAuthConfig {
    OAuthConfig {
        provider: "dropbox".into(),
        authorize_url: fake.authorize_url(),
        token_url: fake.token_url(),
        revoke_url: Some(fake.revoke_url()),
        client_id: CLIENT.into(),
        // What `syncfabric_dropbox::DROPBOX_LOGIN` declares.
        authorize_params: vec![("token_access_type".into(), "offline".into())],
        ..Default::default()
    }
}

fn http() -> HttpAdapter {
    HttpAdapter::new().unwrap()
}

/// No timers of its own: with tokio's clock paused, time moves only when a test
/// advances it (and the fake's code and token lifetimes run on that clock).
fn untimed() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(None)
        .build()
        .unwrap()
}

/// The person opens the URL the flow built: the fake's page checks the request,
/// approves, and shows the code (or refuses: the status and its `error`).
async fn open_page(url: &str) -> Result<String, (u16, String)> {
    let resp = untimed().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    if status == 200 {
        Ok(body["code"].as_str().unwrap().to_string())
    } else {
        Err((status, body["error"].as_str().unwrap_or("").to_string()))
    }
}

/// What the person approves: the `code_challenge` of the URL the flow built.
fn challenge_of(pending: &PendingCodeLogin) -> String {
    let url = reqwest::Url::parse(pending.authorize_url()).unwrap();
    assert!(pending
        .authorize_url()
        .starts_with(&format!("{}?", config_url(&url))));
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], CLIENT);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["token_access_type"], "offline");
    assert!(!q.contains_key("redirect_uri"));
    q["code_challenge"].clone()
}

fn config_url(url: &reqwest::Url) -> String {
    format!("{}://{}{}", url.scheme(), url.authority(), url.path())
}

#[tokio::test]
async fn code_paste_login_refresh_and_revoke() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    fake.set_rotate_refresh_tokens(false); // as Dropbox: the refresh token stays
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let flow = CodePasteFlow::with_http(config(&fake), http()).unwrap();
    let pending = flow.start().unwrap();
    assert!(format!("{pending:?}").contains("<redacted>"));
    let code = fake.approve_code(&challenge_of(&pending));
    // Pasted with the newline and spaces a terminal adds.
    let tokens = flow
        .finish(pending, &format!("  {code}\r\n"))
        .await
        .unwrap();
    assert_eq!(fake.code_exchanges(), ["tokens"]);
    let at = tokens.access_token.expose().to_string();
    let rt = tokens
        .refresh_token
        .clone()
        .expect("offline access: a refresh token");
    assert!(fake.access_token_valid(&at));
    flow.store(store.as_ref(), "alice", &tokens).await.unwrap();

    // Refresh: a new access token, the old refresh token kept (none came back).
    let bearer = OAuthBearer::with_http(config(&fake), store.clone(), "alice", http()).unwrap();
    let fresh = bearer.refresh_now().await.unwrap();
    assert_ne!(fresh.access_token.expose(), at);
    assert_eq!(fresh.refresh_token.as_ref(), Some(&rt));
    assert_eq!(fake.refreshes().last().unwrap().answer, "tokens");
    let current = bearer.bearer().await.unwrap();
    assert!(fake.access_token_valid(current.expose()));

    // Revoke: the access token, its refresh token and its siblings die at the fake.
    revoke_with_http(&config(&fake), &current, &http())
        .await
        .unwrap();
    assert_eq!(fake.revocations(), ["revoked"]);
    assert!(!fake.access_token_valid(current.expose()));
    assert!(!fake.access_token_valid(&at));
    assert!(!fake.refresh_token_valid(rt.expose()));
    let again = revoke_with_http(&config(&fake), &current, &http()).await;
    assert!(matches!(again, Err(AuthError::Server { .. })), "{again:?}");
    let refused = bearer.refresh_now().await;
    assert!(
        matches!(refused, Err(AuthError::LoginRequired { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn wrong_verifier_reused_and_unknown_codes_are_refused() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    let flow = CodePasteFlow::with_http(config(&fake), http()).unwrap();

    // A code approved for another login's challenge: this verifier does not match.
    let other = flow.start().unwrap();
    let mine = flow.start().unwrap();
    let code = fake.approve_code(&challenge_of(&other));
    let err = flow.finish(mine, &code).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Server { error, .. } if error == "invalid_grant"),
        "{err:?}"
    );
    // The code was used up by that attempt: even the right verifier is refused now.
    let err = flow.finish(other, &code).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Server { error, .. } if error == "invalid_grant"),
        "{err:?}"
    );

    // A good code works once, and only once.
    let p1 = flow.start().unwrap();
    let code = fake.approve_code(&challenge_of(&p1));
    flow.finish(p1, &code).await.unwrap();
    let p2 = flow.start().unwrap();
    let err = flow.finish(p2, &code).await.unwrap_err();
    assert!(matches!(&err, AuthError::Server { error, .. } if error == "invalid_grant"));

    // A made-up code, and a pasted line that is no code at all (never sent).
    let p3 = flow.start().unwrap();
    assert!(flow.finish(p3, "not-a-code").await.is_err());
    let p4 = flow.start().unwrap();
    let err = flow.finish(p4, "two words").await.unwrap_err();
    assert!(matches!(err, AuthError::Config { .. }), "{err:?}");
    assert_eq!(
        fake.code_exchanges(),
        [
            "bad_verifier",
            "reused_code",
            "tokens",
            "reused_code",
            "unknown_code"
        ]
    );

    // The RFC 7636 appendix B vector, through the public helper.
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[tokio::test]
async fn another_client_id_is_refused() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    let mut c = config(&fake);
    c.client_id = "someone-else".into();
    let flow = CodePasteFlow::with_http(c, http()).unwrap();
    let p = flow.start().unwrap();
    let code = fake.approve_code(&challenge_of_any(&p));
    let err = flow.finish(p, &code).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Server { error, .. } if error == "invalid_client"),
        "{err:?}"
    );
}

fn challenge_of_any(pending: &PendingCodeLogin) -> String {
    let url = reqwest::Url::parse(pending.authorize_url()).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "code_challenge")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[tokio::test]
async fn the_page_checks_the_request_and_online_codes_bring_no_refresh_token() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    let flow = CodePasteFlow::with_http(config(&fake), http()).unwrap();

    // The URL exactly as the flow built it: approved, and the code works.
    let p = flow.start().unwrap();
    let code = open_page(p.authorize_url()).await.unwrap();
    let tokens = flow.finish(p, &code).await.unwrap();
    assert!(tokens.refresh_token.is_some(), "offline: a refresh token");

    // Without the provider's offline parameter, the server's default: no refresh
    // token (the client stores what it got; a later refresh asks to log in again).
    let mut online = config(&fake);
    online.authorize_params.clear();
    let flow_online = CodePasteFlow::with_http(online, http()).unwrap();
    let p = flow_online.start().unwrap();
    let code = open_page(p.authorize_url()).await.unwrap();
    let tokens = flow_online.finish(p, &code).await.unwrap();
    assert!(tokens.refresh_token.is_none());

    // The page refuses requests that are not a PKCE S256 code request of this client.
    let p = flow.start().unwrap();
    let url = p.authorize_url().to_string();
    let with = |from: &str, to: &str| url.replace(from, to);
    let challenge = challenge_of(&p);
    let cases = [
        (with("S256", "plain"), "invalid_request"),
        (
            with("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (with(CLIENT, "someone-else"), "invalid_client"),
        (
            format!("{url}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb"),
            "invalid_request",
        ),
        (with(&challenge, &challenge[..42]), "invalid_request"),
        (
            with("token_access_type=offline", "token_access_type=forever"),
            "invalid_request",
        ),
    ];
    for (bad, error) in cases {
        assert_eq!(
            open_page(&bad).await,
            Err((400, error.to_string())),
            "{bad}"
        );
    }
    assert_eq!(fake.authorizations().len(), 2 + 6);
}

#[tokio::test(start_paused = true)]
async fn an_expired_code_is_refused() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    fake.set_code_ttl(Duration::from_secs(300));
    let http = HttpAdapter::from_client(untimed());
    let flow = CodePasteFlow::with_http(config(&fake), http.clone()).unwrap();
    let p = flow.start().unwrap();
    let code = open_page(p.authorize_url()).await.unwrap();
    tokio::time::advance(Duration::from_secs(301)).await;
    let err = flow.finish(p, &code).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Server { error, .. } if error == "invalid_grant"),
        "{err:?}"
    );
    // Just in time works.
    let p = flow.start().unwrap();
    let code = open_page(p.authorize_url()).await.unwrap();
    tokio::time::advance(Duration::from_secs(299)).await;
    flow.finish(p, &code).await.unwrap();
    assert_eq!(fake.code_exchanges(), ["expired_code", "tokens"]);
}

async fn logged_in(fake: &OAuthFake, store: &Arc<dyn TokenStore>, name: &str) -> TokenSet {
    let flow = CodePasteFlow::with_http(config(fake), http()).unwrap();
    let p = flow.start().unwrap();
    let code = open_page(p.authorize_url()).await.unwrap();
    let tokens = flow.finish(p, &code).await.unwrap();
    flow.store(store.as_ref(), name, &tokens).await.unwrap();
    tokens
}

async fn stored(store: &Arc<dyn TokenStore>, key: &str) -> TokenSet {
    TokenSet::from_secret(&store.get(key).await.unwrap().unwrap()).unwrap()
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_and_a_rotated_refresh_token_kept() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    fake.set_rotate_refresh_tokens(true); // Dropbox does not, but may: keep what comes
    fake.set_access_ttl(30); // within REFRESH_MARGIN: every use refreshes first
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let first = logged_in(&fake, &store, "erin").await;
    let rt1 = first.refresh_token.clone().unwrap();

    let bearer = OAuthBearer::with_http(config(&fake), store.clone(), "erin", http()).unwrap();
    let at2 = bearer.bearer().await.unwrap();
    assert_ne!(at2.expose(), first.access_token.expose());
    assert!(fake.access_token_valid(at2.expose()));
    let kept = stored(&store, "dropbox:erin").await;
    let rt2 = kept.refresh_token.clone().unwrap();
    assert_eq!(rt2.expose(), fake.issued_refresh_tokens()[1]);
    assert!(
        !fake.refresh_token_valid(rt1.expose()),
        "rotated: the old one is dead"
    );

    // A new bearer (another process) refreshes with the rotated token.
    let later = OAuthBearer::with_http(config(&fake), store.clone(), "erin", http()).unwrap();
    later.bearer().await.unwrap();
    let presented: Vec<String> = fake.refreshes().into_iter().map(|r| r.presented).collect();
    assert_eq!(presented, [rt1.expose(), rt2.expose()]);
    assert!(fake.refreshes().iter().all(|r| r.answer == "tokens"));
}

#[tokio::test]
async fn revoke_refreshes_a_refused_token_and_tells_a_dead_login_apart() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    fake.set_rotate_refresh_tokens(false);
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());

    // The access token was invalidated before its expiry: refreshed once, revoked.
    let t = logged_in(&fake, &store, "fay").await;
    fake.invalidate_access_tokens();
    let bearer = OAuthBearer::with_http(config(&fake), store.clone(), "fay", http()).unwrap();
    assert_eq!(bearer.revoke().await.unwrap(), Revocation::Revoked);
    assert_eq!(fake.revocations(), ["invalid_access_token", "revoked"]);
    assert!(!fake.refresh_token_valid(t.refresh_token.unwrap().expose()));

    // Already revoked elsewhere: the refresh is refused, nothing left to revoke.
    logged_in(&fake, &store, "gus").await;
    fake.invalidate_access_tokens();
    fake.revoke_all();
    let bearer = OAuthBearer::with_http(config(&fake), store.clone(), "gus", http()).unwrap();
    assert_eq!(bearer.revoke().await.unwrap(), Revocation::AlreadyInvalid);

    // The provider cannot be reached: a transport error (the caller says so).
    logged_in(&fake, &store, "hal").await;
    let mut c = config(&fake);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    c.revoke_url = Some(format!(
        "http://{}/2/auth/token/revoke",
        closed.local_addr().unwrap()
    ));
    drop(closed);
    let bearer = OAuthBearer::with_http(c.clone(), store.clone(), "hal", http()).unwrap();
    let err = bearer.revoke().await.unwrap_err();
    assert!(matches!(err, AuthError::Transport { .. }), "{err:?}");

    // No revoke URL (a device-flow provider without one), no login: said plainly.
    c.revoke_url = None;
    let bearer = OAuthBearer::with_http(c, store.clone(), "hal", http()).unwrap();
    assert!(matches!(
        bearer.revoke().await,
        Err(AuthError::Config { .. })
    ));
    let nobody = OAuthBearer::with_http(config(&fake), store.clone(), "ivy", http()).unwrap();
    assert!(matches!(
        nobody.revoke().await,
        Err(AuthError::LoginRequired { .. })
    ));
}

#[tokio::test]
async fn no_code_verifier_or_token_in_debug_or_errors() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let flow = CodePasteFlow::with_http(config(&fake), http()).unwrap();
    let p = flow.start().unwrap();
    let code = open_page(p.authorize_url()).await.unwrap();
    let shown = format!("{p:?} {flow:?}");
    let tokens = flow.finish(p, &code).await.unwrap();
    flow.store(store.as_ref(), "jo", &tokens).await.unwrap();
    // The same code again: the error names the refusal, not the code.
    let again = flow.finish(flow.start().unwrap(), &code).await.unwrap_err();
    let bearer = OAuthBearer::with_http(config(&fake), store.clone(), "jo", http()).unwrap();
    let text = format!(
        "{shown} {tokens:?} {again:?} {again} {bearer:?} {:?}",
        stored(&store, "dropbox:jo").await
    );
    let secrets = [code]
        .into_iter()
        .chain(fake.issued_access_tokens())
        .chain(fake.issued_refresh_tokens());
    for s in secrets {
        assert!(!text.contains(&s), "{s} shown in: {text}");
    }
    assert!(text.contains("<redacted>"));
}
