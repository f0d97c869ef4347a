//! The conformance suite against the Graph fake with throttling on: 5 % of requests
//! answered 429 or 503, half of them with `Retry-After: 1`, half without; on a
//! SharePoint document library.

mod common;

use syncfabric_conformance::conformance_tests;
use syncfabric_testkit::graph_fake::{FakeConfig, ThrottlePlan};

fn throttled() -> FakeConfig {
    FakeConfig {
        throttle: ThrottlePlan::rate(0.05, 7),
        ..FakeConfig::default()
    }
}

conformance_tests!(common::harness(
    throttled(),
    "sharepoint://contoso.sharepoint.com/sites/Team/Documents/Enpass"
));
