//! PROPFIND (depth 0 and 1; infinity refused) and PROPPATCH, and the store of dead
//! properties: in memory, and when the server has a state folder also in
//! `dead-properties.json` there (outside every vault folder, written atomically), so
//! nothing of ours is ever written into a vault folder.

use super::{href_of_key, meta, status, xml, Ctx, Reply};
use crate::xml::{esc, Patch, PropFind, PropName};
use crate::{fs, Error};
use hyper::body::Incoming;
use hyper::StatusCode;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

type Key = Vec<String>;
type PropMap = BTreeMap<PropName, String>;
const FILE: &str = "dead-properties.json";
/// Most dead properties kept on one resource, and in all.
const MAX_PER_RESOURCE: usize = 256;
const MAX_VALUE: usize = 64 * 1024;

/// Dead properties by resource key.
pub(crate) struct DeadProps {
    map: Mutex<BTreeMap<Key, PropMap>>,
    file: Option<PathBuf>,
}

impl DeadProps {
    /// The store, loaded from `dir` when given.
    pub(crate) fn open(dir: Option<&std::path::Path>) -> crate::Result<DeadProps> {
        let mut map = BTreeMap::new();
        if let Some(d) = dir {
            std::fs::create_dir_all(d).map_err(|source| Error::Io {
                context: format!("creating {}", d.display()),
                source,
            })?;
        }
        let file = dir.map(|d| d.join(FILE));
        if let Some(f) = &file {
            if let Ok(text) = std::fs::read(f) {
                let v: serde_json::Value = serde_json::from_slice(&text)
                    .map_err(|e| Error::Config(format!("{}: {e}", f.display())))?;
                for entry in v.as_array().into_iter().flatten() {
                    let key: Key = serde_json::from_value(entry["key"].clone()).unwrap_or_default();
                    let mut props = PropMap::new();
                    for p in entry["props"].as_array().into_iter().flatten() {
                        let (Some(ns), Some(name), Some(value)) =
                            (p["ns"].as_str(), p["name"].as_str(), p["value"].as_str())
                        else {
                            continue;
                        };
                        props.insert(
                            PropName {
                                ns: ns.into(),
                                name: name.into(),
                            },
                            value.into(),
                        );
                    }
                    if !key.is_empty() {
                        map.insert(key, props);
                    }
                }
            }
        }
        Ok(DeadProps {
            map: Mutex::new(map),
            file,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<Key, PropMap>) -> T) -> T {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut m)
    }

    fn save(&self, m: &BTreeMap<Key, PropMap>) {
        let Some(file) = &self.file else { return };
        let v: Vec<serde_json::Value> = m
            .iter()
            .map(|(k, props)| {
                let ps: Vec<_> = props
                    .iter()
                    .map(|(n, v)| serde_json::json!({"ns": n.ns, "name": n.name, "value": v}))
                    .collect();
                serde_json::json!({"key": k, "props": ps})
            })
            .collect();
        let tmp = file.with_extension("tmp");
        let r = std::fs::write(&tmp, serde_json::to_vec(&v).unwrap_or_default())
            .and_then(|_| std::fs::rename(&tmp, file));
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not save dead properties");
        }
    }

    fn get(&self, key: &[String]) -> PropMap {
        self.with(|m| m.get(key).cloned().unwrap_or_default())
    }

    pub(crate) fn remove_under(&self, key: &[String]) {
        self.with(|m| {
            let before = m.len();
            m.retain(|k, _| !k.starts_with(key));
            if m.len() != before {
                self.save(m);
            }
        });
    }

    fn transplant(&self, from: &[String], to: &[String], keep_source: bool) {
        self.with(|m| {
            m.retain(|k, _| !k.starts_with(to));
            let moved: Vec<(Key, PropMap)> = m
                .iter()
                .filter(|(k, _)| k.starts_with(from))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in moved {
                if !keep_source {
                    m.remove(&k);
                }
                let mut nk = to.to_vec();
                nk.extend_from_slice(&k[from.len()..]);
                m.insert(nk, v);
            }
            self.save(m);
        });
    }

    pub(crate) fn move_under(&self, from: &[String], to: &[String]) {
        self.transplant(from, to, false);
    }

    pub(crate) fn copy_under(&self, from: &[String], to: &[String]) {
        self.transplant(from, to, true);
    }
}

