//! The export file: everything a supervisor needs, besides the public key, to verify the
//! ledger on another machine.
//!
//! JSON Lines, one object per line, each tagged by `type`:
//! 1. `{"type":"header","format":"pdx-ledger-export/v1","origin":…,"size":…}`
//! 2. every checkpoint: `{"type":"checkpoint","size":…,"note":…}`
//! 3. every entry in seq order: `{"type":"entry","seq":…,…}` (fields of [`Entry`])
//!
//! The public key is deliberately not trusted from the file: the verifier is given it.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::entry::{Entry, Hash32};
use crate::note::NoteVerifier;
use crate::page::EntryPage;
use crate::sqlite_scan::PageStream;
use crate::store::{Ledger, LedgerError, Visibility};
use crate::verify::{CheckpointRecord, Verifier, VerifyFailure, VerifyReport};

/// The format tag of export headers.
pub const EXPORT_FORMAT: &str = "pdx-ledger-export/v1";

/// One line of an export file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// First line.
    Header {
        /// Always [`EXPORT_FORMAT`].
        format: String,
        /// Checkpoint origin.
        origin: String,
        /// Entries in the file.
        size: u64,
    },
    /// A signed checkpoint.
    Checkpoint(CheckpointRecord),
    /// An entry.
    Entry(Entry),
}

