//! `MerkleTree` against the RFC 6962 / RFC 9162 recursive definitions, and the verifiers against
//! wrong, malformed and extreme inputs.

use custos_crypto::Hash;
use custos_ledger::merkle::{
    MerkleTree, ProofError, leaf_hash, node_hash, root_of, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

/// The largest tree checked exhaustively.
const EXHAUSTIVE: usize = 70;

fn leaves(n: usize) -> Vec<Hash> {
    (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn tree_of(leaves: &[Hash]) -> MerkleTree {
    let mut tree = MerkleTree::new();
    for leaf in leaves {
        tree.push(*leaf);
    }
    tree
}

/// The largest power of two below `n` (n >= 2): where RFC 6962 splits a tree.
fn split(n: usize) -> usize {
    1 << (n - 1).ilog2()
}

/// `PATH(m, D[n])` of RFC 9162 section 2.1.3.1, verbatim.
fn rfc_path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() <= 1 {
        return Vec::new();
    }
    let k = split(d.len());
    let (mut path, sibling) = if m < k {
        (rfc_path(m, &d[..k]), root_of(&d[k..]))
    } else {
        (rfc_path(m - k, &d[k..]), root_of(&d[..k]))
    };
    path.push(sibling);
    path
}

/// `SUBPROOF(m, D[n], b)` of RFC 9162 section 2.1.4.1, verbatim.
fn rfc_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    if m == d.len() {
        return if b { Vec::new() } else { vec![root_of(d)] };
    }
    let k = split(d.len());
    let (mut proof, sibling) = if m <= k {
        (rfc_subproof(m, &d[..k], b), root_of(&d[k..]))
    } else {
        (rfc_subproof(m - k, &d[k..], false), root_of(&d[..k]))
    };
    proof.push(sibling);
    proof
}

fn flip_bit(hash: &Hash, bit: usize) -> Hash {
    let mut flipped = *hash;
    flipped.0[bit / 8] ^= 1 << (bit % 8);
    flipped
}

/// Every proof one hash shorter or longer than `proof`.
fn truncations_and_extensions(proof: &[Hash]) -> Vec<Vec<Hash>> {
    let extra = leaf_hash(b"extra");
    let mut variants = vec![[proof, &[extra]].concat(), [&[extra], proof].concat()];
    if let Some((_, tail)) = proof.split_first() {
        variants.push(tail.to_vec());
        variants.push(proof[..proof.len() - 1].to_vec());
    }
    variants
}

#[test]
fn roots_at_every_size_up_to_70_match_the_recursive_definition() {
    let leaves = leaves(EXHAUSTIVE);
    let full = tree_of(&leaves);
    let mut growing = MerkleTree::new();
    assert!(growing.is_empty());
    for size in 0..=EXHAUSTIVE {
        let want = root_of(&leaves[..size]);
        assert_eq!(full.root_at(size as u64), Ok(want), "root_at({size})");
        assert_eq!(growing.root(), want, "root() after {size} pushes");
        assert_eq!(growing.len(), size as u64);
        if let Some(leaf) = leaves.get(size) {
            growing.push(*leaf);
        }
    }
    assert_eq!(
        full.root_at(EXHAUSTIVE as u64 + 1),
        Err(ProofError::SizeOutOfRange { size: 71, len: 70 })
    );
    assert_eq!(full.leaf(3), Some(leaves[3]));
    assert_eq!(full.leaf(70), None);
}

#[test]
fn every_inclusion_proof_up_to_size_70_is_the_rfc_path_and_verifies() {
    let leaves = leaves(EXHAUSTIVE);
    let tree = tree_of(&leaves);
    for size in 1..=EXHAUSTIVE {
        let root = root_of(&leaves[..size]);
        for index in 0..size {
            let proof = tree.inclusion_proof(index as u64, size as u64).unwrap();
            assert_eq!(
                proof,
                rfc_path(index, &leaves[..size]),
                "proof of {index} in {size}"
            );
            assert_eq!(
                verify_inclusion(&leaves[index], index as u64, size as u64, &proof, &root),
                Ok(()),
                "proof of {index} in {size}"
            );
        }
    }
}

#[test]
fn every_consistency_proof_up_to_size_70_is_the_rfc_proof_and_verifies() {
    let leaves = leaves(EXHAUSTIVE);
    let tree = tree_of(&leaves);
    for size2 in 1..=EXHAUSTIVE {
        let root2 = root_of(&leaves[..size2]);
        for size1 in 1..=size2 {
            let root1 = root_of(&leaves[..size1]);
            let proof = tree.consistency_proof(size1 as u64, size2 as u64).unwrap();
            assert_eq!(
                proof,
                rfc_subproof(size1, &leaves[..size2], true),
                "{size1} -> {size2}"
            );
            assert_eq!(
                verify_consistency(size1 as u64, size2 as u64, &root1, &root2, &proof),
                Ok(()),
                "{size1} -> {size2}"
            );
        }
    }
}

#[test]
fn consistency_from_the_empty_tree_is_refused_by_tree_and_verifier_alike() {
    let tree = tree_of(&leaves(4));
    assert_eq!(
        tree.consistency_proof(0, 4),
        Err(ProofError::EmptyFirstTree)
    );
    assert_eq!(
        tree.consistency_proof(0, 0),
        Err(ProofError::EmptyFirstTree)
    );
    let empty = custos_ledger::merkle::empty_root();
    assert_eq!(
        verify_consistency(0, 0, &empty, &empty, &[]),
        Err(ProofError::EmptyFirstTree)
    );
    assert_eq!(
        verify_consistency(0, 4, &empty, &tree.root(), &[]),
        Err(ProofError::EmptyFirstTree)
    );
}

#[test]
fn inclusion_proofs_are_refused_for_a_wrong_leaf_index_or_root() {
    // A wrong size alone is not always caught, nor can it be: the size only picks which side
    // each proof hash goes, and e.g. leaf 0's proof in a tree of 3 hashes exactly like one in a
    // tree of 4. The root is what binds the size, so callers take both from a signed header.
    let leaves = leaves(EXHAUSTIVE + 1);
    let tree = tree_of(&leaves);
    for size in 1..=EXHAUSTIVE {
        let root = root_of(&leaves[..size]);
        let (n, other_root) = (size as u64, root_of(&leaves[..size + 1]));
        for (index, leaf) in leaves[..size].iter().enumerate() {
            let i = index as u64;
            let proof = tree.inclusion_proof(i, n).unwrap();
            let wrong_leaf = leaf_hash(b"not in the tree");
            assert!(matches!(
                verify_inclusion(&wrong_leaf, i, n, &proof, &root),
                Err(ProofError::RootMismatch { .. })
            ));
            assert!(verify_inclusion(leaf, i, n, &proof, &other_root).is_err());
            for other in (0..size).filter(|&other| other != index) {
                assert!(
                    verify_inclusion(leaf, other as u64, n, &proof, &root).is_err(),
                    "proof of {index} in {size} passed for index {other}"
                );
            }
        }
    }
}

#[test]
fn consistency_proofs_are_refused_for_a_wrong_root() {
    // As for inclusion, a wrong size alone may hash the same way (1 -> 3 and 1 -> 4 do).
    let leaves = leaves(EXHAUSTIVE + 1);
    let tree = tree_of(&leaves);
    let roots: Vec<Hash> = (0..=EXHAUSTIVE + 1)
        .map(|n| root_of(&leaves[..n]))
        .collect();
    for size2 in 1..=EXHAUSTIVE {
        for size1 in 1..=size2 {
            let (m, n) = (size1 as u64, size2 as u64);
            let (root1, root2) = (&roots[size1], &roots[size2]);
            let proof = tree.consistency_proof(m, n).unwrap();
            let context = format!("{size1} -> {size2}");
            let stranger = leaf_hash(b"not a root");
            assert!(
                verify_consistency(m, n, &stranger, root2, &proof).is_err(),
                "{context}"
            );
            assert!(
                verify_consistency(m, n, root1, &stranger, &proof).is_err(),
                "{context}"
            );
            assert!(
                verify_consistency(m, n, &roots[size1 - 1], root2, &proof).is_err(),
                "{context}"
            );
            assert!(
                verify_consistency(m, n, root1, &roots[size2 + 1], &proof).is_err(),
                "{context}"
            );
            if size1 != size2 {
                assert!(
                    verify_consistency(m, n, root2, root1, &proof).is_err(),
                    "{context}"
                );
            }
        }
    }
}

#[test]
fn proofs_for_a_past_size_are_unchanged_by_later_pushes() {
    let leaves = leaves(40);
    let small = tree_of(&leaves[..23]);
    let large = tree_of(&leaves);
    assert_eq!(large.root_at(23), Ok(small.root()));
    assert_eq!(large.inclusion_proof(17, 23), small.inclusion_proof(17, 23));
    assert_eq!(
        large.consistency_proof(9, 23),
        small.consistency_proof(9, 23)
    );
}

#[test]
fn out_of_range_indexes_and_sizes_are_errors() {
    let leaves = leaves(5);
    let tree = tree_of(&leaves);
    let root = tree.root();
    assert_eq!(
        verify_inclusion(&leaves[0], 5, 5, &[], &root),
        Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
    );
    assert_eq!(
        verify_inclusion(&leaves[0], 0, 0, &[], &root),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        verify_consistency(5, 4, &root, &root, &[]),
        Err(ProofError::SizeOrder { size1: 5, size2: 4 })
    );
    assert_eq!(
        verify_consistency(5, 5, &root, &root, &[root]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
    assert_eq!(
        verify_consistency(3, 5, &tree.root_at(3).unwrap(), &root, &[]),
        Err(ProofError::WrongProofLength {
            expected: 4,
            got: 0
        })
    );
    assert_eq!(
        tree.inclusion_proof(5, 5),
        Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
    );
    assert_eq!(
        tree.inclusion_proof(0, 6),
        Err(ProofError::SizeOutOfRange { size: 6, len: 5 })
    );
    assert_eq!(
        tree.consistency_proof(3, 2),
        Err(ProofError::SizeOrder { size1: 3, size2: 2 })
    );
    assert_eq!(
        tree.consistency_proof(3, 6),
        Err(ProofError::SizeOutOfRange { size: 6, len: 5 })
    );
    assert_eq!(
        MerkleTree::new().inclusion_proof(0, 0),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
}

#[test]
fn u64_max_sizes_are_errors_not_panics() {
    let tree = tree_of(&leaves(3));
    let h = leaf_hash(b"h");
    let max = u64::MAX;
    assert_eq!(
        tree.root_at(max),
        Err(ProofError::SizeOutOfRange { size: max, len: 3 })
    );
    assert_eq!(
        tree.inclusion_proof(0, max),
        Err(ProofError::SizeOutOfRange { size: max, len: 3 })
    );
    assert_eq!(
        tree.inclusion_proof(max, 3),
        Err(ProofError::IndexOutOfRange {
            index: max,
            size: 3
        })
    );
    assert_eq!(
        tree.consistency_proof(1, max),
        Err(ProofError::SizeOutOfRange { size: max, len: 3 })
    );
    assert_eq!(
        tree.consistency_proof(max, 1),
        Err(ProofError::SizeOrder {
            size1: max,
            size2: 1
        })
    );
    assert_eq!(tree.leaf(max), None);
    assert_eq!(
        verify_inclusion(&h, max, max, &[], &h),
        Err(ProofError::IndexOutOfRange {
            index: max,
            size: max
        })
    );
    assert_eq!(
        verify_inclusion(&h, 0, max, &[], &h),
        Err(ProofError::WrongProofLength {
            expected: 64,
            got: 0
        })
    );
    assert_eq!(verify_consistency(max, max, &h, &h, &[]), Ok(()));
    assert_eq!(
        verify_consistency(max, max - 1, &h, &h, &[]),
        Err(ProofError::SizeOrder {
            size1: max,
            size2: max - 1
        })
    );
    // Proofs of the right length for the largest trees run to the end and fail on the roots.
    assert!(matches!(
        verify_inclusion(&h, 0, max, &[h; 64], &h),
        Err(ProofError::RootMismatch { .. })
    ));
    assert!(matches!(
        verify_inclusion(&h, max - 1, max, &[h; 63], &h),
        Err(ProofError::RootMismatch { .. })
    ));
    assert!(matches!(
        verify_consistency(max - 1, max, &h, &h, &[h; 64]),
        Err(ProofError::FirstRootMismatch { .. })
    ));
    assert!(verify_consistency(1, max, &h, &h, &[h; 64]).is_err());
}

#[test]
fn no_size_index_or_proof_length_near_the_limits_panics() {
    let h = leaf_hash(b"h");
    let edges: Vec<u64> = [0, 1, 2, 3, 1 << 32, 1 << 63, (1 << 63) + 1]
        .into_iter()
        .chain((0..4).map(|d| u64::MAX - d))
        .collect();
    let proofs: Vec<Vec<Hash>> = (0..=66).map(|n| vec![h; n]).collect();
    for &a in &edges {
        for &b in &edges {
            for proof in &proofs {
                // A wrong proof is refused; what matters here is that nothing panics.
                let _ = verify_inclusion(&h, a, b, proof, &h);
                let _ = verify_consistency(a, b, &h, &node_hash(&h, &h), proof);
            }
        }
    }
}

/// A tree of 1 to 299 leaves and a past size within it.
fn tree_and_size() -> impl Strategy<Value = (Vec<Hash>, u64)> {
    (1usize..300).prop_flat_map(|len| (Just(leaves(len)), 1..=len as u64))
}

proptest! {
    #[test]
    fn generated_inclusion_proofs_verify_and_any_altered_proof_is_rejected(
        (leaves, size, index) in tree_and_size()
            .prop_flat_map(|(leaves, size)| (Just(leaves), Just(size), 0..size)),
        leaf_bit in 0usize..256,
    ) {
        let tree = tree_of(&leaves);
        let root = tree.root_at(size).unwrap();
        let leaf = leaves[index as usize];
        let proof = tree.inclusion_proof(index, size).unwrap();
        prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));

        for (i, bit) in (0..proof.len()).flat_map(|i| (0..256).map(move |bit| (i, bit))) {
            let mut bad = proof.clone();
            bad[i] = flip_bit(&bad[i], bit);
            prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err(), "bit {} of {}", bit, i);
        }
        for bad in truncations_and_extensions(&proof) {
            let result = verify_inclusion(&leaf, index, size, &bad, &root);
            prop_assert!(
                matches!(result, Err(ProofError::WrongProofLength { .. })),
                "a proof of {} hashes gave {:?}",
                bad.len(),
                result
            );
        }
        let bad_leaf = flip_bit(&leaf, leaf_bit);
        prop_assert!(verify_inclusion(&bad_leaf, index, size, &proof, &root).is_err());
        let bad_root = flip_bit(&root, leaf_bit);
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &bad_root).is_err());
    }

    #[test]
    fn generated_consistency_proofs_verify_and_any_altered_proof_is_rejected(
        (leaves, size2, size1) in tree_and_size()
            .prop_flat_map(|(leaves, size2)| (Just(leaves), Just(size2), 1..=size2)),
        root_bit in 0usize..256,
    ) {
        let tree = tree_of(&leaves);
        let root1 = tree.root_at(size1).unwrap();
        let root2 = tree.root_at(size2).unwrap();
        let proof = tree.consistency_proof(size1, size2).unwrap();
        prop_assert_eq!(verify_consistency(size1, size2, &root1, &root2, &proof), Ok(()));

        for (i, bit) in (0..proof.len()).flat_map(|i| (0..256).map(move |bit| (i, bit))) {
            let mut bad = proof.clone();
            bad[i] = flip_bit(&bad[i], bit);
            prop_assert!(verify_consistency(size1, size2, &root1, &root2, &bad).is_err(), "bit {} of {}", bit, i);
        }
        for bad in truncations_and_extensions(&proof) {
            let result = verify_consistency(size1, size2, &root1, &root2, &bad);
            prop_assert!(
                matches!(result, Err(ProofError::WrongProofLength { .. })),
                "a proof of {} hashes gave {:?}",
                bad.len(),
                result
            );
        }
        let bad_root1 = flip_bit(&root1, root_bit);
        prop_assert!(verify_consistency(size1, size2, &bad_root1, &root2, &proof).is_err());
        let bad_root2 = flip_bit(&root2, root_bit);
        prop_assert!(verify_consistency(size1, size2, &root1, &bad_root2, &proof).is_err());
    }
}
