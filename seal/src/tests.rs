//! Behaviour of the whole crate: round trips, random access, every kind of damage, the
//! keys and the keyring.

use std::cell::Cell;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::*;

const SEG: usize = SEGMENT_SIZE;
/// A full segment on disk.
const SEALED_SEG: usize = SEGMENT_SIZE + TAG_LEN;

/// `len` pseudo-random bytes, a different stream per `seed`.
fn data(len: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut hasher = blake3::Hasher::new();
    hasher.update(seed.as_bytes());
    hasher.finalize_xof().fill(&mut out);
    out
}

fn new_key() -> DataKey {
    DataKey::generate().unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn round_trip_at_the_segment_edges() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key();
    for len in [0, 1, SEG - 1, SEG, SEG + 1, 3 * 1024 * 1024] {
        let plain = data(len, &format!("length {len}"));
        let path = dir.path().join(format!("f{len}.sealed"));
        write_sealed(&path, &key, &plain).unwrap();
        // The size the format defines: header, plaintext, one tag per segment (an empty
        // plaintext is still one segment).
        let segments = len.div_ceil(SEG).max(1);
        let on_disk = std::fs::metadata(&path).unwrap().len();
        assert_eq!(
            on_disk,
            (HEADER_LEN + len + segments * TAG_LEN) as u64,
            "length {len}"
        );
        assert_eq!(plaintext_len(&path).unwrap(), len as u64);
        assert_eq!(read_all(&path, &key).unwrap(), plain, "length {len}");
        assert_eq!(verify(&path, &key).unwrap(), len as u64);

        // Written in odd-sized pieces into memory: the same plaintext comes back.
        let mut writer = SealedWriter::new(Vec::new(), &key).unwrap();
        for piece in plain.chunks(7919) {
            writer.write_all(piece).unwrap();
        }
        assert_eq!(writer.plaintext_written(), len as u64);
        let sealed = writer.finish().unwrap();
        assert_eq!(sealed.len() as u64, on_disk);
        assert_eq!(open_bytes(&sealed, &key).unwrap(), plain);
        assert_eq!(
            open_bytes(&seal_to_vec(&key, &plain).unwrap(), &key).unwrap(),
            plain
        );
    }
    // No temporary is left behind.
    for path in files_under(dir.path()) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".sealed") && !name.starts_with('.'),
            "{name}"
        );
    }
}

#[test]
fn random_access_reads_match_the_plaintext_at_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key();
    let len = 3 * SEG + 100;
    let plain = data(len, "random access");
    let path = dir.path().join("r.sealed");
    write_sealed(&path, &key, &plain).unwrap();
    let points = [
        0,
        1,
        SEG - 1,
        SEG,
        SEG + 1,
        2 * SEG - 1,
        2 * SEG,
        2 * SEG + 1,
        3 * SEG,
        len - 1,
        len,
    ];
    let mut reader = SealedReader::open(&path, &key).unwrap();
    assert_eq!(reader.len(), len as u64);
    for &start in &points {
        for &end in points.iter().filter(|e| **e >= start) {
            let got = reader.read_range(start as u64..end as u64).unwrap();
            assert_eq!(got, &plain[start..end], "{start}..{end}");
        }
    }
    let across = read_range(&path, SEG as u64 - 3..SEG as u64 + 3, &key).unwrap();
    assert_eq!(across, &plain[SEG - 3..SEG + 3]);
    let ranges = [5..9, 2 * SEG as u64..2 * SEG as u64 + 2];
    let both = reader.read_ranges(&ranges).unwrap();
    assert_eq!(both[0], &plain[5..9]);
    assert_eq!(both[1], &plain[2 * SEG..2 * SEG + 2]);

    // Seek and Read agree with the slices too.
    let mut tail = Vec::new();
    reader.seek(SeekFrom::End(-10)).unwrap();
    reader.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &plain[len - 10..]);
    reader.seek(SeekFrom::Start(2 * SEG as u64 - 2)).unwrap();
    let mut four = [0u8; 4];
    reader.read_exact(&mut four).unwrap();
    assert_eq!(&four[..], &plain[2 * SEG - 2..2 * SEG + 2]);
    reader.seek(SeekFrom::Current(-4)).unwrap();
    reader.read_exact(&mut four).unwrap();
    assert_eq!(&four[..], &plain[2 * SEG - 2..2 * SEG + 2]);
    assert!(reader.seek(SeekFrom::Current(-(len as i64) - 1)).is_err());

    // Outside the plaintext: an error naming only the numbers.
    let err = reader
        .read_range(len as u64 - 1..len as u64 + 1)
        .unwrap_err();
    assert!(matches!(err, SealError::RangeOutOfBounds { .. }), "{err}");
}

