//! A page of entries read from storage or from an export file, ready for the verifier.
//!
//! Readers copy each entry's four text fields into one growing buffer instead of four
//! `String`s, so a page costs a few allocations in all (none at all when it is reused),
//! and the verifier borrows the fields back as [`EntryView`]s.

use crate::entry::{Entry, EntryView, Hash32};

/// Entries, in the order pushed, their text fields packed in one buffer.
#[derive(Default)]
pub(crate) struct EntryPage {
    /// kind, actor org, actor key id and payload of every entry, back to back.
    text: String,
    entries: Vec<PackedEntry>,
}

/// One entry: its fixed-size fields, and where its text fields end in
/// `EntryPage::text` (each starts where the previous one ends, the first at `start`).
struct PackedEntry {
    seq: u64,
    timestamp_ms: i64,
    start: usize,
    ends: [usize; 4],
    /// payload_hash, prev_hash, entry_hash.
    hashes: [Hash32; 3],
}

impl EntryPage {
    /// Adds an entry: `text` is `[kind, actor org, actor key id, payload]`, `hashes` is
    /// `[payload_hash, prev_hash, entry_hash]`, all as stored.
    pub(crate) fn push(
        &mut self,
        seq: u64,
        timestamp_ms: i64,
        text: [&str; 4],
        hashes: [Hash32; 3],
    ) {
        let start = self.text.len();
        let mut ends = [0usize; 4];
        for (end, field) in ends.iter_mut().zip(text) {
            self.text.push_str(field);
            *end = self.text.len();
        }
        self.entries.push(PackedEntry {
            seq,
            timestamp_ms,
            start,
            ends,
            hashes,
        });
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Empties the page, keeping its memory.
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
    }

    /// The entries, copied out, in order.
    pub(crate) fn to_entries(&self) -> Vec<Entry> {
        self.views().iter().map(EntryView::to_entry).collect()
    }

    /// The entries, borrowed, in order.
    pub(crate) fn views(&self) -> Vec<EntryView<'_>> {
        self.entries
            .iter()
            .map(|e| {
                // Offsets were taken from this buffer between whole strings, so `get`
                // always succeeds; it is used so that nothing here can panic.
                let field = |from: usize, to: usize| self.text.get(from..to).unwrap_or_default();
                let [kind, org, key, payload] = e.ends;
                let [payload_hash, prev_hash, entry_hash] = e.hashes;
                EntryView {
                    seq: e.seq,
                    timestamp_ms: e.timestamp_ms,
                    kind: field(e.start, kind),
                    actor_org: field(kind, org),
                    actor_key: field(org, key),
                    payload: field(key, payload),
                    payload_hash,
                    prev_hash,
                    entry_hash,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::EntryPage;
    use crate::entry::Hash32;

    #[test]
    fn fields_come_back_as_pushed() {
        let mut page = EntryPage::default();
        page.push(
            7,
            -3,
            ["kind", "", "k€y", "{\"a\":1}"],
            [Hash32([1; 32]), Hash32([2; 32]), Hash32([3; 32])],
        );
        page.push(8, 9, ["x", "org", "", ""], [Hash32::ZERO; 3]);
        let views = page.views();
        assert_eq!(views.len(), 2);
        assert_eq!(
            (
                views[0].seq,
                views[0].timestamp_ms,
                views[0].kind,
                views[0].actor_org
            ),
            (7, -3, "kind", "")
        );
        assert_eq!((views[0].actor_key, views[0].payload), ("k€y", "{\"a\":1}"));
        assert_eq!(views[0].prev_hash, Hash32([2; 32]));
        assert_eq!(
            (views[1].kind, views[1].actor_org, views[1].payload),
            ("x", "org", "")
        );
        page.clear();
        assert!(page.is_empty());
    }
}
