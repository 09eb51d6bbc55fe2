/*  cv_policy.h: the sharing-protocol engine.
 *
 *  Load a policy file, validate it against the report schema, compile it
 *  into an immutable structure, and decide per report and recipient whether
 *  the report goes and which fields go, masked how. Pure: no sockets, and no
 *  files after load, so the broker and `caveat policy ...` share it and it is
 *  tested without a network. A loaded policy is read-only and may be used by
 *  many threads at once; a cv_decision_t is one thread's scratch space.
 *
 *  docs/policy.md is the normative description of the language.
 */
#ifndef CV_POLICY_H
#define CV_POLICY_H

#include "cv_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CV_PSEUDONYM_PREFIX "PSN-"

typedef struct cv_policy_t cv_policy_t;
typedef struct cv_decision_t cv_decision_t;

/*  One agency, as the policy lists it. Read-only, owned by the policy. */
typedef struct {
    const char *id;
    const char *organisation;
    const char *type;
    int clearance;            /* index into the policy's levels */
    const char *const *areas; /* the areas it serves */
    int n_areas;
    bool all_areas;            /* areas: ["*"] */
    bool admin;                /* type admin, or listed under administrators */
    uint8_t key[CV_KEY_BYTES]; /* its current key */
    char key_z85[41];
    /*  key: [current, next]: during a key's rotation both are admitted, and
     *  a session is bound to the one it came with. */
    bool has_next_key;
    uint8_t next_key[CV_KEY_BYTES];
    char next_key_z85[41];
} cv_agency_t;

/*  Whether key is one of the agency's (current or next). */
bool cv_agency_has_key(const cv_agency_t *agency, const uint8_t key[CV_KEY_BYTES]);

/* ------------------------------------------------------------------------ */
/*  Loading. On error returns NULL and err holds one line,
 *  "FILE:LINE:COL: error: what is wrong"; nothing is half-loaded.
 *
 *  pseudonym_key is the broker's secret for the pseudonymise mask; NULL uses
 *  a fixed key derived from the protocol name, so `policy explain` and
 *  `policy test` output is repeatable.
 *
 *  A policy file is a regular file of at most CV_POLICY_FILE_MAX bytes: a
 *  FIFO or a device in its place (a reload reads it on the broker's loop)
 *  is refused, never waited on or read without end.                      */
#define CV_POLICY_FILE_MAX (64u * 1024 * 1024) /* 100,000 agencies take about 25 MB */

cv_policy_t *cv_policy_load_file(const char *path, const uint8_t *pseudonym_key, cv_error_t *err);
cv_policy_t *cv_policy_load_buffer(const char *buf, size_t len, const char *name,
                                   const uint8_t *pseudonym_key, cv_error_t *err);
void cv_policy_destroy(cv_policy_t **self_p);

/*  Every error, not only the first (`caveat policy check`): as above, and
 *  each error line also goes to each(error, arg) in the order found, up to
 *  CV_POLICY_ERRORS_MAX, then one line saying there are more. After an
 *  error the loader goes on where it safely can: an entry with an error is
 *  skipped and the others are still checked; an error in the levels,
 *  categories or agencies sections, which everything else names, stops it. */
#define CV_POLICY_ERRORS_MAX 100
typedef void cv_policy_error_fn(const char *error, void *arg);
cv_policy_t *cv_policy_load_file_each(const char *path, const uint8_t *pseudonym_key,
                                      cv_policy_error_fn *each, void *arg, cv_error_t *err);
cv_policy_t *cv_policy_load_buffer_each(const char *buf, size_t len, const char *name,
                                        const uint8_t *pseudonym_key, cv_policy_error_fn *each,
                                        void *arg, cv_error_t *err);

const char *cv_policy_protocol(const cv_policy_t *self);
int64_t cv_policy_version(const cv_policy_t *self);
/*  BLAKE2b-256 of the policy file's bytes, lowercase hex: names exactly the
 *  text that was in force, for audit records. */
const char *cv_policy_hash(const cv_policy_t *self);

int cv_policy_level_count(const cv_policy_t *self);
const char *cv_policy_level_name(const cv_policy_t *self, int level);
int cv_policy_level_find(const cv_policy_t *self, const char *name); /* -1 */

int cv_policy_agency_count(const cv_policy_t *self);
/*  True when a screening entry with that feed may send to the agency (by
 *  index): only such an agency may open a session on the feed. */
bool cv_policy_feed_recipient(const cv_policy_t *self, const char *feed, int agency);
const cv_agency_t *cv_policy_agency(const cv_policy_t *self, int index);
/*  The entries that decisions name (cv_decision_entry_name), in policy
 *  order, each with its kind ("rule", "screening"): what `policy test
 *  --coverage` checks the cases against, whatever kinds the language has. */
