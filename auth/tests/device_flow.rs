//! The device flow, refresh and revocation against the fake authorisation server
//! (syncfabric_testkit::oauth_fake) on 127.0.0.1, with tokio's clock paused so the
//! poll gaps the fake records are exactly the waits the client chose.

use std::sync::Arc;
use std::time::Duration;
use syncfabric_auth::{AuthError, DeviceFlow, HttpAdapter, OAuthBearer, OAuthConfig, TokenSet};
use syncfabric_core::auth::{BearerAuth, MemoryTokenStore, TokenStore};
use syncfabric_testkit::oauth_fake::{OAuthFake, Step};

const CLIENT: &str = "test-client-id";

fn config(fake: &OAuthFake) -> OAuthConfig {
    OAuthConfig {
        provider: "onedrive".into(),
        device_authorization_url: fake.device_authorization_url(),
        token_url: fake.token_url(),
        client_id: CLIENT.into(),
        scopes: vec!["offline_access".into(), "Files.ReadWrite".into()],
        ..Default::default()
    }
}

/// No timers of its own (no timeouts, no pool-idle reaper): with the clock paused,
/// time then moves only while the flow sleeps between polls.
fn http() -> HttpAdapter {
    HttpAdapter::from_client(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(None)
            .build()
            .unwrap(),
    )
}

async fn login(fake: &OAuthFake, store: &dyn TokenStore, name: &str) -> TokenSet {
    fake.script([Step::Approve]);
    let flow = DeviceFlow::with_http(config(fake), http()).unwrap();
    let pending = flow.start().await.unwrap();
    let tokens = flow.finish(pending).await.unwrap();
    flow.store(store, name, &tokens).await.unwrap();
    tokens
}

