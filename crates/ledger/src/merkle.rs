//! RFC 6962 Merkle trees: hashing, inclusion and consistency proofs, and an append-only tree.
//!
//! Hashing is RFC 6962 with SHA-256: a leaf is `SHA-256(0x00 || data)`, an inner node is
//! `SHA-256(0x01 || left || right)` and the empty tree's root is `SHA-256("")`. The distinct
//! prefixes keep a leaf from ever being passed off as an inner node (second-preimage attacks).
//!
//! Proofs and their verification follow RFC 9162 section 2.1, which restates RFC 6962's
//! algorithms precisely: an inclusion proof is the audit path of section 2.1.3, a consistency
//! proof the one of section 2.1.4. Verification checks the exact proof length for the given
//! sizes before hashing, so a proof with missing or extra hashes is refused with
//! [`ProofError::WrongProofLength`] rather than by an unexplained root mismatch.
//!
//! [`MerkleTree`] keeps every leaf hash and the root of every complete, aligned power-of-two
//! subtree (about two hashes per leaf), so the root of, and proofs for, any past size cost
//! O(log n) hash computations.

use std::fmt;

use custos_crypto::{Hash, sha256, sha256_parts};

/// Domain-separation prefix of leaf hashes (RFC 6962 section 2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of inner-node hashes (RFC 6962 section 2.1).
const NODE_PREFIX: u8 = 0x01;

/// The RFC 6962 hash of a leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256_parts(&[&[LEAF_PREFIX], data])
}

/// The RFC 6962 hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256_parts(&[&[NODE_PREFIX], left.as_bytes(), right.as_bytes()])
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    sha256(b"")
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("expected a leaf index below the tree size {size}, got {index}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The size of the tree.
        size: u64,
    },
    /// A tree size beyond the leaves the tree holds.
    #[error("expected a tree size of at most {len}, got {size}")]
    SizeOutOfRange {
        /// The size asked for.
        size: u64,
        /// The number of leaves the tree holds.
        len: u64,
    },
    /// A consistency proof asked to go from a larger tree to a smaller one.
    #[error("expected size1 <= size2, got size1 {size1} > size2 {size2}")]
    SizeOrder {
        /// The size of the first (older) tree.
        size1: u64,
        /// The size of the second (newer) tree.
        size2: u64,
    },
    /// A consistency proof from the empty tree, which proves nothing (RFC 9162 defines
    /// consistency proofs only for `0 < size1`).
    #[error("expected size1 > 0, got 0: every tree extends the empty tree")]
    EmptyFirstTree,
    /// The proof has the wrong number of hashes for the sizes (and index) given.
    #[error("expected a proof of {expected} hashes, got {got}")]
    WrongProofLength {
        /// The number of hashes the sizes call for.
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
    /// The proof does not lead to the given root (of the second tree, for consistency).
    #[error("expected root {expected}, the proof leads to {computed}")]
    RootMismatch {
        /// The root given.
        expected: Hash,
        /// The root the proof leads to.
        computed: Hash,
    },
    /// A consistency proof does not lead back to the first tree's root.
    #[error("expected first root {expected}, the proof leads to {computed}")]
    FirstRootMismatch {
        /// The first tree's root given.
        expected: Hash,
        /// The first tree's root the proof leads to.
        computed: Hash,
    },
}

/// Number of bits needed to write `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// `x >> shift`, but 0 rather than an overflow when `shift` is 64.
fn shr(x: u64, shift: u32) -> u64 {
    x.checked_shr(shift).unwrap_or(0)
}

/// The length of the audit path of leaf `index` in a tree of `size` leaves (`index < size`).
///
/// The path has one hash for each level below the point where the paths to `index` and to the
/// last leaf diverge ("inner"), and above it one left sibling for each set bit left of that point
/// ("border").
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = bit_len(index ^ (size - 1));
    let border = shr(index, inner).count_ones();
    (inner + border) as usize
}