/// A `Read + Seek` that counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

#[test]
fn a_read_decrypts_only_the_segments_it_needs() {
    let key = new_key();
    let plain = data(4 * SEG + 10, "counting");
    let mut sealed = seal_to_vec(&key, &plain).unwrap();
    let counter = Rc::new(Cell::new(0));
    let counting = Counting {
        inner: Cursor::new(sealed.clone()),
        read: Rc::clone(&counter),
    };
    let mut reader = SealedReader::new(counting, &key).unwrap();
    // Opening reads the header and the final segment only.
    let opened = (HEADER_LEN + 10 + TAG_LEN) as u64;
    assert_eq!(counter.get(), opened);
    let got = reader
        .read_range(2 * SEG as u64 + 5..2 * SEG as u64 + 50)
        .unwrap();
    assert_eq!(got, &plain[2 * SEG + 5..2 * SEG + 50]);
    assert_eq!(counter.get(), opened + SEALED_SEG as u64);
    // The same segment again: served from the one kept, nothing read.
    reader
        .read_range(2 * SEG as u64..2 * SEG as u64 + 1)
        .unwrap();
    assert_eq!(counter.get(), opened + SEALED_SEG as u64);

    // A damaged segment 0 does not stop reads elsewhere, and fails where it is used.
    sealed[HEADER_LEN + 100] ^= 0x01;
    let mut reader = SealedReader::new(Cursor::new(sealed), &key).unwrap();
    let far = reader
        .read_range(3 * SEG as u64..3 * SEG as u64 + 8)
        .unwrap();
    assert_eq!(far, &plain[3 * SEG..3 * SEG + 8]);
    let err = reader.read_range(0..8).unwrap_err();
    assert!(matches!(err, SealError::Tampered { segment: 0 }), "{err}");
}