int cv_policy_entry_count(const cv_policy_t *self);
const char *cv_policy_entry_name(const cv_policy_t *self, int index); /* NULL */
const char *cv_policy_entry_kind(const cv_policy_t *self, int index); /* NULL */
/*  The restrictions, in policy order: a field decision's restriction
 *  (cv_field_decision_t) is one of these names. */
int cv_policy_restriction_count(const cv_policy_t *self);
const char *cv_policy_restriction_name(const cv_policy_t *self, int index);            /* NULL */
int cv_policy_agency_find(const cv_policy_t *self, const char *id);                    /* -1 */
int cv_policy_agency_by_key(const cv_policy_t *self, const uint8_t key[CV_KEY_BYTES]); /* -1 */

/*  The longest report id accepted, in bytes. */
#define CV_REPORT_ID_MAX 128

/*  Whether id could name a report: present, and as the check below wants
 *  a report's id (feedback names reports by id). */
bool cv_policy_report_id_ok(const char *id, cv_error_t *err);

/*  Checks a report against the policy before it is accepted: an id of at
 *  most CV_REPORT_ID_MAX bytes without control characters (the broker logs
 *  ids), known category and handling level, a handling code the policy
 *  defines, field markings on real paths with known levels. Returns false
 *  with err "PATH: what" when the report must be refused; the reason never
 *  quotes the id.                                                          */
bool cv_policy_validate_report(const cv_policy_t *self, const Caveat__Report *report,
                               cv_error_t *err);

/*  Retention: how long reports of category are kept after their creation
 *  (the policy's period for it, else its default), and the rule's text for
 *  the purge record ("retention.community_tension: 1y"). False when they
 *  are kept: no retention section, or no period and no default.           */
bool cv_policy_retention(const cv_policy_t *self, const char *category, int64_t *seconds,
                         const char **rule);

/*  The Graphviz DOT text of who may receive what (malloc'd).              */
char *cv_policy_graph(const cv_policy_t *self);

/*  What a reviewer must approve between two versions, one line per change:
 *  the protocol and version, levels, categories, handling codes,
 *  retention, agencies, rules, screening entries, and per (category,
 *  originator type, recipient) the fields gained, lost or masked
 *  differently; then "N changes: SECTION COUNT, ...". Malloc'd; the empty
 *  string when nothing differs.                                             */
char *cv_policy_diff(const cv_policy_t *old_policy, const cv_policy_t *new_policy);

/*  Warnings about a policy that loads but probably does not say what its
 *  author meant: an entry that denies every field, an entry shadowed by
 *  another, levels that look reversed. Each goes to each(warning, arg) as
 *  "FILE:LINE:COL: warning: what"; text is the policy's text, read again
 *  only for positions (NULL: none). Returns the number of warnings.       */
typedef void cv_policy_warning_fn(const char *warning, void *arg);
int cv_policy_lint(const cv_policy_t *policy, const char *text, size_t len,
                   cv_policy_warning_fn *each, void *arg);

/*  The policy text in the canonical layout, comments kept (malloc'd), or
 *  NULL with err set: text that is not YAML, a root that is not a mapping,
 *  anchors, aliases or tags, or a layout that would change what the text
 *  says (it is parsed again and compared). Formatting is idempotent.
 *  docs/policy.md gives the layout and which comments go where.          */
char *cv_policy_format(const char *text, size_t len, const char *name, cv_error_t *err);

/* ------------------------------------------------------------------------ */
/*  Deciding. A decision is reusable scratch space: decide into it again and
 *  again without allocating in the hot path.                               */

cv_decision_t *cv_decision_new(void);
void cv_decision_destroy(cv_decision_t **self_p);

/*  Approvals for a handling-code-5 report: the agency ids and agency types
 *  the originator has released it to. */
typedef struct {
    const char *const *to;
    size_t count;
} cv_approvals_t;

/*  Whether report's handling code holds it until its originator approves
 *  each release (originator_approval).                                    */
bool cv_policy_needs_approval(const cv_policy_t *self, const Caveat__Report *report);
/*  Whether name is an agency id or an agency type of the policy: what an
 *  approval may name.                                                     */
bool cv_policy_names_recipient(const cv_policy_t *self, const char *name);

/*  Decides whether report goes to agency recipient (an index), and which
 *  entries (rules, screening entries) release it. The originator is
 *  report->originator. approvals may be NULL. Returns delivered.           */
bool cv_policy_decide(const cv_policy_t *self, const Caveat__Report *report, int recipient,
                      const cv_approvals_t *approvals, cv_decision_t *decision);

bool cv_decision_delivered(const cv_decision_t *self);
/*  Names of the rules and screening entries that released the report.     */
int cv_decision_entry_count(const cv_decision_t *self);
const char *cv_decision_entry_name(const cv_decision_t *self, int index);
/*  The same entry's index in the policy (its place in the file), or -1. */
int cv_decision_entry_index(const cv_decision_t *self, int index);
/*  The entries the recipient is told released it (Delivery.rules): those
 *  above whose match and release its view shows (docs/policy.md, "The
 *  entries named"), or all of them when the view shows none.              */
