/*  fuzz_broker_frame: the broker's real frame handling, without sockets
 *  (cv_broker_new_offline, cv_broker_feed_all), over a store in a
 *  temporary directory with the example policy. An input is a run of
 *  messages, each
 *
 *      agency (1 byte, an index into the policy's agencies, modulo)
 *      control (1 byte: the connection, 0-3, in its low two bits;
 *               bit 5 (FAULT): not a frame but a fault of the store:
 *                 from here the write the agency byte names fails
 *                 (fault_name; 0: none), the frame's bytes are skipped;
 *               bit 6 (SAME_TURN): handled in the turn of the message
 *                 before, as the loop drains several frames a turn;
 *               bit 7 (WENT): that connection went first, as the
 *                 broker reads it from libzmq's monitor)
 *      length (2 bytes, little-endian) and that many bytes of frame
 *
 *  so the fuzzer can say Hello, publish, acknowledge, approve, give
 *  feedback and ask for admin work across agencies and connections, in
 *  turns of one frame or many, while any one of the store's writes
 *  fails. A failing write rolls the whole turn back, which is the path
 *  an agency on a short disk can push every turn down.
 *
 *  After the input, with the fault lifted:
 *   - every stored report reads back (cv_broker_check_store): no frame
 *     may leave the store holding what the broker cannot read;
 *   - every report a PublishAck said OK is in the store, or was purged in
 *     this input or quarantined, with a record of it, under its id and the
 *     agency that published it: nothing acknowledged is lost, whatever
 *     failed in its turn or after;
 *   - every Feedback and Approval a FeedbackAck or an ApprovalAck said OK
 *     has its leaf in the audit log, written in this input, under the
 *     report's id and the agency that sent it (and for an approval, its
 *     "to"): what was answered stored is recorded, and the leaf commits
 *     with what it records.
 *
 *  The broker (and its store) is kept across inputs, and made again every
 *  FRESH_EVERY inputs, so that the check stays cheap. */
#include <czmq.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "cv_broker.h"
#include "fuzz.h"
#include "wire.pb-c.h"

#define FRESH_EVERY 500
#define CONNECTION  0x03
#define FAULT       0x20
#define SAME_TURN   0x40
#define WENT        0x80

static char dir[] = "/tmp/caveat-fuzz-broker-XXXXXX";
static cv_broker_t *broker;
static sqlite3 *db;          /* the fuzzer's own connection to the broker's store */
static cv_policy_t *example; /* the example policy, for the agencies' ids */
static int agencies;

/*  Every write to every table of the store, each with a trigger that
 *  fails it while fuzz_fault.fail names it (its index + 1). The trigger
 *  fails with an ordinary SQL error (integer overflow), not a constraint,
 *  which the broker might take for a duplicate. */
static const char *const tables[] = {
    "reports",           "routes",          "sent",    "queues", "feedback",   "approvals",
    "approval_releases", "approval_routes", "reviews", "purges", "quarantine", "tlog_leaves",
    "tlog_checkpoints",  "tlog_frontier",   "meta"};
static const char *const ops[] = {"INSERT", "UPDATE", "DELETE"};
#define N_TABLES (sizeof tables / sizeof *tables)
#define N_OPS    (sizeof ops / sizeof *ops)
#define N_FAULTS (N_TABLES * N_OPS + 1) /* 0: none */

static void store_exec(const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fuzz_fail("the fuzzer's own SQL failed: %s: %s", msg ? msg : "?", sql);
}

/*  The fault table and its triggers, in the store the broker just made. */
static void add_faults(void)
{
    char path[160];
    snprintf(path, sizeof path, "%s/data/caveat.db", dir);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        fuzz_fail("the broker's store: %s", sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 5000);
    store_exec("PRAGMA synchronous = OFF"); /* as the broker's here: a fault costs no fsync */
    store_exec("BEGIN; CREATE TABLE fuzz_fault(fail INTEGER NOT NULL);"
               "INSERT INTO fuzz_fault VALUES (0)");
    for (size_t t = 0; t < N_TABLES; t++)
        for (size_t o = 0; o < N_OPS; o++) {
            char sql[512];
            snprintf(sql, sizeof sql,
                     "CREATE TRIGGER fuzz_fail_%s_%s BEFORE %s ON %s"
                     " WHEN (SELECT fail FROM fuzz_fault) = %zu"
                     " BEGIN SELECT abs(-9223372036854775807 - 1); END",
                     tables[t], ops[o], ops[o], tables[t], t * N_OPS + o + 1);
            store_exec(sql);
        }
    store_exec("COMMIT");
}

