//! The container of a `pdx backup` archive: the backup key file, the encrypted stream
//! (ChaCha20-Poly1305 over 64 KiB chunks), the manifest and the names inside the archive.
//! [`crate::cli::backup`] explains what goes in and why it is consistent; this module is
//! only the format, written out here next to the code that reads and writes it.
//!
//! # File layout
//!
//! ```text
//! header (58 bytes, in the clear, authenticated with every chunk):
//!   magic         8 bytes   "PDXBKUP\0"
//!   version       u16 BE    1
//!   chunk size    u32 BE    65536 (plaintext bytes of every chunk but the last)
//!   key id        8 bytes   BLAKE3-derive-key("pdx 2026-12 backup key id v1", key)[..8]
//!   salt          32 bytes  random per archive
//!   nonce prefix  4 bytes   random per archive
//! then chunks, in order, until the one flagged last:
//!   flag          1 byte    0: more chunks follow; 1: the last chunk
//!   length        u32 BE    plaintext bytes: exactly the chunk size unless last (0..=)
//!   ciphertext    length + 16 bytes (ChaCha20-Poly1305, the tag last)
//! nothing after the last chunk.
//! ```
//!
//! The archive key is `BLAKE3-derive-key("pdx 2026-12 backup archive key v1", key ‖ salt)`,
//! a fresh key per archive; chunk `i` (from 0) is sealed under the nonce
//! `nonce prefix ‖ i as u64 BE`, with the associated data `header ‖ flag ‖ length`.
//! So a chunk moved, swapped or replayed from another archive fails authentication (its
//! nonce or header differs), a flag or length changed fails it, and an archive cut at a
//! chunk boundary ends on a chunk not flagged last, which the reader refuses
//! ("truncated"); bytes after the last chunk are refused too. The key id lets restore say
//! "wrong key" before reading any chunk; it is a one-way function of the key and reveals
//! nothing of it. Nothing is released to the caller from a chunk before its tag checked.
//!
//! The plaintext is a zstd stream of a tar archive ([`crate::cli::backup`] lists its
//! entries). The key file holds 32 bytes as 64 hex digits and a newline, like pdx's other
//! key files (a raw 32-byte file is read too); it is created with mode 0600 and never
//! printed or logged, and it never goes into an archive.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use rand::RngCore;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};

/// First bytes of every archive.
pub const MAGIC: &[u8; 8] = b"PDXBKUP\0";
/// The version of the container written here.
pub const FORMAT_VERSION: u16 = 1;
/// Plaintext bytes per chunk (every chunk but the last is exactly this long).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Length of the clear header.
pub const HEADER_LEN: usize = 8 + 2 + 4 + 8 + 32 + 4;
/// The name of the manifest, the archive's last entry.
pub const MANIFEST_ENTRY: &str = "manifest.json";
/// The SQLite snapshot's entry.
pub const SQLITE_ENTRY: &str = "db/pdx.db";
/// The PostgreSQL dump's entry.
pub const POSTGRES_ENTRY: &str = "db/postgres.jsonl";
/// The `format` of the manifest written here.
pub const MANIFEST_FORMAT: &str = "pdx-backup-manifest/1";
/// Default name of the backup key in the data directory.
pub const KEY_FILE_NAME: &str = "backup.key";

const TAG_LEN: usize = 16;
const KEY_ID_CONTEXT: &str = "pdx 2026-12 backup key id v1";
const ARCHIVE_KEY_CONTEXT: &str = "pdx 2026-12 backup archive key v1";

/// The 32-byte backup key. Deliberately not `Debug`: it is never printed.
#[derive(Clone)]
pub struct BackupKey([u8; 32]);

impl BackupKey {
    /// The key id written in archive headers, as hex (safe to show).
    pub fn id_hex(&self) -> String {
        hex::encode(self.id())
    }

    fn id(&self) -> [u8; 8] {
        let full = blake3::derive_key(KEY_ID_CONTEXT, &self.0);
        let mut id = [0u8; 8];
        id.copy_from_slice(&full[..8]);
        id
    }