/// The length of the consistency proof between sizes `0 < size1 < size2`.
///
/// It is the audit path of the last complete subtree of the first tree inside the second,
/// preceded by that subtree's root unless it is the whole first tree (`size1` a power of two:
/// the verifier holds that root already).
fn consistency_proof_len(size1: u64, size2: u64) -> usize {
    let shift = size1.trailing_zeros();
    // `fork > shift` because size1 - 1 ends in `shift` one bits and size2 - 1 is larger.
    let fork = bit_len((size1 - 1) ^ (size2 - 1));
    let border = shr(size1 - 1, fork).count_ones();
    let seed = usize::from(!size1.is_power_of_two());
    seed + (fork - shift + border) as usize
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves whose root is `root`.
///
/// `proof` is the audit path, deepest hash first (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    let wrong_length = ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // RFC 9162 section 2.1.3.2, step by step: `fnode` walks up from the leaf, `snode` from the
    // last leaf; where they meet, the path runs along the right border and every sibling is
    // on the left.
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(ProofError::RootMismatch {
            expected: *root,
            computed: r,
        });
    }
    Ok(())
}

/// Verifies that the tree of `size1` leaves with `root1` is a prefix of the tree of `size2`
/// leaves with `root2`.
///
/// Equal sizes need an empty proof and equal roots. `size1 == 0` is refused
/// ([`ProofError::EmptyFirstTree`]): every tree extends the empty tree, so such a proof would
/// say nothing (as in RFC 9162 and the transparency-dev reference verifier).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizeOrder { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::EmptyFirstTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if root1 != root2 {
            return Err(ProofError::RootMismatch {
                expected: *root2,
                computed: *root1,
            });
        }
        return Ok(());
    }
    let expected = consistency_proof_len(size1, size2);
    let wrong_length = ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // RFC 9162 section 2.1.4.2. When size1 is a power of two the proof omits the first tree's
    // root (step 2 prepends it); otherwise it starts with the last complete subtree of size1.
    let (seed, rest) = if size1.is_power_of_two() {
        (*root1, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(wrong_length),
        }
    };
    let mut fnode = size1 - 1;
    let mut snode = size2 - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = seed;
    let mut sr = seed;
    for c in rest {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(wrong_length);
    }
    if fr != *root1 {
        return Err(ProofError::FirstRootMismatch {
            expected: *root1,
            computed: fr,
        });
    }
    if sr != *root2 {
        return Err(ProofError::RootMismatch {
            expected: *root2,
            computed: sr,
        });
    }
    Ok(())
}

/// Root of a tree given by its leaf hashes (recursive definition, used by tests and small trees).
///
/// This is RFC 6962's `MTH` verbatim: split at the largest power of two below the size.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            let split = 1usize << (leaves.len() - 1).ilog2();
            let (left, right) = leaves.split_at(split);
            node_hash(&root_of(left), &root_of(right))
        }
    }
}

