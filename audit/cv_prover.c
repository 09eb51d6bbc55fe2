/*  cv_prover.c: inclusion proofs from a growing log, in O(log N); see
 *  cv_audit.h.
 *
 *  nodes[l] holds, for each level l >= CV_PROVER_TILE_LEVEL, the hashes of
 *  the complete subtrees of 2^l leaves, left to right. The tiles (level
 *  CV_PROVER_TILE_LEVEL) are hashed from their leaves, read in one range
 *  scan; every level above is combined from the one below as it fills.
 *  A range a proof asks for is either such a subtree, found here, or split
 *  as RFC 6962 splits it until it is; below a tile, from the leaves of that
 *  tile, read once and kept for the next proof (a batch of receipts is
 *  mostly one tile).
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audit_internal.h"

#define LEVELS 64

typedef struct {
    cv_hash_t *hashes;
    size_t n, cap;
} level_t;

typedef struct {
    uint64_t lo; /* its first leaf */
    size_t n;    /* leaves read (a partial tile has fewer) */
    cv_hash_t leaves[CV_PROVER_TILE];
} tile_t;

struct cv_prover_t {
    sqlite3 *db;
    sqlite3_stmt *range; /* leaves idx >= ?1 AND idx < ?2, in order */
    sqlite3_stmt *one;   /* the leaf idx = ?1: prepared once, as receipts ask one by one */
    level_t nodes[LEVELS];
    tile_t tiles[2]; /* the last two tiles read: a leaf's and the tree's partial last */
    int next_tile;   /* the one replaced next */
    cv_error_t *err; /* the call's, for the range callback */
};

cv_prover_t *cv_prover_new(sqlite3 *db)
{
    cv_prover_t *self = calloc(1, sizeof *self);
    if (self)
        self->db = db;
    for (int i = 0; self && i < 2; i++)
        self->tiles[i].lo = UINT64_MAX;
    return self;
}

void cv_prover_destroy(cv_prover_t **self_p)
{
    cv_prover_t *self = *self_p;
    if (!self)
        return;
    for (int l = 0; l < LEVELS; l++)
        free(self->nodes[l].hashes);
    sqlite3_finalize(self->range);
    sqlite3_finalize(self->one);
    free(self);
    *self_p = NULL;
}

static bool level_push(level_t *level, const cv_hash_t *hash)
{
    if (level->n == level->cap) {
        size_t cap = level->cap ? level->cap * 2 : 64;
        cv_hash_t *grown = realloc(level->hashes, cap * sizeof *grown);
        if (!grown)
            return false;
        level->hashes = grown;
        level->cap = cap;
    }
    level->hashes[level->n++] = *hash;
    return true;
}

/*  Reads the leaves [lo, hi) (hi - lo <= a tile) into tile. */
static bool read_tile(cv_prover_t *self, uint64_t lo, uint64_t hi, tile_t *tile)
{
    assert(hi > lo && hi - lo <= CV_PROVER_TILE);
    if (!self->range && sqlite3_prepare_v2(self->db,
                                           "SELECT idx, data FROM tlog_leaves WHERE idx >= ?1"
                                           " AND idx < ?2 ORDER BY idx",
                                           -1, &self->range, NULL) != SQLITE_OK) {
        cv_error_set(self->err, NULL, 0, 0, "audit log: reading leaves: %s",
                     sqlite3_errmsg(self->db));
        return false;
    }
    sqlite3_bind_int64(self->range, 1, (int64_t)lo);
    sqlite3_bind_int64(self->range, 2, (int64_t)hi);
    tile->lo = lo;
    tile->n = 0;
    int rc;
    while ((rc = sqlite3_step(self->range)) == SQLITE_ROW &&
           (uint64_t)sqlite3_column_int64(self->range, 0) == lo + tile->n)
        cv_merkle_leaf_hash(sqlite3_column_blob(self->range, 1),
                            (size_t)sqlite3_column_bytes(self->range, 1), &tile->leaves[tile->n++]);
    bool read = rc == SQLITE_ROW || rc == SQLITE_DONE; /* else a page that cannot be read */
    if (!read)
        cv_error_set(self->err, NULL, 0, 0, "audit log: reading leaves: %s",
                     sqlite3_errmsg(self->db));
    else if (tile->n != hi - lo)
        cv_error_set(self->err, NULL, 0, 0, "audit log: leaf %" PRIu64 " is missing", lo + tile->n);
    sqlite3_reset(self->range);
    if (read && tile->n == hi - lo)
        return true;
    tile->lo = UINT64_MAX;
    return false;
}

/*  MTH of n leaf hashes. */
static void hash_leaves(const cv_hash_t *leaves, size_t n, cv_hash_t *out)
{
    if (n == 1) {
        *out = leaves[0];
        return;
    }
    uint64_t k = cv_merkle_split(n);
    cv_hash_t left, right;
    hash_leaves(leaves, k, &left);
    hash_leaves(leaves + k, n - k, &right);
    cv_merkle_node_hash(&left, &right, out);
}

/*  A new tile's hash, and the levels above it that it completes. */
static bool add_tile(cv_prover_t *self, const cv_hash_t *hash)
{
    cv_hash_t node = *hash;
    for (int l = CV_PROVER_TILE_LEVEL; l < LEVELS - 1; l++) {
        if (!level_push(&self->nodes[l], &node))
            return false;
        if (self->nodes[l].n % 2)
            return true;
        cv_merkle_node_hash(&self->nodes[l].hashes[self->nodes[l].n - 2], &node, &node);
    }
    return true;
}