    /// The key of one archive, from the backup key and the archive's salt.
    fn archive_key(&self, salt: &[u8; 32]) -> io::Result<LessSafeKey> {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&self.0);
        material[32..].copy_from_slice(salt);
        let key = blake3::derive_key(ARCHIVE_KEY_CONTEXT, &material);
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key)
            .map_err(|_| io::Error::other("the archive key could not be set up"))?;
        Ok(LessSafeKey::new(unbound))
    }
}

/// 64 hex digits (surrounding whitespace allowed) or exactly 32 raw bytes.
fn parse_key(bytes: &[u8]) -> Option<[u8; 32]> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let text = text.trim();
        if text.len() == 64 {
            return hex::decode(text)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok());
        }
    }
    <[u8; 32]>::try_from(bytes).ok()
}

/// Reads the backup key at `path`; never creates one.
pub fn load_key(path: &Path) -> anyhow::Result<BackupKey> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading the backup key {}", path.display()))?;
    parse_key(&bytes).map(BackupKey).ok_or_else(|| {
        anyhow::anyhow!(
            "the backup key {} does not hold 32 bytes (64 hex digits)",
            path.display()
        )
    })
}

/// Reads the backup key at `path`, or creates one there (mode 0600) if there is none;
/// the flag says whether it was created.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<(BackupKey, bool)> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok((load_key(path)?, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            match pdx_ledger::signing::write_secret_file(path, hex::encode(key).as_bytes()) {
                Ok(()) => Ok((BackupKey(key), true)),
                // Another backup created it a moment ago: use that one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((load_key(path)?, false)),
                Err(e) => Err(anyhow::Error::new(e)
                    .context(format!("creating the backup key {}", path.display()))),
            }
        }
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("reading the backup key {}", path.display())))
        }
    }
}

/// The clear header of an archive.
struct Header {
    key_id: [u8; 8],
    salt: [u8; 32],
    nonce_prefix: [u8; 4],
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        out[10..14].copy_from_slice(&(CHUNK_SIZE as u32).to_be_bytes());
        out[14..22].copy_from_slice(&self.key_id);
        out[22..54].copy_from_slice(&self.salt);
        out[54..58].copy_from_slice(&self.nonce_prefix);
        out
    }

    fn decode(bytes: &[u8; HEADER_LEN]) -> anyhow::Result<Header> {
        anyhow::ensure!(
            bytes[..8] == MAGIC[..],
            "this is not a pdx backup archive (no PDXBKUP header)"
        );
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        anyhow::ensure!(
            version == FORMAT_VERSION,
            "the archive is in format version {version}; this pdx reads version {FORMAT_VERSION}"
        );
        let chunk = u32::from_be_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
        anyhow::ensure!(
            chunk as usize == CHUNK_SIZE,
            "the archive's chunk size {chunk} is not {CHUNK_SIZE}"
        );
        let mut header = Header {
            key_id: [0u8; 8],
            salt: [0u8; 32],
            nonce_prefix: [0u8; 4],
        };
        header.key_id.copy_from_slice(&bytes[14..22]);
        header.salt.copy_from_slice(&bytes[22..54]);
        header.nonce_prefix.copy_from_slice(&bytes[54..58]);
        Ok(header)
    }
}

fn nonce(prefix: &[u8; 4], counter: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..4].copy_from_slice(prefix);
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The associated data of a chunk: the whole header, the flag and the length.
fn chunk_aad(header: &[u8; HEADER_LEN], last: bool, len: u32) -> [u8; HEADER_LEN + 5] {
    let mut aad = [0u8; HEADER_LEN + 5];
    aad[..HEADER_LEN].copy_from_slice(header);
    aad[HEADER_LEN] = u8::from(last);
    aad[HEADER_LEN + 1..].copy_from_slice(&len.to_be_bytes());
    aad
}

/// Encrypts what is written to it into chunks; [`EncryptingWriter::finish`] seals the
/// last one (without it, the archive is refused as truncated).
pub struct EncryptingWriter<W: Write> {
    inner: W,
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    nonce_prefix: [u8; 4],
    counter: u64,
    buf: Vec<u8>,
}

