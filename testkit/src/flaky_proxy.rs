//! A flaky HTTP/1.1 proxy for tests: placed between a provider and a real server on
//! 127.0.0.1, it forwards requests and, by a seeded schedule, injects `5xx` answers,
//! connection resets (before the request reaches the server, or after the server
//! handled it and before the answer is complete), `429` with `Retry-After`, latency,
//! truncated response bodies, and uploads (`PUT`) cut mid-body.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
//! use syncfabric_testkit::flaky_proxy::{FaultPlan, FlakyProxy};
//! let proxy = FlakyProxy::start(server, FaultPlan::chaos(42)).await?;
//! let url = proxy.url(); // point the provider here instead of at the server
//! # let _ = url;
//! println!("{:?}", proxy.stats());
//! # Ok(()) }
//! ```
//!
//! The proxy speaks just enough HTTP/1.1 for that: request and response bodies framed
//! by `Content-Length` or `Transfer-Encoding: chunked` (or, for responses, by closing
//! the connection); keep-alive; one upstream connection per client connection. The
//! schedule is drawn from one seeded generator in the order requests arrive, so a
//! single-client test replays exactly.
//!
//! The upstream may be HTTPS ([`FlakyProxy::start_tls`]): the provider still talks
//! plain HTTP to the proxy, and the proxy opens TLS to the server, trusting only the
//! certificates it was given (a self-signed server's, such as the Wi-Fi Sync Server's)
//! and checking that they name the target's address. Every fault is then injected on
//! the plain side, exactly as for a plain upstream; a cut upload ends the TLS stream
//! cleanly (`close_notify`, then FIN), which the server reads as the end of the body.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr, pem: &[u8]) -> std::io::Result<()> {
//! use syncfabric_testkit::flaky_proxy::{FaultPlan, FlakyProxy};
//! let proxy = FlakyProxy::start_tls(server, FaultPlan::chaos(42), pem).await?;
//! let url = proxy.url(); // http://127.0.0.1:<port>/, forwarded over https
//! # let _ = url;
//! # Ok(()) }
//! ```

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What to inject, as probabilities per request (each in `0.0..=1.0`, checked in the
/// order of the fields; at most one fault per request, plus latency independently).
#[derive(Clone, Debug)]
pub struct FaultPlan {
    /// Seed of the schedule.
    pub seed: u64,
    /// Answer `500`, `502` or `503` (no `Retry-After`) without forwarding.
    pub server_error: f64,
    /// Reset the connection before forwarding the request.
    pub reset_before: f64,
    /// Forward the request, then reset the connection instead of answering (the
    /// server did the work; the client never hears of it).
    pub reset_after: f64,
    /// Answer `429` with `Retry-After: <retry_after_secs>` without forwarding.
    pub too_many_requests: f64,
    /// The `Retry-After` value of injected `429`s, in seconds.
    pub retry_after_secs: u64,
    /// Forward, then cut the response body half-way (and reset the connection).
    pub truncate_body: f64,
    /// Delay a request by `latency` before forwarding.
    pub slow: f64,
    /// The injected delay.
    pub latency: Duration,
    /// Requests before this many have passed are never faulted (lets a test set up).
    pub grace_requests: u64,
    /// Forward a `PUT`'s head and the first half of its body, then close the
    /// connection to the server (it sees the upload end early, as when a client dies
    /// mid-upload) and reset the client's. Drawn for every request, acted on only for a
    /// `PUT` with a body (other requests then go through untouched).
    pub cut_upload: f64,
}

impl FaultPlan {
    /// No faults: a transparent proxy.
    pub fn none() -> Self {
        FaultPlan {
            seed: 0,
            server_error: 0.0,
            reset_before: 0.0,
            reset_after: 0.0,
            too_many_requests: 0.0,
            retry_after_secs: 1,
            truncate_body: 0.0,
            slow: 0.0,
            latency: Duration::from_millis(0),
            grace_requests: 0,
            cut_upload: 0.0,
        }
    }

    /// A mix close to the project's target runs: 10% 5xx, 5% resets (split before and
    /// after the server handled the request), 5% 429 with `Retry-After: 1`, 5%
    /// truncated answers, 10% of requests delayed by 50 ms.
    pub fn chaos(seed: u64) -> Self {
        FaultPlan {
            seed,
            server_error: 0.10,
            reset_before: 0.025,
            reset_after: 0.025,
            too_many_requests: 0.05,
            retry_after_secs: 1,
            truncate_body: 0.05,
            slow: 0.10,
            latency: Duration::from_millis(50),
            grace_requests: 0,
            cut_upload: 0.0,
        }
    }
}

/// Counts of what the proxy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests seen.
    pub requests: u64,
    /// Requests forwarded to the server.
    pub forwarded: u64,
    /// Injected 5xx answers.
    pub server_errors: u64,
    /// Resets before forwarding.
    pub resets_before: u64,
    /// Resets after the server handled the request.
    pub resets_after: u64,
    /// Injected 429 answers.
    pub too_many_requests: u64,
    /// Truncated response bodies.
    pub truncated: u64,
    /// Delayed requests.
    pub delayed: u64,
    /// Uploads cut mid-body.
    pub cut_uploads: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    server_errors: AtomicU64,
    resets_before: AtomicU64,
    resets_after: AtomicU64,
    too_many_requests: AtomicU64,
    truncated: AtomicU64,
    delayed: AtomicU64,
    cut_uploads: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    ServerError(u16),
    ResetBefore,
    ResetAfter,
    TooMany,
    Truncate,
    CutUpload,
}

