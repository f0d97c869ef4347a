//! The password generator: random characters from chosen classes, or Diceware-style
//! passphrases from a word list, with their entropy.
//!
//! Randomness is OpenSSL's `RAND_bytes` (the CSPRNG the rest of the crate uses). Every
//! choice among `n` options is uniform: a 32-bit draw is rejected when it falls in the
//! last, incomplete block of `n` values (`2^32 mod n` of them), so no option is more
//! likely than another ([`Rng::below`]). A password that must contain every chosen
//! class is drawn again whole until it does, which keeps every acceptable password
//! equally likely; its entropy is counted exactly (inclusion–exclusion).
//!
//! The default word list is the EFF large list (7,776 words, CC BY 3.0 US; see
//! `wordlists/README.md` in this crate): 12.9 bits per word.

use crate::error::{Error, Result};
use crate::secret::Secret;
use zeroize::Zeroizing;

/// The EFF large word list as shipped (`<dice digits>\t<word>` lines).
const EFF_LARGE: &str = include_str!("../wordlists/eff_large_wordlist.txt");

/// Lower-case letters.
pub const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
/// Upper-case letters.
pub const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Digits.
pub const DIGITS: &str = "0123456789";
/// Symbols: printable ASCII without quotes, backslash, backtick and space, so a
/// password survives being pasted into a shell or a form.
pub const SYMBOLS: &str = "!#$%&()*+,-./:;<=>?@[]^_{|}~";
/// Characters easily read as one another, left out with `exclude_lookalikes`.
pub const LOOKALIKES: &str = "0OoIl1|";

/// A uniform random source over OpenSSL's `RAND_bytes`, drawn 256 bytes at a time.
pub struct Rng {
    buf: Zeroizing<[u8; 256]>,
    pos: usize,
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rng(<redacted>)")
    }
}

impl Rng {
    /// A new source (nothing drawn yet).
    pub fn new() -> Rng {
        Rng {
            buf: Zeroizing::new([0u8; 256]),
            pos: 256,
        }
    }

    fn next_u32(&mut self) -> Result<u32> {
        if self.pos + 4 > self.buf.len() {
            crate::crypto::random_bytes(&mut self.buf[..])?;
            self.pos = 0;
        }
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.buf[self.pos..self.pos + 4]);
        self.pos += 4;
        Ok(u32::from_le_bytes(b))
    }

    /// A uniform number in `0..n` (rejection sampling: no modulo bias).
    /// [`Error::InvalidInput`] for `n == 0`.
    pub fn below(&mut self, n: u32) -> Result<u32> {
        if n == 0 {
            return Err(Error::InvalidInput("a choice among 0 options".into()));
        }
        // Accept x < limit, the largest multiple of n that fits in 2^32.
        let limit = (1u64 << 32) - ((1u64 << 32) % u64::from(n));
        loop {
            let x = u64::from(self.next_u32()?);
            if x < limit {
                return Ok((x % u64::from(n)) as u32);
            }
        }
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new()
    }
}

/// What a random-character password is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharOptions {
    /// Number of characters (4 to 1024).
    pub length: usize,
    /// Use `a-z`.
    pub lower: bool,
    /// Use `A-Z`.
    pub upper: bool,
    /// Use `0-9`.
    pub digits: bool,
    /// Use [`SYMBOLS`].
    pub symbols: bool,
    /// Leave out [`LOOKALIKES`].
    pub exclude_lookalikes: bool,
    /// Every class used appears at least once (as sites often demand).
    pub require_each_class: bool,
}

impl Default for CharOptions {
    fn default() -> CharOptions {
        CharOptions {
            length: 20,
            lower: true,
            upper: true,
            digits: true,
            symbols: true,
            exclude_lookalikes: false,
            require_each_class: true,
        }
    }
}

/// A generated password and how many bits of entropy its recipe gives.
pub struct Generated {
    /// The password.
    pub password: Secret,
    /// log2 of the number of equally likely outcomes of the recipe.
    pub entropy_bits: f64,
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generated")
            .field("entropy_bits", &self.entropy_bits)
            .finish_non_exhaustive()
    }
}