/// An append-only Merkle tree over leaf hashes that answers roots and proofs for any past size
/// in O(log n) hash lookups.
///
/// Every node of the RFC 6962 tree of any size is either a complete, aligned power-of-two
/// subtree, which is stored, or lies on that size's right border, which is recomputed from at
/// most log n stored subtrees.
#[derive(Clone, Default)]
pub struct MerkleTree {
    /// `levels[k][i]` is the root of the complete subtree over leaves `[i * 2^k, (i + 1) * 2^k)`;
    /// `levels[0]` holds the leaf hashes. About two hashes per leaf in all.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, Vec::len) as u64
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a leaf hash (the caller computes [`leaf_hash`] of the entry).
    ///
    /// Completes every subtree the new leaf closes: one hash on average.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            // An even count means the new node closed a pair: their parent is now complete.
            match row.as_slice() {
                [.., left, right] if row.len().is_multiple_of(2) => hash = node_hash(left, right),
                _ => return,
            }
            level += 1;
        }
    }

    /// Drops every leaf from index `len` on (undoes a proposed block that was not committed).
    pub fn truncate(&mut self, len: u64) {
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        for (k, row) in self.levels.iter_mut().enumerate() {
            // Level k keeps the complete subtrees that lie entirely below `len`.
            row.truncate(len.checked_shr(k as u32).unwrap_or(0));
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }

    /// The hash of leaf `index`, if the tree has it.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        let index = usize::try_from(index).ok()?;
        self.levels.first()?.get(index).copied()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.range_hash(0, self.len())
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        Ok(self.range_hash(0, size))
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves, deepest hash first
    /// (RFC 9162 section 2.1.3.1), for [`verify_inclusion`].
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        Ok(self.path(0, index, size))
    }

    /// The consistency proof from the tree of the first `size1` leaves to that of the first
    /// `size2` (RFC 9162 section 2.1.4.1), for [`verify_consistency`].
    ///
    /// Empty when the sizes are equal; refused when `size1` is 0, as the verifier would refuse it.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        if size1 > size2 {
            return Err(ProofError::SizeOrder { size1, size2 });
        }
        self.check_size(size2)?;
        if size1 == 0 {
            return Err(ProofError::EmptyFirstTree);
        }
        if size1 == size2 {
            return Ok(Vec::new());
        }
        // The proof is the audit path, in the second tree, of the last complete subtree of the
        // first, preceded by that subtree's root unless it is the whole first tree.
        let level = size1.trailing_zeros();
        let index = (size1 - 1) >> level;
        let mut proof = Vec::new();
        if index != 0 {
            proof.push(self.node(level, index));
        }
        proof.extend(self.path(level, index, size2));
        Ok(proof)
    }

    /// The compact range of the tree of the first `size` leaves: the roots of its complete
    /// subtrees, one per set bit of `size`, largest (leftmost) first. With them a verifier that
    /// holds only a header's root can append later leaves and recompute every later root
    /// ([`Frontier`]).
    pub fn frontier(&self, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        let mut out = Vec::new();
        let mut start = 0u64;
        for level in (0..u64::BITS).rev() {
            if (size >> level) & 1 == 1 {
                out.push(self.node(level, start >> level));
                start += 1 << level;
            }
        }
        Ok(out)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let len = self.len();
        if size > len {
            return Err(ProofError::SizeOutOfRange { size, len });
        }
        Ok(())
    }

    /// The stored root of the complete subtree `index` of `level`.
    ///
    /// Callers ask only for subtrees inside the first `len` leaves, which are all stored.
    fn node(&self, level: u32, index: u64) -> Hash {
        self.levels[level as usize][index as usize]
    }

    /// The RFC 6962 hash of leaves `[start, end)`, where `end <= len` and `start` is a multiple
    /// of the smallest power of two at least `end - start` (true of every node of every tree).
    ///
    /// The range splits into complete subtrees, one per set bit of its width, largest first;
    /// RFC 6962 hashes them right to left, which is what this does.
    fn range_hash(&self, start: u64, end: u64) -> Hash {
        let width = end - start;
        let mut acc: Option<Hash> = None;
        let mut right_end = end;
        for level in 0..u64::BITS {
            if (width >> level) & 1 == 1 {
                right_end -= 1 << level;
                let piece = self.node(level, right_end >> level);
                acc = Some(match acc {
                    None => piece,
                    Some(right) => node_hash(&piece, &right),
                });
            }
        }
        acc.unwrap_or_else(empty_root)
    }

    /// The siblings, deepest first, of complete subtree `index` of `level` on its way up to the
    /// root of the tree of the first `size` leaves (`index << level < size <= len`).
    ///
    /// A sibling past the end of the tree is skipped (RFC 6962 promotes the lone node); a
    /// sibling cut by the end is the one partial node on the path and is recomputed.
    fn path(&self, mut level: u32, mut index: u64, size: u64) -> Vec<Hash> {
        let mut proof = Vec::new();
        // The node is the root once it starts at 0 and is at least as wide as the tree. While
        // it is not, `1 << level < size`, so nothing below overflows (size <= len < 2^63).
        while index != 0 || (1u64 << level) < size {
            let sibling = index ^ 1;
            let sibling_start = sibling << level;
            if sibling_start < size {
                let sibling_end = sibling_start + (1 << level);
                proof.push(if sibling_end <= size {
                    self.node(level, sibling)
                } else {
                    self.range_hash(sibling_start, size)
                });
            }
            index >>= 1;
            level += 1;
        }
        proof
    }
}

