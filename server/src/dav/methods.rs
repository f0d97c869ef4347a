//! OPTIONS, GET/HEAD, PUT, DELETE and MKCOL.

use super::lock::{check_write, Target};
use super::{body::FileBody, check_etag_conditions, meta, status, Ctx, Reply};
use crate::fs;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use std::io::Write;
use std::time::SystemTime;

/// The methods we answer.
pub(crate) const ALLOW: &str =
    "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK";

pub(crate) fn options() -> Reply {
    let mut r = status(StatusCode::OK);
    let h = r.headers_mut();
    h.insert("dav", HeaderValue::from_static("1, 2"));
    h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn tag_headers(r: &mut Reply, m: &std::fs::Metadata) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&fs::etag(m)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&fs::http_date(
        m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    )) {
        h.insert(header::LAST_MODIFIED, v);
    }
}

pub(crate) async fn get(ctx: &Ctx<'_>, head: bool) -> Reply {
    // Opened first, then described from the open file: the answer's ETag and bytes are
    // of one version even if a PUT renames a new one into place meanwhile.
    let file = match tokio::fs::File::open(&ctx.path).await {
        Ok(f) => f,
        Err(_) => return status(StatusCode::NOT_FOUND),
    };
    let Ok(m) = file.metadata().await else {
        return status(StatusCode::NOT_FOUND);
    };
    if m.is_dir() {
        let mut r = status(StatusCode::OK);
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        return r;
    }
    if let Err(r) = check_etag_conditions(ctx, Some(&m), true) {
        return r;
    }
    let len = m.len();
    let mut r = if head {
        status(StatusCode::OK)
    } else {
        Response::new(FileBody::new(file, len).boxed())
    };
    tag_headers(&mut r, &m);
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}

/// PUT: the body is streamed to a temporary file beside the target (no lock held),
/// then, under the target's path lock, the conditions are checked again against the
/// file as it is now and the temporary file is renamed over it. Two racing
/// conditional writers: exactly one passes.
pub(crate) async fn put(ctx: &Ctx<'_>, body: Incoming) -> Reply {
    let max = ctx.st.limits.max_put_bytes;
    let declared = ctx
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    }
    if ctx.segs.is_empty() || meta(&ctx.path).is_some_and(|m| m.is_dir()) {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    if !ctx.path.parent().and_then(meta).is_some_and(|m| m.is_dir()) {
        return status(StatusCode::CONFLICT);
    }
    if let Err(r) = preconditions(ctx) {
        return r;
    }
    // Deleted on drop (a failed or refused upload) unless disarmed by the commit.
    let (mut tmp, file) = match fs::temp_beside(&ctx.path) {
        Ok(x) => x,
        Err(e) => return io_error(&e),
    };
    let written = receive(file, body, max).await;
    let r = match written {
        Ok(file) => commit(ctx, &tmp.path, file).await,
        Err(r) => Err(r),
    };
    match r {
        Ok(r) => {
            tmp.disarm();
            r
        }
        Err(r) => r,
    }
}

fn preconditions(ctx: &Ctx<'_>) -> Result<(), Reply> {
    let key = ctx.key();
    let m = meta(&ctx.path);
    check_etag_conditions(ctx, m.as_ref(), false)?;
    check_write(
        ctx,
        &[Target {
            key: &key,
            membership: m.is_none(),
            subtree: false,
        }],
    )
}

/// Streams `body` into `file`; 413 past `max` bytes, 400 when the client breaks off.
async fn receive(file: std::fs::File, body: Incoming, max: u64) -> Result<std::fs::File, Reply> {
    let mut body = body;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| status(StatusCode::BAD_REQUEST))?;
        if let Some(d) = frame.data_ref() {
            total += d.len() as u64;
            if total > max {
                return Err(status(StatusCode::PAYLOAD_TOO_LARGE));
            }
            // Small blocking writes to the page cache; the fsync happens off the runtime.
            out.write_all(d).map_err(|e| io_error(&e))?;
        }
    }
    let file = out.into_inner().map_err(|e| io_error(e.error()))?;
    tokio::task::spawn_blocking(move || file.sync_all().map(|_| file))
        .await
        .map_err(|_| status(StatusCode::INTERNAL_SERVER_ERROR))?
        .map_err(|e| io_error(&e))
}

async fn commit(ctx: &Ctx<'_>, tmp: &std::path::Path, file: std::fs::File) -> Result<Reply, Reply> {
    let _g = ctx
        .st
        .path_locks
        .lock(&[&ctx.path])
        .await
        .map_err(|e| io_error(&e))?;
    preconditions(ctx)?;
    let before = meta(&ctx.path);
    if before.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(status(StatusCode::METHOD_NOT_ALLOWED));
    }
    fs::bump_mtime(&file, before.as_ref().and_then(|m| m.modified().ok()))
        .map_err(|e| io_error(&e))?;
    drop(file);
    std::fs::rename(tmp, &ctx.path).map_err(|e| io_error(&e))?;
    ctx.st.status_mut().last_sync = Some(SystemTime::now());
    let mut r = status(if before.is_some() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    });
    if let Some(m) = meta(&ctx.path) {
        tag_headers(&mut r, &m);
    }
    Ok(r)
}

pub(crate) fn io_error(e: &std::io::Error) -> Reply {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => status(StatusCode::CONFLICT),
        K::StorageFull | K::QuotaExceeded => status(StatusCode::INSUFFICIENT_STORAGE),
        // A folder's lock held past its wait (the other writer is stuck): try again.
        K::TimedOut => status(StatusCode::SERVICE_UNAVAILABLE),
        _ => {
            tracing::warn!(error = %e, "disk error");
            status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

pub(crate) async fn delete(ctx: &Ctx<'_>) -> Reply {
    if ctx.segs.is_empty() {
        return status(StatusCode::FORBIDDEN);
    }
    let _g = match ctx.st.path_locks.lock(&[&ctx.path]).await {
        Ok(g) => g,
        Err(e) => return io_error(&e),
    };
    let Some(m) = meta(&ctx.path) else {
        return status(StatusCode::NOT_FOUND);
    };
    if let Err(r) = check_etag_conditions(ctx, Some(&m), false) {
        return r;
    }
    let key = ctx.key();
    if let Err(r) = check_write(
        ctx,
        &[Target {
            key: &key,
            membership: true,
            subtree: true,
        }],
    ) {
        return r;
    }
    if let Err(e) = fs::remove_any(&ctx.path) {
        return io_error(&e);
    }
    ctx.st.locks.remove_under(&key);
    ctx.st.props.remove_under(&key);
    ctx.st.status_mut().last_sync = Some(SystemTime::now());
    status(StatusCode::NO_CONTENT)
}

pub(crate) async fn mkcol(ctx: &Ctx<'_>, body: Incoming) -> Reply {
    match super::read_small(body, 0).await {
        Ok(_) => {}
        Err(_) => return status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
    }
    if ctx.segs.is_empty() || meta(&ctx.path).is_some() {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    if !ctx.path.parent().and_then(meta).is_some_and(|m| m.is_dir()) {
        return status(StatusCode::CONFLICT);
    }
    let key = ctx.key();
    if let Err(r) = check_write(
        ctx,
        &[Target {
            key: &key,
            membership: true,
            subtree: false,
        }],
    ) {
        return r;
    }
    match std::fs::create_dir(&ctx.path) {
        Ok(()) => status(StatusCode::CREATED),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            status(StatusCode::METHOD_NOT_ALLOWED)
        }
        Err(e) => io_error(&e),
    }
}
