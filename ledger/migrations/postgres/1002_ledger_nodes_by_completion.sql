-- Merkle nodes keyed by completion order.
--
-- 1001 keyed ledger_nodes by (level, idx). An append completes one node per level, so
-- each batch inserted into a dozen places in the middle of that B-tree, splitting pages
-- half-full and rewriting many of them: it was the largest part of a batch append.
-- Keyed by `pos`, the order in which appends complete subtrees, every insert goes at
-- the end of the index:
--
--   pos(level, idx) = ((((idx + 1) << level) - 1) << 6) | level
--                   = (index of the subtree's last leaf) * 64 + level
--
-- Leaves (level 0) are no longer stored: a leaf is H(0x00 || entry_hash) of its entry
-- (see src/store.rs). Existing nodes are carried over.

CREATE TABLE ledger_nodes_by_pos (
    pos  BIGINT PRIMARY KEY,           -- see above
    hash BYTEA  NOT NULL
);
INSERT INTO ledger_nodes_by_pos (pos, hash)
SELECT ((((idx + 1) << level::int) - 1) << 6) | level, hash FROM ledger_nodes WHERE level > 0;

-- Dropping the table drops its triggers.
DROP TABLE ledger_nodes;
ALTER TABLE ledger_nodes_by_pos RENAME TO ledger_nodes;
ALTER INDEX ledger_nodes_by_pos_pkey RENAME TO ledger_nodes_pkey;

CREATE TRIGGER ledger_nodes_append_only BEFORE UPDATE OR DELETE ON ledger_nodes
    FOR EACH ROW EXECUTE FUNCTION pdx_ledger_append_only();
CREATE TRIGGER ledger_nodes_no_truncate BEFORE TRUNCATE ON ledger_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION pdx_ledger_append_only();