struct Shared {
    target: SocketAddr,
    /// TLS to the server, when it speaks HTTPS: trusts only the given certificates.
    tls: Option<SslConnector>,
    plan: FaultPlan,
    rng: Mutex<fastrand::Rng>,
    counters: Counters,
}

impl Shared {
    fn draw(&self) -> (Fault, bool) {
        let n = self.counters.requests.fetch_add(1, Ordering::SeqCst);
        let Ok(mut rng) = self.rng.lock() else {
            return (Fault::None, false);
        };
        let p = &self.plan;
        let slow = rng.f64() < p.slow;
        let x = rng.f64();
        let code = [500u16, 502, 503][rng.usize(0..3)];
        if n < p.grace_requests {
            return (Fault::None, false);
        }
        let mut acc = 0.0;
        let mut pick = |prob: f64| {
            acc += prob;
            x < acc
        };
        let fault = if pick(p.server_error) {
            Fault::ServerError(code)
        } else if pick(p.reset_before) {
            Fault::ResetBefore
        } else if pick(p.reset_after) {
            Fault::ResetAfter
        } else if pick(p.too_many_requests) {
            Fault::TooMany
        } else if pick(p.truncate_body) {
            Fault::Truncate
        } else if pick(p.cut_upload) {
            Fault::CutUpload
        } else {
            Fault::None
        };
        (fault, slow)
    }
}

/// A running proxy; stops when dropped.
pub struct FlakyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FlakyProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlakyProxy")
            .field("addr", &self.addr)
            .field("target", &self.shared.target)
            .field("tls", &self.shared.tls.is_some())
            .finish()
    }
}

impl FlakyProxy {
    /// Listens on `127.0.0.1:0` and forwards to `target` with faults from `plan`.
    pub async fn start(target: SocketAddr, plan: FaultPlan) -> std::io::Result<FlakyProxy> {
        Self::start_with(target, plan, None).await
    }

    /// Listens on `127.0.0.1:0` (plain HTTP) and forwards to the HTTPS server at
    /// `target` with faults from `plan`. The server's certificate must be one of
    /// `trusted_cert_pem` (one or more PEM certificates; nothing else is trusted, not
    /// even the system's roots) and name `target`'s IP address. A server that presents
    /// another certificate gets no request: the client's connection is closed.
    pub async fn start_tls(
        target: SocketAddr,
        plan: FaultPlan,
        trusted_cert_pem: &[u8],
    ) -> std::io::Result<FlakyProxy> {
        let tls = tls_connector(trusted_cert_pem)?;
        Self::start_with(target, plan, Some(tls)).await
    }

