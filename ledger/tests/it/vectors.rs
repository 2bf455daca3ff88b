//! The Merkle module against the transparency-dev RFC 6962 test vectors, plus property
//! tests that tie proof generation, node storage, verification and compact ranges to
//! the reference MTH.

use std::collections::HashMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pdx_ledger::merkle::{
    self, Blake3Hasher, CompactRange, Hash, MerkleError, MerkleHasher, NodeId, Sha256Hasher,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use sha2::{Digest, Sha256};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/rfc6962")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: Option<String>,
    leaf_hash: Option<String>,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: Option<String>,
    root2: Option<String>,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn b64(s: &Option<String>) -> Vec<u8> {
    STANDARD.decode(s.as_deref().unwrap_or("")).unwrap()
}

/// A 32-byte hash, or `None` for a value of another length: our API takes `[u8; 32]`, so
/// such a value is rejected before any verifier runs (as the Go verifier rejects a leaf
/// hash of the wrong size).
fn as_hash(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

fn proof_hashes(proof: &Option<Vec<String>>) -> Option<Vec<Hash>> {
    proof
        .iter()
        .flatten()
        .map(|p| as_hash(&STANDARD.decode(p).unwrap()))
        .collect()
}

/// The Go verifier compares consistency roots as opaque byte strings, and some vectors
/// use 12-byte placeholders ("don't care 1"). Our roots are typed `[u8; 32]`, so map a
/// placeholder to a distinct 32-byte stand-in; equal placeholders stay equal, different
/// ones stay different, and no stand-in is a real tree root.
fn root_or_stand_in(bytes: &[u8]) -> Hash {
    as_hash(bytes).unwrap_or_else(|| {
        let mut h = Sha256::new();
        h.update(b"test stand-in for a non-32-byte root:");
        h.update(bytes);
        h.finalize().into()
    })
}

/// The eight leaves of the RFC 6962 reference tree (transparency-dev proof/verify_test.go),
/// from which all numbered vectors' roots and proofs were computed.
fn reference_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| Sha256Hasher::leaf(&hex::decode(h).unwrap()))
    .collect()
}

fn is_numbered_happy_path(path: &Path) -> bool {
    let parent_is_number = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.parse::<u32>().is_ok());
    parent_is_number && path.file_name().is_some_and(|n| n == "happy-path.json")
}

/// A node map filled only by `nodes_after_append`, as the store fills it.
fn store_for<H: MerkleHasher>(leaves: &[Hash]) -> HashMap<NodeId, Hash> {
    let mut store = HashMap::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let needed = merkle::completed_by_append(i as u64);
        assert!(needed.iter().all(|id| store.contains_key(id)));
        for (id, hash) in merkle::nodes_after_append::<H>(i as u64, *leaf, &store).unwrap() {
            assert!(store.insert(id, hash).is_none(), "{id} written twice");
        }
    }
    store
}

fn range_usize(r: &Range<u64>) -> Range<usize> {
    r.start as usize..r.end as usize
}

