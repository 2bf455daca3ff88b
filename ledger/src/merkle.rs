//! RFC 9162 §2.1 Merkle tree hashing, proofs and verification, generic over the hash.
//!
//! # Hash rules (RFC 9162 §2.1.1, unchanged from RFC 6962 §2.1)
//!
//! ```text
//! MTH({})        = H()                                   empty tree: hash of no bytes
//! MTH({d0})      = H(0x00 || d0)                          leaf hash
//! MTH(D[n]), n>1 = H(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  k = largest power of two < n
//! ```
//!
//! The 0x00/0x01 prefixes keep leaf and interior hashes in separate domains, so no leaf
//! can be passed off as an interior node (the second-preimage attack on naive trees).
//! [`Sha256Hasher`] is the RFC 6962 instance and is checked against the published test
//! vectors; [`Blake3Hasher`] applies plain `blake3::hash` to exactly the same prefixed
//! bytes and is what the ledger runs in production.
//!
//! # Storage model
//!
//! Because `k` is always a power of two, every node of the tree over `D[0:n]` is either a
//! *complete* aligned subtree — leaves `[index << level, (index + 1) << level)`, named by
//! [`NodeId`] — or lies on the right edge and is a right-to-left fold of complete
//! subtrees. Complete subtrees never change once their last leaf is appended, so the
//! store writes each one exactly once ([`nodes_after_append`]) and never rewrites it.
//! A proof is then a list of leaf ranges ([`inclusion_path`], [`consistency_path`]);
//! each range decomposes into O(log n) complete subtrees ([`complete_subtrees`]); the
//! store reads those ([`nodes_for`]) and folds them ([`range_hash`], [`build_proof`]).
//! No proof ever rebuilds the tree. This is the Trillian/Tessera "compact range" model.
//!
//! A streaming verifier needs even less: [`CompactRange`] keeps only the
//! `popcount(size)` complete subtrees that tile `[0, size)` (the right frontier), which
//! is enough to append and to produce the root at every size in O(log n).
//!
//! # Verification
//!
//! [`verify_inclusion`] and [`verify_consistency`] are the bit-twiddling algorithms of
//! RFC 9162 §2.1.3.2 and §2.1.4.2, written independently of the proof *generation*
//! code above so that a bug in one is not mirrored in the other. Both first check the
//! proof length against the length the generator would produce, so over-long and
//! truncated proofs are rejected with a precise error before any hashing.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use sha2::{Digest, Sha256};

/// A 32-byte tree hash.
pub type Hash = [u8; 32];

/// Domain-separation prefix of a leaf hash: `leaf = H(0x00 || data)`.
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node: `node = H(0x01 || left || right)`.
pub const NODE_PREFIX: u8 = 0x01;

/// The hash function of a tree, with the RFC 9162 domain separation built in.
pub trait MerkleHasher {
    /// `H(0x00 || data)`: the hash of one leaf.
    fn leaf(data: &[u8]) -> Hash;
    /// `H(0x01 || left || right)`: the hash of an interior node.
    fn node(left: &Hash, right: &Hash) -> Hash;
    /// `H()`: the root of the empty tree.
    fn empty() -> Hash;
}

/// RFC 6962 SHA-256 instance; passes the transparency-dev test vectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sha256Hasher;

impl MerkleHasher for Sha256Hasher {
    fn leaf(data: &[u8]) -> Hash {
        let mut h = Sha256::new();
        h.update([LEAF_PREFIX]);
        h.update(data);
        h.finalize().into()
    }

    fn node(left: &Hash, right: &Hash) -> Hash {
        let mut h = Sha256::new();
        h.update([NODE_PREFIX]);
        h.update(left);
        h.update(right);
        h.finalize().into()
    }

    fn empty() -> Hash {
        Sha256::digest([]).into()
    }
}

/// Production instance: plain (unkeyed) BLAKE3 over the same prefixed bytes as RFC 6962.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blake3Hasher;

