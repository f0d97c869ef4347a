//! A fake OAuth 2 authorisation server for the device-flow tests (issue #8; being written).
