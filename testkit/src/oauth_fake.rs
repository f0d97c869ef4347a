//! A fake OAuth 2 authorisation server on 127.0.0.1 for the login tests: the
//! device authorisation endpoint of RFC 8628, a token endpoint with the
//! `device_code` (RFC 8628 §3.4), `authorization_code` with PKCE (RFC 7636) and
//! `refresh_token` (RFC 6749 §6) grants, and a token revocation endpoint, answering
//! errors with RFC 6749 §5.2 bodies. A test scripts what the person does and reads
//! back what the client did:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use syncfabric_testkit::oauth_fake::{OAuthFake, Step};
//! let fake = OAuthFake::start("test-client").await?;
//! fake.set_interval(5);
//! fake.script([Step::Pending, Step::SlowDown, Step::Pending, Step::Approve]);
//! // point the client at fake.device_authorization_url() and fake.token_url() …
//! for poll in fake.polls() {
//!     println!("{:?} after {:?}, asked {:?}", poll.answer, poll.gap, poll.interval_asked);
//! }
//! # Ok(()) }
//! ```
//!
//! Behaviours, with the section each follows:
//! - `POST /devicecode` (RFC 8628 §3.1): form `client_id`, `scope`. Answers §3.2's
//!   `device_code`, `user_code`, `verification_uri`, `verification_uri_complete`
//!   (unless turned off, §3.3.1), `expires_in`, `interval`. An unknown client id is
//!   `400 invalid_client` (RFC 6749 §5.2).
//! - `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:device_code`
//!   (RFC 8628 §3.4): each poll of a live device code takes the next [`Step`] of the
//!   script (an empty script means `authorization_pending`) and answers as §3.5 says:
//!   `authorization_pending`, `slow_down` (the interval in force grows by 5 s for
//!   this and every later poll), `expired_token`, `access_denied` (both final: later
//!   polls get the same), or the tokens (§3.5 → RFC 6749 §5.1: `access_token`,
//!   `token_type`, `expires_in`, `refresh_token`, `scope`). A code already exchanged is
//!   `invalid_grant` (RFC 6749 §5.2).
//! - `POST /token` with `grant_type=refresh_token` (RFC 6749 §6): a live refresh token
//!   gets a new access token and — when rotation is on (the default), as Microsoft's
//!   platform does — a new refresh token; the old one stops working. An unknown, used
//!   or revoked one is `400 invalid_grant` (§5.2).
//! - `GET /oauth2/authorize` (Dropbox's authorisation page, as its OAuth guide
//!   <https://developers.dropbox.com/oauth-guide> and
//!   <https://www.dropbox.com/developers/documentation/http/documentation#oauth2-authorize>
//!   describe it for a PKCE client without a redirect): the query must name the
//!   client the fake knows, `response_type=code`, `code_challenge_method=S256` and a
//!   `code_challenge` that is 43 base64url characters (a SHA-256), and carry no
//!   `redirect_uri`; then the person "approves" at once and the page shows the code,
//!   here as `{"code": …}`. `token_access_type=offline` makes the code's tokens come
//!   with a refresh token; without it (`online`, or absent: Dropbox's short-lived
//!   default) the token answer has none. Anything else is `400` with an RFC 6749
//!   §4.1.2.1 error (`invalid_request`, `unsupported_response_type`,
//!   `invalid_client`). [`OAuthFake::approve_code`] does the same without HTTP.
//! - `POST /token` with `grant_type=authorization_code` (RFC 6749 §4.1.3 with PKCE,
//!   RFC 7636 §4.5; as Dropbox's token endpoint documents it,
//!   <https://www.dropbox.com/developers/documentation/http/documentation#oauth2-token>:
//!   form `code`, `grant_type`, `client_id`, `code_verifier`, no secret for a PKCE
//!   client, no `redirect_uri` when the authorisation had none): the code must be one
//!   the fake approved, not older than its lifetime (600 s unless
//!   [`OAuthFake::set_code_ttl`]; Dropbox documents none, the guide only calls the
//!   code short-lived), never presented before (any presentation uses it up, right
//!   or wrong), presented by the client it was issued to, no
//!   `redirect_uri`, and a verifier of 43–128 unreserved characters whose
//!   `BASE64URL(SHA256(verifier))` is the approved S256 challenge (RFC 7636 §4.6).
//!   Anything else is `400 invalid_grant` with an `error_description`. The answer is
//!   RFC 6749 §5.1's tokens, with a refresh token only for an offline code.
//! - `GET /o/oauth2/v2/auth` (Google's authorisation endpoint for a desktop app with a
//!   loopback redirect, as <https://developers.google.com/identity/protocols/oauth2/native-app>
//!   ("Step 2: Send a request to Google's OAuth 2.0 server", "Step 4: Handle the OAuth
//!   2.0 server response") describes it, RFC 8252 §7.3): the query must name the client,
//!   `response_type=code`, a non-empty `scope`, an S256 `code_challenge` and a
//!   `redirect_uri` that is `http://127.0.0.1:<port>/…` or `http://[::1]:<port>/…`;
//!   then the person approves at once and the answer is `302` to the `redirect_uri`
//!   with `code`, `scope` and the `state` it was given (with
//!   [`OAuthFake::set_deny_consent`], `error=access_denied` and the `state`). A bad
//!   request is `400` (no redirect to an unchecked URI). The code's exchange must then
//!   carry the same `redirect_uri` (RFC 6749 §4.1.3). Codes from here come with a
//!   refresh token (Google gives installed apps one).
//! - With [`OAuthFake::set_client_secret`], every `POST /token` must also carry that
//!   `client_secret` (Google's desktop clients have one, "not treated as a secret",
//!   and its token endpoint requires it), else `401 invalid_client`.
//! - `POST /2/auth/token/revoke` (Dropbox's revocation RPC,
//!   <https://www.dropbox.com/developers/documentation/http/documentation#auth-token-revoke>):
//!   authorised by `Authorization: Bearer <access token>`, no body; a live access
//!   token is revoked together with the refresh token it came from and every access
//!   token of that refresh token (`200`, body `null`); a missing, unknown, expired or
//!   revoked one is `401` with Dropbox's `invalid_access_token` error body.
//! - Any other grant is `400 unsupported_grant_type` (§5.2); all token answers carry
//!   `Cache-Control: no-store` (§5.1).
//!
//! Every poll is recorded with the time it arrived (tokio's clock, so a test with
//! paused time gets exact gaps), the gap since the previous poll of the same code, and
//! the interval the fake had asked for at that moment: a test checks the client's
//! pacing by comparing those, never by reading a wall clock.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// What the person does by the time of one poll (RFC 8628 §3.5 answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not yet: `authorization_pending`.
    Pending,
    /// The client polls too often: `slow_down` (+5 s from now on).
    SlowDown,
    /// The code ran out: `expired_token`.
    Expired,
    /// The person refused: `access_denied`.
    Denied,
    /// The person approved: the tokens.
    Approve,
}

