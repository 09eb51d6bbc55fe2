/*  cv_error.c: one-line errors with an optional FILE:LINE:COL prefix. */
#include <stdarg.h>
#include <stdio.h>

#include "cv_proto.h"

void cv_error_set(cv_error_t *err, const char *file, int line, int col, const char *fmt, ...)
{
    if (!err)
        return;
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
