/*  cv_merkle.c: RFC 6962 Merkle tree hashing, proofs and their checks.
 *
 *  Roots and proofs follow the RFC's recursive definitions (MTH, PATH,
 *  SUBPROOF) over the range [lo, hi) of leaves, split at the largest power
 *  of two below its size. The checks are RFC 9162's iterative algorithms
 *  (sections 2.1.3.2 and 2.1.4.2), which need no leaves.
 */
#include <assert.h>
#include <sodium.h>
#include <string.h>

#include "audit_internal.h"

void cv_merkle_leaf_hash(const void *data, size_t len, cv_hash_t *out)
{
    static const uint8_t prefix = 0x00;
    const cv_bytes_t parts[] = {{&prefix, 1}, {data, len}};
    cv_sha256_parts(parts, 2, out->bytes);
}

void cv_merkle_node_hash(const cv_hash_t *left, const cv_hash_t *right, cv_hash_t *out)
{
    static const uint8_t prefix = 0x01;
    const cv_bytes_t parts[] = {
        {&prefix, 1}, {left->bytes, CV_HASH_BYTES}, {right->bytes, CV_HASH_BYTES}};
    cv_sha256_parts(parts, 3, out->bytes);
}

void cv_merkle_empty_root(cv_hash_t *out)
{
    cv_sha256_parts(NULL, 0, out->bytes);
}

bool cv_hash_equal(const cv_hash_t *a, const cv_hash_t *b)
{
    return sodium_memcmp(a->bytes, b->bytes, CV_HASH_BYTES) == 0;
}

