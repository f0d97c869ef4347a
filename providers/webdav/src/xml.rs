//! PROPFIND (`207 Multi-Status`) parsing with bounded memory.
//!
//! The answer is read into memory only up to [`crate::WebDavConfig::max_response_bytes`]
//! (the caller enforces the cap while reading the body), then parsed by quick-xml's pull
//! parser. quick-xml never expands entities on its own; this module additionally rejects
//! any `<!DOCTYPE>` (the only place an entity could be declared) and any reference to an
//! entity other than the five predefined ones and character references, so an entity
//! bomb or an external entity is a [`Error::Corrupt`], never an expansion.

use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;
use syncfabric_core::Error;

const DAV_NS: &[u8] = b"DAV:";

/// The largest number of `<response>` elements accepted in one answer.
pub(crate) const MAX_RESPONSES: usize = 100_000;
/// The deepest element nesting accepted.
const MAX_DEPTH: usize = 64;
/// The longest text accepted in one property (an href, an ETag, a date).
const MAX_TEXT: usize = 8 * 1024;

/// One `<response>` of a multistatus: the href as sent (still percent-encoded) and the
/// properties found in a `200` propstat.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PropResponse {
    /// The raw href.
    pub href: String,
    /// `resourcetype` contains `collection`.
    pub is_collection: bool,
    /// `getcontentlength`.
    pub content_length: Option<u64>,
    /// `getetag` in its quoted form (see [`normalize_etag`]; a `W/` prefix kept).
    pub etag: Option<String>,
    /// `getlastmodified`, as the HTTP date string.
    pub last_modified: Option<String>,
    /// The response-level status code, when the server gave one (e.g. 404 for a member).
    pub status: Option<u16>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    Href,
    Status,
    PropstatStatus,
    ContentLength,
    Etag,
    LastModified,
    Other,
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::Corrupt {
        message: msg.into(),
    }
}

/// Parses a `207 Multi-Status` body into its responses.
pub(crate) fn parse_multistatus(body: &[u8]) -> Result<Vec<PropResponse>, Error> {
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    // Element stack of (is_dav, local name) of open elements.
    let mut stack: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut cur: Option<PropResponse> = None;
    // Properties of the current propstat, applied only if its status is 200.
    let mut pending: Option<PropResponse> = None;
    let mut propstat_status: Option<u16> = None;
    let mut text = String::new();
    let mut saw_multistatus = false;

    loop {
        buf.clear();
        let (ns, ev) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| corrupt(format!("malformed XML in PROPFIND answer: {e}")))?;
        let is_dav = matches!(ns, ResolveResult::Bound(Namespace(n)) if n == DAV_NS);
        match ev {
            Event::DocType(_) => {
                return Err(corrupt(
                    "PROPFIND answer carries a DOCTYPE (refused: entity declarations)",
                ))
            }
            Event::Start(e) => {
                let local = e.local_name().as_ref().to_vec();
                if stack.len() >= MAX_DEPTH {
                    return Err(corrupt("PROPFIND answer nests too deep"));
                }
                open(
                    &stack,
                    is_dav,
                    &local,
                    &mut cur,
                    &mut pending,
                    &mut propstat_status,
                    &mut saw_multistatus,
                )?;
                stack.push((is_dav, local));
                text.clear();
            }
            Event::Empty(e) => {
                let local = e.local_name().as_ref().to_vec();
                open(
                    &stack,
                    is_dav,
                    &local,
                    &mut cur,
                    &mut pending,
                    &mut propstat_status,
                    &mut saw_multistatus,
                )?;
                stack.push((is_dav, local));
                text.clear();
                close(
                    &mut stack,
                    &mut cur,
                    &mut pending,
                    &mut propstat_status,
                    &mut out,
                    &text,
                )?;
            }
            Event::End(_) => {
                close(
                    &mut stack,
                    &mut cur,
                    &mut pending,
                    &mut propstat_status,
                    &mut out,
                    &text,
                )?;
                text.clear();
            }
            Event::Text(t) => {
                let s = t
                    .decode()
                    .map_err(|e| corrupt(format!("bad text in PROPFIND answer: {e}")))?;
                push_text(&mut text, &s)?;
            }
            Event::CData(t) => {
                let s =
                    std::str::from_utf8(&t).map_err(|_| corrupt("PROPFIND answer is not UTF-8"))?;
                push_text(&mut text, s)?;
            }
            Event::GeneralRef(r) => push_text(&mut text, &general_ref(&r)?)?,
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(corrupt("PROPFIND answer ends before its elements close"));
    }
    if !saw_multistatus {
        return Err(corrupt("PROPFIND answer has no DAV:multistatus element"));
    }
    Ok(out)
}