/// Export and import failures.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Writing or reading the file failed.
    #[error("export file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not an export.
    #[error("line {line}: {reason}")]
    Format {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Writes the whole ledger; calls `progress(done, total)` per page. Returns entries written.
pub async fn export(
    ledger: &Ledger,
    out: &mut impl Write,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, ExportError> {
    // This function is generic, so it is compiled in the caller's crate and profile; it
    // only moves pages. Lines are encoded by `encode_lines`, compiled here.
    let total = ledger.size().await?;
    let checkpoints = ledger.checkpoints().await?;
    let mut buf = Vec::new();
    let mut head = vec![ExportLine::Header {
        format: EXPORT_FORMAT.into(),
        origin: ledger.origin().to_string(),
        size: total,
    }];
    head.extend(
        checkpoints
            .into_iter()
            .filter(|c| c.size <= total)
            .map(|cp| {
                ExportLine::Checkpoint(CheckpointRecord {
                    size: cp.size,
                    note: cp.note,
                })
            }),
    );
    encode_lines(head, &mut buf)?;
    out.write_all(&buf)?;
    let mut done = 0u64;
    // On a SQLite file, read as the verifier does (see `Ledger::verify_with`).
    let fast = match ledger.db().sqlite_file().await.map_err(LedgerError::from)? {
        Some(path) => PageStream::open(path).await,
        None => None,
    };
    if let Some(mut pages) = fast {
        while let Some(page) = pages.next().await? {
            done += encode_entries(page.to_entries(), total, &mut buf)?;
            out.write_all(&buf)?;
            progress(done, total);
            pages.recycle(page);
        }
        return Ok(done);
    }
    let mut from = 0u64;
    while from < total {
        let page = ledger.entries(from, 10_000, &Visibility::All).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        done += encode_entries(page, total, &mut buf)?;
        out.write_all(&buf)?;
        progress(done, total);
    }
    Ok(done)
}

/// Replaces `buf` with the JSON lines of the entries below seq `total`; returns how many.
fn encode_entries(entries: Vec<Entry>, total: u64, buf: &mut Vec<u8>) -> Result<u64, ExportError> {
    let lines = entries
        .into_iter()
        .filter(|e| e.seq < total)
        .map(ExportLine::Entry)
        .collect();
    encode_lines(lines, buf)
}

/// Replaces `buf` with the JSON lines of `lines`; returns how many.
///
/// Not generic (nor are its callers here), so the serialisation is compiled with this
/// crate rather than in the caller's profile.
fn encode_lines(lines: Vec<ExportLine>, buf: &mut Vec<u8>) -> Result<u64, ExportError> {
    buf.clear();
    let mut n = 0;
    for line in &lines {
        serde_json::to_writer(&mut *buf, line).map_err(std::io::Error::other)?;
        buf.push(b'\n');
        n += 1;
    }
    Ok(n)
}

/// Verifies an export file against `key`. The outer error is an unreadable file; the
/// inner one is the first bad seq.
///
/// The calling thread reads and parses the file while a second thread verifies the
/// entries parsed so far (see [`Verifier::push_all`]); the outcome, including which
/// failure is reported first, is that of taking the lines one at a time in order.
pub fn verify_export(
    mut input: impl BufRead,
    key: &NoteVerifier,
    mut progress: impl FnMut(u64, u64),
) -> Result<Result<VerifyReport, VerifyFailure>, ExportError> {
    // Generic shims are compiled in the caller's crate and profile; all the work is in
    // the non-generic function, compiled (and optimised) with this crate.
    verify_export_dyn(&mut input, key, &mut progress)
}

/// Entries per page handed from the parser to the verifier.
const PAGE_ENTRIES: usize = 4096;

/// What the parser tells the verifier, in file order.
enum Message {
    /// Everything before the first entry (or the end of the file, if none) has been
    /// read: the checkpoints, and the size the header announces (for progress).
    Start {
        checkpoints: Vec<CheckpointRecord>,
        total: u64,
    },
    /// The next entries.
    Page(EntryPage),
    /// This line is not a valid export line: evidence against the next seq.
    BadLine(u64),
    /// The file cannot be read as an export.
    Fatal(ExportError),
    /// The file ended.
    End,
}

type Outcome = Result<Result<VerifyReport, VerifyFailure>, ExportError>;

/// The verifying side: consumes messages in order until it has an outcome.
struct Consumer {
    key: NoteVerifier,
    verifier: Option<Verifier>,
    /// The last page verified, kept for the parser to reuse.
    spare: Option<EntryPage>,
}

impl Consumer {
    fn entries(&self) -> u64 {
        self.verifier.as_ref().map_or(0, Verifier::entries)
    }

    /// `Some` once the outcome is known.
    fn handle(&mut self, message: Message) -> Option<Outcome> {
        match message {
            Message::Start { checkpoints, .. } => {
                match Verifier::new(self.key.clone(), checkpoints) {
                    Ok(v) => self.verifier = Some(v),
                    Err(f) => return Some(Ok(Err(f))),
                }
                None
            }
            Message::Page(page) => {
                let Some(v) = self.verifier.as_mut() else {
                    // The parser sends Start before any page.
                    return Some(Err(ExportError::Format {
                        line: 0,
                        reason: "entries before the export's start".into(),
                    }));
                };
                let outcome = v.push_all(&page.views());
                self.spare = Some(page);
                match outcome {
                    Ok(()) => None,
                    Err(f) => Some(Ok(Err(f))),
                }
            }
            // A mangled entry line is evidence, not an unreadable file.
            Message::BadLine(line) => Some(Ok(Err(VerifyFailure::bad(
                self.entries(),
                format!("line {line} is not a valid export line"),
            )))),
            Message::Fatal(e) => Some(Err(e)),
            Message::End => Some(match self.verifier.take() {
                Some(v) => Ok(v.finish()),
                None => Err(ExportError::Format {
                    line: 0,
                    reason: "the export ended before its start".into(),
                }),
            }),
        }
    }
}

fn verify_export_dyn(
    input: &mut dyn BufRead,
    key: &NoteVerifier,
    progress: &mut dyn FnMut(u64, u64),
) -> Outcome {
    let mut consumer = Consumer {
        key: key.clone(),
        verifier: None,
        spare: None,
    };
    let (to_verifier, pages) = std::sync::mpsc::sync_channel::<Message>(2);
    // Back from the verifier: entries verified so far, and a page to reuse.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, Option<EntryPage>)>();
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("pdx-verify-export".into())
            .spawn_scoped(scope, move || {
                for message in pages {
                    let page_done = matches!(message, Message::Page(_));
                    if let Some(outcome) = consumer.handle(message) {
                        return (outcome, consumer.entries());
                    }
                    if page_done {
                        let _ = done_tx.send((consumer.entries(), consumer.spare.take()));
                    }
                }
                // The parser always ends with End, Fatal or BadLine; getting here means
                // it stopped early, and the unread rest must not pass as verified.
                let reason = "the export reader stopped before the end of the file";
                (
                    Err(ExportError::Format {
                        line: 0,
                        reason: reason.into(),
                    }),
                    consumer.entries(),
                )
            });
        let worker = match worker {
            Ok(worker) => worker,
            Err(_) => {
                // No second thread: parse and verify in turn on this one.
                return verify_export_serial(input, key, progress);
            }
        };
        let mut sink = ThreadSink {
            to_verifier,
            done: done_rx,
            progress: &mut *progress,
            total: 0,
            spares: Vec::new(),
        };
        parse_export(input, &mut sink);
        let ThreadSink {
            to_verifier, total, ..
        } = sink;
        drop(to_verifier);
        match worker.join() {
            Ok((outcome, done)) => {
                progress(done, total);
                outcome
            }
            Err(_) => Err(ExportError::Format {
                line: 0,
                reason: "the export verifier failed".into(),
            }),
        }
    })
}

