//! Sealing: a streaming writer, an atomic file writer, and one-call helpers.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ring::aead::{Aad, LessSafeKey};

use crate::error::SealError;
use crate::format::{
    HEADER_LEN, Header, SEGMENT_SIZE, SecretBuf, TAG_LEN, file_key, segment_nonce,
};
use crate::fsutil::{create_parent, parent_dir, private_new_file, sync_parent, temp_path_in};
use crate::keys::{DataKey, KeyId, random_bytes};

/// Seals everything written to it into `W` (header first, then 64 KiB segments); call
/// [`SealedWriter::finish`] to write the final segment. Dropped without `finish`, what
/// `W` received reads as a truncated file.
pub struct SealedWriter<W: Write> {
    inner: W,
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    key_id: KeyId,
    /// Plaintext of the segment being filled; sealed in place when it is written out.
    segment: SecretBuf,
    /// Index of the segment being filled.
    index: u64,
    /// Plaintext bytes taken so far.
    written: u64,
}

impl<W: Write> SealedWriter<W> {
    /// Writes a new header (fresh salt) for `key` to `inner` and returns the writer.
    pub fn new(mut inner: W, key: &DataKey) -> Result<SealedWriter<W>, SealError> {
        let header = Header {
            key_id: key.id(),
            salt: random_bytes::<32>()?,
        };
        let sealing_key = file_key(key, &header.salt)?;
        let header_bytes = header.encode();
        inner.write_all(&header_bytes)?;
        Ok(SealedWriter {
            inner,
            key: sealing_key,
            header: header_bytes,
            key_id: header.key_id,
            segment: SecretBuf::with_capacity(SEGMENT_SIZE),
            index: 0,
            written: 0,
        })
    }

    /// The id of the data key the output is sealed under.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Plaintext bytes written so far.
    pub fn plaintext_written(&self) -> u64 {
        self.written
    }

    /// The underlying writer (for example to drain a `Vec<u8>` into an async file
    /// between writes: it only ever receives whole header and segment bytes).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Seals the segment buffer under its index and writes it out. After an error the
    /// stream is broken (the buffer may hold ciphertext): the writer is not used again.
    fn seal_segment(&mut self, last: bool) -> io::Result<()> {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                segment_nonce(self.index, last),
                Aad::from(&self.header[..]),
                &mut self.segment.0,
            )
            .map_err(|_| io::Error::other("sealing a segment failed"))?;
        self.inner.write_all(&self.segment.0)?;
        self.inner.write_all(tag.as_ref())?;
        self.segment.0.clear();
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| io::Error::other("too many segments"))?;
        Ok(())
    }

    /// Seals the final segment (empty only if nothing was written), flushes, and
    /// returns the underlying writer.
    pub fn finish(mut self) -> Result<W, SealError> {
        self.seal_segment(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealedWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            // A full buffer is sealed as a middle segment only once more data comes:
            // until then it may be the final one.
            if self.segment.0.len() == SEGMENT_SIZE {
                self.seal_segment(false)?;
            }
            let take = (SEGMENT_SIZE - self.segment.0.len()).min(rest.len());
            self.segment.0.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        self.written += data.len() as u64;
        Ok(data.len())
    }

    /// Flushes the underlying writer. The open segment stays buffered: it can only be
    /// sealed once it is full or the stream is finished.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A sealed file written atomically: into a hidden temporary (mode 0600) in a chosen
/// directory, renamed into place by [`SealedFileWriter::commit`]. Dropped uncommitted,
/// the temporary is removed.
pub struct SealedFileWriter {
    writer: Option<SealedWriter<File>>,
    temp: PathBuf,
}

impl SealedFileWriter {
    /// Starts a sealed file whose temporary lives in `dir` (created if missing). The
    /// destination, given to `commit`, must be on the same file system (for example
    /// `dir` itself or a directory below it).
    pub fn create_in(dir: &Path, key: &DataKey) -> Result<SealedFileWriter, SealError> {
        std::fs::create_dir_all(dir)?;
        let temp = temp_path_in(dir, "pdx-seal")?;
        let file = private_new_file().open(&temp)?;
        match SealedWriter::new(file, key) {
            Ok(writer) => Ok(SealedFileWriter {
                writer: Some(writer),
                temp,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(temp);
                Err(e)
            }
        }
    }

    /// Plaintext bytes written so far.
    pub fn plaintext_written(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, SealedWriter::plaintext_written)
    }

    /// Finishes the file, fsyncs it, renames it to `dst` (replacing any file there;
    /// missing directories are created) and fsyncs the directory. Returns the plaintext
    /// length. A failure before the rename leaves `dst` as it was and removes the
    /// temporary.
    pub fn commit(mut self, dst: &Path) -> Result<u64, SealError> {
        let Some(writer) = self.writer.take() else {
            return Err(SealError::Io(io::Error::other(
                "the sealed file was already committed",
            )));
        };
        let written = writer.plaintext_written();
        let result = finish_and_place(writer, &self.temp, dst);
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        result.map(|()| written)
    }
}

/// The body of [`SealedFileWriter::commit`].
fn finish_and_place(writer: SealedWriter<File>, temp: &Path, dst: &Path) -> Result<(), SealError> {
    let file = writer.finish()?;
    file.sync_all()?;
    drop(file);
    create_parent(dst)?;
    std::fs::rename(temp, dst)?;
    sync_parent(dst)?;
    Ok(())
}

impl Write for SealedFileWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.writer.as_mut() {
            Some(writer) => writer.write(data),
            None => Err(io::Error::other("the sealed file was already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for SealedFileWriter {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Seals the plaintext file `src_plain` into `dst` (atomically, see
/// [`SealedFileWriter`]) under `key`; returns the plaintext length. `src_plain` is left
/// as it is (the caller removes it, if it should go).
pub fn seal_file(src_plain: &Path, dst: &Path, key: &DataKey) -> Result<u64, SealError> {
    let mut src = File::open(src_plain)?;
    let mut writer = SealedFileWriter::create_in(parent_dir(dst), key)?;
    io::copy(&mut src, &mut writer)?;
    writer.commit(dst)
}

/// Writes `plaintext` sealed under `key` to `dst` (atomically, see [`SealedFileWriter`]).
pub fn write_sealed(dst: &Path, key: &DataKey, plaintext: &[u8]) -> Result<(), SealError> {
    let mut writer = SealedFileWriter::create_in(parent_dir(dst), key)?;
    writer.write_all(plaintext)?;
    writer.commit(dst).map(|_| ())
}

/// `plaintext` sealed under `key`, in memory.
pub fn seal_to_vec(key: &DataKey, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let segments = plaintext.len().div_ceil(SEGMENT_SIZE).max(1);
    let capacity = HEADER_LEN + plaintext.len() + segments * TAG_LEN;
    let mut writer = SealedWriter::new(Vec::with_capacity(capacity), key)?;
    writer.write_all(plaintext)?;
    writer.finish()
}