fn bearer(fake: &OAuthFake, store: Arc<dyn TokenStore>, name: &str) -> OAuthBearer {
    OAuthBearer::with_http(config(fake), store, name, http()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn shows_url_and_code_and_polls_at_the_interval_asked_slowing_down() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    fake.set_interval(5);
    fake.script([
        Step::Pending,
        Step::Pending,
        Step::SlowDown,
        Step::Pending,
        Step::SlowDown,
        Step::Approve,
    ]);
    let flow = DeviceFlow::with_http(config(&fake), http()).unwrap();
    let pending = flow.start().await.unwrap();

    // What the person sees.
    let p = pending.prompt().clone();
    assert_eq!(p.verification_uri, fake.verification_uri());
    assert_eq!(Some(p.user_code.clone()), fake.last_user_code());
    assert_eq!(p.interval, Duration::from_secs(5));
    assert!(p
        .verification_uri_complete
        .as_deref()
        .is_some_and(|u| u.contains(&p.user_code)));
    let text = p.instructions();
    assert!(
        text.contains(&fake.verification_uri()) && text.contains(&p.user_code),
        "{text}"
    );
    assert!(
        !format!("{pending:?}").contains("fake-dc"),
        "device code in Debug"
    );
    assert_eq!(
        fake.scopes_asked(),
        vec!["offline_access Files.ReadWrite".to_string()]
    );

    let tokens = flow.finish(pending).await.unwrap();
    assert_eq!(
        fake.issued_access_tokens(),
        vec![tokens.access_token.expose().to_string()]
    );
    assert_eq!(
        fake.issued_refresh_tokens(),
        vec![tokens.refresh_token.as_ref().unwrap().expose().to_string()]
    );
    assert!(fake.access_token_valid(tokens.access_token.expose()));

    let polls = fake.polls();
    let answers: Vec<_> = polls.iter().map(|p| p.answer).collect();
    assert_eq!(
        answers,
        [
            "authorization_pending",
            "authorization_pending",
            "slow_down",
            "authorization_pending",
            "slow_down",
            "tokens"
        ]
    );
    // The interval the fake asked for grows by 5 s after each slow_down…
    let asked: Vec<u64> = polls.iter().map(|p| p.interval_asked.as_secs()).collect();
    assert_eq!(asked, [5, 5, 5, 10, 10, 15]);
    // …and the client waited at least that long between polls, but not a second more.
    for (i, poll) in polls.iter().enumerate().skip(1) {
        let gap = poll.gap.unwrap();
        assert!(
            !poll.early(),
            "poll {i} came after {gap:?}, asked {:?}",
            poll.interval_asked
        );
        assert!(
            gap < poll.interval_asked + Duration::from_secs(1),
            "poll {i} waited {gap:?}, asked {:?}",
            poll.interval_asked
        );
    }
}

#[tokio::test(start_paused = true)]
async fn expired_and_denied_stop_with_typed_errors() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    fake.set_interval(1);
    fake.set_verification_uri_complete(false);
    let flow = DeviceFlow::with_http(config(&fake), http()).unwrap();

    fake.script([Step::Pending, Step::Expired, Step::Approve]);
    let pending = flow.start().await.unwrap();
    assert!(pending.prompt().verification_uri_complete.is_none());
    match flow.finish(pending).await {
        Err(e @ AuthError::Expired) => assert!(e.to_string().contains("expired"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.polls().len(), 2, "no poll after expired_token");

    // A fresh server for the refusal (the first one still has an Approve queued).
    let fake2 = OAuthFake::start(CLIENT).await.unwrap();
    fake2.set_interval(1);
    fake2.script([Step::Pending, Step::Pending, Step::Denied, Step::Approve]);
    let flow2 = DeviceFlow::with_http(config(&fake2), http()).unwrap();
    let pending = flow2.start().await.unwrap();
    match flow2.finish(pending).await {
        Err(e @ AuthError::Denied) => assert!(e.to_string().contains("denied"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake2.polls().len(), 3, "no poll after access_denied");
    assert!(fake2.issued_access_tokens().is_empty());
    let core: syncfabric_core::Error = AuthError::Denied.into();
    assert!(matches!(core, syncfabric_core::Error::Unauthorized { .. }));
}

#[tokio::test(start_paused = true)]
async fn wrong_client_id_is_a_server_error_not_a_hang() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    let mut c = config(&fake);
    c.client_id = "someone-else".into();
    let flow = DeviceFlow::with_http(c, http()).unwrap();
    match flow.start().await {
        Err(AuthError::Server { error, .. }) => assert_eq!(error, "invalid_client"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn bearer_uses_stored_token_refreshes_near_expiry_and_keeps_rotated_refresh_token() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    let store = Arc::new(MemoryTokenStore::new());
    // Valid for an hour: the first bearer() needs no refresh.
    let first = login(&fake, store.as_ref(), "alice").await;
    let b = bearer(&fake, store.clone(), "alice");
    assert_eq!(b.account_key(), "onedrive:alice");
    let t = b.bearer().await.unwrap();
    assert_eq!(t.expose(), first.access_token.expose());
    assert!(fake.refreshes().is_empty());

    // Tokens that expire within the refresh margin are refreshed before use.
    fake.set_access_ttl(30);
    let fresh = b.refresh_now().await.unwrap(); // now holds a 30 s token
    assert_eq!(fake.refreshes().len(), 1);
    let t2 = b.bearer().await.unwrap();
    assert_ne!(
        t2.expose(),
        fresh.access_token.expose(),
        "30 s token not refreshed"
    );
    assert!(fake.access_token_valid(t2.expose()));
    assert_eq!(fake.refreshes().len(), 2);
    // Each refresh presented the refresh token the previous one rotated in, and the
    // store holds the latest.
    let issued = fake.issued_refresh_tokens();
    let presented: Vec<_> = fake
        .refreshes()
        .iter()
        .map(|r| r.presented.clone())
        .collect();
    assert_eq!(presented, issued[..2].to_vec());
    let stored =
        TokenSet::from_secret(&store.get("onedrive:alice").await.unwrap().unwrap()).unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose(), issued[2]);
    assert_eq!(stored.access_token.expose(), t2.expose());
}

#[tokio::test(start_paused = true)]
async fn rejected_token_is_replaced() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    let store = Arc::new(MemoryTokenStore::new());
    login(&fake, store.as_ref(), "alice").await;
    let b = bearer(&fake, store.clone(), "alice");
    let t1 = b.bearer().await.unwrap();
    fake.invalidate_access_tokens();
    assert!(!fake.access_token_valid(t1.expose()));
    b.rejected(&t1).await.unwrap();
    let t2 = b.bearer().await.unwrap();
    assert_ne!(t1, t2);
    assert!(fake.access_token_valid(t2.expose()));
    // A late rejected() of the old token (another task) does not refresh again.
    b.rejected(&t1).await.unwrap();
    assert_eq!(fake.refreshes().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_bearers_refresh_once() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    let store = Arc::new(MemoryTokenStore::new());
    fake.set_access_ttl(30);
    login(&fake, store.as_ref(), "alice").await;
    fake.set_access_ttl(3600);
    let b = bearer(&fake, store.clone(), "alice");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move { b.bearer().await.unwrap() }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    assert_eq!(fake.refreshes().len(), 1, "single flight");
    assert!(got.iter().all(|t| t == &got[0]));
    assert!(fake.access_token_valid(got[0].expose()));
}

#[tokio::test(start_paused = true)]
async fn a_second_process_with_stale_tokens_adopts_the_rotated_ones() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    fake.set_access_ttl(30);
    login(&fake, store.as_ref(), "alice").await;
    let p1 = bearer(&fake, store.clone(), "alice");
    let p2 = bearer(&fake, store.clone(), "alice");
    p2.tokens().await.unwrap(); // p2 caches the login's tokens
    fake.set_access_ttl(3600);
    let t1 = p1.bearer().await.unwrap(); // refresh + rotate; the old refresh token is dead
    let t2 = p2.bearer().await.unwrap(); // must not present the dead refresh token
    assert_eq!(t1, t2);
    assert_eq!(fake.refreshes().len(), 1);
    assert!(fake.refreshes().iter().all(|r| r.answer == "tokens"));
}

#[tokio::test(start_paused = true)]
async fn revoked_refresh_token_says_log_in_again() {
    let fake = OAuthFake::start(CLIENT).await.unwrap();
    let store = Arc::new(MemoryTokenStore::new());
    fake.set_access_ttl(30);
    login(&fake, store.as_ref(), "alice").await;
    fake.revoke_all();
    let b = bearer(&fake, store.clone(), "alice");
    match b.bearer().await {
        Err(syncfabric_core::Error::Unauthorized { message }) => {
            assert!(
                message.contains("revoked")
                    && message.contains("log in to onedrive again (account alice)"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.refreshes().last().unwrap().answer, "invalid_grant");

    // Never logged in: the same advice.
    let nobody = bearer(&fake, store.clone(), "bob");
    match nobody.bearer().await {
        Err(e @ syncfabric_core::Error::Unauthorized { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("not logged in") && s.contains("log in to onedrive again (account bob)"),
                "{s}"
            )
        }
        other => panic!("{other:?}"),
    }
}
