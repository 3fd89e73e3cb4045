//! A userdir [`Backend`] seen as redb's `StorageBackend`, so redb's trait stays out of the
//! public API.

use std::io;

use crate::backend::Backend;

/// Adapts a [`Backend`] to redb.
#[derive(Debug)]
pub(crate) struct Redb<B>(pub(crate) B);

impl<B: Backend> redb::StorageBackend for Redb<B> {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
}
