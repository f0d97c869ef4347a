//! A Microsoft Graph fake for the OneDrive provider's tests (issue #8; being written).
