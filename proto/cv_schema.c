/*  cv_schema.c: the table of every field path of a message type.
 *
 *  The table is derived from the protobuf-c descriptor by a pre-order walk,
 *  so adding a field to report.proto adds its path here with no code change.
 *  The only report-specific knowledge is the annotation table below.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>

#include "cv_proto.h"

struct cv_schema_t {
    const ProtobufCMessageDescriptor *descriptor;
    cv_schema_node_t *nodes;
    int size;
};

/*  What the descriptor cannot say: formats of string fields and the
 *  envelope (docs/policy.md: id, originator, category, handling_level, created
 *  always travel with a delivered report). */
static const struct {
    const char *path;
    cv_format_t format;
    bool envelope;
} report_annotations[] = {
    {"id", CV_FORMAT_TEXT, true},
    {"originator", CV_FORMAT_TEXT, true},
    {"created", CV_FORMAT_TIMESTAMP, true},
    {"category", CV_FORMAT_TEXT, true},
    {"handling_level", CV_FORMAT_TEXT, true},
    {"subjects.date_of_birth", CV_FORMAT_DATE, false},
};

bool cv_proto_is_map_entry(const ProtobufCMessageDescriptor *d)
{
    size_t len = strlen(d->name);
    return d->n_fields == 2 && len > 5 && strcmp(d->name + len - 5, "Entry") == 0 &&
           strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0;
}

static int count_nodes(const ProtobufCMessageDescriptor *d)
{
    int n = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        n++;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && !cv_proto_is_map_entry(f->descriptor))
            n += count_nodes(f->descriptor);
    }
    return n;
}

static int add_nodes(cv_schema_t *self, const ProtobufCMessageDescriptor *d, int parent,
                     const char *prefix, int depth, int next)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        cv_schema_node_t *node = &self->nodes[next];
        size_t len = strlen(prefix) + strlen(f->name) + 2;
        char *path = malloc(len);
        if (!path)
            abort();
        snprintf(path, len, "%s%s%s", prefix, *prefix ? "." : "", f->name);
        bool message = f->type == PROTOBUF_C_TYPE_MESSAGE;
        *node = (cv_schema_node_t){
            .path = path,
            .name = f->name,
            .field = f,
            .parent = parent,
            .depth = depth,
            .is_map = message && cv_proto_is_map_entry(f->descriptor),
        };
        node->is_leaf = !message || node->is_map;
        int index = next++;
        if (!node->is_leaf)
            next = add_nodes(self, f->descriptor, index, path, depth + 1, next);
        self->nodes[index].end = next;
    }
    return next;
}

static cv_schema_t *schema_new(const ProtobufCMessageDescriptor *descriptor)
{
    cv_schema_t *self = calloc(1, sizeof *self);
    if (!self)
        abort();
    self->descriptor = descriptor;
    self->size = count_nodes(descriptor);
    self->nodes = calloc((size_t)self->size, sizeof *self->nodes);
    if (!self->nodes)
        abort();
    add_nodes(self, descriptor, -1, "", 0, 0);
    return self;
}

static cv_schema_t *report_schema;

static void report_schema_init(void)
{
    report_schema = schema_new(&caveat__report__descriptor);
    for (size_t i = 0; i < sizeof report_annotations / sizeof *report_annotations; i++) {
        int index = cv_schema_find(report_schema, report_annotations[i].path);
        if (index < 0)
            abort(); /* the table names a field report.proto lacks */
        report_schema->nodes[index].format = report_annotations[i].format;
        report_schema->nodes[index].envelope = report_annotations[i].envelope;
    }
}

const cv_schema_t *cv_schema_report(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, report_schema_init);
    return report_schema;
}

int cv_schema_size(const cv_schema_t *self)
{
    return self->size;
}

const cv_schema_node_t *cv_schema_node(const cv_schema_t *self, int index)
{
    return index >= 0 && index < self->size ? &self->nodes[index] : NULL;
}

int cv_schema_find(const cv_schema_t *self, const char *path)
{
    for (int i = 0; i < self->size; i++)
        if (strcmp(self->nodes[i].path, path) == 0)
            return i;
    return -1;
}

int cv_schema_child(const cv_schema_t *self, int parent, const ProtobufCFieldDescriptor *field)
{
    int from = parent < 0 ? 0 : parent + 1;
    int to = parent < 0 ? self->size : self->nodes[parent].end;
    for (int i = from; i < to; i = self->nodes[i].end)
        if (self->nodes[i].field == field)
            return i;
    return -1;
}

