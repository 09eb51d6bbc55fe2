/*  audit_fixture DIR LEAVES [EVERY [TAIL]]: a data directory with an audit
 *  log, LEAVES more leaves in it, a checkpoint every EVERY of them (0 or
 *  absent: only after the last) and TAIL more leaves not yet checkpointed
 *  (audit_fixture.h); prints each leaf added, a line each. For the
 *  command-line tests, tests/tlogcheck, and by hand. */
#include <stdio.h>
#include <stdlib.h>

#include "audit_fixture.h"

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: audit_fixture DIR LEAVES [EVERY [TAIL]]\n");
        return 2;
    }
    uint64_t leaves = strtoull(argv[2], NULL, 10);
    uint64_t every = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
    uint64_t tail = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
    return audit_fixture_make(argv[1], leaves, every, tail, stdout) ? 0 : 1;
}
