//! Just enough HTTP/1.1 for the Graph fake (and the Nextcloud fake): one request at a time per connection,
//! keep-alive, request bodies framed by `Content-Length` (what every Graph client
//! sends; the upload-session pages require it on fragment PUTs), bodies streamed so a
//! 60 MiB fragment never sits in memory, responses from memory or from a file.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The longest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// One parsed request head.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    /// The request target's path, still percent-encoded.
    pub path: String,
    /// The raw query (after `?`), still encoded.
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub content_length: u64,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Query parameter `key`, percent-decoded (`+` is a space).
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k)? == key).then(|| pct_decode(&v.replace('+', " ")))?
        })
    }
}

/// Decodes `%XX`; `None` for a bad escape or non-UTF-8 bytes.
pub(crate) fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads one request head; `Ok(None)` when the client closed the connection cleanly.
pub(crate) async fn read_head(conn: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut lines = Vec::new();
    let mut total = 0usize;
    loop {
        let mut line = String::new();
        let n = conn.read_line(&mut line).await?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(bad("connection closed inside a request head"));
        }
        total += n;
        if total > MAX_HEAD {
            return Err(bad("request head too long"));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate stray CRLF between requests
            }
            break;
        }
        lines.push(line);
    }
    let mut first = lines[0].split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().ok_or_else(|| bad("no request target"))?;
    // An absolute-form target (proxies) is reduced to its path.
    let target = match target.find("://") {
        Some(i) => {
            let after = &target[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    for l in &lines[1..] {
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut req = Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        content_length: 0,
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        return Err(bad("chunked request bodies are not supported by the fake"));
    }
    req.content_length = match req.header("content-length") {
        Some(v) => v.parse().map_err(|_| bad("bad Content-Length"))?,
        None => 0,
    };
    Ok(Some(req))
}

/// The body of the request being handled: exactly `remaining` more bytes.
pub(crate) struct BodyReader<'a> {
    conn: &'a mut BufReader<TcpStream>,
    remaining: u64,
}

impl<'a> BodyReader<'a> {
    pub fn new(conn: &'a mut BufReader<TcpStream>, len: u64) -> Self {
        BodyReader {
            conn,
            remaining: len,
        }
    }

    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Reads up to `buf.len()` bytes of the body; 0 at its end. A connection that ends
    /// before the declared length is an `UnexpectedEof` error.
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let n = self.conn.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the client closed the connection inside the body",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Reads the whole body into memory if it is at most `limit` bytes.
    pub async fn read_all(&mut self, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
        if self.remaining > limit {
            return Ok(None);
        }
        let mut out = vec![0u8; self.remaining as usize];
        let mut off = 0;
        while off < out.len() {
            off += self.read(&mut out[off..]).await?;
        }
        Ok(Some(out))
    }

    /// Reads and discards what is left of the body.
    pub async fn drain(&mut self) -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.read(&mut buf).await? > 0 {}
        Ok(())
    }
}

/// What a response carries.
pub(crate) enum RespBody {
    Bytes(Vec<u8>),
    /// `len` bytes of an already opened file, streamed (opened by the handler, so a
    /// file replaced meanwhile is still read whole).
    File(std::fs::File, u64),
}

/// A response to write.
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: RespBody,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: RespBody::Bytes(Vec::new()),
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Self {
        let mut r = Response::new(status);
        r.headers
            .push(("Content-Type".into(), "application/json".into()));
        r.body = RespBody::Bytes(v.to_string().into_bytes());
        r
    }

    pub fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        416 => "Requested Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Writes `resp` (with `Content-Length`) to the connection.
pub(crate) async fn write_response(
    conn: &mut BufReader<TcpStream>,
    resp: Response,
    head_only: bool,
) -> std::io::Result<()> {
    let len = match &resp.body {
        RespBody::Bytes(b) => b.len() as u64,
        RespBody::File(_, n) => *n,
    };
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    let w = conn.get_mut();
    w.write_all(head.as_bytes()).await?;
    if !head_only {
        match resp.body {
            RespBody::Bytes(b) => w.write_all(&b).await?,
            RespBody::File(f, n) => {
                let mut f = tokio::fs::File::from_std(f).take(n);
                let copied = tokio::io::copy(&mut f, w).await?;
                if copied != n {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "blob shorter than announced",
                    ));
                }
            }
        }
    }
    w.flush().await
}
