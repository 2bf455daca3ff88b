//! Opening sealed files: a random-access reader and one-call helpers.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

use ring::aead::{Aad, LessSafeKey};

use crate::error::SealError;
use crate::format::{
    HEADER_LEN, Header, Layout, MAGIC, SEALED_SEGMENT_LEN, SEGMENT_SIZE, SecretBuf, file_key,
    segment_nonce,
};
use crate::keys::{KeyId, KeyLookup};

/// Reads a sealed file as its plaintext, with `Read` and `Seek`. Opening authenticates
/// the final segment (so [`SealedReader::len`] is trusted and a truncated file fails at
/// once); a read decrypts only the segments it touches, each checked before any of its
/// bytes are returned, and keeps the last one for the next read.
pub struct SealedReader<R> {
    inner: R,
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    key_id: KeyId,
    layout: Layout,
    /// The plaintext position of the next read.
    pos: u64,
    /// The segment whose verified plaintext `plain` holds, if any.
    cached: Option<u64>,
    /// One segment: sealed bytes while it is read and opened, then its plaintext.
    plain: SecretBuf,
}

impl SealedReader<File> {
    /// Opens the sealed file at `path`, with its data key from `keys`.
    pub fn open(path: &Path, keys: &dyn KeyLookup) -> Result<SealedReader<File>, SealError> {
        SealedReader::new(File::open(path)?, keys)
    }
}

impl<R: Read + Seek> SealedReader<R> {
    /// Reads the header of the sealed stream `inner`, finds its data key in `keys` and
    /// authenticates the final segment.
    pub fn new(mut inner: R, keys: &dyn KeyLookup) -> Result<SealedReader<R>, SealError> {
        let total = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(0))?;
        let header_bytes = read_header(&mut inner, total)?;
        let header = Header::decode(&header_bytes)?;
        // Which key, before anything else about the body: a wrong key is named as such.
        let data_key = keys.data_key(header.key_id)?;
        let key = file_key(data_key, &header.salt)?;
        let layout = Layout::of_body(total - HEADER_LEN as u64)?;
        let mut reader = SealedReader {
            inner,
            key,
            header: header_bytes,
            key_id: header.key_id,
            layout,
            pos: 0,
            cached: None,
            plain: SecretBuf::with_capacity(SEALED_SEGMENT_LEN as usize),
        };
        reader.load(layout.segments - 1)?;
        Ok(reader)
    }

    /// The plaintext length.
    pub fn len(&self) -> u64 {
        self.layout.plaintext_len
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.layout.plaintext_len == 0
    }

    /// The id of the data key the file is sealed under.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The plaintext bytes `range` (which must lie within the plaintext), decrypting
    /// only the segments it covers.
    pub fn read_range(&mut self, range: Range<u64>) -> Result<Vec<u8>, SealError> {
        let size = range_size(&range, self.layout.plaintext_len)?;
        let mut out = vec![0u8; size];
        self.pos = range.start;
        self.read_exact(&mut out)?;
        Ok(out)
    }

    /// The plaintext bytes of each of `ranges`, in order (see [`SealedReader::read_range`]).
    pub fn read_ranges(&mut self, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>, SealError> {
        ranges
            .iter()
            .map(|range| self.read_range(range.clone()))
            .collect()
    }

    /// Makes segment `index` the cached, verified plaintext.
    fn load(&mut self, index: u64) -> Result<(), SealError> {
        if self.cached == Some(index) {
            return Ok(());
        }
        self.cached = None;
        self.read_sealed(index)?;
        let last = self.layout.is_last(index);
        let opened = self
            .key
            .open_in_place(
                segment_nonce(index, last),
                Aad::from(&self.header[..]),
                &mut self.plain.0,
            )
            .map(|plain| plain.len());
        match opened {
            Ok(len) => {
                self.plain.0.truncate(len);
                self.cached = Some(index);
                Ok(())
            }
            Err(_) => Err(self.diagnose(index)),
        }
    }

    /// Reads the sealed bytes of segment `index` into `plain`.
    fn read_sealed(&mut self, index: u64) -> Result<(), SealError> {
        // At most 65552 bytes, within the buffer's capacity: no reallocation.
        let len = self.layout.sealed_len(index) as usize;
        self.inner.seek(SeekFrom::Start(Layout::offset(index)))?;
        self.plain.0.clear();
        self.plain.0.resize(len, 0);
        self.inner
            .read_exact(&mut self.plain.0)
            .map_err(eof_is_truncation)
    }

    /// Why segment `index` failed (see "Telling failures apart" in the crate docs).
    fn diagnose(&mut self, index: u64) -> SealError {
        // The failed open may have overwritten the buffer: read the sealed bytes again.
        if let Err(e) = self.read_sealed(index) {
            return e;
        }
        if self.layout.is_last(index) && self.opens_at(index, false) {
            return SealError::Truncated;
        }
        for at in (0..self.layout.segments).filter(|at| *at != index) {
            if self.opens_at(at, false) || self.opens_at(at, true) {
                return SealError::OutOfOrder { segment: index };
            }
        }
        SealError::Tampered { segment: index }
    }

    /// Whether the sealed bytes in `plain` open as segment `at` with final flag `last`
    /// (on a copy, wiped afterwards: it may hold plaintext).
    fn opens_at(&self, at: u64, last: bool) -> bool {
        let mut attempt = SecretBuf::with_capacity(self.plain.0.len());
        attempt.0.extend_from_slice(&self.plain.0);
        self.key
            .open_in_place(
                segment_nonce(at, last),
                Aad::from(&self.header[..]),
                &mut attempt.0,
            )
            .is_ok()
    }
}