/// The character classes of `o`, look-alikes removed if asked; none empty.
pub fn classes(o: &CharOptions) -> Result<Vec<Vec<char>>> {
    let mut out = Vec::new();
    for (on, set) in [
        (o.lower, LOWER),
        (o.upper, UPPER),
        (o.digits, DIGITS),
        (o.symbols, SYMBOLS),
    ] {
        if on {
            let chars: Vec<char> = set
                .chars()
                .filter(|c| !(o.exclude_lookalikes && LOOKALIKES.contains(*c)))
                .collect();
            out.push(chars);
        }
    }
    if out.is_empty() {
        return Err(Error::InvalidInput(
            "choose at least one character class".into(),
        ));
    }
    Ok(out)
}

/// log2 of the number of passwords of length `len` over the union of `classes` that
/// contain at least one character of each class (inclusion–exclusion, in the log
/// domain so that 1,024 characters do not overflow).
fn required_entropy(classes: &[Vec<char>], len: usize) -> f64 {
    let total: usize = classes.iter().map(Vec::len).sum();
    let k = classes.len();
    let mut frac = 0.0f64; // share of all passwords that have every class
    for mask in 0u32..(1 << k) {
        let missing: usize = (0..k)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| classes[i].len())
            .sum();
        let sign = if mask.count_ones() % 2 == 0 {
            1.0
        } else {
            -1.0
        };
        frac += sign * ((total - missing) as f64 / total as f64).powi(len as i32);
    }
    len as f64 * (total as f64).log2() + frac.max(f64::MIN_POSITIVE).log2()
}

/// A random-character password. [`Error::InvalidInput`] for a length outside 4..=1024,
/// no class chosen, or fewer characters than required classes.
pub fn password(o: &CharOptions, rng: &mut Rng) -> Result<Generated> {
    if !(4..=1024).contains(&o.length) {
        return Err(Error::InvalidInput(
            "a password length from 4 to 1024".into(),
        ));
    }
    let classes = classes(o)?;
    if o.require_each_class && o.length < classes.len() {
        return Err(Error::InvalidInput(format!(
            "a length of {} cannot hold one character of each of {} classes",
            o.length,
            classes.len()
        )));
    }
    let all: Vec<char> = classes.iter().flatten().copied().collect();
    let n = all.len() as u32;
    loop {
        let mut pw = Zeroizing::new(String::with_capacity(o.length));
        for _ in 0..o.length {
            pw.push(all[rng.below(n)? as usize]);
        }
        let ok =
            !o.require_each_class || classes.iter().all(|c| pw.chars().any(|p| c.contains(&p)));
        if ok {
            let entropy_bits = if o.require_each_class {
                required_entropy(&classes, o.length)
            } else {
                o.length as f64 * f64::from(n).log2()
            };
            return Ok(Generated {
                password: Secret::new(pw.as_str()),
                entropy_bits,
            });
        }
    }
}

/// A word list for passphrases: distinct, non-empty words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordList {
    words: Vec<String>,
}

impl WordList {
    /// The EFF large list shipped with this crate (7,776 words).
    pub fn eff_large() -> WordList {
        // The shipped file is checked by a test; parse cannot fail on it.
        WordList::parse(EFF_LARGE).unwrap_or(WordList { words: Vec::new() })
    }

