//! The bodies of the fuzz targets in `fuzz/`, one function per target, each taking
//! the raw bytes of one input and panicking only when an invariant breaks.
//!
//! The cargo-fuzz crate (`fuzz/`, nightly, not a workspace member) calls each of these
//! from a one-line target. To run a fuzzer, from the repository root:
//!
//! ```text
//! cargo +nightly fuzz run -s none vault_json -- -max_total_time=600
//! cargo +nightly fuzz cmin -s none vault_json      # keep the corpus small
//! ```
//!
//! (`-s none`: the code under test is safe Rust, so AddressSanitizer would only slow
//! the search; a panic, an overflow or a failed assertion is the crash.) Targets:
//! `vault_json`, `state_json`, `config_toml`, `webdav_multistatus`, `graph_json`,
//! `retry_after`; the first run builds into `fuzz/target`.
//!
//! CI replays what the fuzzers found on stable, as an ordinary test of this crate
//! (`tests/replay.rs`): every file in `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through the matching function. A crash input goes
//! into `fuzz/regressions/<target>/` with the fix, so it is replayed forever.
#![deny(missing_docs)]

use std::time::{Duration, SystemTime};

// The CLI's configuration lives in the binary; included by path (with the escaping
// its messages use) until the CLI becomes a crate of its own, when this goes away
// and the replay crate depends on that crate instead.
#[allow(dead_code)]
#[path = "../../../src/cli/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "../../../src/cli/escape.rs"]
mod escape;

/// The body of a fuzz target: one input, a panic when an invariant breaks.
pub type Body = fn(&[u8]);

/// The fuzz targets by name, with their bodies (the names of `fuzz/fuzz_targets/*.rs`
/// and of the corpus folders).
pub const TARGETS: &[(&str, Body)] = &[
    ("vault_json", vault_json),
    ("state_json", state_json),
    ("config_toml", config_toml),
    ("webdav_multistatus", webdav_multistatus),
    ("graph_json", graph_json),
    ("retry_after", retry_after),
];

/// `vault.json` through [`syncfabric_vault::meta::VaultMeta::parse`]; what parses
/// serialises (as Enpass writes it) and parses again to the same content.
pub fn vault_json(data: &[u8]) {
    use syncfabric_vault::meta::VaultMeta;
    let Ok(meta) = VaultMeta::parse(data) else {
        return;
    };
    assert!(
        data.len() <= 1024 * 1024,
        "an oversized vault.json was read"
    );
    // The accessors the vault opens it with.
    let _ = meta.check_supported();
    if let Ok(n) = meta.kdf_iter() {
        use syncfabric_vault::meta::{MAX_KDF_ITER, MIN_KDF_ITER};
        assert!((MIN_KDF_ITER..=MAX_KDF_ITER).contains(&n), "kdf_iter {n}");
    }
    let _ = (meta.have_keyfile(), meta.vault_uuid(), meta.vault_name());
    let _ = meta.int("version");
    let text = meta.to_json_string();
    let again = VaultMeta::parse(text.as_bytes()).expect("our own vault.json parses");
    assert_eq!(again, meta, "vault.json round trip");
}

/// `state.json` through [`syncfabric::engine::state::SyncState::from_json`], as the
/// engine loads it: what loads names no path (each journal file is the one derived from
/// its number), numbers its journal strictly upwards with room for the next entry, and
/// saves and loads back equal.
pub fn state_json(data: &[u8]) {
    use syncfabric::engine::state::{journal_file_name, SyncState};
    let Ok(state) = SyncState::from_json(data) else {
        return;
    };
    let mut prev = 0u64;
    for e in &state.journal {
        assert!(
            e.seq > prev && e.seq < u64::MAX,
            "journal seq {} after {prev}",
            e.seq
        );
        prev = e.seq;
        assert_eq!(
            e.file,
            journal_file_name(e.seq),
            "a journal file names a path"
        );
    }
    let saved = serde_json::to_vec_pretty(&state).expect("a state serialises");
    let again = SyncState::from_json(&saved).expect("our own state.json loads");
    assert_eq!(again, state, "state.json round trip");
}