    async fn start_with(
        target: SocketAddr,
        plan: FaultPlan,
        tls: Option<SslConnector>,
    ) -> std::io::Result<FlakyProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            tls,
            rng: Mutex::new(fastrand::Rng::with_seed(plan.seed)),
            plan,
            counters: Counters::default(),
        });
        let s2 = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let s = s2.clone();
                tokio::spawn(async move {
                    let _ = serve(client, s).await;
                });
            }
        });
        Ok(FlakyProxy { addr, shared, task })
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        ProxyStats {
            requests: l(&c.requests),
            forwarded: l(&c.forwarded),
            server_errors: l(&c.server_errors),
            resets_before: l(&c.resets_before),
            resets_after: l(&c.resets_after),
            too_many_requests: l(&c.too_many_requests),
            truncated: l(&c.truncated),
            delayed: l(&c.delayed),
            cut_uploads: l(&c.cut_uploads),
        }
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a message body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

struct Head {
    raw: Vec<u8>,
    framing: Framing,
    /// Request: the method; response: the status code as text.
    first: String,
    close: bool,
}

const MAX_HEAD: usize = 64 * 1024;

/// Reads a message head; `Ok(None)` at a clean EOF before any byte.
async fn read_head<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    request: bool,
) -> std::io::Result<Option<Head>> {
    let mut raw = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut raw).await?;
        if n == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "head cut",
            ));
        }
        if raw.len() > MAX_HEAD {
            return Err(std::io::Error::other("head too large"));
        }
        if raw.ends_with(b"\r\n\r\n") || raw.ends_with(b"\n\n") {
            break;
        }
        if raw == b"\r\n" {
            raw.clear(); // tolerate a stray CRLF between messages
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let mut lines = text.lines();
    let start = lines.next().unwrap_or("");
    let mut parts = start.split_whitespace();
    let first = if request {
        parts.next().unwrap_or("").to_string()
    } else {
        parts.nth(1).unwrap_or("").to_string()
    };
    let mut framing = if request {
        Framing::Length(0)
    } else {
        Framing::UntilClose
    };
    let mut close = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        if k == "content-length" {
            if let Ok(n) = v.parse() {
                if framing != Framing::Chunked {
                    framing = Framing::Length(n);
                }
            }
        } else if k == "transfer-encoding" && v.contains("chunked") {
            framing = Framing::Chunked;
        } else if k == "connection" && v.contains("close") {
            close = true;
        }
    }
    Ok(Some(Head {
        raw,
        framing,
        first,
        close,
    }))
}

/// Copies a body framed by `framing` from `r` to `w` (if given), stopping after
/// `limit` bytes of the raw stream when set. Returns false if it stopped at `limit`.
async fn copy_body<R, W>(
    r: &mut BufReader<R>,
    mut w: Option<&mut W>,
    framing: Framing,
    limit: Option<u64>,
) -> std::io::Result<bool>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut budget = limit.unwrap_or(u64::MAX);
    let mut buf = vec![0u8; 64 * 1024];
    macro_rules! emit {
        ($bytes:expr) => {{
            let b: &[u8] = $bytes;
            let take = (b.len() as u64).min(budget) as usize;
            if let Some(w) = w.as_mut() {
                w.write_all(&b[..take]).await?;
            }
            budget -= take as u64;
            if take < b.len() || (budget == 0 && limit.is_some()) {
                return Ok(false);
            }
        }};
    }
    match framing {
        Framing::Length(mut n) => {
            while n > 0 {
                let want = (n as usize).min(buf.len());
                let got = r.read(&mut buf[..want]).await?;
                if got == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "body cut",
                    ));
                }
                emit!(&buf[..got]);
                n -= got as u64;
            }
        }
        Framing::UntilClose => loop {
            let got = r.read(&mut buf).await?;
            if got == 0 {
                break;
            }
            emit!(&buf[..got]);
        },
        Framing::Chunked => loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line).await?;
            if line.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "chunk cut",
                ));
            }
            emit!(&line);
            let size_txt = String::from_utf8_lossy(&line);
            let size =
                u64::from_str_radix(size_txt.trim().split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers up to the empty line.
                loop {
                    let mut t = Vec::new();
                    r.read_until(b'\n', &mut t).await?;
                    if t.is_empty() {
                        return Ok(true);
                    }
                    emit!(&t);
                    if t == b"\r\n" || t == b"\n" {
                        return Ok(true);
                    }
                }
            }
            let mut left = size + 2; // data + CRLF
            while left > 0 {
                let want = (left as usize).min(buf.len());
                let got = r.read(&mut buf[..want]).await?;
                if got == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "chunk cut",
                    ));
                }
                emit!(&buf[..got]);
                left -= got as u64;
            }
        },
    }
    Ok(true)
}

