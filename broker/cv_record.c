/*  cv_record.c: caveatd's events in its audit log; see cv_record.h.
 *
 *  A leaf is the JSON object cv_audit_leaf_begin opens ("event", "time")
 *  with the event's keys after it. Appending goes through the store's own
 *  connection, after cv_store_writing has begun the transaction the turn
 *  asked for.
 */
#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cv_alloc.h"
#include "cv_hasher.h"
#include "cv_record.h"

_Static_assert(CV_HASH_BYTES == CV_CHECKSUM_BYTES, "a leaf hash is a hasher's sum");

#define SALTS_AT_ONCE 256
/*  Blocks of salts drawn from the salts' own key before it is drawn again
 *  from the system (salt_refill). */
#define SALT_BLOCKS_A_KEY 64

struct cv_record_t {
    cv_store_t *store;
    cv_note_signer_t *signer;
    cv_tlog_t *log;
    /*  The transaction's leaves, one after another in one buffer, kept
     *  from one transaction to the next: a writer and its buffer a leaf
     *  (allocated, grown, freed) cost more than a small leaf's keys. */
    cv_json_writer_t *leaves;
    /*  leaves, while a leaf of recipients and their views (an "accepted"
     *  or "approval" leaf) is written; else NULL */
    cv_json_writer_t *accepted;
    bool off; /* cv_record_turn_off: nothing more is written */
    /*  Random bytes for the leaves' salts (leaf_begin), drawn a block of
     *  SALTS_AT_ONCE at a time (salt_refill). */
    struct {
        /* a block of salts, and the next key while it is drawn */
        uint8_t bytes[CV_RECORD_SALT_BYTES * SALTS_AT_ONCE + crypto_stream_chacha20_ietf_KEYBYTES];
        size_t left; /* salts' bytes unused, at the end of the block */
        uint8_t key[crypto_stream_chacha20_ietf_KEYBYTES];
        unsigned blocks; /* drawn with key since the system gave it */
    } salt;
    /*  What an accepted leaf says that depends on the policy alone, written
     *  once per policy rather than once per report: its "policy" member, and
     *  each agency's "agency" and "organisation" (by its index in the
     *  policy) the first time it is a recipient. Their text is the same as
     *  the writer's would be. The policy's digest (of its file's bytes, so
     *  the same agencies at the same indexes) says which policy they are of. */
    struct {
        char digest[2 * CV_HASH_BYTES + 1];
        const cv_policy_t *policy; /* the report's, while its leaf is written */
        char *policy_member;
        size_t policy_len;
        char **agency; /* NULL until the agency is a recipient */
        size_t *agency_len;
        /*  Each agency's entry up to its view when it was last given a
         *  report under one entry, with nothing said why (released_part):
         *  the commonest recipient, the same from report to report. */
        struct released {
            int entry; /* the entry's index in the policy */
            char *members;
            size_t len;
        } * released;
        int agencies;
    } parts;
    /*  Its distinct views: what a delivered recipient is given of each
     *  field the report holds. Recipients given the same share one. */
    struct {
        const char **paths; /* the fields the report holds, schema order */
        const char **rows;  /* view v's outcomes at v * cap; room for rows_room outcomes */
        const char **row;   /* the recipient's, being compared */
        int fields, cap;    /* fields, and room for them in a row */
        int n;
        size_t rows_room;
        /*  The view that is the whole report, or -1: recipients given every
         *  field as it is (cv_decision_shares_all) are given it without the
         *  report's fields being listed, and its row is never read. */
        int whole;
        /*  Views known by the entry that decided them alone
         *  (cv_decision_grants_entry): recipients under the same entry
         *  have the same view, found without taking their outcomes. */
        struct {
            int entry, view;
        } * by_entry;
        int n_by_entry, by_entry_room;
    } views;
    struct {
        size_t *lens;      /* each leaf's bytes, back to back in leaves, not yet written */
        const void **data; /* where they are, once the last is written (flush) */
        size_t n, cap;
        size_t bytes; /* theirs in all: where the next leaf starts */
    } pending;
    /*  The leaves' hashes, taken beside the loop while their rows go in:
     *  SHA-256 of every leaf was a twentieth of the loop's time. */
    cv_hasher_t *hasher; /* NULL when no thread could start: taken in line */
    cv_hash_job_t *jobs;
    size_t jobs_cap;
    uint64_t flushed_first; /* the index of the last flush's first leaf */
    int64_t looked;         /* when a flush without leaves last looked for a due checkpoint */
};

