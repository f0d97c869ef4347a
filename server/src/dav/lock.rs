//! Class 2 locks: LOCK (new, refresh, on an unmapped URL), UNLOCK, the `If` header
//! (RFC 4918 section 10.4: tagged and untagged lists, `Not`, state tokens, entity tags)
//! and the enforcement every write goes through ([`check_write`]). Locks live in
//! memory: a restart releases them all (clients then get 412 on refresh and lock
//! again), which is the safe side for a lock that only fences writers.

use super::{href_of_key, meta, status, xml, Ctx, Reply};
use crate::xml::esc;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Longest lock timeout granted (also what `Infinite` gets).
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Timeout when the client names none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_LOCKS: usize = 10_000;

/// One lock.
#[derive(Clone, Debug)]
pub(crate) struct ActiveLock {
    pub token: String,
    /// The locked resource's key (vault id, segments).
    pub root: Vec<String>,
    pub root_is_dir: bool,
    pub infinite: bool,
    pub exclusive: bool,
    pub owner: Option<String>,
    pub timeout: Duration,
    pub expires: Instant,
}

impl ActiveLock {
    /// Whether the lock covers `key`: its root, or below it for a depth-infinity lock.
    fn covers(&self, key: &[String]) -> bool {
        key == self.root.as_slice() || (self.infinite && key.starts_with(&self.root))
    }

    /// The `activelock` element.
    pub(crate) fn xml(&self) -> String {
        let left = self
            .expires
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        format!(
            "<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:{}/></D:lockscope>\
             <D:depth>{}</D:depth>{}<D:timeout>Second-{left}</D:timeout>\
             <D:locktoken><D:href>{}</D:href></D:locktoken>\
             <D:lockroot><D:href>{}</D:href></D:lockroot></D:activelock>",
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            if self.infinite { "infinity" } else { "0" },
            self.owner
                .as_ref()
                .map(|o| format!("<D:owner>{o}</D:owner>"))
                .unwrap_or_default(),
            esc(&self.token),
            esc(&href_of_key(&self.root, self.root_is_dir)),
        )
    }
}

/// Every lock held, by token.
#[derive(Default)]
pub(crate) struct Locks {
    map: Mutex<HashMap<String, ActiveLock>>,
}

