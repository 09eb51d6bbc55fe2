/*  cv_audit.h: the audit record, a transparency log of what the broker did.
 *
 *  Every event (a report accepted with its per-recipient decisions, a
 *  delivery acknowledged, a policy loaded, an administrator's action, a
 *  purge) is one leaf of an append-only Merkle tree kept in the store, in
 *  the same SQLite transaction as the state it describes. The tree is
 *  hashed as RFC 6962; the broker signs checkpoints of it as C2SP signed
 *  notes (tlog-checkpoint) with an Ed25519 key of its own; proofs for
 *  outsiders are c2sp.org/tlog-proof@v1 files. Standard tools (Go's
 *  golang.org/x/mod/sumdb/note and sumdb/tlog among them) check all of it.
 *  docs/operations.md, "The audit log", has the formats.
 *
 *  cv_merkle.c     RFC 6962 hashing, roots, proofs and their verification
 *  cv_frontier.c   the right edge of a tree: appending in O(log N)
 *  cv_note.c       signed notes: verifier keys, key IDs, verification
 *  cv_note_signer.c  the signing key and its file
 *  cv_checkpoint.c tlog-checkpoint bodies
 *  cv_tlog.c       the log in SQLite, as the broker writes it
 *  cv_tlog_reader.c  verifying a log and proving from it, read-only
 *  cv_audit_leaf.c the leaves' JSON form
 */
#ifndef CV_AUDIT_H
#define CV_AUDIT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caveat/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/*  The Merkle tree (RFC 6962): leaf = SHA-256(0x00 || data), node =
 *  SHA-256(0x01 || left || right), the empty tree SHA-256 of nothing.
 *  Pure functions over leaf hashes fetched by a callback.                  */

#define CV_HASH_BYTES       32
#define CV_MERKLE_MAX_PROOF 64 /* hashes in a proof of a tree below 2^63 leaves */

typedef struct {
    uint8_t bytes[CV_HASH_BYTES];
} cv_hash_t;

void cv_merkle_leaf_hash(const void *data, size_t len, cv_hash_t *out);
void cv_merkle_node_hash(const cv_hash_t *left, const cv_hash_t *right, cv_hash_t *out);
void cv_merkle_empty_root(cv_hash_t *out);
bool cv_hash_equal(const cv_hash_t *a, const cv_hash_t *b);
/*  Plain SHA-256 of len bytes (the audit log's hash function, fast: the
 *  broker takes one of every view it sends). */
void cv_audit_sha256(const void *data, size_t len, uint8_t out[CV_HASH_BYTES]);

/*  The hash of leaf index; false when it cannot be had (the caller's
 *  error then says why). */
typedef bool(cv_leaf_hash_fn)(void *arg, uint64_t index, cv_hash_t *out);

/*  The root of the first size leaves (MTH). False when a leaf failed. */
bool cv_merkle_root(uint64_t size, cv_leaf_hash_fn *leaf, void *arg, cv_hash_t *root);
/*  RFC 6962 PATH(index, D[size]): how many hashes, or -1 when index >=
 *  size or a leaf failed. */
int cv_merkle_inclusion_proof(uint64_t index, uint64_t size, cv_leaf_hash_fn *leaf, void *arg,
                              cv_hash_t proof[CV_MERKLE_MAX_PROOF]);
/*  RFC 6962 PROOF(old_size, D[size]): how many hashes (none when old_size
 *  is 0 or size), or -1 when old_size > size or a leaf failed. */
int cv_merkle_consistency_proof(uint64_t old_size, uint64_t size, cv_leaf_hash_fn *leaf, void *arg,
                                cv_hash_t proof[CV_MERKLE_MAX_PROOF]);
/*  The same, with the hash of each range of leaves the proof needs,
 *  MTH(D[lo:hi]), from range: a caller that keeps complete subtrees'
 *  hashes proves in O(log size) without reading every leaf. */
typedef bool(cv_range_hash_fn)(void *arg, uint64_t lo, uint64_t hi, cv_hash_t *out);
int cv_merkle_inclusion_proof_ranges(uint64_t index, uint64_t size, cv_range_hash_fn *range,
                                     void *arg, cv_hash_t proof[CV_MERKLE_MAX_PROOF]);
