//! Password strength as the Enpass whitepaper describes it: zxcvbn's estimate in bits
//! (log2 of its guess count), the Diceware entropy as the conservative bound for
//! passphrases the generator made (the lower of the two counts), a bonus of
//! log2(kdf_iter) bits for a master password (each guess costs that many PBKDF2
//! rounds), and a meter: ≤35 bits Very Poor, 35–50 Weak, 50–70 Average, 70–100 Good,
//! ≥100 Excellent.

use syncfabric::vault::generate::Generated;

/// The meter's levels, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    VeryPoor,
    Weak,
    Average,
    Good,
    Excellent,
}

impl Level {
    pub fn of_bits(bits: f64) -> Level {
        match bits {
            b if b <= 35.0 => Level::VeryPoor,
            b if b < 50.0 => Level::Weak,
            b if b < 70.0 => Level::Average,
            b if b < 100.0 => Level::Good,
            _ => Level::Excellent,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::VeryPoor => "Very Poor",
            Level::Weak => "Weak",
            Level::Average => "Average",
            Level::Good => "Good",
            Level::Excellent => "Excellent",
        }
    }
}

/// One estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Strength {
    /// The bits the level is read from.
    pub bits: f64,
    /// zxcvbn's own estimate, in bits.
    pub zxcvbn_bits: f64,
    /// zxcvbn's 0–4 score.
    pub zxcvbn_score: u8,
    pub level: Level,
    /// What the bits are: `zxcvbn`, `diceware` (the generator's count was lower), plus
    /// `+kdf` for a master password.
    pub basis: String,
}

impl Strength {
    pub fn describe(&self) -> String {
        format!(
            "{} ({:.0} bits, {})",
            self.level.name(),
            self.bits,
            self.basis
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "level": self.level.name(),
            "bits": super::generate::round1(self.bits),
            "zxcvbn_bits": super::generate::round1(self.zxcvbn_bits),
            "zxcvbn_score": self.zxcvbn_score,
            "basis": self.basis,
        })
    }
}

/// zxcvbn's guesses as bits: log2(guesses) = log10(guesses) · log2(10), and whether
/// the count hit the crate's ceiling: it counts guesses in a saturating `u64`, so it
/// never says more than 64 bits. A saturated estimate is a lower bound only.
fn zxcvbn_bits(password: &str, user_inputs: &[&str]) -> (f64, u8, bool) {
    if password.is_empty() {
        return (0.0, 0, false);
    }
    let e = zxcvbn::zxcvbn(password, user_inputs);
    let bits = e.guesses_log10() * std::f64::consts::LOG2_10;
    (bits, u8::from(e.score()), e.guesses() == u64::MAX)
}

/// A brute-force count: length × log2(size of the character classes used). Used only
/// above zxcvbn's 64-bit ceiling, where zxcvbn found no pattern cheaper than 2^64.
fn pool_bits(pw: &str) -> f64 {
    let mut pool = 0u32;
    for (has, n) in [
        (pw.chars().any(|c| c.is_ascii_lowercase()), 26),
        (pw.chars().any(|c| c.is_ascii_uppercase()), 26),
        (pw.chars().any(|c| c.is_ascii_digit()), 10),
        (pw.chars().any(|c| c.is_ascii_punctuation() || c == ' '), 33),
        (!pw.is_ascii(), 100),
    ] {
        if has {
            pool += n;
        }
    }
    pw.chars().count() as f64 * f64::from(pool.max(2)).log2()
}

/// Any password (an item's): zxcvbn, the item's own text as user inputs (a password
/// made of the item's title or user name is weak); above zxcvbn's 64-bit ceiling,
/// the brute-force count.
pub fn of_password(password: &str, user_inputs: &[&str]) -> Strength {
    let (z, score, saturated) = zxcvbn_bits(password, user_inputs);
    let (bits, basis) = if saturated && pool_bits(password) > z {
        (pool_bits(password), "character pool; zxcvbn >= 64 bits")
    } else {
        (z, "zxcvbn")
    };
    Strength {
        bits,
        zxcvbn_bits: z,
        zxcvbn_score: score,
        level: Level::of_bits(bits),
        basis: basis.into(),
    }
}

/// What the generator made: a passphrase counts the lower of zxcvbn and its Diceware
/// entropy (the whitepaper's conservative rule); a random-character password counts
/// its exact entropy when zxcvbn, which does not know the recipe, estimates more.
///
/// zxcvbn never counts above 64 bits (see `zxcvbn_bits`); when it hits that ceiling
/// the recipe's exact count is used.
pub fn of_generated(g: &Generated, passphrase: bool) -> Strength {
    let (z, score, saturated) = zxcvbn_bits(g.password.expose(), &[]);
    let recipe = if passphrase { "diceware" } else { "entropy" };
    let (bits, basis) = if saturated || g.entropy_bits < z {
        (g.entropy_bits, recipe)
    } else {
        (z, "zxcvbn")
    };
    Strength {
        bits,
        zxcvbn_bits: z,
        zxcvbn_score: score,
        level: Level::of_bits(bits),
        basis: basis.into(),
    }
}

