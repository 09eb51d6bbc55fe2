/*  audit_internal.h: what the audit library's files share and its users
 *  need not see. */
#ifndef CV_AUDIT_INTERNAL_H
#define CV_AUDIT_INTERNAL_H

#include "cv_audit.h"
#include "cv_proto.h" /* cv_error_set, the JSON writer */

#define CV_NOTE_ALG_ED25519 0x01 /* the algorithm byte of a note key */

/*  The log's tables, as cv_tlog_open creates them and as SQLite keeps
 *  their text ("CREATE TABLE " and these): byte for byte what every store
 *  has had: the readers compare them (cv_audit_has_log). */
#define TLOG_LEAVES_TABLE "tlog_leaves(idx INTEGER PRIMARY KEY, data BLOB NOT NULL)"
#define TLOG_FRONTIER_TABLE                                                                        \
    "tlog_frontier(id INTEGER PRIMARY KEY CHECK (id = 0),"                                         \
    "  size INTEGER NOT NULL, nodes BLOB NOT NULL)"
/* signed: unix seconds, for cv_tlog_checkpoint_due */
#define TLOG_CHECKPOINTS_TABLE                                                                     \
    "tlog_checkpoints(size INTEGER PRIMARY KEY, note TEXT NOT NULL,"                               \
    "  signed INTEGER NOT NULL)"

/*  SHA-256 of the parts one after the other (cv_sha256.c). */
typedef struct {
    const void *data;
    size_t len;
} cv_bytes_t;
void cv_sha256_parts(const cv_bytes_t *parts, size_t n, uint8_t out[CV_HASH_BYTES]);

/*  Standard base64 with padding (RFC 4648 section 4), as the note and
 *  checkpoint formats have it. decode refuses anything else (a text that
 *  is not the canonical encoding of its bytes included), and more than max
 *  bytes; *got is how many were written. */
bool cv_base64_decode(const char *text, size_t len, uint8_t *out, size_t max, size_t *got);
/*  out holds at least sodium_base64_ENCODED_LEN(len, ORIGINAL) bytes. */
void cv_base64_encode(const void *bytes, size_t len, char *out, size_t size);

#endif
