//! The ledger file's storage backend: redb's own file backend, plus zero-filling of the file's
//! growth when redb grows it.
//!
//! redb grows a file by doubling it (`set_len`, which leaves the new part sparse), and the
//! copy-on-write pages of the commits that follow land in that new part. Writing into a hole
//! makes the filesystem allocate blocks, which each commit's `fdatasync` must then journal:
//! measured on ext4 here, the median `fdatasync` of a durable command went from 149 µs to
//! 412 µs once its writes reached the grown part, and single durable commands into a
//! 1.9M-event ledger ran at 0.64× SQLite (BENCHMARKS.md, "Where the time goes"). Writing zeros
//! over the new part when it is made (at most [`MAX_GROWTH_FILL`] of it) allocates those blocks
//! in one go, so later commits overwrite allocated blocks and their flushes carry data only:
//! 0.64× → 0.88× SQLite on the same run.
//!
//! The price is disk space: the filled part of a growth is allocated before redb uses it (at
//! most [`MAX_GROWTH_FILL`] per growth; the file's length is what it was). Zero-filling changes
//! no byte a reader sees (a hole reads as zeros) and touches only bytes redb has not written:
//! everything between the old and the new length at the moment of the growth.

use redb::StorageBackend;
use redb::backends::FileBackend;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

/// The most of one growth of the file that is zero-filled when it is made, in bytes.
pub const MAX_GROWTH_FILL: u64 = 64 << 20;

/// The size of one zero-filling write.
const FILL_CHUNK: usize = 1 << 20;

/// redb's [`FileBackend`], with each growth of the file zero-filled (up to
/// [`MAX_GROWTH_FILL`]) as it is made.
#[derive(Debug)]
pub struct PrefilledFile {
    inner: FileBackend,
    /// The same open file, for the fills (positioned writes share no cursor).
    file: File,
    /// The file's length as last set; growth is measured from it.
    length: Mutex<u64>,
}

impl PrefilledFile {
    /// Opens (or creates) the file at `path` as [`redb::Builder::create`] does.
    pub fn open(path: &std::path::Path) -> Result<PrefilledFile, redb::DatabaseError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let length = file.metadata()?.len();
        let fills = file.try_clone()?;
        Ok(PrefilledFile {
            inner: FileBackend::new(file)?,
            file: fills,
            length: Mutex::new(length),
        })
    }
}

impl StorageBackend for PrefilledFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut length = self.length.lock().unwrap_or_else(|e| e.into_inner());
        let old = *length;
        self.inner.set_len(len)?;
        *length = len;
        if len > old {
            // redb has written nothing in [old, len) yet: it has only just asked for it.
            let to = len.min(old + MAX_GROWTH_FILL);
            let zeros = vec![0u8; FILL_CHUNK];
            let mut at = old;
            while at < to {
                let n = (to - at).min(FILL_CHUNK as u64);
                self.file.write_all_at(&zeros[..n as usize], at)?;
                at += n;
            }
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A growth is allocated (zeros written), reads the same as before, and a shrink and a
    /// second growth touch nothing written.
    #[test]
    fn growth_is_filled_and_reads_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = PrefilledFile::open(&path).unwrap();
        f.set_len(8192).unwrap();
        f.write(0, &[7u8; 4096]).unwrap();
        f.set_len(3 << 20).unwrap();
        let mut back = vec![1u8; 4096];
        f.read(0, &mut back).unwrap();
        assert_eq!(back, vec![7u8; 4096], "growth must not touch written bytes");
        f.read(8192, &mut back).unwrap();
        assert_eq!(back, vec![0u8; 4096]);
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&path).unwrap();
        assert!(
            m.blocks() * 512 >= 3 << 20,
            "the growth is allocated: {} bytes on disk",
            m.blocks() * 512
        );
        f.set_len(4096).unwrap();
        f.set_len(8192).unwrap();
        f.read(0, &mut back).unwrap();
        assert_eq!(back, vec![7u8; 4096]);
        assert_eq!(f.len().unwrap(), 8192);
    }
}