#[test]
fn rfc6962_inclusion_vectors() {
    let files = json_files(&vectors_dir().join("inclusion"));
    let reference = reference_leaves();
    let (mut passed, mut rejected, mut by_type, mut cross_checked) = (0, 0, 0, 0);
    for path in &files {
        let v: InclusionVector = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        let name = format!("{} ({})", path.display(), v.desc);
        let (root, leaf, proof) = (
            as_hash(&b64(&v.root)),
            as_hash(&b64(&v.leaf_hash)),
            proof_hashes(&v.proof),
        );
        let (Some(root), Some(leaf), Some(proof)) = (root, leaf, proof) else {
            assert!(v.want_err, "{name}: positive vector has a non-32-byte hash");
            by_type += 1;
            continue;
        };
        let result =
            merkle::verify_inclusion::<Sha256Hasher>(v.leaf_idx, v.tree_size, &leaf, &proof, &root);
        if v.want_err {
            assert!(result.is_err(), "{name}: corrupted proof verified");
            rejected += 1;
        } else {
            assert_eq!(result, Ok(()), "{name}");
            passed += 1;
        }
        // Generation side: the same proof must come out of our own path + node store.
        if is_numbered_happy_path(path) {
            let size = v.tree_size as usize;
            let leaves = &reference[..size];
            assert_eq!(leaf, reference[v.leaf_idx as usize], "{name}");
            assert_eq!(
                merkle::root_from_leaves::<Sha256Hasher>(leaves),
                root,
                "{name}"
            );
            let store = store_for::<Sha256Hasher>(leaves);
            let ranges = merkle::inclusion_path(v.leaf_idx, v.tree_size).unwrap();
            let built = merkle::build_proof::<Sha256Hasher>(&ranges, &store).unwrap();
            assert_eq!(built, proof, "{name}: generated proof differs");
            cross_checked += 1;
        }
    }
    println!(
        "inclusion vectors: {} files, {passed} positive verified, {rejected} negative rejected by the \
         verifier, {by_type} negative rejected as non-32-byte hashes, {cross_checked} proofs regenerated",
        files.len()
    );
    assert!(passed > 0 && rejected > 0);
    assert_eq!(passed + rejected + by_type, files.len());
    assert!(cross_checked >= 4);
}

#[test]
fn rfc6962_consistency_vectors() {
    let files = json_files(&vectors_dir().join("consistency"));
    let reference = reference_leaves();
    let (mut passed, mut rejected, mut by_type, mut cross_checked) = (0, 0, 0, 0);
    for path in &files {
        let v: ConsistencyVector =
            serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        let name = format!("{} ({})", path.display(), v.desc);
        let root1 = root_or_stand_in(&b64(&v.root1));
        let root2 = root_or_stand_in(&b64(&v.root2));
        let Some(proof) = proof_hashes(&v.proof) else {
            assert!(
                v.want_err,
                "{name}: positive vector has a non-32-byte proof hash"
            );
            by_type += 1;
            continue;
        };
        let result =
            merkle::verify_consistency::<Sha256Hasher>(v.size1, v.size2, &proof, &root1, &root2);
        if v.want_err {
            assert!(result.is_err(), "{name}: bad consistency proof verified");
            rejected += 1;
        } else {
            assert_eq!(result, Ok(()), "{name}");
            passed += 1;
        }
        if is_numbered_happy_path(path) {
            let leaves = &reference[..v.size2 as usize];
            assert_eq!(
                merkle::root_from_leaves::<Sha256Hasher>(&reference[..v.size1 as usize]),
                root1,
                "{name}"
            );
            assert_eq!(
                merkle::root_from_leaves::<Sha256Hasher>(leaves),
                root2,
                "{name}"
            );
            let store = store_for::<Sha256Hasher>(leaves);
            let ranges = merkle::consistency_path(v.size1, v.size2).unwrap();
            let built = merkle::build_proof::<Sha256Hasher>(&ranges, &store).unwrap();
            assert_eq!(built, proof, "{name}: generated proof differs");
            cross_checked += 1;
        }
    }
    println!(
        "consistency vectors: {} files, {passed} positive verified, {rejected} negative rejected by the \
         verifier, {by_type} negative rejected as non-32-byte hashes, {cross_checked} proofs regenerated",
        files.len()
    );
    assert!(passed > 0 && rejected > 0);
    assert_eq!(passed + rejected + by_type, files.len());
    assert!(cross_checked >= 4);
}