    /// Parses a list: one word per line, optionally after dice digits and whitespace
    /// (`11111\tabacus`, as the EFF and Diceware lists are written); blank lines and
    /// `#` comments are skipped, repeated words counted once. [`Error::InvalidInput`]
    /// for fewer than 2 distinct words, a word with a space inside, or more than
    /// 1,000,000 words.
    pub fn parse(text: &str) -> Result<WordList> {
        let mut seen = std::collections::HashSet::new();
        let mut words = Vec::new();
        for (no, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let first = parts.next().unwrap_or("");
            let word = match parts.next() {
                Some(w) if first.chars().all(|c| c.is_ascii_digit()) => w,
                Some(_) => {
                    return Err(Error::InvalidInput(format!(
                        "word list line {}: one word per line (optionally after dice digits)",
                        no + 1
                    )))
                }
                None => first,
            };
            if parts.next().is_some() {
                return Err(Error::InvalidInput(format!(
                    "word list line {}: more than one word",
                    no + 1
                )));
            }
            if seen.insert(word.to_owned()) {
                words.push(word.to_owned());
            }
            if words.len() > 1_000_000 {
                return Err(Error::InvalidInput("word list over 1,000,000 words".into()));
            }
        }
        if words.len() < 2 {
            return Err(Error::InvalidInput(
                "a word list needs at least 2 distinct words".into(),
            ));
        }
        Ok(WordList { words })
    }

    /// The number of distinct words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Always false (a list has at least 2 words); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Bits of entropy per word: log2 of the list's length.
    pub fn bits_per_word(&self) -> f64 {
        (self.words.len() as f64).log2()
    }
}