static void parts_clear(cv_record_t *self)
{
    for (int i = 0; i < self->parts.agencies; i++) {
        free(self->parts.agency[i]);
        free(self->parts.released[i].members);
    }
    free(self->parts.released);
    free(self->parts.agency);
    free(self->parts.agency_len);
    free(self->parts.policy_member);
    memset(&self->parts, 0, sizeof self->parts);
}

cv_record_t *cv_record_new(cv_store_t *store, const char *data_dir, cv_error_t *err)
{
    cv_record_t *self = calloc(1, sizeof *self);
    if (!self) {
        cv_error_set(err, NULL, 0, 0, "out of memory");
        return NULL;
    }
    self->store = store;
    self->hasher = cv_hasher_new("cv-leaf-hashes");
    self->leaves = cv_json_writer_new(0);
    if (!self->leaves) {
        cv_error_set(err, NULL, 0, 0, "out of memory");
        cv_record_destroy(&self);
        return NULL;
    }
    self->signer = cv_audit_key_open(data_dir, NULL, err);
    self->log = self->signer ? cv_tlog_open(cv_store_db(store), self->signer, err) : NULL;
    if (!self->log)
        cv_record_destroy(&self);
    return self;
}

void cv_record_destroy(cv_record_t **self_p)
{
    cv_record_t *self = *self_p;
    if (!self)
        return;
    parts_clear(self);
    free(self->views.paths);
    free(self->views.rows);
    free(self->views.row);
    free(self->views.by_entry);
    cv_json_writer_destroy(&self->leaves);
    free(self->pending.lens);
    free(self->pending.data);
    cv_hasher_destroy(&self->hasher);
    free(self->jobs);
    cv_tlog_destroy(&self->log);
    cv_note_signer_destroy(&self->signer);
    sodium_memzero(&self->salt, sizeof self->salt); /* salts of leaves to come, and their key */
    free(self);
    *self_p = NULL;
}

/*  Ends the leaf being written (leaf_begin) and keeps it for
 *  cv_record_flush: the log's frontier is read and written once a
 *  transaction, not once a leaf. */
static bool append(cv_record_t *self, cv_error_t *err)
{
    if (self->off) {
        cv_json_writer_rewind(self->leaves, self->pending.bytes);
        return true;
    }
    cv_json_object_end(self->leaves);
    if (!cv_json_writer_text(self->leaves)) {
        /* this leaf alone is lost (the turn fails and rolls back): the
         * leaves before it stay as they were, for what the turn does next */
        cv_json_writer_rewind(self->leaves, self->pending.bytes);
        cv_error_set(err, NULL, 0, 0, "audit: out of memory writing a leaf");
        return false;
    }
    if (self->pending.n == self->pending.cap) {
        size_t cap = self->pending.cap ? self->pending.cap * 2 : 64;
        self->pending.lens = cv_xrealloc(self->pending.lens, cap * sizeof *self->pending.lens);
        self->pending.data = cv_xrealloc(self->pending.data, cap * sizeof *self->pending.data);
        self->pending.cap = cap;
    }
    size_t end = cv_json_writer_length(self->leaves);
    assert(end > self->pending.bytes);
    self->pending.lens[self->pending.n++] = end - self->pending.bytes;
    self->pending.bytes = end;
    cv_json_writer_rewind(self->leaves, end); /* the next leaf starts after this one */
    return true;
}

/*  A transaction's leaves rarely take more; a larger buffer, or one that
 *  could not grow, is let go. */
#define LEAVES_KEPT (1u << 20)

void cv_record_discard(cv_record_t *self)
{
    self->pending.n = 0;
    self->pending.bytes = 0;
    if (cv_json_writer_text(self->leaves) && cv_json_writer_length(self->leaves) <= LEAVES_KEPT) {
        cv_json_writer_rewind(self->leaves, 0);
        return;
    }
    cv_json_writer_destroy(&self->leaves);
    if (!(self->leaves = cv_json_writer_new(0)))
        abort(); /* out of memory, as cv_alloc.h's allocations do */
}

static void leaf_sum(uint8_t sum[CV_CHECKSUM_BYTES], const void *bytes, size_t len)
{
    cv_hash_t leaf;
    cv_merkle_leaf_hash(bytes, len, &leaf);
    memcpy(sum, leaf.bytes, CV_HASH_BYTES);
}

static bool leaf_hash_taken(void *arg, uint64_t i, cv_hash_t *out)
{
    cv_record_t *self = arg;
    memcpy(out->bytes, cv_hasher_take(self->hasher, self->jobs, (size_t)i), CV_HASH_BYTES);
    return true;
}

