//! `syncfabric item ...`

use super::escape::for_terminal as t;
use super::{CliResult, Ctx};
use clap::{Args, Subcommand};
use syncfabric::vault::{field_type, Item, NewItem, Secret};

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
    /// Generate a random password of this length.
    #[arg(long)]
    generate: Option<usize>,
}

fn generate_password(len: usize) -> CliResult<Secret> {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!@#$%^&*-_=+";
    if !(8..=256).contains(&len) {
        return Err("--generate takes a length from 8 to 256".into());
    }
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - (256 % CHARS.len());
    while out.len() < len {
        openssl::rand::rand_bytes(&mut buf)?;
        for b in buf {
            if (b as usize) < limit && out.len() < len {
                out.push(CHARS[b as usize % CHARS.len()] as char);
            }
        }
    }
    Ok(Secret::new(out))
}

fn new_password(ctx: &mut Ctx, v: &ItemValues) -> CliResult<Option<Secret>> {
    if let Some(n) = v.generate {
        return Ok(Some(generate_password(n)?));
    }
    if v.ask_password {
        return Ok(Some(
            ctx.secret("SYNCFABRIC_ITEM_PASSWORD", "Item password")?,
        ));
    }
    Ok(None)
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

fn summary(i: &Item) -> serde_json::Value {
    serde_json::json!({
        "uuid": i.uuid, "title": i.title, "subtitle": i.subtitle, "category": i.category,
        "trashed": i.trashed, "deleted": i.deleted, "updated_at": i.updated_at,
    })
}

pub fn run(ctx: &mut Ctx, cmd: ItemCmd) -> CliResult {
    let mut vault = ctx.open_vault()?;
    match cmd {
        ItemCmd::List { trashed, all } => {
            let mut items: Vec<Item> = vault
                .items()?
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
            items.sort_by(|a, b| {
                a.title
                    .to_lowercase()
                    .cmp(&b.title.to_lowercase())
                    .then(a.uuid.cmp(&b.uuid))
            });
            if ctx.json {
                ctx.print_json(&serde_json::Value::Array(
                    items.iter().map(summary).collect(),
                ));
            } else {
                for i in &items {
                    let flag = if i.deleted {
                        " [deleted]"
                    } else if i.trashed {
                        " [trash]"
                    } else {
                        ""
                    };
                    println!("{}  {:<30} {}{}", i.uuid, t(&i.title), t(&i.subtitle), flag);
                }
            }
        }
        ItemCmd::Show { item, reveal } => {
            let i = find(&vault.items()?, &item)?;
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
            if ctx.json {
                let mut v = summary(&i);
                v["fields"] = fields
                    .iter()
                    .map(|f| serde_json::json!({ "uid": f.uid, "type": f.kind, "label": f.label, "value": shown(f), "history": f.history.len() }))
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
                }
                if !i.note.is_empty() {
                    println!("  {:<12} {}", "note", t(i.note.expose()));
                }
            }
        }
        ItemCmd::Add(v) => {
            let title = v.title.clone().ok_or("item add needs --title")?;
            let pw = new_password(ctx, &v)?.unwrap_or_default();
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
            let item = vault.add_item(new)?;
            if ctx.json {
                ctx.print_json(&summary(&item));
            } else {
                println!("added {} {}", item.uuid, t(&item.title));
            }
        }
        ItemCmd::Edit { item, values: v } => {
            let mut i = find(&vault.items()?, &item)?;
            if let Some(t) = &v.title {
                i.title = t.clone();
            }
            if let Some(n) = &v.note {
                i.note = Secret::new(n.clone());
            }
            let pw = new_password(ctx, &v)?;
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
            if let Some(u) = &v.username {
                i.subtitle = u.clone();
            }
            let i = vault.update_item(&i)?;
            if ctx.json {
                ctx.print_json(&summary(&i));
            } else {
                println!("updated {} {}", i.uuid, t(&i.title));
            }
        }
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
    }
    Ok(())
}

fn done(ctx: &Ctx, what: &str, i: &Item) {
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "uuid": i.uuid, "done": what }));
    } else {
        println!("{what} {} {}", i.uuid, t(&i.title));
    }
}