/// Why a compact range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontierError {
    /// The number of subtree roots does not match the size.
    #[error("a compact range of {size} leaves has {expected} subtree roots, got {got}")]
    WrongLength {
        /// The tree size.
        size: u64,
        /// One per set bit of `size`.
        expected: usize,
        /// How many came.
        got: usize,
    },
    /// The subtree roots do not hash to the root they should.
    #[error("the compact range of {size} leaves hashes to {computed}, expected root {expected}")]
    RootMismatch {
        /// The tree size.
        size: u64,
        /// The trusted root.
        expected: Hash,
        /// What the range hashes to.
        computed: Hash,
    },
}

/// The right border of a growing RFC 6962 tree: enough to append leaves and compute the root
/// of every size from the start size on, without the earlier leaves. An offline verifier seeds
/// it from a certified root and checks each later certified root by appending the entries in
/// between: every entry is then proven included, in order, with none missing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    /// `(width, root)` of each complete subtree, widest first; widths are distinct powers of two.
    nodes: Vec<(u64, Hash)>,
    size: u64,
}

impl Frontier {
    /// The empty tree's frontier.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from [`MerkleTree::frontier`]'s subtree roots of a tree of `size` leaves,
    /// checked against that tree's trusted `root` (ignored for the empty tree).
    pub fn from_roots(size: u64, roots: &[Hash], root: &Hash) -> Result<Self, FrontierError> {
        let expected = size.count_ones() as usize;
        if roots.len() != expected {
            return Err(FrontierError::WrongLength {
                size,
                expected,
                got: roots.len(),
            });
        }
        let widths = (0..u64::BITS)
            .rev()
            .filter(|level| (size >> level) & 1 == 1)
            .map(|level| 1u64 << level);
        let frontier = Frontier {
            nodes: widths.zip(roots.iter().copied()).collect(),
            size,
        };
        if size > 0 && frontier.root() != *root {
            return Err(FrontierError::RootMismatch {
                size,
                expected: *root,
                computed: frontier.root(),
            });
        }
        Ok(frontier)
    }

    /// The number of leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash: merges the complete subtrees it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (1u64, leaf);
        while let Some(&(width, left)) = self.nodes.last() {
            if width != node.0 {
                break;
            }
            self.nodes.pop();
            node = (width * 2, node_hash(&left, &node.1));
        }
        self.nodes.push(node);
        self.size += 1;
    }

    /// The root of the tree so far (RFC 6962 hashes the subtrees right to left).
    pub fn root(&self) -> Hash {
        let mut acc: Option<Hash> = None;
        for (_, piece) in self.nodes.iter().rev() {
            acc = Some(match acc {
                None => *piece,
                Some(right) => node_hash(piece, &right),
            });
        }
        acc.unwrap_or_else(empty_root)
    }
}

impl fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The leaves would drown everything else; the size and root identify the tree.
        f.debug_struct("MerkleTree")
            .field("len", &self.len())
            .field("root", &self.root())
            .finish()
    }
}

#[cfg(test)]
mod truncate_tests {
    use super::*;
    use custos_crypto::sha256;

    #[test]
    fn a_frontier_seeded_at_any_size_recomputes_every_later_root() {
        let leaves: Vec<Hash> = (0..70u64).map(|i| sha256(&i.to_be_bytes())).collect();
        let mut tree = MerkleTree::new();
        for leaf in &leaves {
            tree.push(*leaf);
        }
        for start in 0..70u64 {
            let roots = tree.frontier(start).expect("size within the tree");
            let root = tree.root_at(start).expect("size within the tree");
            let mut frontier = Frontier::from_roots(start, &roots, &root).expect("true roots");
            for (i, leaf) in leaves.iter().enumerate().skip(start as usize) {
                frontier.push(*leaf);
                assert_eq!(frontier.root(), root_of(&leaves[..=i]));
            }
        }
    }

    #[test]
    fn a_frontier_that_does_not_hash_to_the_root_is_refused() {
        let mut tree = MerkleTree::new();
        for i in 0..13u64 {
            tree.push(sha256(&i.to_be_bytes()));
        }
        let mut roots = tree.frontier(13).expect("size within the tree");
        assert_eq!(roots.len(), 3);
        roots[1] = sha256(b"forged");
        assert!(matches!(
            Frontier::from_roots(13, &roots, &tree.root()),
            Err(FrontierError::RootMismatch { .. })
        ));
        assert!(matches!(
            Frontier::from_roots(13, &roots[..2], &tree.root()),
            Err(FrontierError::WrongLength { .. })
        ));
    }