fn reset(stream: TcpStream) {
    // SO_LINGER 0: the close sends RST instead of FIN. (Deprecated because a non-zero
    // linger blocks on drop; a zero linger never does.)
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// The client's side of a proxied connection, buffered for reading heads.
type ClientReader = BufReader<tokio::net::tcp::OwnedReadHalf>;
/// The client's side of a proxied connection, for writing answers.
type ClientWriter = tokio::net::tcp::OwnedWriteHalf;
/// A byte stream to the server: plain TCP, or TLS over it.
trait UpstreamIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> UpstreamIo for T {}
/// The server's side of a proxied connection, buffered for reading heads.
type UpReader = BufReader<tokio::io::ReadHalf<Box<dyn UpstreamIo>>>;
/// The server's side of a proxied connection, for writing requests.
type UpWriter = tokio::io::WriteHalf<Box<dyn UpstreamIo>>;
/// The connection to the server: its buffered read half and its write half.
type Upstream = (UpReader, UpWriter);

/// A TLS client trusting exactly the certificates in `pem` (at least one), HTTP/1.1
/// by ALPN, peer verification on.
fn tls_connector(pem: &[u8]) -> std::io::Result<SslConnector> {
    let certs = X509::stack_from_pem(pem).map_err(std::io::Error::other)?;
    if certs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no PEM certificate to trust",
        ));
    }
    let build = || -> Result<SslConnector, openssl::error::ErrorStack> {
        let mut store = X509StoreBuilder::new()?;
        for cert in certs {
            store.add_cert(cert)?;
        }
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        // Replaces the default store (the system's roots): only `pem` is trusted.
        b.set_cert_store(store.build());
        b.set_verify(SslVerifyMode::PEER);
        b.set_alpn_protos(b"\x08http/1.1")?;
        Ok(b.build())
    };
    build().map_err(std::io::Error::other)
}

/// Proxies one client connection, request by request, injecting the faults `s` draws.
async fn serve(client: TcpStream, s: Arc<Shared>) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let (cr, mut cw) = client.into_split();
    let mut cr = BufReader::with_capacity(64 * 1024, cr);
    let mut upstream: Option<Upstream> = None;
    let c = &s.counters;
    loop {
        let Some(req) = read_head(&mut cr, true).await? else {
            return Ok(());
        };
        let (fault, slow) = s.draw();
        if slow {
            c.delayed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(s.plan.latency).await;
        }
        match fault {
            Fault::ResetBefore => {
                c.resets_before.fetch_add(1, Ordering::SeqCst);
                return reset_client(cr, cw);
            }
            Fault::ServerError(_) | Fault::TooMany => {
                return answer_injected(&mut cr, &mut cw, req.framing, fault, &s).await;
            }
            _ => {}
        }
        if upstream.is_none() {
            upstream = Some(connect_upstream(&s).await?);
        }
        let Some((ur, uw)) = upstream.as_mut() else {
            return Ok(());
        };
        c.forwarded.fetch_add(1, Ordering::SeqCst);
        uw.write_all(&req.raw).await?;
        if fault == Fault::CutUpload && req.first.eq_ignore_ascii_case("PUT") {
            let half = match req.framing {
                Framing::Length(n) => n / 2,
                _ => 4096,
            };
            if half > 0 {
                c.cut_uploads.fetch_add(1, Ordering::SeqCst);
                return cut_upload(cr, cw, ur, uw, req.framing, half).await;
            }
        }
        copy_body(&mut cr, Some(uw), req.framing, None).await?;
        uw.flush().await?;
        let Some(resp) = read_response(ur, &mut cw).await? else {
            return Ok(());
        };
        let no_body =
            req.first.eq_ignore_ascii_case("HEAD") || resp.first == "204" || resp.first == "304";
        let framing = if no_body {
            Framing::Length(0)
        } else {
            resp.framing
        };
        match fault {
            Fault::ResetAfter => {
                c.resets_after.fetch_add(1, Ordering::SeqCst);
                return reset_client(cr, cw);
            }
            Fault::Truncate => {
                c.truncated.fetch_add(1, Ordering::SeqCst);
                return truncate_response(cr, cw, ur, &resp, framing).await;
            }
            _ => {}
        }
        cw.write_all(&resp.raw).await?;
        copy_body(ur, Some(&mut cw), framing, None).await?;
        cw.flush().await?;
        if resp.close || req.close || framing == Framing::UntilClose {
            cw.shutdown().await?;
            return Ok(());
        }
    }
}

