//! `syncfabric item ...`

use super::attach;
use super::escape::for_terminal as t;
use super::when;
use super::{CliResult, Ctx};
use clap::{Args, Subcommand};
use syncfabric::vault::share::SharedFile;
use syncfabric::vault::{field_type, Item, NewItem, Secret, Vault};

#[derive(Subcommand, Debug)]
pub enum ItemCmd {
    /// List items (live ones; --trashed for the trash, --all for everything incl. deleted).
    ///
    /// Example: syncfabric item list --json
    List {
        /// Show trashed items only.
        #[arg(long)]
        trashed: bool,
        /// Show every item, deleted ones too.
        #[arg(long, conflicts_with = "trashed")]
        all: bool,
    },
    /// Show one item by uuid or exact title; password values are masked unless --reveal.
    ///
    /// Example: syncfabric item show Bank --reveal
    Show {
        /// Uuid or title.
        item: String,
        /// Print secret values in clear.
        #[arg(long)]
        reveal: bool,
    },
    /// Add a login item.
    ///
    /// Example: syncfabric item add --title Bank --username me --url https://bank.example --generate 24
    Add(ItemValues),
    /// Change fields of an item (only the options given change).
    ///
    /// Example: syncfabric item edit Bank --ask-password
    Edit {
        /// Uuid or title.
        item: String,
        #[command(flatten)]
        values: ItemValues,
    },
    /// Move an item to the trash.
    Trash {
        /// Uuid or title.
        item: String,
    },
    /// Take an item out of the trash.
    Untrash {
        /// Uuid or title.
        item: String,
    },
    /// Delete an item (kept as a tombstone so the deletion syncs).
    Rm {
        /// Uuid or title.
        item: String,
    },
    /// Attach a file to an item (up to 1 KiB inline, larger ones in their own encrypted
    /// `.enpassattach` file, as Enpass does; at most 1 GiB).
    ///
    /// Example: syncfabric item attach Bank ~/scans/contract.pdf
    Attach {
        /// Uuid or title.
        item: String,
        /// The file to attach.
        file: std::path::PathBuf,
        /// The name shown (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// List an item's attachments.
    ///
    /// Example: syncfabric item attachments Bank
    Attachments {
        /// Uuid or title.
        item: String,
    },
    /// Write an attachment's content to a new file (-o) or to standard output.
    ///
    /// Example: syncfabric item extract Bank contract.pdf -o ~/contract.pdf
    Extract {
        /// Uuid or title of the item.
        item: String,
        /// The attachment's name (or uuid).
        name: String,
        /// Write to this new file (never over an existing one).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Each field's earlier values and when they changed (edits here, and values a
    /// sync conflict lost, which the merge keeps in the field's history). Secret values
    /// are masked unless --reveal.
    ///
    /// Example: syncfabric item history Bank --reveal
    History {
        /// Uuid or title.
        item: String,
        /// Print secret values in clear.
        #[arg(long)]
        reveal: bool,
    },
    /// The item's current TOTP code (from its base32 secret or otpauth:// URI) and the
    /// seconds it stays valid.
    ///
    /// Example: syncfabric item totp Bank
    Totp {
        /// Uuid or title.
        item: String,
        /// The code at this unix time instead of now.
        #[arg(long, value_name = "UNIX")]
        at: Option<u64>,
    },
    /// Encrypt an item for someone who knows a pre-shared key (see `syncfabric psk
    /// new`): a text blob to send them, the PSK through another channel. The PSK comes
    /// from $SYNCFABRIC_PSK, --psk-file, the next line of stdin with --password-stdin,
    /// or a prompt (never an argument: it would stay in shell history). The item's
    /// attachments go with it (about 9 MiB in all at most) unless --no-attachments;
    /// field history is not shared.
    ///
    /// Example: SYNCFABRIC_PSK=... syncfabric item share Bank -o bank.share
    Share {
        /// Uuid or title.
        item: String,
        /// Share the item without its attachments.
        #[arg(long)]
        no_attachments: bool,
        /// Read the PSK from this file (its first line).
        #[arg(long, value_name = "FILE")]
        psk_file: Option<std::path::PathBuf>,
        /// Write the blob to this new file instead of standard output.
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Import an item shared with `item share` as a new item; a wrong PSK or a blob
    /// changed on the way imports nothing.
    ///
    /// Example: SYNCFABRIC_PSK=... syncfabric item receive bank.share
    Receive {
        /// The blob's file (`-`: standard input).
        file: std::path::PathBuf,
        /// Read the PSK from this file (its first line).
        #[arg(long, value_name = "FILE")]
        psk_file: Option<std::path::PathBuf>,
    },
    /// Remove an attachment from an item (the removal syncs).
    ///
    /// Example: syncfabric item detach Bank contract.pdf
    Detach {
        /// Uuid or title of the item.
        item: String,
        /// The attachment's name (or uuid).
        name: String,
    },
}

#[derive(Args, Debug, Default)]
pub struct ItemValues {
    /// Title.
    #[arg(long)]
    title: Option<String>,
    /// User name.
    #[arg(long)]
    username: Option<String>,
    /// E-mail.
    #[arg(long)]
    email: Option<String>,
    /// URL.
    #[arg(long)]
    url: Option<String>,
    /// Note.
    #[arg(long)]
    note: Option<String>,
    /// Read the item's password from $SYNCFABRIC_ITEM_PASSWORD, stdin (with
    /// --password-stdin, the line after the master password) or a prompt.
    #[arg(long, conflicts_with = "generate")]
    ask_password: bool,
    /// Generate a random password of this length (all character classes, from
    /// OpenSSL's RAND_bytes; see `syncfabric generate` for other recipes).
    #[arg(long, conflicts_with = "generate_words")]
    generate: Option<usize>,
    /// Generate a passphrase of this many words (EFF large word list).
    #[arg(long, value_name = "N", conflicts_with = "ask_password")]
    generate_words: Option<usize>,
    /// The TOTP secret: base32, or an otpauth://totp/ URI.
    #[arg(long)]
    totp: Option<String>,
}

fn new_password(ctx: &mut Ctx, v: &ItemValues) -> CliResult<Option<Secret>> {
    let recipe = match (v.generate, v.generate_words) {
        (Some(n), _) => Some(super::generate::Recipe {
            length: n,
            ..Default::default()
        }),
        (None, Some(w)) => Some(super::generate::Recipe {
            words: Some(w),
            separator: "-".into(),
            ..Default::default()
        }),
        (None, None) => None,
    };
    if let Some(r) = recipe {
        if r.words.is_none() && !(8..=256).contains(&r.length) {
            return Err("--generate takes a length from 8 to 256".into());
        }
        let g = r.make(&mut syncfabric::vault::generate::Rng::new())?;
        if !ctx.json && !ctx.quiet {
            let s = super::strength::of_generated(&g, r.words.is_some());
            eprintln!(
                "generated a password: entropy {:.1} bits; strength {}",
                g.entropy_bits,
                s.describe()
            );
        }
        return Ok(Some(g.password));
    }
    if v.ask_password {
        return Ok(Some(
            ctx.secret("SYNCFABRIC_ITEM_PASSWORD", "Item password")?,
        ));
    }
    Ok(None)
}

/// The pre-shared key: the first line of `file`, or $SYNCFABRIC_PSK / stdin / a prompt.
fn psk(ctx: &mut Ctx, file: Option<&std::path::Path>) -> CliResult<Secret> {
    let psk = match file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the pre-shared key from {}: {e}", p.display()))?;
            Secret::new(text.lines().next().unwrap_or("").trim().to_string())
        }
        None => ctx.secret("SYNCFABRIC_PSK", "Pre-shared key")?,
    };
    if psk.expose().trim().is_empty() {
        return Err("the pre-shared key is empty".into());
    }
    Ok(psk)
}

/// A TOTP value is stored only if codes can be made from it.
fn check_totp(v: &str) -> CliResult {
    if v.is_empty() {
        return Ok(());
    }
    syncfabric::vault::totp::Totp::parse(v).map_err(|e| format!("--totp: {e}"))?;
    Ok(())
}

/// `item totp`: the current code of the item's TOTP field (or `at` a given time).
fn totp(ctx: &Ctx, i: &Item, at: Option<u64>) -> CliResult {
    let field = i
        .fields
        .iter()
        .filter(|f| !f.deleted && !f.value.is_empty())
        .find(|f| {
            f.kind == field_type::TOTP
                || f.value
                    .expose()
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("otpauth://")
        })
        .ok_or_else(|| {
            format!(
                "{} has no TOTP secret (set one with `syncfabric item edit TITLE --totp SECRET`)",
                t(&i.title)
            )
        })?;
    let otp = syncfabric::vault::totp::Totp::parse(field.value.expose())
        .map_err(|e| format!("{}: {e}", t(&i.title)))?;
    let now = at.unwrap_or_else(|| when::now().max(0) as u64);
    let (code, left) = otp.at(now)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "code": code, "seconds_left": left, "period": otp.period, "digits": otp.digits }));
    } else {
        println!("{code}");
        if !ctx.quiet {
            eprintln!(
                "valid for {left} more second{}",
                if left == 1 { "" } else { "s" }
            );
        }
    }
    Ok(())
}