/// One poll of the token endpoint with a device code.
#[derive(Clone, Debug)]
pub struct Poll {
    /// When it arrived (tokio's clock).
    pub at: Instant,
    /// Time since the previous poll of the same device code (`None` for the first).
    pub gap: Option<Duration>,
    /// The interval the fake had asked for when this poll arrived (the start interval
    /// plus 5 s for each `slow_down` answered before it).
    pub interval_asked: Duration,
    /// The `error` code answered, or `"tokens"`.
    pub answer: &'static str,
}

impl Poll {
    /// Whether the poll came sooner than the interval asked (RFC 8628 §3.5 says the
    /// client must wait at least that long). The first poll is never early.
    pub fn early(&self) -> bool {
        self.gap.is_some_and(|g| g < self.interval_asked)
    }
}

/// One refresh-token grant the fake answered.
#[derive(Clone, Debug)]
pub struct Refresh {
    /// The refresh token presented.
    pub presented: String,
    /// `"tokens"` or the `error` code answered.
    pub answer: &'static str,
}

struct Device {
    scope: String,
    interval: u64,
    last_poll: Option<Instant>,
    /// `None` while live; the final error once expired or denied; `Some("used")` after
    /// the tokens were issued.
    finished: Option<&'static str>,
}

/// The scope granted to a code-paste login (Dropbox sets scopes on the app, and
/// reports them in the token answer).
const CODE_SCOPE: &str = "files.content.read files.content.write";

/// One authorisation code the fake approved.
struct Code {
    challenge: String,
    client_id: String,
    /// The `redirect_uri` it was authorised with (a loopback login), if any.
    redirect_uri: Option<String>,
    /// Asked with `token_access_type=offline`: its tokens include a refresh token.
    offline: bool,
    expires: Instant,
    used: bool,
}