/*  Writes the pending leaves: their hashes start on the hasher's thread,
 *  and the log takes them once their rows are in. */
static bool append_pending(cv_record_t *self, cv_error_t *err)
{
    size_t n = self->pending.n;
    const char *text = cv_json_writer_text(self->leaves);
    assert(text); /* append refused a leaf the writer failed on */
    for (size_t i = 0, at = 0; i < n; at += self->pending.lens[i++])
        self->pending.data[i] = text + at;
    if (n > self->jobs_cap) {
        self->jobs_cap = n > 2 * self->jobs_cap ? n : 2 * self->jobs_cap;
        free(self->jobs);
        self->jobs = cv_xcalloc(self->jobs_cap, sizeof *self->jobs);
    }
    for (size_t i = 0; i < n; i++)
        self->jobs[i] = (cv_hash_job_t){.bytes = (const uint8_t *)self->pending.data[i],
                                        .len = self->pending.lens[i],
                                        .fn = leaf_sum};
    cv_hasher_start(self->hasher, self->jobs, n);
    bool ok =
        cv_tlog_append_many(self->log, (const void *const *)self->pending.data, self->pending.lens,
                            n, leaf_hash_taken, self, &self->flushed_first, err);
    cv_hasher_end(self->hasher);
    return ok;
}

bool cv_record_flush(cv_record_t *self, bool checkpoint, cv_error_t *err)
{
    assert(!self->accepted);
    bool appended = self->pending.n > 0;
    bool ok = !appended || (cv_store_writing(self->store, err) && append_pending(self, err));
    cv_record_discard(self);
    int64_t now = (int64_t)time(NULL);
    /* looking costs two queries: a turn that added no leaf can only find a
     * checkpoint due by its age, which changes by the second */
    bool look = checkpoint || appended || now != self->looked;
    if (!appended)
        self->looked = now;
    if (!ok || !look ||
        (!checkpoint &&
         !cv_tlog_checkpoint_due(self->log, CV_RECORD_EVERY_LEAVES, CV_RECORD_EVERY_SECONDS, now)))
        return ok;
    return cv_store_writing(self->store, err) && cv_tlog_checkpoint(self->log, now, err) >= 0;
}

/*  A block of salts. The system's random bytes cost about 25 µs a block
 *  of 4 KB on a virtual machine (a system call, and ChaCha20 in the
 *  kernel without vector instructions), about 1 % of workload 1's loop;
 *  libsodium's ChaCha20 gives it in about 2.5 µs. So the block is the
 *  keystream of a key the system gave, and the 32 bytes after the block
 *  replace the key at once ("fast key erasure"): salts already written
 *  cannot be worked out from the broker's memory. The system gives a
 *  new key every SALT_BLOCKS_A_KEY blocks. */
static void salt_refill(cv_record_t *self)
{
    static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES]; /* a key is used once */
    const size_t salts = sizeof self->salt.bytes - sizeof self->salt.key;
    if (self->salt.blocks++ % SALT_BLOCKS_A_KEY == 0)
        randombytes_buf(self->salt.key, sizeof self->salt.key);
    crypto_stream_chacha20_ietf(self->salt.bytes, sizeof self->salt.bytes, nonce, self->salt.key);
    memcpy(self->salt.key, self->salt.bytes + salts, sizeof self->salt.key);
    sodium_memzero(self->salt.bytes + salts, sizeof self->salt.key);
    self->salt.left = salts;
}

/*  A leaf's hash goes to other agencies: an inclusion proof, which every
 *  receipt carries, holds the hashes of the leaves beside the receipt's
 *  own. A leaf another agency could guess whole (feedback on a report it
 *  received too: the originator, one of some fifty senders, one of four
 *  values, a time to the millisecond) would tell it what that leaf says.
 *  So every leaf the broker writes carries 16 random bytes, "salt", after
 *  its time: its hash says nothing to whoever does not hold the leaf. */
static cv_json_writer_t *leaf_begin(cv_record_t *self, const char *event)
{
    assert(!self->accepted); /* one leaf at a time in self->leaves */
    cv_json_writer_t *w = self->leaves;
    /* it holds the pending leaves and nothing else: a turn's leaves
     * forgotten (cv_record_discard) take their bytes with them */
    assert(cv_json_writer_length(w) == self->pending.bytes);
    cv_audit_leaf_open(w, event, (uint64_t)zclock_time());
    if (self->salt.left < CV_RECORD_SALT_BYTES)
        salt_refill(self);
    uint8_t *salt = self->salt.bytes + CV_RECORD_SALT_BYTES * SALTS_AT_ONCE - self->salt.left;
    cv_json_key(w, "salt");
    cv_json_hex(w, salt, CV_RECORD_SALT_BYTES);
    sodium_memzero(salt, CV_RECORD_SALT_BYTES);
    self->salt.left -= CV_RECORD_SALT_BYTES;
    return w;
}

