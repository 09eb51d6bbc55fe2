/*  cv_log.c: escaped, rate-limited log lines (cv_log.h). */
#include <czmq.h>
#include <stdarg.h>
#include <sys/time.h>

#include "cv_alloc.h"
#include "cv_log.h"
#include "cv_proto.h"

#define LINE_MAX_BYTES 1024 /* longer lines are cut: a log line, not a dump */

typedef struct {
    int64_t second; /* the second (monotonic) the count is for */
    int lines;      /* written in that second */
    uint64_t held;  /* suppressed since the last line written */
} budget_t;

typedef enum { LEVEL_DEBUG, LEVEL_INFO, LEVEL_WARNING, LEVEL_ERROR } level_t;

static const char *const level_names[] = {"debug", "info", "warning", "error"};

/*  A line waiting for its turn's commit (cv_log_agency_on_commit). */
typedef struct {
    char *agency, *line;
    bool debug;
} held_line_t;

struct cv_log_t {
    cv_log_format_t format;
    bool verbose, quiet;
    zhashx_t *budgets; /* agency id -> budget_t; agencies come from the policy */
    uint64_t suppressed;
    struct {
        held_line_t *lines;
        size_t n, cap;
    } held;
};

static void budget_free(void **item)
{
    free(*item);
    *item = NULL;
}

cv_log_t *cv_log_new(cv_log_format_t format, bool verbose, bool quiet)
{
    cv_log_t *self = calloc(1, sizeof *self);
    if (!self)
        abort(); /* out of memory: docs/architecture.md, "Memory" */
    self->format = format;
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
    cv_log_settle(*self_p, false);
    free((*self_p)->held.lines);
    zhashx_destroy(&(*self_p)->budgets);
    free(*self_p);
    *self_p = NULL;
}

/*  Now in RFC 3339, UTC, with milliseconds. */
static void format_time(char out[32])
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

/*  "TIME LEVEL caveatd: " and line, escaped as cv_text_write does (C0,
 *  DEL, C1, line separators, bidirectional controls and bytes that are
 *  not UTF-8: an id or a peer's text cannot move a terminal's cursor,
 *  start a line or show itself reversed), in one write. */
static void emit_text(level_t level, const char *line)
{
    char out[64 + 4 * LINE_MAX_BYTES + 2], time[32]; /* "\xNN" at most a byte */
    format_time(time);
    FILE *text = fmemopen(out, sizeof out, "w");
    if (!text) { /* out of memory: the line's level and time, never its value unescaped */
        fprintf(stderr, "%s %s caveatd: (a line lost: out of memory)\n", time, level_names[level]);
        return;
    }
    fprintf(text, "%s %s caveatd: ", time, level_names[level]);
    cv_text_write(text, line, strlen(line));
    fputc('\n', text);
    long n = ftell(text);
    fclose(text);
    if (n > 0)
        fwrite(out, 1, (size_t)n, stderr);
}

/*  One JSON object: the writer escapes what JSON must. */
static void emit_json(level_t level, const char *agency, const char *line)
{
    char time[32];
    format_time(time);
    cv_json_writer_t *w = cv_json_writer_new(0);
    cv_json_object_begin(w);
    cv_json_key(w, "time");
    cv_json_string(w, time);
    cv_json_key(w, "level");
    cv_json_string(w, level_names[level]);
    if (agency) {
        cv_json_key(w, "agency");
        cv_json_string(w, agency);
    }
    cv_json_key(w, "message");
    cv_json_string(w, line);
    cv_json_object_end(w);
    const char *text = cv_json_writer_text(w);
    if (text)
        fprintf(stderr, "%s\n", text);
    cv_json_writer_destroy(&w);
}

static void emit_line(const cv_log_t *self, level_t level, const char *agency, const char *line)
{
    if (self->format == CV_LOG_JSON)
        emit_json(level, agency, line);
    else
        emit_text(level, line);
}

static void emit(const cv_log_t *self, level_t level, const char *agency, const char *fmt,
                 va_list ap) __attribute__((format(printf, 4, 0)));

static void emit(const cv_log_t *self, level_t level, const char *agency, const char *fmt,
                 va_list ap)
{
    char line[LINE_MAX_BYTES];
    vsnprintf(line, sizeof line, fmt, ap);
    emit_line(self, level, agency, line);
}

#define LOG_AT(level)                                                                              \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        emit(self, level, NULL, fmt, ap);                                                          \
        va_end(ap);                                                                                \
    } while (0)

void cv_log_info(cv_log_t *self, const char *fmt, ...)
{
    if (!self->quiet)
        LOG_AT(LEVEL_INFO);
}

void cv_log_warning(cv_log_t *self, const char *fmt, ...)
{
    if (!self->quiet)
        LOG_AT(LEVEL_WARNING);
}

void cv_log_error(cv_log_t *self, const char *fmt, ...)
{
    if (!self->quiet)
        LOG_AT(LEVEL_ERROR);
}

void cv_log_debug(cv_log_t *self, const char *fmt, ...)
{
    if (self->verbose && !self->quiet)
        LOG_AT(LEVEL_DEBUG);
}

static void say_held(const cv_log_t *self, const char *agency, uint64_t held)
{
    char line[LINE_MAX_BYTES];
    snprintf(line, sizeof line, "%s: %" PRIu64 " more lines not logged (over %d a second)", agency,
             held, CV_LOG_AGENCY_LINES);
    emit_line(self, LEVEL_WARNING, NULL, line);
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
            say_held(self, agency, b->held);
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
    emit(self, debug ? LEVEL_DEBUG : LEVEL_INFO, agency, fmt, ap);
    va_end(ap);
}

void cv_log_agency_on_commit(cv_log_t *self, const char *agency, bool debug, const char *fmt, ...)
{
    if ((debug && !self->verbose) || self->quiet)
        return; /* never written: not even formatted */
    if (self->held.n == self->held.cap) {
        self->held.cap = self->held.cap ? 2 * self->held.cap : 16;
        self->held.lines = cv_xrealloc(self->held.lines, self->held.cap * sizeof *self->held.lines);
    }
    char line[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    self->held.lines[self->held.n++] = (held_line_t){cv_xstrdup(agency), cv_xstrdup(line), debug};
}

void cv_log_settle(cv_log_t *self, bool committed)
{
    for (size_t i = 0; i < self->held.n; i++) {
        held_line_t *held = &self->held.lines[i];
        /* the agency's budget is taken now, when the line is written */
        if (committed && take(self, held->agency))
            emit_line(self, held->debug ? LEVEL_DEBUG : LEVEL_INFO, held->agency, held->line);
        free(held->agency);
        free(held->line);
    }
    self->held.n = 0;
}

void cv_log_limited(cv_log_t *self, const char *key, const char *fmt, ...)
{
    if (self->quiet || !take(self, key))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(self, LEVEL_WARNING, NULL, fmt, ap);
    va_end(ap);
}

void cv_log_debug_limited(cv_log_t *self, const char *key, const char *fmt, ...)
{
    if (!self->verbose || self->quiet || !take(self, key))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(self, LEVEL_DEBUG, NULL, fmt, ap);
    va_end(ap);
}

uint64_t cv_log_suppressed(const cv_log_t *self)
{
    return self->suppressed;
}
