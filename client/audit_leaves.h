/*  audit_leaves.h: what the `caveat audit` commands share: the verifier
 *  key, counts on the command line, and the leaves read back (one JSON
 *  object each, parsed with libfyaml) for sample and summary. */
#ifndef CV_AUDIT_LEAVES_H
#define CV_AUDIT_LEAVES_H

#include <stdbool.h>
#include <stdint.h>

#include "cv_audit.h"
#include "cv_proto.h"
#include "leaf_json.h"

/*  A leaf index or tree size: decimal digits only. */
bool audit_parse_count(const char *text, uint64_t *value);
/*  The verifier key: text (--key), else the one of DIR's signing key;
 *  prints the error itself. */
bool audit_load_verifier(const char *dir, const char *text, cv_note_verifier_t *out);

/*  The checkpoint of size (0: the last), its signature checked with the
 *  verifier; prints the error itself and returns CLI_OK or the status. */
int audit_seed_checkpoint(sqlite3 *db, const char *dir, uint64_t size,
                          const cv_note_verifier_t *verifier, cv_checkpoint_t *out);

/*  Each of the first upto leaves, in order: each(arg, index, data, len)
 *  until it returns false. False with err when the store cannot be read. */
typedef bool(audit_leaf_each_fn)(void *arg, uint64_t index, const void *data, size_t len);
bool audit_leaves_each(sqlite3 *db, uint64_t upto, audit_leaf_each_fn *each, void *arg,
                       cv_error_t *err);

/*  --since DATE: YYYY-MM-DD (midnight UTC) or an RFC 3339 time, as unix
 *  milliseconds; false when it is neither. */
bool audit_parse_since(const char *text, uint64_t *ms);

#endif