impl Locks {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, ActiveLock>) -> T) -> T {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, l| l.expires > now);
        f(&mut m)
    }

    /// The locks covering `key`.
    pub(crate) fn covering(&self, key: &[String]) -> Vec<ActiveLock> {
        self.with(|m| m.values().filter(|l| l.covers(key)).cloned().collect())
    }

    /// The locks whose root is `key` or below it.
    pub(crate) fn under(&self, key: &[String]) -> Vec<ActiveLock> {
        self.with(|m| {
            m.values()
                .filter(|l| l.root.starts_with(key))
                .cloned()
                .collect()
        })
    }

    /// Drops the locks rooted at `key` or below (the resource is gone or moved).
    pub(crate) fn remove_under(&self, key: &[String]) {
        self.with(|m| m.retain(|_, l| !l.root.starts_with(key)));
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Cond {
    Token(String),
    Etag(String),
}

/// `If` header lists: (tagged resource URL path, conditions as (negated, condition)).
type IfLists = Vec<(Option<String>, Vec<(bool, Cond)>)>;

fn parse_if(h: &str) -> Option<IfLists> {
    let mut out = Vec::new();
    let mut tag: Option<String> = None;
    let mut s = h.trim_start();
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('<') {
            let end = r.find('>')?;
            tag = Some(r[..end].to_string());
            s = r[end + 1..].trim_start();
        } else if let Some(r) = s.strip_prefix('(') {
            let end = r.find(')')?;
            let mut conds = Vec::new();
            let mut c = r[..end].trim_start();
            while !c.is_empty() {
                let mut not = false;
                if let Some(rest) = c.strip_prefix("Not") {
                    not = true;
                    c = rest.trim_start();
                }
                let (close, mk): (char, fn(&str) -> Cond) = match c.chars().next()? {
                    '<' => ('>', |t| Cond::Token(t.to_string())),
                    '[' => (']', |t| Cond::Etag(t.to_string())),
                    _ => return None,
                };
                let stop = c.find(close)?;
                conds.push((not, mk(&c[1..stop])));
                c = c[stop + 1..].trim_start();
            }
            if conds.is_empty() {
                return None;
            }
            out.push((tag.clone(), conds));
            s = r[end + 1..].trim_start();
        } else {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The key and current ETag of the resource an `If` list names (its tag, or the
/// request's resource).
fn tagged(ctx: &Ctx<'_>, tag: Option<&str>) -> Option<(Vec<String>, Option<String>)> {
    let Some(url) = tag else {
        return Some((ctx.key(), meta(&ctx.path).map(|m| crate::fs::etag(&m))));
    };
    let path = super::copymove::url_path(url)?;
    let segs = super::split_path(&path)?.ok()?;
    let (id, segs) = segs.split_first()?;
    let v = ctx.st.vaults.get(id.as_str())?;
    let p = crate::fs::resolve(&v.root, segs).ok()?;
    Some((
        super::key_of(id, segs),
        meta(&p).map(|m| crate::fs::etag(&m)),
    ))
}

/// Evaluates the `If` header: `Ok(tokens submitted)`, 412 when no list holds, 400 when
/// it does not parse.
fn eval_if(ctx: &Ctx<'_>) -> Result<Vec<String>, Reply> {
    let Some(h) = ctx.header("if") else {
        return Ok(Vec::new());
    };
    let lists = parse_if(h).ok_or_else(|| status(StatusCode::BAD_REQUEST))?;
    let mut tokens = Vec::new();
    let mut any = false;
    for (tag, conds) in &lists {
        let target = tagged(ctx, tag.as_deref());
        let all = conds.iter().all(|(not, c)| {
            let holds = match (c, &target) {
                (Cond::Token(t), Some((key, _))) => {
                    ctx.st.locks.covering(key).iter().any(|l| &l.token == t)
                }
                (Cond::Etag(e), Some((_, Some(tag)))) => e == tag,
                _ => false,
            };
            holds != *not
        });
        any |= all;
        for (not, c) in conds {
            if let (false, Cond::Token(t)) = (not, c) {
                tokens.push(t.clone());
            }
        }
    }
    if any {
        Ok(tokens)
    } else {
        Err(status(StatusCode::PRECONDITION_FAILED))
    }
}

/// What a write touches, for [`check_write`].
pub(crate) struct Target<'k> {
    /// The resource's key.
    pub key: &'k [String],
    /// The write adds or removes the resource (so a lock on its parent applies too).
    pub membership: bool,
    /// The write removes or replaces everything below (DELETE, MOVE source, an
    /// overwritten collection): locks below need their tokens too.
    pub subtree: bool,
}

/// The `If` header holds, and every lock the write runs into has its token
/// submitted: else 412 or 423.
pub(crate) fn check_write(ctx: &Ctx<'_>, targets: &[Target<'_>]) -> Result<(), Reply> {
    let tokens = eval_if(ctx)?;
    let locks = &ctx.st.locks;
    let submitted =
        |ls: &[ActiveLock]| ls.is_empty() || ls.iter().any(|l| tokens.contains(&l.token));
    for t in targets {
        let mut groups: Vec<Vec<ActiveLock>> = vec![locks.covering(t.key)];
        if t.membership && t.key.len() > 1 {
            let parent = &t.key[..t.key.len() - 1];
            groups.push(
                locks
                    .covering(parent)
                    .into_iter()
                    .filter(|l| l.root == parent)
                    .collect(),
            );
        }
        if t.subtree {
            let mut by_root: HashMap<Vec<String>, Vec<ActiveLock>> = HashMap::new();
            for l in locks.under(t.key) {
                by_root.entry(l.root.clone()).or_default().push(l);
            }
            groups.extend(by_root.into_values());
        }
        if !groups.iter().all(|g| submitted(g)) {
            return Err(status(StatusCode::LOCKED));
        }
    }
    Ok(())
}

fn timeout_of(ctx: &Ctx<'_>) -> Duration {
    let Some(h) = ctx.header("timeout") else {
        return DEFAULT_TIMEOUT;
    };
    for t in h.split(',').map(str::trim) {
        if t.eq_ignore_ascii_case("infinite") {
            return MAX_TIMEOUT;
        }
        if let Some(n) = t
            .strip_prefix("Second-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            return Duration::from_secs(n.clamp(1, MAX_TIMEOUT.as_secs()));
        }
    }
    DEFAULT_TIMEOUT
}

fn discovery(code: StatusCode, l: &ActiveLock) -> Reply {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>{}</D:lockdiscovery></D:prop>",
        l.xml()
    );
    let mut r = xml(code, body);
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>", l.token)) {
        r.headers_mut().insert("lock-token", v);
    }
    r
}

