//! COPY and MOVE within one vault. A file lands atomically (COPY writes a temporary
//! file and renames it, MOVE is one rename); a folder's COPY is member by member.

use super::lock::{check_write, Target};
use super::methods::io_error;
use super::{check_etag_conditions, meta, split_path, status, Ctx, Reply};
use crate::fs;
use hyper::StatusCode;
use std::time::SystemTime;

/// The path of a `Destination` or `If` tag: an absolute URL's path, or a path.
pub(crate) fn url_path(url: &str) -> Option<String> {
    let path = match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            &rest[rest.find('/')?..]
        }
        None => url,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    Some(path.to_string())
}

pub(crate) async fn copy_or_move(ctx: &Ctx<'_>, is_move: bool) -> Reply {
    let Some(dest) = ctx.header("destination").and_then(url_path) else {
        return status(StatusCode::BAD_REQUEST);
    };
    if dest.len() > ctx.st.limits.max_path_bytes {
        return status(StatusCode::URI_TOO_LONG);
    }
    let segs = match split_path(&dest) {
        Some(Ok(s)) => s,
        Some(Err(())) => return status(StatusCode::BAD_REQUEST),
        None => return status(StatusCode::BAD_GATEWAY),
    };
    let Some((id, dsegs)) = segs.split_first() else {
        return status(StatusCode::FORBIDDEN);
    };
    if *id != ctx.vault.id {
        // Another vault (or server): not through this request's credentials.
        return status(StatusCode::BAD_GATEWAY);
    }
    let dpath = match fs::resolve(&ctx.vault.root, dsegs) {
        Ok(p) => p,
        Err(fs::PathError::Invalid) => return status(StatusCode::BAD_REQUEST),
        Err(fs::PathError::Outside) => return status(StatusCode::FORBIDDEN),
    };
    if ctx.segs.is_empty() || dsegs.is_empty() || dsegs == ctx.segs.as_slice() {
        return status(StatusCode::FORBIDDEN);
    }
    let overwrite = !ctx
        .header("overwrite")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("F"));
    let depth0 = match ctx.header("depth").map(str::trim) {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("infinity") => false,
        Some("0") if !is_move => true,
        Some(_) => return status(StatusCode::BAD_REQUEST),
    };
    let _g = match ctx.st.path_locks.lock(&[&ctx.path, &dpath]).await {
        Ok(g) => g,
        Err(e) => return io_error(&e),
    };
    let Some(sm) = meta(&ctx.path) else {
        return status(StatusCode::NOT_FOUND);
    };
    if sm.is_dir() && dsegs.starts_with(&ctx.segs) {
        return status(StatusCode::FORBIDDEN);
    }
    if let Err(r) = check_etag_conditions(ctx, Some(&sm), false) {
        return r;
    }
    let (skey, dkey) = (ctx.key(), super::key_of(id, dsegs));
    let mut targets = vec![Target {
        key: &dkey,
        membership: true,
        subtree: true,
    }];
    if is_move {
        targets.push(Target {
            key: &skey,
            membership: true,
            subtree: true,
        });
    }
    if let Err(r) = check_write(ctx, &targets) {
        return r;
    }
    if !dpath.parent().and_then(meta).is_some_and(|m| m.is_dir()) {
        return status(StatusCode::CONFLICT);
    }
    let existed = meta(&dpath);
    if existed.is_some() && !overwrite {
        return status(StatusCode::PRECONDITION_FAILED);
    }
    let r = transfer(ctx, &sm, &dpath, existed.as_ref(), is_move, depth0);
    if let Err(e) = r {
        return io_error(&e);
    }
    ctx.st.locks.remove_under(&dkey);
    if is_move {
        ctx.st.locks.remove_under(&skey);
        ctx.st.props.move_under(&skey, &dkey);
    } else {
        ctx.st.props.copy_under(&skey, &dkey);
    }
    ctx.st.status_mut().last_sync = Some(SystemTime::now());
    status(if existed.is_some() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    })
}

fn transfer(
    ctx: &Ctx<'_>,
    sm: &std::fs::Metadata,
    dpath: &std::path::Path,
    existed: Option<&std::fs::Metadata>,
    is_move: bool,
    depth0: bool,
) -> std::io::Result<()> {
    // A file replacing a file is one rename; anything else clears the way first.
    let file_over_file = sm.is_file() && existed.is_none_or(|m| m.is_file());
    if existed.is_some() && !file_over_file {
        fs::remove_any(dpath)?;
    }
    if is_move {
        std::fs::rename(&ctx.path, dpath)
    } else if sm.is_dir() {
        fs::copy_tree(&ctx.path, dpath, depth0)
    } else {
        fs::copy_file(&ctx.path, dpath)
    }
}