fn find(items: &[Item], key: &str) -> CliResult<Item> {
    if let Some(i) = items.iter().find(|i| i.uuid == key) {
        return Ok(i.clone());
    }
    let by_title: Vec<&Item> = items
        .iter()
        .filter(|i| i.title == key && !i.deleted)
        .collect();
    match by_title.len() {
        1 => Ok(by_title[0].clone()),
        0 => Err(format!("no item with uuid or title {key:?} (see `syncfabric item list`)").into()),
        n => Err(format!(
            "{n} items are titled {key:?}; name one by uuid (see `syncfabric item list`)"
        )
        .into()),
    }
}

fn listing(i: &syncfabric::vault::ItemSummary) -> serde_json::Value {
    serde_json::json!({
        "uuid": i.uuid, "title": i.title, "subtitle": i.subtitle, "category": i.category,
        "trashed": i.trashed, "deleted": i.deleted, "updated_at": i.updated_at,
    })
}

fn summary(i: &Item) -> serde_json::Value {
    serde_json::json!({
        "uuid": i.uuid, "title": i.title, "subtitle": i.subtitle, "category": i.category,
        "trashed": i.trashed, "deleted": i.deleted, "updated_at": i.updated_at,
    })
}

/// Runs one `item` subcommand on the vault.
pub fn run(ctx: &mut Ctx, cmd: ItemCmd) -> CliResult {
    let mut vault = ctx.open_vault()?;
    match cmd {
        ItemCmd::List { trashed, all } => list(ctx, &vault, trashed, all)?,
        ItemCmd::Show { item, reveal } => show(ctx, &vault, &item, reveal)?,
        ItemCmd::Add(v) => add(ctx, &mut vault, &v)?,
        ItemCmd::Edit { item, values: v } => edit(ctx, &mut vault, &item, &v)?,
        ItemCmd::Trash { item } => {
            let i = find(&vault.items()?, &item)?;
            vault.trash_item(&i.uuid)?;
            done(ctx, "trashed", &i);
        }
        ItemCmd::Untrash { item } => {
            let i = find(&vault.items()?, &item)?;
            vault.untrash_item(&i.uuid)?;
            done(ctx, "restored from trash", &i);
        }
        ItemCmd::Rm { item } => {
            let i = find(&vault.items()?, &item)?;
            vault.delete_item(&i.uuid)?;
            done(ctx, "deleted", &i);
        }
        ItemCmd::Attach { item, file, name } => {
            let i = find(&vault.items()?, &item)?;
            attach::attach(ctx, &mut vault, &i, &file, name)?;
        }
        ItemCmd::Attachments { item } => {
            let i = find(&vault.items()?, &item)?;
            attach::list(ctx, &vault, &i)?;
        }
        ItemCmd::Extract { item, name, output } => {
            let i = find(&vault.items()?, &item)?;
            attach::extract(ctx, &vault, &i, &name, output)?;
        }
        ItemCmd::History { item, reveal } => {
            let i = find(&vault.items()?, &item)?;
            history(ctx, &i, reveal);
        }
        ItemCmd::Totp { item, at } => {
            let i = find(&vault.items()?, &item)?;
            totp(ctx, &i, at)?;
        }
        ItemCmd::Share {
            item,
            no_attachments,
            psk_file,
            output,
        } => {
            let i = find(&vault.items()?, &item)?;
            let files = if no_attachments {
                Vec::new()
            } else {
                shared_files(&vault, &i)?
            };
            share(ctx, &i, &files, psk_file.as_deref(), output)?
        }
        ItemCmd::Receive { file, psk_file } => {
            receive(ctx, &mut vault, &file, psk_file.as_deref())?
        }
        ItemCmd::Detach { item, name } => {
            let i = find(&vault.items()?, &item)?;
            attach::detach(ctx, &mut vault, &i, &name)?;
        }
    }
    Ok(())
}