/// [`verify_export`] on the calling thread alone (if a thread cannot be started).
fn verify_export_serial(
    input: &mut dyn BufRead,
    key: &NoteVerifier,
    progress: &mut dyn FnMut(u64, u64),
) -> Outcome {
    let consumer = Consumer {
        key: key.clone(),
        verifier: None,
        spare: None,
    };
    let mut sink = SerialSink {
        consumer,
        progress,
        total: 0,
        outcome: None,
    };
    parse_export(input, &mut sink);
    sink.outcome.unwrap_or_else(|| {
        Err(ExportError::Format {
            line: 0,
            reason: "the export reader stopped before the end of the file".into(),
        })
    })
}

/// Where [`parse_export`] sends what it reads.
trait Sink {
    /// Takes the next message; false to stop reading.
    fn send(&mut self, message: Message) -> bool;
    /// A page the verifier is done with, to refill.
    fn spare(&mut self) -> Option<EntryPage>;
}

/// Hands messages to the verifier thread, and reports its progress.
struct ThreadSink<'a> {
    to_verifier: std::sync::mpsc::SyncSender<Message>,
    done: std::sync::mpsc::Receiver<(u64, Option<EntryPage>)>,
    progress: &'a mut dyn FnMut(u64, u64),
    total: u64,
    spares: Vec<EntryPage>,
}

impl Sink for ThreadSink<'_> {
    fn send(&mut self, message: Message) -> bool {
        if let Message::Start { total, .. } = &message {
            self.total = *total;
        }
        // A failed send means the verifier has its outcome: stop reading.
        let more = self.to_verifier.send(message).is_ok();
        while let Ok((done, spare)) = self.done.try_recv() {
            (self.progress)(done, self.total);
            self.spares.extend(spare);
        }
        more
    }

    fn spare(&mut self) -> Option<EntryPage> {
        self.spares.pop()
    }
}

/// Verifies each message as it comes, on the calling thread.
struct SerialSink<'a> {
    consumer: Consumer,
    progress: &'a mut dyn FnMut(u64, u64),
    total: u64,
    outcome: Option<Outcome>,
}

impl Sink for SerialSink<'_> {
    fn send(&mut self, message: Message) -> bool {
        if let Message::Start { total, .. } = &message {
            self.total = *total;
        }
        self.outcome = self.consumer.handle(message);
        (self.progress)(self.consumer.entries(), self.total);
        self.outcome.is_none()
    }

    fn spare(&mut self) -> Option<EntryPage> {
        self.consumer.spare.take()
    }
}

