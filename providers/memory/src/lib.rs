#![doc = include_str!("../docs.md")]
#![deny(missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use syncfabric_core::memory::MemoryStorage;
use syncfabric_core::registry::{
    Credentials, OpenOptions, ProviderFactory, ProviderInfo, Registry, StorageUrl,
};
use syncfabric_core::{Result, Storage};

/// The URL scheme this crate opens.
pub const SCHEMES: &[&str] = &["memory"];

/// Opens `memory:/NAME`: the process's store of that name, made empty on first use.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryFactory;

/// The stores of this process by name.
fn stores() -> &'static Mutex<HashMap<String, MemoryStorage>> {
    static STORES: OnceLock<Mutex<HashMap<String, MemoryStorage>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// The store named `name` in this process (the one `memory:/NAME` opens).
pub fn store(name: &str) -> MemoryStorage {
    // A panic elsewhere cannot leave the map half-changed: a poisoned lock is usable.
    let mut map = stores().lock().unwrap_or_else(|p| p.into_inner());
    map.entry(name.to_string()).or_default().client()
}

#[async_trait::async_trait]
impl ProviderFactory for MemoryFactory {
    async fn open(&self, url: &StorageUrl, _opts: &OpenOptions) -> Result<Arc<dyn Storage>> {
        let name = url.decoded_path()?;
        Ok(Arc::new(store(name.trim_matches('/'))))
    }
}

/// Registers [`MemoryFactory`] for [`SCHEMES`].
pub fn register(registry: &Registry) {
    registry.register_provider(
        ProviderInfo {
            schemes: SCHEMES,
            summary: "a store in this process's memory, for tests (forgotten when it exits)",
            example: "memory:/scratch",
            credentials: Credentials::None,
        },
        MemoryFactory,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncfabric_core::{Body, Precondition, RemotePath};

    #[tokio::test]
    async fn one_name_is_one_store_and_another_name_another() {
        let r = Registry::new();
        register(&r);
        let a = r.open("memory:/a").await.unwrap();
        let a2 = r.open("memory:/a").await.unwrap();
        let b = r.open("memory:/b").await.unwrap();
        let p = RemotePath::parse("x").unwrap();
        a.write(&p, Body::from(b"1".to_vec()), Precondition::IfAbsent)
            .await
            .unwrap();
        assert!(a2.stat(&p).await.unwrap().is_some());
        assert!(b.stat(&p).await.unwrap().is_none());
        assert_eq!(r.provider_of("memory:/a").unwrap().schemes, SCHEMES);
    }
}