#[test]
fn every_single_byte_change_is_refused_and_named() {
    let key = new_key();
    let marker = b"MARKER-7f3a-SECRET;";
    let plain: Vec<u8> = marker.iter().copied().cycle().take(200).collect();
    let sealed = seal_to_vec(&key, &plain).unwrap();
    assert_eq!(sealed.len(), HEADER_LEN + 200 + TAG_LEN);
    for i in 0..sealed.len() {
        for flip in [0x01u8, 0x80] {
            let mut bad = sealed.clone();
            bad[i] ^= flip;
            let err = open_bytes(&bad, &key).unwrap_err();
            let named = match i {
                0..=7 => matches!(err, SealError::NotSealed),
                8..=9 => matches!(err, SealError::UnsupportedVersion(_)),
                10..=13 => matches!(err, SealError::UnsupportedSegmentSize(_)),
                14..=21 => matches!(err, SealError::WrongKey { .. }),
                // The salt (in the associated data), the ciphertext and the tag.
                _ => matches!(err, SealError::Tampered { segment: 0 }),
            };
            assert!(named, "byte {i} flipped by {flip:#04x}: {err}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("MARKER"), "{shown}");
        }
    }
    assert_eq!(open_bytes(&sealed, &key).unwrap(), plain);
}

#[test]
fn a_file_cut_at_any_segment_boundary_is_truncated() {
    let key = new_key();
    // The final segment partial, then full.
    for len in [4 * SEG + 10, 3 * SEG] {
        let plain = data(len, "truncation");
        let sealed = seal_to_vec(&key, &plain).unwrap();
        for kept in 0..len.div_ceil(SEG) {
            let cut = &sealed[..HEADER_LEN + kept * SEALED_SEG];
            let err = open_bytes(cut, &key).unwrap_err();
            assert!(
                matches!(err, SealError::Truncated),
                "length {len}, {kept} segments kept: {err}"
            );
        }
        // Cut inside the header (through the magic or after it).
        for cut in [0, 5, 8, HEADER_LEN - 1] {
            let err = open_bytes(&sealed[..cut], &key).unwrap_err();
            assert!(matches!(err, SealError::Truncated), "cut at {cut}: {err}");
        }
        // Cut inside the final segment: refused (as damage, or as too short for a tag).
        for cut in [
            sealed.len() - 1,
            sealed.len() - TAG_LEN,
            sealed.len() - TAG_LEN - 1,
        ] {
            assert!(open_bytes(&sealed[..cut], &key).is_err(), "cut at {cut}");
        }
        assert_eq!(open_bytes(&sealed, &key).unwrap(), plain);
    }
    // Something else entirely is not a sealed file.
    let err = open_bytes(b"a,b\n1,2\n", &key).unwrap_err();
    assert!(matches!(err, SealError::NotSealed), "{err}");
}

#[test]
fn a_writer_dropped_before_finish_leaves_a_truncated_file() {
    let key = new_key();
    let plain = data(2 * SEG + 123, "unfinished");
    let mut out = Vec::new();
    {
        let mut writer = SealedWriter::new(&mut out, &key).unwrap();
        writer.write_all(&plain).unwrap();
    }
    // Only whole segments reached the output, none of them final.
    assert_eq!(out.len(), HEADER_LEN + 2 * SEALED_SEG);
    let err = open_bytes(&out, &key).unwrap_err();
    assert!(matches!(err, SealError::Truncated), "{err}");
}

#[test]
fn moved_swapped_or_foreign_segments_are_refused() {
    let key = new_key();
    let plain = data(3 * SEG + 77, "swap");
    let sealed = seal_to_vec(&key, &plain).unwrap();
    let seg = |i: usize| HEADER_LEN + i * SEALED_SEG..HEADER_LEN + (i + 1) * SEALED_SEG;
    let (first, second) = (sealed[seg(0)].to_vec(), sealed[seg(1)].to_vec());

    // Segments 0 and 1 swapped: the file opens (its final segment is intact), and a
    // read at either position says the segments were moved.
    let mut swapped = sealed.clone();
    swapped[seg(0)].copy_from_slice(&second);
    swapped[seg(1)].copy_from_slice(&first);
    let err = open_bytes(&swapped, &key).unwrap_err();
    assert!(matches!(err, SealError::OutOfOrder { segment: 0 }), "{err}");
    let mut reader = SealedReader::new(Cursor::new(&swapped[..]), &key).unwrap();
    let err = reader.read_range(SEG as u64..SEG as u64 + 1).unwrap_err();
    assert!(matches!(err, SealError::OutOfOrder { segment: 1 }), "{err}");

    // Segment 0 copied over segment 2.
    let mut repeated = sealed.clone();
    repeated[seg(2)].copy_from_slice(&first);
    let err = open_bytes(&repeated, &key).unwrap_err();
    assert!(matches!(err, SealError::OutOfOrder { segment: 2 }), "{err}");

    // Segment 1 of another file with the same plaintext under the same data key.
    let other = seal_to_vec(&key, &plain).unwrap();
    assert_ne!(other, sealed);
    let mut spliced = sealed.clone();
    spliced[seg(1)].copy_from_slice(&other[seg(1)]);
    let err = open_bytes(&spliced, &key).unwrap_err();
    assert!(matches!(err, SealError::Tampered { segment: 1 }), "{err}");

    assert_eq!(open_bytes(&sealed, &key).unwrap(), plain);
}

#[test]
fn sealed_files_show_no_plaintext_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    let key = new_key();
    let marker = b"PDX-PLAINTEXT-MARKER-4b1d";
    let mut plain = Vec::new();
    for i in 0..20_000 {
        plain.extend_from_slice(format!("{i},Zhang San,110101199003071234,").as_bytes());
        plain.extend_from_slice(marker);
        plain.push(b'\n');
    }
    // Through every way of writing: from a plaintext file, from memory, streamed.
    let src = dir.path().join("upload.csv");
    std::fs::write(&src, &plain).unwrap();
    let raw = zones.join("raw/a.sealed");
    assert_eq!(seal_file(&src, &raw, &key).unwrap(), plain.len() as u64);
    std::fs::remove_file(src).unwrap();
    let deid = zones.join("deid/ab/b.sealed");
    write_sealed(&deid, &key, &plain).unwrap();
    let mut writer = SealedFileWriter::create_in(&zones.join("quarantine"), &key).unwrap();
    for line in plain.split_inclusive(|b| *b == b'\n') {
        writer.write_all(line).unwrap();
    }
    assert_eq!(writer.plaintext_written(), plain.len() as u64);
    let quarantined = zones.join("quarantine/cd/c.sealed");
    writer.commit(&quarantined).unwrap();
    // A writer dropped before its commit leaves nothing.
    let mut abandoned = SealedFileWriter::create_in(&zones.join("released"), &key).unwrap();
    abandoned.write_all(&plain).unwrap();
    drop(abandoned);

    let found = files_under(dir.path());
    let mut expected = vec![raw, deid, quarantined];
    expected.sort();
    assert_eq!(found, expected);
    for path in &found {
        let bytes = std::fs::read(path).unwrap();
        assert!(!contains(&bytes, marker), "{}", path.display());
        assert!(!contains(&bytes, b"Zhang San"), "{}", path.display());
        assert!(
            !contains(&bytes, b"110101199003071234"),
            "{}",
            path.display()
        );
        assert!(is_sealed(path).unwrap());
        assert_eq!(read_all(path, &key).unwrap(), plain);
    }
}