static void set_fault(int fault)
{
    char sql[64];
    snprintf(sql, sizeof sql, "UPDATE fuzz_fault SET fail = %d", fault);
    store_exec(sql);
}

/* ------------------------------------------------------------------------ */
/*  What the broker acknowledged.                                           */

/*  A report is named by its id and originator (another agency may use the
 *  same id). A PublishAck goes to the connection its publish came on, and
 *  a publish stores the report under the key that sent it; so each run of
 *  frames names, per connection, the one agency whose frames it carried
 *  there (NO_AGENCY: none, or several, whose answers cannot be told apart
 *  here and are looked for by id alone). */
#define NO_AGENCY -1
static int agency_on[CONNECTION + 1];

typedef enum { ACKED_REPORT, ACKED_FEEDBACK, ACKED_APPROVAL } acked_kind_t;
typedef struct {
    acked_kind_t kind;
    char *id;   /* the report's */
    int agency; /* NO_AGENCY: any */
    char *to;   /* an approval's */
    /*  An approval that released no one new: one given before, whose leaf
     *  may be of an earlier input (a repeat writes none, by design). */
    bool repeat;
} acked_t;
static acked_t *acked; /* what an acknowledgement said OK to, this input */
static size_t n_acked, acked_room;
/*  The purges and leaves recorded before this input: one of them does not
 *  account for what was acknowledged in it. */
static int64_t purges_before, leaves_before;

static char *copy(const char *text)
{
    char *c = strdup(text ? text : "");
    if (!c)
        abort();
    return c;
}

static void note_acked(acked_kind_t kind, const char *id, int agency, const char *to, bool repeat)
{
    if (n_acked == acked_room) {
        acked_room = acked_room ? 2 * acked_room : 64;
        if (!(acked = realloc(acked, acked_room * sizeof *acked)))
            abort();
    }
    acked[n_acked++] = (acked_t){kind, copy(id), agency, to ? copy(to) : NULL, repeat};
}

static bool ok(bool has_status, Caveat__Wire__Status status)
{
    return has_status && status == CAVEAT__WIRE__STATUS__OK;
}

static void on_sent(void *arg, uint32_t connection, const uint8_t *bytes, size_t size)
{
    (void)arg;
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(NULL, size, bytes);
    if (!frame)
        fuzz_fail("the broker sent a frame that does not unpack (%zu bytes)", size);
    int agency = connection <= CONNECTION ? agency_on[connection] : NO_AGENCY;
    if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK)
        for (size_t i = 0; i < frame->publish_ack->n_results; i++) {
            const Caveat__Wire__PublishResult *r = frame->publish_ack->results[i];
            if (ok(r->has_status, r->status)) {
                if (!r->report_id || !*r->report_id)
                    fuzz_fail("a report acknowledged OK without its id");
                note_acked(ACKED_REPORT, r->report_id, agency, NULL, false);
            }
        }
    const Caveat__Wire__FeedbackAck *f = frame->feedback_ack;
    if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK && ok(f->has_status, f->status))
        note_acked(ACKED_FEEDBACK, f->report_id, agency, NULL, false);
    const Caveat__Wire__ApprovalAck *a = frame->approval_ack;
    if (frame->body_case == CAVEAT__WIRE__FRAME__BODY_APPROVAL_ACK && ok(a->has_status, a->status))
        note_acked(ACKED_APPROVAL, a->report_id, agency, a->to,
                   !a->has_released || a->released == 0);
    caveat__wire__frame__free_unpacked(frame, NULL);
}

