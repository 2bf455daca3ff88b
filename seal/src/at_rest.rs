//! [`AtRest`]: one handle for reading and writing zone files, whether they are sealed
//! (the server, always) or in the clear (library callers over their own files).
//!
//! Every zone I/O in pdx goes through this handle, so there is one place where a zone
//! file is opened or written. The server builds it once from the zones' keyring
//! ([`AtRest::sealed`]); the de-identification benchmarks, the fuzz targets and the
//! engines' unit tests, which work on files they made themselves, use
//! [`AtRest::Plain`]. Both modes offer the same operations with the same meaning over
//! the **plaintext**: lengths, ranges and hashes are of the plaintext, so content
//! addresses, certificates and release hashes are the same in either mode.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::SealError;
use crate::fsutil::{create_parent, parent_dir, private_new_file, sync_parent, temp_path_in};
use crate::keyring::Keyring;
use crate::reader::{self, SealedReader};
use crate::writer::SealedFileWriter;

/// How zone files are kept on disk.
#[derive(Clone)]
pub enum AtRest {
    /// Sealed under the keyring's data keys (new files under the current one).
    Sealed(Arc<Keyring>),
    /// In the clear: for callers outside the server working on their own files.
    Plain,
}

impl std::fmt::Debug for AtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys: only the mode and the current key's public id.
        match self {
            AtRest::Sealed(keyring) => write!(f, "AtRest::Sealed({})", keyring.current_id()),
            AtRest::Plain => f.write_str("AtRest::Plain"),
        }
    }
}

/// A reader over a zone file's plaintext.
pub trait PlainRead: Read + Seek + Send {}
impl<T: Read + Seek + Send> PlainRead for T {}

impl AtRest {
    /// Zone files sealed under `keyring`.
    pub fn sealed(keyring: Keyring) -> AtRest {
        AtRest::Sealed(Arc::new(keyring))
    }

    /// Whether files are sealed.
    pub fn is_sealed(&self) -> bool {
        matches!(self, AtRest::Sealed(_))
    }

    /// The whole plaintext of the file at `path`.
    pub fn read_all(&self, path: &Path) -> Result<Vec<u8>, SealError> {
        match self {
            AtRest::Sealed(keys) => reader::read_all(path, keys.as_ref()),
            AtRest::Plain => Ok(std::fs::read(path)?),
        }
    }

    /// The plaintext length of the file at `path` (for a sealed file, from its length
    /// alone; it is authenticated when read).
    pub fn len(&self, path: &Path) -> Result<u64, SealError> {
        match self {
            AtRest::Sealed(_) => reader::plaintext_len(path),
            AtRest::Plain => Ok(std::fs::metadata(path)?.len()),
        }
    }

    /// The plaintext bytes `range` of the file at `path`, which must lie within it
    /// ([`SealError::RangeOutOfBounds`] otherwise).
    pub fn read_range(&self, path: &Path, range: Range<u64>) -> Result<Vec<u8>, SealError> {
        match self {
            AtRest::Sealed(keys) => reader::read_range(path, range, keys.as_ref()),
            AtRest::Plain => {
                let mut file = File::open(path)?;
                let size = reader::range_size(&range, file.metadata()?.len())?;
                let mut out = vec![0u8; size];
                file.seek(SeekFrom::Start(range.start))?;
                file.read_exact(&mut out)?;
                Ok(out)
            }
        }
    }

    /// A reader over the plaintext of the file at `path` (`Read + Seek`).
    pub fn open(&self, path: &Path) -> Result<Box<dyn PlainRead>, SealError> {
        match self {
            AtRest::Sealed(keys) => {
                let reader = SealedReader::open(path, keys.as_ref())?;
                Ok(Box::new(reader))
            }
            AtRest::Plain => Ok(Box::new(io::BufReader::new(File::open(path)?))),
        }
    }

    /// BLAKE3 of the plaintext of the file at `path`, and its length; every sealed
    /// segment is authenticated on the way.
    pub fn hash(&self, path: &Path) -> Result<([u8; 32], u64), SealError> {
        let mut reader = self.open(path)?;
        let mut hasher = blake3::Hasher::new();
        let bytes = io::copy(&mut reader, &mut hasher)?;
        Ok((*hasher.finalize().as_bytes(), bytes))
    }

