//! `syncfabric audit`: the live items' passwords that are weak (below Average on the
//! meter), reused (the same password in more than one item), old (unchanged for N
//! days) or, when asked, breached (Have I Been Pwned's range API: see `breach`).

use super::breach::{RangeClient, DEFAULT_ENDPOINT};
use super::escape::for_terminal as t;
use super::strength::{self, Level};
use super::{when, CliResult, Ctx};
use clap::Args;
use std::collections::HashMap;
use syncfabric::vault::field_type;

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Also check each password against Have I Been Pwned (only the first 5 hex
    /// characters of its SHA-1 are sent). Default: the config's `[audit] breached`.
    #[arg(long)]
    breached: bool,
    /// The range API's address (the 5-character prefix is appended). Default: the
    /// config's `[audit] endpoint`, else the public service.
    #[arg(long, env = "SYNCFABRIC_HIBP_ENDPOINT", value_name = "URL")]
    endpoint: Option<String>,
    /// A password unchanged for this many days is old. Default: the config's
    /// `[audit] days`, else 365.
    #[arg(long, value_name = "N")]
    days: Option<u32>,
}

struct Finding {
    uuid: String,
    title: String,
    strength: strength::Strength,
    reused_with: Vec<String>,
    age_days: i64,
    breached: Option<u64>,
}

pub fn audit_cmd(ctx: &mut Ctx, a: AuditArgs) -> CliResult {
    let cfg = ctx.config.audit.clone();
    let breached = a.breached || cfg.breached;
    let endpoint = a
        .endpoint
        .or(cfg.endpoint)
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let days = a.days.or(cfg.days).unwrap_or(365);
    let vault = ctx.open_vault()?;
    let now = when::now();
    let mut found = Vec::new();
    let mut by_password: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    let mut passwords = Vec::new();
    for item in vault.live_items()? {
        let Some(f) = item
            .field(field_type::PASSWORD)
            .filter(|f| !f.value.is_empty())
        else {
            continue;
        };
        let pw = f.value.clone();
        let inputs = [item.title.as_str(), item.subtitle.as_str()];
        by_password
            .entry(openssl::sha::sha256(pw.expose().as_bytes()))
            .or_default()
            .push(found.len());
        found.push(Finding {
            uuid: item.uuid.clone(),
            title: item.title.clone(),
            strength: strength::of_password(pw.expose(), &inputs),
            reused_with: Vec::new(),
            age_days: (now - f.value_updated_at.max(item.created_at)).max(0) / 86_400,
            breached: None,
        });
        passwords.push(pw);
    }
    for group in by_password.values().filter(|g| g.len() > 1) {
        for &i in group {
            found[i].reused_with = group
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| found[j].uuid.clone())
                .collect();
        }
    }
    let mut requests = 0;
    if breached {
        let rt = super::sync::runtime()?;
        let mut client = RangeClient::new(&endpoint)?;
        for (i, pw) in passwords.iter().enumerate() {
            found[i].breached = Some(rt.block_on(client.count(pw.expose()))?);
        }
        requests = client.requests;
    }
    report(ctx, &found, days, breached, requests);
    Ok(())
}

fn report(ctx: &Ctx, found: &[Finding], days: u32, breached: bool, requests: usize) {
    let old = |f: &Finding| f.age_days >= i64::from(days);
    let weak = |f: &Finding| f.strength.level < Level::Average;
    if ctx.json {
        let items: Vec<serde_json::Value> = found
            .iter()
            .map(|f| {
                serde_json::json!({
                    "uuid": f.uuid, "title": f.title,
                    "weak": weak(f), "strength": f.strength.json(),
                    "reused_with": f.reused_with,
                    "age_days": f.age_days, "old": old(f),
                    "breached": f.breached,
                })
            })
            .collect();
        ctx.print_json(&serde_json::json!({
            "checked": found.len(),
            "weak": found.iter().filter(|f| weak(f)).count(),
            "reused": found.iter().filter(|f| !f.reused_with.is_empty()).count(),
            "old": found.iter().filter(|f| old(f)).count(),
            "breached": if breached { Some(found.iter().filter(|f| f.breached.unwrap_or(0) > 0).count()) } else { None },
            "breach_requests": requests,
            "old_after_days": days,
            "items": items,
        }));
        return;
    }
    let mut clean = 0;
    for f in found {
        let mut notes = Vec::new();
        if weak(f) {
            notes.push(format!("weak: {}", f.strength.describe()));
        }
        if !f.reused_with.is_empty() {
            notes.push(format!("reused in {} other item(s)", f.reused_with.len()));
        }
        if old(f) {
            notes.push(format!("unchanged for {} days", f.age_days));
        }
        if let Some(n) = f.breached.filter(|n| *n > 0) {
            notes.push(format!("seen {n} times in breaches"));
        }
        if notes.is_empty() {
            clean += 1;
        } else {
            println!("{:<30} {}", t(&f.title), notes.join("; "));
        }
    }
    println!(
        "{} password(s) checked, {clean} with no finding{}",
        found.len(),
        if breached {
            format!(" ({requests} breach range lookups; only 5-character hash prefixes were sent)")
        } else {
            " (breaches not checked: --breached)".into()
        }
    );
}