/// `item list`: the live items (or the trashed ones, or all), by title then uuid.
fn list(ctx: &Ctx, vault: &Vault, trashed: bool, all: bool) -> CliResult {
    // Listing columns only: one query, no field decrypted. One pass reads each
    // page once, so a small page cache saves ~600 page faults on 10,000 items
    // (measured: 33.4 -> 30.6 ms) and costs nothing.
    vault
        .connection()
        .execute_batch("PRAGMA cache_size = 16;")?;
    let items: Vec<syncfabric::vault::ItemSummary> = vault
        .item_summaries()?
        .into_iter()
        .filter(|i| {
            if all {
                true
            } else if trashed {
                i.trashed && !i.deleted
            } else {
                i.is_live()
            }
        })
        .collect();
    // Sorted by lower-cased title, then uuid: the keys made once, no copies.
    let keys: Vec<String> = items.iter().map(|i| i.title.to_lowercase()).collect();
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        keys[a]
            .cmp(&keys[b])
            .then_with(|| items[a].uuid.cmp(&items[b].uuid))
    });
    if ctx.json {
        ctx.print_json(&serde_json::Value::Array(
            order.iter().map(|&k| listing(&items[k])).collect(),
        ));
    } else {
        use super::escape::for_terminal_cow as tc;
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for &k in &order {
            let i = &items[k];
            let flag = if i.deleted {
                " [deleted]"
            } else if i.trashed {
                " [trash]"
            } else {
                ""
            };
            writeln!(
                out,
                "{}  {:<30} {}{}",
                i.uuid,
                tc(&i.title),
                tc(&i.subtitle),
                flag
            )?;
        }
        out.flush()?;
    }
    Ok(())
}

