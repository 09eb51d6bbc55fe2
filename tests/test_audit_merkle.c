/*  RFC 6962 hashing, roots and proofs (audit/cv_merkle.c, cv_frontier.c)
 *  against the reference vectors of transparency-dev/merkle (its testonly
 *  package and cmd/proofgen): the 8-leaf tree's leaves, roots, inclusion
 *  and consistency proofs. Then, for every size to 70 and every index or
 *  old size, each proof verifies, and stops verifying when any hash, the
 *  or the index or the root is changed (the size is bound by the signed
 *  checkpoint that carries the root, not by the proof); the frontier's root is the
 *  recursive root for every size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <sodium.h>
#include <string.h>

#include "cv_audit.h"

static const char *const leaf_inputs[8] = {
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
};

/*  Roots of the trees of the first 1..8 leaves. */
static const char *const roots[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static const char empty_root[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

typedef struct {
    uint64_t a, b; /* inclusion: index (0-based), size; consistency: old, new size */
    const char *proof[3];
} vector_t;

/*  proofgen numbers leaves from 1; these are its vectors from 0. */
static const vector_t inclusion_vectors[] = {
    {0, 1, {NULL}},
    {0,
     8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5,
     8,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {1,
     5,
     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

static const vector_t consistency_vectors[] = {
    {1, 1, {NULL}},
    {1,
     8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6,
     8,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2,
     5,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {6,
     7,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

static cv_hash_t from_hex(const char *hex)
{
    cv_hash_t hash;
    assert_int_equal(sodium_hex2bin(hash.bytes, CV_HASH_BYTES, hex, strlen(hex), NULL, NULL, NULL),
                     0);
    return hash;
}

/*  Leaf hashes by index, for cv_merkle's callbacks. */
typedef struct {
    cv_hash_t *hashes;
    uint64_t count;
} leaves_t;

static bool leaf_of(void *arg, uint64_t index, cv_hash_t *out)
{
    const leaves_t *leaves = arg;
    assert_true(index < leaves->count); /* a proof never reads past its tree */
    *out = leaves->hashes[index];
    return true;
}

static leaves_t reference_leaves(void)
{
    static cv_hash_t hashes[8];
    for (int i = 0; i < 8; i++) {
        uint8_t data[16];
        size_t len = 0;
        sodium_hex2bin(data, sizeof data, leaf_inputs[i], strlen(leaf_inputs[i]), NULL, &len, NULL);
        cv_merkle_leaf_hash(data, len, &hashes[i]);
    }
    return (leaves_t){hashes, 8};
}

static int proof_length(const vector_t *vector)
{
    int n = 0;
    while (n < 3 && vector->proof[n])
        n++;
    return n;
}

static void test_roots(void **state)
{
    (void)state;
    leaves_t leaves = reference_leaves();
    cv_hash_t root, expected = from_hex(empty_root);
    cv_merkle_empty_root(&root);
    assert_true(cv_hash_equal(&root, &expected));
    assert_true(cv_merkle_root(0, leaf_of, &leaves, &root));
    assert_true(cv_hash_equal(&root, &expected));
    cv_frontier_t frontier;
    cv_frontier_init(&frontier);
    for (uint64_t size = 1; size <= 8; size++) {
        expected = from_hex(roots[size - 1]);
        leaves.count = size;
        assert_true(cv_merkle_root(size, leaf_of, &leaves, &root));
        assert_true(cv_hash_equal(&root, &expected));
        cv_frontier_append(&frontier, &leaves.hashes[size - 1]);
        cv_frontier_root(&frontier, &root);
        assert_true(cv_hash_equal(&root, &expected));
    }
}

static void check_vector_proof(const vector_t *vector, const cv_hash_t *proof, int n)
{
    assert_int_equal(n, proof_length(vector));
    for (int i = 0; i < n; i++) {
        cv_hash_t expected = from_hex(vector->proof[i]);
        assert_true(cv_hash_equal(&proof[i], &expected));
    }
}

static void test_inclusion_vectors(void **state)
{
    (void)state;
    leaves_t leaves = reference_leaves();
    for (size_t v = 0; v < sizeof inclusion_vectors / sizeof *inclusion_vectors; v++) {
        const vector_t *vector = &inclusion_vectors[v];
        cv_hash_t proof[CV_MERKLE_MAX_PROOF], root = from_hex(roots[vector->b - 1]);
        leaves.count = vector->b;
        int n = cv_merkle_inclusion_proof(vector->a, vector->b, leaf_of, &leaves, proof);
        check_vector_proof(vector, proof, n);
        assert_true(cv_merkle_verify_inclusion(vector->a, vector->b, &leaves.hashes[vector->a],
                                               proof, (size_t)n, &root));
    }
}

static void test_consistency_vectors(void **state)
{
    (void)state;
    leaves_t leaves = reference_leaves();
    for (size_t v = 0; v < sizeof consistency_vectors / sizeof *consistency_vectors; v++) {
        const vector_t *vector = &consistency_vectors[v];
        cv_hash_t proof[CV_MERKLE_MAX_PROOF];
        cv_hash_t old_root = from_hex(roots[vector->a - 1]), root = from_hex(roots[vector->b - 1]);
        leaves.count = vector->b;
        int n = cv_merkle_consistency_proof(vector->a, vector->b, leaf_of, &leaves, proof);
        check_vector_proof(vector, proof, n);
        assert_true(
            cv_merkle_verify_consistency(vector->a, vector->b, &old_root, &root, proof, (size_t)n));
    }
}

#define MAX_SIZE 70

static leaves_t many_leaves(void)
{
    static cv_hash_t hashes[MAX_SIZE];
    for (int i = 0; i < MAX_SIZE; i++) {
        uint8_t data[2] = {(uint8_t)i, 0x5a};
        cv_merkle_leaf_hash(data, sizeof data, &hashes[i]);
    }
    return (leaves_t){hashes, MAX_SIZE};
}

static void flip(cv_hash_t *hash)
{
    hash->bytes[7] ^= 0x10;
}

/*  A proof that verifies, and every one-hash change to it that must not. */
static void check_inclusion_tampered(leaves_t *leaves, uint64_t index, uint64_t size)
{
    cv_hash_t proof[CV_MERKLE_MAX_PROOF], root;
    assert_true(cv_merkle_root(size, leaf_of, leaves, &root));
    int n = cv_merkle_inclusion_proof(index, size, leaf_of, leaves, proof);
    assert_true(n >= 0);
    const cv_hash_t *leaf = &leaves->hashes[index];
    assert_true(cv_merkle_verify_inclusion(index, size, leaf, proof, (size_t)n, &root));
    for (int i = 0; i < n; i++) {
        flip(&proof[i]);
        assert_false(cv_merkle_verify_inclusion(index, size, leaf, proof, (size_t)n, &root));
        flip(&proof[i]);
    }
    if (n > 0)
        assert_false(cv_merkle_verify_inclusion(index, size, leaf, proof, (size_t)n - 1, &root));
    if ((index ^ 1) < size) /* the sibling's place */
        assert_false(cv_merkle_verify_inclusion(index ^ 1, size, leaf, proof, (size_t)n, &root));
    assert_false(cv_merkle_verify_inclusion(index, size, &proof[0], proof, (size_t)n, &root) &&
                 !cv_hash_equal(&proof[0], leaf));
    flip(&root);
    assert_false(cv_merkle_verify_inclusion(index, size, leaf, proof, (size_t)n, &root));
}

static void check_consistency_tampered(leaves_t *leaves, uint64_t old_size, uint64_t size)
{
    cv_hash_t proof[CV_MERKLE_MAX_PROOF], old_root, root;
    assert_true(cv_merkle_root(old_size, leaf_of, leaves, &old_root));
    assert_true(cv_merkle_root(size, leaf_of, leaves, &root));
    int n = cv_merkle_consistency_proof(old_size, size, leaf_of, leaves, proof);
    assert_true(n >= 0);
    assert_true(cv_merkle_verify_consistency(old_size, size, &old_root, &root, proof, (size_t)n));
    for (int i = 0; i < n; i++) {
        flip(&proof[i]);
        assert_false(
            cv_merkle_verify_consistency(old_size, size, &old_root, &root, proof, (size_t)n));
        flip(&proof[i]);
    }
    flip(&old_root);
    assert_false(cv_merkle_verify_consistency(old_size, size, &old_root, &root, proof, (size_t)n));
    flip(&old_root);
    flip(&root);
    assert_false(cv_merkle_verify_consistency(old_size, size, &old_root, &root, proof, (size_t)n));
    flip(&root);
    if (n > 0)
        assert_false(
            cv_merkle_verify_consistency(old_size, size, &old_root, &root, proof, (size_t)n - 1));
}

static void test_every_size(void **state)
{
    (void)state;
    leaves_t leaves = many_leaves();
    cv_frontier_t frontier;
    cv_frontier_init(&frontier);
    for (uint64_t size = 1; size <= MAX_SIZE; size++) {
        leaves.count = size;
        cv_hash_t root, from_frontier;
        cv_frontier_append(&frontier, &leaves.hashes[size - 1]);
        cv_frontier_root(&frontier, &from_frontier);
        assert_true(cv_merkle_root(size, leaf_of, &leaves, &root));
        assert_true(cv_hash_equal(&root, &from_frontier));
        for (uint64_t i = 0; i < size; i++)
            check_inclusion_tampered(&leaves, i, size);
        for (uint64_t old = 1; old <= size; old++)
            check_consistency_tampered(&leaves, old, size);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    leaves_t leaves = many_leaves();
    cv_hash_t proof[CV_MERKLE_MAX_PROOF], root;
    assert_int_equal(cv_merkle_inclusion_proof(5, 5, leaf_of, &leaves, proof), -1);
    assert_int_equal(cv_merkle_consistency_proof(6, 5, leaf_of, &leaves, proof), -1);
    assert_int_equal(cv_merkle_consistency_proof(0, 5, leaf_of, &leaves, proof), 0);
    cv_merkle_empty_root(&root);
    assert_false(cv_merkle_verify_inclusion(0, 0, &leaves.hashes[0], proof, 0, &root));
    assert_false(cv_merkle_verify_consistency(6, 5, &root, &root, proof, 0));
    /* equal sizes need equal roots and no proof */
    assert_false(cv_merkle_verify_consistency(5, 5, &root, &leaves.hashes[0], proof, 0));
    assert_false(cv_merkle_verify_consistency(5, 5, &root, &root, proof, 1));
    /* a proof from a size other than a power of two cannot be empty */
    assert_false(cv_merkle_verify_consistency(3, 5, &root, &root, proof, 0));
}

/*  The frontier's stored form reads back, and only at its own size. */
static void test_frontier_pack(void **state)
{
    (void)state;
    leaves_t leaves = many_leaves();
    cv_frontier_t frontier, back;
    cv_frontier_init(&frontier);
    for (int i = 0; i < 13; i++)
        cv_frontier_append(&frontier, &leaves.hashes[i]);
    /* 13 = 8 + 4 + 1: three nodes, and 12 has two */
    uint8_t packed[sizeof frontier.nodes];
    assert_int_equal(cv_frontier_packed_size(&frontier), 3 * CV_HASH_BYTES);
    cv_frontier_pack(&frontier, packed);
    assert_true(cv_frontier_unpack(&back, 13, packed, 3 * CV_HASH_BYTES));
    assert_true(cv_frontier_equal(&frontier, &back));
    assert_false(cv_frontier_unpack(&back, 12, packed, 3 * CV_HASH_BYTES));
    assert_false(cv_frontier_unpack(&back, 13, packed, 2 * CV_HASH_BYTES));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roots),
        cmocka_unit_test(test_inclusion_vectors),
        cmocka_unit_test(test_consistency_vectors),
        cmocka_unit_test(test_every_size),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_frontier_pack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