/*  RFC 6962's split of n > 1 leaves: the largest power of two below n. */
uint64_t cv_merkle_split(uint64_t n);
/*  Whether proof shows leaf_hash at index in the tree of size with root. */
bool cv_merkle_verify_inclusion(uint64_t index, uint64_t size, const cv_hash_t *leaf_hash,
                                const cv_hash_t *proof, size_t n, const cv_hash_t *root);
/*  Whether proof shows the tree (old_size, old_root) to be the first
 *  old_size leaves of the tree (size, root). */
bool cv_merkle_verify_consistency(uint64_t old_size, uint64_t size, const cv_hash_t *old_root,
                                  const cv_hash_t *root, const cv_hash_t *proof, size_t n);

/* ------------------------------------------------------------------------ */
/*  The frontier: the roots of the complete subtrees along the right edge
 *  of a tree of size leaves, largest first, one per bit set in size. What
 *  appending a leaf and taking the root need, in O(log size).              */

typedef struct {
    uint64_t size;
    cv_hash_t nodes[64];
} cv_frontier_t;

void cv_frontier_init(cv_frontier_t *self);
void cv_frontier_append(cv_frontier_t *self, const cv_hash_t *leaf_hash);
void cv_frontier_root(const cv_frontier_t *self, cv_hash_t *root);
bool cv_frontier_equal(const cv_frontier_t *a, const cv_frontier_t *b);
/*  Stored form: the nodes, CV_HASH_BYTES each; unpack refuses a length
 *  that is not popcount(size) hashes. */
size_t cv_frontier_packed_size(const cv_frontier_t *self);
void cv_frontier_pack(const cv_frontier_t *self, uint8_t *out);
bool cv_frontier_unpack(cv_frontier_t *self, uint64_t size, const uint8_t *bytes, size_t len);

/* ------------------------------------------------------------------------ */
/*  Signed notes (C2SP signed-note, Ed25519): a body of lines ending in
 *  '\n', a blank line, and signature lines "— NAME base64(key ID[4] ||
 *  signature)". Key ID = the first 4 bytes of SHA-256(NAME || '\n' ||
 *  0x01 || public key). A verifier key is written
 *  "NAME+hex(key ID)+base64(0x01 || public key)".                          */

#define CV_NOTE_NAME_MAX     128 /* a key's name, with its NUL */
#define CV_NOTE_KEY_ID_BYTES 4
#define CV_NOTE_KEY_BYTES    32
#define CV_VERIFIER_KEY_MAX  (CV_NOTE_NAME_MAX + 64) /* a verifier key's text, with its NUL */

typedef struct {
    char name[CV_NOTE_NAME_MAX];
    uint8_t key_id[CV_NOTE_KEY_ID_BYTES];
    uint8_t public_key[CV_NOTE_KEY_BYTES];
} cv_note_verifier_t;

/*  A key's name: printable ASCII, no space and no '+', not empty. */
bool cv_note_name_valid(const char *name);
void cv_note_key_id(const char *name, const uint8_t public_key[CV_NOTE_KEY_BYTES],
                    uint8_t key_id[CV_NOTE_KEY_ID_BYTES]);
/*  Parses a verifier key's text; refuses a key ID that is not the key's. */
bool cv_note_verifier_parse(const char *text, cv_note_verifier_t *out, cv_error_t *err);
void cv_note_verifier_text(const cv_note_verifier_t *self, char out[CV_VERIFIER_KEY_MAX]);
/*  Whether note (len bytes) is well formed and signed by verifier; sets
 *  *body_len to the length of its body (up to and with its last '\n').
 *  Signatures by other keys are allowed and not checked. */
bool cv_note_verify(const char *note, size_t len, const cv_note_verifier_t *verifier,
                    size_t *body_len, cv_error_t *err);
/*  The body of a well-formed note, signatures not checked. */
bool cv_note_body(const char *note, size_t len, size_t *body_len, cv_error_t *err);

/*  The signing key. Its file is one line, "PRIVATE+KEY+NAME+hex(key
 *  ID)+base64(0x01 || Ed25519 seed)" (Go's note signer key form), mode
 *  0600 when made: a file that gives group or others any access is refused
 *  (0400 is taken). */
typedef struct cv_note_signer_t cv_note_signer_t;

#define CV_AUDIT_KEY_FILE "audit.key" /* in the data directory */

cv_note_signer_t *cv_note_signer_load(const char *path, cv_error_t *err);
/*  A new key named name, written to path (refused when path exists).
 *  libsodium must be started (sodium_init). */
