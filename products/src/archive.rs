//! A minimal POSIX ustar (tar) writer and reader.
//!
//! Downloads are tar archives because every platform can open one without extra tools
//! and the format is simple enough to write here in a page, with no dependency: regular
//! files only, mode 0644, owner 0/0, names of at most 100 bytes (no prefix field), sizes
//! below 8 GiB (11 octal digits). The reader understands exactly what the writer
//! produces and is used by tests and clients that want to check a download.

use crate::error::{ProductsError, Result};

const BLOCK: usize = 512;
const MAX_NAME: usize = 100;
const MAX_SIZE: u64 = 0o77_777_777_777;

/// Writes a ustar archive into memory.
#[derive(Debug, Default)]
pub struct TarWriter {
    out: Vec<u8>,
}

fn octal(field: &mut [u8], value: u64) {
    // `field.len() - 1` digits, then NUL.
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

impl TarWriter {
    /// An empty archive.
    pub fn new() -> TarWriter {
        TarWriter::default()
    }

    /// Appends one regular file.
    pub fn append(&mut self, name: &str, mtime_s: u64, data: &[u8]) -> Result<()> {
        let bad = |why: &str| ProductsError::Internal(format!("tar member {name:?}: {why}"));
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(bad("name must be 1 to 100 bytes"));
        }
        if !name.bytes().all(|b| (0x21..0x7f).contains(&b)) || name.starts_with('/') {
            return Err(bad("name must be relative printable ASCII"));
        }
        let size = data.len() as u64;
        if size > MAX_SIZE {
            return Err(bad("too large for ustar"));
        }
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], mtime_s.min(MAX_SIZE));
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..268].copy_from_slice(b"pdx");
        h[297..300].copy_from_slice(b"pdx");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        // Six octal digits, NUL, space.
        let text = format!("{sum:06o}");
        h[148..154].copy_from_slice(&text.as_bytes()[text.len() - 6..]);
        h[154] = 0;
        h[155] = b' ';
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.resize(self.out.len() + pad, 0);
        Ok(())
    }

    /// Ends the archive (two zero blocks) and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 2 * BLOCK, 0);
        self.out
    }
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| char::from(*b))
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// Reads the regular files of a ustar archive: (name, contents), in order.
pub fn read_tar(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = |why: &str| ProductsError::Invalid(format!("not a pdx tar archive: {why}"));
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let header = bytes
            .get(at..at + BLOCK)
            .ok_or_else(|| bad("truncated header"))?;
        if header.iter().all(|b| *b == 0) {
            return Ok(out);
        }
        if &header[257..263] != b"ustar\0" {
            return Err(bad("missing ustar magic"));
        }
        let stored = parse_octal(&header[148..156]).ok_or_else(|| bad("checksum field"))?;
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if sum != stored {
            return Err(bad("header checksum mismatch"));
        }
        let name: String = header[..MAX_NAME]
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| char::from(*b))
            .collect();
        let size = parse_octal(&header[124..136]).ok_or_else(|| bad("size field"))?;
        let size = usize::try_from(size).map_err(|_| bad("size"))?;
        let start = at + BLOCK;
        let data = bytes
            .get(start..start + size)
            .ok_or_else(|| bad("truncated member"))?;
        out.push((name, data.to_vec()));
        at = start + size.div_ceil(BLOCK) * BLOCK;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_members_of_every_padding() {
        let mut w = TarWriter::new();
        let files: Vec<(String, Vec<u8>)> = [0usize, 1, 511, 512, 513, 2000]
            .iter()
            .map(|n| (format!("dir/f{n}.bin"), (0..*n).map(|i| i as u8).collect()))
            .collect();
        for (name, data) in &files {
            w.append(name, 1_700_000_000, data).unwrap();
        }
        let bytes = w.finish();
        assert_eq!(bytes.len() % BLOCK, 0);
        assert_eq!(read_tar(&bytes).unwrap(), files);
    }

    #[test]
    fn refuses_bad_names() {
        let mut w = TarWriter::new();
        assert!(w.append("", 0, b"x").is_err());
        assert!(w.append("/abs", 0, b"x").is_err());
        assert!(w.append(&"a".repeat(101), 0, b"x").is_err());
        assert!(w.append("sp ace", 0, b"x").is_err());
    }
}
