/*  audit_fixture.h: a data directory holding an audit log and nothing else,
 *  made with the audit library as the broker will make it, so that the
 *  `caveat audit` commands and the tests run without a broker. */
#ifndef CV_AUDIT_FIXTURE_H
#define CV_AUDIT_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define AUDIT_FIXTURE_ORIGIN "caveat.test/audit"

/*  Makes dir (mode 0700) when absent, with dir/audit.key (named
 *  AUDIT_FIXTURE_ORIGIN when new) and dir/caveat.db (WAL, mode 0600), and
 *  appends, after the leaves it has, leaves event leaves ("accepted",
 *  report R-<index>), a checkpoint signed after every every leaves (0:
 *  none but the last) and after the last, then tail more leaves not
 *  checkpointed. Writes each leaf appended to out, a line each (NULL:
 *  nowhere). Prints what failed on stderr. */
bool audit_fixture_make(const char *dir, uint64_t leaves, uint64_t every, uint64_t tail, FILE *out);

/*  Removes dir and the files in it (a data directory holds no others). */
void audit_fixture_remove(const char *dir);

/*  The leaf audit_fixture_make writes at index, malloc'd. */
char *audit_fixture_leaf(uint64_t index);

#endif