const ProtobufCMessageDescriptor *cv_schema_descriptor(const cv_schema_t *self)
{
    return self->descriptor;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/*  The value of n digits, already checked to be digits: atoi's strtol
 *  was most of a report's validation, a few times for each timestamp. */
static int digits_value(const char *s, size_t n)
{
    int value = 0;
    for (size_t i = 0; i < n; i++)
        value = value * 10 + (s[i] - '0');
    return value;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/*  strptime accepts too much (no field widths, "2026-2-3"), so the shape
 *  is checked by hand, and the day against the month's length in the
 *  Gregorian calendar (2026-02-30 is no date). */
static bool valid_date(const char *s)
{
    if (strlen(s) < 10 || !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) ||
        s[7] != '-' || !all_digits(s + 8, 2))
        return false;
    int month = digits_value(s + 5, 2), day = digits_value(s + 8, 2);
    return month >= 1 && month <= 12 && day >= 1 && day <= days_in_month(digits_value(s, 4), month);
}

/*  RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static bool valid_timestamp(const char *s)
{
    if (!valid_date(s) || (s[10] != 'T' && s[10] != 't'))
        return false;
    const char *t = s + 11;
    if (!all_digits(t, 2) || t[2] != ':' || !all_digits(t + 3, 2) || t[5] != ':' ||
        !all_digits(t + 6, 2))
        return false;
    if (digits_value(t, 2) > 23 || digits_value(t + 3, 2) > 59 || digits_value(t + 6, 2) > 60)
        return false;
    t += 8;
    if (*t == '.') {
        t++;
        if (*t < '0' || *t > '9')
            return false;
        while (*t >= '0' && *t <= '9')
            t++;
    }
    if ((*t == 'Z' || *t == 'z') && t[1] == '\0')
        return true;
    return (*t == '+' || *t == '-') && all_digits(t + 1, 2) && t[3] == ':' &&
           all_digits(t + 4, 2) && t[6] == '\0' && digits_value(t + 1, 2) <= 23 &&
           digits_value(t + 4, 2) <= 59;
}

bool cv_format_valid(cv_format_t format, const char *text)
{
    switch (format) {
    case CV_FORMAT_DATE:
        return valid_date(text) && text[10] == '\0';
    case CV_FORMAT_TIMESTAMP:
        return valid_timestamp(text);
    default:
        return true;
    }
}

const char *cv_timestamp_format(int64_t unix_seconds, char text[CV_TIMESTAMP_MAX])
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(text, CV_TIMESTAMP_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(text, CV_TIMESTAMP_MAX, "%lld", (long long)unix_seconds);
    return text;
}

bool cv_seconds_parse(const char *text, double *seconds)
{
    char *end = NULL;
    double value = strtod(text, &end);
    /* the comparisons are false for NaN */
    if (end == text || *end || !(value > 0 && value <= 2000000))
        return false;
    *seconds = value;
    return true;
}

bool cv_timestamp_parse(const char *text, int64_t *unix_seconds)
{
    if (!text || !valid_timestamp(text))
        return false;
    struct tm tm = {0};
    tm.tm_year = digits_value(text, 4) - 1900;
    tm.tm_mon = digits_value(text + 5, 2) - 1;
    tm.tm_mday = digits_value(text + 8, 2);
    tm.tm_hour = digits_value(text + 11, 2);
    tm.tm_min = digits_value(text + 14, 2);
    tm.tm_sec = digits_value(text + 17, 2);
    int64_t seconds = (int64_t)timegm(&tm);
    const char *zone = text + 19;
    while (*zone == '.' || (*zone >= '0' && *zone <= '9'))
        zone++;
    if (*zone == '+' || *zone == '-') {
        int64_t offset = digits_value(zone + 1, 2) * 3600 + digits_value(zone + 4, 2) * 60;
        seconds -= *zone == '+' ? offset : -offset; /* 10:00+01:00 is 09:00Z */
    }
    *unix_seconds = seconds;
    return true;
}

char *cv_report_id_new(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    uint8_t random[6];
    randombytes_buf(random, sizeof random);
    char *id = malloc(sizeof "r-" + 24);
    if (id)
        snprintf(id, sizeof "r-" + 24, "r-%012llx%02x%02x%02x%02x%02x%02x",
                 (unsigned long long)(ms & 0xffffffffffffULL), random[0], random[1], random[2],
                 random[3], random[4], random[5]);
    return id;
}