    #[test]
    fn truncating_then_pushing_again_gives_the_same_roots_as_never_pushing() {
        for keep in 0..40u64 {
            let mut tree = MerkleTree::new();
            let mut reference = MerkleTree::new();
            for i in 0..40u64 {
                tree.push(sha256(&i.to_be_bytes()));
                if i < keep {
                    reference.push(sha256(&i.to_be_bytes()));
                }
            }
            tree.truncate(keep);
            assert_eq!(tree.len(), keep);
            assert_eq!(tree.root(), reference.root());
            tree.push(sha256(b"next"));
            reference.push(sha256(b"next"));
            assert_eq!(tree.root(), reference.root());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eight leaves of the RFC 6962 reference tests (transparency-dev/merkle testonly).
    const REFERENCE_LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];

    /// Their roots at sizes 0 to 8.
    const REFERENCE_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn reference_tree() -> MerkleTree {
        let mut tree = MerkleTree::new();
        for data in REFERENCE_LEAVES {
            tree.push(leaf_hash(data));
        }
        tree
    }

    #[test]
    fn empty_root_is_the_sha256_of_the_empty_string() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(MerkleTree::new().root(), empty_root());
        assert_eq!(root_of(&[]), empty_root());
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut concatenated = a.0.to_vec();
        concatenated.extend_from_slice(&b.0);
        assert_ne!(node_hash(&a, &b), leaf_hash(&concatenated));
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
    }

    #[test]
    fn roots_match_the_rfc_6962_reference_tree_at_every_size() {
        let tree = reference_tree();
        let leaves: Vec<Hash> = REFERENCE_LEAVES.iter().map(|d| leaf_hash(d)).collect();
        for (size, want) in REFERENCE_ROOTS.iter().enumerate() {
            assert_eq!(
                tree.root_at(size as u64).map(|h| h.to_hex()),
                Ok(want.to_string())
            );
            assert_eq!(root_of(&leaves[..size]).to_hex(), *want);
        }
        assert_eq!(tree.root().to_hex(), REFERENCE_ROOTS[8]);
    }

    #[test]
    fn stored_levels_take_about_two_hashes_per_leaf() {
        let mut tree = MerkleTree::new();
        for i in 0u64..1000 {
            tree.push(leaf_hash(&i.to_be_bytes()));
        }
        let stored: usize = tree.levels.iter().map(Vec::len).sum();
        assert!(stored < 2 * 1000, "stored {stored} hashes for 1000 leaves");
        assert_eq!(
            tree.levels.iter().map(Vec::len).collect::<Vec<_>>()[..4],
            [1000, 500, 250, 125]
        );
    }

    #[test]
    fn proof_lengths_follow_the_tree_shape() {
        // Leaf 6 of 7 hangs straight off the root's right border: one sibling, the left half.
        assert_eq!(inclusion_proof_len(6, 7), 2);
        assert_eq!(inclusion_proof_len(0, 1), 0);
        assert_eq!(inclusion_proof_len(0, 8), 3);
        assert_eq!(consistency_proof_len(1, 8), 3);
        // 3 -> 7: leaves 2 and 3, the subtree [0, 2) and [4, 7); 4 -> 7 needs only [4, 7).
        assert_eq!(consistency_proof_len(3, 7), 4);
        assert_eq!(consistency_proof_len(4, 7), 1);
        // The largest sizes must not overflow.
        assert_eq!(inclusion_proof_len(0, u64::MAX), 64);
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), 63);
        assert_eq!(consistency_proof_len(u64::MAX - 1, u64::MAX), 64);
    }

    #[test]
    fn error_messages_say_what_was_expected_and_what_came() {
        let e = ProofError::WrongProofLength {
            expected: 3,
            got: 4,
        };
        assert_eq!(e.to_string(), "expected a proof of 3 hashes, got 4");
        let e = ProofError::IndexOutOfRange { index: 9, size: 8 };
        assert_eq!(
            e.to_string(),
            "expected a leaf index below the tree size 8, got 9"
        );
    }
}
