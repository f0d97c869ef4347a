//! The conformance suite against the Google Drive fake, one test per behaviour.
//! Chunks are 256 KiB (the smallest Drive allows), so the suite's larger writes go
//! up in several chunks of one resumable session.

mod common;

use syncfabric_conformance::conformance_tests;
use syncfabric_testkit::gdrive_fake::GdriveFakeConfig;

fn small_pages() -> GdriveFakeConfig {
    GdriveFakeConfig {
        page_size: 2,
        ..GdriveFakeConfig::default()
    }
}

conformance_tests!(common::harness(
    small_pages(),
    "gdrive:/Apps/Enpass?chunk_size=262144&poll_ms=50"
));
