//! `syncfabric generate`: random passwords and Diceware passphrases (no vault needed).

use super::{CliResult, Ctx};
use clap::Args;
use std::path::PathBuf;
use syncfabric::vault::generate::{self, CharOptions, Generated, Rng, WordList};

/// The recipe, shared by `generate` and `item add/edit --generate`.
#[derive(Args, Debug, Clone, Default)]
pub struct Recipe {
    /// Characters in a password (4 to 1024).
    #[arg(long, short = 'l', default_value_t = 20)]
    pub length: usize,
    /// No lower-case letters.
    #[arg(long)]
    pub no_lower: bool,
    /// No upper-case letters.
    #[arg(long)]
    pub no_upper: bool,
    /// No digits.
    #[arg(long)]
    pub no_digits: bool,
    /// No symbols.
    #[arg(long)]
    pub no_symbols: bool,
    /// Leave out characters easily mistaken for one another (0 O o I l 1 |).
    #[arg(long)]
    pub no_lookalikes: bool,
    /// A passphrase of N words instead (from the EFF large list, 12.9 bits a word).
    #[arg(long, value_name = "N")]
    pub words: Option<usize>,
    /// Words from this list instead of the EFF list (one word a line, optionally after
    /// dice digits).
    #[arg(long, requires = "words", value_name = "FILE")]
    pub wordlist: Option<PathBuf>,
    /// What goes between the words.
    #[arg(long, default_value = "-")]
    pub separator: String,
}

impl Recipe {
    /// One password or passphrase.
    pub fn make(&self, rng: &mut Rng) -> CliResult<Generated> {
        if let Some(n) = self.words {
            let list = match &self.wordlist {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .map_err(|e| format!("cannot read the word list {}: {e}", p.display()))?;
                    WordList::parse(&text).map_err(|e| format!("word list {}: {e}", p.display()))?
                }
                None => WordList::eff_large(),
            };
            return Ok(generate::passphrase(&list, n, &self.separator, rng)?);
        }
        let o = CharOptions {
            length: self.length,
            lower: !self.no_lower,
            upper: !self.no_upper,
            digits: !self.no_digits,
            symbols: !self.no_symbols,
            exclude_lookalikes: self.no_lookalikes,
            require_each_class: true,
        };
        Ok(generate::password(&o, rng)?)
    }
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    recipe: Recipe,
    /// How many to make.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    count: u32,
}

pub fn generate_cmd(ctx: &Ctx, a: GenerateArgs) -> CliResult {
    let mut rng = Rng::new();
    let mut made = Vec::new();
    for _ in 0..a.count {
        made.push(a.recipe.make(&mut rng)?);
    }
    if ctx.json {
        let v: Vec<serde_json::Value> = made
            .iter()
            .map(|g| {
                let s = super::strength::of_generated(g, a.recipe.words.is_some());
                serde_json::json!({
                    "password": g.password.expose(),
                    "entropy_bits": round1(g.entropy_bits),
                    "strength": s.json(),
                })
            })
            .collect();
        ctx.print_json(&serde_json::Value::Array(v));
        return Ok(());
    }
    for g in &made {
        println!("{}", g.password.expose());
    }
    // The figures go to stderr: `$(syncfabric generate)` captures the password alone.
    if !ctx.quiet {
        let g = &made[0];
        let s = super::strength::of_generated(g, a.recipe.words.is_some());
        eprintln!(
            "entropy {:.1} bits; strength {}",
            g.entropy_bits,
            s.describe()
        );
    }
    Ok(())
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