cv_note_signer_t *cv_note_signer_create(const char *path, const char *name, cv_error_t *err);
/*  DIR/audit.key, made when absent with name origin (NULL: "caveat/" and
 *  8 random hex digits, unique to the key). */
cv_note_signer_t *cv_audit_key_open(const char *dir, const char *origin, cv_error_t *err);
void cv_note_signer_destroy(cv_note_signer_t **self_p);
const cv_note_verifier_t *cv_note_signer_verifier(const cv_note_signer_t *self);
/*  body signed: a malloc'd note, or NULL when body is not a note's body
 *  (empty, no final '\n', a blank line or a control character in it). */
char *cv_note_sign(const cv_note_signer_t *self, const char *body);

/* ------------------------------------------------------------------------ */
/*  Checkpoints (C2SP tlog-checkpoint): the body "ORIGIN\nSIZE\nbase64(root)\n"
 *  (further extension lines are read and ignored), signed by the log's
 *  key, whose name is the origin.                                          */

typedef struct {
    char origin[CV_NOTE_NAME_MAX];
    uint64_t size;
    cv_hash_t root;
} cv_checkpoint_t;

/*  The body, malloc'd. */
char *cv_checkpoint_body(const cv_checkpoint_t *self);
bool cv_checkpoint_parse(const char *body, size_t len, cv_checkpoint_t *out, cv_error_t *err);
/*  A signed checkpoint: signed by verifier, its origin the verifier's
 *  name, its body parsed. */
bool cv_checkpoint_open(const char *note, size_t len, const cv_note_verifier_t *verifier,
                        cv_checkpoint_t *out, cv_error_t *err);

/* ------------------------------------------------------------------------ */
/*  The log in SQLite, on the store's connection. Tables tlog_leaves(idx,
 *  data), tlog_frontier (the frontier after the last leaf) and
 *  tlog_checkpoints(size, note, signed). Appending and checkpointing
 *  write in the caller's open transaction and never begin or end one: a
 *  leaf commits, or rolls back, with the state it describes. Nothing is
 *  kept in memory between calls, so a rollback leaves nothing to undo.     */

typedef struct cv_tlog_t cv_tlog_t;

/*  Creates the tables when missing (the caller's transaction, if any, or
 *  one of its own), then checks the log: the leaves up to the last
 *  checkpoint hash to its root, and all of them to the stored frontier.
 *  Refuses (NULL, err says what is wrong) a log that fails, so that
 *  nothing is ever signed over leaves that were changed. signer is
 *  borrowed and must outlive the log. */
cv_tlog_t *cv_tlog_open(sqlite3 *db, const cv_note_signer_t *signer, cv_error_t *err);
void cv_tlog_destroy(cv_tlog_t **self_p);
/*  Appends a leaf of opaque bytes in the open transaction; *index (may be
 *  NULL) is its index. Refused outside a transaction. */
bool cv_tlog_append(cv_tlog_t *self, const void *data, size_t len, uint64_t *index,
                    cv_error_t *err);
/*  Appends n leaves in order, in the open transaction, reading and writing
 *  the frontier once for all of them; *first (may be NULL) is the first's
 *  index. leaf_hash (may be NULL: they are taken here) gives leaf i's
 *  hash, cv_merkle_leaf_hash of data[i], with arg and i, once every row
 *  is in: a caller may take them on another thread meanwhile. On an error
 *  the transaction holds some of them: roll it back. */
bool cv_tlog_append_many(cv_tlog_t *self, const void *const *data, const size_t *lens, size_t n,
                         cv_leaf_hash_fn *leaf_hash, void *arg, uint64_t *first, cv_error_t *err);
/*  Leaves in the log, and in its last checkpoint; -1 on an error. */
int64_t cv_tlog_size(cv_tlog_t *self, cv_error_t *err);
int64_t cv_tlog_checkpointed(cv_tlog_t *self, cv_error_t *err);
/*  Whether a checkpoint is due: leaves were added since the last one, and
 *  every_leaves of them (0: no such limit) or every_seconds passed since
 *  it was signed (0: no such limit; now in unix seconds). */
bool cv_tlog_checkpoint_due(cv_tlog_t *self, uint64_t every_leaves, int64_t every_seconds,
                            int64_t now);
/*  Signs and stores a checkpoint of the log as it is, in the open
 *  transaction: 1, 0 when there is nothing new to sign, -1 on an error. */
int cv_tlog_checkpoint(cv_tlog_t *self, int64_t now, cv_error_t *err);

