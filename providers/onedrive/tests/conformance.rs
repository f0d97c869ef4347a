//! The conformance suite against the Microsoft Graph fake (no throttling), on a
//! folder of the personal drive.

mod common;

use syncfabric_conformance::conformance_tests;
use syncfabric_testkit::graph_fake::FakeConfig;

conformance_tests!(common::harness(
    FakeConfig::default(),
    "onedrive:/Apps/Enpass"
));
