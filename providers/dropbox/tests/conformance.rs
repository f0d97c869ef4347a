//! The conformance suite against the Dropbox fake, one test per behaviour. The
//! upload threshold is 100 bytes and appends 64 KiB, so every larger write of the
//! suite goes through an upload session (`finish` carries the rev check).

mod common;

use syncfabric_conformance::conformance_tests;
use syncfabric_testkit::dropbox_fake::DropboxFakeConfig;

fn small_pages() -> DropboxFakeConfig {
    DropboxFakeConfig {
        page_size: 2,
        ..DropboxFakeConfig::default()
    }
}

conformance_tests!(common::harness(
    small_pages(),
    "dropbox:/Apps/Enpass?upload_threshold=100&chunk_size=65536"
));