/* ------------------------------------------------------------------------ */
/*  Reading a log, as `caveat audit` does, from another process.           */

/*  The largest leaf the log takes, and its readers read (SQLite's length
 *  limit on their connections): a store someone crafted cannot make one
 *  read take more. caveatd's largest leaves, reports accepted for a
 *  partnership, are 100 to 300 bytes a recipient agency: under 1 MB for
 *  2,000 agencies, about 30 MB for 100,000, whose policy file is itself
 *  about 25 MB of the 64 MB it may be (CV_POLICY_FILE_MAX). */
#define CV_AUDIT_LEAF_MAX (64 * 1024 * 1024)

/*  DIR/caveat.db opened read-only (a URI with mode=ro): a regular file,
 *  values no longer than CV_AUDIT_LEAF_MAX, SQLite's defensive mode and no
 *  function with side effects taken from its schema. In a read transaction
 *  held until it is closed: everything read through it is of one moment
 *  (the first read's), whatever the broker commits meanwhile. NULL with
 *  err. */
sqlite3 *cv_audit_open_readonly(const char *dir, cv_error_t *err);
/*  Ends that read transaction once everything is read: while it is open a
 *  running broker cannot start its WAL again, which then grows, so a
 *  command that prints (into a pager, say) lets it go first. */
void cv_audit_end_read(sqlite3 *db);
/*  Whether db has an audit log, its three tables exactly as cv_tlog_open
 *  makes them: a store whose tables were made otherwise (a generated
 *  column for a leaf's bytes, say) could make reading them cost what it
 *  likes. False with err, saying which. Every reader here checks it. */
bool cv_audit_has_log(sqlite3 *db, cv_error_t *err);

typedef struct {
    uint64_t leaves;       /* in the log */
    uint64_t checkpoints;  /* stored, each checked */
    uint64_t checkpointed; /* the size of the last checkpoint */
    cv_hash_t root;        /* of every leaf */
    cv_checkpoint_t last;  /* the last checkpoint, when there is one */
} cv_audit_summary_t;

/*  Recomputes the tree from the leaves and checks every stored
 *  checkpoint's signature by verifier and its root against the leaves,
 *  and the stored frontier against them all, all of them read in one read
 *  transaction (its own, unless the caller has one open). On failure err
 *  names the first leaf or checkpoint found wrong. */
bool cv_audit_verify(sqlite3 *db, const cv_note_verifier_t *verifier, cv_audit_summary_t *summary,
                     cv_error_t *err);
/*  The same, and the log must hold kept, a checkpoint its reader kept from
 *  an earlier look (its signature already checked: cv_checkpoint_open):
 *  leaves at least to its size, hashing to its root. Whoever can write
 *  the store can delete every checkpoint, or cut the log back with the
 *  checkpoints past the cut, and the stored ones alone cannot tell;
 *  a kept one can. */
bool cv_audit_verify_kept(sqlite3 *db, const cv_note_verifier_t *verifier,
                          const cv_checkpoint_t *kept, cv_audit_summary_t *summary,
                          cv_error_t *err);
/*  The c2sp.org/tlog-proof@v1 text for leaf index: its inclusion proof in
 *  the stored checkpoint of size tree_size (0: the latest, which covers
 *  every leaf checkpointed), that checkpoint, and extra (NULL: no extra
 *  line) as the extra data. Malloc'd; NULL with err. Choosing the leaf (by
 *  report, by recipient) is the caller's. */
char *cv_audit_prove(sqlite3 *db, uint64_t index, uint64_t tree_size, const void *extra,
                     size_t extra_len, cv_error_t *err);
/*  The c2sp.org/tlog-proof@v1 text of an inclusion proof of n hashes for
 *  leaf index in the checkpoint note, with extra (NULL: none). Malloc'd;
 *  NULL when out of memory. */
char *cv_audit_proof_text(uint64_t index, const void *extra, size_t extra_len,
                          const cv_hash_t *proof, int n, const char *note);

/*  A c2sp.org/tlog-proof@v1 text read back: its extra data (malloc'd, or
 *  NULL when it has none), index, proof and checkpoint note (pointing into
 *  text). Refuses anything not in the form cv_audit_proof_text writes. */
typedef struct {
    uint8_t *extra;
    size_t extra_len;
    uint64_t index;
    cv_hash_t proof[CV_MERKLE_MAX_PROOF];
    int n;
    const char *note;
    size_t note_len;
} cv_audit_proof_t;