/// The live properties we answer.
const LIVE: &[&str] = &[
    "resourcetype",
    "getcontentlength",
    "getlastmodified",
    "getetag",
    "creationdate",
    "getcontenttype",
    "supportedlock",
    "lockdiscovery",
    "displayname",
];

/// A live property's value (the element's content), if the resource has it.
fn live(ctx: &Ctx<'_>, key: &[String], m: &std::fs::Metadata, name: &str) -> Option<String> {
    let mtime = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    Some(match name {
        "resourcetype" => if m.is_dir() { "<D:collection/>".into() } else { String::new() },
        "getcontentlength" if m.is_file() => m.len().to_string(),
        "getcontenttype" if m.is_file() => "application/octet-stream".into(),
        "getlastmodified" => fs::http_date(mtime),
        "creationdate" => fs::iso_date(m.created().unwrap_or(mtime)),
        "getetag" if m.is_file() => esc(&fs::etag(m)).into_owned(),
        "displayname" => esc(key.last().map_or("", String::as_str)).into_owned(),
        "supportedlock" => "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>\
             <D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>".into(),
        "lockdiscovery" => ctx.st.locks.covering(key).iter().map(|l| l.xml()).collect(),
        _ => return None,
    })
}

/// `<prefix:name xmlns:prefix="ns">value</prefix:name>` (DAV: properties use `D:`).
fn element(n: &PropName, value: Option<&str>) -> String {
    let (open, close) = if n.is_dav() {
        (format!("D:{}", n.name), format!("D:{}", n.name))
    } else if n.ns.is_empty() {
        (format!("{} xmlns=\"\"", n.name), n.name.clone())
    } else {
        (
            format!("z:{} xmlns:z=\"{}\"", n.name, esc(&n.ns)),
            format!("z:{}", n.name),
        )
    };
    match value {
        Some(v) if !v.is_empty() => format!("<{open}>{v}</{close}>"),
        _ => format!("<{open}/>"),
    }
}

fn propstat(props: &str, code: StatusCode) -> String {
    format!(
        "<D:propstat><D:prop>{props}</D:prop><D:status>HTTP/1.1 {} {}</D:status></D:propstat>",
        code.as_u16(),
        code.canonical_reason().unwrap_or("")
    )
}

/// One `<response>` for a resource.
fn response(ctx: &Ctx<'_>, key: &[String], m: &std::fs::Metadata, q: &PropFind) -> String {
    let href = href_of_key(key, m.is_dir());
    let dead = ctx.st.props.get(key);
    let (mut found, mut missing) = (String::new(), String::new());
    match q {
        PropFind::AllProp | PropFind::PropName => {
            let names = LIVE
                .iter()
                .map(|n| PropName::dav(n))
                .chain(dead.keys().cloned());
            for n in names {
                let v = if n.is_dav() {
                    live(ctx, key, m, &n.name)
                } else {
                    dead.get(&n).cloned()
                };
                if let Some(v) = v {
                    let shown = matches!(q, PropFind::AllProp).then_some(v);
                    found.push_str(&element(&n, shown.as_deref()));
                }
            }
        }
        PropFind::Props(names) => {
            for n in names {
                let v = if n.is_dav() {
                    live(ctx, key, m, &n.name)
                } else {
                    dead.get(n).cloned()
                };
                match v {
                    Some(v) => found.push_str(&element(n, Some(&v))),
                    None => missing.push_str(&element(n, None)),
                }
            }
        }
    }
    let mut out = format!("<D:response><D:href>{}</D:href>", esc(&href));
    if !found.is_empty() || missing.is_empty() {
        out.push_str(&propstat(&found, StatusCode::OK));
    }
    if !missing.is_empty() {
        out.push_str(&propstat(&missing, StatusCode::NOT_FOUND));
    }
    out.push_str("</D:response>");
    out
}

