//! Stored images (uploads, inputs, results), each gone when its TTL ends, in one of two places:
//! a local directory ([`local`], the default: one process, zero setup) or an S3-compatible
//! object store ([`object`], shared by every replica of a scaled-out deployment). Chosen by
//! `--storage-url` (`s3://bucket/prefix`, `file:///dir`); without it, `--storage-dir`.

pub mod dir_lock;
pub mod local;
pub mod object;

use std::io;
use std::path::Path;
use std::time::Duration;

use nobg_api::task_uuid::is_uuid;

pub use local::LocalStorage;
pub use object::ObjectStorage;

/// A stored image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub bytes: Vec<u8>,
    pub mime: String,
    pub extension: String,
}

/// Where images are stored; every request path goes through these methods.
pub enum Storage {
    Local(LocalStorage),
    Object(ObjectStorage),
}

impl Storage {
    /// A local directory (see [`LocalStorage::open`]).
    pub async fn open(dir: &Path) -> io::Result<Self> {
        Ok(Self::Local(LocalStorage::open(dir).await?))
    }

    /// `s3://bucket/prefix` (credentials and endpoint from the `AWS_*` environment variables)
    /// or `file:///dir`; `None` = the local directory `dir`.
    pub async fn from_config(url: Option<&str>, dir: &Path) -> anyhow::Result<Self> {
        let Some(url) = url else {
            return Ok(Self::open(dir).await?);
        };
        let parsed = url::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("--storage-url `{url}` is not a URL: {e}"))?;
        match parsed.scheme() {
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|()| anyhow::anyhow!("--storage-url `{url}`: not a local path"))?;
                Ok(Self::open(&path).await?)
            }
            "s3" => Ok(Self::Object(ObjectStorage::s3(&parsed)?)),
            other => anyhow::bail!(
                "--storage-url `{url}`: unsupported scheme `{other}` (use s3:// or file://)"
            ),
        }
    }

    /// Stores `bytes` for `ttl`; returns the new image's UUID.
    pub async fn put(
        &self,
        bytes: &[u8],
        extension: &str,
        mime: &str,
        ttl: Duration,
    ) -> io::Result<String> {
        match self {
            Self::Local(s) => s.put(bytes, extension, mime, ttl).await,
            Self::Object(s) => s.put(bytes, extension, mime, ttl).await,
        }
    }

    /// The image with this UUID, unless unknown or expired.
    pub async fn get(&self, id: &str) -> Option<StoredImage> {
        match self {
            Self::Local(s) => s.get(id).await,
            Self::Object(s) => s.get(id).await,
        }
    }

    /// The image behind a served file name `<uuid>.<ext>` (the extension must match).
    pub async fn get_file(&self, file_name: &str) -> Option<StoredImage> {
        let (id, extension) = parse_file_name(file_name)?;
        let image = self.get(id).await?;
        image
            .extension
            .eq_ignore_ascii_case(extension)
            .then_some(image)
    }

    /// Deletes the image now (an input nobody will ask for); unknown ids are ignored.
    pub async fn delete(&self, id: &str) {
        match self {
            Self::Local(s) => s.delete(id).await,
            Self::Object(s) => s.delete(id).await,
        }
    }

    /// Deletes expired images; returns how many.
    pub async fn sweep(&self) -> usize {
        match self {
            Self::Local(s) => s.sweep().await,
            Self::Object(s) => s.sweep().await,
        }
    }

    /// Whether the storage answers (`/ready`): always for a local directory this process owns.
    pub async fn check(&self) -> Result<(), String> {
        match self {
            Self::Local(_) => Ok(()),
            Self::Object(s) => s.check().await,
        }
    }

    /// `local` or `s3`, for `/ready`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::Object(_) => "s3",
        }
    }
}

/// `<uuid>.<ext>` with a short alphanumeric extension; anything else is not ours.
pub(crate) fn parse_file_name(name: &str) -> Option<(&str, &str)> {
    let (id, extension) = name.split_once('.')?;
    let ext_ok = !extension.is_empty()
        && extension.len() <= 5
        && extension.chars().all(|c| c.is_ascii_alphanumeric());
    (is_uuid(id) && ext_ok).then_some((id, extension))
}
