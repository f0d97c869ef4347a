//! `syncfabric item attach|attachments|extract|detach`: an item's files.
//!
//! Storage is the vault crate's (`syncfabric_vault::attach`): up to 1 KiB inline in the
//! `attachment` row, larger ones in their own `<uuid>.enpassattach` SQLCipher file keyed
//! by the row's random key, as Enpass does. The sync engine carries both.

use super::escape::for_terminal as t;
use super::{CliResult, Ctx};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use syncfabric::vault::{Attachment, Item, Vault, MAX_ATTACHMENT};

/// A MIME type from the file name's extension (what Enpass shows; never trusted).
fn mime_for(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" | "text" | "md" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "zip" => "application/zip",
        "html" | "htm" => "text/html",
        _ => "application/octet-stream",
    }
}

fn json_of(a: &Attachment) -> serde_json::Value {
    serde_json::json!({
        "uuid": a.uuid, "name": a.name, "mime": a.mime, "size": a.size,
        "stored": if a.inline { "inline" } else { "file" },
        "created_at": a.created_at, "updated_at": a.updated_at,
    })
}

/// The live attachment of `item` named `key` (its name, or its uuid).
fn find(vault: &Vault, item: &Item, key: &str) -> CliResult<Attachment> {
    let live: Vec<Attachment> = vault
        .attachments(Some(&item.uuid))?
        .into_iter()
        .filter(|a| !a.deleted)
        .collect();
    if let Some(a) = live.iter().find(|a| a.uuid == key) {
        return Ok(a.clone());
    }
    let named: Vec<&Attachment> = live.iter().filter(|a| a.name == key).collect();
    match named.len() {
        1 => Ok(named[0].clone()),
        0 => Err(format!(
            "{} has no attachment named {key:?} (see `syncfabric item attachments TITLE`)",
            t(&item.title)
        )
        .into()),
        n => Err(format!(
            "{n} attachments of {} are named {key:?}; name one by uuid (see `syncfabric item attachments TITLE`)",
            t(&item.title)
        )
        .into()),
    }
}

/// `item attach`: stores `file` with `item`.
pub fn attach(
    ctx: &Ctx,
    vault: &mut Vault,
    item: &Item,
    file: &Path,
    name: Option<String>,
) -> CliResult {
    let f =
        std::fs::File::open(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let md = f
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if md.is_dir() {
        return Err(format!("{} is a folder, not a file", file.display()).into());
    }
    if md.is_file() && md.len() > MAX_ATTACHMENT {
        return Err(format!(
            "{} is {} bytes; an attachment can be at most {} bytes (1 GiB): every device downloads it",
            file.display(),
            md.len(),
            MAX_ATTACHMENT
        )
        .into());
    }
    let name = match name {
        Some(n) => n,
        None => file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{} has no file name: give one with --name", file.display()))?,
    };
    let mut reader = std::io::BufReader::new(f);
    let a = vault
        .add_attachment(&item.uuid, &name, mime_for(&name), &mut reader)
        .map_err(|e| -> Box<dyn std::error::Error> {
            match e {
                // Reading the file failed part-way (nothing was kept).
                syncfabric::vault::Error::Io { path, source } if path == Path::new(&name) => {
                    format!("cannot read {}: {source}", file.display()).into()
                }
                e => e.into(),
            }
        })?;
    if ctx.json {
        ctx.print_json(&json_of(&a));
    } else {
        println!(
            "attached {} ({} bytes, {}) to {}",
            t(&a.name),
            a.size,
            if a.inline { "inline" } else { "own file" },
            t(&item.title)
        );
    }
    Ok(())
}

/// `item attachments`: lists the live attachments of `item`.
pub fn list(ctx: &Ctx, vault: &Vault, item: &Item) -> CliResult {
    let live: Vec<Attachment> = vault
        .attachments(Some(&item.uuid))?
        .into_iter()
        .filter(|a| !a.deleted)
        .collect();
    if ctx.json {
        ctx.print_json(&live.iter().map(json_of).collect());
    } else {
        for a in &live {
            println!(
                "{}  {:>12}  {:<6} {}",
                a.uuid,
                a.size,
                if a.inline { "inline" } else { "file" },
                t(&a.name)
            );
        }
    }
    Ok(())
}

/// `item extract`: the content of one attachment, to `out` (a new file) or stdout.
pub fn extract(
    ctx: &Ctx,
    vault: &Vault,
    item: &Item,
    name: &str,
    out: Option<PathBuf>,
) -> CliResult {
    let a = find(vault, item, name)?;
    match out {
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                return Err(format!(
                    "{} would be written to the terminal: give a file with -o FILE (or redirect standard output)",
                    t(&a.name)
                )
                .into());
            }
            let mut lock = stdout.lock();
            vault.read_attachment_to(&a.uuid, &mut lock)?;
            lock.flush()?;
        }
        Some(path) => {
            let n = write_new_file(vault, &a, &path)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "uuid": a.uuid, "name": a.name, "written": path, "size": n }));
            } else {
                println!("wrote {} ({n} bytes) to {}", t(&a.name), path.display());
            }
        }
    }
    Ok(())
}

/// Writes the attachment to a private temp file beside `path`, then links it in as
/// `path` (never over an existing file). A content check that fails at the end leaves
/// nothing behind.
fn write_new_file(vault: &Vault, a: &Attachment, path: &Path) -> CliResult<u64> {
    if path.exists() {
        return Err(format!(
            "{} already exists; choose another -o FILE or remove it",
            path.display()
        )
        .into());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(
        ".syncfabric-extract-{}-{nanos}",
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts
        .open(&tmp)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let res = (|| -> CliResult<u64> {
        let mut w = std::io::BufWriter::new(file);
        let n = vault.read_attachment_to(&a.uuid, &mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(n)
    })();
    let _ = std::fs::remove_file(&tmp);
    res
}

/// `item detach`: removes one attachment (a tombstone, so the removal syncs).
pub fn detach(ctx: &Ctx, vault: &mut Vault, item: &Item, name: &str) -> CliResult {
    let a = find(vault, item, name)?;
    vault.remove_attachment(&a.uuid)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "uuid": a.uuid, "name": a.name, "done": "detached" }));
    } else {
        println!("detached {} from {}", t(&a.name), t(&item.title));
    }
    Ok(())
}
