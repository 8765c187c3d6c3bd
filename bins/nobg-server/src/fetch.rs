//! Outbound HTTP on a user's behalf (input URLs, webhooks, upload endpoints), SSRF-safe:
//! http(s) only; every address a name resolves to must pass the [`AddressPolicy`], checked in the
//! resolver itself so the connection goes to exactly the checked addresses; IP-literal hosts
//! (which skip the resolver) are checked on the first request and on every redirect; no proxy;
//! size and time limits.

mod address_policy;
mod destination;
mod resolver;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{redirect, Client, Url};

pub use address_policy::{is_public, AddressPolicy};

use crate::config::FetchConfig;
use resolver::PolicyResolver;

/// Why an outbound request failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("the address of {0} is not allowed (private, loopback, link-local or reserved)")]
    Forbidden(String),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    #[error("the request timed out")]
    Timeout,
    #[error("request failed: {0}")]
    Network(String),
}

/// The one outbound client.
#[derive(Clone)]
pub struct Fetcher {
    client: Client,
    policy: Arc<AddressPolicy>,
}

impl Fetcher {
    pub fn new(config: &FetchConfig) -> anyhow::Result<Self> {
        let policy = Arc::new(AddressPolicy::new(config.allow_networks.clone()));
        let max_redirects = config.max_redirects;
        let redirect_policy = Arc::clone(&policy);
        let client = Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver::new(Arc::clone(&policy))))
            .redirect(redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > max_redirects {
                    return attempt.error(FetchError::Network("too many redirects".into()));
                }
                match check_url(attempt.url(), &redirect_policy) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(e),
                }
            }))
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .timeout(Duration::from_secs(config.timeout_secs))
            .user_agent(concat!("nobg-server/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, policy })
    }

    /// GET `url`, at most `limit` bytes of body.
    pub async fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, FetchError> {
        let url = self.checked(url)?;
        let response = self.client.get(url).send().await.map_err(classify)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(FetchError::TooLarge(limit));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(classify)?;
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// POST a JSON body; any 2xx is success.
    pub async fn post_json(&self, url: &str, body: Bytes) -> Result<(), FetchError> {
        let url = self.checked(url)?;
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(classify)?;
        ok_status(response.status())
    }

    /// PUT raw bytes (presigned-URL uploads); any 2xx is success.
    pub async fn put(&self, url: &str, body: Bytes, content_type: &str) -> Result<(), FetchError> {
        let url = self.checked(url)?;
        let response = self
            .client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(classify)?;
        ok_status(response.status())
    }

    fn checked(&self, url: &str) -> Result<Url, FetchError> {
        let parsed = Url::parse(url).map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
        check_url(&parsed, &self.policy)?;
        Ok(parsed)
    }
}

fn ok_status(status: reqwest::StatusCode) -> Result<(), FetchError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(FetchError::Status(status.as_u16()))
    }
}

/// Scheme and, for IP-literal hosts, address. Names are checked when resolved.
fn check_url(url: &Url, policy: &AddressPolicy) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::InvalidUrl(format!(
            "scheme `{}` is not http(s)",
            url.scheme()
        )));
    }
    match url.host() {
        None => Err(FetchError::InvalidUrl("no host".into())),
        Some(url::Host::Ipv4(ip)) if !policy.permits(ip.into()) => {
            Err(FetchError::Forbidden(ip.to_string()))
        }
        Some(url::Host::Ipv6(ip)) if !policy.permits(ip.into()) => {
            Err(FetchError::Forbidden(ip.to_string()))
        }
        Some(_) => Ok(()),
    }
}

/// Keeps our own error (policy refusals raised inside reqwest) recognisable.
fn classify(err: reqwest::Error) -> FetchError {
    if err.is_timeout() {
        return FetchError::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<FetchError>() {
            return match ours {
                FetchError::Forbidden(host) => FetchError::Forbidden(host.clone()),
                other => FetchError::Network(other.to_string()),
            };
        }
        source = e.source();
    }
    FetchError::Network(err.without_url().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetcher(allow: &[&str]) -> Fetcher {
        let config = FetchConfig {
            allow_networks: allow.iter().map(|s| s.parse().unwrap()).collect(),
            timeout_secs: 5,
            connect_timeout_secs: 2,
            ..FetchConfig::default()
        };
        Fetcher::new(&config).unwrap()
    }

    #[tokio::test]
    async fn refuses_non_http_and_internal_literals_before_connecting() {
        let f = fetcher(&[]);
        assert!(matches!(
            f.get("file:///etc/passwd", 10).await,
            Err(FetchError::InvalidUrl(_))
        ));
        assert!(matches!(
            f.get("gopher://example.com/", 10).await,
            Err(FetchError::InvalidUrl(_))
        ));
        for url in [
            "http://127.0.0.1:1/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:1/",
            "http://[::ffff:10.0.0.1]/",
            "http://10.0.0.1/",
        ] {
            assert!(
                matches!(f.get(url, 10).await, Err(FetchError::Forbidden(_))),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_by_the_resolver() {
        let f = fetcher(&[]);
        // `localhost` resolves without DNS (hosts file) to loopback.
        let err = f.get("http://localhost:9/x", 10).await.unwrap_err();
        assert!(matches!(err, FetchError::Forbidden(_)), "{err:?}");
    }
}
