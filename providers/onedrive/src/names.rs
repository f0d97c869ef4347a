//! OneDrive's naming rules and a reversible encoding around them.
//!
//! OneDrive and SharePoint refuse names containing `" * : < > ? / \ |` and names with
//! leading or trailing spaces ("Restrictions and limitations in OneDrive and
//! SharePoint", support.microsoft.com). A vault folder may hold any name the storage
//! contract allows, so names are mapped on the way out and back on the way in:
//!
//! * `" * : < > ? \ |` become their full-width forms (`＂ ＊ ： ＜ ＞ ？ ＼ ｜`);
//! * a leading or trailing space becomes `␠` (U+2420);
//! * a name that already contains one of those substitutes, or the escape `‛`
//!   (U+201B), has it prefixed with `‛`, so decoding is exact.
//!
//! `/` never reaches here (it separates path segments). The same mapping is what
//! rclone does for OneDrive, so files written by one are readable by the other.

const ESCAPE: char = '\u{201B}';
const SPACE_SUB: char = '\u{2420}';

fn fullwidth(c: char) -> Option<char> {
    Some(match c {
        '"' => '\u{FF02}',
        '*' => '\u{FF0A}',
        ':' => '\u{FF1A}',
        '<' => '\u{FF1C}',
        '>' => '\u{FF1E}',
        '?' => '\u{FF1F}',
        '\\' => '\u{FF3C}',
        '|' => '\u{FF5C}',
        _ => return None,
    })
}

fn halfwidth(c: char) -> Option<char> {
    Some(match c {
        '\u{FF02}' => '"',
        '\u{FF0A}' => '*',
        '\u{FF1A}' => ':',
        '\u{FF1C}' => '<',
        '\u{FF1E}' => '>',
        '\u{FF1F}' => '?',
        '\u{FF3C}' => '\\',
        '\u{FF5C}' => '|',
        _ => return None,
    })
}

/// The name as stored on OneDrive.
pub fn encode(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let lead = chars.iter().take_while(|c| **c == ' ').count();
    let trail = if lead == chars.len() {
        0
    } else {
        chars.iter().rev().take_while(|c| **c == ' ').count()
    };
    let mut out = String::with_capacity(name.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' && (i < lead || i >= chars.len() - trail) {
            out.push(SPACE_SUB);
        } else if let Some(f) = fullwidth(c) {
            out.push(f);
        } else {
            if c == ESCAPE || c == SPACE_SUB || halfwidth(c).is_some() {
                out.push(ESCAPE);
            }
            out.push(c);
        }
    }
    out
}

/// The name as the storage contract sees it (inverse of [`encode`]).
pub fn decode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut it = name.chars();
    while let Some(c) = it.next() {
        if c == ESCAPE {
            match it.next() {
                Some(n) => out.push(n),
                None => out.push(c),
            }
        } else if c == SPACE_SUB {
            out.push(' ');
        } else if let Some(h) = halfwidth(c) {
            out.push(h);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_legal() {
        for n in [
            "vault.enpassdb",
            "colon:name",
            "star*pipe|lt<gt>",
            "quote'dq\"",
            "question?mark",
            "  leading and trailing spaces  ",
            "   ",
            "back\\slash",
            "already \u{FF1A} fullwidth",
            "escape \u{201B} char",
            "sym \u{2420} space",
            "\u{2420}",
            "caf\u{e9} \u{1f510}",
        ] {
            let e = encode(n);
            assert_eq!(decode(&e), n, "{n:?} -> {e:?}");
            assert!(
                !e.chars().any(|c| "\"*:<>?/\\|".contains(c)),
                "{e:?} has an illegal character"
            );
            assert!(!e.starts_with(' ') && !e.ends_with(' '), "{e:?}");
        }
        assert_eq!(encode("plain name.txt"), "plain name.txt");
    }
}