bool cv_audit_proof_parse(const char *text, size_t len, cv_audit_proof_t *out, cv_error_t *err);
void cv_audit_proof_clear(cv_audit_proof_t *self);
/*  Whether proof shows leaf (its bytes) in its checkpoint, signed by
 *  verifier; *checkpoint (may be NULL) is that checkpoint. */
bool cv_audit_proof_check(const cv_audit_proof_t *proof, const void *leaf, size_t len,
                          const cv_note_verifier_t *verifier, cv_checkpoint_t *checkpoint,
                          cv_error_t *err);

/*  The consistency proof between two checkpointed sizes:
 *  "caveat/tlog-consistency@v1 OLD NEW\n" then one base64 hash a line.
 *  Malloc'd; NULL with err when either size has no checkpoint. */
char *cv_audit_consistency(sqlite3 *db, uint64_t old_size, uint64_t new_size, cv_error_t *err);
/*  The stored checkpoint of size (0: the last one), malloc'd; NULL with
 *  err when there is none. */
char *cv_audit_checkpoint(sqlite3 *db, uint64_t size, cv_error_t *err);

/* ------------------------------------------------------------------------ */
/*  Leaves: one compact JSON object an event, {"event":"NAME","time":MS,
 *  ...}, written with the project's JSON writer (cv_proto.h). begin opens
 *  the object with those two keys; the caller adds its own with
 *  cv_json_key and the like; end closes it and returns the text
 *  (malloc'd, NULL when out of memory), the writer destroyed.              */

struct cv_json_writer_t;
struct cv_json_writer_t *cv_audit_leaf_begin(const char *event, uint64_t time_ms);
/*  The same two keys, opening a leaf in writer after what it holds (at
 *  its top level: cv_json_writer_rewind); the caller closes the object.
 *  For a writer that holds a run of leaves, one allocation for them all. */
void cv_audit_leaf_open(struct cv_json_writer_t *writer, const char *event, uint64_t time_ms);
char *cv_audit_leaf_end(struct cv_json_writer_t **writer_p);

/*  The leaves that name report_id (and, when agency is not NULL, that
 *  agency too), in order: each(arg, index, data, len) for every one. The
 *  number found, or -1 with err. A report is named as the leaves write it,
 *  "report":ID, so an id that is a substring of another's is not found in
 *  its place. */
typedef void(cv_audit_leaf_fn)(void *arg, uint64_t index, const void *data, size_t len);
int cv_audit_find_report(sqlite3 *db, const char *report_id, const char *agency,
                         cv_audit_leaf_fn *each, void *arg, cv_error_t *err);

/* ------------------------------------------------------------------------ */
/*  A prover for a log that is being appended to (the broker's receipts):
 *  it keeps the hashes of complete subtrees of CV_PROVER_TILE leaves and
 *  more, so that a proof reads at most two tiles of leaves (the leaf's and
 *  the tree's last, partial one) and hashes O(log N) nodes. It learns the
 *  log's complete tiles as it is told to (cv_prover_learn), a bounded
 *  number at a time; leaves once checkpointed never change, so nothing it
 *  keeps goes stale. Memory: 64 bytes a tile.                              */

#define CV_PROVER_TILE_LEVEL 8
#define CV_PROVER_TILE       (1u << CV_PROVER_TILE_LEVEL)

typedef struct cv_prover_t cv_prover_t;

/*  A prover of the log on db (borrowed; read between transactions). */
cv_prover_t *cv_prover_new(sqlite3 *db);
void cv_prover_destroy(cv_prover_t **self_p);
/*  Learns the complete tiles below size, at most budget tiles of leaves
 *  read: 1 when it knows them all, 0 when more are left, -1 with err. */
int cv_prover_learn(cv_prover_t *self, uint64_t size, uint64_t budget, cv_error_t *err);
/*  The tlog-proof@v1 text for leaf index in checkpoint (its note and
 *  parsed body), with the leaf's bytes as its extra data, and the leaf
 *  (malloc'd) in *leaf. The proof is checked against the checkpoint's root
 *  before it is given. O(log N) once cv_prover_learn has said 1 for the
 *  checkpoint's size; right, and slower, before. NULL with err. */
char *cv_prover_prove(cv_prover_t *self, uint64_t index, const char *note,
                      const cv_checkpoint_t *checkpoint, uint8_t **leaf, size_t *leaf_len,
                      cv_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
