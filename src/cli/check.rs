//! `syncfabric remote check NAME`: the conformance suite against a configured remote,
//! as `rclone test` qualifies a remote: every behaviour of the storage contract, run in
//! a scratch folder of the remote and removed after, then the honesty probe's verdict
//! (which decides how syncfabric commits there, whatever the suite found).

use super::config::canonical;
use super::sync::Opener;
use super::{CliResult, Ctx};
use std::path::Path;
use syncfabric::core::registry::OpenOptions;
use syncfabric::core::RemotePath;
use syncfabric_conformance::{run_all, Harness, Outcome};

/// How the suite opens the remote: short retries. The suite checks the contract, and
/// some behaviours fail writes on purpose (a body cut mid-way), which the default
/// policy would retry for minutes each.
fn suite_options() -> OpenOptions {
    let retry = syncfabric::core::retry::RetryPolicy {
        min_delay: std::time::Duration::from_millis(50),
        max_delay: std::time::Duration::from_secs(2),
        max_attempts: 4,
        max_total: std::time::Duration::from_secs(20),
        ..Default::default()
    };
    OpenOptions::default().with_retry(retry)
}

/// Runs the suite against the remote `name` of the vault `vault`.
pub fn check_cmd(ctx: &mut Ctx, vault: &Path, name: &str) -> CliResult {
    let Some((url, account)) = ctx
        .config
        .remotes_of(vault)
        .iter()
        .find(|r| r.name == name && canonical(&r.vault) == vault)
        .map(|r| (r.url.clone(), r.account.clone()))
    else {
        return Err(format!("no remote {name:?} for this vault").into());
    };
    let opener = std::sync::Arc::new(Opener::new(ctx, &url, account.as_deref())?);
    // The race runs its clients as tasks on worker threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let storage = rt.block_on(opener.open_raw(suite_options()))?;
    let scratch = RemotePath::parse(&format!(".syncfabric-check-{:016x}", fastrand::u64(..)))?;
    let clients = opener.clone();
    let harness = Harness::new(storage.clone(), scratch.clone()).with_clients(move || {
        let o = clients.clone();
        async move { o.open_raw(suite_options()).await }
    });
    if !ctx.json {
        eprintln!(
            "checking {} in {scratch}/ (this takes a minute or more) …",
            storage.describe()
        );
    }
    let report = rt.block_on(run_all(&harness));
    rt.block_on(syncfabric_conformance::remove_tree(
        storage.as_ref(),
        &scratch,
    ));
    // The verdict as a sync would get it: the remote opened as `sync` opens it.
    let probed = rt.block_on(async {
        let plain = opener.open_raw(OpenOptions::default()).await?;
        syncfabric::remote::probe(plain.as_ref()).await
    });
    let (verdict, probe) = probed?;
    let failed = report.failures().len();
    if ctx.json {
        let results: Vec<serde_json::Value> = report
            .results
            .iter()
            .map(|(b, r)| {
                let (result, why) = match r {
                    Ok(Outcome::Passed) => ("pass", String::new()),
                    Ok(Outcome::Skipped(why)) => ("skip", why.clone()),
                    Err(f) => ("fail", f.message.clone()),
                };
                serde_json::json!({ "behaviour": b, "result": result, "message": why })
            })
            .collect();
        ctx.print_json(&serde_json::json!({
            "remote": name,
            "storage": report.storage,
            "results": results,
            "passed": report.passed(),
            "failed": failed,
            "skipped": report.skipped(),
            "cas": verdict.trust.as_str(),
            "versions": verdict.versions_str(),
            "writes": verdict.writes.as_str(),
            "probe": probe.summary(),
        }));
    } else {
        println!("{report}");
        println!("probe: {}", probe.summary());
        println!(
            "commits: {} ({})",
            verdict.trust.as_str(),
            verdict.explain()
        );
    }
    if failed > 0 {
        return Err(format!(
            "{failed} behaviour(s) failed on {name}; syncfabric still commits there as the probe decided"
        )
        .into());
    }
    Ok(())
}