impl MerkleHasher for Blake3Hasher {
    fn leaf(data: &[u8]) -> Hash {
        // Ledger leaves are 32-byte entry hashes: gather 0x00 || data on the stack and hash
        // it in one call (same digest as feeding a Hasher, at a fraction of the cost).
        if data.len() == 32 {
            let mut buf = [LEAF_PREFIX; 33];
            buf[1..].copy_from_slice(data);
            return *blake3::hash(&buf).as_bytes();
        }
        let mut h = blake3::Hasher::new();
        h.update(&[LEAF_PREFIX]);
        h.update(data);
        *h.finalize().as_bytes()
    }

    fn node(left: &Hash, right: &Hash) -> Hash {
        let mut buf = [0u8; 65];
        buf[0] = NODE_PREFIX;
        buf[1..33].copy_from_slice(left);
        buf[33..].copy_from_slice(right);
        *blake3::hash(&buf).as_bytes()
    }

    fn empty() -> Hash {
        *blake3::hash(&[]).as_bytes()
    }
}

/// A complete, aligned subtree: leaves [index << level, (index + 1) << level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves; a leaf is level 0.
    pub level: u8,
    /// Position among the nodes of this level, counted from the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`.
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The leaf range this node covers; `None` if it does not fit in u64 leaf indices.
    pub fn leaves(&self) -> Option<Range<u64>> {
        let start = self.index.checked_shl(u32::from(self.level))?;
        // A level-64 node would cover 2^64 leaves, which u64 cannot count.
        if u32::from(self.level) >= u64::BITS || start >> self.level != self.index {
            return None;
        }
        let end = start.checked_add(1u64 << self.level)?;
        Some(start..end)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node(level {}, index {})", self.level, self.index)
    }
}