int cv_prover_learn(cv_prover_t *self, uint64_t size, uint64_t budget, cv_error_t *err)
{
    level_t *tiles = &self->nodes[CV_PROVER_TILE_LEVEL];
    self->err = err;
    tile_t *scratch = &self->tiles[self->next_tile];
    for (; tiles->n < size / CV_PROVER_TILE && budget > 0; budget--) {
        uint64_t lo = (uint64_t)tiles->n * CV_PROVER_TILE;
        cv_hash_t hash;
        if (!read_tile(self, lo, lo + CV_PROVER_TILE, scratch))
            return -1;
        hash_leaves(scratch->leaves, CV_PROVER_TILE, &hash);
        if (!add_tile(self, &hash)) {
            cv_error_set(err, NULL, 0, 0, "audit log: out of memory");
            return -1;
        }
    }
    return tiles->n >= size / CV_PROVER_TILE;
}

/*  The leaf hashes of the tile that holds [lo, hi), read if need be. */
static const tile_t *tile_of(cv_prover_t *self, uint64_t lo, uint64_t hi)
{
    uint64_t start = lo - lo % CV_PROVER_TILE;
    for (int i = 0; i < 2; i++)
        if (self->tiles[i].lo == start && self->tiles[i].n >= hi - start)
            return &self->tiles[i];
    tile_t *tile = &self->tiles[self->next_tile];
    self->next_tile = !self->next_tile;
    return read_tile(self, start, hi, tile) ? tile : NULL;
}

/*  MTH(D[lo:hi]) for cv_merkle's proof. */
static bool range_hash(void *arg, uint64_t lo, uint64_t hi, cv_hash_t *out)
{
    cv_prover_t *self = arg;
    uint64_t n = hi - lo;
    int level = 0;
    while (level < LEVELS - 1 && ((uint64_t)1 << level) < n)
        level++;
    if (level >= CV_PROVER_TILE_LEVEL && n == (uint64_t)1 << level && lo % n == 0 &&
        lo / n < self->nodes[level].n) {
        *out = self->nodes[level].hashes[lo / n];
        return true;
    }
    if (lo / CV_PROVER_TILE == (hi - 1) / CV_PROVER_TILE) { /* within one tile */
        const tile_t *tile = tile_of(self, lo, hi);
        if (!tile)
            return false;
        hash_leaves(tile->leaves + (lo - tile->lo), (size_t)n, out);
        return true;
    }
    uint64_t k = cv_merkle_split(n);
    cv_hash_t left, right;
    if (!range_hash(self, lo, lo + k, &left) || !range_hash(self, lo + k, hi, &right))
        return false;
    cv_merkle_node_hash(&left, &right, out);
    return true;
}

/*  The leaf's bytes, malloc'd. */
static uint8_t *read_leaf(cv_prover_t *self, uint64_t index, size_t *len, cv_error_t *err)
{
    sqlite3_stmt *s = self->one;
    uint8_t *data = NULL;
    if (s || sqlite3_prepare_v2(self->db, "SELECT data FROM tlog_leaves WHERE idx = ?1", -1,
                                &self->one, NULL) == SQLITE_OK) {
        s = self->one;
        sqlite3_bind_int64(s, 1, (int64_t)index);
        if (sqlite3_step(s) == SQLITE_ROW) {
            *len = (size_t)sqlite3_column_bytes(s, 0);
            data = malloc(*len ? *len : 1);
            if (data)
                memcpy(data, sqlite3_column_blob(s, 0), *len);
        }
    }
    if (!data)
        cv_error_set(err, NULL, 0, 0, "audit log: cannot read leaf %" PRIu64 ": %s", index,
                     sqlite3_errmsg(self->db));
    if (s)
        sqlite3_reset(s);
    return data;
}

char *cv_prover_prove(cv_prover_t *self, uint64_t index, const char *note,
                      const cv_checkpoint_t *checkpoint, uint8_t **leaf, size_t *leaf_len,
                      cv_error_t *err)
{
    cv_hash_t proof[CV_MERKLE_MAX_PROOF], hash;
    self->err = err;
    *leaf = NULL;
    if (index >= checkpoint->size || index >= INT64_MAX) {
        cv_error_set(err, NULL, 0, 0,
                     "audit log: a tree of %" PRIu64 " leaves has no leaf %" PRIu64,
                     checkpoint->size, index);
        return NULL;
    }
    if (!(*leaf = read_leaf(self, index, leaf_len, err)))
        return NULL;
    int n = cv_merkle_inclusion_proof_ranges(index, checkpoint->size, range_hash, self, proof);
    cv_merkle_leaf_hash(*leaf, *leaf_len, &hash);
    char *text = NULL;
    if (n >= 0 && !cv_merkle_verify_inclusion(index, checkpoint->size, &hash, proof, (size_t)n,
                                              &checkpoint->root))
        cv_error_set(err, NULL, 0, 0,
                     "checkpoint at size %" PRIu64 ": the leaves do not hash to its root"
                     " (caveat audit verify says which)",
                     checkpoint->size);
    else if (n >= 0 && !(text = cv_audit_proof_text(index, *leaf, *leaf_len, proof, n, note)))
        cv_error_set(err, NULL, 0, 0, "audit log: out of memory");
    if (!text) {
        free(*leaf);
        *leaf = NULL;
    }
    return text;
}