/// `item show`: one item's fields (secrets masked unless `reveal`) and its note.
fn show(ctx: &Ctx, vault: &Vault, item: &str, reveal: bool) -> CliResult {
    let i = find(&vault.items()?, item)?;
    let shown = |f: &syncfabric::vault::Field| -> String {
        if (f.sensitive || f.is_encrypted_type()) && !reveal && !f.value.is_empty() {
            "••••••••".into()
        } else {
            f.value.expose().to_string()
        }
    };
    let fields: Vec<&syncfabric::vault::Field> = i
        .fields
        .iter()
        .filter(|f| !f.deleted && f.kind != field_type::SECTION)
        .collect();
    let inputs = [i.title.as_str(), i.subtitle.as_str()];
    let strength = |f: &syncfabric::vault::Field| {
        (f.kind == field_type::PASSWORD && !f.value.is_empty())
            .then(|| super::strength::of_password(f.value.expose(), &inputs))
    };
    if ctx.json {
        let mut v = summary(&i);
        v["fields"] = fields
            .iter()
            .map(|f| {
                let mut j = serde_json::json!({ "uid": f.uid, "type": f.kind, "label": f.label, "value": shown(f), "history": f.history.len() });
                if let Some(s) = strength(f) {
                    j["strength"] = s.json();
                }
                j
            })
            .collect();
        ctx.print_json(&v);
    } else {
        println!("{} ({})", t(&i.title), i.uuid);
        for f in fields.iter().filter(|f| !f.value.is_empty()) {
            let label = if f.label.is_empty() {
                f.kind.as_str()
            } else {
                f.label.as_str()
            };
            println!("  {:<12} {}", t(label), t(&shown(f)));
            if let Some(s) = strength(f) {
                println!("  {:<12} {}", "strength", s.describe());
            }
        }
        if !i.note.is_empty() {
            println!("  {:<12} {}", "note", t(i.note.expose()));
        }
    }
    Ok(())
}

