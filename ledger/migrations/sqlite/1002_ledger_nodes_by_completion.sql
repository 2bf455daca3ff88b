-- Merkle nodes keyed by completion order.
--
-- 1001 keyed ledger_nodes by (level, idx). An append completes one node per level, so
-- each batch inserted into a dozen places in the middle of that B-tree, splitting pages
-- half-full and rewriting many of them: it was the largest part of a batch append.
-- Keyed by `pos`, the order in which appends complete subtrees, every insert goes at
-- the end of the table:
--
--   pos(level, idx) = ((((idx + 1) << level) - 1) << 6) | level
--                   = (index of the subtree's last leaf) * 64 + level
--
-- Leaves (level 0) are no longer stored: a leaf is H(0x00 || entry_hash) of its entry
-- (see src/store.rs). Existing nodes are carried over.

CREATE TABLE ledger_nodes_by_pos (
    pos  INTEGER PRIMARY KEY,          -- see above; rowid alias: appends are cheap
    hash BLOB    NOT NULL
);
INSERT INTO ledger_nodes_by_pos (pos, hash)
SELECT ((((idx + 1) << level) - 1) << 6) | level, hash FROM ledger_nodes WHERE level > 0;

DROP TRIGGER ledger_nodes_no_update;
DROP TRIGGER ledger_nodes_no_delete;
DROP TABLE ledger_nodes;
ALTER TABLE ledger_nodes_by_pos RENAME TO ledger_nodes;

CREATE TRIGGER ledger_nodes_no_update BEFORE UPDATE ON ledger_nodes
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_nodes_no_delete BEFORE DELETE ON ledger_nodes
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
