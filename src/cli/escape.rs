//! Text from a vault or a remote, made safe to print on a terminal.
//!
//! Any device that syncs can put any character into an item's title or fields, and a
//! server can put any into an error message. Printed raw, an ANSI escape can rewrite
//! the screen and a right-to-left override can make `evil.com` read as `moc.live`.
//! Text output escapes them; `--json` output stays exact (JSON escapes control
//! characters itself, and a script wants the real value).

use std::fmt::Write;

/// `s` with every control character (C0, DEL, C1) and every bidirectional-formatting
/// character written as `\u{…}`, and a backslash as `\\`, so the escaped form cannot be
/// mistaken for the real thing. Everything else, including other non-ASCII text, is
/// kept as it is.
pub fn for_terminal(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

/// [`for_terminal`] without a copy when nothing needs escaping (long listings).
pub fn for_terminal_cow(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(needs_escape) {
        std::borrow::Cow::Owned(for_terminal(s))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_format(c)
}

/// The Unicode bidirectional formatting characters (marks, embeddings, overrides and
/// isolates), which reorder how the text around them is displayed.
fn is_bidi_format(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::for_terminal;

    #[test]
    fn escapes_terminal_controls_and_bidi_overrides_only() {
        assert_eq!(for_terminal("Bank – Zürich 銀行"), "Bank – Zürich 銀行");
        assert_eq!(
            for_terminal("\u{1b}[2J\u{1b}]0;pwned\u{7}x"),
            "\\u{1b}[2J\\u{1b}]0;pwned\\u{7}x"
        );
        assert_eq!(for_terminal("a\u{202e}moc.live"), "a\\u{202e}moc.live");
        assert_eq!(
            for_terminal("tab\there\nnl\u{9b}c1"),
            "tab\\u{9}here\\u{a}nl\\u{9b}c1"
        );
        // Once anything is escaped, a literal backslash is doubled, so "\u{1b}" typed
        // into a title cannot pose as an escaped ESC next to a real one.
        assert_eq!(for_terminal("\\u{1b}\u{1b}"), "\\\\u{1b}\\u{1b}");
        assert_eq!(for_terminal("\\plain"), "\\plain");
        assert_eq!(
            super::for_terminal_cow("a\u{202e}b"),
            for_terminal("a\u{202e}b")
        );
        assert!(matches!(
            super::for_terminal_cow("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