static void key_string(cv_json_writer_t *w, const char *key, const char *value)
{
    cv_json_key(w, key);
    cv_json_string(w, value ? value : "");
}

/*  A leaf about one report: a report is named by its id and originator
 *  together (the store's names), in every leaf that names one. */
static cv_json_writer_t *report_leaf_begin(cv_record_t *self, const char *event,
                                           const char *report_id, const char *originator)
{
    cv_json_writer_t *w = leaf_begin(self, event);
    key_string(w, "report", report_id);
    key_string(w, "originator", originator);
    return w;
}

bool cv_record_turn_off(cv_record_t *self, cv_error_t *err)
{
    leaf_begin(self, "audit off");
    bool ok = append(self, err);
    self->off = true;
    return ok;
}

static void key_hex(cv_json_writer_t *w, const char *key, const uint8_t *bytes, size_t len)
{
    cv_json_key(w, key);
    cv_json_hex(w, bytes, len);
}

/*  A part is written as an object of its own, then taken without its
 *  braces (members_of). Out of memory aborts, as caveatd does
 *  (cv_alloc.h): a part missing would leave every leaf without it. */
static cv_json_writer_t *part_begin(void)
{
    cv_json_writer_t *w = cv_json_writer_new(0);
    if (!w)
        abort();
    cv_json_object_begin(w);
    return w;
}

/*  The members the part's writer wrote, the caller's; the writer is
 *  destroyed. */
static char *members_of(cv_json_writer_t **w, size_t *len)
{
    cv_json_object_end(*w);
    char *text = cv_json_writer_take(w, len);
    if (!text)
        abort();
    assert(*len >= 2 && text[0] == '{' && text[*len - 1] == '}');
    *len -= 2;
    memmove(text, text + 1, *len);
    text[*len] = '\0';
    return text;
}

/*  The policy's parts, those of another policy dropped. */
static void parts_render(cv_record_t *self, const cv_policy_t *policy, const char *digest)
{
    parts_clear(self);
    snprintf(self->parts.digest, sizeof self->parts.digest, "%s", digest);
    cv_json_writer_t *w = part_begin();
    cv_json_key(w, "policy");
    cv_json_object_begin(w);
    key_string(w, "protocol", cv_policy_protocol(policy));
    cv_json_key(w, "version");
    cv_json_uint(w, (uint64_t)cv_policy_version(policy));
    key_string(w, "digest", digest);
    cv_json_object_end(w);
    self->parts.policy_member = members_of(&w, &self->parts.policy_len);
    int n = cv_policy_agency_count(policy);
    self->parts.agency = cv_xcalloc((size_t)n + 1, sizeof *self->parts.agency);
    self->parts.agency_len = cv_xcalloc((size_t)n + 1, sizeof *self->parts.agency_len);
    self->parts.released = cv_xcalloc((size_t)n + 1, sizeof *self->parts.released);
    self->parts.agencies = n;
}

/*  The parts of policy's accepted leaves, made again when it is another
 *  policy than theirs. */
static void parts_of(cv_record_t *self, const cv_policy_t *policy)
{
    const char *digest = cv_policy_hash(policy);
    if (!self->parts.policy_member || strcmp(digest, self->parts.digest) != 0)
        parts_render(self, policy, digest);
    self->parts.policy = policy;
}

/*  The "agency" and "organisation" members of the policy's agency at
 *  index, written the first time they are asked for. */
static const char *agency_part(cv_record_t *self, int index, size_t *len)
{
    assert(index >= 0 && index < self->parts.agencies);
    if (!self->parts.agency[index]) {
        const cv_agency_t *agency = cv_policy_agency(self->parts.policy, index);
        cv_json_writer_t *w = part_begin();
        key_string(w, "agency", agency->id);
        key_string(w, "organisation", agency->organisation);
        self->parts.agency[index] = members_of(&w, &self->parts.agency_len[index]);
    }
    *len = self->parts.agency_len[index];
    return self->parts.agency[index];
}

/*  The policy's member and the recipients' list, key, opened in the
 *  leaf w begun: cv_record_recipient adds to it; the leaf's end closes it
 *  and writes the views the recipients were given. */