#[test]
fn hashers_apply_the_rfc_prefixes() {
    let data = b"some leaf";
    let mut leaf_input = vec![0x00];
    leaf_input.extend_from_slice(data);
    let (l, r) = ([1u8; 32], [2u8; 32]);
    let mut node_input = vec![0x01];
    node_input.extend_from_slice(&l);
    node_input.extend_from_slice(&r);

    assert_eq!(
        Sha256Hasher::leaf(data),
        <[u8; 32]>::from(Sha256::digest(&leaf_input))
    );
    assert_eq!(
        Sha256Hasher::node(&l, &r),
        <[u8; 32]>::from(Sha256::digest(&node_input))
    );
    // SHA-256 of the empty string (FIPS 180-2 / RFC 6962 empty tree).
    assert_eq!(
        hex::encode(Sha256Hasher::empty()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        Blake3Hasher::leaf(data),
        *blake3::hash(&leaf_input).as_bytes()
    );
    assert_eq!(
        Blake3Hasher::node(&l, &r),
        *blake3::hash(&node_input).as_bytes()
    );
    // BLAKE3 of the empty input (BLAKE3 specification test vectors).
    assert_eq!(
        hex::encode(Blake3Hasher::empty()),
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );
    // Leaf and node domains differ even for the same 64 bytes.
    let mut both = l.to_vec();
    both.extend_from_slice(&r);
    assert_ne!(Sha256Hasher::leaf(&both), Sha256Hasher::node(&l, &r));
    assert_ne!(Blake3Hasher::leaf(&both), Blake3Hasher::node(&l, &r));
}

fn random_leaves<H: MerkleHasher>(rng: &mut StdRng, n: usize) -> Vec<Hash> {
    (0..n)
        .map(|_| {
            let len = rng.gen_range(0..48);
            let data: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            H::leaf(&data)
        })
        .collect()
}

fn flip(h: &Hash, byte: usize) -> Hash {
    let mut out = *h;
    out[byte % 32] ^= 0x01;
    out
}

fn property_suite<H: MerkleHasher>(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let all = random_leaves::<H>(&mut rng, 70);
    let store = store_for::<H>(&all);
    // Every stored node is the MTH of exactly the leaves it names.
    for (id, hash) in &store {
        let r = id.leaves().unwrap();
        assert_eq!(
            *hash,
            merkle::root_from_leaves::<H>(&all[range_usize(&r)]),
            "{id}"
        );
    }
    // root_from_leaves of the empty tree.
    assert_eq!(merkle::root_from_leaves::<H>(&[]), H::empty());

    for n in 1..=70u64 {
        let leaves = &all[..n as usize];
        let root = merkle::root_from_leaves::<H>(leaves);
        // The root itself is range_hash over [0, n).
        assert_eq!(merkle::range_hash::<H>(0..n, &store), Ok(root));

        for m in 0..n {
            let ranges = merkle::inclusion_path(m, n).unwrap();
            let ids = merkle::nodes_for(&ranges);
            let needed: HashMap<NodeId, Hash> = ids.iter().map(|id| (*id, store[id])).collect();
            // The proof can be built from exactly the nodes `nodes_for` names.
            let proof = merkle::build_proof::<H>(&ranges, &needed).unwrap();
            for (r, p) in ranges.iter().zip(&proof) {
                assert_eq!(*p, merkle::root_from_leaves::<H>(&all[range_usize(r)]));
            }
            let leaf = leaves[m as usize];
            assert_eq!(
                merkle::verify_inclusion::<H>(m, n, &leaf, &proof, &root),
                Ok(())
            );

            // Tampering: every proof element, the leaf, the root, the index, the size.
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i], i + m as usize);
                assert!(merkle::verify_inclusion::<H>(m, n, &leaf, &bad, &root).is_err());
            }
            assert!(merkle::verify_inclusion::<H>(m, n, &flip(&leaf, 3), &proof, &root).is_err());
            assert!(merkle::verify_inclusion::<H>(m, n, &leaf, &proof, &flip(&root, 7)).is_err());
            if m + 1 < n {
                let other = leaves[m as usize + 1];
                assert!(merkle::verify_inclusion::<H>(m + 1, n, &other, &proof, &root).is_err());
            }
            // (An inclusion proof does not commit to the size by itself: the proof for
            // (0, 3) also verifies as (0, 4) against the same root. The signed checkpoint
            // binds size and root together.)
            let mut longer = proof.clone();
            longer.push(root);
            assert!(merkle::verify_inclusion::<H>(m, n, &leaf, &longer, &root).is_err());
        }

        for m in 1..=n {
            let old_root = merkle::root_from_leaves::<H>(&leaves[..m as usize]);
            let ranges = merkle::consistency_path(m, n).unwrap();
            let proof = merkle::build_proof::<H>(&ranges, &store).unwrap();
            assert_eq!(
                merkle::verify_consistency::<H>(m, n, &proof, &old_root, &root),
                Ok(()),
                "consistency {m} -> {n}"
            );
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i], i);
                assert!(merkle::verify_consistency::<H>(m, n, &bad, &old_root, &root).is_err());
            }
            if m < n {
                let bad_old = flip(&old_root, 1);
                assert!(merkle::verify_consistency::<H>(m, n, &proof, &bad_old, &root).is_err());
                let bad_new = flip(&root, 2);
                assert!(
                    merkle::verify_consistency::<H>(m, n, &proof, &old_root, &bad_new).is_err()
                );
                assert!(merkle::verify_consistency::<H>(m, n, &[], &old_root, &root).is_err());
                assert!(
                    merkle::verify_consistency::<H>(m, n, &proof[1..], &old_root, &root).is_err()
                );
            }
        }
    }
}

