//! A flaky HTTP proxy for tests: injects 5xx, resets, 429 + Retry-After, latency and
//! truncated bodies between a provider and a real server. (Lands with the WebDAV issue.)