struct State {
    client_id: String,
    /// The secret every token request must carry, if set (Google's desktop clients).
    client_secret: Option<String>,
    /// The next loopback authorisations are refused by the person.
    deny_consent: bool,
    /// Approved authorisation codes, by code.
    codes: HashMap<String, Code>,
    code_ttl: Duration,
    /// The answer to each authorization_code grant, in order.
    code_exchanges: Vec<&'static str>,
    /// Every token issued → the grant (one login and its refreshes) it belongs to.
    grant_of: HashMap<String, u64>,
    grants: u64,
    revocations: Vec<&'static str>,
    authorizations: Vec<String>,
    interval: u64,
    expires_in: u64,
    complete_uri: bool,
    access_ttl: u64,
    rotate: bool,
    script: VecDeque<Step>,
    devices: HashMap<String, Device>,
    /// refresh token → scope, for the live ones.
    refresh_live: HashMap<String, String>,
    access_live: HashMap<String, Instant>,
    issued_access: Vec<String>,
    issued_refresh: Vec<String>,
    polls: Vec<Poll>,
    refreshes: Vec<Refresh>,
    device_requests: u64,
    scopes_asked: Vec<String>,
    last_user_code: Option<String>,
    seq: u64,
    rng: fastrand::Rng,
}

impl State {
    fn token(&mut self, kind: &str) -> String {
        self.seq += 1;
        let mut s = format!("fake-{kind}-{}-", self.seq);
        for _ in 0..24 {
            s.push(self.rng.alphanumeric());
        }
        s
    }

    fn new_grant(&mut self) -> u64 {
        self.grants += 1;
        self.grants
    }

    fn approve(
        &mut self,
        challenge: &str,
        client_id: &str,
        offline: bool,
        redirect_uri: Option<&str>,
    ) -> String {
        let code = self.token("code");
        let expires = Instant::now() + self.code_ttl;
        self.codes.insert(
            code.clone(),
            Code {
                challenge: challenge.to_string(),
                client_id: client_id.to_string(),
                redirect_uri: redirect_uri.map(str::to_string),
                offline,
                expires,
                used: false,
            },
        );
        code
    }

    /// An access token alone (no refresh token): an online code-paste login.
    fn issue_access_only(&mut self, scope: &str, grant: u64) -> String {
        let at = self.token("at");
        self.grant_of.insert(at.clone(), grant);
        self.access_live.insert(
            at.clone(),
            Instant::now() + Duration::from_secs(self.access_ttl),
        );
        self.issued_access.push(at.clone());
        format!(
            "{{\"access_token\":{},\"token_type\":\"bearer\",\"expires_in\":{},\"scope\":{}}}",
            json_str(&at),
            self.access_ttl,
            json_str(scope)
        )
    }

    fn issue(&mut self, scope: &str, grant: u64) -> String {
        let at = self.token("at");
        let rt = self.token("rt");
        self.grant_of.insert(at.clone(), grant);
        self.grant_of.insert(rt.clone(), grant);
        self.access_live.insert(
            at.clone(),
            Instant::now() + Duration::from_secs(self.access_ttl),
        );
        self.refresh_live.insert(rt.clone(), scope.to_string());
        self.issued_access.push(at.clone());
        self.issued_refresh.push(rt.clone());
        format!(
            "{{\"access_token\":{},\"token_type\":\"Bearer\",\"expires_in\":{},\"refresh_token\":{},\"scope\":{}}}",
            json_str(&at),
            self.access_ttl,
            json_str(&rt),
            json_str(scope)
        )
    }
}

/// The fake server; it stops when dropped.
pub struct OAuthFake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OAuthFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for OAuthFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthFake")
            .field("addr", &self.addr)
            .finish()
    }
}

impl OAuthFake {
    /// Starts a fake on a free 127.0.0.1 port that knows one public client,
    /// `client_id`. Defaults: interval 5 s, codes valid 900 s, access tokens valid
    /// 3600 s, refresh tokens rotate, `verification_uri_complete` given.
    pub async fn start(client_id: &str) -> std::io::Result<OAuthFake> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            client_id: client_id.to_string(),
            client_secret: None,
            deny_consent: false,
            codes: HashMap::new(),
            code_ttl: Duration::from_secs(600),
            code_exchanges: Vec::new(),
            grant_of: HashMap::new(),
            grants: 0,
            revocations: Vec::new(),
            authorizations: Vec::new(),
            interval: 5,
            expires_in: 900,
            complete_uri: true,
            access_ttl: 3600,
            rotate: true,
            script: VecDeque::new(),
            devices: HashMap::new(),
            refresh_live: HashMap::new(),
            access_live: HashMap::new(),
            issued_access: Vec::new(),
            issued_refresh: Vec::new(),
            polls: Vec::new(),
            refreshes: Vec::new(),
            device_requests: 0,
            scopes_asked: Vec::new(),
            last_user_code: None,
            seq: 0,
            rng: fastrand::Rng::with_seed(u64::from(addr.port())),
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        Ok(OAuthFake { addr, state, task })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The device authorisation endpoint.
    pub fn device_authorization_url(&self) -> String {
        format!("{}/devicecode", self.base_url())
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// The authorisation page of the code-paste flow (a test does not open it: it
    /// reads the `code_challenge` from the URL the client built and calls
    /// [`approve_code`](Self::approve_code), as the person approving would).
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth2/authorize", self.base_url())
    }

