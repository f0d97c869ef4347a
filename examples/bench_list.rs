//! Listing speed (issue #19): `item list` on a 10,000-item vault, key derivation
//! excluded, against the floor: the `sqlcipher` command-line tool reading
//! `SELECT uuid, title, subtitle FROM item` from the same file with the raw key, in the
//! same run. Not a test: `scripts/bench-list.sh` runs it.
//!
//! Three figures, medians of several rounds:
//! * floor: the `sqlcipher` process (start, key, full read of `item`, exit);
//! * in-process: `Vault::open_with_key` + `item_summaries` + the listing's formatting
//!   (the key derived before the clock starts);
//! * CLI: the `syncfabric item list` process ($SYNCFABRIC_BIN) on a copy of the vault
//!   made with 1,000 PBKDF2 rounds, so that its key derivation costs well under a
//!   millisecond (the content and the file layout are the same).
//!
//! Measured on the shared 2-core dev machine: floor 22.5 ms, in-process 20.7 ms
//! (0.92x), CLI 30.1 ms (1.33x; 1.57x before the listing used a small page cache and
//! stopped copying every title and uuid to sort and print them). An empty vault's
//! `item list` costs 5.6 ms, a no-op `sqlcipher` 2.0 ms: most of that difference is the
//! dynamic loader relocating the larger binary (perf: `_dl_relocate_object`); the page
//! decryption is the same work in both.
//! `SYNCFABRIC_BENCH_KEEP=DIR` keeps the two vaults there for profiling.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;
use syncfabric::vault::{CreateOptions, NewItem, Secret, Vault};

const ITEMS: usize = 10_000;
const ROUNDS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn make(
    dir: &std::path::Path,
    pw: &Secret,
    kdf_iter: u32,
) -> Result<Vault, Box<dyn std::error::Error>> {
    let mut v = Vault::create(
        dir,
        pw,
        &CreateOptions {
            kdf_iter,
            ..Default::default()
        },
    )?;
    let items: Vec<NewItem> = (0..ITEMS)
        .map(|i| {
            NewItem::login(
                &format!("item {i:05}"),
                &format!("user{i}@example.com"),
                Secret::new(format!("pw-{i}")),
                "https://example.com",
            )
        })
        .collect();
    v.add_items(items)?;
    Ok(v)
}

/// The floor: one `sqlcipher` process reading the listing columns with the raw key.
fn sqlcipher(db: &std::path::Path, raw_hex: &str) -> Result<f64, Box<dyn std::error::Error>> {
    let t = Instant::now();
    let mut child = Command::new("sqlcipher")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let script = format!(
        "PRAGMA key=\"x'{raw_hex}'\";\nPRAGMA cipher_compatibility = 3;\nSELECT uuid, title, subtitle FROM item;\n"
    );
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    let secs = t.elapsed().as_secs_f64();
    let lines = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    if !out.status.success() || lines != ITEMS {
        return Err(format!("sqlcipher listed {lines} rows, not {ITEMS}").into());
    }
    Ok(secs)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // $SYNCFABRIC_BENCH_KEEP=DIR: make the vaults there and keep them (for profiling).
    let kept = std::env::var_os("SYNCFABRIC_BENCH_KEEP").map(std::path::PathBuf::from);
    let tmp_dir = tempfile::tempdir()?;
    let root = kept.unwrap_or_else(|| tmp_dir.path().to_path_buf());
    let pw = Secret::new("bench password");
    let dir = root.as_path().join("v");
    let v = make(&dir, &pw, syncfabric::vault::DEFAULT_KDF_ITER)?;
    let key = v.key().clone();
    let raw_hex = hex::encode(key.expose_raw());
    drop(v);
    let cli_dir = root.as_path().join("v1000");
    drop(make(&cli_dir, &pw, 1000)?);
    let bin = std::env::var_os("SYNCFABRIC_BIN");

    let (mut floor, mut inproc, mut cli) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        floor.push(sqlcipher(&dir.join("vault.enpassdb"), &raw_hex)?);

        let t = Instant::now();
        let v = Vault::open_with_key(&dir, key.clone())?;
        let mut items = v.item_summaries()?;
        items.retain(|i| i.is_live());
        items.sort_by_cached_key(|i| (i.title.to_lowercase(), i.uuid.clone()));
        let mut sink = Vec::with_capacity(1 << 20);
        for i in &items {
            writeln!(sink, "{}  {:<30} {}", i.uuid, i.title, i.subtitle)?;
        }
        inproc.push(t.elapsed().as_secs_f64());
        if items.len() != ITEMS {
            return Err("wrong item count".into());
        }

        if let Some(bin) = &bin {
            let t = Instant::now();
            let out = Command::new(bin)
                .arg("--vault")
                .arg(&cli_dir)
                .args(["item", "list"])
                .env("SYNCFABRIC_PASSWORD", pw.expose())
                .env("SYNCFABRIC_CONFIG", root.as_path().join("none.toml"))
                .stdout(Stdio::piped())
                .output()?;
            cli.push(t.elapsed().as_secs_f64());
            if !out.status.success()
                || out
                    .stdout
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
                    != ITEMS
            {
                return Err("syncfabric item list failed or listed the wrong count".into());
            }
        }
    }
    let f = median(floor);
    let p = median(inproc);
    println!("{ITEMS} items, median of {ROUNDS} rounds");
    println!(
        "floor     sqlcipher CLI, raw key, SELECT uuid,title,subtitle  {:7.1} ms",
        f * 1e3
    );
    println!(
        "in-proc   open_with_key + item_summaries + format             {:7.1} ms  ratio {:.2}",
        p * 1e3,
        p / f
    );
    if !cli.is_empty() {
        let c = median(cli);
        println!(
            "cli       syncfabric item list (process, 1,000-round KDF)     {:7.1} ms  ratio {:.2}",
            c * 1e3,
            c / f
        );
    }
    Ok(())
}
