/*  fuzz_common.c: failing loudly, and the repository's example files. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_proto.h"
#include "fuzz.h"

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

char *fuzz_source_file(const char *relative, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", CAVEAT_SOURCE_DIR, relative);
    char *text = cv_read_file(path, len);
    if (!text)
        fuzz_fail("%s: %s", path, strerror(errno));
    return text;
}