    /// The token revocation endpoint (Dropbox's `/2/auth/token/revoke`).
    pub fn revoke_url(&self) -> String {
        format!("{}/2/auth/token/revoke", self.base_url())
    }

    /// The person approves an offline authorisation request of the client the fake
    /// knows that carried the S256 `code_challenge`: returns the single-use code the
    /// page would show. (`GET` [`authorize_url`](Self::authorize_url) does the same
    /// after checking the whole request.)
    pub fn approve_code(&self, code_challenge: &str) -> String {
        let mut st = self.lock();
        let client = st.client_id.clone();
        st.approve(code_challenge, &client, true, None)
    }

    /// Google's loopback authorisation endpoint (see the module docs).
    pub fn loopback_authorize_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.base_url())
    }

    /// Makes every token request carry `secret` as `client_secret` (`None`: no secret,
    /// the default), as Google's token endpoint does for desktop clients.
    pub fn set_client_secret(&self, secret: Option<&str>) {
        self.lock().client_secret = secret.map(str::to_string);
    }

    /// Makes the person refuse (`true`) or approve (the default) loopback
    /// authorisations.
    pub fn set_deny_consent(&self, deny: bool) {
        self.lock().deny_consent = deny;
    }

    /// How long an approved code can be exchanged (default 600 s, tokio's clock).
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.lock().code_ttl = ttl;
    }

    /// Every `GET /oauth2/authorize` so far: `"approved"` or the error answered.
    pub fn authorizations(&self) -> Vec<String> {
        self.lock().authorizations.clone()
    }

    /// The answer to each `authorization_code` grant so far: `"tokens"`,
    /// `"unknown_code"`, `"expired_code"`, `"reused_code"`, `"other_client"`,
    /// `"redirect_uri"` or `"bad_verifier"`.
    pub fn code_exchanges(&self) -> Vec<&'static str> {
        self.lock().code_exchanges.clone()
    }

    /// The answer to each revocation so far: `"revoked"` or `"invalid_access_token"`.
    pub fn revocations(&self) -> Vec<&'static str> {
        self.lock().revocations.clone()
    }

    /// Whether refresh tokens rotate (a new one with each refresh, the old one dead):
    /// on by default, as Microsoft's platform does; Dropbox keeps its refresh tokens.
    pub fn set_rotate_refresh_tokens(&self, on: bool) {
        self.lock().rotate = on;
    }

    /// Whether `token` is a refresh token the fake would accept now.
    pub fn refresh_token_valid(&self, token: &str) -> bool {
        self.lock().refresh_live.contains_key(token)
    }

    /// The verification URI the fake tells the person to open.
    pub fn verification_uri(&self) -> String {
        format!("{}/device", self.base_url())
    }

    /// The polling interval (seconds) given with new device codes.
    pub fn set_interval(&self, secs: u64) {
        self.lock().interval = secs;
    }

    /// Whether new device codes come with `verification_uri_complete`.
    pub fn set_verification_uri_complete(&self, on: bool) {
        self.lock().complete_uri = on;
    }

    /// The `expires_in` (seconds) of access tokens issued from now on.
    pub fn set_access_ttl(&self, secs: u64) {
        self.lock().access_ttl = secs;
    }

    /// Appends steps to the script the device-code polls consume.
    pub fn script(&self, steps: impl IntoIterator<Item = Step>) {
        self.lock().script.extend(steps);
    }

    /// Revokes every refresh token issued so far (the person signed out everywhere,
    /// or an administrator revoked the sessions): their next use is `invalid_grant`.
    pub fn revoke_all(&self) {
        self.lock().refresh_live.clear();
    }

    /// Makes every access token issued so far invalid (as after a password change);
    /// [`access_token_valid`](Self::access_token_valid) is then false for them.
    pub fn invalidate_access_tokens(&self) {
        self.lock().access_live.clear();
    }

    /// Whether `token` is an access token this fake issued that is neither expired
    /// (by tokio's clock) nor invalidated: what a resource server would accept.
    pub fn access_token_valid(&self, token: &str) -> bool {
        self.lock()
            .access_live
            .get(token)
            .is_some_and(|until| Instant::now() < *until)
    }

    /// The user code of the most recent device code, if any.
    pub fn last_user_code(&self) -> Option<String> {
        self.lock().last_user_code.clone()
    }

    /// Every device-code poll so far, in arrival order.
    pub fn polls(&self) -> Vec<Poll> {
        self.lock().polls.clone()
    }

    /// Every refresh-token grant so far, in arrival order.
    pub fn refreshes(&self) -> Vec<Refresh> {
        self.lock().refreshes.clone()
    }

    /// Every access token issued, oldest first.
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.lock().issued_access.clone()
    }

    /// Every refresh token issued, oldest first.
    pub fn issued_refresh_tokens(&self) -> Vec<String> {
        self.lock().issued_refresh.clone()
    }

    /// How many device codes were handed out.
    pub fn device_requests(&self) -> u64 {
        self.lock().device_requests
    }

    /// The `scope` of each device authorisation request.
    pub fn scopes_asked(&self) -> Vec<String> {
        self.lock().scopes_asked.clone()
    }
}

