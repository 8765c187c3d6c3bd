//! Stored images on local disk (the default, single-process storage), each deleted when its
//! TTL ends.
//!
//! Files are `<uuid>.<ext>` in one directory; the index (expiry, MIME type) lives in memory, so
//! files left by a previous run are unreachable and deleted at start-up. A server owns its
//! directory ([`dir_lock`]) so that it never deletes the files of another live server, and
//! writes each file under a temporary name first, so that a failed write never serves half a file.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{dir_lock, parse_file_name, StoredImage};

/// Files being written; never served, deleted at start-up.
const TEMP_PREFIX: &str = ".partial-";

#[derive(Debug, Clone)]
struct Entry {
    extension: String,
    mime: String,
    expires_at: Instant,
}

pub struct LocalStorage {
    dir: PathBuf,
    _owner: dir_lock::DirLock,
    index: Mutex<HashMap<String, Entry>>,
}

impl LocalStorage {
    /// Opens (creating) `dir`, takes ownership of it (refused while another server holds it),
    /// and deletes the files an earlier run left there.
    pub async fn open(dir: &Path) -> io::Result<Self> {
        tokio::fs::create_dir_all(dir).await?;
        let owner = {
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || dir_lock::DirLock::acquire(&dir))
                .await
                .map_err(io::Error::other)??
        };
        let mut leftovers = 0usize;
        let mut entries = tokio::fs::read_dir(dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if parse_file_name(&name).is_some() || name.starts_with(TEMP_PREFIX) {
                tokio::fs::remove_file(entry.path()).await?;
                leftovers += 1;
            }
        }
        if leftovers > 0 {
            tracing::info!(leftovers, dir = %dir.display(), "deleted files of an earlier run");
        }
        Ok(Self {
            dir: dir.to_owned(),
            _owner: owner,
            index: Mutex::new(HashMap::new()),
        })
    }

    /// Stores `bytes` for `ttl`; returns the new image's UUID.
    pub async fn put(
        &self,
        bytes: &[u8],
        extension: &str,
        mime: &str,
        ttl: Duration,
    ) -> io::Result<String> {
        let id = Uuid::new_v4().to_string();
        // Whole or nothing: a file appears under its served name only once completely written.
        let temp = self.dir.join(format!("{TEMP_PREFIX}{id}.{extension}"));
        let written = match tokio::fs::write(&temp, bytes).await {
            Ok(()) => tokio::fs::rename(&temp, self.path_of(&id, extension)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        let entry = Entry {
            extension: extension.to_owned(),
            mime: mime.to_owned(),
            expires_at: Instant::now() + ttl,
        };
        self.lock().insert(id.clone(), entry);
        Ok(id)
    }

    /// The image with this UUID, unless unknown or expired.
    pub async fn get(&self, id: &str) -> Option<StoredImage> {
        let id = id.to_ascii_lowercase();
        let entry = self.live_entry(&id)?;
        let bytes = tokio::fs::read(self.path_of(&id, &entry.extension))
            .await
            .ok()?;
        Some(StoredImage {
            bytes,
            mime: entry.mime,
            extension: entry.extension,
        })
    }

    /// Deletes the image now (an input nobody will ask for); unknown ids are ignored.
    pub async fn delete(&self, id: &str) {
        let id = id.to_ascii_lowercase();
        let Some(entry) = self.lock().remove(&id) else {
            return;
        };
        if let Err(e) = tokio::fs::remove_file(self.path_of(&id, &entry.extension)).await {
            tracing::warn!(%id, error = %e, "cannot delete a stored file");
        }
    }

    /// Deletes expired files; returns how many.
    pub async fn sweep(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<(String, Entry)> = {
            let mut index = self.lock();
            let ids: Vec<String> = index
                .iter()
                .filter(|(_, e)| e.expires_at <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| index.remove(&id).map(|e| (id, e)))
                .collect()
        };
        {
            // A burst's worth of index capacity is returned once the burst has expired.
            let mut index = self.lock();
            if index.capacity() > 4 * index.len() + 1024 {
                index.shrink_to_fit();
            }
        }
        for (id, entry) in &expired {
            if let Err(e) = tokio::fs::remove_file(self.path_of(id, &entry.extension)).await {
                tracing::warn!(%id, error = %e, "cannot delete an expired file");
            }
        }
        expired.len()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn live_entry(&self, id: &str) -> Option<Entry> {
        let index = self.lock();
        index
            .get(id)
            .filter(|e| e.expires_at > Instant::now())
            .cloned()
    }

    fn path_of(&self, id: &str, extension: &str) -> PathBuf {
        self.dir.join(format!("{id}.{extension}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("nobg-storage-test-{}", Uuid::new_v4()))
    }

    #[tokio::test]
    async fn put_get_and_serve_by_file_name() {
        let dir = temp_dir();
        // Served file names are resolved by the storage front, as the routes do.
        let front = super::super::Storage::Local(LocalStorage::open(&dir).await.unwrap());
        let super::super::Storage::Local(storage) = &front else {
            unreachable!("built as Local")
        };
        let id = storage
            .put(b"png-bytes", "png", "image/png", Duration::from_secs(60))
            .await
            .unwrap();
        let image = storage.get(&id).await.unwrap();
        assert_eq!(image.bytes, b"png-bytes");
        assert_eq!(image.mime, "image/png");
        assert_eq!(
            storage.get(&id.to_uppercase()).await.unwrap().bytes,
            b"png-bytes"
        );
        assert!(front.get_file(&format!("{id}.png")).await.is_some());
        assert!(front.get_file(&format!("{id}.jpg")).await.is_none());
        assert!(front.get_file("../../etc/passwd").await.is_none());
        assert!(storage.get(&Uuid::new_v4().to_string()).await.is_none());
        // Deleted: unreachable at once and gone from disk; unknown ids are ignored.
        storage.delete(&id.to_uppercase()).await;
        assert!(storage.get(&id).await.is_none() && storage.is_empty());
        assert!(!dir.join(format!("{id}.png")).exists());
        storage.delete(&id).await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn expired_files_are_unreachable_then_deleted() {
        let dir = temp_dir();
        let storage = LocalStorage::open(&dir).await.unwrap();
        let gone = storage
            .put(b"a", "png", "image/png", Duration::ZERO)
            .await
            .unwrap();
        let kept = storage
            .put(b"b", "png", "image/png", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(storage.get(&gone).await.is_none());
        assert_eq!(storage.sweep().await, 1);
        assert!(!dir.join(format!("{gone}.png")).exists());
        assert!(dir.join(format!("{kept}.png")).exists());
        assert_eq!(storage.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn reopening_deletes_leftovers_but_not_foreign_files() {
        let dir = temp_dir();
        let storage = LocalStorage::open(&dir).await.unwrap();
        let id = storage
            .put(b"a", "webp", "image/webp", Duration::from_secs(60))
            .await
            .unwrap();
        std::fs::write(dir.join("notes.txt"), b"keep").unwrap();
        drop(storage);
        let _reopened = LocalStorage::open(&dir).await.unwrap();
        assert!(!dir.join(format!("{id}.webp")).exists());
        assert!(dir.join("notes.txt").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