static void recipients_begin(cv_record_t *self, cv_json_writer_t *w, const cv_policy_t *policy,
                             const char *key)
{
    parts_of(self, policy);
    cv_json_members(w, self->parts.policy_member, self->parts.policy_len);
    cv_json_key(w, key);
    cv_json_array_begin(w);
    self->accepted = w;
    self->views.n = 0;
    self->views.fields = -1; /* not known until a recipient is given the report */
    self->views.whole = -1;
    self->views.n_by_entry = 0;
}

/*  The accepted leaf is the log's hot path: when off, not even built. */
void cv_record_accepted_begin(cv_record_t *self, const Caveat__Report *report,
                              const uint8_t stored[CV_DIGEST_BYTES], const cv_policy_t *policy)
{
    assert(!self->accepted);
    if (self->off)
        return;
    cv_json_writer_t *w = report_leaf_begin(self, "accepted", report->id, report->originator);
    key_string(w, "category", report->category);
    key_hex(w, "stored", stored, CV_DIGEST_BYTES);
    /* which sum "stored" is: said since stores took SHA-256, so a leaf
     * without it (every leaf of a store of format 4 or before) is BLAKE2b */
    if (cv_store_checksum_fn(self->store) == cv_checksum_sha256)
        key_string(w, "stored_hash", cv_store_checksum_name(self->store));
    recipients_begin(self, w, policy, "to");
}

/*  The decision's outcomes into views.row, views.paths filled the first
 *  time; rows grow with the report's fields. */
static void take_outcomes(cv_record_t *self, cv_decision_t *decision)
{
    int n;
    while ((n = cv_decision_outcomes(decision, self->views.paths, self->views.row,
                                     self->views.cap)) > self->views.cap) {
        self->views.cap = n;
        self->views.paths = cv_xrealloc(self->views.paths, (size_t)n * sizeof(char *));
        self->views.row = cv_xrealloc(self->views.row, (size_t)n * sizeof(char *));
        /* a report's first row: none of the old width to move */
        assert(self->views.n == (self->views.whole >= 0 ? 1 : 0));
    }
    assert(self->views.fields < 0 || self->views.fields == n);
    self->views.fields = n;
}

/*  Whether every outcome of row is "share". */
static bool row_shares_all(const char **row, int fields)
{
    for (int i = 0; i < fields; i++)
        if (strcmp(row[i], "share") != 0)
            return false;
    return true;
}

/*  The index of the view the recipient was given: an earlier recipient's
 *  when the same, else a new one. A recipient given every field as it is
 *  has the whole report, known without asking for each field's outcome:
 *  the leaf's commonest case, and the outcomes were a sixth of its cost. */
static int view_by_outcomes(cv_record_t *self, cv_decision_t *decision)
{
    bool whole = cv_decision_shares_all(decision);
    if (whole && self->views.whole >= 0)
        return self->views.whole;
    if (!whole) {
        take_outcomes(self, decision);
        if (self->views.whole >= 0 && row_shares_all(self->views.row, self->views.fields))
            return self->views.whole;
    }
    size_t width = (size_t)self->views.cap, bytes = (size_t)self->views.fields * sizeof(char *);
    for (int v = 0; v < self->views.n; v++) {
        if (v == self->views.whole) /* the whole report's: its row is not written */
            continue;
        const char **row = self->views.rows + (size_t)v * width;
        if (whole ? row_shares_all(row, self->views.fields)
                  : bytes == 0 || memcmp(row, self->views.row, bytes) == 0)
            return whole ? (self->views.whole = v) : v;
    }
    if (whole) /* its row is never read, so none is written */
        return self->views.whole = self->views.n++;
    /* room counted in outcomes, not rows: a report with more fields than
     * the last has wider rows in the same table */
    size_t need = ((size_t)self->views.n + 1) * width;
    if (need > self->views.rows_room || !self->views.rows) { /* never NULL: memcpy's */
        size_t room = self->views.rows_room ? 2 * self->views.rows_room : 8 * width + 1;
        while (room < need)
            room *= 2;
        self->views.rows = cv_xrealloc(self->views.rows, room * sizeof(char *));
        self->views.rows_room = room;
    }
    if (bytes) /* a first row without fields may have no row buffer yet */
        memcpy(self->views.rows + (size_t)self->views.n * width, self->views.row, bytes);
    return self->views.n++;
}

/*  view_by_outcomes, asked once for each entry that decides alone: at a
 *  fan-out most recipients are given the report under a rule another
 *  recipient was given it under, and taking their outcomes (marking the
 *  report's fields, working out the grants, a row of strings to compare)
 *  was two thirds of writing their entry in the leaf. */
