/*  cv_log.c: escaped, rate-limited log lines (cv_log.h). */
#include <czmq.h>
#include <stdarg.h>

#include "cv_log.h"

#define LINE_MAX_BYTES 1024 /* longer lines are cut: a log line, not a dump */

typedef struct {
    int64_t second; /* the second (monotonic) the count is for */
    int lines;      /* written in that second */
    uint64_t held;  /* suppressed since the last line written */
} budget_t;

struct cv_log_t {
    bool verbose, quiet;
    zhashx_t *budgets; /* agency id -> budget_t; agencies come from the policy */
    uint64_t suppressed;
};

static void budget_free(void **item)
{
    free(*item);
    *item = NULL;
}

cv_log_t *cv_log_new(bool verbose, bool quiet)
{
    cv_log_t *self = calloc(1, sizeof *self);
    if (!self)
        abort(); /* out of memory: docs/architecture.md, "Memory" */
    self->verbose = verbose;
    self->quiet = quiet;
    self->budgets = zhashx_new();
    zhashx_set_destructor(self->budgets, budget_free);
    return self;
}

void cv_log_destroy(cv_log_t **self_p)
{
    if (!*self_p)
        return;
    zhashx_destroy(&(*self_p)->budgets);
    free(*self_p);
    *self_p = NULL;
}

/*  Writes "caveatd: " and line, escaped, in one write. */
static void emit_line(const char *line)
{
    char out[sizeof "caveatd: " + 4 * LINE_MAX_BYTES + 1];
    size_t n = (size_t)snprintf(out, sizeof out, "caveatd: ");
    for (const unsigned char *c = (const unsigned char *)line; *c; c++) {
        if (*c < 0x20 || *c == 0x7f || *c == '\\')
            n += (size_t)snprintf(out + n, sizeof out - n, "\\x%02x", *c);
        else
            out[n++] = (char)*c;
    }
    out[n++] = '\n';
    fwrite(out, 1, n, stderr);
}

static void emit(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void emit(const char *fmt, va_list ap)
{
    char line[LINE_MAX_BYTES];
    vsnprintf(line, sizeof line, fmt, ap);
    emit_line(line);
}

void cv_log_info(cv_log_t *self, const char *fmt, ...)
{
    if (self->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(fmt, ap);
    va_end(ap);
}

void cv_log_debug(cv_log_t *self, const char *fmt, ...)
{
    if (!self->verbose || self->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(fmt, ap);
    va_end(ap);
}

static void say_held(const char *agency, uint64_t held)
{
    char line[LINE_MAX_BYTES];
    snprintf(line, sizeof line, "%s: %" PRIu64 " more lines not logged (over %d a second)", agency,
             held, CV_LOG_AGENCY_LINES);
    emit_line(line);
}

/*  True when agency may log a line now. */
static bool take(cv_log_t *self, const char *agency)
{
    budget_t *b = zhashx_lookup(self->budgets, agency);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b)
            abort();
        zhashx_insert(self->budgets, agency, b);
    }
    int64_t second = zclock_mono() / 1000;
    if (second != b->second) {
        b->second = second;
        b->lines = 0;
        if (b->held) {
            say_held(agency, b->held);
            b->held = 0;
        }
    }
    if (b->lines >= CV_LOG_AGENCY_LINES) {
        b->held++;
        self->suppressed++;
        return false;
    }
    b->lines++;
    return true;
}

void cv_log_agency(cv_log_t *self, const char *agency, bool debug, const char *fmt, ...)
{
    if ((debug && !self->verbose) || self->quiet || !take(self, agency))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(fmt, ap);
    va_end(ap);
}

uint64_t cv_log_suppressed(const cv_log_t *self)
{
    return self->suppressed;
}
