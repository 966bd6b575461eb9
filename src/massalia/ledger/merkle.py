"""RFC 9162 Merkle tree hashing and proofs: pure functions over stored subtree hashes, stdlib only."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The Merkle Tree Hash of the empty list: ``SHA-256()`` of no bytes (RFC 9162 §2.1.1)."""

SubtreeHash = Callable[[int, int], bytes]
"""``hash_of(level, index)`` returns the hash of the complete subtree of ``2**level`` leaves that
starts at leaf ``index * 2**level``. Level 0 holds the leaf hashes."""


def leaf_hash(entry: bytes) -> bytes:
    """Hash one log entry as a leaf: ``SHA-256(0x00 || entry)``.

    Parameters
    ----------
    entry
        The exact bytes of the entry.

    Returns
    -------
    bytes
        The 32-byte leaf hash.

    Examples
    --------
    >>> leaf_hash(b"").hex()[:16]
    '6e340b9cffb37a98'
    """
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an interior node: ``SHA-256(0x01 || left || right)``.

    Parameters
    ----------
    left, right
        The hashes of the left and right children.

    Returns
    -------
    bytes
        The 32-byte node hash.

    Examples
    --------
    >>> len(node_hash(leaf_hash(b"a"), leaf_hash(b"b")))
    32
    """
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (RFC 9162's ``k``), for ``n >= 2``.

    Examples
    --------
    >>> [split_point(n) for n in (2, 3, 4, 5, 8, 9)]
    [1, 2, 2, 4, 4, 8]
    """
    if n < 2:
        raise ValueError(f"split_point needs n >= 2, got {n}")
    return 1 << ((n - 1).bit_length() - 1)


def fold_frontier(frontier: Sequence[bytes]) -> bytes:
    """Root of a tree from its frontier: the hashes of its complete subtrees, largest (leftmost) first.

    For ``n`` leaves the frontier holds one complete subtree per set bit of ``n``; folding it from the
    right gives the RFC 9162 Merkle Tree Hash of the whole tree.

    Examples
    --------
    >>> fold_frontier([]) == EMPTY_ROOT
    True
    """
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    return root


def root_of_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of a list of leaf hashes (RFC 9162 §2.1.1), in O(n) hashing.

    Examples
    --------
    >>> root_of_leaf_hashes([leaf_hash(b"x")]) == leaf_hash(b"x")
    True
    """
    frontier: list[bytes] = []
    for count, leaf in enumerate(leaves, start=1):
        append_to_frontier(frontier, leaf, count - 1)
    return fold_frontier(frontier)


def merkle_tree_hash(entries: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of a list of entries (RFC 9162 §2.1.1).

    Examples
    --------
    >>> merkle_tree_hash([]) == EMPTY_ROOT
    True
    """
    return root_of_leaf_hashes([leaf_hash(entry) for entry in entries])


def append_to_frontier(frontier: list[bytes], leaf: bytes, index: int) -> list[bytes]:
    """Add leaf number ``index`` to a frontier in place; return the new complete subtree hashes.

    The returned list starts with ``leaf`` and goes on with the parent hashes the leaf completes,
    lowest first (``index + 1`` has that many trailing zero bits). Stored in this order, appends of
    successive leaves lay the tree out in post-order (see :func:`postorder_position`).

    Examples
    --------
    >>> frontier = []
    >>> len(append_to_frontier(frontier, leaf_hash(b"a"), 0)), len(append_to_frontier(frontier, leaf_hash(b"b"), 1))
    (1, 2)
    >>> len(frontier)
    1
    """
    created = [leaf]
    current = leaf
    completed = index + 1
    while completed & 1 == 0:
        current = node_hash(frontier.pop(), current)
        created.append(current)
        completed >>= 1
    frontier.append(current)
    return created


def nodes_for_size(size: int) -> int:
    """How many complete subtree hashes (all levels) a tree of ``size`` leaves has: ``2n - popcount(n)``.

    Examples
    --------
    >>> [nodes_for_size(n) for n in range(6)]
    [0, 1, 3, 4, 7, 8]
    """
    return 2 * size - size.bit_count()


def postorder_position(level: int, index: int) -> int:
    """Position of complete subtree ``(level, index)`` when node hashes are stored in post-order.

    Examples
    --------
    >>> [postorder_position(0, i) for i in range(4)], postorder_position(1, 1), postorder_position(2, 0)
    ([0, 1, 3, 4], 5, 6)
    """
    last_leaf = ((index + 1) << level) - 1
    return nodes_for_size(last_leaf) + level


def frontier_positions(size: int) -> list[tuple[int, int]]:
    """The ``(level, index)`` of the complete subtrees forming the frontier of a tree, leftmost first.

    Examples
    --------
    >>> frontier_positions(6)
    [(2, 0), (1, 2)]
    """
    positions = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            positions.append((level, start >> level))
            start += 1 << level
    return positions


