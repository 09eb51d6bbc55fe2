/*  audit_rig.h: the audit tests' rig: a data directory made by
 *  audit_fixture, its store open read-write (as the broker's, to tamper
 *  with and to append to) and its signing key. For cmocka tests (include
 *  cmocka.h first). */
#ifndef AUDIT_RIG_H
#define AUDIT_RIG_H

#include <stdio.h>
#include <stdlib.h>

#include "audit_fixture.h"
#include "cv_audit.h"

typedef struct {
    char dir[64];
    sqlite3 *db; /* read-write */
    cv_note_signer_t *signer;
} rig_t;

/*  A fresh directory under /tmp with audit_fixture_make's log of leaves,
 *  every and tail. */
static inline rig_t *rig_new(uint64_t leaves, uint64_t every, uint64_t tail)
{
    rig_t *rig = calloc(1, sizeof *rig);
    assert_non_null(rig);
    snprintf(rig->dir, sizeof rig->dir, "/tmp/cv-test-audit.XXXXXX");
    assert_non_null(mkdtemp(rig->dir));
    assert_true(audit_fixture_make(rig->dir, leaves, every, tail, NULL));
    char path[4096];
    snprintf(path, sizeof path, "%s/caveat.db", rig->dir);
    assert_int_equal(sqlite3_open(path, &rig->db), SQLITE_OK);
    sqlite3_busy_timeout(rig->db, 5000);
    cv_error_t err = {0};
    rig->signer = cv_audit_key_open(rig->dir, NULL, &err);
    assert_non_null(rig->signer);
    return rig;
}

/*  The rig and its directory gone. */
static inline void rig_destroy(rig_t **rig_p)
{
    rig_t *rig = *rig_p;
    cv_note_signer_destroy(&rig->signer);
    sqlite3_close(rig->db);
    audit_fixture_remove(rig->dir);
    free(rig);
    *rig_p = NULL;
}

static inline void exec_sql(rig_t *rig, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(rig->db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

#endif
