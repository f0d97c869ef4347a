//! OAuth 2 device-flow login (RFC 8628) and token storage for syncfabric's cloud
//! providers. Work in progress: see issue #8.
#![deny(missing_docs)]