/// Resets the client's connection (see [`reset`]), given back as its two halves.
fn reset_client(cr: ClientReader, cw: ClientWriter) -> std::io::Result<()> {
    let client = cr
        .into_inner()
        .reunite(cw)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    reset(client);
    Ok(())
}

/// Opens the connection to the server, with the TLS handshake when it speaks HTTPS
/// (the certificate checked against the trusted ones and the target's IP address).
async fn connect_upstream(s: &Shared) -> std::io::Result<Upstream> {
    let up = TcpStream::connect(s.target).await?;
    let _ = up.set_nodelay(true);
    let io: Box<dyn UpstreamIo> = match &s.tls {
        None => Box::new(up),
        Some(connector) => {
            let ssl = connector
                .configure()
                .and_then(|c| c.into_ssl(&s.target.ip().to_string()))
                .map_err(std::io::Error::other)?;
            let mut tls = tokio_openssl::SslStream::new(ssl, up).map_err(std::io::Error::other)?;
            Pin::new(&mut tls)
                .connect()
                .await
                .map_err(std::io::Error::other)?;
            Box::new(tls)
        }
    };
    let (ur, uw) = tokio::io::split(io);
    Ok((BufReader::with_capacity(64 * 1024, ur), uw))
}

/// A `5xx` or `429` fault: swallows the request body, answers with the injected status,
/// closes.
async fn answer_injected(
    cr: &mut ClientReader,
    cw: &mut ClientWriter,
    framing: Framing,
    fault: Fault,
    s: &Shared,
) -> std::io::Result<()> {
    let c = &s.counters;
    // Swallow the request body, answer, close.
    copy_body::<_, tokio::net::tcp::OwnedWriteHalf>(cr, None, framing, None).await?;
    let (status, extra) = if fault == Fault::TooMany {
        c.too_many_requests.fetch_add(1, Ordering::SeqCst);
        (
            "429 Too Many Requests".to_string(),
            format!("Retry-After: {}\r\n", s.plan.retry_after_secs),
        )
    } else {
        c.server_errors.fetch_add(1, Ordering::SeqCst);
        let code = if let Fault::ServerError(code) = fault {
            code
        } else {
            500
        };
        let text = match code {
            500 => "500 Internal Server Error",
            502 => "502 Bad Gateway",
            _ => "503 Service Unavailable",
        };
        (text.to_string(), String::new())
    };
    let body = "injected by flaky proxy\n";
    let resp = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    cw.write_all(resp.as_bytes()).await?;
    cw.shutdown().await?;
    Ok(())
}

/// A cut upload: forwards the first `half` bytes of the request body, ends the stream
/// to the server, resets the client and waits for the server to close its side.
async fn cut_upload(
    mut cr: ClientReader,
    cw: ClientWriter,
    ur: &mut UpReader,
    uw: &mut UpWriter,
    framing: Framing,
    half: u64,
) -> std::io::Result<()> {
    copy_body(&mut cr, Some(uw), framing, Some(half)).await?;
    uw.flush().await?;
    // The server gets the bytes sent so far and then the end of the stream
    // (a FIN, so it reads them all before it sees the end).
    uw.shutdown().await?;
    reset_client(cr, cw)?;
    // Hold the server's side until it has closed it: it is still handling
    // the cut request meanwhile.
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), ur.read_to_end(&mut sink)).await;
    Ok(())
}

/// The server's answer head, the interim `1xx` answers before it relayed to the
/// client; `Ok(None)` when the server closed first.
async fn read_response(ur: &mut UpReader, cw: &mut ClientWriter) -> std::io::Result<Option<Head>> {
    let Some(mut resp) = read_head(ur, false).await? else {
        return Ok(None);
    };
    // Skip interim 1xx answers (relay them).
    while resp.first.starts_with('1') {
        cw.write_all(&resp.raw).await?;
        let Some(r) = read_head(ur, false).await? else {
            return Ok(None);
        };
        resp = r;
    }
    Ok(Some(resp))
}