def range_hash(start: int, end: int, hash_of: SubtreeHash) -> bytes:
    """Merkle Tree Hash of leaves ``start .. end - 1`` computed from stored complete subtree hashes.

    Ranges that appear in proofs are aligned, so this costs O(log n) lookups and hashes.

    Examples
    --------
    >>> tree = MemoryTree([leaf_hash(bytes([i])) for i in range(5)])
    >>> range_hash(0, 5, tree.hash_of) == tree.root()
    True
    """
    count = end - start
    if count < 0 or start < 0:
        raise ValueError(f"invalid leaf range {start}..{end}")
    if count == 0:
        return EMPTY_ROOT
    if count & (count - 1) == 0 and start % count == 0:
        return hash_of(count.bit_length() - 1, start // count)
    k = split_point(count)
    return node_hash(range_hash(start, start + k, hash_of), range_hash(start + k, end, hash_of))


def inclusion_path(index: int, size: int, hash_of: SubtreeHash) -> list[bytes]:
    """Inclusion proof ``PATH(index, D[size])`` of RFC 9162 §2.1.3.1, deepest sibling first.

    Examples
    --------
    >>> tree = MemoryTree([leaf_hash(bytes([i])) for i in range(7)])
    >>> len(inclusion_path(6, 7, tree.hash_of))
    2
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append(range_hash(lo + k, hi, hash_of))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k, hash_of))
            lo += k
    path.reverse()
    return path


def consistency_path(old_size: int, new_size: int, hash_of: SubtreeHash) -> list[bytes]:
    """Consistency proof ``PROOF(old_size, D[new_size])`` of RFC 9162 §2.1.4.1.

    The proof is empty when ``old_size`` is 0 or equals ``new_size``.

    Examples
    --------
    >>> tree = MemoryTree([leaf_hash(bytes([i])) for i in range(7)])
    >>> len(consistency_path(3, 7, tree.hash_of))
    4
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    path = []
    lo, hi, m = 0, new_size, old_size
    whole_old_tree = True  # RFC's flag b: the old tree is the left part of this subtree
    while m != hi - lo:
        k = split_point(hi - lo)
        if m <= k:
            path.append(range_hash(lo + k, hi, hash_of))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k, hash_of))
            lo += k
            m -= k
            whole_old_tree = False
    if not whole_old_tree:
        path.append(range_hash(lo, hi, hash_of))
    path.reverse()
    return path


def _valid_hashes(hashes: Sequence[bytes]) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def root_from_inclusion_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """Recompute the root from a leaf hash and its inclusion path (RFC 9162 §2.1.3.2), or ``None``.

    ``None`` means the path has the wrong shape for ``index`` in a tree of ``size`` leaves.

    Examples
    --------
    >>> root_from_inclusion_path(leaf_hash(b"a"), 0, 1, []) == leaf_hash(b"a")
    True
    """
    if not 0 <= index < size or not _valid_hashes([leaf, *path]):
        return None
    fn, sn = index, size - 1
    root = leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            root = node_hash(sibling, root)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            root = node_hash(root, sibling)
        fn >>= 1
        sn >>= 1
    return root if sn == 0 else None


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """Check that ``leaf`` is leaf number ``index`` of the tree of ``size`` leaves with hash ``root``.

    Examples
    --------
    >>> tree = MemoryTree([leaf_hash(bytes([i])) for i in range(5)])
    >>> verify_inclusion(leaf_hash(bytes([3])), 3, 5, tree.inclusion_path(3), tree.root())
    True
    """
    computed = root_from_inclusion_path(leaf, index, size, path)
    return computed is not None and _valid_hashes([root]) and hmac.compare_digest(computed, root)


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]) -> bool:
    """Check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)`` (RFC 9162 §2.1.4.2).

    Equal sizes need an empty path and equal roots; the empty tree (size 0, root :data:`EMPTY_ROOT`)
    is extended by every tree, with an empty path.

    Examples
    --------
    >>> tree = MemoryTree([leaf_hash(bytes([i])) for i in range(6)])
    >>> verify_consistency(3, 6, tree.root(3), tree.root(6), tree.consistency_path(3, 6))
    True
    """
    if not 0 <= old_size <= new_size or not _valid_hashes([old_root, new_root, *path]):
        return False
    if old_size == new_size:
        return not path and hmac.compare_digest(old_root, new_root)
    if old_size == 0:
        return not path and hmac.compare_digest(old_root, EMPTY_ROOT)
    if not path:
        return False
    hashes = list(path)
    if old_size & (old_size - 1) == 0:
        hashes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_computed = new_computed = hashes[0]
    for sibling in hashes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            old_computed = node_hash(sibling, old_computed)
            new_computed = node_hash(sibling, new_computed)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_computed = node_hash(new_computed, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(old_computed, old_root) and hmac.compare_digest(new_computed, new_root)


class MemoryTree:
    """An in-memory Merkle tree keeping every complete subtree hash, level by level.

    Used by tests and tools; :class:`massalia.ledger.log.TransparencyLog` keeps the same hashes on disk.

    Parameters
    ----------
    leaves
        Initial leaf hashes.

    Examples
    --------
    >>> tree = MemoryTree()
    >>> tree.append(leaf_hash(b"a"))
    0
    >>> tree.root() == leaf_hash(b"a")
    True
    """

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        self._frontier: list[bytes] = []
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self.levels[0])

    def append(self, leaf: bytes) -> int:
        """Append a leaf hash; return its index."""
        index = self.size
        for level, digest in enumerate(append_to_frontier(self._frontier, leaf, index)):
            if level == len(self.levels):
                self.levels.append([])
            self.levels[level].append(digest)
        return index

    def hash_of(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree ``(level, index)``."""
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        """Merkle Tree Hash of the first ``size`` leaves (all by default)."""
        return range_hash(0, self.size if size is None else size, self.hash_of)

    def inclusion_path(self, index: int, size: int | None = None) -> list[bytes]:
        """Inclusion proof of leaf ``index`` in the tree of the first ``size`` leaves."""
        return inclusion_path(index, self.size if size is None else size, self.hash_of)

    def consistency_path(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof between the trees of the first ``old_size`` and ``new_size`` leaves."""
        return consistency_path(old_size, self.size if new_size is None else new_size, self.hash_of)