fn new_token() -> String {
    let mut b = [0u8; 16];
    let _ = openssl::rand::rand_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "opaquelocktoken:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// LOCK: a new lock (body `lockinfo`), or a refresh (no body, the token in `If`).
pub(crate) async fn lock(ctx: &Ctx<'_>, body: Incoming) -> Reply {
    let body = match super::read_small(body, ctx.st.limits.max_xml_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let key = ctx.key();
    if body.iter().all(u8::is_ascii_whitespace) {
        return refresh(ctx, &key);
    }
    let Ok(info) = crate::xml::lockinfo(&body) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let infinite = match ctx.header("depth").map(str::trim) {
        None => true,
        Some(d) if d.eq_ignore_ascii_case("infinity") => true,
        Some("0") => false,
        Some(_) => return status(StatusCode::BAD_REQUEST),
    };
    let _g = match ctx.st.path_locks.lock(&[&ctx.path]).await {
        Ok(g) => g,
        Err(e) => return super::methods::io_error(&e),
    };
    let existing = meta(&ctx.path);
    let mut conflicts = ctx.st.locks.covering(&key);
    if infinite {
        conflicts.extend(ctx.st.locks.under(&key));
    }
    if conflicts.iter().any(|l| l.exclusive || info.exclusive) {
        return status(StatusCode::LOCKED);
    }
    let created = existing.is_none();
    if created {
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
        if let Err(r) = create_empty(ctx) {
            return r;
        }
    }
    let timeout = timeout_of(ctx);
    let l = ActiveLock {
        token: new_token(),
        root: key,
        root_is_dir: existing.as_ref().is_some_and(|m| m.is_dir()),
        infinite,
        exclusive: info.exclusive,
        owner: info.owner,
        timeout,
        expires: Instant::now() + timeout,
    };
    // The conflict check and the insertion under one lock of the table: two LOCKs on a
    // folder and a member of it cannot both pass.
    let refused = ctx.st.locks.with(|m| {
        let conflict = m.values().any(|o| {
            let overlaps = o.covers(&l.root) || (l.infinite && o.root.starts_with(&l.root));
            overlaps && (o.exclusive || l.exclusive)
        });
        if conflict {
            return Some(StatusCode::LOCKED);
        }
        if m.len() >= MAX_LOCKS {
            return Some(StatusCode::SERVICE_UNAVAILABLE);
        }
        m.insert(l.token.clone(), l.clone());
        None
    });
    if let Some(code) = refused {
        if created {
            let _ = std::fs::remove_file(&ctx.path);
        }
        return status(code);
    }
    discovery(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &l,
    )
}

/// A LOCK on an unmapped URL makes an empty file there (RFC 4918 section 7.3).
fn create_empty(ctx: &Ctx<'_>) -> Result<(), Reply> {
    let parent_ok = ctx.path.parent().and_then(meta).is_some_and(|m| m.is_dir());
    if !parent_ok {
        return Err(status(StatusCode::CONFLICT));
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(&ctx.path)
        .map(|_| ())
        .map_err(|_| status(StatusCode::CONFLICT))
}

fn refresh(ctx: &Ctx<'_>, key: &[String]) -> Reply {
    let Some(h) = ctx.header("if") else {
        return status(StatusCode::BAD_REQUEST);
    };
    let Some(lists) = parse_if(h) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let wanted: Vec<String> = lists
        .into_iter()
        .flat_map(|(_, c)| c)
        .filter_map(|(not, c)| match (not, c) {
            (false, Cond::Token(t)) => Some(t),
            _ => None,
        })
        .collect();
    let timeout = timeout_of(ctx);
    let found = ctx.st.locks.with(|m| {
        let l = m
            .values_mut()
            .find(|l| wanted.contains(&l.token) && l.covers(key))?;
        l.timeout = timeout;
        l.expires = Instant::now() + timeout;
        Some(l.clone())
    });
    match found {
        Some(l) => discovery(StatusCode::OK, &l),
        None => status(StatusCode::PRECONDITION_FAILED),
    }
}

/// UNLOCK: the lock named by `Lock-Token`, if it covers this resource.
pub(crate) async fn unlock(ctx: &Ctx<'_>) -> Reply {
    let Some(tok) = ctx
        .header("lock-token")
        .map(str::trim)
        .and_then(|t| t.strip_prefix('<'))
        .and_then(|t| t.strip_suffix('>'))
    else {
        return status(StatusCode::BAD_REQUEST);
    };
    let key = ctx.key();
    let removed = ctx.st.locks.with(|m| {
        if m.get(tok).is_some_and(|l| l.covers(&key)) {
            m.remove(tok).is_some()
        } else {
            false
        }
    });
    if removed {
        status(StatusCode::NO_CONTENT)
    } else {
        status(StatusCode::CONFLICT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_header() {
        let l = parse_if("(<opaquelocktoken:a> [\"e\"]) (Not <DAV:no-lock>)").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].1[1], (false, Cond::Etag("\"e\"".into())));
        assert_eq!(l[1].1[0], (true, Cond::Token("DAV:no-lock".into())));
        let t = parse_if("<http://h/dav/x/f> (<t>)").unwrap();
        assert_eq!(t[0].0.as_deref(), Some("http://h/dav/x/f"));
        assert!(parse_if("(<a>").is_none());
        assert!(parse_if("()").is_none());
        assert!(parse_if("junk").is_none());
    }
}