/// Recognises an entry line in exactly the layout [`export`] writes (serde_json's
/// output for `ExportLine::Entry`):
///
/// ```text
/// {"type":"entry","seq":N,"timestamp_ms":N,"kind":S,"actor":{"org":S,"key_id":S},
///  "payload":S,"payload_hash":H,"prev_hash":H,"entry_hash":H}
/// ```
///
/// on one line with no whitespace, decoding the four strings into `text` (kind, org,
/// key id, payload). This is the fast path of [`parse_export`]; it returns `None` for
/// anything else, which then goes through serde and [`ExportLine`], where the line
/// format is actually defined. So it only has to be *sound*: whatever it accepts,
/// serde reads as `ExportLine::Entry` with the same values. It therefore accepts only
/// unambiguous tokens: integers without leading zeros, `-0` or overflow (serde rejects
/// `-0` for an integer field and reads overflowing digits as a float); strings whose
/// escapes are the JSON short escapes or a `\uXXXX` that is not a surrogate; hashes of
/// exactly 64 unescaped hex digits. A line is a few hundred bytes, so this single pass
/// is several times cheaper than serde's generic one.
fn fast_entry_line<'t>(line: &str, text: &'t mut [Vec<u8>; 4]) -> Option<FastEntry<'t>> {
    let mut c = LineCursor {
        bytes: line.as_bytes(),
        pos: 0,
    };
    let [kind, org, key_id, payload] = text;
    c.expect(br#"{"type":"entry","seq":"#)?;
    let seq = c.unsigned()?;
    c.expect(br#","timestamp_ms":"#)?;
    let timestamp_ms = c.signed()?;
    c.expect(br#","kind":"#)?;
    let kind_len = c.string(kind)?;
    c.expect(br#","actor":{"org":"#)?;
    let org_len = c.string(org)?;
    c.expect(br#","key_id":"#)?;
    let key_len = c.string(key_id)?;
    c.expect(br#"},"payload":"#)?;
    let payload_len = c.string(payload)?;
    c.expect(br#","payload_hash":"#)?;
    let payload_hash = c.hash()?;
    c.expect(br#","prev_hash":"#)?;
    let prev_hash = c.hash()?;
    c.expect(br#","entry_hash":"#)?;
    let entry_hash = c.hash()?;
    c.expect(b"}")?;
    if c.pos != c.bytes.len() {
        return None;
    }
    let strings = [
        kind.get(..kind_len)?,
        org.get(..org_len)?,
        key_id.get(..key_len)?,
        payload.get(..payload_len)?,
    ];
    Some(FastEntry {
        seq,
        timestamp_ms,
        text: strings,
        hashes: [payload_hash, prev_hash, entry_hash],
    })
}

/// The fields [`fast_entry_line`] read: text as decoded (kind, org, key id, payload;
/// UTF-8 not yet checked) and hashes as in [`EntryPage::push`].
struct FastEntry<'t> {
    seq: u64,
    timestamp_ms: i64,
    text: [&'t [u8]; 4],
    hashes: [Hash32; 3],
}

/// The cursor of [`fast_entry_line`].
struct LineCursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl LineCursor<'_> {
    fn expect(&mut self, token: &[u8]) -> Option<()> {
        let end = self.pos + token.len();
        (self.bytes.get(self.pos..end)? == token).then(|| self.pos = end)
    }

    /// Digits of a JSON integer with no leading zeros, as a u64 (None on overflow).
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.pos;
        let mut value = 0u64;
        while let Some(d @ b'0'..=b'9') = self.bytes.get(self.pos).copied() {
            value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.pos += 1;
        }
        match self.pos - start {
            0 => None,
            1 => Some(value),
            _ if self.bytes.get(start) == Some(&b'0') => None,
            _ => Some(value),
        }
    }

    /// A JSON integer that fits i64, other than `-0` and i64::MIN.
    fn signed(&mut self) -> Option<i64> {
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
            let magnitude = i64::try_from(self.unsigned()?).ok()?;
            (magnitude != 0).then_some(-magnitude)
        } else {
            i64::try_from(self.unsigned()?).ok()
        }
    }

    /// A JSON string, decoded into the start of `out` (UTF-8 bytes; the caller checks
    /// them); returns the decoded length.
    fn string(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        self.expect(b"\"")?;
        // The decoded string is no longer than the rest of the line: make `out` at least
        // that long (it is reused, so this rarely grows it) and write by index, which
        // costs far less per byte than `push` (a payload escapes every quote, so the runs
        // between escapes are too short to copy as slices).
        let room = self.bytes.len().saturating_sub(self.pos);
        if out.len() < room {
            out.resize(room, 0);
        }
        let mut len = 0usize;
        let mut put = |b: u8| -> Option<()> {
            *out.get_mut(len)? = b;
            len += 1;
            Some(())
        };
        loop {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let escape = *self.bytes.get(self.pos)?;
                    self.pos += 1;
                    let c = match escape {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let hex = self.bytes.get(self.pos..self.pos + 4)?;
                            let code = hex.iter().try_fold(0u32, |acc, &h| {
                                Some(acc * 16 + (h as char).to_digit(16)?)
                            })?;
                            self.pos += 4;
                            // Surrogates (paired or not) are left to serde.
                            let c = char::from_u32(code)?;
                            for &b in c.encode_utf8(&mut [0u8; 4]).as_bytes() {
                                put(b)?;
                            }
                            continue;
                        }
                        _ => return None,
                    };
                    put(c)?;
                }
                // A raw control character: not JSON.
                0..=0x1f => return None,
                _ => put(b)?,
            }
        }
        Some(len)
    }

    /// A quoted hash of exactly 64 hex digits, no escapes.
    fn hash(&mut self) -> Option<Hash32> {
        self.expect(b"\"")?;
        let digits = self.bytes.get(self.pos..self.pos + 64)?;
        let hash = Hash32::from_hex_bytes(digits).ok()?;
        self.pos += 64;
        self.expect(b"\"")?;
        Some(hash)
    }
}

/// Reads the export line by line and tells `sink` what it finds, in order; stops when
/// `sink` returns false or after the last message (End, Fatal or BadLine).
///
/// The rules are those of the line-at-a-time reader this replaced: a header only on
/// line 1; checkpoints only before the first entry; blank lines skipped; a line that is
/// not an export line is evidence (BadLine); an unreadable file is Fatal.
fn parse_export(input: &mut dyn BufRead, sink: &mut dyn Sink) {
    let mut parser = Parser {
        sink,
        page: EntryPage::default(),
        checkpoints: Vec::new(),
        total: 0,
        started: false,
    };
    let mut raw = Vec::new();
    let mut text: [Vec<u8>; 4] = Default::default();
    let mut line_no = 0u64;
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return parser.end(Message::Fatal(e.into())),
        }
        line_no += 1;
        // As `BufRead::lines` splits: drop "\n" or "\r\n", and require UTF-8.
        if raw.last() == Some(&b'\n') {
            raw.pop();
            if raw.last() == Some(&b'\r') {
                raw.pop();
            }
        }
        let Ok(line) = std::str::from_utf8(&raw) else {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            );
            return parser.end(Message::Fatal(e.into()));
        };
        if line.trim().is_empty() {
            continue;
        }
        // The decoded strings are checked as UTF-8 here, once each.
        let fast = fast_entry_line(line, &mut text).and_then(|e| {
            let [k, o, i, p] = e.text;
            let utf8 = |b| std::str::from_utf8(b).ok();
            Some((
                e.seq,
                e.timestamp_ms,
                [utf8(k)?, utf8(o)?, utf8(i)?, utf8(p)?],
                e.hashes,
            ))
        });
        let more = match fast {
            Some((seq, timestamp_ms, strings, hashes)) => {
                parser.entry(seq, timestamp_ms, strings, hashes)
            }
            _ => match serde_json::from_str::<ExportLine>(line) {
                Ok(ExportLine::Header { format, size, .. }) if line_no == 1 => {
                    if format != EXPORT_FORMAT {
                        return parser.end(Message::Fatal(ExportError::Format {
                            line: line_no,
                            reason: "unknown export format".into(),
                        }));
                    }
                    parser.total = size;
                    true
                }
                Ok(ExportLine::Checkpoint(cp)) if !parser.started => {
                    parser.checkpoints.push(cp);
                    true
                }
                Ok(ExportLine::Entry(e)) => parser.entry(
                    e.seq,
                    e.timestamp_ms,
                    [e.kind.as_str(), &e.actor.org, &e.actor.key_id, &e.payload],
                    [e.payload_hash, e.prev_hash, e.entry_hash],
                ),
                Ok(_) => {
                    return parser.end(Message::Fatal(ExportError::Format {
                        line: line_no,
                        reason: "header or checkpoint out of place".into(),
                    }));
                }
                Err(_) => return parser.end(Message::BadLine(line_no)),
            },
        };
        if !more {
            return;
        }
    }
    if parser.start() {
        parser.end(Message::End);
    }
}