int cv_decision_told_count(const cv_decision_t *self);
const char *cv_decision_told_name(const cv_decision_t *self, int index);
/*  The screening feed that released it, or NULL.                           */
const char *cv_decision_feed(const cv_decision_t *self);
/*  Why it was not delivered, or what capped it (levels, restrictions): one
 *  line each.                                                               */
int cv_decision_reason_count(const cv_decision_t *self);
const char *cv_decision_reason(const cv_decision_t *self, int index);

/*  Builds the recipient's view of report under the last decision: the
 *  envelope, and only the fields granted, masked as granted. Nothing
 *  withheld is copied. NULL when not delivered. Free with
 *  protobuf_c_message_free_unpacked(&view->base, NULL). For a caller that
 *  keeps the view past the next decision.                                  */
Caveat__Report *cv_decision_view(cv_decision_t *self, const Caveat__Report *report);

/*  Packs the view straight into buf, without building it: exactly the
 *  bytes protobuf_c_message_pack writes for cv_decision_view's result, and
 *  no malloc once the decision is warm. Returns the packed size; when that
 *  is more than cap, nothing is written (call again with a larger buf).
 *  0 when not delivered. Explanations
 *  work after it as after cv_decision_view. The fastest way to deliver: a
 *  packed message and a bytes field are the same on the wire.              */
size_t cv_decision_pack(cv_decision_t *self, const Caveat__Report *report, uint8_t *buf,
                        size_t cap);

/*  After cv_decision_view or cv_decision_pack:
 *  for each field present in the report, the decision ("share",
 *  "mask:NAME", "withheld") and why; and the restriction that capped it,
 *  if one did ("denied by restriction X" or "mask:year by restriction X").  */
typedef struct {
    const char *path;
    const char *decision;
    const char *why;
    const char *restriction; /* NULL unless a restriction capped the field */
} cv_field_decision_t;

int cv_decision_field_count(const cv_decision_t *self);
const cv_field_decision_t *cv_decision_field(const cv_decision_t *self, int index);

/*  After cv_policy_decide, cheaply (no view, no text): each leaf field
 *  present in the report, in schema order, and what the recipient is
 *  given of it: "share", "mask:NAME" or "withheld" (every field when not
 *  delivered). The envelope (docs/policy.md), which goes with every
 *  delivery, is left out. The strings are static and the same outcome is
 *  always the same pointer. A mask that does not fit a value withholds
 *  that value when the view is built; this says what was decided.
 *  Returns how many fields; the first cap of them are written.            */
int cv_decision_outcomes(cv_decision_t *self, const char **paths, const char **outcomes, int cap);
/*  After cv_policy_decide, more cheaply still: whether the recipient is
 *  given every field of the schema as it is (delivered, nothing masked or
 *  withheld), so that every outcome is "share" whatever the report holds.
 *  False says only that some field of the schema is not shared: the
 *  report may hold none of them. */
bool cv_decision_shares_all(cv_decision_t *self);
/*  After cv_policy_decide: the entry whose grants a delivery's are,
 *  exactly (one entry matched, no field of the report marked, nothing
 *  restricted for the recipient), else -1. Two such decisions on the same
 *  report with the same entry give the same outcomes, so a caller may
 *  take cv_decision_outcomes once for them.                               */
int cv_decision_grants_entry(cv_decision_t *self);
/*  After cv_policy_decide: a name for the delivery's view among the
 *  decisions on the same report under the same policy, or -1. Two
 *  decisions with the same name >= 0 pack the same bytes
 *  (cv_decision_pack), so a caller may pack the view once and copy it:
 *  the name is the grants' entry (cv_decision_grants_entry) and, when the
 *  entry pseudonymises, the recipient's organisation.                     */
int64_t cv_decision_view_key(cv_decision_t *self);

/* ------------------------------------------------------------------------ */
/*  Routing: which agencies to decide a report for, without deciding for
 *  every agency of the policy. cv_candidates_t is reusable scratch space,
 *  like a decision: one per thread.                                         */

typedef struct cv_candidates_t cv_candidates_t;

cv_candidates_t *cv_candidates_new(void);
void cv_candidates_destroy(cv_candidates_t **self_p);

/*  The agencies (indexes, ascending, each once) that some rule or screening
 *  entry could release report to. Every agency that cv_policy_decide
 *  delivers the report to, with or without approvals, is among them; so
 *  may be others, which deciding then refuses. Read from an index built at
 *  load, so the work grows with the candidates, not with the agencies.
 *  *agencies is borrowed from scratch and stays valid until the next call
 *  with it (deciding does not touch it). Returns how many: 0 when deciding
 *  refuses the report for everyone (unknown originator, category, level or
 *  handling code).                                                          */
int cv_policy_candidates(const cv_policy_t *self, const Caveat__Report *report,
                         cv_candidates_t *scratch, const int **agencies);

#ifdef __cplusplus
}
#endif
#endif