#[test]
fn proofs_from_stored_nodes_verify_sha256() {
    property_suite::<Sha256Hasher>(1);
}

#[test]
fn proofs_from_stored_nodes_verify_blake3() {
    property_suite::<Blake3Hasher>(2);
}

fn compact_range_suite<H: MerkleHasher>(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let all = random_leaves::<H>(&mut rng, 130);
    let store = store_for::<H>(&all);
    let mut cr = CompactRange::<H>::new();
    assert_eq!(cr.root(), H::empty());
    for (i, leaf) in all.iter().enumerate() {
        cr.append(*leaf);
        let size = i as u64 + 1;
        assert_eq!(cr.size(), size);
        assert_eq!(
            cr.root(),
            merkle::root_from_leaves::<H>(&all[..=i]),
            "size {size}"
        );
        let expected: Vec<Hash> = merkle::complete_subtrees(0..size)
            .iter()
            .map(|id| store[id])
            .collect();
        assert_eq!(cr.frontier(), expected.as_slice(), "frontier at {size}");

        // Resuming from the stored frontier continues identically.
        let mut resumed = CompactRange::<H>::from_parts(size, cr.frontier().to_vec()).unwrap();
        assert_eq!(resumed.root(), cr.root());
        if let Some(next) = all.get(i + 1) {
            resumed.append(*next);
            assert_eq!(
                resumed.root(),
                merkle::root_from_leaves::<H>(&all[..=i + 1])
            );
        }
    }
}

#[test]
fn compact_range_matches_reference_root_at_every_size() {
    compact_range_suite::<Sha256Hasher>(3);
    compact_range_suite::<Blake3Hasher>(4);
}

#[test]
fn compact_range_rejects_a_frontier_of_the_wrong_length() {
    // Size 6 = 0b110 needs two subtrees (4 and 2 leaves).
    assert_eq!(
        CompactRange::<Sha256Hasher>::from_parts(6, vec![[0; 32]]),
        Err(MerkleError::FrontierMismatch {
            size: 6,
            expected: 2,
            got: 1
        })
    );
    assert!(CompactRange::<Sha256Hasher>::from_parts(0, vec![]).is_ok());
}

#[test]
fn complete_subtrees_tile_ranges_maximally() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut ranges: Vec<Range<u64>> = (0..2000)
        .map(|_| {
            let a = rng.gen_range(0..5000u64);
            a..a + rng.gen_range(0..3000u64)
        })
        .collect();
    ranges.push(0..u64::MAX);
    ranges.push(u64::MAX - 5..u64::MAX);
    for range in ranges {
        let ids = merkle::complete_subtrees(range.clone());
        let mut cursor = range.start;
        for id in &ids {
            let r = id.leaves().unwrap();
            assert_eq!(r.start, cursor, "{range:?}: gap or overlap at {id}");
            assert!(r.end <= range.end);
            // Maximal: a left child's parent starts at the same leaf, so it must not fit
            // (a right child's parent starts before this node, outside what is left).
            if id.index.is_multiple_of(2) {
                let parent = NodeId::new(id.level + 1, id.index >> 1);
                if let Some(p) = parent.leaves() {
                    assert!(p.end > range.end, "{range:?}: {id} not maximal");
                }
            }
            cursor = r.end;
        }
        assert_eq!(cursor, range.end, "{range:?} not covered");
    }
    assert!(merkle::complete_subtrees(7..7).is_empty());
}

