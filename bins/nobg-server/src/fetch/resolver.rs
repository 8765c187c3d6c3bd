//! The DNS resolver of the outbound client: resolves with the system resolver, then refuses the
//! whole name if any address fails the policy. reqwest connects only to the addresses returned
//! here, so the address checked is the address used (no DNS-rebinding window).

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{AddressPolicy, FetchError};

pub struct PolicyResolver {
    policy: Arc<AddressPolicy>,
}

impl PolicyResolver {
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(FetchError::Network(format!("{host} has no address")).into());
            }
            if let Some(bad) = addrs.iter().find(|a| !policy.permits(a.ip())) {
                tracing::warn!(%host, address = %bad.ip(), "refusing outbound connection to a non-public address");
                return Err(FetchError::Forbidden(host).into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
