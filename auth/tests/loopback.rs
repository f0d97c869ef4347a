//! The loopback login (RFC 8252 §7.3 with PKCE) against the fake authorisation server's
//! Google-style endpoint (syncfabric_testkit::oauth_fake) on 127.0.0.1: the test
//! plays the browser, which opens the URL the flow built, follows the fake's redirect
//! to the flow's listener, and shows the page the flow answers.

use std::time::Duration;
use syncfabric_auth::{AuthError, HttpAdapter, LoopbackFlow, OAuthBearer, OAuthConfig};
use syncfabric_core::auth::{BearerAuth, MemoryTokenStore, TokenStore};
use syncfabric_testkit::oauth_fake::OAuthFake;

const CLIENT: &str = "desktop-client-id";
const SECRET: &str = "desktop-client-secret";

fn config(fake: &OAuthFake) -> OAuthConfig {
    OAuthConfig {
        provider: "google".into(),
        authorize_url: fake.loopback_authorize_url(),
        token_url: fake.token_url(),
        client_id: CLIENT.into(),
        client_secret: Some(SECRET.into()),
        scopes: vec!["https://www.googleapis.com/auth/drive".into()],
        ..Default::default()
    }
}

async fn fake() -> OAuthFake {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    fake.set_client_secret(Some(SECRET));
    fake
}

/// The browser: opens `url` and follows redirects (to the flow's listener); returns
/// the final status and page.
async fn browser(url: &str) -> (u16, String) {
    let resp = reqwest::Client::new().get(url).send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_browser_brings_the_code_back_and_the_tokens_refresh() {
    let fake = fake().await;
    let flow = LoopbackFlow::new(config(&fake)).unwrap();
    let pending = flow.start().await.unwrap();
    let url = reqwest::Url::parse(pending.authorize_url()).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["redirect_uri"], pending.redirect_uri());
    assert!(pending.redirect_uri().starts_with("http://127.0.0.1:"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["state"].len(), 64);
    assert!(!format!("{pending:?}").contains(q["state"].as_str()));
    let open = tokio::spawn(async move { browser(url.as_str()).await });
    let tokens = flow.finish(pending, Duration::from_secs(20)).await.unwrap();
    let (status, page) = open.await.unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("Signed in"), "{page}");
    assert!(tokens.refresh_token.is_some());
    assert_eq!(fake.code_exchanges(), ["tokens"]);

    // Stored and refreshed like any login (the secret goes with the refresh too).
    let store = std::sync::Arc::new(MemoryTokenStore::default());
    store.put("google:me", tokens.to_secret()).await.unwrap();
    let bearer = OAuthBearer::with_http(
        config(&fake),
        store.clone() as std::sync::Arc<dyn TokenStore>,
        "me",
        HttpAdapter::new().unwrap(),
    )
    .unwrap();
    let first = bearer.bearer().await.unwrap();
    // The server rejected it: the bearer refreshes (with the secret) and hands out
    // another.
    bearer.rejected(&first).await.unwrap();
    let second = bearer.bearer().await.unwrap();
    assert_ne!(first.expose(), second.expose());
}

#[tokio::test]
async fn a_refused_consent_is_denied_and_nothing_is_exchanged() {
    let fake = fake().await;
    fake.set_deny_consent(true);
    let flow = LoopbackFlow::new(config(&fake)).unwrap();
    let pending = flow.start().await.unwrap();
    let url = pending.authorize_url().to_string();
    let open = tokio::spawn(async move { browser(&url).await });
    let e = flow
        .finish(pending, Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Denied), "{e}");
    let (_, page) = open.await.unwrap();
    assert!(page.contains("refused"), "{page}");
    assert!(fake.code_exchanges().is_empty());
}

/// A request to the listener with another state (a page trying to plant its own code)
/// is answered 404 and ignored; the real redirect still completes the login.
#[tokio::test]
async fn a_foreign_redirect_is_ignored_and_the_real_one_still_counts() {
    let fake = fake().await;
    let flow = LoopbackFlow::new(config(&fake)).unwrap();
    let pending = flow.start().await.unwrap();
    let (redirect, url) = (
        pending.redirect_uri().to_string(),
        pending.authorize_url().to_string(),
    );
    let both = tokio::spawn(async move {
        let forged = browser(&format!("{redirect}?state=forged&code=planted")).await;
        let favicon = browser(&format!("{redirect}favicon.ico")).await;
        let real = browser(&url).await;
        (forged, favicon, real)
    });
    flow.finish(pending, Duration::from_secs(20)).await.unwrap();
    let (forged, favicon, real) = both.await.unwrap();
    assert_eq!((forged.0, favicon.0, real.0), (404, 404, 200));
    assert_eq!(
        fake.code_exchanges(),
        ["tokens"],
        "the planted code was never sent"
    );
}

#[tokio::test]
async fn no_browser_in_time_expires_and_a_wrong_secret_is_refused() {
    let fake = fake().await;
    let flow = LoopbackFlow::new(config(&fake)).unwrap();
    let pending = flow.start().await.unwrap();
    let e = flow
        .finish(pending, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Expired), "{e}");

    let mut wrong = config(&fake);
    wrong.client_secret = Some("not it".into());
    let flow = LoopbackFlow::new(wrong).unwrap();
    let pending = flow.start().await.unwrap();
    let url = pending.authorize_url().to_string();
    let open = tokio::spawn(async move { browser(&url).await });
    let e = flow
        .finish(pending, Duration::from_secs(20))
        .await
        .unwrap_err();
    open.await.unwrap();
    assert!(
        matches!(&e, AuthError::Server { error, .. } if error == "invalid_client"),
        "{e}"
    );
}