/// `item add`: a new login item from the values given.
fn add(ctx: &mut Ctx, vault: &mut Vault, v: &ItemValues) -> CliResult {
    let title = v.title.clone().ok_or("item add needs --title")?;
    let pw = new_password(ctx, v)?.unwrap_or_default();
    let mut new = NewItem::login(
        &title,
        v.username.as_deref().unwrap_or(""),
        pw,
        v.url.as_deref().unwrap_or(""),
    );
    if let Some(e) = &v.email {
        if let Some(f) = new.fields.iter_mut().find(|f| f.kind == field_type::EMAIL) {
            f.value = Secret::new(e.clone());
        }
    }
    if let Some(n) = &v.note {
        new.note = Secret::new(n.clone());
    }
    if let Some(x) = &v.totp {
        check_totp(x)?;
        if let Some(f) = new.fields.iter_mut().find(|f| f.kind == field_type::TOTP) {
            f.value = Secret::new(x.clone());
        }
    }
    let item = vault.add_item(new)?;
    if ctx.json {
        ctx.print_json(&summary(&item));
    } else {
        println!("added {} {}", item.uuid, t(&item.title));
    }
    Ok(())
}

/// `item edit`: changes the fields of `item` that `v` gives.
fn edit(ctx: &mut Ctx, vault: &mut Vault, item: &str, v: &ItemValues) -> CliResult {
    let mut i = find(&vault.items()?, item)?;
    if let Some(t) = &v.title {
        i.title = t.clone();
    }
    if let Some(n) = &v.note {
        i.note = Secret::new(n.clone());
    }
    let pw = new_password(ctx, v)?;
    let mut set = |kind: &str, val: Option<Secret>| -> CliResult {
        if let Some(val) = val {
            match i.field_mut(kind) {
                Some(f) => f.value = val,
                None => return Err(format!("item has no {kind} field").into()),
            }
        }
        Ok(())
    };
    set(field_type::USERNAME, v.username.clone().map(Secret::new))?;
    set(field_type::EMAIL, v.email.clone().map(Secret::new))?;
    set(field_type::URL, v.url.clone().map(Secret::new))?;
    set(field_type::PASSWORD, pw)?;
    if let Some(x) = &v.totp {
        check_totp(x)?;
    }
    set(field_type::TOTP, v.totp.clone().map(Secret::new))?;
    if let Some(u) = &v.username {
        i.subtitle = u.clone();
    }
    let i = vault.update_item(&i)?;
    if ctx.json {
        ctx.print_json(&summary(&i));
    } else {
        println!("updated {} {}", i.uuid, t(&i.title));
    }
    Ok(())
}

