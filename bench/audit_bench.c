/*  audit_bench: `caveat audit verify` over a large audit log, in leaves/s.
 *
 *  Builds a data directory (under /tmp, removed at the end) with --leaves
 *  leaves (default 1,000,000) through the audit library, as the broker
 *  writes them: "accepted" leaves of a two-agency partnership (one
 *  recipient, the fields the report holds and one view), appended 1,000 a
 *  transaction with a checkpoint after each, as the broker signs every
 *  1,000 leaves. Then verifies it the way `caveat audit verify` does
 *  (cv_audit_verify on the store opened read-only) --runs times (default
 *  2: the first reads the file from disk, the next from the page cache).
 *  Target: at least 1,000,000 leaves/s.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_common.h"
#include "cv_audit.h"

#define TARGET_LEAVES_PER_S 1000000.0
#define BATCH               1000 /* leaves a transaction, and a checkpoint after each */

static const char *const fields[] = {
    "author",    "grading.source", "grading.intelligence",   "grading.handling_code", "priority",
    "area",      "subjects.name",  "subjects.date_of_birth", "subjects.address",      "summary",
    "narrative", "indicators",
};

static void key_string(cv_json_writer_t *w, const char *key, const char *value)
{
    cv_json_key(w, key);
    cv_json_string(w, value);
}

/*  An accepted leaf as caveatd writes it for one recipient (in the shape
 *  of broker/cv_record.c), malloc'd. */
static char *accepted_leaf(uint64_t index)
{
    char id[48];
    snprintf(id, sizeof id, "r-%012" PRIx64 "%012" PRIx64, index, index * 2654435761u);
    cv_json_writer_t *w = cv_audit_leaf_begin("accepted", UINT64_C(1796083200000) + index);
    key_string(w, "report", id);
    key_string(w, "originator", "publisher");
    key_string(w, "category", index % 3 ? "community_tension" : "vulnerable_individual");
    key_string(w, "stored", "73a4a99d03d29a4775213027111c88cfc94d45bd0830aef18be43d7d772493ec");
    cv_json_key(w, "policy");
    cv_json_object_begin(w);
    key_string(w, "protocol", "bench-throughput");
    cv_json_key(w, "version");
    cv_json_uint(w, 1);
    key_string(w, "digest", "8922c94df55f126165c042bae4f53f2196aeef4d9d02194cbe247e76443b1f32");
    cv_json_object_end(w);
    cv_json_key(w, "to");
    cv_json_array_begin(w);
    cv_json_object_begin(w);
    key_string(w, "agency", "subscriber");
    key_string(w, "organisation", "subscriber-org");
    cv_json_key(w, "delivered");
    cv_json_bool(w, true);
    cv_json_key(w, "rules");
    cv_json_array_begin(w);
    cv_json_string(w, "everything");
    cv_json_array_end(w);
    cv_json_key(w, "view");
    cv_json_uint(w, 0);
    cv_json_object_end(w);
    cv_json_array_end(w);
    cv_json_key(w, "fields");
    cv_json_array_begin(w);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        cv_json_string(w, fields[i]);
    cv_json_array_end(w);
    cv_json_key(w, "views");
    cv_json_array_begin(w);
    cv_json_object_begin(w);
    cv_json_object_end(w);
    cv_json_array_end(w);
    return cv_audit_leaf_end(&w);
}

static bool exec(sqlite3 *db, const char *sql)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return true;
    fprintf(stderr, "audit_bench: %s: %s\n", sql, sqlite3_errmsg(db));
    return false;
}

/*  One transaction of BATCH leaves (fewer at the end) and a checkpoint. */
static bool append_batch(sqlite3 *db, cv_tlog_t *log, uint64_t first, uint64_t n, size_t *bytes)
{
    char *leaves[BATCH];
    size_t lens[BATCH];
    for (uint64_t i = 0; i < n; i++) {
        leaves[i] = accepted_leaf(first + i);
        lens[i] = strlen(leaves[i]);
        *bytes += lens[i];
    }
    cv_error_t err = {0};
    bool ok = exec(db, "BEGIN IMMEDIATE") &&
              cv_tlog_append_many(log, (const void *const *)leaves, lens, (size_t)n, NULL, NULL,
                                  NULL, &err) &&
              cv_tlog_checkpoint(log, 1796083200 + (int64_t)first, &err) >= 0;
    if (!ok && err.msg[0])
        fprintf(stderr, "audit_bench: %s\n", err.msg);
    for (uint64_t i = 0; i < n; i++)
        free(leaves[i]);
    return exec(db, ok ? "COMMIT" : "ROLLBACK") && ok;
}