/// `config.toml` through `Config::parse`, as the CLI loads it; what loads has only
/// valid remote names and no password in a URL, and saves (as `Config::save` writes
/// it) and loads back equal.
pub fn config_toml(data: &[u8]) {
    use config::{check_remote_name, check_remote_url, Config};
    let Ok(text) = std::str::from_utf8(data) else {
        return; // `Config::load` reads a String: not UTF-8 is an I/O error there.
    };
    let Ok(cfg) = Config::parse(text) else {
        return;
    };
    for r in &cfg.remotes {
        assert!(
            check_remote_name(&r.name).is_ok(),
            "remote name {:?}",
            r.name
        );
        assert!(
            check_remote_url(&r.url).is_ok(),
            "a remote URL with a password"
        );
    }
    let saved = toml::to_string_pretty(&cfg).expect("a loaded config saves");
    let again = Config::parse(&saved).expect("our own config.toml loads");
    assert_eq!(again.default_vault, cfg.default_vault);
    assert_eq!(again.device_name, cfg.device_name);
    assert_eq!(again.token_file, cfg.token_file);
    assert_eq!(again.remotes, cfg.remotes);
    assert_eq!(again.oauth, cfg.oauth);
}

/// A WebDAV `207 Multi-Status` body (PROPFIND) and a `LOCK` answer body, through
/// the WebDAV provider's parsers and the mapping of each href to a path; the same
/// bytes (when short) as an `ETag` header value.
pub fn webdav_multistatus(data: &[u8]) {
    syncfabric_webdav::fuzz::multistatus(data);
    syncfabric_webdav::fuzz::activelocks(data);
    if data.len() <= 256 {
        syncfabric_webdav::fuzz::etag(&String::from_utf8_lossy(data));
    }
}

/// A Microsoft Graph JSON answer, through every answer type the OneDrive provider
/// reads and on into entries, child paths and followed links.
pub fn graph_json(data: &[u8]) {
    syncfabric_onedrive::fuzz::graph_json(data);
}

/// A `Retry-After` header value through
/// [`syncfabric_core::retry::parse_retry_after`], then as the retry loop uses it.
pub fn retry_after(data: &[u8]) {
    use syncfabric_core::retry::parse_retry_after;
    let value = String::from_utf8_lossy(data);
    // Never a date after 9999-12-31 (the HTTP-date grammar has four-digit years).
    const YEAR_10000: u64 = 253_402_300_800;
    for now_secs in [0, 1_800_000_000, YEAR_10000] {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs);
        let got = parse_retry_after(&value, now);
        let v = value.trim();
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            let want = v.parse::<u64>().unwrap_or(u64::MAX);
            assert_eq!(got, Some(Duration::from_secs(want)), "delta-seconds {v:?}");
        } else if let Some(d) = got {
            assert!(
                d.as_secs() <= YEAR_10000 - now_secs,
                "{v:?} is after the year 9999: {d:?}"
            );
        }
        if now_secs == 1_800_000_000 {
            through_the_retry_loop(got);
        }
    }
}

/// A rate-limit answer carrying `wait` through [`syncfabric_core::retry::Retrier`],
/// with a zero time budget so that nothing ever sleeps: it must give up at once (or
/// retry at once for a zero wait), never panic.
fn through_the_retry_loop(wait: Option<Duration>) {
    use syncfabric_core::retry::{Pacer, Retrier, RetryPolicy};
    use syncfabric_core::Error;
    thread_local! {
        static RT: Option<tokio::runtime::Runtime> =
            tokio::runtime::Builder::new_current_thread().enable_time().build().ok();
    }
    let policy = RetryPolicy {
        max_attempts: 2,
        max_total: Duration::ZERO,
        jitter: false,
        ..RetryPolicy::default()
    };
    let retrier = Retrier::new(policy, Pacer::new());
    let calls = std::cell::Cell::new(0u32);
    let run = retrier.run(|| {
        calls.set(calls.get() + 1);
        async move {
            Err::<(), _>(Error::RateLimited {
                retry_after: wait,
                message: "fuzz".into(),
            })
        }
    });
    RT.with(|rt| {
        let rt = rt.as_ref().expect("a current-thread runtime builds");
        assert!(rt.block_on(run).is_err());
    });
    assert!((1..=2).contains(&calls.get()));
}
