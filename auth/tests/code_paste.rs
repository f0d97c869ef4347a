//! The PKCE code-paste login, refresh and revocation against the fake authorisation
//! server (syncfabric_conformance::oauth_fake) on 127.0.0.1: the test plays the
//! person, reading the challenge from the URL the flow built and approving it at the
//! fake, which checks the verifier as RFC 7636 §4.6 says.

use std::sync::Arc;
use syncfabric_auth::{
    pkce_challenge, revoke_with_http, AuthError, CodePasteFlow, HttpAdapter, OAuthBearer,
    OAuthConfig, PendingCodeLogin,
};
use syncfabric_conformance::oauth_fake::OAuthFake;
use syncfabric_core::auth::{BearerAuth, MemoryTokenStore, TokenStore};

const CLIENT: &str = "paste-client-id";

fn config(fake: &OAuthFake) -> OAuthConfig {
    OAuthConfig {
        provider: "dropbox".into(),
        authorize_url: fake.authorize_url(),
        token_url: fake.token_url(),
        revoke_url: Some(fake.revoke_url()),
        client_id: CLIENT.into(),
        ..Default::default()
    }
}

fn http() -> HttpAdapter {
    HttpAdapter::new().unwrap()
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
