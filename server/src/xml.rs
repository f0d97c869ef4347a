//! Request bodies (PROPFIND, PROPPATCH, LOCK) read with quick-xml's namespace-aware
//! pull parser, and the escaping the answers use. A `<!DOCTYPE>` is refused (no entity
//! can be declared), as is an unbound prefix or nesting deeper than [`MAX_DEPTH`].

use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

const DAV: &str = "DAV:";
const MAX_DEPTH: usize = 32;

/// A property's name: namespace URI (empty for none) and local name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PropName {
    pub ns: String,
    pub name: String,
}

impl PropName {
    pub(crate) fn dav(name: &str) -> PropName {
        PropName {
            ns: DAV.into(),
            name: name.into(),
        }
    }
    pub(crate) fn is_dav(&self) -> bool {
        self.ns == DAV
    }
}

/// What a PROPFIND asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PropFind {
    AllProp,
    PropName,
    Props(Vec<PropName>),
}

/// One PROPPATCH instruction, in document order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Patch {
    /// The property and its value as raw XML (the element's content).
    Set(PropName, String),
    Remove(PropName),
}

/// A LOCK request's body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LockInfo {
    pub exclusive: bool,
    /// The `owner` element's content as raw XML.
    pub owner: Option<String>,
}

/// A body that is not the XML asked for.
#[derive(Debug)]
pub(crate) struct BadXml;

fn name_of(ns: ResolveResult<'_>, local: &[u8]) -> Result<PropName, BadXml> {
    let ns = match ns {
        ResolveResult::Bound(Namespace(n)) => std::str::from_utf8(n).map_err(|_| BadXml)?,
        ResolveResult::Unbound => "",
        ResolveResult::Unknown(_) => return Err(BadXml),
    };
    Ok(PropName {
        ns: ns.to_string(),
        name: std::str::from_utf8(local).map_err(|_| BadXml)?.to_string(),
    })
}

/// One element of a request body: the names of its ancestors, its own name, and its
/// content as raw XML when `capture` asked for it (then its children are not listed).
struct Item {
    parents: Vec<PropName>,
    name: PropName,
    raw: Option<String>,
}

/// Lists the elements of `body` in document order.
fn walk(
    body: &[u8],
    capture: impl Fn(&[PropName], &PropName) -> bool,
) -> Result<Vec<Item>, BadXml> {
    let mut r = NsReader::from_reader(body);
    r.config_mut().trim_text(true);
    let mut stack: Vec<PropName> = Vec::new();
    let mut items = Vec::new();
    loop {
        let (ns, ev) = r.read_resolved_event().map_err(|_| BadXml)?;
        match ev {
            Event::DocType(_) => return Err(BadXml),
            Event::Start(e) => {
                let name = name_of(ns, e.local_name().as_ref())?;
                if stack.len() >= MAX_DEPTH || items.len() > 10_000 {
                    return Err(BadXml);
                }
                if capture(&stack, &name) {
                    let qname = e.name().as_ref().to_vec();
                    let span = r
                        .read_to_end(quick_xml::name::QName(&qname))
                        .map_err(|_| BadXml)?;
                    let raw = body
                        .get(span.start as usize..span.end as usize)
                        .ok_or(BadXml)?;
                    let raw = String::from_utf8(raw.to_vec()).map_err(|_| BadXml)?;
                    items.push(Item {
                        parents: stack.clone(),
                        name,
                        raw: Some(raw),
                    });
                } else {
                    items.push(Item {
                        parents: stack.clone(),
                        name: name.clone(),
                        raw: None,
                    });
                    stack.push(name);
                }
            }
            Event::Empty(e) => {
                let name = name_of(ns, e.local_name().as_ref())?;
                let raw = capture(&stack, &name).then(String::new);
                items.push(Item {
                    parents: stack.clone(),
                    name,
                    raw,
                });
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            Event::Text(t) if !stack.is_empty() || t.iter().all(u8::is_ascii_whitespace) => {}
            Event::Text(_) => return Err(BadXml),
            _ => {}
        }
    }
    if !stack.is_empty() || items.is_empty() {
        return Err(BadXml);
    }
    Ok(items)
}

fn is(p: &PropName, name: &str) -> bool {
    p.is_dav() && p.name == name
}

fn root_is(items: &[Item], name: &str) -> bool {
    items.first().is_some_and(|i| is(&i.name, name))
}

/// Reads a PROPFIND body; an empty body is `allprop`.
pub(crate) fn propfind(body: &[u8]) -> Result<PropFind, BadXml> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PropFind::AllProp);
    }
    let items = walk(body, |parents, _| parents.len() == 2)?;
    if !root_is(&items, "propfind") {
        return Err(BadXml);
    }
    let mut out = None;
    for i in &items[1..] {
        match i.parents.len() {
            1 if is(&i.name, "allprop") => out = Some(PropFind::AllProp),
            1 if is(&i.name, "propname") => out = Some(PropFind::PropName),
            1 if is(&i.name, "prop") && out.is_none() => out = Some(PropFind::Props(Vec::new())),
            2 if is(&i.parents[1], "prop") => {
                if let Some(PropFind::Props(v)) = &mut out {
                    v.push(i.name.clone());
                }
            }
            _ => {}
        }
    }
    out.ok_or(BadXml)
}

