//! Owning the storage directory: an exclusive advisory lock (`flock`) on `<dir>/.nobg-server.lock`,
//! held as long as the server runs and released by the kernel when the process ends, however
//! it ends. A second server on the same directory refuses to start instead of deleting the first
//! one's files.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use fs4::fs_std::FileExt;

pub const LOCK_FILE: &str = ".nobg-server.lock";

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the directory, or fails at once (`WouldBlock`) naming the process that holds it.
    pub fn acquire(dir: &Path) -> io::Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if !file.try_lock_exclusive()? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_owned()
            } else {
                format!("another nobg-server (pid {holder})")
            };
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "the storage directory {} is in use by {who}; give each server its own --storage-dir",
                    dir.display()
                ),
            ));
        }
        // Who holds it, for the message above; the lock, not this content, is what counts.
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("nobg-lock-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DirLock::acquire(&dir).unwrap();
        let err = DirLock::acquire(&dir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let message = err.to_string();
        assert!(
            message.contains(&std::process::id().to_string()),
            "{message}"
        );
        assert!(message.contains("--storage-dir"), "{message}");
        drop(first);
        DirLock::acquire(&dir).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