impl<W: Write> EncryptingWriter<W> {
    /// Writes the header of a new archive under `key` and returns the writer.
    pub fn new(mut inner: W, key: &BackupKey) -> io::Result<Self> {
        let mut salt = [0u8; 32];
        let mut nonce_prefix = [0u8; 4];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce_prefix);
        let header = Header {
            key_id: key.id(),
            salt,
            nonce_prefix,
        }
        .encode();
        inner.write_all(&header)?;
        Ok(EncryptingWriter {
            inner,
            key: key.archive_key(&salt)?,
            header,
            nonce_prefix,
            counter: 0,
            buf: Vec::with_capacity(CHUNK_SIZE + TAG_LEN),
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let len = u32::try_from(self.buf.len()).map_err(|_| io::Error::other("chunk too long"))?;
        let aad = chunk_aad(&self.header, last, len);
        let mut data = std::mem::take(&mut self.buf);
        self.key
            .seal_in_place_append_tag(
                nonce(&self.nonce_prefix, self.counter),
                Aad::from(&aad[..]),
                &mut data,
            )
            .map_err(|_| io::Error::other("encrypting a chunk failed"))?;
        self.inner.write_all(&[u8::from(last)])?;
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(&data)?;
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("too many chunks"))?;
        data.clear();
        self.buf = data;
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffer is sealed only once more data comes: the last chunk is sealed by
        // `finish`, and may be full too.
        if self.buf.len() == CHUNK_SIZE {
            self.seal(false)?;
        }
        let n = (CHUNK_SIZE - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why reading an archive stopped, as the reader saw it (errors passing through the
/// decompressor and the tar reader may lose their words; this keeps them).
pub type ReadFailure = Arc<OnceLock<String>>;

/// Decrypts an archive chunk by chunk, releasing each chunk's bytes only after its tag
/// checked; refuses a truncated archive and bytes after the last chunk.
pub struct DecryptingReader<R: Read> {
    inner: R,
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    nonce_prefix: [u8; 4],
    counter: u64,
    chunk: Vec<u8>,
    plain_len: usize,
    pos: usize,
    done: bool,
    failure: ReadFailure,
}

impl<R: Read> DecryptingReader<R> {
    /// Reads and checks the header: a pdx archive of this version, written under `key`
    /// (a wrong key is refused here, before any chunk is read).
    pub fn open(mut inner: R, key: &BackupKey) -> anyhow::Result<Self> {
        let mut header = [0u8; HEADER_LEN];
        inner.read_exact(&mut header).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                anyhow::anyhow!("this is not a pdx backup archive (it is shorter than a header)")
            } else {
                anyhow::Error::new(e).context("reading the archive header")
            }
        })?;
        let parsed = Header::decode(&header)?;
        anyhow::ensure!(
            parsed.key_id == key.id(),
            "wrong key: the archive was written with backup key {}, the key file given is key {}",
            hex::encode(parsed.key_id),
            key.id_hex()
        );
        Ok(DecryptingReader {
            inner,
            key: key.archive_key(&parsed.salt)?,
            header,
            nonce_prefix: parsed.nonce_prefix,
            counter: 0,
            chunk: Vec::with_capacity(CHUNK_SIZE + TAG_LEN),
            plain_len: 0,
            pos: 0,
            done: false,
            failure: Arc::new(OnceLock::new()),
        })
    }

    /// The failure this reader met, if any, shared so that it can be read after the
    /// reader was moved into a decompressor.
    pub fn failure(&self) -> ReadFailure {
        self.failure.clone()
    }

    /// True once the last chunk was authenticated and read to its end.
    pub fn is_done(&self) -> bool {
        self.done && self.pos >= self.plain_len
    }

    fn fail(&self, message: String) -> io::Error {
        let _ = self.failure.set(message.clone());
        io::Error::new(io::ErrorKind::InvalidData, message)
    }

    fn read_exact_or_truncated(&mut self, what: usize) -> io::Result<()> {
        match self.inner.read_exact(&mut self.chunk[..what]) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(self.fail(format!(
                "the archive is truncated: it ends inside chunk {}, before its last chunk",
                self.counter
            ))),
            Err(e) => Err(e),
        }
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut head = [0u8; 5];
        match self.inner.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(self.fail(format!(
                    "the archive is truncated: it ends after chunk {} without its last chunk",
                    self.counter
                )));
            }
            Err(e) => return Err(e),
        }
        let last = match head[0] {
            0 => false,
            1 => true,
            _ => {
                return Err(self.fail(format!(
                    "the archive is damaged: chunk {} has no valid flag",
                    self.counter
                )));
            }
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let plain = len as usize;
        if plain > CHUNK_SIZE || (!last && plain != CHUNK_SIZE) {
            return Err(self.fail(format!(
                "the archive is damaged: chunk {} has an impossible length",
                self.counter
            )));
        }
        self.chunk.resize(plain + TAG_LEN, 0);
        self.read_exact_or_truncated(plain + TAG_LEN)?;
        let aad = chunk_aad(&self.header, last, len);
        let opened = self
            .key
            .open_in_place(
                nonce(&self.nonce_prefix, self.counter),
                Aad::from(&aad[..]),
                &mut self.chunk,
            )
            .map(|p| p.len());
        let Ok(n) = opened else {
            return Err(self.fail(format!(
                "the archive is damaged or was altered: chunk {} fails authentication",
                self.counter
            )));
        };
        self.plain_len = n;
        self.pos = 0;
        self.counter += 1;
        if last {
            self.done = true;
            let mut extra = [0u8; 1];
            loop {
                match self.inner.read(&mut extra) {
                    Ok(0) => break,
                    Ok(_) => {
                        return Err(self.fail(
                            "the archive is damaged: bytes follow its last chunk".to_string(),
                        ));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos < self.plain_len {
                let n = (self.plain_len - self.pos).min(out.len());
                out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
    }
}

/// Which database an archive holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    /// A `VACUUM INTO` snapshot of the SQLite file.
    Sqlite,
    /// A logical dump of the PostgreSQL schema (see [`crate::cli::backup_pg`]).
    Postgres,
}

impl DatabaseKind {
    /// The name shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseKind::Sqlite => "SQLite",
            DatabaseKind::Postgres => "PostgreSQL",
        }
    }

    /// The archive entry that holds this database.
    pub fn entry(self) -> &'static str {
        match self {
            DatabaseKind::Sqlite => SQLITE_ENTRY,
            DatabaseKind::Postgres => POSTGRES_ENTRY,
        }
    }
}

