/*  cv_error.c: one-line errors with an optional FILE:LINE:COL prefix, and
 *  reading a whole input, which is where most errors start. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_proto.h"

void cv_error_set(cv_error_t *err, const char *file, int line, int col, const char *fmt, ...)
{
    if (!err)
        return;
    err->code = CV_ERR_FAILED;
    err->broker_code = 0;
    size_t used = 0;
    if (file && line > 0)
        used = (size_t)snprintf(err->msg, sizeof err->msg, "%s:%d:%d: error: ", file, line, col);
    else if (file)
        used = (size_t)snprintf(err->msg, sizeof err->msg, "%s: error: ", file);
    if (used >= sizeof err->msg)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + used, sizeof err->msg - used, fmt, ap);
    va_end(ap);
}

char *cv_read_file(const char *path, size_t *len)
{
    FILE *file = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!file)
        return NULL;
    char *buf = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&buf, &size);
    char chunk[8192];
    size_t n;
    while (mem && (n = fread(chunk, 1, sizeof chunk, file)) > 0)
        fwrite(chunk, 1, n, mem);
    int failed = ferror(file);
    if (file != stdin)
        fclose(file);
    if (!mem || fclose(mem) != 0 || failed) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    *len = size;
    return buf;
}