/// `item share`: the item encrypted under the pre-shared key, to a new file `output`
/// or to standard output.
fn share(
    ctx: &mut Ctx,
    i: &Item,
    files: &[SharedFile],
    psk_file: Option<&std::path::Path>,
    output: Option<std::path::PathBuf>,
) -> CliResult {
    let psk = psk(ctx, psk_file)?;
    let blob = syncfabric::vault::share::share_item(i, files, &psk).map_err(|e| match e {
        syncfabric::vault::share::ShareError::TooLarge { .. } => format!("{e}: --no-attachments"),
        e => e.to_string(),
    })?;
    match output {
        Some(path) => {
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            let mut f = o
                .open(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            std::io::Write::write_all(&mut f, blob.as_bytes())?;
            if !ctx.quiet {
                eprintln!("wrote {} shared under the pre-shared key to {}; send the key through another channel", t(&i.title), path.display());
            }
        }
        None => print!("{blob}"),
    }
    Ok(())
}

/// The live attachments of `i`, read whole (a share carries at most about 9 MiB).
fn shared_files(vault: &Vault, i: &Item) -> CliResult<Vec<SharedFile>> {
    let mut files = Vec::new();
    for a in vault.attachments(Some(&i.uuid))? {
        if a.deleted {
            continue;
        }
        if a.size > syncfabric::vault::share::MAX_BLOB as u64 {
            return Err(format!(
                "attachment {:?} ({} bytes) is too large to share; use --no-attachments",
                a.name, a.size
            )
            .into());
        }
        let mut data = zeroize::Zeroizing::new(Vec::with_capacity(a.size as usize));
        vault.read_attachment_to(&a.uuid, &mut *data)?;
        files.push(SharedFile {
            name: a.name,
            mime: a.mime,
            data,
        });
    }
    Ok(files)
}

/// `item receive`: imports a shared item from `file` (`-`: standard input) as a new
/// item.
fn receive(
    ctx: &mut Ctx,
    vault: &mut Vault,
    file: &std::path::Path,
    psk_file: Option<&std::path::Path>,
) -> CliResult {
    let psk = psk(ctx, psk_file)?;
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(
                std::io::stdin(),
                syncfabric::vault::share::MAX_BLOB as u64 + 1,
            ),
            &mut s,
        )?;
        s
    } else {
        let md =
            std::fs::metadata(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if md.len() > syncfabric::vault::share::MAX_BLOB as u64 {
            return Err(format!("{} is too large to be a shared item", file.display()).into());
        }
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?
    };
    let got = syncfabric::vault::share::receive_item(&text, &psk)?;
    let item = vault.add_item(got.item)?;
    for f in &got.files {
        vault
            .add_attachment(&item.uuid, &f.name, &f.mime, &mut &f.data[..])
            .map_err(|e| {
                format!(
                    "received {} {} but could not store its attachment {:?}: {e}",
                    item.uuid,
                    t(&item.title),
                    f.name
                )
            })?;
    }
    if ctx.json {
        ctx.print_json(&summary(&item));
    } else {
        println!("received {} {}", item.uuid, t(&item.title));
    }
    Ok(())
}

fn label_of(f: &syncfabric::vault::Field) -> &str {
    if f.label.is_empty() {
        f.kind.as_str()
    } else {
        f.label.as_str()
    }
}

/// `item history`: per field with earlier values, the current value and each earlier
/// one (newest first) with the time it was set.
fn history(ctx: &Ctx, i: &Item, reveal: bool) {
    let mask = |f: &syncfabric::vault::Field, v: &Secret| -> String {
        if (f.sensitive || f.is_encrypted_type()) && !reveal && !v.is_empty() {
            "••••••••".into()
        } else {
            v.expose().to_string()
        }
    };
    let fields: Vec<&syncfabric::vault::Field> =
        i.fields.iter().filter(|f| !f.history.is_empty()).collect();
    if ctx.json {
        let v: Vec<serde_json::Value> = fields
            .iter()
            .map(|f| {
                let mut h: Vec<&syncfabric::vault::HistoryEntry> = f.history.iter().collect();
                h.sort_by_key(|e| std::cmp::Reverse(e.updated_at));
                serde_json::json!({
                    "uid": f.uid, "type": f.kind, "label": f.label, "deleted": f.deleted,
                    "value": mask(f, &f.value), "value_updated_at": f.value_updated_at,
                    "history": h.iter().map(|e| serde_json::json!({
                        "value": mask(f, &e.value), "updated_at": e.updated_at,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        ctx.print_json(&serde_json::json!({ "uuid": i.uuid, "title": i.title, "fields": v }));
        return;
    }
    println!("{} ({})", t(&i.title), i.uuid);
    if fields.is_empty() {
        println!("  no field has an earlier value");
    }
    for f in fields {
        let gone = if f.deleted { " [field removed]" } else { "" };
        println!("  {}{gone}", t(label_of(f)));
        println!(
            "    now      {}  (since {})",
            t(&mask(f, &f.value)),
            when::date_ago(f.value_updated_at)
        );
        let mut h: Vec<&syncfabric::vault::HistoryEntry> = f.history.iter().collect();
        h.sort_by_key(|e| std::cmp::Reverse(e.updated_at));
        for e in h {
            println!(
                "    earlier  {}  (set {})",
                t(&mask(f, &e.value)),
                when::date_ago(e.updated_at)
            );
        }
    }
}

fn done(ctx: &Ctx, what: &str, i: &Item) {
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "uuid": i.uuid, "done": what }));
    } else {
        println!("{what} {} {}", i.uuid, t(&i.title));
    }
}