struct Answer {
    status: u16,
    body: String,
}

fn oauth_error(status: u16, code: &str, description: &str) -> Answer {
    Answer {
        status,
        body: format!(
            "{{\"error\":{},\"error_description\":{}}}",
            json_str(code),
            json_str(description)
        ),
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn form_decode(s: &str) -> HashMap<String, String> {
    let dec = |v: &str| -> String {
        let b = v.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(b[i + 1]), hex(b[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                x => out.push(x),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (dec(k), dec(v))
        })
        .collect()
}

/// Reads one HTTP/1.1 request (headers up to 64 KiB, a `Content-Length` body up to
/// 64 KiB), answers it and closes the connection.
async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut length = 0usize;
    let mut bearer = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
            if k.trim().eq_ignore_ascii_case("authorization") {
                bearer = v.trim().strip_prefix("Bearer ").map(str::to_string);
            }
        }
    }
    if length > 64 * 1024 {
        return Ok(());
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let form = form_decode(&String::from_utf8_lossy(&body[..length.min(body.len())]));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (path, query) = (path.to_string(), form_decode(query));
    let answer = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let req = Request {
            method: &method,
            path: &path,
            form: &form,
            query: &query,
            bearer: bearer.as_deref(),
        };
        route(&mut st, &req, &local_base(&sock))
    };
    let reason = match answer.status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    if answer.status == 302 {
        // A redirect's target travels in the body of an `Answer` (see `redirect`).
        let resp = format!(
            "HTTP/1.1 302 Found\r\nLocation: {}\r\nCache-Control: no-store\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            answer.body
        );
        sock.write_all(resp.as_bytes()).await?;
        return sock.shutdown().await;
    }
    let resp = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json;charset=UTF-8\r\n\
         Cache-Control: no-store\r\nPragma: no-cache\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{}",
        answer.status,
        answer.body.len(),
        answer.body
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}

fn local_base(sock: &TcpStream) -> String {
    sock.local_addr()
        .map(|a| format!("http://{a}"))
        .unwrap_or_default()
}

/// What [`route`] needs of one request.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    form: &'a HashMap<String, String>,
    /// The URL's query.
    query: &'a HashMap<String, String>,
    /// The token of an `Authorization: Bearer` header.
    bearer: Option<&'a str>,
}