/// Reads a PROPPATCH body.
pub(crate) fn proppatch(body: &[u8]) -> Result<Vec<Patch>, BadXml> {
    let items = walk(body, |parents, _| parents.len() == 3)?;
    if !root_is(&items, "propertyupdate") {
        return Err(BadXml);
    }
    let mut out = Vec::new();
    for i in &items[1..] {
        if i.parents.len() != 3 {
            continue;
        }
        let (op, prop) = (&i.parents[1], &i.parents[2]);
        if !is(prop, "prop") {
            return Err(BadXml);
        }
        if is(op, "set") {
            out.push(Patch::Set(
                i.name.clone(),
                i.raw.clone().unwrap_or_default(),
            ));
        } else if is(op, "remove") {
            out.push(Patch::Remove(i.name.clone()));
        } else {
            return Err(BadXml);
        }
    }
    if out.is_empty() {
        return Err(BadXml);
    }
    Ok(out)
}

/// Reads a LOCK body (`lockinfo`).
pub(crate) fn lockinfo(body: &[u8]) -> Result<LockInfo, BadXml> {
    let items = walk(body, |parents, name| {
        parents.len() == 1 && is(name, "owner")
    })?;
    if !root_is(&items, "lockinfo") {
        return Err(BadXml);
    }
    let (mut scope, mut write, mut owner) = (None, false, None);
    for i in &items[1..] {
        if i.parents.len() == 1 && is(&i.name, "owner") {
            owner = i.raw.clone();
        } else if i.parents.len() == 2 && is(&i.parents[1], "lockscope") {
            scope = Some(is(&i.name, "exclusive"));
        } else if i.parents.len() == 2 && is(&i.parents[1], "locktype") {
            write = is(&i.name, "write");
        }
    }
    match (scope, write) {
        (Some(exclusive), true) => Ok(LockInfo { exclusive, owner }),
        _ => Err(BadXml),
    }
}

/// Escapes text for an element's content or an attribute.
pub(crate) fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let pf = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><x:a xmlns:x="urn:x"><b/></x:a></D:prop></D:propfind>"#;
        assert_eq!(
            propfind(pf).unwrap(),
            PropFind::Props(vec![
                PropName::dav("getetag"),
                PropName {
                    ns: "urn:x".into(),
                    name: "a".into()
                }
            ])
        );
        let pp = br#"<propertyupdate xmlns="DAV:"><set><prop><z:p xmlns:z="urn:z">v<i/>w</z:p></prop></set><remove><prop><z:q xmlns:z="urn:z"/></prop></remove></propertyupdate>"#;
        let v = proppatch(pp).unwrap();
        assert_eq!(
            v[0],
            Patch::Set(
                PropName {
                    ns: "urn:z".into(),
                    name: "p".into()
                },
                "v<i/>w".into()
            )
        );
        assert_eq!(
            v[1],
            Patch::Remove(PropName {
                ns: "urn:z".into(),
                name: "q".into()
            })
        );
        let li = br#"<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>me</D:href></D:owner></D:lockinfo>"#;
        let l = lockinfo(li).unwrap();
        assert!(l.exclusive);
        assert_eq!(l.owner.as_deref(), Some("<D:href>me</D:href>"));
        assert!(propfind(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>").is_err());
        assert!(propfind(b"<D:propfind xmlns:D=\"DAV:\"><D:prop>").is_err());
    }
}