static int view_of(cv_record_t *self, cv_decision_t *decision)
{
    int entry = cv_decision_grants_entry(decision);
    for (int i = 0; entry >= 0 && i < self->views.n_by_entry; i++)
        if (self->views.by_entry[i].entry == entry)
            return self->views.by_entry[i].view;
    int view = view_by_outcomes(self, decision);
    if (entry >= 0) {
        if (self->views.n_by_entry == self->views.by_entry_room) {
            self->views.by_entry_room =
                self->views.by_entry_room ? 2 * self->views.by_entry_room : 8;
            self->views.by_entry =
                cv_xrealloc(self->views.by_entry,
                            (size_t)self->views.by_entry_room * sizeof *self->views.by_entry);
        }
        self->views.by_entry[self->views.n_by_entry].entry = entry;
        self->views.by_entry[self->views.n_by_entry++].view = view;
    }
    return view;
}

/*  Whether the report went, under which entries, or why not. */
static void write_release(cv_json_writer_t *w, cv_decision_t *decision)
{
    bool delivered = cv_decision_delivered(decision);
    cv_json_key(w, "delivered");
    cv_json_bool(w, delivered);
    if (delivered && cv_decision_feed(decision))
        key_string(w, "feed", cv_decision_feed(decision));
    cv_json_key(w, "rules");
    cv_json_array_begin(w);
    for (int i = 0; i < cv_decision_entry_count(decision); i++)
        cv_json_string(w, cv_decision_entry_name(decision, i));
    cv_json_array_end(w);
    if (cv_decision_reason_count(decision) > 0) {
        cv_json_key(w, "reasons");
        cv_json_array_begin(w);
        for (int i = 0; i < cv_decision_reason_count(decision); i++)
            cv_json_string(w, cv_decision_reason(decision, i));
        cv_json_array_end(w);
    }
}

/*  The agency's members and write_release's, when the report went to it
 *  under one entry with nothing said why: written once for the agency and
 *  that entry (an index means the same entry for as long as the policy's
 *  digest is the same), not for every report, where writing them was most
 *  of a recipient's cost. NULL for any other decision. */
static const char *released_part(cv_record_t *self, int agency, cv_decision_t *decision,
                                 size_t *len)
{
    if (!cv_decision_delivered(decision) || cv_decision_entry_count(decision) != 1 ||
        cv_decision_reason_count(decision) != 0)
        return NULL;
    assert(agency >= 0 && agency < self->parts.agencies);
    int entry = cv_decision_entry_index(decision, 0);
    struct released *released = &self->parts.released[agency];
    if (!released->members || released->entry != entry) {
        size_t agency_len;
        const char *agency_members = agency_part(self, agency, &agency_len);
        cv_json_writer_t *w = part_begin();
        cv_json_members(w, agency_members, agency_len);
        write_release(w, decision);
        free(released->members);
        released->members = members_of(&w, &released->len);
        released->entry = entry;
    }
    *len = released->len;
    return released->members;
}

/*  Who it went to, under which entries, and which view; or why not. */
void cv_record_recipient(cv_record_t *self, int agency, cv_decision_t *decision)
{
    cv_json_writer_t *w = self->accepted;
    assert(w || self->off);
    if (!w)
        return;
    size_t len;
    const char *part = released_part(self, agency, decision, &len);
    cv_json_object_begin(w);
    if (part) {
        cv_json_members(w, part, len);
    } else {
        part = agency_part(self, agency, &len);
        cv_json_members(w, part, len);
        write_release(w, decision);
    }
    if (cv_decision_delivered(decision)) {
        cv_json_key(w, "view");
        cv_json_uint(w, (uint64_t)view_of(self, decision));
    }
    cv_json_object_end(w);
}

/*  The indexes (into "fields") of row's fields whose outcome is outcome,
 *  as key: [...]; nothing when there are none. */
static void write_group(cv_record_t *self, const char **row, const char *key, const char *outcome)
{
    cv_json_writer_t *w = self->accepted;
    bool any = false;
    for (int i = 0; i < self->views.fields; i++) {
        if (strcmp(row[i], outcome) != 0)
            continue;
        if (!any) {
            cv_json_key(w, key);
            cv_json_array_begin(w);
            any = true;
        }
        cv_json_uint(w, (uint64_t)i);
    }
    if (any)
        cv_json_array_end(w);
}

