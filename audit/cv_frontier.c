/*  cv_frontier.c: the right edge of a Merkle tree (a compact range from
 *  leaf 0). RFC 6962 splits a tree at the largest power of two below its
 *  size, so a tree of size leaves is the complete subtrees given by the
 *  bits of size, largest first, folded from the right. Appending a leaf
 *  merges the subtrees its carry passes through: O(log size) hashes, and
 *  the root costs as many.
 */
#include <assert.h>
#include <string.h>

#include "cv_audit.h"

static int node_count(uint64_t size)
{
    return __builtin_popcountll(size);
}

void cv_frontier_init(cv_frontier_t *self)
{
    memset(self, 0, sizeof *self);
}

void cv_frontier_append(cv_frontier_t *self, const cv_hash_t *leaf_hash)
{
    assert(self->size < UINT64_MAX);
    int count = node_count(self->size);
    cv_hash_t merged = *leaf_hash;
    for (uint64_t carry = self->size; carry & 1; carry >>= 1) {
        assert(count > 0);
        cv_merkle_node_hash(&self->nodes[--count], &merged, &merged);
    }
    self->nodes[count] = merged;
    self->size++;
    assert(count + 1 == node_count(self->size));
}

void cv_frontier_root(const cv_frontier_t *self, cv_hash_t *root)
{
    int count = node_count(self->size);
    if (count == 0) {
        cv_merkle_empty_root(root);
        return;
    }
    *root = self->nodes[count - 1];
    for (int i = count - 2; i >= 0; i--)
        cv_merkle_node_hash(&self->nodes[i], root, root);
}

bool cv_frontier_equal(const cv_frontier_t *a, const cv_frontier_t *b)
{
    if (a->size != b->size)
        return false;
    for (int i = 0; i < node_count(a->size); i++)
        if (!cv_hash_equal(&a->nodes[i], &b->nodes[i]))
            return false;
    return true;
}

size_t cv_frontier_packed_size(const cv_frontier_t *self)
{
    return (size_t)node_count(self->size) * CV_HASH_BYTES;
}

void cv_frontier_pack(const cv_frontier_t *self, uint8_t *out)
{
    for (int i = 0; i < node_count(self->size); i++)
        memcpy(out + (size_t)i * CV_HASH_BYTES, self->nodes[i].bytes, CV_HASH_BYTES);
}

bool cv_frontier_unpack(cv_frontier_t *self, uint64_t size, const uint8_t *bytes, size_t len)
{
    cv_frontier_init(self);
    if (len != (size_t)node_count(size) * CV_HASH_BYTES)
        return false;
    self->size = size;
    for (int i = 0; i < node_count(size); i++)
        memcpy(self->nodes[i].bytes, bytes + (size_t)i * CV_HASH_BYTES, CV_HASH_BYTES);
    return true;
}