/// The state of [`parse_export`].
struct Parser<'a> {
    sink: &'a mut dyn Sink,
    /// Entries parsed but not yet sent.
    page: EntryPage,
    checkpoints: Vec<CheckpointRecord>,
    /// Entries the header announces.
    total: u64,
    /// True once Start has been sent (at the first entry, or at the end).
    started: bool,
}

impl Parser<'_> {
    /// Sends Start unless already sent; false if the sink wants no more.
    fn start(&mut self) -> bool {
        if self.started {
            return true;
        }
        self.started = true;
        let checkpoints = std::mem::take(&mut self.checkpoints);
        self.sink.send(Message::Start {
            checkpoints,
            total: self.total,
        })
    }

    /// Adds an entry (fields as in [`EntryPage::push`]); false if the sink wants no more.
    fn entry(&mut self, seq: u64, timestamp_ms: i64, text: [&str; 4], hashes: [Hash32; 3]) -> bool {
        if !self.start() {
            return false;
        }
        self.page.push(seq, timestamp_ms, text, hashes);
        self.page.len() < PAGE_ENTRIES || self.flush()
    }

    /// Sends the pending entries, if any; false if the sink wants no more.
    fn flush(&mut self) -> bool {
        if self.page.is_empty() {
            return true;
        }
        let mut next = self.sink.spare().unwrap_or_default();
        next.clear();
        let full = std::mem::replace(&mut self.page, next);
        self.sink.send(Message::Page(full))
    }

    /// Sends the pending entries, then `last`.
    fn end(&mut self, last: Message) {
        if self.flush() {
            self.sink.send(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::{ExportLine, fast_entry_line};
    use crate::entry::{Actor, Entry, EntryKind, Hash32};

    fn sample(rng: &mut StdRng) -> Entry {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "-",
            "/",
            "\"",
            "\\",
            "é",
            "€",
            "\u{1f600}",
            "0",
            "\n",
            "\u{1}",
            "\u{7f}",
        ];
        // Kinds and actor fields may not hold control characters (the last three).
        let mut text = |n: usize, pieces: usize| -> String {
            (0..rng.gen_range(1..n))
                .map(|_| PIECES[rng.gen_range(0..pieces)])
                .collect()
        };
        let kind = text(6, PIECES.len() - 3);
        let org = text(6, PIECES.len() - 3);
        let key_id = text(6, PIECES.len() - 3);
        let note = text(12, PIECES.len());
        let payload = serde_json::json!({"note": note, "n": 7});
        let timestamp = match rng.gen_range(0..3) {
            0 => 0,
            1 => -rng.gen_range(1..i64::MAX),
            _ => rng.gen_range(0..i64::MAX),
        };
        Entry::build(
            rng.gen_range(0..u64::MAX),
            timestamp,
            kind.parse().unwrap_or(EntryKind::Release),
            Actor { org, key_id },
            &payload,
            Hash32(rng.r#gen()),
        )
        .expect("sample entry")
    }

    /// Variations on a line that serde reads the same or rejects.
    fn mutate(rng: &mut StdRng, line: &str) -> String {
        let mut s = line.to_string();
        match rng.gen_range(0..17) {
            0 => s = s.replacen(':', ": ", 1),
            1 => s = s.replacen("\"seq\":", "\"seq\":0", 1),
            2 => s = s.replacen("\"timestamp_ms\":", "\"timestamp_ms\":-", 1),
            3 => s = s.replacen("\"seq\":", "\"seq\":99999999999999999999", 1),
            4 => s = s.replacen('a', "\\u0061", 1),
            5 => s = s.replacen('/', "\\/", 1),
            6 => s = s.replacen("\\n", "\\u000A", 1),
            7 => s = s.replacen("\"kind\":\"", "\"kind\":\"\\ud83d\\ude00", 1),
            8 => s = s.replacen("}", ",\"extra\":1}", 1),
            9 => {
                s = s.replacen("\"type\":\"entry\",", "", 1).replacen(
                    '{',
                    "{\"type\":\"entry\",",
                    1,
                )
            }
            10 => s.push(' '),
            11 => {
                let i = rng.gen_range(0..s.len());
                if s.is_char_boundary(i) && s.is_char_boundary(i + 1) {
                    s.replace_range(i..i + 1, "");
                }
            }
            12 => s = s.to_uppercase(),
            13 => {
                s = s.replacen(
                    "\\\"",
                    &format!("\\{}", char::from(rng.gen_range(b' '..b'~'))),
                    1,
                )
            }
            14 => s = s.replacen("\"timestamp_ms\":", "\"timestamp_ms\":-0,\"x\":", 1),
            15 => s = s.replacen("\"timestamp_ms\":0", "\"timestamp_ms\":-0", 1),
            _ => s = s.replacen("\"prev_hash\":\"", "\"prev_hash\":\"A", 1),
        }
        s
    }

    /// Whatever the fast path accepts, serde reads as the same entry.
    #[test]
    fn fast_entry_lines_read_as_serde_reads_them() {
        let mut rng = StdRng::seed_from_u64(0xe4b0);
        let mut text: [Vec<u8>; 4] = Default::default();
        let (mut fast, mut mutants_fast) = (0, 0);
        for i in 0..5_000 {
            let entry = sample(&mut rng);
            let line = serde_json::to_string(&ExportLine::Entry(entry)).unwrap();
            let mut candidates = vec![line.clone()];
            candidates.extend((0..4).map(|_| mutate(&mut rng, &line)));
            for (j, candidate) in candidates.iter().enumerate() {
                let Some(fast_entry) = fast_entry_line(candidate, &mut text) else {
                    assert!(j > 0, "an exported line took the slow path: {candidate}");
                    continue;
                };
                if j == 0 {
                    fast += 1;
                } else {
                    mutants_fast += 1;
                }
                let Ok(ExportLine::Entry(e)) = serde_json::from_str::<ExportLine>(candidate) else {
                    panic!("fast path accepted what serde rejects ({i}): {candidate}");
                };
                let (seq, ts, [ph, prev, eh]) =
                    (fast_entry.seq, fast_entry.timestamp_ms, fast_entry.hashes);
                let strings: Vec<&str> = fast_entry
                    .text
                    .iter()
                    .map(|t| std::str::from_utf8(t).unwrap())
                    .collect();
                assert_eq!(
                    (seq, ts, ph, prev, eh),
                    (
                        e.seq,
                        e.timestamp_ms,
                        e.payload_hash,
                        e.prev_hash,
                        e.entry_hash
                    ),
                    "{candidate}"
                );
                assert_eq!(
                    strings,
                    [e.kind.as_str(), &e.actor.org, &e.actor.key_id, &e.payload],
                    "{candidate}"
                );
            }
        }
        assert_eq!(fast, 5_000);
        assert!(mutants_fast > 500, "{mutants_fast}");
    }
}