/*  Each connection's one agency in run[0..n), or NO_AGENCY. */
static void name_senders(const cv_broker_frame_t *run, size_t n)
{
    for (int c = 0; c <= CONNECTION; c++)
        agency_on[c] = NO_AGENCY;
    bool mixed[CONNECTION + 1] = {false};
    for (size_t i = 0; i < n; i++) {
        uint32_t c = run[i].connection;
        if (agency_on[c] == NO_AGENCY && !mixed[c])
            agency_on[c] = run[i].agency;
        else if (agency_on[c] != run[i].agency) {
            mixed[c] = true;
            agency_on[c] = NO_AGENCY;
        }
    }
}

static void feed_run(const cv_broker_frame_t *run, size_t n)
{
    name_senders(run, n);
    cv_broker_feed_all(broker, run, n);
}

static sqlite3_stmt *prepared(const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fuzz_fail("the fuzzer's own SQL failed: %s", sqlite3_errmsg(db));
    return s;
}

static int64_t last_rowid(const char *sql)
{
    sqlite3_stmt *s = prepared(sql);
    if (sqlite3_step(s) != SQLITE_ROW)
        fuzz_fail("the fuzzer's own SQL failed: %s", sqlite3_errmsg(db));
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/*  Whether the report is stored, or was purged in this input, or is in
 *  quarantine: its originator the agency's (any, for NO_AGENCY). */
static bool kept_or_accounted(const acked_t *a, const char *originator)
{
    sqlite3_stmt *s =
        prepared("SELECT EXISTS(SELECT 1 FROM reports WHERE id = ?1 AND (?2 IS NULL OR"
                 "   originator = ?2))"
                 " OR EXISTS(SELECT 1 FROM purges WHERE report_id = ?1 AND rowid > ?3 AND"
                 "   (?2 IS NULL OR originator = ?2))"
                 " OR EXISTS(SELECT 1 FROM quarantine WHERE id = ?1 AND (?2 IS NULL OR"
                 "   originator = ?2))");
    sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
    if (originator)
        sqlite3_bind_text(s, 2, originator, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, purges_before);
    if (sqlite3_step(s) != SQLITE_ROW)
        fuzz_fail("the fuzzer's own SQL failed: %s", sqlite3_errmsg(db));
    bool found = sqlite3_column_int(s, 0) != 0;
    sqlite3_finalize(s);
    return found;
}

#define PURGES_NOW "SELECT coalesce(max(rowid), 0) FROM purges"
#define LEAVES_NOW "SELECT coalesce(max(idx), 0) FROM tlog_leaves"

/*  Whether the feedback or approval has its leaf, written in this input
 *  (a repeated approval's: at any time), from sender (any, for NULL): a
 *  feedback's is its "from", an approval's the report's originator. */
static bool recorded(const acked_t *a, const char *sender)
{
    sqlite3_stmt *s = prepared(
        "SELECT EXISTS(SELECT 1 FROM (SELECT CAST(data AS TEXT) AS leaf FROM tlog_leaves"
        "  WHERE idx > ?1) WHERE json_extract(leaf, '$.event') = ?2"
        "  AND json_extract(leaf, '$.report') = ?3 AND (?4 IS NULL OR json_extract(leaf, ?5) = ?4)"
        "  AND (?6 IS NULL OR json_extract(leaf, '$.to') = ?6))");
    bool feedback = a->kind == ACKED_FEEDBACK;
    sqlite3_bind_int64(s, 1, a->repeat ? 0 : leaves_before);
    sqlite3_bind_text(s, 2, feedback ? "feedback" : "approval", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, a->id, -1, SQLITE_STATIC);
    if (sender)
        sqlite3_bind_text(s, 4, sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, feedback ? "$.from" : "$.originator", -1, SQLITE_STATIC);
    if (a->to)
        sqlite3_bind_text(s, 6, a->to, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_ROW)
        fuzz_fail("the fuzzer's own SQL failed: %s", sqlite3_errmsg(db));
    bool found = sqlite3_column_int(s, 0) != 0;
    sqlite3_finalize(s);
    return found;
}

static void check_acked(void)
{
    static const char *const what[] = {"report", "feedback on", "approval of"};
    for (size_t i = 0; i < n_acked; i++) {
        const char *sender =
            acked[i].agency == NO_AGENCY ? NULL : cv_policy_agency(example, acked[i].agency)->id;
        bool found = acked[i].kind == ACKED_REPORT ? kept_or_accounted(&acked[i], sender)
                                                   : recorded(&acked[i], sender);
        if (!found)
            fuzz_fail("%s %s from %s was acknowledged OK and is not %s", what[acked[i].kind],
                      acked[i].id, sender ? sender : "an agency",
                      acked[i].kind == ACKED_REPORT ? "in the store" : "in the audit log");
        free(acked[i].id);
        free(acked[i].to);
    }
    n_acked = 0;
}

/* ------------------------------------------------------------------------ */
/*  The broker and its directory.                                           */

static void fresh_broker(void)
{
    cv_broker_destroy(&broker);
    sqlite3_close(db);
    db = NULL;
    char command[256];
    snprintf(command, sizeof command, "rm -rf %s/data", dir);
    if (system(command) != 0)
        abort();
    char policy[128], data[128];
    snprintf(policy, sizeof policy, "%s/policy.yaml", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    cv_broker_config_t config = {
        .policy_path = policy, .data_dir = data, .sync = CV_SYNC_OFF, .quiet = true};
    cv_error_t err = {0};
    if (!(broker = cv_broker_new_offline(&config, &err)))
        fuzz_fail("offline broker: %s", err.msg);
    cv_broker_on_sent(broker, on_sent, NULL);
    add_faults();
}

/*  At exit: the broker's threads and sockets end before czmq's own
 *  shutdown, and the directory goes. */
static void tear_down(void)
{
    cv_broker_destroy(&broker);
    sqlite3_close(db);
    cv_policy_destroy(&example);
    free(acked);
    char command[256];
    snprintf(command, sizeof command, "rm -rf %s", dir);
    if (system(command) != 0)
        fprintf(stderr, "fuzz_broker_frame: cannot remove %s\n", dir);
}

static void set_up(void)
{
    if (!mkdtemp(dir))
        abort();
    size_t len = 0;
    char *text = fuzz_source_file("examples/policy.yaml", &len);
    char path[128];
    snprintf(path, sizeof path, "%s/policy.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0)
        abort();
    free(text);
    fresh_broker();
    atexit(tear_down);
    cv_error_t err = {0};
    example = cv_policy_load_file(path, NULL, &err);
    if (!example)
        fuzz_fail("example policy: %s", err.msg);
    agencies = cv_policy_agency_count(example);
}

/* ------------------------------------------------------------------------ */

#define RUN_MAX 64 /* frames of one turn the fuzzer gathers before feeding */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inputs;
    if (!broker)
        set_up();
    else if (++inputs % FRESH_EVERY == 0)
        fresh_broker();
    purges_before = last_rowid(PURGES_NOW);
    leaves_before = last_rowid(LEAVES_NOW);
    cv_broker_frame_t run[RUN_MAX];
    size_t n_run = 0;
    while (size >= 4) {
        uint8_t control = data[1];
        size_t len = (size_t)data[2] | (size_t)data[3] << 8;
        if (len > size - 4)
            len = size - 4;
        bool joins = (control & SAME_TURN) && !(control & (FAULT | WENT)) && n_run < RUN_MAX;
        if (!joins && n_run > 0) { /* the run so far is a turn (or more) of its own */
            feed_run(run, n_run);
            n_run = 0;
        }
        if (control & FAULT)
            set_fault(data[0] % (int)N_FAULTS);
        else {
            if (control & WENT) /* its frames now are those it sent before going */
                cv_broker_went(broker, control & CONNECTION);
            run[n_run++] =
                (cv_broker_frame_t){data[0] % agencies, control & CONNECTION, data + 4, len};
        }
        data += 4 + len;
        size -= 4 + len;
    }
    if (n_run > 0)
        feed_run(run, n_run);
    set_fault(0);
    cv_error_t err = {0};
    if (cv_broker_check_store(broker, &err) < 0)
        fuzz_fail("the store holds what the broker cannot read: %s", err.msg);
    check_acked();
    return 0;
}
