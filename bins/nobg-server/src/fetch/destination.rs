//! Checking where a task will send its result (`webhookURL`, `uploadEndpoint`) when the task is
//! submitted, so that a forbidden destination is refused with a 400 before any inference rather
//! than failing after the work is done. The resolver checks the addresses again when it connects
//! (a name may re-resolve elsewhere: DNS rebinding).

use reqwest::Url;

use super::{check_url, FetchError, Fetcher};

impl Fetcher {
    /// Whether `url` is an http(s) URL whose host (an IP literal, or every address its name
    /// resolves to now) the address policy permits.
    pub async fn check_destination(&self, url: &str) -> Result<(), FetchError> {
        let parsed = Url::parse(url).map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
        check_url(&parsed, &self.policy)?;
        let Some(url::Host::Domain(host)) = parsed.host() else {
            return Ok(());
        };
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| FetchError::Network(format!("{host} cannot be resolved: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(FetchError::Network(format!("{host} has no address")));
        }
        match addrs.iter().find(|a| !self.policy.permits(a.ip())) {
            Some(_) => Err(FetchError::Forbidden(host.to_owned())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::FetchConfig;
    use crate::fetch::{FetchError, Fetcher};

    fn fetcher(allow: &[&str]) -> Fetcher {
        let config = FetchConfig {
            allow_networks: allow.iter().map(|s| s.parse().unwrap()).collect(),
            ..FetchConfig::default()
        };
        Fetcher::new(&config).unwrap()
    }

    #[tokio::test]
    async fn internal_literals_and_names_are_refused_unless_allow_listed() {
        let f = fetcher(&[]);
        for url in [
            "http://127.0.0.1:9/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.1/put",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:9/hook",
        ] {
            let err = f.check_destination(url).await.unwrap_err();
            assert!(matches!(err, FetchError::Forbidden(_)), "{url}: {err:?}");
        }
        assert!(matches!(
            f.check_destination("ftp://example.com/").await,
            Err(FetchError::InvalidUrl(_))
        ));
        // Public literals need no lookup and pass.
        f.check_destination("https://8.8.8.8/hook").await.unwrap();

        let open = fetcher(&["127.0.0.0/8", "::1/128"]);
        open.check_destination("http://127.0.0.1:9/hook")
            .await
            .unwrap();
        open.check_destination("http://localhost:9/hook")
            .await
            .unwrap();
    }
}