fn multistatus(responses: &str) -> Reply {
    xml(
        StatusCode::MULTI_STATUS,
        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">{responses}</D:multistatus>"),
    )
}

pub(crate) async fn propfind(ctx: &Ctx<'_>, body: Incoming) -> Reply {
    let depth1 = match ctx.header("depth").map(str::trim) {
        Some("0") => false,
        Some("1") => true,
        _ => {
            return xml(
                StatusCode::FORBIDDEN,
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>".into(),
            )
        }
    };
    let body = match super::read_small(body, ctx.st.limits.max_xml_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(q) = crate::xml::propfind(&body) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let Some(m) = meta(&ctx.path) else {
        return status(StatusCode::NOT_FOUND);
    };
    let key = ctx.key();
    let mut out = response(ctx, &key, &m, &q);
    if depth1 && m.is_dir() {
        let Ok(rd) = std::fs::read_dir(&ctx.path) else {
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let mut names: Vec<(String, std::fs::Metadata)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                fs::check_segment(&name).ok()?;
                let m = std::fs::symlink_metadata(e.path()).ok()?;
                (m.is_file() || m.is_dir()).then_some((name, m))
            })
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, m) in names {
            let mut k = key.clone();
            k.push(name);
            out.push_str(&response(ctx, &k, &m, &q));
        }
    }
    multistatus(&out)
}

pub(crate) async fn proppatch(ctx: &Ctx<'_>, body: Incoming) -> Reply {
    let body = match super::read_small(body, ctx.st.limits.max_xml_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(m) = meta(&ctx.path) else {
        return status(StatusCode::NOT_FOUND);
    };
    let key = ctx.key();
    if let Err(r) = super::lock::check_write(
        ctx,
        &[super::lock::Target {
            key: &key,
            membership: false,
            subtree: false,
        }],
    ) {
        return r;
    }
    let Ok(patches) = crate::xml::proppatch(&body) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let _ = m;
    // All or nothing: a live property or an oversized value fails the whole request.
    let refused = |p: &Patch| match p {
        Patch::Set(n, v) => n.is_dav() || v.len() > MAX_VALUE,
        Patch::Remove(n) => n.is_dav(),
    };
    let any_refused = patches.iter().any(refused);
    let applied = !any_refused
        && ctx.st.props.with(|map| {
            let props = map.entry(key.clone()).or_default();
            let mut next = props.clone();
            for p in &patches {
                match p {
                    Patch::Set(n, v) => {
                        next.insert(n.clone(), v.clone());
                    }
                    Patch::Remove(n) => {
                        next.remove(n);
                    }
                }
            }
            if next.len() > MAX_PER_RESOURCE {
                return false;
            }
            *props = next;
            ctx.st.props.save(map);
            true
        });
    let mut out = format!(
        "<D:response><D:href>{}</D:href>",
        esc(&ctx.href(m_is_dir(&ctx.path)))
    );
    for p in &patches {
        let n = match p {
            Patch::Set(n, _) | Patch::Remove(n) => n,
        };
        let code = if applied {
            StatusCode::OK
        } else if refused(p) {
            StatusCode::FORBIDDEN
        } else if any_refused {
            StatusCode::FAILED_DEPENDENCY
        } else {
            StatusCode::INSUFFICIENT_STORAGE
        };
        out.push_str(&propstat(&element(n, None), code));
    }
    out.push_str("</D:response>");
    multistatus(&out)
}

fn m_is_dir(p: &std::path::Path) -> bool {
    meta(p).is_some_and(|m| m.is_dir())
}
