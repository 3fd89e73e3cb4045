//! Custom storage for a directory: [`Backend`], and [`MemoryBackend`], bytes in memory.
//!
//! A directory normally lives in a file ([`Builder::open`](crate::Builder::open)) or in memory
//! ([`Builder::in_memory`](crate::Builder::in_memory)). [`Builder::open_backend`] takes any
//! [`Backend`] instead: a growable array of bytes that the storage engine reads, writes and
//! syncs. Crash tests use one that fails or drops writes at a chosen point.
//!
//! [`Builder::open_backend`]: crate::Builder::open_backend

use std::fmt;
use std::io;
use std::sync::Arc;

use parking_lot::RwLock;

/// The bytes a directory is stored in, when it is not a file (see
/// [`Builder::open_backend`](crate::Builder::open_backend)).
///
/// The methods are those of a file opened for reading and writing. Each may fail with an
/// [`io::Error`]; the directory then reports [`Error::Storage`](crate::Error::Storage) and
/// refuses further writes until it is opened again.
///
/// # Examples
/// A backend that shares its bytes with the caller, who can look at them after every call:
/// ```
/// use std::sync::Arc;
/// use userdir::{Argon2Params, Backend, Directory, MemoryBackend, NewUser};
///
/// let bytes = Arc::new(MemoryBackend::new());
/// let dir = Directory::builder()
///     .hasher(Argon2Params::insecure_fast())
///     .open_backend(Arc::clone(&bytes))?;
/// dir.create(NewUser::with_username("ann"))?;
/// drop(dir);
/// assert!(bytes.len()? > 0);
/// let dir = Directory::builder().open_backend(MemoryBackend::from_bytes(bytes.to_bytes()))?;
/// assert!(dir.find_by_username("ANN")?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Backend: fmt::Debug + Send + Sync + 'static {
    /// The current length in bytes.
    ///
    /// # Errors
    /// Any I/O error.
    fn len(&self) -> io::Result<u64>;

    /// Whether the backend holds no bytes.
    ///
    /// # Errors
    /// As [`Backend::len`].
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fills `out` with the bytes at `offset`.
    ///
    /// # Errors
    /// An error (for instance [`io::ErrorKind::UnexpectedEof`]) when the range goes past the
    /// end; any I/O error.
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()>;

    /// Sets the length; new bytes read as zero.
    ///
    /// # Errors
    /// Any I/O error.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Makes every earlier write and length change durable.
    ///
    /// # Errors
    /// Any I/O error.
    fn sync_data(&self) -> io::Result<()>;

    /// Writes `data` at `offset` (within the current length).
    ///
    /// # Errors
    /// Any I/O error.
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()>;
}

impl<B: Backend> Backend for Arc<B> {
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        (**self).read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        (**self).set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        (**self).sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        (**self).write(offset, data)
    }
}

/// A [`Backend`] in memory: a vector of bytes behind a lock. Syncing does nothing.
#[derive(Default)]
pub struct MemoryBackend(RwLock<Vec<u8>>);

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryBackend({} bytes)", self.0.read().len())
    }
}

impl MemoryBackend {
    /// An empty backend.
    #[must_use]
    pub fn new() -> Self {
        MemoryBackend::default()
    }

    /// A backend holding these bytes (for instance a copy taken with
    /// [`MemoryBackend::to_bytes`]).
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        MemoryBackend(RwLock::new(bytes))
    }

    /// A copy of the bytes.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.read().clone()
    }
}

fn range(offset: u64, n: usize, len: usize) -> io::Result<std::ops::Range<usize>> {
    usize::try_from(offset)
        .ok()
        .and_then(|start| Some(start..start.checked_add(n)?))
        .filter(|r| r.end <= len)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{n} bytes at offset {offset} are past the end ({len} bytes)"),
            )
        })
}

impl Backend for MemoryBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.read().len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let bytes = self.0.read();
        let r = range(offset, out.len(), bytes.len())?;
        out.copy_from_slice(&bytes[r]);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("length beyond memory"))?;
        self.0.write().resize(len, 0);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut bytes = self.0.write();
        let r = range(offset, data.len(), bytes.len())?;
        bytes[r].copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_stay_in_bounds() {
        let b = MemoryBackend::new();
        assert!(b.is_empty().unwrap());
        b.set_len(4).unwrap();
        b.write(1, &[7, 8]).unwrap();
        let mut out = [9; 4];
        b.read(0, &mut out).unwrap();
        assert_eq!(out, [0, 7, 8, 0]);
        assert_eq!(
            b.read(3, &mut [0; 2]).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert!(b.write(u64::MAX, &[1]).is_err());
        b.set_len(2).unwrap();
        assert_eq!(b.to_bytes(), vec![0, 7]);
    }
}