/// A truncate fault: relays the answer head and half its body (16 bytes when its
/// length is unknown), then resets the client.
async fn truncate_response(
    cr: ClientReader,
    mut cw: ClientWriter,
    ur: &mut UpReader,
    resp: &Head,
    framing: Framing,
) -> std::io::Result<()> {
    cw.write_all(&resp.raw).await?;
    let cut = match framing {
        Framing::Length(n) => n / 2,
        _ => 16,
    };
    copy_body(ur, Some(&mut cw), framing, Some(cut)).await?;
    cw.flush().await?;
    reset_client(cr, cw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny origin that answers every request with its body length and a fixed body.
    async fn origin() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(answer_lengths(sock));
            }
        });
        a
    }

    /// Answers every request on `sock` with its body length and a fixed body.
    async fn answer_lengths<S: AsyncRead + AsyncWrite + Unpin>(sock: S) {
        let (r, mut w) = tokio::io::split(sock);
        let mut r = BufReader::new(r);
        while let Ok(Some(h)) = read_head(&mut r, true).await {
            let mut body = Vec::new();
            if copy_body(&mut r, Some(&mut body), h.framing, None)
                .await
                .is_err()
            {
                return;
            }
            let text = format!("got {} bytes {}", body.len(), "x".repeat(1000));
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            );
            if w.write_all(resp.as_bytes()).await.is_err() || w.flush().await.is_err() {
                return;
            }
        }
    }

    /// A self-signed certificate naming 127.0.0.1, and its key.
    fn self_signed() -> (X509, openssl::pkey::PKey<openssl::pkey::Private>) {
        use openssl::asn1::Asn1Time;
        use openssl::bn::BigNum;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::hash::MessageDigest;
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        use openssl::x509::extension::SubjectAlternativeName;
        use openssl::x509::X509NameBuilder;
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, "flaky proxy test")
            .unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }

    /// [`origin`] over HTTPS with a fresh self-signed certificate; its PEM, and how
    /// many connections finished their handshake.
    async fn tls_origin() -> (SocketAddr, Vec<u8>, Arc<AtomicU64>) {
        use openssl::ssl::{Ssl, SslAcceptor};
        let (cert, key) = self_signed();
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        b.set_private_key(&key).unwrap();
        b.set_certificate(&cert).unwrap();
        let acceptor = b.build();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        let handshakes = Arc::new(AtomicU64::new(0));
        let h2 = handshakes.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let ssl = Ssl::new(acceptor.context()).unwrap();
                let h = h2.clone();
                tokio::spawn(async move {
                    let mut tls = tokio_openssl::SslStream::new(ssl, sock).unwrap();
                    if Pin::new(&mut tls).accept().await.is_ok() {
                        h.fetch_add(1, Ordering::SeqCst);
                        answer_lengths(tls).await;
                    }
                });
            }
        });
        (a, cert.to_pem().unwrap(), handshakes)
    }

    async fn roundtrip(proxy: SocketAddr, body: &[u8]) -> std::io::Result<(String, Vec<u8>)> {
        let mut s = TcpStream::connect(proxy).await?;
        let req = format!(
            "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        s.write_all(body).await?;
        let mut r = BufReader::new(s);
        let h = read_head(&mut r, false)
            .await?
            .ok_or_else(|| std::io::Error::other("no answer"))?;
        let mut out = Vec::new();
        copy_body::<_, Vec<u8>>(&mut r, Some(&mut out), h.framing, None).await?;
        Ok((h.first, out))
    }

    #[tokio::test]
    async fn transparent_when_no_faults() {
        let o = origin().await;
        let p = FlakyProxy::start(o, FaultPlan::none()).await.unwrap();
        let (status, body) = roundtrip(p.addr(), &[7u8; 100_000]).await.unwrap();
        assert_eq!(status, "200");
        assert!(String::from_utf8_lossy(&body).starts_with("got 100000 bytes"));
        assert_eq!(p.stats().forwarded, 1);
    }

    #[tokio::test]
    async fn forwards_to_a_tls_upstream_trusting_only_the_given_certificate() {
        let (o, pem, handshakes) = tls_origin().await;
        let p = FlakyProxy::start_tls(o, FaultPlan::none(), &pem)
            .await
            .unwrap();
        for n in [100_000usize, 0, 7] {
            let (status, body) = roundtrip(p.addr(), &vec![7u8; n]).await.unwrap();
            assert_eq!(status, "200");
            let text = String::from_utf8_lossy(&body);
            assert!(text.starts_with(&format!("got {n} bytes")), "{text:.40}");
        }
        assert_eq!(p.stats().forwarded, 3);
        assert_eq!(handshakes.load(Ordering::SeqCst), 3);
        // Another certificate than the server's: nothing is forwarded, the client's
        // connection is closed.
        let (other, _) = self_signed();
        let q = FlakyProxy::start_tls(o, FaultPlan::none(), &other.to_pem().unwrap())
            .await
            .unwrap();
        assert!(roundtrip(q.addr(), b"hello").await.is_err());
        assert_eq!(q.stats().forwarded, 0);
        assert_eq!(handshakes.load(Ordering::SeqCst), 3);
        // Not a certificate at all: refused at the start.
        let e = FlakyProxy::start_tls(o, FaultPlan::none(), b"not a pem")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    }

    #[tokio::test]
    async fn faults_are_injected_in_front_of_a_tls_upstream() {
        let (o, pem, _) = tls_origin().await;
        let p = FlakyProxy::start_tls(o, FaultPlan::chaos(7), &pem)
            .await
            .unwrap();
        let mut ok = 0;
        for _ in 0..100 {
            if let Ok((s, b)) = roundtrip(p.addr(), b"hello").await {
                ok += usize::from(s == "200" && b.len() > 1000);
            }
        }
        let st = p.stats();
        assert!(
            ok > 50 && st.server_errors > 0 && st.forwarded > 50,
            "{ok} {st:?}"
        );
    }

    #[tokio::test]
    async fn every_fault_shows_up_and_the_schedule_replays() {
        let o = origin().await;
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            let p = FlakyProxy::start(o, FaultPlan::chaos(7)).await.unwrap();
            let mut seen = Vec::new();
            for _ in 0..300 {
                let r = roundtrip(p.addr(), b"hello").await;
                seen.push(match r {
                    Ok((s, b)) if s == "200" && b.len() > 1000 => "ok".to_string(),
                    Ok((s, _)) => s,
                    Err(_) => "err".to_string(),
                });
            }
            let st = p.stats();
            assert!(
                st.server_errors > 0 && st.too_many_requests > 0 && st.truncated > 0,
                "{st:?}"
            );
            assert!(
                st.resets_before > 0 && st.resets_after > 0 && st.delayed > 0,
                "{st:?}"
            );
            assert!(seen.iter().any(|s| s == "429") && seen.iter().any(|s| s == "err"));
            outcomes.push(seen);
        }
        assert_eq!(outcomes[0], outcomes[1], "same seed, same schedule");
    }

    #[tokio::test]
    async fn a_cut_upload_reaches_the_server_half_sent() {
        // An origin that records how many body bytes each request brought before it
        // ended (whole or cut).
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let o = l.local_addr().unwrap();
        let got: Arc<Mutex<Vec<(u64, bool)>>> = Arc::default();
        let g = got.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let g = g.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut r = BufReader::new(r);
                    while let Ok(Some(h)) = read_head(&mut r, true).await {
                        let mut body = Vec::new();
                        let whole = copy_body(&mut r, Some(&mut body), h.framing, None)
                            .await
                            .is_ok();
                        g.lock().unwrap().push((body.len() as u64, whole));
                        if !whole {
                            return;
                        }
                        let _ = w
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .await;
                    }
                });
            }
        });
        let plan = FaultPlan {
            cut_upload: 1.0,
            ..FaultPlan::none()
        };
        let p = FlakyProxy::start(o, plan).await.unwrap();
        assert!(roundtrip(p.addr(), &[7u8; 100_000]).await.is_err());
        // Other methods go through.
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        let mut r = BufReader::new(s);
        let h = read_head(&mut r, false).await.unwrap().unwrap();
        assert_eq!(h.first, "200");
        assert_eq!(*got.lock().unwrap(), vec![(50_000, false), (0, true)]);
        assert_eq!(p.stats().cut_uploads, 1);
    }
}