/// A master password: zxcvbn plus log2(kdf_iter) bits, since each guess costs
/// `kdf_iter` PBKDF2 rounds.
pub fn of_master(password: &str, kdf_iter: u32) -> Strength {
    let base = of_password(password, &[]);
    let (z, score) = (base.zxcvbn_bits, base.zxcvbn_score);
    let bonus = f64::from(kdf_iter.max(1)).log2();
    let bits = base.bits + bonus;
    Strength {
        bits,
        zxcvbn_bits: z,
        zxcvbn_score: score,
        level: Level::of_bits(bits),
        basis: format!("zxcvbn +{bonus:.1} bits for {kdf_iter} PBKDF2 rounds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncfabric::vault::generate::{passphrase, Rng, WordList};
    use syncfabric::vault::Secret;

    #[test]
    fn the_meter_boundaries() {
        for (bits, want) in [
            (0.0, Level::VeryPoor),
            (35.0, Level::VeryPoor),
            (35.1, Level::Weak),
            (49.9, Level::Weak),
            (50.0, Level::Average),
            (69.9, Level::Average),
            (70.0, Level::Good),
            (99.9, Level::Good),
            (100.0, Level::Excellent),
        ] {
            assert_eq!(Level::of_bits(bits), want, "{bits}");
        }
    }

    /// zxcvbn's scores on known passwords, and the meter they give.
    #[test]
    fn zxcvbn_on_known_passwords() {
        let s = of_password("password", &[]);
        assert_eq!((s.zxcvbn_score, s.level), (0, Level::VeryPoor), "{s:?}");
        let s = of_password("P@ssw0rd1", &[]);
        assert!(s.zxcvbn_score <= 1 && s.level == Level::VeryPoor, "{s:?}");
        let s = of_password("correcthorsebatterystaple", &[]);
        assert!(s.zxcvbn_score >= 3, "{s:?}");
        let s = of_password("kX9#vQ2$mL7@pR4&wZ8!", &[]);
        assert_eq!(s.zxcvbn_score, 4, "{s:?}");
        assert!(s.level >= Level::Good, "{s:?}");
        // zxcvbn's ceiling: 64 bits, whatever the length; past it the pool count.
        let long = "kX9#vQ2$mL7@pR4&wZ8!kX9#vQ2$mL7@pR4&wZ8!";
        let s = of_password(long, &[]);
        assert!(s.zxcvbn_bits <= 64.0 + 1e-9, "{s:?}");
        assert_eq!(s.level, Level::Excellent, "{s:?}");
        // Below the ceiling a long but patterned password stays weak.
        let s = of_password("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &[]);
        assert_eq!(s.level, Level::VeryPoor, "{s:?}");
        // The item's own words make a password weak.
        let alone = of_password("acmebank2024", &[]);
        let with = of_password("acmebank2024", &["acmebank"]);
        assert!(with.bits < alone.bits, "{alone:?} {with:?}");
        assert_eq!(of_password("", &[]).level, Level::VeryPoor);
    }

    #[test]
    fn master_password_bonus_is_the_kdf_cost() {
        let plain = of_password("tulip-harbor-92", &[]);
        let master = of_master("tulip-harbor-92", 320_000);
        assert!((master.bits - plain.bits - 320_000f64.log2()).abs() < 1e-9);
        assert!(master.level > plain.level, "{plain:?} {master:?}");
    }

    #[test]
    fn passphrases_count_the_lower_estimate() {
        let mut rng = Rng::new();
        let list = WordList::eff_large();
        // 8 words: 103.4 bits, past zxcvbn's 64-bit ceiling: the Diceware count.
        let g = passphrase(&list, 8, "-", &mut rng).unwrap();
        let s = of_generated(&g, true);
        assert_eq!(
            (s.bits, s.level),
            (g.entropy_bits, Level::Excellent),
            "{s:?}"
        );
        // 3 words (38.8 bits): never more than either estimate.
        for _ in 0..20 {
            let g = passphrase(&list, 3, "-", &mut rng).unwrap();
            let s = of_generated(&g, true);
            assert!(
                s.bits <= g.entropy_bits + 1e-9 && s.bits <= s.zxcvbn_bits + 1e-9,
                "{s:?}"
            );
        }
        // A "passphrase" of one short word: zxcvbn knows the word, far below 12.9 bits.
        let weak = Generated {
            password: Secret::new("abacus"),
            entropy_bits: 12.9,
        };
        let s = of_generated(&weak, true);
        assert_eq!(s.basis, "zxcvbn");
        assert!(s.bits < 12.9);
    }
}