/// Why a Merkle computation or verification failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    /// A leaf index is not inside the tree.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency check was asked from a larger tree to a smaller one.
    #[error("tree size {size1} is larger than tree size {size2}")]
    SizeOutOfOrder {
        /// The earlier (claimed smaller) size.
        size1: u64,
        /// The later size.
        size2: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// The length RFC 9162 prescribes.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The proof does not lead to the given root.
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
    /// A node needed for a hash is not in the node map.
    #[error("{0} is missing from storage")]
    MissingNode(NodeId),
    /// A consistency proof from the empty tree was asked for; it proves nothing.
    #[error("a consistency proof from the empty tree is meaningless")]
    EmptyTree,
    /// A leaf range with start after end.
    #[error("invalid leaf range {start}..{end}")]
    InvalidRange {
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
    },
    /// A compact range frontier does not have one hash per set bit of the size.
    #[error("a frontier for size {size} needs {expected} hashes, got {got}")]
    FrontierMismatch {
        /// The tree size.
        size: u64,
        /// popcount(size).
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
}

/// Largest power of two strictly less than `n`; requires `n >= 2`.
fn split_point(n: u64) -> u64 {
    // n >= 2 so n - 1 >= 1 and the shift is at most 63.
    1u64 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The reference MTH of RFC 9162 §2.1.1 over already-hashed leaves (recursive).
pub fn root_from_leaves<H: MerkleHasher>(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => H::empty(),
        [leaf] => *leaf,
        _ => {
            let k = split_point(leaf_hashes.len() as u64) as usize;
            let (left, right) = leaf_hashes.split_at(k);
            H::node(&root_from_leaves::<H>(left), &root_from_leaves::<H>(right))
        }
    }
}

/// The leaf ranges whose hashes form the RFC 9162 inclusion proof PATH(index, D[size]),
/// bottom-up.
pub fn inclusion_path(index: u64, size: u64) -> Result<Vec<Range<u64>>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])     if m < k
    //               = PATH(m - k, D[k:n]) : MTH(D[0:k]) if m >= k
    // The recursion descends from the root, and each step's sibling goes *after* the
    // deeper part, so collecting top-down and reversing yields the bottom-up order.
    let (mut lo, mut hi) = (0u64, size);
    let mut top_down = Vec::new();
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            top_down.push(mid..hi);
            hi = mid;
        } else {
            top_down.push(lo..mid);
            lo = mid;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// The leaf ranges whose hashes form the RFC 9162 consistency proof PROOF(size1, D[size2]).
pub fn consistency_path(size1: u64, size2: u64) -> Result<Vec<Range<u64>>, MerkleError> {
    if size1 > size2 {
        return Err(MerkleError::SizeOutOfOrder { size1, size2 });
    }
    if size1 == 0 || size1 == size2 {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[n], b):
    //   m == n:  []  if b,  [MTH(D[n])]  otherwise
    //   m <= k:  SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
    //   m >  k:  SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
    // PROOF(m, D[n]) = SUBPROOF(m, D[n], true). As with inclusion, the siblings are
    // collected top-down and reversed at the end.
    let (mut lo, mut hi) = (0u64, size2);
    let mut b = true;
    let mut top_down = Vec::new();
    loop {
        let n = hi - lo;
        let m = size1 - lo;
        if m == n {
            if !b {
                top_down.push(lo..hi);
            }
            break;
        }
        let mid = lo + split_point(n);
        if m <= mid - lo {
            top_down.push(mid..hi);
            hi = mid;
        } else {
            top_down.push(lo..mid);
            lo = mid;
            b = false;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// Decomposes a leaf range into maximal aligned complete subtrees, left to right.
pub fn complete_subtrees(range: Range<u64>) -> Vec<NodeId> {
    let (mut begin, end) = (range.start, range.end);
    let mut out = Vec::new();
    while begin < end {
        let len = end - begin;
        // The largest subtree starting at `begin` is limited by how `begin` is aligned
        // (0 is aligned to everything) and by how many leaves remain.
        let fits = u64::BITS - 1 - len.leading_zeros();
        let level = if begin == 0 {
            fits
        } else {
            fits.min(begin.trailing_zeros())
        };
        out.push(NodeId {
            level: level as u8,
            index: begin >> level,
        });
        begin += 1u64 << level;
    }
    out
}

/// All complete subtrees needed to hash the given ranges, deduplicated and sorted.
pub fn nodes_for(ranges: &[Range<u64>]) -> Vec<NodeId> {
    let set: BTreeSet<NodeId> = ranges
        .iter()
        .flat_map(|r| complete_subtrees(r.clone()))
        .collect();
    set.into_iter().collect()
}

/// Hash of the (possibly incomplete, right-edge) subtree over `range`.
///
/// Only meaningful for ranges that are subtrees of an RFC 9162 tree: those returned by
/// [`inclusion_path`] and [`consistency_path`], and `0..n`. For those the MTH split at
/// the largest power of two is exactly the complete-subtree decomposition, so
/// `MTH = node(c0, node(c1, ... node(c_{k-2}, c_{k-1})))`: fold right to left.
/// The empty range hashes to `H()` like the empty tree.
pub fn range_hash<H: MerkleHasher>(
    range: Range<u64>,
    nodes: &HashMap<NodeId, Hash>,
) -> Result<Hash, MerkleError> {
    if range.start > range.end {
        return Err(MerkleError::InvalidRange {
            start: range.start,
            end: range.end,
        });
    }
    let ids = complete_subtrees(range);
    let mut hashes = ids
        .iter()
        .rev()
        .map(|id| nodes.get(id).copied().ok_or(MerkleError::MissingNode(*id)));
    let Some(last) = hashes.next() else {
        return Ok(H::empty());
    };
    let mut acc = last?;
    for prev in hashes {
        acc = H::node(&prev?, &acc);
    }
    Ok(acc)
}

/// The proof hashes for `ranges` (from [`inclusion_path`] or [`consistency_path`]).
pub fn build_proof<H: MerkleHasher>(
    ranges: &[Range<u64>],
    nodes: &HashMap<NodeId, Hash>,
) -> Result<Vec<Hash>, MerkleError> {
    ranges
        .iter()
        .map(|r| range_hash::<H>(r.clone(), nodes))
        .collect()
}

/// The left siblings that must already be stored to compute every node completed by
/// appending leaf `leaf_index`.
///
/// Leaf `i` is the right child at level L exactly when bit L of `i` is 1; each such
/// level completes its parent, whose left child is `(L, (i >> L) - 1)`.
pub fn completed_by_append(leaf_index: u64) -> Vec<NodeId> {
    (0..u64::BITS)
        .take_while(|&level| (leaf_index >> level) & 1 == 1)
        .map(|level| NodeId {
            level: level as u8,
            // Bit `level` is 1, so `leaf_index >> level` is odd and at least 1.
            index: (leaf_index >> level) - 1,
        })
        .collect()
}

/// The nodes to store after appending leaf `leaf_index`: the leaf itself, then every
/// parent it completes, bottom-up.
pub fn nodes_after_append<H: MerkleHasher>(
    leaf_index: u64,
    leaf_hash: Hash,
    siblings: &HashMap<NodeId, Hash>,
) -> Result<Vec<(NodeId, Hash)>, MerkleError> {
    let mut out = vec![(NodeId::new(0, leaf_index), leaf_hash)];
    let mut acc = leaf_hash;
    for sibling in completed_by_append(leaf_index) {
        let left = siblings
            .get(&sibling)
            .ok_or(MerkleError::MissingNode(sibling))?;
        acc = H::node(left, &acc);
        // The parent of (L, j) is (L + 1, j >> 1); j >> 1 never shifts by 64.
        out.push((NodeId::new(sibling.level + 1, sibling.index >> 1), acc));
    }
    Ok(out)
}

/// Length of PATH(index, D[size]) without building it; requires `index < size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    // Below the level where the paths to `index` and `size - 1` diverge, every level has a
    // sibling; above it, only the levels where `index` is a right child do (the right
    // edge has no right siblings).
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Verifies an inclusion proof with the algorithm of RFC 9162 §2.1.3.2.
pub fn verify_inclusion<H: MerkleHasher>(
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    // 1. leaf_index >= tree_size: fail.
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(MerkleError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // 2.-3. fn = leaf_index, sn = tree_size - 1, r = hash.
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    // 4. For each p in the proof:
    for p in proof {
        // a. sn == 0: the proof is longer than the path to the root.
        if snode == 0 {
            return Err(MerkleError::RootMismatch);
        }
        // b. fn is a right child, or the last node of its level (no right sibling exists,
        //    so p is a left sibling found higher up): r = node(p, r), then climb while fn
        //    is a left child. Otherwise p is the right sibling: r = node(r, p).
        if fnode & 1 == 1 || fnode == snode {
            r = H::node(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = H::node(&r, p);
        }
        // c. Move one level up.
        fnode >>= 1;
        snode >>= 1;
    }
    // 5. Success iff we reached the root (sn == 0) and r is the root hash.
    if snode == 0 && r == *root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// Verifies a consistency proof with the algorithm of RFC 9162 §2.1.4.2.
///
/// Edge cases follow the transparency-dev reference verifier and its test vectors:
/// `size1 > size2` fails; `size1 == 0` fails (nothing is proved about an empty tree and
/// RFC 9162 defines PROOF only for `0 < m`); `size1 == size2` needs an empty proof and
/// equal roots.
pub fn verify_consistency<H: MerkleHasher>(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), MerkleError> {
    if size1 > size2 {
        return Err(MerkleError::SizeOutOfOrder { size1, size2 });
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    // The proof is the inclusion path of leaf size1 - 1 in D[size2], minus the levels
    // below the largest complete subtree ending at size1 (that subtree's hash replaces
    // them, and is itself omitted when it is the whole old tree).
    let shift = size1.trailing_zeros();
    let inner = u64::BITS - ((size1 - 1) ^ (size2 - 1)).leading_zeros() - shift;
    let border = ((size1 - 1) >> shift)
        .checked_shr(inner)
        .unwrap_or(0)
        .count_ones();
    let seeded = size1.is_power_of_two();
    let expected = (inner + border) as usize + usize::from(!seeded);
    // 1. An empty proof fails (expected is always >= 1 for 0 < size1 < size2).
    if proof.len() != expected {
        return Err(MerkleError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // 2. If size1 is a power of two, the old root is itself the first proof node.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if seeded {
        path.push(root1);
    }
    path.extend(proof.iter());
    let Some((first, rest)) = path.split_first() else {
        return Err(MerkleError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    };
    // 3. fn = first - 1, sn = second - 1.
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    // 4. Skip the levels where fn is a right child: they are inside the seed subtree.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // 5. fr = sr = first proof node.
    let (mut fr, mut sr) = (**first, **first);
    // 6. For each subsequent c:
    for c in rest {
        // a. sn == 0: proof longer than the path to the new root.
        if snode == 0 {
            return Err(MerkleError::RootMismatch);
        }
        // b. c is a left sibling: it is in both trees. Otherwise c is a right sibling
        //    that only the new tree has.
        if fnode & 1 == 1 || fnode == snode {
            fr = H::node(c, &fr);
            sr = H::node(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = H::node(&sr, c);
        }
        // c. One level up.
        fnode >>= 1;
        snode >>= 1;
    }
    // 7. Both roots must be reproduced and the path must end at the new root.
    if snode == 0 && fr == *root1 && sr == *root2 {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// The right frontier of a tree: enough to append leaves and compute every root.
pub struct CompactRange<H> {
    size: u64,
    /// Hashes of `complete_subtrees(0..size)`, left to right (largest first).
    frontier: Vec<Hash>,
    hasher: PhantomData<fn() -> H>,
}

impl<H> Clone for CompactRange<H> {
    fn clone(&self) -> Self {
        Self {
            size: self.size,
            frontier: self.frontier.clone(),
            hasher: PhantomData,
        }
    }
}

impl<H> fmt::Debug for CompactRange<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactRange")
            .field("size", &self.size)
            .field(
                "frontier",
                &self.frontier.iter().map(hex::encode).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<H> Default for CompactRange<H> {
    fn default() -> Self {
        Self {
            size: 0,
            frontier: Vec::new(),
            hasher: PhantomData,
        }
    }
}

impl<H> PartialEq for CompactRange<H> {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.frontier == other.frontier
    }
}

impl<H> Eq for CompactRange<H> {}

impl<H: MerkleHasher> CompactRange<H> {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes from a stored frontier: one hash per set bit of `size`, largest subtree
    /// first (the hashes of `complete_subtrees(0..size)`).
    pub fn from_parts(size: u64, frontier: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if frontier.len() != expected {
            return Err(MerkleError::FrontierMismatch {
                size,
                expected,
                got: frontier.len(),
            });
        }
        Ok(Self {
            size,
            frontier,
            hasher: PhantomData,
        })
    }

    /// Appends one leaf hash.
    ///
    /// A tree cannot reach 2^64 - 1 leaves by appending; if one was resumed at that size
    /// with [`CompactRange::from_parts`], further appends are ignored rather than wrapping.
    pub fn append(&mut self, leaf_hash: Hash) {
        self.append_inner(leaf_hash, None);
    }

    /// Appends one leaf hash and records, in `out`, every complete subtree the append
    /// finishes: the leaf itself, then each parent up to the new frontier node (the same
    /// nodes as [`nodes_after_append`], without a node map).
    pub fn append_recording(&mut self, leaf_hash: Hash, out: &mut Vec<(NodeId, Hash)>) {
        self.append_inner(leaf_hash, Some(out));
    }

    fn append_inner(&mut self, leaf_hash: Hash, mut out: Option<&mut Vec<(NodeId, Hash)>>) {
        let index = self.size;
        let Some(new_size) = index.checked_add(1) else {
            return;
        };
        if let Some(out) = out.as_deref_mut() {
            out.push((NodeId::new(0, index), leaf_hash));
        }
        // Each trailing 1-bit of the old size is a complete subtree of the same height as
        // the one being built, so they merge like a binary counter's carries.
        let mut acc = leaf_hash;
        for level in 1..=self.size.trailing_ones() {
            let Some(left) = self.frontier.pop() else {
                // from_parts guarantees popcount(size) entries, so this cannot happen.
                break;
            };
            acc = H::node(&left, &acc);
            if let Some(out) = out.as_deref_mut() {
                // trailing_ones() < 64, so level fits u8 and the shift is in range.
                out.push((NodeId::new(level as u8, index >> level), acc));
            }
        }
        self.frontier.push(acc);
        self.size = new_size;
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The MTH of the tree: the frontier folded right to left (O(log n)).
    pub fn root(&self) -> Hash {
        let mut rev = self.frontier.iter().rev();
        let Some(last) = rev.next() else {
            return H::empty();
        };
        rev.fold(*last, |acc, prev| H::node(prev, &acc))
    }

    /// The hashes of `complete_subtrees(0..size)`, left to right.
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }
}