/*  The largest power of two strictly below n (n > 1). */
static uint64_t split_point(uint64_t n)
{
    assert(n > 1);
    uint64_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

/*  MTH(D[lo:hi]), hi > lo. */
static bool range_hash(uint64_t lo, uint64_t hi, cv_leaf_hash_fn *leaf, void *arg, cv_hash_t *out)
{
    assert(hi > lo);
    if (hi - lo == 1)
        return leaf(arg, lo, out);
    uint64_t k = split_point(hi - lo);
    cv_hash_t left, right;
    if (!range_hash(lo, lo + k, leaf, arg, &left) || !range_hash(lo + k, hi, leaf, arg, &right))
        return false;
    cv_merkle_node_hash(&left, &right, out);
    return true;
}

bool cv_merkle_root(uint64_t size, cv_leaf_hash_fn *leaf, void *arg, cv_hash_t *root)
{
    if (size == 0) {
        cv_merkle_empty_root(root);
        return true;
    }
    return range_hash(0, size, leaf, arg, root);
}

/*  A proof as it is built: the hashes so far. */
typedef struct {
    cv_hash_t *hashes;
    int count;
    cv_leaf_hash_fn *leaf;
    cv_range_hash_fn *range; /* when set, it hashes the ranges, not leaf */
    void *arg;
} proof_t;

static bool add_range(proof_t *proof, uint64_t lo, uint64_t hi)
{
    assert(proof->count < CV_MERKLE_MAX_PROOF);
    cv_hash_t *out = &proof->hashes[proof->count++];
    return proof->range ? proof->range(proof->arg, lo, hi, out)
                        : range_hash(lo, hi, proof->leaf, proof->arg, out);
}

uint64_t cv_merkle_split(uint64_t n)
{
    return split_point(n);
}

/*  PATH(m, D[lo:hi]): the path to leaf lo + m, deepest sibling first. */
static bool path(proof_t *proof, uint64_t m, uint64_t lo, uint64_t hi)
{
    if (hi - lo <= 1)
        return true;
    uint64_t k = split_point(hi - lo);
    if (m < k)
        return path(proof, m, lo, lo + k) && add_range(proof, lo + k, hi);
    return path(proof, m - k, lo + k, hi) && add_range(proof, lo, lo + k);
}

int cv_merkle_inclusion_proof(uint64_t index, uint64_t size, cv_leaf_hash_fn *leaf, void *arg,
                              cv_hash_t proof[CV_MERKLE_MAX_PROOF])
{
    if (index >= size)
        return -1;
    proof_t built = {proof, 0, leaf, NULL, arg};
    return path(&built, index, 0, size) ? built.count : -1;
}

int cv_merkle_inclusion_proof_ranges(uint64_t index, uint64_t size, cv_range_hash_fn *range,
                                     void *arg, cv_hash_t proof[CV_MERKLE_MAX_PROOF])
{
    if (index >= size)
        return -1;
    proof_t built = {proof, 0, NULL, range, arg};
    return path(&built, index, 0, size) ? built.count : -1;
}

/*  SUBPROOF(m, D[lo:hi], whole): whole says D[lo:lo+m] is the old tree
 *  itself, whose root the verifier has. */
static bool subproof(proof_t *proof, uint64_t m, uint64_t lo, uint64_t hi, bool whole)
{
    uint64_t n = hi - lo;
    if (m == n)
        return whole || add_range(proof, lo, hi);
    uint64_t k = split_point(n);
    if (m <= k)
        return subproof(proof, m, lo, lo + k, whole) && add_range(proof, lo + k, hi);
    return subproof(proof, m - k, lo + k, hi, false) && add_range(proof, lo, lo + k);
}

int cv_merkle_consistency_proof(uint64_t old_size, uint64_t size, cv_leaf_hash_fn *leaf, void *arg,
                                cv_hash_t proof[CV_MERKLE_MAX_PROOF])
{
    if (old_size > size)
        return -1;
    if (old_size == 0 || old_size == size)
        return 0;
    proof_t built = {proof, 0, leaf, NULL, arg};
    return subproof(&built, old_size, 0, size, true) ? built.count : -1;
}

/*  Shifts fn and sn right together until fn's lowest bit is set or fn is
 *  0: climbs past the levels where the node is a left child with no
 *  sibling in the proof. */
static void climb_left_edge(uint64_t *fn, uint64_t *sn)
{
    while ((*fn & 1) == 0 && *fn != 0) {
        *fn >>= 1;
        *sn >>= 1;
    }
}

bool cv_merkle_verify_inclusion(uint64_t index, uint64_t size, const cv_hash_t *leaf_hash,
                                const cv_hash_t *proof, size_t n, const cv_hash_t *root)
{
    if (index >= size)
        return false;
    uint64_t fn = index, sn = size - 1;
    cv_hash_t r = *leaf_hash;
    for (size_t i = 0; i < n; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            cv_merkle_node_hash(&proof[i], &r, &r);
            climb_left_edge(&fn, &sn);
        } else {
            cv_merkle_node_hash(&r, &proof[i], &r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && cv_hash_equal(&r, root);
}

/*  RFC 9162 2.1.4.2 from its step 3: proof starts with the old tree's
 *  root when old_size is a power of two (the caller prepends it). */
static bool run_consistency(uint64_t old_size, uint64_t size, const cv_hash_t *old_root,
                            const cv_hash_t *root, const cv_hash_t *proof, size_t n)
{
    uint64_t fn = old_size - 1, sn = size - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    cv_hash_t fr = proof[0], sr = proof[0];
    for (size_t i = 1; i < n; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            cv_merkle_node_hash(&proof[i], &fr, &fr);
            cv_merkle_node_hash(&proof[i], &sr, &sr);
            climb_left_edge(&fn, &sn);
        } else {
            cv_merkle_node_hash(&sr, &proof[i], &sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && cv_hash_equal(&fr, old_root) && cv_hash_equal(&sr, root);
}

bool cv_merkle_verify_consistency(uint64_t old_size, uint64_t size, const cv_hash_t *old_root,
                                  const cv_hash_t *root, const cv_hash_t *proof, size_t n)
{
    if (old_size > size)
        return false;
    if (old_size == size)
        return n == 0 && cv_hash_equal(old_root, root);
    if (old_size == 0)
        return n == 0; /* every tree extends the empty one */
    if (n == 0 || n >= CV_MERKLE_MAX_PROOF)
        return false;
    cv_hash_t full[CV_MERKLE_MAX_PROOF];
    size_t count = 0;
    if ((old_size & (old_size - 1)) == 0)
        full[count++] = *old_root;
    memcpy(&full[count], proof, n * sizeof *proof);
    return run_consistency(old_size, size, old_root, root, full, count + n);
}
