//! OneDrive and SharePoint (Microsoft Graph) as syncfabric storage. Work in progress:
//! see issue #8.
#![deny(missing_docs)]