static bool build(const char *dir, uint64_t leaves, size_t *bytes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/caveat.db", dir);
    cv_error_t err = {0};
    cv_note_signer_t *signer = cv_audit_key_open(dir, "caveat.bench/audit", &err);
    sqlite3 *db = NULL;
    bool ok = signer && sqlite3_open(path, &db) == SQLITE_OK &&
              exec(db, "PRAGMA journal_mode=WAL") && exec(db, "PRAGMA synchronous=OFF");
    cv_tlog_t *log = ok ? cv_tlog_open(db, signer, &err) : NULL;
    if (!log)
        fprintf(stderr, "audit_bench: %s: %s\n", dir, err.msg[0] ? err.msg : "cannot open");
    ok = log != NULL;
    for (uint64_t at = 0; ok && at < leaves; at += BATCH)
        ok = append_batch(db, log, at, leaves - at < BATCH ? leaves - at : BATCH, bytes);
    cv_tlog_destroy(&log);
    sqlite3_close(db);
    cv_note_signer_destroy(&signer);
    return ok;
}

/*  One verification as `caveat audit verify` does it: its seconds, or -1. */
static double verify(const char *dir, uint64_t leaves)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, CV_AUDIT_KEY_FILE);
    cv_error_t err = {0};
    uint64_t start = bench_now_ns();
    cv_note_signer_t *signer = cv_note_signer_load(path, &err);
    sqlite3 *db = signer ? cv_audit_open_readonly(dir, &err) : NULL;
    cv_audit_summary_t summary;
    bool good = db && cv_audit_verify(db, cv_note_signer_verifier(signer), &summary, &err);
    double seconds = (double)(bench_now_ns() - start) / 1e9;
    sqlite3_close(db);
    cv_note_signer_destroy(&signer);
    if (!good || summary.leaves != leaves) {
        fprintf(stderr, "audit_bench: verify: %s\n", good ? "wrong number of leaves" : err.msg);
        return -1;
    }
    return seconds;
}

int main(int argc, char **argv)
{
    uint64_t leaves = 1000000;
    int runs = 2;
    for (int i = 1; i < argc; i++) {
        bool value = i + 1 < argc;
        if (value && strcmp(argv[i], "--leaves") == 0)
            leaves = strtoull(argv[++i], NULL, 10);
        else if (value && strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: audit_bench [--leaves N] [--runs R]\n");
            return 2;
        }
    }
    if (sodium_init() < 0 || leaves == 0 || runs < 1) {
        fprintf(stderr, "audit_bench: bad arguments or no libsodium\n");
        return 2;
    }
    char dir[] = "/tmp/cv-audit-bench.XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "audit_bench: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    double load = bench_load_average();
    size_t bytes = 0;
    uint64_t start = bench_now_ns();
    bool ok = build(dir, leaves, &bytes);
    double built = (double)(bench_now_ns() - start) / 1e9;
    if (ok)
        printf("audit_bench: %" PRIu64 " leaves of %.0f B on average, a checkpoint every %d, "
               "built in %.1f s\n",
               leaves, (double)bytes / (double)leaves, BATCH, built);
    double best = -1;
    for (int r = 0; ok && r < runs; r++) {
        double seconds = verify(dir, leaves);
        ok = seconds > 0;
        if (ok)
            printf("verify run %d: %.2f s, %.0f leaves/s\n", r + 1, seconds,
                   (double)leaves / seconds);
        if (ok && (best < 0 || seconds < best))
            best = seconds;
    }
    bench_remove_tree(dir);
    if (!ok)
        return 1;
    double rate = (double)leaves / best;
    printf("\n%-34s %-18s %-12s %s\n", "metric", "figure", "target", "result");
    char figure[32];
    snprintf(figure, sizeof figure, "%.0f/s", rate);
    printf("%-34s %-18s %-12s %s\n", "audit verify, best run", figure, ">= 1000000/s",
           bench_verdict(rate >= TARGET_LEAVES_PER_S));
    double after = bench_load_average();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("load average %.2f before, %.2f after, %ld cores%s\n", load, after, cores,
           load > (double)cores || after > (double)cores ? ": NOT COMPARABLE" : "");
    return 0;
}