/// A passphrase of `words` words (1 to 64) drawn uniformly from `list`, joined by
/// `separator`. Entropy: `words × log2(list length)` (the Diceware floor: what an
/// attacker who knows the list and the recipe faces).
pub fn passphrase(
    list: &WordList,
    words: usize,
    separator: &str,
    rng: &mut Rng,
) -> Result<Generated> {
    if !(1..=64).contains(&words) {
        return Err(Error::InvalidInput("a passphrase of 1 to 64 words".into()));
    }
    let n = u32::try_from(list.words.len())
        .map_err(|_| Error::InvalidInput("word list too long".into()))?;
    let mut out = Zeroizing::new(String::new());
    for i in 0..words {
        if i > 0 {
            out.push_str(separator);
        }
        out.push_str(&list.words[rng.below(n)? as usize]);
    }
    Ok(Generated {
        password: Secret::new(out.as_str()),
        entropy_bits: words as f64 * list.bits_per_word(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pearson's chi-square statistic of `counts` against a uniform expectation.
    fn chi_square(counts: &[u64]) -> f64 {
        let total: u64 = counts.iter().sum();
        let expected = total as f64 / counts.len() as f64;
        counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum()
    }

    /// A fixed, generous bound: the mean (df) plus 8 standard deviations (sqrt(2 df)).
    /// For a uniform source the chance to pass it is below 1e-9; a modulo bias of
    /// one byte per draw (see below) exceeds it many times over.
    fn bound(categories: usize) -> f64 {
        let df = (categories - 1) as f64;
        df + 8.0 * (2.0 * df).sqrt()
    }

    #[test]
    fn below_is_uniform_for_awkward_ranges() {
        let mut rng = Rng::new();
        for n in [3u32, 62, 85, 7776] {
            let draws = 100 * n as usize + 200_000;
            let mut counts = vec![0u64; n as usize];
            for _ in 0..draws {
                counts[rng.below(n).unwrap() as usize] += 1;
            }
            let x2 = chi_square(&counts);
            eprintln!(
                "below({n}): chi-square {x2:.1} over {draws} draws, df {}, bound {:.1}",
                n - 1,
                bound(n as usize)
            );
            assert!(
                x2 < bound(n as usize),
                "below({n}): chi-square {x2} >= {}",
                bound(n as usize)
            );
        }
        assert!(rng.below(0).is_err());
    }

    /// The distribution test can fail: the classic biased sampler (one byte modulo n)
    /// is caught by the same statistic and bound.
    #[test]
    fn the_distribution_test_catches_modulo_bias() {
        let n = 85usize;
        let mut counts = vec![0u64; n];
        let mut buf = [0u8; 4096];
        for _ in 0..100 {
            openssl::rand::rand_bytes(&mut buf).unwrap();
            for b in buf {
                counts[b as usize % n] += 1;
            }
        }
        assert!(chi_square(&counts) > bound(n), "modulo bias went unnoticed");
    }

    #[test]
    fn passwords_are_uniform_over_their_characters() {
        let o = CharOptions {
            length: 32,
            exclude_lookalikes: true,
            require_each_class: false,
            ..CharOptions::default()
        };
        let all: Vec<char> = classes(&o).unwrap().concat();
        assert_eq!(all.len(), 26 + 26 + 10 + SYMBOLS.len() - LOOKALIKES.len());
        let mut counts = vec![0u64; all.len()];
        let mut rng = Rng::new();
        for _ in 0..10_000 {
            let g = password(&o, &mut rng).unwrap();
            for c in g.password.expose().chars() {
                let i = all
                    .iter()
                    .position(|&a| a == c)
                    .expect("only chosen characters");
                counts[i] += 1;
            }
        }
        let x2 = chi_square(&counts);
        eprintln!(
            "password chars: chi-square {x2:.1}, df {}, bound {:.1}",
            all.len() - 1,
            bound(all.len())
        );
        assert!(x2 < bound(all.len()), "chi-square {x2}");
    }

    #[test]
    fn classes_lookalikes_and_entropy() {
        let mut rng = Rng::new();
        let o = CharOptions {
            length: 12,
            exclude_lookalikes: true,
            ..CharOptions::default()
        };
        for _ in 0..200 {
            let g = password(&o, &mut rng).unwrap();
            let p = g.password.expose();
            assert_eq!(p.chars().count(), 12);
            assert!(!p.chars().any(|c| LOOKALIKES.contains(c)), "{p}");
            for set in [LOWER, UPPER, DIGITS, SYMBOLS] {
                assert!(p.chars().any(|c| set.contains(c)), "each class appears");
            }
        }
        // Digits only: 10^n outcomes; no requirement beyond the one class.
        let g = password(
            &CharOptions {
                length: 6,
                lower: false,
                upper: false,
                symbols: false,
                ..CharOptions::default()
            },
            &mut rng,
        )
        .unwrap();
        assert!((g.entropy_bits - 6.0 * 10f64.log2()).abs() < 1e-9);
        // Two classes of 1 character each, length 2: exactly 2 passwords ("ab", "ba").
        let two = vec![vec!['a'], vec!['b']];
        assert!((required_entropy(&two, 2) - 1.0).abs() < 1e-9);
        // Requiring classes costs a little entropy, never more than it has.
        let full = CharOptions::default();
        let n = classes(&full).unwrap().concat().len() as f64;
        let e = password(&full, &mut rng).unwrap().entropy_bits;
        assert!(e < 20.0 * n.log2() && e > 20.0 * n.log2() - 1.0, "{e}");
        for bad in [
            CharOptions {
                length: 3,
                ..CharOptions::default()
            },
            CharOptions {
                length: 2000,
                ..CharOptions::default()
            },
            CharOptions {
                lower: false,
                upper: false,
                digits: false,
                symbols: false,
                ..CharOptions::default()
            },
        ] {
            assert!(matches!(
                password(&bad, &mut rng),
                Err(Error::InvalidInput(_))
            ));
        }
    }

    #[test]
    fn the_eff_list_is_whole_and_passphrases_use_it() {
        let list = WordList::eff_large();
        assert_eq!(list.len(), 7776);
        assert!((list.bits_per_word() - 12.925).abs() < 0.001);
        let mut rng = Rng::new();
        let g = passphrase(&list, 6, " ", &mut rng).unwrap();
        let words: Vec<&str> = g.password.expose().split(' ').collect();
        assert_eq!(words.len(), 6);
        assert!(words.iter().all(|w| list.words.iter().any(|l| l == w)));
        assert!((g.entropy_bits - 6.0 * 7776f64.log2()).abs() < 1e-9);
        assert!(passphrase(&list, 0, "-", &mut rng).is_err());
    }

    #[test]
    fn word_lists_parse_tolerantly_and_refuse_nonsense() {
        let l = WordList::parse("# mine\n11111\tapple\n\npear\npear\n  fig  \n").unwrap();
        assert_eq!(l.words, ["apple", "pear", "fig"]);
        for bad in ["", "one\n", "two words\n", "1 a b\n"] {
            assert!(
                matches!(WordList::parse(bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }
}