impl<R: Read + Seek> Read for SealedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.pos >= self.layout.plaintext_len {
            return Ok(0);
        }
        let index = self.pos / SEGMENT_SIZE as u64;
        self.load(index)?;
        let within = (self.pos - index * SEGMENT_SIZE as u64) as usize;
        // Never empty while `pos` is inside the plaintext (the layout guarantees it);
        // an empty slice here would read as a premature end, so it is an error instead.
        let Some(available) = self.plain.0.get(within..).filter(|a| !a.is_empty()) else {
            return Err(SealError::Truncated.into());
        };
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SealedReader<R> {
    /// Moves the plaintext position (past the end is allowed: reads there return 0).
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(delta) => self.layout.plaintext_len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        match target {
            Some(pos) => {
                self.pos = pos;
                Ok(pos)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}

/// A sealed stream that ends early is a truncated file.
fn eof_is_truncation(e: io::Error) -> SealError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        SealError::Truncated
    } else {
        e.into()
    }
}

/// The 54 header bytes of a stream of `total` bytes; a shorter stream is truncated if it
/// starts like a sealed file, and not sealed otherwise.
fn read_header<R: Read>(inner: &mut R, total: u64) -> Result<[u8; HEADER_LEN], SealError> {
    let mut bytes = [0u8; HEADER_LEN];
    if total < HEADER_LEN as u64 {
        let short = &mut bytes[..total as usize];
        inner.read_exact(short).map_err(eof_is_truncation)?;
        let n = short.len().min(MAGIC.len());
        return Err(if short[..n] == MAGIC[..n] {
            SealError::Truncated
        } else {
            SealError::NotSealed
        });
    }
    inner.read_exact(&mut bytes).map_err(eof_is_truncation)?;
    Ok(bytes)
}

/// The byte count of `range` over a plaintext of `len` bytes, or
/// [`SealError::RangeOutOfBounds`] when it does not lie within it.
pub(crate) fn range_size(range: &Range<u64>, len: u64) -> Result<usize, SealError> {
    let out_of_bounds = || SealError::RangeOutOfBounds {
        start: range.start,
        end: range.end,
        len,
    };
    if range.start > range.end || range.end > len {
        return Err(out_of_bounds());
    }
    usize::try_from(range.end - range.start).map_err(|_| out_of_bounds())
}

/// The plaintext bytes `range` of the sealed file at `path` (see
/// [`SealedReader::read_range`]): what an object store's range reads need.
pub fn read_range(
    path: &Path,
    range: Range<u64>,
    keys: &dyn KeyLookup,
) -> Result<Vec<u8>, SealError> {
    SealedReader::open(path, keys)?.read_range(range)
}

/// The whole plaintext of the sealed file at `path`.
pub fn read_all(path: &Path, keys: &dyn KeyLookup) -> Result<Vec<u8>, SealError> {
    read_to_vec(SealedReader::open(path, keys)?)
}

/// The whole plaintext of a sealed file held in memory.
pub fn open_bytes(sealed: &[u8], keys: &dyn KeyLookup) -> Result<Vec<u8>, SealError> {
    read_to_vec(SealedReader::new(Cursor::new(sealed), keys)?)
}

/// Reads every segment of the sealed file at `path`, checking each, and returns the
/// plaintext length; nothing is kept.
pub fn verify(path: &Path, keys: &dyn KeyLookup) -> Result<u64, SealError> {
    let mut reader = SealedReader::open(path, keys)?;
    Ok(io::copy(&mut reader, &mut io::sink())?)
}

/// The plaintext length of the sealed file at `path`, from its header and length alone
/// (no key needed, nothing decrypted). Not authenticated: a file cut at a segment
/// boundary still gives a length here, and fails when it is read.
pub fn plaintext_len(path: &Path) -> Result<u64, SealError> {
    let mut file = File::open(path)?;
    let total = file.metadata()?.len();
    Header::decode(&read_header(&mut file, total)?)?;
    Ok(Layout::of_body(total - HEADER_LEN as u64)?.plaintext_len)
}

/// Whether the file at `path` starts with the sealed-file magic (to tell sealed files
/// from plaintext ones, for example while migrating a data directory).
pub fn is_sealed(path: &Path) -> Result<bool, SealError> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 8];
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(magic == *MAGIC),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The rest of `reader`'s plaintext.
fn read_to_vec<R: Read + Seek>(mut reader: SealedReader<R>) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::with_capacity(usize::try_from(reader.len()).unwrap_or(0));
    reader.read_to_end(&mut out)?;
    Ok(out)
}