/// The text of an entity or character reference: only character references and the
/// five predefined entities; anything else is refused (never expanded).
fn general_ref(r: &quick_xml::events::BytesRef<'_>) -> Result<String, Error> {
    if r.is_char_ref() {
        let c = r
            .resolve_char_ref()
            .map_err(|e| corrupt(format!("bad character reference: {e}")))?
            .ok_or_else(|| corrupt("bad character reference"))?;
        return Ok(c.to_string());
    }
    let name = r
        .decode()
        .map_err(|e| corrupt(format!("bad entity reference: {e}")))?;
    Ok(match name.as_ref() {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        other => {
            return Err(corrupt(format!(
                "WebDAV answer references undeclared entity &{}; (refused)",
                other.chars().take(32).collect::<String>()
            )))
        }
    }
    .to_string())
}

/// One `<D:activelock>` of a `LOCK` answer or a `lockdiscovery` property.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ActiveLock {
    /// `locktoken/href`, e.g. `opaquelocktoken:…`.
    pub token: Option<String>,
    /// All text inside `owner` (we write an href there).
    pub owner: String,
    /// `timeout`, e.g. `Second-60` or `Infinite`.
    pub timeout: Option<String>,
}

impl ActiveLock {
    /// The timeout in seconds, when the server gave a finite one.
    pub fn timeout_secs(&self) -> Option<u64> {
        self.timeout
            .as_deref()?
            .trim()
            .strip_prefix("Second-")?
            .parse()
            .ok()
    }
}

/// Every `<D:activelock>` in a `LOCK` answer (`<D:prop><D:lockdiscovery>`) or a
/// PROPFIND multistatus asking for `lockdiscovery`, with the same refusals as
/// [`parse_multistatus`] (no DOCTYPE, no custom entity, bounded text and nesting).
pub(crate) fn parse_activelocks(body: &[u8]) -> Result<Vec<ActiveLock>, Error> {
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut stack: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut out = Vec::new();
    let mut cur: Option<ActiveLock> = None;
    let mut text = String::new();
    loop {
        buf.clear();
        let (ns, ev) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| corrupt(format!("malformed XML in LOCK answer: {e}")))?;
        let is_dav = matches!(ns, ResolveResult::Bound(Namespace(n)) if n == DAV_NS);
        let (start, end, local) = match &ev {
            Event::DocType(_) => {
                return Err(corrupt(
                    "LOCK answer carries a DOCTYPE (refused: entity declarations)",
                ))
            }
            Event::Start(e) => (true, false, e.local_name().as_ref().to_vec()),
            Event::Empty(e) => (true, true, e.local_name().as_ref().to_vec()),
            Event::End(_) => (false, true, Vec::new()),
            Event::Text(t) => {
                let s = t
                    .decode()
                    .map_err(|e| corrupt(format!("bad text in LOCK answer: {e}")))?;
                push_text(&mut text, &s)?;
                continue;
            }
            Event::CData(t) => {
                let s = std::str::from_utf8(t).map_err(|_| corrupt("LOCK answer is not UTF-8"))?;
                push_text(&mut text, s)?;
                continue;
            }
            Event::GeneralRef(r) => {
                push_text(&mut text, &general_ref(r)?)?;
                continue;
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => continue,
        };
        if start {
            if stack.len() >= MAX_DEPTH {
                return Err(corrupt("LOCK answer nests too deep"));
            }
            if is_dav && local == b"activelock" {
                cur = Some(ActiveLock::default());
            }
            stack.push((is_dav, local));
            text.clear();
        }
        if end {
            if let Some(l) = cur.as_mut() {
                if in_dav(&stack, &[b"locktoken", b"href"]) {
                    l.token = Some(text.trim().to_string());
                } else if in_dav(&stack, &[b"activelock", b"timeout"]) {
                    l.timeout = Some(text.trim().to_string());
                } else if stack.iter().any(|(d, n)| *d && n == b"owner") && !text.is_empty() {
                    l.owner.push_str(text.trim());
                }
            }
            if in_dav(&stack, &[b"activelock"]) {
                if let Some(l) = cur.take() {
                    if out.len() < 64 {
                        out.push(l);
                    }
                }
            }
            stack.pop();
            text.clear();
        }
    }
    if !stack.is_empty() {
        return Err(corrupt("LOCK answer ends before its elements close"));
    }
    Ok(out)
}

fn push_text(text: &mut String, s: &str) -> Result<(), Error> {
    if text.len() + s.len() > MAX_TEXT {
        return Err(corrupt("a property in the PROPFIND answer is too long"));
    }
    text.push_str(s);
    Ok(())
}

fn in_dav(stack: &[(bool, Vec<u8>)], names: &[&[u8]]) -> bool {
    stack.len() >= names.len()
        && stack[stack.len() - names.len()..]
            .iter()
            .zip(names)
            .all(|((d, n), want)| *d && n.as_slice() == *want)
}