/// The ledger head of the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerHead {
    /// Entries in the ledger.
    pub size: u64,
    /// Seq of the last entry (none for an empty ledger).
    pub last_seq: Option<u64>,
    /// Merkle root over all entries, hex.
    pub root: String,
}

/// One file of the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its entry name in the archive.
    pub path: String,
    /// Its length.
    pub bytes: u64,
    /// BLAKE3 of its bytes, hex.
    pub blake3: String,
}

/// The archive's last entry: what it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The pdx version that wrote it.
    pub pdx_version: String,
    /// When the snapshot was taken, ms since epoch.
    pub created_ms: i64,
    /// The database it holds.
    pub database: DatabaseKind,
    /// The ledger head of the snapshot.
    pub ledger: LedgerHead,
    /// Every other entry, in archive order.
    pub files: Vec<ManifestFile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> BackupKey {
        BackupKey([byte; 32])
    }

    fn seal(key: &BackupKey, plain: &[u8]) -> Vec<u8> {
        let mut w = EncryptingWriter::new(Vec::new(), key).unwrap();
        // Odd write sizes, so chunk boundaries fall inside writes.
        for part in plain.chunks(7_777) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap()
    }

    fn open(key: &BackupKey, sealed: &[u8]) -> Result<Vec<u8>, String> {
        let mut r = DecryptingReader::open(sealed, key).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
        assert!(r.is_done());
        Ok(out)
    }

    fn plain(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Offset of chunk `i`'s record in an archive of full chunks.
    fn record(i: usize) -> usize {
        HEADER_LEN + i * (5 + CHUNK_SIZE + TAG_LEN)
    }

    #[test]
    fn round_trips_at_and_around_chunk_boundaries() {
        let k = key(1);
        for len in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            3 * CHUNK_SIZE + 5,
        ] {
            let p = plain(len);
            let sealed = seal(&k, &p);
            if let Some(probe) = p.get(..64) {
                assert!(
                    !sealed.windows(64).any(|w| w == probe),
                    "plaintext in the archive"
                );
            }
            assert_eq!(open(&k, &sealed).unwrap(), p, "length {len}");
        }
    }

    #[test]
    fn every_flipped_byte_truncation_or_trailer_is_refused() {
        let k = key(2);
        let sealed = seal(&k, &plain(2 * CHUNK_SIZE + 100));
        let flips = [
            0,
            9,
            20,
            30,
            HEADER_LEN,
            HEADER_LEN + 3,
            HEADER_LEN + 100,
            record(1) + 10,
            sealed.len() - 1,
        ];
        for at in flips {
            let mut bad = sealed.clone();
            bad[at] ^= 0x20;
            assert!(open(&k, &bad).is_err(), "a flip at {at} went unnoticed");
        }
        // Cut at the chunk boundaries and inside chunks.
        for cut in [record(1), record(2), record(1) + 77, sealed.len() - 1] {
            let err = open(&k, &sealed[..cut]).unwrap_err();
            assert!(err.contains("truncated"), "{cut}: {err}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open(&k, &longer).unwrap_err().contains("follow"));
    }

    #[test]
    fn swapped_chunks_and_a_flipped_last_flag_are_refused() {
        let k = key(3);
        let sealed = seal(&k, &plain(3 * CHUNK_SIZE + 10));
        let (a, b) = (record(0), record(1));
        let width = 5 + CHUNK_SIZE + TAG_LEN;
        let mut swapped = sealed.clone();
        swapped[a..a + width].copy_from_slice(&sealed[b..b + width]);
        swapped[b..b + width].copy_from_slice(&sealed[a..a + width]);
        assert!(open(&k, &swapped).unwrap_err().contains("authentication"));
        // Claiming an early full chunk is the last one, and cutting there, fails too.
        let mut early_end = sealed[..record(1)].to_vec();
        early_end[record(0)] = 1;
        assert!(open(&k, &early_end).unwrap_err().contains("authentication"));
        // A chunk from another archive under the same key does not fit either.
        let other = seal(&k, &plain(3 * CHUNK_SIZE + 10));
        let mut spliced = sealed.clone();
        spliced[b..b + width].copy_from_slice(&other[b..b + width]);
        assert!(open(&k, &spliced).is_err());
    }

    #[test]
    fn a_wrong_key_is_named_before_any_chunk_is_read() {
        let sealed = seal(&key(4), b"secret rows");
        let err = open(&key(5), &sealed).unwrap_err();
        assert!(err.starts_with("wrong key"), "{err}");
        assert!(!err.contains(&hex::encode([5u8; 32])), "{err}");
        let junk = [7u8; 200];
        assert!(open(&key(4), &junk).is_err());
    }

    #[test]
    fn key_files_are_hex_or_raw_and_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.key");
        let (a, created) = load_or_create_key(&path).unwrap();
        assert!(created);
        let (b, created) = load_or_create_key(&path).unwrap();
        assert!(!created);
        assert_eq!(a.id_hex(), b.id_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path.as_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let raw = dir.path().join("raw.key");
        std::fs::write(&raw, [9u8; 32]).unwrap();
        assert_eq!(load_key(&raw).unwrap().id_hex(), key(9).id_hex());
        let short = dir.path().join("short.key");
        std::fs::write(&short, "abcd\n").unwrap();
        assert!(load_key(&short).is_err());
    }
}