/*  A view: {"masked":{"MASK":[i...]}, "withheld":[i...]}, each part only
 *  when it has a field; the fields it does not name are shared. */
static void write_view(cv_record_t *self, const char **row)
{
    static const char mask[] = "mask:";
    cv_json_writer_t *w = self->accepted;
    cv_json_object_begin(w);
    bool masked = false;
    for (int i = 0; i < self->views.fields; i++) {
        bool first = strncmp(row[i], mask, sizeof mask - 1) == 0;
        for (int j = 0; first && j < i; j++)
            first = row[j] != row[i];
        if (!first)
            continue;
        if (!masked) {
            cv_json_key(w, "masked");
            cv_json_object_begin(w);
            masked = true;
        }
        write_group(self, row, row[i] + sizeof mask - 1, row[i]);
    }
    if (masked)
        cv_json_object_end(w);
    write_group(self, row, "withheld", "withheld");
    cv_json_object_end(w);
}

/*  Whether every view shares every field (the outcomes are static
 *  strings, the same pointer for the same outcome). */
static bool all_shared(const cv_record_t *self)
{
    const char *share = NULL;
    for (int v = 0; v < self->views.n; v++)
        for (int i = 0; v != self->views.whole && i < self->views.fields; i++) {
            const char *outcome = self->views.rows[(size_t)v * (size_t)self->views.cap + i];
            if (!share && strcmp(outcome, "share") == 0)
                share = outcome;
            if (outcome != share)
                return false;
        }
    return true;
}

/*  The fields the report holds, once, and each distinct view of them.
 *  When every recipient was given every field, the one view is {} and the
 *  fields are not listed: "all of the stored report" says it exactly
 *  (stored names its bytes), and the leaf stays small where nothing is
 *  redacted. */
static void write_views(cv_record_t *self)
{
    cv_json_writer_t *w = self->accepted;
    if (!all_shared(self)) {
        cv_json_key(w, "fields");
        cv_json_array_begin(w);
        for (int i = 0; i < self->views.fields; i++)
            cv_json_string(w, self->views.paths[i]);
        cv_json_array_end(w);
    }
    cv_json_key(w, "views");
    cv_json_array_begin(w);
    for (int v = 0; v < self->views.n; v++) {
        if (v == self->views.whole) { /* nothing masked, nothing withheld */
            cv_json_object_begin(w);
            cv_json_object_end(w);
        } else {
            write_view(self, self->views.rows + (size_t)v * (size_t)self->views.cap);
        }
    }
    cv_json_array_end(w);
}

bool cv_record_accepted_end(cv_record_t *self, cv_error_t *err)
{
    assert(self->accepted || self->off);
    if (!self->accepted)
        return true;
    cv_json_array_end(self->accepted);
    if (self->views.n > 0)
        write_views(self);
    self->accepted = NULL;
    return append(self, err);
}

bool cv_record_refused(cv_record_t *self, const char *sender, const char *report_id,
                       const char *status, cv_error_t *err)
{
    cv_json_writer_t *w = leaf_begin(self, "refused");
    /* what is no id (empty: the publish result's for one too long, with a
     * control character or not UTF-8) is not written: the sender chose it */
    bool id =
        report_id && *report_id && strnlen(report_id, CV_REPORT_ID_MAX + 1) <= CV_REPORT_ID_MAX;
    cv_json_key(w, "report");
    cv_json_string(w, id ? report_id : NULL);
    key_string(w, "originator", sender);
    key_string(w, "status", status);
    return append(self, err);
}

bool cv_record_refusals(cv_record_t *self, const char *sender, size_t count, cv_error_t *err)
{
    cv_json_writer_t *w = leaf_begin(self, "refusals");
    key_string(w, "originator", sender);
    cv_json_key(w, "count");
    cv_json_uint(w, count);
    return append(self, err);
}

bool cv_record_policy(cv_record_t *self, const cv_policy_t *policy, cv_error_t *err)
{
    cv_json_writer_t *w = leaf_begin(self, "policy");
    key_string(w, "protocol", cv_policy_protocol(policy));
    cv_json_key(w, "version");
    cv_json_uint(w, (uint64_t)cv_policy_version(policy));
    key_string(w, "digest", cv_policy_hash(policy));
    return append(self, err);
}

bool cv_record_policy_refused(cv_record_t *self, const char *why, cv_error_t *err)
{
    cv_json_writer_t *w = leaf_begin(self, "policy refused");
    key_string(w, "why", why);
    return append(self, err);
}

