//! Stored images in an S3-compatible object store, shared by every replica: an image stored by
//! one replica is served (`imageURL`, `imageUUID` inputs) by any other.
//!
//! Each image is one object `<prefix>/<uuid>`; what the local storage keeps in its in-memory
//! index travels with the object instead: the MIME type as its `Content-Type`, the extension and
//! the expiry (Unix seconds) as user metadata. A read checks the expiry, so an expired image is
//! unreachable at once even before the sweeper deletes it. S3 writes are atomic: an object is
//! visible whole or not at all.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::TryStreamExt;
use nobg_api::task_uuid::is_uuid;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, PutOptions, PutPayload,
};
use uuid::Uuid;

use super::StoredImage;

const EXTENSION: &str = "nobg-ext";
const EXPIRES: &str = "nobg-expires";

pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// `s3://bucket/prefix`, for logs and `/ready`.
    url: String,
}

impl ObjectStorage {
    /// `s3://bucket/prefix`; credentials, region and endpoint from the `AWS_*` environment
    /// variables (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true` for a plain-HTTP server).
    pub fn s3(url: &url::Url) -> anyhow::Result<Self> {
        let store = AmazonS3Builder::from_env()
            .with_url(url.as_str())
            .build()
            .map_err(|e| anyhow::anyhow!("--storage-url `{url}`: {e}"))?;
        let prefix = ObjectPath::parse(url.path().trim_matches('/'))
            .map_err(|e| anyhow::anyhow!("--storage-url `{url}`: bad prefix: {e}"))?;
        Ok(Self::new(Arc::new(store), prefix, url.to_string()))
    }

    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, url: String) -> Self {
        Self { store, prefix, url }
    }

    pub async fn put(
        &self,
        bytes: &[u8],
        extension: &str,
        mime: &str,
        ttl: Duration,
    ) -> io::Result<String> {
        let id = Uuid::new_v4().to_string();
        let expires = unix_now().saturating_add(ttl.as_secs());
        let attributes = Attributes::from_iter([
            (
                Attribute::ContentType,
                AttributeValue::from(mime.to_owned()),
            ),
            (meta(EXTENSION), AttributeValue::from(extension.to_owned())),
            (meta(EXPIRES), AttributeValue::from(expires.to_string())),
        ]);
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.store
            .put_opts(
                &self.path_of(&id),
                PutPayload::from(bytes.to_vec()),
                options,
            )
            .await
            .map_err(io::Error::other)?;
        Ok(id)
    }

    pub async fn get(&self, id: &str) -> Option<StoredImage> {
        let id = id.to_ascii_lowercase();
        if !is_uuid(&id) {
            return None;
        }
        let result = match self.store.get(&self.path_of(&id)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return None,
            Err(e) => {
                tracing::warn!(%id, error = %e, "object storage read failed");
                return None;
            }
        };
        let (extension, mime, expires) = describe(&result.attributes)?;
        if expires <= unix_now() {
            return None;
        }
        let bytes = match result.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                tracing::warn!(%id, error = %e, "object storage read failed");
                return None;
            }
        };
        Some(StoredImage {
            bytes,
            mime,
            extension,
        })
    }

    pub async fn delete(&self, id: &str) {
        let id = id.to_ascii_lowercase();
        if !is_uuid(&id) {
            return;
        }
        match self.store.delete(&self.path_of(&id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(%id, error = %e, "cannot delete a stored object"),
        }
    }

    /// Lists the prefix and deletes the objects whose expiry has passed (a metadata-only read
    /// each); objects that are not ours (no expiry) are left alone.
    pub async fn sweep(&self) -> usize {
        let listed: Vec<_> = match self.store.list(Some(&self.prefix)).try_collect().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the object storage");
                return 0;
            }
        };
        let now = unix_now();
        let mut swept = 0;
        for object in listed {
            let head = GetOptions {
                head: true,
                ..GetOptions::default()
            };
            let Ok(result) = self.store.get_opts(&object.location, head).await else {
                continue;
            };
            let expired = describe(&result.attributes).is_some_and(|(_, _, e)| e <= now);
            if expired && self.store.delete(&object.location).await.is_ok() {
                swept += 1;
            }
        }
        swept
    }

    /// One cheap request that fails when the store is unreachable or refuses us.
    pub async fn check(&self) -> Result<(), String> {
        let probe = self.prefix.child(".nobg-ready-probe");
        match self.store.head(&probe).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.url)),
        }
    }

    fn path_of(&self, id: &str) -> ObjectPath {
        self.prefix.child(id)
    }
}

fn meta(key: &'static str) -> Attribute {
    Attribute::Metadata(key.into())
}

/// Extension, MIME type and expiry of an object of ours.
fn describe(attributes: &Attributes) -> Option<(String, String, u64)> {
    let extension = attributes.get(&meta(EXTENSION))?.to_string();
    let expires = attributes.get(&meta(EXPIRES))?.parse().ok()?;
    let mime = attributes
        .get(&Attribute::ContentType)
        .map_or_else(|| "application/octet-stream".to_owned(), |m| m.to_string());
    Some((extension, mime, expires))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