#[test]
fn a_wrong_or_unknown_key_is_named_before_decrypting() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (new_key(), new_key());
    let sealed = seal_to_vec(&a, b"hello").unwrap();
    match open_bytes(&sealed, &b) {
        Err(SealError::WrongKey { file, given }) => {
            assert_eq!(file, a.id());
            assert_eq!(given, b.id());
        }
        other => panic!("expected WrongKey, got {:?}", other.map(|_| ())),
    }
    let kek = Kek::create(&dir.path().join("zones.key")).unwrap();
    let keyring = Keyring::create(&dir.path().join("zones").join(KEYRING_FILE_NAME), &kek).unwrap();
    let err = open_bytes(&sealed, &keyring).unwrap_err();
    assert!(
        matches!(err, SealError::UnknownKey(id) if id == a.id()),
        "{err}"
    );
    let mine = seal_to_vec(keyring.current(), b"hello").unwrap();
    assert_eq!(open_bytes(&mine, &keyring).unwrap(), b"hello");
}

#[test]
fn the_kek_file_is_private_hex_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("zones.key");
    let kek = Kek::create(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.ends_with('\n'));
    assert!(text[..64].chars().all(|c| c.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(Kek::load(&path).unwrap().id(), kek.id());
    let (again, created) = Kek::load_or_create(&path).unwrap();
    assert!(!created);
    assert_eq!(again.id(), kek.id());
    assert!(matches!(Kek::create(&path), Err(SealError::Io(_))));
    let (fresh, created) = Kek::load_or_create(&dir.path().join("other.key")).unwrap();
    assert!(created);
    assert_ne!(fresh.id(), kek.id());

    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not-a-key-SECRETISH\n").unwrap();
    match Kek::load(&bad) {
        Err(e @ SealError::BadKeyFile(_)) => assert!(!e.to_string().contains("SECRETISH")),
        Err(e) => panic!("expected BadKeyFile, got {e}"),
        Ok(_) => panic!("a malformed key file loaded"),
    }
}

#[test]
fn kek_rotation_rewraps_the_keys_and_leaves_sealed_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    let keyring_path = zones.join(KEYRING_FILE_NAME);
    let old_path = dir.path().join("zones.key");
    let new_path = dir.path().join("zones-2026-12.key");
    let old = Kek::create(&old_path).unwrap();
    let mut keyring = Keyring::open_or_create(&keyring_path, &old).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keyring_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // One file under the first data key, one under a second.
    let first_path = zones.join("deid/first.sealed");
    write_sealed(&first_path, keyring.current(), b"under the first data key").unwrap();
    let first_id = keyring.current_id();
    let second_id = keyring.new_data_key(&old).unwrap();
    assert_ne!(first_id, second_id);
    assert_eq!(keyring.current_id(), second_id);
    assert_eq!(keyring.key_ids(), vec![second_id, first_id]);
    let second_path = zones.join("deid/second.sealed");
    write_sealed(
        &second_path,
        keyring.current(),
        b"under the second data key",
    )
    .unwrap();
    assert_eq!(
        SealedReader::open(&first_path, &keyring).unwrap().key_id(),
        first_id
    );
    // The keyring reopens with both keys.
    let reopened = Keyring::open_or_create(&keyring_path, &old).unwrap();
    assert_eq!(reopened.key_ids(), vec![second_id, first_id]);

    let sealed_before = [
        std::fs::read(&first_path).unwrap(),
        std::fs::read(&second_path).unwrap(),
    ];
    let keyring_before = std::fs::read(&keyring_path).unwrap();
    assert_eq!(rotate_kek(&keyring_path, &old_path, &new_path).unwrap(), 2);

    // The sealed files are untouched; the keyring is rewritten.
    let sealed_after = [
        std::fs::read(&first_path).unwrap(),
        std::fs::read(&second_path).unwrap(),
    ];
    assert_eq!(sealed_before, sealed_after);
    assert_ne!(std::fs::read(&keyring_path).unwrap(), keyring_before);

    // The new KEK opens it and every file reads.
    let new = Kek::load(&new_path).unwrap();
    let mut rotated = Keyring::open(&keyring_path, &new).unwrap();
    assert_eq!(rotated.current_id(), second_id);
    assert_eq!(
        read_all(&first_path, &rotated).unwrap(),
        b"under the first data key"
    );
    assert_eq!(
        read_all(&second_path, &rotated).unwrap(),
        b"under the second data key"
    );
    let text = std::fs::read_to_string(&keyring_path).unwrap();
    assert!(!text.contains(&hex::encode(rotated.current().expose_secret())));

    // The old KEK does not: refused by name, and with the name edited back, the wrapped
    // keys themselves fail to unwrap.
    assert!(matches!(
        Keyring::open(&keyring_path, &old),
        Err(SealError::WrongKek { .. })
    ));
    let forged = text.replace(&new.name(), &old.name());
    assert_ne!(forged, text);
    std::fs::write(&keyring_path, forged).unwrap();
    assert!(matches!(
        Keyring::open(&keyring_path, &old),
        Err(SealError::KeyringTampered(_))
    ));
    // Nor can the old KEK add keys to the rotated keyring held in memory.
    assert!(matches!(
        rotated.new_data_key(&old),
        Err(SealError::WrongKek { .. })
    ));
}

#[test]
fn a_changed_keyring_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEYRING_FILE_NAME);
    let kek = Kek::create(&dir.path().join("zones.key")).unwrap();
    let keyring = Keyring::create(&path, &kek).unwrap();
    assert!(matches!(
        Keyring::create(&path, &kek),
        Err(SealError::Io(_))
    ));

    let original = std::fs::read(&path).unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let wrapped = doc["keys"][0]["wrapped"].as_str().unwrap().to_owned();
    let first = if wrapped.starts_with('0') { "1" } else { "0" };
    doc["keys"][0]["wrapped"] = serde_json::Value::String(format!("{first}{}", &wrapped[1..]));
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    match Keyring::open(&path, &kek) {
        Err(SealError::KeyringTampered(id)) => assert_eq!(id, keyring.current_id()),
        Err(e) => panic!("expected KeyringTampered, got {e}"),
        Ok(_) => panic!("a changed keyring opened"),
    }

    std::fs::write(&path, b"{\"format\": \"something else\"}").unwrap();
    assert!(matches!(
        Keyring::open(&path, &kek),
        Err(SealError::BadKeyring(_))
    ));
}
