//! The shared conformance suite on the folder provider: a plain local folder, a folder
//! set up as a network share (polling feed, no version cache), and the replica of a
//! desktop sync client double that syncs in the background while the suite runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use syncfabric_conformance::{run_all, Harness, Outcome};
use syncfabric_core::{RemotePath, Storage};
use syncfabric_folder::desktop_double::{CopyNaming, DesktopDouble};
use syncfabric_folder::{FolderOptions, FolderStorage};

/// A fresh folder under the target's test scratch space. Kept (not deleted) because
/// the harness outlives `setup`; `cargo clean` removes it.
fn fresh_dir() -> PathBuf {
    std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).unwrap();
    tempfile::Builder::new()
        .prefix("folder-conformance-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
}

fn scratch() -> RemotePath {
    RemotePath::parse("suite/scratch").unwrap()
}

fn harness(root: PathBuf, options: FolderOptions) -> Harness {
    let storage = FolderStorage::with_options(&root, options.clone()).unwrap();
    // Independent clients: separate handles, caches and lock descriptors.
    Harness::new(Arc::new(storage), scratch()).with_clients(move || {
        let root = root.clone();
        let options = options.clone();
        async move { Ok(Arc::new(FolderStorage::with_options(root, options)?) as Arc<dyn Storage>) }
    })
}

async fn plain() -> Harness {
    harness(fresh_dir(), FolderOptions::default())
}

async fn network_share() -> Harness {
    harness(
        fresh_dir(),
        FolderOptions::network_share(Duration::from_millis(200)),
    )
}

mod local_folder {
    use super::*;
    syncfabric_conformance::conformance_tests!(plain());
}

mod network_share_settings {
    use super::*;
    syncfabric_conformance::conformance_tests!(network_share());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes_without_skips() {
    let report = run_all(&plain().await).await;
    println!("{report}");
    report.assert_passed();
    for (name, outcome) in &report.results {
        // A folder has no server to enforce a lock (its CAS is truthful: none needed).
        if *name == "server_lock" {
            assert!(matches!(outcome, Ok(Outcome::Skipped(_))), "{outcome:?}");
            continue;
        }
        assert!(
            matches!(outcome, Ok(Outcome::Passed)),
            "{name}: {outcome:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes_inside_a_desktop_sync_client_folder() {
    let double = Arc::new(
        DesktopDouble::new(&fresh_dir(), Duration::from_millis(50), CopyNaming::Dropbox).unwrap(),
    );
    let runner = double.spawn(Duration::from_millis(10));
    let h = harness(double.replica().to_path_buf(), FolderOptions::default());
    let report = run_all(&h).await;
    drop(runner);
    println!("{report}");
    report.assert_passed();
}