    /// A new zone file whose temporary lives in `dir` (created if missing), placed
    /// atomically by [`ZoneFileWriter::commit`].
    pub fn create_in(&self, dir: &Path) -> Result<ZoneFileWriter, SealError> {
        let inner = match self {
            AtRest::Sealed(keys) => {
                Inner::Sealed(Box::new(SealedFileWriter::create_in(dir, keys.current())?))
            }
            AtRest::Plain => {
                std::fs::create_dir_all(dir)?;
                let temp = temp_path_in(dir, "pdx-plain")?;
                let file = private_new_file().open(&temp)?;
                Inner::Plain {
                    file: BufWriter::new(file),
                    temp,
                    written: 0,
                }
            }
        };
        Ok(ZoneFileWriter { inner: Some(inner) })
    }

    /// Writes `plaintext` to `dst` atomically (temporary, fsync, rename, directory fsync).
    pub fn write_file(&self, dst: &Path, plaintext: &[u8]) -> Result<(), SealError> {
        let mut writer = self.create_in(parent_dir(dst))?;
        writer.write_all(plaintext)?;
        writer.commit(dst).map(|_| ())
    }

    /// Stores the plaintext file `src` (left as it is) at `dst` atomically, sealed when
    /// this handle seals; returns the plaintext length.
    pub fn store_file(&self, src: &Path, dst: &Path) -> Result<u64, SealError> {
        let mut from = File::open(src)?;
        let mut writer = self.create_in(parent_dir(dst))?;
        io::copy(&mut from, &mut writer)?;
        writer.commit(dst)
    }
}

/// A zone file being written: sealed or plain, always placed atomically.
pub struct ZoneFileWriter {
    /// `None` once committed.
    inner: Option<Inner>,
}

/// The two ways of writing.
enum Inner {
    /// Boxed: the sealed writer carries its segment buffer state.
    Sealed(Box<SealedFileWriter>),
    Plain {
        file: BufWriter<File>,
        temp: PathBuf,
        written: u64,
    },
}

/// The error of a writer used after `commit`.
fn committed() -> io::Error {
    io::Error::other("the zone file was already committed")
}

impl ZoneFileWriter {
    /// Plaintext bytes written so far.
    pub fn plaintext_written(&self) -> u64 {
        match &self.inner {
            Some(Inner::Sealed(writer)) => writer.plaintext_written(),
            Some(Inner::Plain { written, .. }) => *written,
            None => 0,
        }
    }

    /// Finishes the file, fsyncs it, renames it to `dst` (replacing any file there;
    /// missing directories are created) and fsyncs the directory; returns the plaintext
    /// length. On failure `dst` is as it was and the temporary is gone.
    pub fn commit(mut self, dst: &Path) -> Result<u64, SealError> {
        match self.inner.take() {
            None => Err(SealError::Io(committed())),
            Some(Inner::Sealed(writer)) => writer.commit(dst),
            Some(Inner::Plain {
                file,
                temp,
                written,
            }) => {
                let placed = (|| -> io::Result<()> {
                    let file = file.into_inner().map_err(|e| e.into_error())?;
                    file.sync_all()?;
                    drop(file);
                    create_parent(dst)?;
                    std::fs::rename(&temp, dst)?;
                    sync_parent(dst)
                })();
                if placed.is_err() {
                    let _ = std::fs::remove_file(&temp);
                }
                placed?;
                Ok(written)
            }
        }
    }
}

impl Write for ZoneFileWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Some(Inner::Sealed(writer)) => writer.write(data),
            Some(Inner::Plain { file, written, .. }) => {
                let n = file.write(data)?;
                *written += n as u64;
                Ok(n)
            }
            None => Err(committed()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Some(Inner::Sealed(writer)) => writer.flush(),
            Some(Inner::Plain { file, .. }) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for ZoneFileWriter {
    fn drop(&mut self) {
        // A sealed writer removes its own temporary when dropped; a plain one is removed here.
        if let Some(Inner::Plain { file, temp, .. }) = self.inner.take() {
            drop(file);
            let _ = std::fs::remove_file(temp);
        }
    }
}
