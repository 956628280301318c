//! Fixed-size entries kept in memory and persisted append-only to an index file.
//!
//! Shared by the offset index and the time index. The file holds `entries` encoded back to
//! back, no header. Entries are appended to the file lazily, by [`EntryFile::persist`]
//! (flush, roll, close), never on the append path: an index is only trusted after a clean
//! shutdown or for segments below the recovery point, and both persist it first. After a
//! crash, indexes of recovered segments are rebuilt from the log.
//!
//! On load, a trailing partial entry and trailing all-zero entries (from a preallocated
//! file, as Kafka writes them) are trimmed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A fixed-size, big-endian index entry.
pub(crate) trait Entry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Self;
}

pub(crate) struct EntryFile<E: Entry> {
    file: File,
    entries: Vec<E>,
    /// Entries `[0, persisted)` are in the file, which holds nothing else.
    persisted: usize,
    /// True when the file was written since its last fsync.
    dirty: bool,
}

impl<E: Entry> EntryFile<E> {
    /// Creates (or empties) the file at `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        Ok(EntryFile { file, entries: Vec::new(), persisted: 0, dirty: true })
    }

    /// Opens `path` (creating it if missing) and reads its entries, trimming a partial
    /// trailing entry and trailing all-zero entries.
    pub fn load(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let len_bytes = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::FileTooLarge, "index file larger than the address space"))?;
        let mut bytes = vec![0u8; len_bytes - len_bytes % E::SIZE];
        file.read_exact_at(&mut bytes, 0)?;
        let used =
            bytes.chunks_exact(E::SIZE).rposition(|chunk| chunk.iter().any(|b| *b != 0)).map_or(0, |last| last + 1);
        let entries: Vec<E> = bytes.chunks_exact(E::SIZE).take(used).map(E::decode).collect();
        let mut loaded = EntryFile { file, persisted: entries.len(), entries, dirty: false };
        if (used * E::SIZE) as u64 != len_bytes as u64 {
            loaded.file.set_len((used * E::SIZE) as u64)?;
            loaded.dirty = true;
        }
        Ok(loaded)
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }
    pub fn push(&mut self, entry: E) {
        self.entries.push(entry);
    }
    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    /// Keeps the first `len` entries, in memory and in the file.
    pub fn truncate(&mut self, len: usize) -> io::Result<()> {
        self.entries.truncate(len);
        if self.persisted > len {
            self.file.set_len((len * E::SIZE) as u64)?;
            self.persisted = len;
            self.dirty = true;
        }
        Ok(())
    }

    /// Writes the entries not yet in the file (one `pwrite`) without an fsync; returns a
    /// handle to fsync later (off the append path) when the file changed since its last one.
    pub fn write_unsynced(&mut self) -> io::Result<Option<File>> {
        if self.persisted < self.entries.len() {
            let mut bytes = Vec::with_capacity((self.entries.len() - self.persisted) * E::SIZE);
            for entry in &self.entries[self.persisted..] {
                entry.encode(&mut bytes);
            }
            self.file.write_all_at(&bytes, (self.persisted * E::SIZE) as u64)?;
            self.persisted = self.entries.len();
            self.dirty = true;
        }
        if !self.dirty {
            return Ok(None);
        }
        self.dirty = false;
        Ok(Some(self.file.try_clone()?))
    }

    /// Writes the entries not yet in the file (one `pwrite`) and fsyncs if anything changed.
    pub fn persist(&mut self) -> io::Result<()> {
        match self.write_unsynced()? {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Pair(u32, u32);
    impl Entry for Pair {
        const SIZE: usize = 8;
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0.to_be_bytes());
            out.extend_from_slice(&self.1.to_be_bytes());
        }
        fn decode(bytes: &[u8]) -> Self {
            Pair(
                u32::from_be_bytes(bytes[0..4].try_into().unwrap()),
                u32::from_be_bytes(bytes[4..8].try_into().unwrap()),
            )
        }
    }

    #[test]
    fn persisted_entries_load_back_and_zero_tail_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut file = EntryFile::<Pair>::create(&path).unwrap();
        file.push(Pair(1, 10));
        file.push(Pair(2, 20));
        file.persist().unwrap();
        file.push(Pair(3, 30)); // never persisted
        drop(file);
        // Preallocated zeros plus a partial entry, as a crashed Kafka could leave them.
        let raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.set_len(16 + 8 * 3 + 5).unwrap();
        let loaded = EntryFile::<Pair>::load(&path).unwrap();
        assert_eq!(loaded.entries(), &[Pair(1, 10), Pair(2, 20)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
    }

    #[test]
    fn truncate_shrinks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut file = EntryFile::<Pair>::create(&path).unwrap();
        for i in 1..=4 {
            file.push(Pair(i, i * 10));
        }
        file.persist().unwrap();
        file.truncate(1).unwrap();
        file.push(Pair(7, 70));
        file.persist().unwrap();
        let loaded = EntryFile::<Pair>::load(&path).unwrap();
        assert_eq!(loaded.entries(), &[Pair(1, 10), Pair(7, 70)]);
    }
}
