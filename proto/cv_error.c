/*  cv_error.c: one-line errors with an optional FILE:LINE:COL prefix, and
 *  reading a whole input, which is where most errors start. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/*  Up to size bytes of fd, to its end: fewer when it ends first. */
static ssize_t read_up_to(int fd, char *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

char *cv_read_regular_file(const char *path, size_t max, size_t *len, unsigned *mode,
                           cv_error_t *err)
{
    /* O_NONBLOCK: a FIFO is refused below, not waited on here */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        cv_error_set(err, NULL, 0, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    char *text = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        cv_error_set(err, NULL, 0, 0, "cannot read: not a regular file");
    else if ((unsigned long long)st.st_size > max)
        cv_error_set(err, NULL, 0, 0, "cannot read: larger than %zu bytes", max);
    else if (!(text = malloc((size_t)st.st_size + 1)))
        cv_error_set(err, NULL, 0, 0, "cannot read: out of memory");
    else {
        /* one byte more than its size: a file that grew is not taken cut,
         * nor one that shrank (a policy caught half rewritten in place) */
        ssize_t got = read_up_to(fd, text, (size_t)st.st_size + 1);
        if (got < 0 || (size_t)got != (size_t)st.st_size) {
            cv_error_set(err, NULL, 0, 0, "cannot read: %s",
                         got < 0 ? strerror(errno) : "it changed while it was read");
            free(text);
            text = NULL;
        } else {
            text[got] = '\0';
            *len = (size_t)got;
            if (mode)
                *mode = (unsigned)(st.st_mode & 07777);
        }
    }
    close(fd);
    return text;
}