bool cv_record_admin(cv_record_t *self, const char *agency, const char *action, bool ok,
                     cv_error_t *err)
{
    cv_json_writer_t *w = leaf_begin(self, "admin");
    key_string(w, "agency", agency);
    key_string(w, "action", action);
    cv_json_key(w, "ok");
    cv_json_bool(w, ok);
    return append(self, err);
}

bool cv_record_review(cv_record_t *self, const char *originator, const char *report_id,
                      const cv_review_t *review, cv_error_t *err)
{
    cv_json_writer_t *w = report_leaf_begin(self, "review", report_id, originator);
    key_string(w, "reviewer", review->reviewer);
    if (review->dispose) {
        cv_json_key(w, "dispose");
        cv_json_bool(w, true);
    } else {
        char until[CV_TIMESTAMP_MAX];
        key_string(w, "retain_until", cv_timestamp_format(review->retain_until, until));
    }
    key_string(w, "reason", review->reason);
    return append(self, err);
}

bool cv_record_purged(cv_record_t *self, const char *originator, const char *report_id,
                      const char *category, const char *rule, cv_error_t *err)
{
    cv_json_writer_t *w = report_leaf_begin(self, "purged", report_id, originator);
    key_string(w, "category", category);
    key_string(w, "rule", rule);
    return append(self, err);
}

/*  The approval leaf names the report's category and, for each agency
 *  released, its organisation and view, as the accepted leaf does for
 *  its recipients: readers count and show a release by approval from its
 *  own leaf, without the report's accepted leaf (which may be before the
 *  period they read, or, for an agency a reload added, not name it). */
void cv_record_approval_begin(cv_record_t *self, const Caveat__Report *report, const char *to,
                              const cv_policy_t *policy)
{
    assert(!self->accepted);
    if (self->off)
        return;
    cv_json_writer_t *w = report_leaf_begin(self, "approval", report->id, report->originator);
    key_string(w, "to", to);
    key_string(w, "category", report->category);
    recipients_begin(self, w, policy, "recipients");
}

bool cv_record_approval_end(cv_record_t *self, const char *const *released, size_t n_released,
                            cv_error_t *err)
{
    assert(self->accepted || self->off);
    if (!self->accepted)
        return true;
    cv_json_writer_t *w = self->accepted;
    cv_json_array_end(w);
    /* the agencies' ids again, as leaves before "recipients" had them */
    cv_json_key(w, "released");
    cv_json_array_begin(w);
    for (size_t i = 0; i < n_released; i++)
        cv_json_string(w, released[i]);
    cv_json_array_end(w);
    if (self->views.n > 0)
        write_views(self);
    self->accepted = NULL;
    return append(self, err);
}

void cv_record_approval_drop(cv_record_t *self)
{
    if (!self->accepted)
        return;
    cv_json_writer_rewind(self->leaves, self->pending.bytes);
    self->accepted = NULL;
}

bool cv_record_feedback(cv_record_t *self, const char *report_id, const char *originator,
                        const char *from, const char *value, cv_error_t *err)
{
    cv_json_writer_t *w = report_leaf_begin(self, "feedback", report_id, originator);
    key_string(w, "from", from);
    key_string(w, "value", value);
    return append(self, err);
}

uint64_t cv_record_flushed_first(const cv_record_t *self)
{
    return self->flushed_first;
}

int64_t cv_record_checkpointed(cv_record_t *self, cv_error_t *err)
{
    return cv_tlog_checkpointed(self->log, err);
}

sqlite3 *cv_record_db(const cv_record_t *self)
{
    return cv_store_db(self->store);
}

bool cv_record_delivered(cv_record_t *self, const char *agency, const char *feed,
                         const cv_delivered_t *deliveries, size_t n, size_t *position,
                         cv_error_t *err)
{
    assert(n >= 1 && n <= CV_RECORD_DELIVERIES_PER_LEAF);
    cv_json_writer_t *w = leaf_begin(self, "delivered");
    key_string(w, "agency", agency);
    cv_json_key(w, "feed");
    cv_json_string(w, feed && *feed ? feed : NULL);
    cv_json_key(w, "deliveries");
    cv_json_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        const cv_delivered_t *d = &deliveries[i];
        assert(i == 0 || d->seq > deliveries[i - 1].seq);
        cv_json_object_begin(w);
        key_string(w, "report", d->report_id);
        cv_json_key(w, "seq");
        cv_json_uint(w, d->seq);
        key_hex(w, "view", d->view, CV_HASH_BYTES);
        cv_json_object_end(w);
    }
    cv_json_array_end(w);
    if (position)
        *position = self->pending.n;
    return append(self, err);
}