fn route(st: &mut State, req: &Request<'_>, base: &str) -> Answer {
    let form = req.form;
    if req.method == "GET" && req.path == "/oauth2/authorize" {
        return authorize(st, req.query);
    }
    if req.method == "GET" && req.path == "/o/oauth2/v2/auth" {
        return loopback_authorize(st, req.query);
    }
    if req.method != "POST" {
        return oauth_error(404, "not_found", "only POST endpoints here");
    }
    let client_ok = form.get("client_id").is_some_and(|c| *c == st.client_id);
    match req.path {
        "/2/auth/token/revoke" => revoke(st, req.bearer),
        "/devicecode" => {
            if !client_ok {
                // RFC 6749 §5.2: client authentication failed.
                return oauth_error(400, "invalid_client", "unknown client_id");
            }
            let scope = form.get("scope").cloned().unwrap_or_default();
            st.device_requests += 1;
            st.scopes_asked.push(scope.clone());
            let device_code = st.token("dc");
            let user_code: String = (0..8)
                .map(|i| {
                    if i == 4 {
                        '-'
                    } else {
                        (b'A' + st.rng.u8(0..26)) as char
                    }
                })
                .collect();
            st.last_user_code = Some(user_code.clone());
            st.devices.insert(
                device_code.clone(),
                Device {
                    scope,
                    interval: st.interval,
                    last_poll: None,
                    finished: None,
                },
            );
            let complete = if st.complete_uri {
                format!(
                    ",\"verification_uri_complete\":{}",
                    json_str(&format!("{base}/device?user_code={user_code}"))
                )
            } else {
                String::new()
            };
            // RFC 8628 §3.2 device authorization response.
            Answer {
                status: 200,
                body: format!(
                    "{{\"device_code\":{},\"user_code\":{},\"verification_uri\":{}{complete},\"expires_in\":{},\"interval\":{}}}",
                    json_str(&device_code),
                    json_str(&user_code),
                    json_str(&format!("{base}/device")),
                    st.expires_in,
                    st.interval
                ),
            }
        }
        "/token" => {
            if !client_ok {
                return oauth_error(400, "invalid_client", "unknown client_id");
            }
            if st.client_secret.is_some() && form.get("client_secret") != st.client_secret.as_ref()
            {
                return oauth_error(
                    401,
                    "invalid_client",
                    "the client secret is missing or wrong",
                );
            }
            match form.get("grant_type").map(String::as_str) {
                Some("urn:ietf:params:oauth:grant-type:device_code") => device_poll(st, form),
                Some("refresh_token") => refresh(st, form),
                Some("authorization_code") => code_exchange(st, form),
                _ => oauth_error(400, "unsupported_grant_type", "grant type not supported"),
            }
        }
        _ => oauth_error(404, "not_found", "no such endpoint"),
    }
}

/// RFC 8628 §3.4 (request) and §3.5 (answers).
fn device_poll(st: &mut State, form: &HashMap<String, String>) -> Answer {
    let code = form.get("device_code").cloned().unwrap_or_default();
    let now = Instant::now();
    let Some(dev) = st.devices.get_mut(&code) else {
        return oauth_error(400, "invalid_grant", "unknown device_code");
    };
    let gap = dev.last_poll.map(|t| now.duration_since(t));
    dev.last_poll = Some(now);
    let interval_asked = Duration::from_secs(dev.interval);
    let (answer, result) = match dev.finished {
        Some("used") => (
            "invalid_grant",
            oauth_error(400, "invalid_grant", "device_code already used"),
        ),
        Some(e) => (e, oauth_error(400, e, "final")),
        None => match st.script.pop_front().unwrap_or(Step::Pending) {
            Step::Pending => (
                "authorization_pending",
                oauth_error(400, "authorization_pending", "the user has not acted yet"),
            ),
            Step::SlowDown => {
                // §3.5: "the interval MUST be increased by 5 seconds for this and all
                // subsequent requests".
                dev.interval += 5;
                (
                    "slow_down",
                    oauth_error(400, "slow_down", "polling too fast"),
                )
            }
            Step::Expired => {
                dev.finished = Some("expired_token");
                (
                    "expired_token",
                    oauth_error(400, "expired_token", "the device_code expired"),
                )
            }
            Step::Denied => {
                dev.finished = Some("access_denied");
                (
                    "access_denied",
                    oauth_error(400, "access_denied", "the user declined"),
                )
            }
            Step::Approve => {
                dev.finished = Some("used");
                let scope = dev.scope.clone();
                let grant = st.new_grant();
                (
                    "tokens",
                    Answer {
                        status: 200,
                        body: st.issue(&scope, grant),
                    },
                )
            }
        },
    };
    st.polls.push(Poll {
        at: now,
        gap,
        interval_asked,
        answer,
    });
    result
}

/// RFC 6749 §6 refresh, with rotation.
fn refresh(st: &mut State, form: &HashMap<String, String>) -> Answer {
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    let Some(scope) = st.refresh_live.get(&presented).cloned() else {
        st.refreshes.push(Refresh {
            presented,
            answer: "invalid_grant",
        });
        return oauth_error(
            400,
            "invalid_grant",
            "the refresh token is invalid, expired or revoked",
        );
    };
    let grant = st.grant_of.get(&presented).copied().unwrap_or(0);
    let body = if st.rotate {
        st.refresh_live.remove(&presented);
        st.issue(&scope, grant)
    } else {
        let at = st.token("at");
        st.grant_of.insert(at.clone(), grant);
        st.access_live.insert(
            at.clone(),
            Instant::now() + Duration::from_secs(st.access_ttl),
        );
        st.issued_access.push(at.clone());
        format!(
            "{{\"access_token\":{},\"token_type\":\"Bearer\",\"expires_in\":{},\"scope\":{}}}",
            json_str(&at),
            st.access_ttl,
            json_str(&scope)
        )
    };
    st.refreshes.push(Refresh {
        presented,
        answer: "tokens",
    });
    Answer { status: 200, body }
}

