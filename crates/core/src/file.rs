//! Files that a crash never leaves half written: the one atomic write of eventsock.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` through a temporary file in the same folder, synced, then renamed
/// over `path`, and the rename made durable where the platform can: a reader, or a process
/// started after a crash or a power cut, finds the old content or the new, never a torn or
/// empty file. The temporary file's name is unique to the process and the call, so two writers
/// never write into one. `private` makes a new file readable by its owner only (Unix), for
/// secrets such as tokens.
pub fn write_atomically(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let mut file = AtomicFile::create(path, private)?;
    file.file_mut().write_all(bytes)?;
    file.commit()
}

/// A file being written whole or not at all: written to a temporary file beside its path, which
/// [`AtomicFile::commit`] syncs and renames over the path (see [`write_atomically`], made of
/// it). Dropped without a commit, the temporary file is removed and the path left as it was.
/// For content written in parts, such as a download.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<std::fs::File>,
}

impl AtomicFile {
    /// Starts writing `path`. `private` makes a new file readable by its owner only (Unix).
    pub fn create(path: &Path, private: bool) -> std::io::Result<AtomicFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = path
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let tmp: PathBuf = path.with_file_name(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let file = options.open(&tmp)?;
        Ok(AtomicFile {
            path: path.to_owned(),
            tmp,
            file: Some(file),
        })
    }

    /// The temporary file, to write into.
    pub fn file(&self) -> &std::fs::File {
        self.file.as_ref().expect("an uncommitted file is open")
    }

    /// The temporary file, to write into.
    pub fn file_mut(&mut self) -> &mut std::fs::File {
        self.file.as_mut().expect("an uncommitted file is open")
    }

    /// Syncs what was written and renames it over the path, the rename made durable where the
    /// platform can. On an error the temporary file is removed.
    pub fn commit(mut self) -> std::io::Result<()> {
        let file = self.file.take().expect("an uncommitted file is open");
        if let Err(e) = file
            .sync_all()
            .and_then(|()| std::fs::rename(&self.tmp, &self.path))
        {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e);
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable; not every platform can open a folder.
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writers of one file in parallel each leave a whole file and no temporary file behind.
    #[test]
    fn parallel_writers_never_tear_or_collide() {
        let dir = std::env::temp_dir().join(format!("eventsock-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        std::thread::scope(|s| {
            for w in 0..4u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomically(path, &[b'a' + w; 4096], false).unwrap();
                    }
                });
            }
        });
        let content = std::fs::read(&path).unwrap();
        assert_eq!(content.len(), 4096);
        assert!(content.iter().all(|b| *b == content[0]), "a torn file");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary files left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_private_file_is_its_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("eventsock-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        write_atomically(&path, b"secret\n", true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
