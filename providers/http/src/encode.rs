//! One percent-encoding for a path segment of a request URL.
//!
//! Only RFC 3986's *unreserved* characters (`A-Z a-z 0-9 - . _ ~`) stay as they
//! are; every other byte of the UTF-8 name is `%XX`. So `/`, `?`, `#`, `%`, `:` and
//! spaces in a name can never change the URL's structure, and every server reads
//! the segment back to the same name.
//!
//! ```
//! assert_eq!(syncfabric_http::encode_segment("a b/c?d#é"), "a%20b%2Fc%3Fd%23%C3%A9");
//! ```

/// The bytes left as they are in a path segment (everything but the unreserved
/// characters is encoded).
pub const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` as one path segment: see the module docs.
pub fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// `segments`, each encoded with [`encode_segment`], joined by `/`.
pub fn encode_path<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, s) in segments.into_iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&encode_segment(s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert_eq!(encode_segment("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(encode_segment("100% ok:+&="), "100%25%20ok%3A%2B%26%3D");
        assert_eq!(encode_path(["a b", "c/d", ""]), "a%20b/c%2Fd/");
        assert_eq!(encode_path([]), "");
        let enc = encode_segment("Ünï 😀");
        let back = percent_encoding::percent_decode_str(&enc)
            .decode_utf8()
            .unwrap();
        assert_eq!(back, "Ünï 😀");
    }
}