#[allow(clippy::too_many_arguments)]
fn open(
    stack: &[(bool, Vec<u8>)],
    is_dav: bool,
    local: &[u8],
    cur: &mut Option<PropResponse>,
    pending: &mut Option<PropResponse>,
    propstat_status: &mut Option<u16>,
    saw_multistatus: &mut bool,
) -> Result<(), Error> {
    if !is_dav {
        return Ok(());
    }
    match local {
        b"multistatus" if stack.is_empty() => *saw_multistatus = true,
        b"response" if in_dav(stack, &[b"multistatus"]) => {
            *cur = Some(PropResponse::default());
        }
        b"propstat" if in_dav(stack, &[b"response"]) => {
            *pending = Some(PropResponse::default());
            *propstat_status = None;
        }
        b"collection" if in_dav(stack, &[b"propstat", b"prop", b"resourcetype"]) => {
            if let Some(p) = pending.as_mut() {
                p.is_collection = true;
            }
        }
        _ => {}
    }
    Ok(())
}

fn field_of(stack: &[(bool, Vec<u8>)]) -> Field {
    let Some((true, name)) = stack.last() else {
        return Field::Other;
    };
    let parent = &stack[..stack.len() - 1];
    match name.as_slice() {
        b"href" if in_dav(parent, &[b"response"]) => Field::Href,
        b"status" if in_dav(parent, &[b"response"]) => Field::Status,
        b"status" if in_dav(parent, &[b"propstat"]) => Field::PropstatStatus,
        b"getcontentlength" if in_dav(parent, &[b"propstat", b"prop"]) => Field::ContentLength,
        b"getetag" if in_dav(parent, &[b"propstat", b"prop"]) => Field::Etag,
        b"getlastmodified" if in_dav(parent, &[b"propstat", b"prop"]) => Field::LastModified,
        _ => Field::Other,
    }
}

/// `HTTP/1.1 200 OK` -> 200.
fn status_code(s: &str) -> Result<u16, Error> {
    s.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| {
            corrupt(format!(
                "bad status line in PROPFIND answer: {:?}",
                s.chars().take(64).collect::<String>()
            ))
        })
}