/// `BASE64URL(SHA256(verifier))`, RFC 7636 §4.2, written apart from the client's
/// encoder (a bit buffer over RFC 4648 §5's alphabet, no padding).
fn s256(verifier: &str) -> String {
    const ABC: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let digest = openssl::sha::sha256(verifier.as_bytes());
    let (mut acc, mut bits, mut out) = (0u32, 0u32, String::new());
    for byte in digest {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ABC.as_bytes()[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ABC.as_bytes()[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn verifier_well_formed(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
}

/// RFC 6749 §4.1.3 + RFC 7636 §4.5/§4.6, as Dropbox's `/oauth2/token` documents the
/// `authorization_code` grant for a PKCE client
/// (https://www.dropbox.com/developers/documentation/http/documentation#oauth2-token).
/// The caller checked `client_id` already.
fn code_exchange(st: &mut State, form: &HashMap<String, String>) -> Answer {
    let code = form.get("code").cloned().unwrap_or_default();
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let refused = |st: &mut State, answer: &'static str, why: &str| {
        st.code_exchanges.push(answer);
        oauth_error(400, "invalid_grant", why)
    };
    let client = form.get("client_id").cloned().unwrap_or_default();
    let Some(c) = st.codes.get_mut(&code) else {
        return refused(st, "unknown_code", "code doesn't exist or has expired");
    };
    if c.used {
        return refused(st, "reused_code", "code has already been used");
    }
    // Any presentation uses the code up (RFC 6749 §4.1.2: at most once).
    c.used = true;
    let (challenge, offline, redirect) = (c.challenge.clone(), c.offline, c.redirect_uri.clone());
    if Instant::now() >= c.expires {
        return refused(st, "expired_code", "code doesn't exist or has expired");
    }
    if c.client_id != client {
        // RFC 6749 §4.1.3: the code must have been issued to this client.
        return refused(st, "other_client", "code was issued to another client");
    }
    if form.get("redirect_uri") != redirect.as_ref() {
        return refused(
            st,
            "redirect_uri",
            "redirect_uri mismatch: not the one authorised",
        );
    }
    if !verifier_well_formed(&verifier) || s256(&verifier) != challenge {
        return refused(st, "bad_verifier", "invalid code verifier");
    }
    st.code_exchanges.push("tokens");
    let grant = st.new_grant();
    let body = if offline {
        st.issue(CODE_SCOPE, grant)
    } else {
        st.issue_access_only(CODE_SCOPE, grant)
    };
    Answer { status: 200, body }
}

/// Dropbox's authorisation page for a PKCE client without a redirect URI
/// (https://developers.dropbox.com/oauth-guide, "PKCE"; parameters as
/// https://www.dropbox.com/developers/documentation/http/documentation#oauth2-authorize
/// lists them); errors as RFC 6749 §4.1.2.1 names them. The person approves at once.
fn authorize(st: &mut State, q: &HashMap<String, String>) -> Answer {
    let get = |k: &str| q.get(k).map(String::as_str);
    let refusal = if get("client_id") != Some(st.client_id.as_str()) {
        Some(("invalid_client", "unknown client_id"))
    } else if get("response_type") != Some("code") {
        Some(("unsupported_response_type", "response_type must be code"))
    } else if get("code_challenge_method") != Some("S256") {
        Some(("invalid_request", "code_challenge_method must be S256"))
    } else if !get("code_challenge").is_some_and(|c| {
        c.len() == 43
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        Some((
            "invalid_request",
            "code_challenge is not a base64url SHA-256",
        ))
    } else if q.contains_key("redirect_uri") {
        Some((
            "invalid_request",
            "redirect_uri is not registered for this app",
        ))
    } else if !matches!(get("token_access_type"), None | Some("online" | "offline")) {
        Some((
            "invalid_request",
            "token_access_type must be online or offline",
        ))
    } else {
        None
    };
    if let Some((error, why)) = refusal {
        st.authorizations.push(error.to_string());
        return oauth_error(400, error, why);
    }
    let offline = get("token_access_type") == Some("offline");
    let (challenge, client) = (
        get("code_challenge").unwrap_or_default().to_string(),
        st.client_id.clone(),
    );
    let code = st.approve(&challenge, &client, offline, None);
    st.authorizations.push("approved".to_string());
    Answer {
        status: 200,
        body: format!("{{\"code\":{}}}", json_str(&code)),
    }
}

/// A `302` to `location` (written as the `Location` header by the server loop).
fn redirect(location: String) -> Answer {
    Answer {
        status: 302,
        body: location,
    }
}

/// Whether `uri` is a loopback redirect Google accepts for a desktop app
/// (`http://127.0.0.1:<port>/…` or `http://[::1]:<port>/…`, "Loopback IP address" in
/// https://developers.google.com/identity/protocols/oauth2/native-app).
fn loopback_redirect(uri: &str) -> bool {
    let rest = uri
        .strip_prefix("http://127.0.0.1:")
        .or_else(|| uri.strip_prefix("http://[::1]:"));
    rest.is_some_and(|r| {
        let port: String = r.chars().take_while(char::is_ascii_digit).collect();
        !port.is_empty()
            && port.parse::<u16>().is_ok()
            && r[port.len()..].chars().next().is_none_or(|c| c == '/')
            && !r.contains(['#', ' '])
    })
}

/// Google's authorisation endpoint for a desktop app with a loopback redirect (see the
/// module docs); the person approves at once, or refuses with `set_deny_consent`.
fn loopback_authorize(st: &mut State, q: &HashMap<String, String>) -> Answer {
    let get = |k: &str| q.get(k).map(String::as_str);
    let redirect_uri = get("redirect_uri").unwrap_or_default().to_string();
    let refusal = if get("client_id") != Some(st.client_id.as_str()) {
        Some(("invalid_client", "unknown client_id"))
    } else if !loopback_redirect(&redirect_uri) {
        Some(("invalid_request", "redirect_uri is not a loopback address"))
    } else if get("response_type") != Some("code") {
        Some(("unsupported_response_type", "response_type must be code"))
    } else if get("scope").is_none_or(str::is_empty) {
        Some(("invalid_scope", "a scope is required"))
    } else if get("code_challenge_method") != Some("S256")
        || get("code_challenge").is_none_or(|c| c.len() != 43)
    {
        Some(("invalid_request", "an S256 code_challenge is required"))
    } else {
        None
    };
    if let Some((error, why)) = refusal {
        st.authorizations.push(error.to_string());
        return oauth_error(400, error, why);
    }
    let state = get("state").unwrap_or_default();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let state_q = format!("state={}", form_encode(state));
    if st.deny_consent {
        st.authorizations.push("access_denied".to_string());
        return redirect(format!("{redirect_uri}{sep}error=access_denied&{state_q}"));
    }
    let (challenge, client) = (
        get("code_challenge").unwrap_or_default().to_string(),
        st.client_id.clone(),
    );
    let code = st.approve(&challenge, &client, true, Some(&redirect_uri));
    st.authorizations.push("approved".to_string());
    let scope = form_encode(get("scope").unwrap_or_default());
    redirect(format!(
        "{redirect_uri}{sep}{state_q}&code={}&scope={scope}",
        form_encode(&code)
    ))
}

/// Percent-encodes everything but the unreserved characters (RFC 3986 §2.3).
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Dropbox's `/2/auth/token/revoke`
/// (https://www.dropbox.com/developers/documentation/http/documentation#auth-token-revoke):
/// the bearer access token, its refresh token and that refresh token's other access
/// tokens stop working.
fn revoke(st: &mut State, bearer: Option<&str>) -> Answer {
    let live = bearer.filter(|t| {
        st.access_live
            .get(*t)
            .is_some_and(|until| Instant::now() < *until)
    });
    let Some(token) = live else {
        st.revocations.push("invalid_access_token");
        return Answer {
            status: 401,
            body: "{\"error_summary\":\"invalid_access_token/\",\"error\":{\".tag\":\"invalid_access_token\"}}".into(),
        };
    };
    let grant = st.grant_of.get(token).copied();
    st.access_live.remove(token);
    if let Some(g) = grant {
        let of_grant = |t: &String| st.grant_of.get(t) == Some(&g);
        let dead: Vec<String> = st
            .access_live
            .keys()
            .chain(st.refresh_live.keys())
            .filter(|t| of_grant(t))
            .cloned()
            .collect();
        for t in dead {
            st.access_live.remove(&t);
            st.refresh_live.remove(&t);
        }
    }
    st.revocations.push("revoked");
    Answer {
        status: 200,
        body: "null".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_and_json_escaping() {
        let f = form_decode("a=b%20c&scope=x+y&client_id=abc&bad=%zz&e=");
        assert_eq!(f["a"], "b c");
        assert_eq!(f["scope"], "x y");
        assert_eq!(f["bad"], "%zz");
        assert_eq!(f["e"], "");
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn s256_is_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(verifier_well_formed(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!verifier_well_formed("short"));
        assert!(!verifier_well_formed(&"a b".repeat(20)));
    }
}