#[test]
fn completed_by_append_names_left_siblings() {
    let ids = |v: &[(u8, u64)]| {
        v.iter()
            .map(|&(l, i)| NodeId::new(l, i))
            .collect::<Vec<_>>()
    };
    // Leaf 0 and 4 are left children: nothing completes above them.
    assert_eq!(merkle::completed_by_append(0), vec![]);
    assert_eq!(merkle::completed_by_append(4), vec![]);
    // Leaf 1 completes [0,2) using leaf 0.
    assert_eq!(merkle::completed_by_append(1), ids(&[(0, 0)]));
    // Leaf 7 completes [6,8), [4,8), [0,8).
    assert_eq!(
        merkle::completed_by_append(7),
        ids(&[(0, 6), (1, 2), (2, 0)])
    );
    // Leaf 11 = 0b1011 completes [10,12) and [8,12).
    assert_eq!(merkle::completed_by_append(11), ids(&[(0, 10), (1, 4)]));
    assert_eq!(merkle::completed_by_append(u64::MAX).len(), 64);
}

#[test]
fn errors_are_reported() {
    assert_eq!(
        merkle::inclusion_path(5, 5),
        Err(MerkleError::IndexOutOfRange { index: 5, size: 5 })
    );
    assert_eq!(
        merkle::consistency_path(3, 2),
        Err(MerkleError::SizeOutOfOrder { size1: 3, size2: 2 })
    );
    assert_eq!(merkle::consistency_path(0, 9), Ok(vec![]));
    assert_eq!(merkle::consistency_path(9, 9), Ok(vec![]));
    let h = [9u8; 32];
    assert_eq!(
        merkle::verify_consistency::<Sha256Hasher>(0, 3, &[], &h, &h),
        Err(MerkleError::EmptyTree)
    );
    assert_eq!(
        merkle::verify_consistency::<Sha256Hasher>(3, 3, &[h], &h, &h),
        Err(MerkleError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
    assert_eq!(
        merkle::verify_inclusion::<Sha256Hasher>(0, 4, &h, &[h], &h),
        Err(MerkleError::WrongProofLength {
            expected: 2,
            got: 1
        })
    );
    let empty = HashMap::new();
    assert_eq!(
        merkle::range_hash::<Sha256Hasher>(0..3, &empty),
        Err(MerkleError::MissingNode(NodeId::new(0, 2)))
    );
    assert_eq!(
        merkle::nodes_after_append::<Sha256Hasher>(1, h, &empty),
        Err(MerkleError::MissingNode(NodeId::new(0, 0)))
    );
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 5..2;
    assert_eq!(
        merkle::range_hash::<Sha256Hasher>(backwards, &empty),
        Err(MerkleError::InvalidRange { start: 5, end: 2 })
    );
    assert_eq!(
        merkle::range_hash::<Sha256Hasher>(4..4, &empty),
        Ok(Sha256Hasher::empty())
    );
}

#[test]
fn paths_work_for_huge_trees() {
    // No overflow at the top of the u64 range; lengths follow ceil(log2(size)).
    let size = u64::MAX;
    let path = merkle::inclusion_path(size - 1, size).unwrap();
    assert_eq!(path.len(), 63);
    let path = merkle::inclusion_path(0, size).unwrap();
    assert_eq!(path.len(), 64);
    let cons = merkle::consistency_path(1 << 40, size).unwrap();
    assert!(!cons.is_empty());
    assert!(merkle::nodes_for(&cons).len() < 64 * 64);
}