fn close(
    stack: &mut Vec<(bool, Vec<u8>)>,
    cur: &mut Option<PropResponse>,
    pending: &mut Option<PropResponse>,
    propstat_status: &mut Option<u16>,
    out: &mut Vec<PropResponse>,
    text: &str,
) -> Result<(), Error> {
    let field = field_of(stack);
    let Some((is_dav, local)) = stack.pop() else {
        return Err(corrupt("PROPFIND answer closes an element it never opened"));
    };
    let text = text.trim();
    match field {
        Field::Href => {
            if let Some(c) = cur.as_mut() {
                c.href = text.to_string();
            }
        }
        Field::Status => {
            if let Some(c) = cur.as_mut() {
                c.status = Some(status_code(text)?);
            }
        }
        Field::PropstatStatus => *propstat_status = Some(status_code(text)?),
        Field::ContentLength => {
            if let Some(p) = pending.as_mut() {
                if !text.is_empty() {
                    p.content_length = Some(
                        text.parse()
                            .map_err(|_| corrupt(format!("bad getcontentlength {:?}", text)))?,
                    );
                }
            }
        }
        Field::Etag => {
            if let Some(p) = pending.as_mut() {
                if let Some(tag) = normalize_etag(text) {
                    p.etag = Some(tag);
                }
            }
        }
        Field::LastModified => {
            if let Some(p) = pending.as_mut() {
                if !text.is_empty() {
                    p.last_modified = Some(text.to_string());
                }
            }
        }
        Field::Other => {}
    }
    if is_dav {
        match local.as_slice() {
            b"propstat" if in_dav(stack, &[b"response"]) => {
                if let (Some(p), Some(c)) = (pending.take(), cur.as_mut()) {
                    // A propstat without a status is treated as 200 (lenient, as many
                    // clients are); any other status means "these properties are absent".
                    if propstat_status.unwrap_or(200) == 200 {
                        c.is_collection |= p.is_collection;
                        c.content_length = c.content_length.or(p.content_length);
                        c.etag = c.etag.take().or(p.etag);
                        c.last_modified = c.last_modified.take().or(p.last_modified);
                    }
                }
            }
            b"response" if in_dav(stack, &[b"multistatus"]) => {
                if let Some(c) = cur.take() {
                    if c.href.is_empty() {
                        return Err(corrupt("a PROPFIND response has no href"));
                    }
                    if out.len() >= MAX_RESPONSES {
                        return Err(corrupt(format!(
                            "PROPFIND answer lists more than {MAX_RESPONSES} entries"
                        )));
                    }
                    out.push(c);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// An entity tag in its one form, wherever it was read (`getetag`, an `ETag` header):
/// surrounding space trimmed, the value quoted (`abc` → `"abc"`; some servers, wsgidav
/// among them, leave the quotes out of `getetag` but send them in `ETag`), and a weak
/// prefix spelled `W/`. What a weak tag means is the server profile's call.
/// `None` for an empty tag or one with a stray quote inside.
pub(crate) fn normalize_etag(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (weak, rest) = match raw.get(..2) {
        Some("W/") | Some("w/") => (true, raw[2..].trim_start()),
        _ => (false, raw),
    };
    let inner = match rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner,
        None => rest,
    };
    if inner.is_empty() || inner.contains('"') || inner.chars().any(|c| c.is_control()) {
        return None;
    }
    Some(format!("{}\"{inner}\"", if weak { "W/" } else { "" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_have_one_form_however_the_server_spells_them() {
        for (raw, want) in [
            ("\"abc\"", Some("\"abc\"")),
            ("abc", Some("\"abc\"")),
            ("  abc-12 ", Some("\"abc-12\"")),
            ("W/\"5-a1\"", Some("W/\"5-a1\"")),
            ("W/5-a1", Some("W/\"5-a1\"")),
            ("w/\"x\"", Some("W/\"x\"")),
            ("\"\"", None),
            ("", None),
            ("a\"b", None),
            ("\"a\"b\"", None),
        ] {
            assert_eq!(normalize_etag(raw).as_deref(), want, "{raw:?}");
        }
        // getetag without quotes (wsgidav) reads as the ETag header's quoted form.
        let xml = br#"<multistatus xmlns="DAV:"><response><href>/x</href><propstat><prop><getetag>1700000000-12</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;
        let r = parse_multistatus(xml).unwrap();
        assert_eq!(r[0].etag.as_deref(), Some("\"1700000000-12\""));
    }

    #[test]
    fn parses_a_typical_answer() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns0="urn:x">
<D:response><D:href>/dav/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>/dav/a%20b.txt</D:href><D:propstat><D:prop><D:resourcetype/><D:getcontentlength>12</D:getcontentlength><D:getetag>"abc&amp;d"</D:getetag><D:getlastmodified>Tue, 01 Jan 2030 00:00:00 GMT</D:getlastmodified></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
<D:propstat><D:prop><D:getetag/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>
</D:multistatus>"#;
        let r = parse_multistatus(xml).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r[0].is_collection);
        assert_eq!(r[1].href, "/dav/a%20b.txt");
        assert_eq!(r[1].etag.as_deref(), Some("\"abc&d\""));
        assert_eq!(r[1].content_length, Some(12));
        assert!(!r[1].is_collection);
    }

    #[test]
    fn default_namespace_and_other_prefixes() {
        let xml = br#"<multistatus xmlns="DAV:"><response><href>/x</href><propstat><prop><getetag>"1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;
        let r = parse_multistatus(xml).unwrap();
        assert_eq!(r[0].etag.as_deref(), Some("\"1\""));
        // A `collection` element in another namespace is not a DAV collection.
        let xml = br#"<d:multistatus xmlns:d="DAV:" xmlns:x="urn:x"><d:response><d:href>/x</d:href><d:propstat><d:prop><d:resourcetype><x:collection/></d:resourcetype></d:prop></d:propstat></d:response></d:multistatus>"#;
        assert!(!parse_multistatus(xml).unwrap()[0].is_collection);
    }

    #[test]
    fn refuses_doctype_and_custom_entities() {
        let bomb = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<D:multistatus xmlns:D="DAV:"><D:response><D:href>&lol2;</D:href></D:response></D:multistatus>"#;
        assert!(matches!(
            parse_multistatus(bomb),
            Err(Error::Corrupt { .. })
        ));
        let undeclared = br#"<D:multistatus xmlns:D="DAV:"><D:response><D:href>&lol2;</D:href></D:response></D:multistatus>"#;
        assert!(matches!(
            parse_multistatus(undeclared),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            &b"<D:multistatus xmlns:D=\"DAV:\"><D:response>"[..],
            b"not xml at all",
            b"<a></b>",
            b"",
            b"<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/x</D:href><D:status>garbage</D:status></D:response></D:multistatus>",
        ] {
            assert!(matches!(parse_multistatus(bad), Err(Error::Corrupt { .. })), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn refuses_deep_nesting_and_long_text() {
        let mut deep = String::from("<D:multistatus xmlns:D=\"DAV:\">");
        for _ in 0..200 {
            deep.push_str("<x>");
        }
        assert!(matches!(
            parse_multistatus(deep.as_bytes()),
            Err(Error::Corrupt { .. })
        ));
        let long = format!(
            "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/{}</D:href></D:response></D:multistatus>",
            "a".repeat(MAX_TEXT + 1)
        );
        assert!(matches!(
            parse_multistatus(long.as_bytes()),
            Err(Error::Corrupt { .. })
        ));
    }
}
