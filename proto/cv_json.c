/*  cv_json.c: the JSON and YAML forms of a message, by descriptor walk.
 *
 *  Reading turns a libfyaml node tree into a protobuf-c message one field at
 *  a time from the descriptor, so a field added to report.proto is read and
 *  written with no code change. Writing uses a small emitter of our own, not
 *  libfyaml's: libfyaml picks quoting from the text, so the string "2" would
 *  come out as the number 2.
 */
#include <assert.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "cv_proto.h"

/*  Deeper than any schema we have; a guard should a descriptor ever refer
 *  to itself without cv_schema.c noticing. */
#define MAX_DEPTH 32

/*  Indexed by ProtobufCType, for error messages. */
static const char *const type_names[] = {
    "int32",   "sint32", "sfixed32", "int64", "sint64", "sfixed64", "uint32", "fixed32", "uint64",
    "fixed64", "float",  "double",   "bool",  "enum",   "string",   "bytes",  "message",
};

/* ------------------------------------------------------------------------ */
/*  UTF-8 */

/*  Length of the UTF-8 sequence at s (n bytes available), or 0 when it is
 *  truncated, overlong, a surrogate or beyond U+10FFFF. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t v, min;
    if (n == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2, v = s[0] & 0x1fu, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, v = s[0] & 0x0fu, min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4, v = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/*  32 bytes at a time while they are ASCII, as most text is, then 8:
 *  every string of every published report passes here. */
bool cv_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    const uint64_t high = UINT64_C(0x8080808080808080);
    uint32_t cp;
    size_t i = 0;
    for (uint64_t w[4]; n - i >= sizeof w; i += sizeof w) {
        memcpy(w, p + i, sizeof w);
        if (((w[0] | w[1] | w[2] | w[3]) & high) != 0)
            break;
    }
    for (size_t len; i < n; i += len) {
        uint64_t word;
        if (n - i >= sizeof word && (memcpy(&word, p + i, sizeof word), (word & high) == 0)) {
            len = sizeof word;
            continue;
        }
        if ((len = utf8_decode(p + i, n - i, &cp)) == 0)
            return false;
    }
    return true;
}

/*  A character past C0 that changes how text around it is shown rather
 *  than being shown: DEL and the C1 controls (the 8-bit CSI among them),
 *  the line and paragraph separators (U+2028, U+2029), which some
 *  terminals and editors take for new lines, and the bidirectional
 *  embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069),
 *  which show text in another order than it is stored: an id or a log
 *  line that reads as another ("Trojan Source", CVE-2021-42574). */
static bool shown_otherwise(uint32_t cp)
{
    return cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x2028 && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

bool cv_text_readable(const char *text, size_t len, const char *controls)
{
    const unsigned char *p = (const unsigned char *)text;
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n) {
        if ((n = utf8_decode(p + i, len - i, &cp)) == 0 || cp == 0)
            return false;
        bool c0 = cp < 0x20 && !strchr(controls, (int)cp);
        if (c0 || shown_otherwise(cp))
            return false;
    }
    return true;
}

void cv_text_write(FILE *out, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n) {
        n = utf8_decode(p + i, len - i, &cp);
        if (n == 0 || cp < 0x20 || shown_otherwise(cp) || cp == '\\') {
            n = n ? n : 1; /* an invalid byte alone, a character whole */
            for (size_t b = 0; b < n; b++)
                fprintf(out, "\\x%02x", p[i + b]);
        } else {
            fwrite(p + i, 1, n, out);
        }
    }
}

void cv_xml_text(FILE *out, const char *text)
{
    static const char *const markup[] = {
        ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&apos;"};
    const unsigned char *p = (const unsigned char *)text;
    size_t len = strlen(text);
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n) {
        n = utf8_decode(p + i, len - i, &cp);
        if (n == 0) { /* not UTF-8: the document says it is */
            fputc('?', out);
            n = 1;
        } else if (cp < sizeof markup / sizeof *markup && markup[cp]) {
            fputs(markup[cp], out);
        } else if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0xFFFE ||
                   cp == 0xFFFF) {
            fputc('?', out); /* outside XML 1.0's Char: no way to write these */
        } else if (shown_otherwise(cp)) {
            /* a chart shows the character's effect (an override reverses
             * a name), never the character: XML has no escape for that */
            fputc('?', out);
        } else {
            fwrite(p + i, 1, n, out);
        }
    }
}

/*  NUL is refused too: JSON never allows it raw, and C strings end at it. */
const char *cv_text_check(const char *buf, size_t len, int *line, int *col)
{
    const unsigned char *p = (const unsigned char *)buf;
    int l = 1, c = 1;
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n) {
        if ((n = utf8_decode(p + i, len - i, &cp)) == 0 || cp == 0) {
            *line = l;
            *col = c;
            return n == 0 ? "invalid UTF-8" : "NUL byte in input";
        }
        if (cp == '\n') {
            l += l < INT_MAX;
            c = 1;
        } else {
            c += c < INT_MAX;
        }
    }
    return NULL;
}

/*  Copies text into out, replacing control characters, so that an error
 *  message built from input stays on one line. */
static void sanitize(char *out, size_t size, const char *text, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        out[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (size)
        out[n] = '\0';
}

/* ------------------------------------------------------------------------ */
/*  Descriptor helpers shared by reading and writing */

/*  The emitter has no schema: it knows a map by its entry's shape. */
static bool is_map_field(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_MESSAGE && f->label == PROTOBUF_C_LABEL_REPEATED &&
           cv_proto_is_map_entry(f->descriptor);
}

size_t cv_slot_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return sizeof(uint32_t);
    }
}

static void *member(const ProtobufCMessage *msg, unsigned offset)
{
    return (char *)msg + offset;
}

/*  Presence as protobuf-c's own packer sees it (proto2: has_ flags, NULL
 *  pointers, counts). A required scalar has no flag and counts as present. */
static bool field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(uint32_t *)member(msg, f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(size_t *)member(msg, f->quantifier_offset) > 0;
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
        void *p = *(void **)member(msg, f->offset);
        return p != NULL && p != f->default_value;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
        return *(protobuf_c_boolean *)member(msg, f->quantifier_offset);
    if (f->label == PROTOBUF_C_LABEL_NONE) {
        static const char zero[sizeof(ProtobufCBinaryData)];
        return memcmp(member(msg, f->offset), zero, cv_slot_size(f->type)) != 0;
    }
    return true;
}

/*  A oneof member is taken when any member of its oneof is set. */
static bool field_taken(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(uint32_t *)member(msg, f->quantifier_offset) != 0;
    return field_present(msg, f);
}

static void mark_present(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)member(msg, f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
             f->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)member(msg, f->quantifier_offset) = 1;
}

/*  protobuf_c_message_free_unpacked(msg, NULL) frees with free(), so every
 *  part of a message is allocated with malloc. */
static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *msg = malloc(d->sizeof_message);
    if (msg)
        protobuf_c_message_init(d, msg);
    return msg;
}

/* ------------------------------------------------------------------------ */
/*  Node positions */

static void first_scalar_position(struct fy_node *node, int *line, int *col)
{
    *line = 0;
    *col = 0;
    /* libfyaml 0.7 exports marks for scalar tokens only: go down to the
     * first scalar; each step descends a level, so this ends. */
    while (node && !fy_node_is_scalar(node)) {
        void *iter = NULL;
        if (fy_node_is_mapping(node)) {
            struct fy_node_pair *pair = fy_node_mapping_iterate(node, &iter);
            struct fy_node *key = pair ? fy_node_pair_key(pair) : NULL;
            node = key ? key : pair ? fy_node_pair_value(pair) : NULL;
        } else if (fy_node_is_sequence(node)) {
            node = fy_node_sequence_iterate(node, &iter);
        } else {
            node = NULL;
        }
    }
    struct fy_token *token = node ? fy_node_get_scalar_token(node) : NULL;
    const struct fy_mark *mark = token ? fy_token_start_mark(token) : NULL;
    if (!mark)
        return;
    *line = mark->line + 1;
    *col = mark->column + 1;
    /* The mark of a quoted scalar or an alias is past its opening quote or
     * '*'; point at that, as editors and compilers do. */
    enum fy_node_style style = fy_node_get_style(node);
    if ((style == FYNS_DOUBLE_QUOTED || style == FYNS_SINGLE_QUOTED || style == FYNS_ALIAS) &&
        *col > 1)
        (*col)--;
}

/*  An empty list or mapping, or a node alias resolution made, has no
 *  scalar to point at: point at the key that holds it, or failing that at
 *  its parent. */
void cv_node_position(struct fy_node *node, int *line, int *col)
{
    *line = *col = 0;
    for (; node; node = fy_node_get_parent(node)) {
        first_scalar_position(node, line, col);
        if (*line > 0)
            return;
        struct fy_node *parent = fy_node_get_parent(node);
        void *iter = NULL;
        struct fy_node_pair *pair;
        while (parent && fy_node_is_mapping(parent) &&
               (pair = fy_node_mapping_iterate(parent, &iter)))
            if (fy_node_pair_value(pair) == node) {
                first_scalar_position(fy_node_pair_key(pair), line, col);
                if (*line > 0)
                    return;
                break;
            }
    }
}

void cv_error_vat(cv_error_t *err, const char *file, struct fy_node *node, const char *fmt,
                  va_list ap)
{
    char what[400];
    vsnprintf(what, sizeof what, fmt, ap);
    int line = 0, col = 0;
    cv_node_position(node, &line, &col);
    cv_error_set(err, file, line, col, "%s", what);
}

void cv_error_at(cv_error_t *err, const char *file, struct fy_node *node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cv_error_vat(err, file, node, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/*  Reading */

typedef struct {
    const cv_schema_t *schema;
    const char *name;
    cv_error_t *err;
    bool json;
    bool view;           /* a recipient's view: masks change formats */
    struct fy_node *key; /* the key being read: position when a value has none */
    size_t path_len;
    char path[256]; /* "subjects[0].date_of_birth" */
} reader_t;

/*  Sets the error at node (or at the current key when node has no
 *  position, e.g. an empty array) and returns false. */
__attribute__((format(printf, 3, 4))) static bool fail(reader_t *r, struct fy_node *node,
                                                       const char *fmt, ...)
{
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int line, col;
    cv_node_position(node, &line, &col);
    if (line == 0)
        cv_node_position(r->key, &line, &col);
    if (r->path_len)
        cv_error_set(r->err, r->name, line, col, "%s: %s", r->path, what);
    else
        cv_error_set(r->err, r->name, line, col, "%s", what);
    return false;
}

static size_t path_push(reader_t *r, const char *text, size_t len)
{
    size_t mark = r->path_len;
    if (mark && mark + 1 < sizeof r->path)
        r->path[r->path_len++] = '.';
    sanitize(r->path + r->path_len, sizeof r->path - r->path_len, text, len);
    r->path_len += strlen(r->path + r->path_len);
    return mark;
}

static size_t path_index(reader_t *r, size_t index)
{
    size_t mark = r->path_len;
    int n = snprintf(r->path + mark, sizeof r->path - mark, "[%zu]", index);
    r->path_len = n > 0 && (size_t)n < sizeof r->path - mark ? mark + (size_t)n : mark;
    r->path[r->path_len] = '\0';
    return mark;
}

static void path_pop(reader_t *r, size_t mark)
{
    r->path_len = mark;
    r->path[mark] = '\0';
}

static bool is_null(const reader_t *r, struct fy_node *node)
{
    if (!node)
        return true; /* YAML "key:" with no value */
    if (!fy_node_is_scalar(node) || fy_node_is_alias(node) || fy_node_get_style(node) != FYNS_PLAIN)
        return false;
    size_t len;
    const char *text = fy_node_get_scalar(node, &len);
    if (text && len == 4 && memcmp(text, "null", 4) == 0)
        return true;
    return !r->json && (!text || len == 0 || (len == 1 && text[0] == '~'));
}

/*  A scalar that may stand for text: in JSON a quoted one, in YAML any. */
static bool is_text(const reader_t *r, struct fy_node *node)
{
    if (!node || !fy_node_is_scalar(node) || fy_node_is_alias(node))
        return false;
    enum fy_node_style style = fy_node_get_style(node);
    return !r->json || style == FYNS_DOUBLE_QUOTED || style == FYNS_SINGLE_QUOTED;
}

/*  The scalar's text as a new C string; refuses what a C string cannot
 *  hold (NUL, from "\u0000") and malformed UTF-8 (YAML input from a caller
 *  that did not check it). */
static char *scalar_copy(reader_t *r, struct fy_node *node)
{
    size_t len;
    const char *text = fy_node_get_scalar(node, &len);
    if (!text) {
        text = "";
        len = 0;
    }
    if (memchr(text, '\0', len)) {
        fail(r, node, "contains a NUL character");
        return NULL;
    }
    if (!cv_utf8_valid(text, len)) {
        fail(r, node, "not valid UTF-8");
        return NULL;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        fail(r, node, "out of memory");
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    return copy;
}

/*  A plain scalar's text as a new C string, or NULL: numbers and booleans
 *  are plain in both JSON and YAML. */
static char *plain_copy(struct fy_node *node)
{
    if (!node || !fy_node_is_scalar(node) || fy_node_is_alias(node) ||
        fy_node_get_style(node) != FYNS_PLAIN)
        return NULL;
    size_t len;
    const char *text = fy_node_get_scalar(node, &len);
    if (!text || len == 0 || memchr(text, '\0', len))
        return NULL;
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, text, len);
        copy[len] = '\0';
    }
    return copy;
}

static const char *skip_digits(const char *s)
{
    while (*s >= '0' && *s <= '9')
        s++;
    return s;
}

/*  JSON's integer part, -?(0|[1-9][0-9]*): strtod alone would take "inf",
 *  "0x1p3" and " 1". Returns the end of the part, or NULL. */
static const char *integer_part(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        return s + 1;
    if (*s < '1' || *s > '9')
        return NULL;
    return skip_digits(s);
}

static bool integer_syntax(const char *s)
{
    s = integer_part(s);
    return s && *s == '\0';
}

/*  JSON's number grammar: integer part, optional fraction and exponent. */
static bool number_syntax(const char *s)
{
    if (!(s = integer_part(s)))
        return false;
    if (*s == '.') {
        const char *end = skip_digits(++s);
        if (end == s)
            return false;
        s = end;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        const char *end = skip_digits(s);
        if (end == s)
            return false;
        s = end;
    }
    return *s == '\0';
}

/*  Stores the integer text into slot; false when out of the type's range. */
static bool store_integer(ProtobufCType type, const char *text, void *slot)
{
    errno = 0;
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
        long long v = strtoll(text, NULL, 10);
        if (errno || v < INT32_MIN || v > INT32_MAX)
            return false;
        *(int32_t *)slot = (int32_t)v;
        return true;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        long long v = strtoll(text, NULL, 10);
        *(int64_t *)slot = (int64_t)v;
        return errno == 0;
    }
    default: {
        /* strtoull would wrap "-1" round to the largest value */
        unsigned long long v = strtoull(text, NULL, 10);
        if (errno || (text[0] == '-' && v != 0))
            return false;
        if (type == PROTOBUF_C_TYPE_UINT64 || type == PROTOBUF_C_TYPE_FIXED64) {
            *(uint64_t *)slot = (uint64_t)v;
            return true;
        }
        if (v > UINT32_MAX)
            return false;
        *(uint32_t *)slot = (uint32_t)v;
        return true;
    }
    }
}

static bool read_integer(reader_t *r, const ProtobufCFieldDescriptor *f, struct fy_node *node,
                         void *slot)
{
    char *text = plain_copy(node);
    if (!text || !integer_syntax(text)) {
        free(text);
        return fail(r, node, "expected an integer");
    }
    bool ok = store_integer(f->type, text, slot);
    free(text);
    return ok || fail(r, node, "out of range for %s", type_names[f->type]);
}

static bool read_real(reader_t *r, const ProtobufCFieldDescriptor *f, struct fy_node *node,
                      void *slot)
{
    char *text = plain_copy(node);
    if (!text || !number_syntax(text)) {
        free(text);
        return fail(r, node, "expected a number");
    }
    double v = strtod(text, NULL);
    free(text);
    bool is_float = f->type == PROTOBUF_C_TYPE_FLOAT;
    if (!isfinite(v) || (is_float && (v > FLT_MAX || v < -FLT_MAX)))
        return fail(r, node, "out of range for %s", type_names[f->type]);
    if (is_float)
        *(float *)slot = (float)v;
    else
        *(double *)slot = v;
    return true;
}

static bool read_bool(reader_t *r, struct fy_node *node, void *slot)
{
    char *text = plain_copy(node);
    bool yes = text && strcmp(text, "true") == 0;
    bool no = text && strcmp(text, "false") == 0;
    free(text);
    if (!yes && !no)
        return fail(r, node, "expected true or false");
    *(protobuf_c_boolean *)slot = yes;
    return true;
}

static bool read_enum(reader_t *r, const ProtobufCFieldDescriptor *f, struct fy_node *node,
                      void *slot)
{
    if (!is_text(r, node))
        return fail(r, node, "expected a string");
    char *text = scalar_copy(r, node);
    if (!text)
        return false;
    const ProtobufCEnumDescriptor *d = f->descriptor;
    const ProtobufCEnumValue *value = protobuf_c_enum_descriptor_get_value_by_name(d, text);
    if (value) {
        *(int *)slot = value->value;
        free(text);
        return true;
    }
    char shown[48], names[160] = "";
    sanitize(shown, sizeof shown, text, strlen(text));
    free(text);
    size_t used = 0;
    for (unsigned i = 0; i < d->n_values && used < sizeof names; i++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                 d->values[i].name);
    return fail(r, node, "unknown value \"%s\" (expected %s)", shown, names);
}

static const char *format_problem(cv_format_t format)
{
    switch (format) {
    case CV_FORMAT_DATE:
        return "not a date (YYYY-MM-DD)";
    case CV_FORMAT_TIMESTAMP:
        return "not a timestamp (RFC 3339, e.g. 2026-11-20T09:30:00Z)";
    default:
        return "not valid";
    }
}

static bool read_string(reader_t *r, int index, struct fy_node *node, void *slot)
{
    if (!is_text(r, node))
        return fail(r, node, "expected a string");
    char *text = scalar_copy(r, node);
    if (!text)
        return false;
    const cv_schema_node_t *sn = cv_schema_node(r->schema, index);
    if (sn && !r->view && !cv_format_valid(sn->format, text)) {
        free(text);
        return fail(r, node, "%s", format_problem(sn->format));
    }
    *(char **)slot = text;
    return true;
}

static bool read_message(reader_t *r, int index, const ProtobufCMessageDescriptor *d,
                         struct fy_node *node, void *slot, int depth);

/*  Reads one value (an optional field, or an element of a repeated one)
 *  into slot. On failure slot is untouched and nothing is left allocated. */
static bool read_value(reader_t *r, int index, const ProtobufCFieldDescriptor *f,
                       struct fy_node *node, void *slot, int depth)
{
    if (node && fy_node_is_alias(node))
        return fail(r, node, "aliases are not supported");
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return read_real(r, f, node, slot);
    case PROTOBUF_C_TYPE_BOOL:
        return read_bool(r, node, slot);
    case PROTOBUF_C_TYPE_ENUM:
        return read_enum(r, f, node, slot);
    case PROTOBUF_C_TYPE_STRING:
        return read_string(r, index, node, slot);
    case PROTOBUF_C_TYPE_MESSAGE:
        return read_message(r, index, f->descriptor, node, slot, depth + 1);
    case PROTOBUF_C_TYPE_BYTES:
        return fail(r, node, "bytes fields are not supported");
    default:
        return read_integer(r, f, node, slot);
    }
}

/*  The array is attached to msg before its elements are read and the count
 *  grows with each one, so that freeing msg on error frees them. */
static bool read_repeated(reader_t *r, int index, ProtobufCMessage *msg,
                          const ProtobufCFieldDescriptor *f, struct fy_node *node, int depth)
{
    if (!fy_node_is_sequence(node))
        return fail(r, node, "expected an array");
    int count = fy_node_sequence_item_count(node);
    if (count <= 0)
        return true;
    size_t size = cv_slot_size(f->type);
    char *items = calloc((size_t)count, size);
    if (!items)
        return fail(r, node, "out of memory");
    *(void **)member(msg, f->offset) = items;
    size_t *n = member(msg, f->quantifier_offset);
    void *iter = NULL;
    struct fy_node *item;
    while (*n < (size_t)count && (item = fy_node_sequence_iterate(node, &iter))) {
        size_t mark = path_index(r, *n);
        bool ok = is_null(r, item) ? fail(r, item, "null in an array")
                                   : read_value(r, index, f, item, items + *n * size, depth);
        path_pop(r, mark);
        if (!ok)
            return false;
        (*n)++;
    }
    return true;
}

/*  Reads one "key": value pair of a map into a new entry message. */
static bool read_map_entry(reader_t *r, int index, ProtobufCMessage *entry,
                           struct fy_node_pair *pair, int depth)
{
    const ProtobufCFieldDescriptor *key_field = &entry->descriptor->fields[0];
    const ProtobufCFieldDescriptor *value_field = &entry->descriptor->fields[1];
    struct fy_node *key = fy_node_pair_key(pair), *value = fy_node_pair_value(pair);
    r->key = key;
    if (!key || !fy_node_is_scalar(key) || fy_node_is_alias(key))
        return fail(r, key, "expected a string key");
    char *text = scalar_copy(r, key);
    if (!text)
        return false;
    *(char **)member(entry, key_field->offset) = text;
    mark_present(entry, key_field);
    size_t mark = path_push(r, text, strlen(text));
    bool ok = is_null(r, value) ? fail(r, value, "null map value")
                                : read_value(r, index, value_field, value,
                                             member(entry, value_field->offset), depth);
    path_pop(r, mark);
    if (ok)
        mark_present(entry, value_field);
    return ok;
}

/*  A map<string, V> is a JSON object; protobuf-c holds it as a repeated
 *  entry message with fields key and value. */
static bool read_map(reader_t *r, int index, ProtobufCMessage *msg,
                     const ProtobufCFieldDescriptor *f, struct fy_node *node, int depth)
{
    const ProtobufCMessageDescriptor *entry_type = f->descriptor;
    if (!fy_node_is_mapping(node))
        return fail(r, node, "expected an object");
    if (entry_type->fields[0].type != PROTOBUF_C_TYPE_STRING)
        return fail(r, node, "only string map keys are supported");
    int count = fy_node_mapping_item_count(node);
    if (count <= 0)
        return true;
    ProtobufCMessage **entries = calloc((size_t)count, sizeof *entries);
    if (!entries)
        return fail(r, node, "out of memory");
    *(void **)member(msg, f->offset) = entries;
    size_t *n = member(msg, f->quantifier_offset);
    void *iter = NULL;
    struct fy_node_pair *pair;
    while (*n < (size_t)count && (pair = fy_node_mapping_iterate(node, &iter))) {
        if (!(entries[*n] = new_message(entry_type)))
            return fail(r, node, "out of memory");
        (*n)++;
        if (!read_map_entry(r, index, entries[*n - 1], pair, depth))
            return false;
    }
    return true;
}

/*  Finds the field a key names, with the key added to the path. */
static const ProtobufCFieldDescriptor *find_field(reader_t *r, const ProtobufCMessageDescriptor *d,
                                                  struct fy_node *key)
{
    if (!key || !fy_node_is_scalar(key) || fy_node_is_alias(key)) {
        fail(r, key, "expected a field name");
        return NULL;
    }
    size_t len;
    const char *text = fy_node_get_scalar(key, &len);
    char name[128];
    if (!text) {
        text = "";
        len = 0;
    }
    path_push(r, text, len);
    const ProtobufCFieldDescriptor *f = NULL;
    if (len < sizeof name && !memchr(text, '\0', len)) {
        memcpy(name, text, len);
        name[len] = '\0';
        f = protobuf_c_message_descriptor_get_field_by_name(d, name);
    }
    if (!f)
        fail(r, key, "unknown field");
    return f;
}

static bool read_field(reader_t *r, int parent, ProtobufCMessage *msg,
                       const ProtobufCFieldDescriptor *f, struct fy_node *value, int depth)
{
    if (value && fy_node_is_alias(value))
        return fail(r, value, "aliases are not supported");
    /* libfyaml refuses duplicate keys unless a caller allowed them; a second
     * value would leak the first. */
    if (field_taken(msg, f))
        return fail(r, r->key, "duplicate field");
    if (is_null(r, value))
        return true; /* null means absent */
    int index = cv_schema_child(r->schema, parent, f);
    const cv_schema_node_t *sn = cv_schema_node(r->schema, index);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (sn ? sn->is_map : is_map_field(f))
            return read_map(r, index, msg, f, value, depth);
        return read_repeated(r, index, msg, f, value, depth);
    }
    if (!read_value(r, index, f, value, member(msg, f->offset), depth))
        return false;
    mark_present(msg, f);
    return true;
}

static bool read_fields(reader_t *r, int index, ProtobufCMessage *msg, struct fy_node *node,
                        int depth)
{
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(node, &iter))) {
        size_t mark = r->path_len;
        r->key = fy_node_pair_key(pair);
        const ProtobufCFieldDescriptor *f = find_field(r, msg->descriptor, r->key);
        bool ok = f && read_field(r, index, msg, f, fy_node_pair_value(pair), depth);
        path_pop(r, mark);
        if (!ok)
            return false;
    }
    return true;
}

/*  proto2 required fields; scalars have no presence flag, so only missing
 *  strings and messages can be told apart. */
static bool check_required(reader_t *r, const ProtobufCMessage *msg, struct fy_node *node)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REQUIRED && !field_present(msg, f)) {
            path_push(r, f->name, strlen(f->name));
            return fail(r, node, "missing required field");
        }
    }
    return true;
}

static bool read_message(reader_t *r, int index, const ProtobufCMessageDescriptor *d,
                         struct fy_node *node, void *slot, int depth)
{
    if (!node || !fy_node_is_mapping(node))
        return fail(r, node, "expected an object");
    if (depth > MAX_DEPTH)
        return fail(r, node, "nested too deeply");
    ProtobufCMessage *msg = new_message(d);
    if (!msg)
        return fail(r, node, "out of memory");
    if (!read_fields(r, index, msg, node, depth) || !check_required(r, msg, node)) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return false;
    }
    *(ProtobufCMessage **)slot = msg;
    return true;
}

ProtobufCMessage *cv_json_from_node(const cv_schema_t *schema, struct fy_node *node, int flags,
                                    const char *name, cv_error_t *err)
{
    reader_t r = {.schema = schema,
                  .name = name,
                  .err = err,
                  .json = (flags & CV_JSON_TYPED) != 0,
                  .view = (flags & CV_JSON_VIEW) != 0};
    ProtobufCMessage *msg = NULL;
    if (node && fy_node_is_alias(node))
        fail(&r, node, "aliases are not supported");
    else
        read_message(&r, -1, cv_schema_descriptor(schema), node, &msg, 0);
    return msg;
}

/* ------------------------------------------------------------------------ */
/*  Parsing JSON text */

static void diag_discard(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag, (void)user, (void)buf, (void)len;
}

/*  The first error libfyaml collected (its line and column are 1-based). */
static void report_syntax(struct fy_diag *diag, bool loaded, const char *name, cv_error_t *err)
{
    void *iter = NULL;
    struct fy_diag_error *e, *first = NULL;
    while ((e = fy_diag_errors_iterate(diag, &iter)))
        if (!first || (first->type < FYET_ERROR && e->type >= FYET_ERROR))
            first = e;
    int line = first ? first->line : 0, col = first ? first->column : 0;
    /* A document was read whole, so the error is in what follows it
     * ("missing document start" would puzzle a JSON user). */
    if (loaded)
        cv_error_set(err, name, line, col, "unexpected content after the JSON value");
    else if (first && first->msg)
        cv_error_set(err, name, line, col, "%s", first->msg);
    else
        cv_error_set(err, name, line, col, "not valid JSON");
}

/*  Parses exactly one JSON document; NULL with err set otherwise. */
static struct fy_document *load_json(struct fy_parser *parser, struct fy_diag *diag,
                                     const char *buf, size_t len, const char *name, cv_error_t *err)
{
    struct fy_document *doc = NULL, *extra = NULL;
    if (fy_parser_set_string(parser, buf, len) == 0)
        doc = fy_parse_load_document(parser);
    if (doc)
        extra = fy_parse_load_document(parser);
    void *iter = NULL;
    if (doc && !extra && !fy_parser_get_stream_error(parser) &&
        !fy_diag_errors_iterate(diag, &iter))
        return doc;
    report_syntax(diag, doc != NULL, name, err);
    if (extra)
        fy_parse_document_destroy(parser, extra);
    if (doc)
        fy_parse_document_destroy(parser, doc);
    return NULL;
}

struct fy_diag *cv_diag_collecting(void)
{
    struct fy_diag_cfg cfg;
    fy_diag_cfg_default(&cfg);
    cfg.fp = NULL;
    cfg.output_fn = diag_discard;
    cfg.colorize = false;
    struct fy_diag *diag = fy_diag_create(&cfg);
    if (diag)
        fy_diag_set_collect_errors(diag, true);
    return diag;
}

ProtobufCMessage *cv_json_parse(const cv_schema_t *schema, const char *buf, size_t len,
                                const char *name, cv_error_t *err)
{
    int line = 0, col = 0;
    if (!buf) {
        buf = "";
        len = 0;
    }
    const char *bad = cv_text_check(buf, len, &line, &col);
    if (bad) {
        cv_error_set(err, name, line, col, "%s", bad);
        return NULL;
    }
    struct fy_diag *diag = cv_diag_collecting();
    struct fy_parse_cfg cfg = {
        .flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_JSON_FORCE,
        .diag = diag,
    };
    struct fy_parser *parser = diag ? fy_parser_create(&cfg) : NULL;
    struct fy_document *doc = parser ? load_json(parser, diag, buf, len, name, err) : NULL;
    ProtobufCMessage *msg = NULL;
    if (doc) {
        msg = cv_json_from_node(schema, fy_document_root(doc), CV_JSON_TYPED, name, err);
        fy_parse_document_destroy(parser, doc);
    } else if (!parser) {
        cv_error_set(err, name, 0, 0, "out of memory");
    }
    if (parser)
        fy_parser_destroy(parser);
    /* fy_diag_destroy, not fy_diag_unref: only it frees collected errors */
    if (diag)
        fy_diag_destroy(diag);
    return msg;
}

/* ------------------------------------------------------------------------ */
/*  Writing */

typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
    bool pretty;
} out_t;

/*  Room for n more bytes and the NUL; false when there is none. */
static bool room_for(out_t *o, size_t n)
{
    if (o->failed)
        return false;
    if (o->cap - o->len > n)
        return true;
    size_t cap = o->cap ? o->cap : 512; /* an audit leaf, mostly, in one */
    while (cap - o->len <= n && cap <= SIZE_MAX / 2)
        cap *= 2;
    char *data = cap - o->len > n ? realloc(o->data, cap) : NULL;
    if (!data) {
        o->failed = true;
        return false;
    }
    o->data = data;
    o->cap = cap;
    return true;
}

static void put(out_t *o, const char *s, size_t n)
{
    if (!room_for(o, n))
        return;
    memcpy(o->data + o->len, s, n);
    o->len += n;
    o->data[o->len] = '\0';
}

static void put_str(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void newline(out_t *o, int depth)
{
    if (!o->pretty)
        return;
    put(o, "\n", 1);
    for (int i = 0; i < depth; i++)
        put(o, "  ", 2);
}

/*  Characters written as \uXXXX: JSON's control characters, and those
 *  YAML does not allow raw (DEL, C1, BOM, non-characters), so the output
 *  also reads back through libfyaml in YAML mode, plus those a terminal
 *  shows otherwise than they are (the JavaScript line separators, and the
 *  bidirectional controls that make one id look like another), so that
 *  `--format json` and a log read with less show what is there. */
static bool needs_escape(uint32_t cp)
{
    return cp < 0x20 || shown_otherwise(cp) || cp == 0xfeff || cp == 0xfffe || cp == 0xffff;
}

static char short_escape(uint32_t cp)
{
    switch (cp) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    default:
        return 0;
    }
}

/*  Printable ASCII but the two JSON escapes: written as it is. */
static bool plain_ascii(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/*  How many bytes from p on are plain ASCII, up to the NUL. */
static size_t plain_run(const unsigned char *p)
{
    size_t len = 0;
    while (plain_ascii(p[len]))
        len++;
    return len;
}

static void emit_string(out_t *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t plain = plain_run(p);
    if (!p[plain]) { /* plain ASCII to the end, as ids, names and keys are: at once */
        if (room_for(o, plain + 2)) {
            char *at = o->data + o->len;
            at[0] = '"';
            memcpy(at + 1, s, plain);
            at[plain + 1] = '"';
            at[plain + 2] = '\0';
            o->len += plain + 2;
        }
        return;
    }
    size_t n = plain + strlen(s + plain);
    put(o, "\"", 1);
    for (size_t i = 0, len; i < n; i += len) {
        uint32_t cp;
        char esc[8] = {'\\'};
        /* runs of plain ASCII at once: ids, names and paths are all of it */
        for (len = 0; i + len < n && plain_ascii(p[i + len]); len++)
            ;
        if (len > 0)
            put(o, s + i, len);
        else if ((len = utf8_decode(p + i, n - i, &cp)) == 0) {
            /* a string from the wire may be any bytes: U+FFFD, written raw
             * so that the output reads back and writes out the same */
            put(o, "\xef\xbf\xbd", 3);
            len = 1;
        } else if ((esc[1] = short_escape(cp)) != 0) {
            put(o, esc, 2);
        } else if (needs_escape(cp)) {
            snprintf(esc, sizeof esc, "\\u%04" PRIx32, cp);
            put(o, esc, 6);
        } else {
            put(o, s + i, len);
        }
    }
    put(o, "\"", 1);
}

/*  The shortest of 15, 16 or 17 significant digits that reads back as the
 *  same value (53.7443, not 53.744300000000003). Assumes the "C" locale. */
static void emit_real(out_t *o, double v, bool is_float)
{
    char buf[40];
    if (!isfinite(v)) {
        put_str(o, "null"); /* JSON has no infinity or NaN */
        return;
    }
    int lo = is_float ? 6 : 15, hi = is_float ? 9 : 17;
    for (int digits = lo; digits <= hi; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (is_float ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
            break;
    }
    put_str(o, buf);
}

static void emit_message(out_t *o, const ProtobufCMessage *msg, int depth);

static void emit_value(out_t *o, const ProtobufCFieldDescriptor *f, const void *slot, int depth)
{
    char buf[32];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(buf, sizeof buf, "%" PRId32, *(const int32_t *)slot);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(buf, sizeof buf, "%" PRIu32, *(const uint32_t *)slot);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, sizeof buf, "%" PRId64, *(const int64_t *)slot);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)slot);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        emit_real(o, *(const float *)slot, true);
        return;
    case PROTOBUF_C_TYPE_DOUBLE:
        emit_real(o, *(const double *)slot, false);
        return;
    case PROTOBUF_C_TYPE_BOOL:
        put_str(o, *(const protobuf_c_boolean *)slot ? "true" : "false");
        return;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *value =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)slot);
        if (value) {
            emit_string(o, value->name);
            return;
        }
        /* a number the enum lacks (unpacked from the wire): keep it */
        snprintf(buf, sizeof buf, "%d", *(const int *)slot);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)slot;
        emit_string(o, s ? s : "");
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)slot;
        if (sub)
            emit_message(o, sub, depth);
        else
            put_str(o, "{}");
        return;
    }
    default:
        put_str(o, "null"); /* bytes: never reached, emit_field skips them */
        return;
    }
    put_str(o, buf);
}

/*  A compact object's key of plain ASCII, as the writer's keys are: its
 *  comma, quotes and colon with it in one write. Every audit leaf has a
 *  dozen keys, and four small writes a key were a tenth of a leaf's cost.
 *  false, having written nothing, for any other key. */
static bool emit_plain_key(out_t *o, const char *key, bool first)
{
    const unsigned char *p = (const unsigned char *)key;
    size_t n = 0;
    while (plain_ascii(p[n]))
        n++;
    if (o->pretty || p[n] != '\0')
        return false;
    if (!room_for(o, n + 4))
        return true; /* failed: out of memory, as put would */
    char *at = o->data + o->len;
    if (!first)
        *at++ = ',';
    *at++ = '"';
    memcpy(at, key, n);
    at += n;
    *at++ = '"';
    *at++ = ':';
    *at = '\0';
    o->len = (size_t)(at - o->data);
    return true;
}

static void emit_key(out_t *o, const char *key, bool first, int depth)
{
    if (emit_plain_key(o, key, first))
        return;
    if (!first)
        put(o, ",", 1);
    newline(o, depth);
    emit_string(o, key);
    put_str(o, o->pretty ? ": " : ":");
}

static void emit_map(out_t *o, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *entries,
                     size_t n, int depth)
{
    const ProtobufCMessageDescriptor *entry_type = f->descriptor;
    const ProtobufCFieldDescriptor *key_field = &entry_type->fields[0];
    const ProtobufCFieldDescriptor *value_field = &entry_type->fields[1];
    bool first = true;
    put(o, "{", 1);
    for (size_t i = 0; i < n; i++) {
        if (!entries[i])
            continue;
        const char *key = *(char *const *)member(entries[i], key_field->offset);
        emit_key(o, key ? key : "", first, depth + 1);
        emit_value(o, value_field, member(entries[i], value_field->offset), depth + 1);
        first = false;
    }
    if (!first)
        newline(o, depth);
    put(o, "}", 1);
}

static void emit_array(out_t *o, const ProtobufCFieldDescriptor *f, const char *items, size_t n,
                       int depth)
{
    size_t size = cv_slot_size(f->type);
    put(o, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            put(o, ",", 1);
        newline(o, depth + 1);
        emit_value(o, f, items + i * size, depth + 1);
    }
    newline(o, depth);
    put(o, "]", 1);
}

static void emit_field(out_t *o, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                       int depth)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        emit_value(o, f, member(msg, f->offset), depth);
        return;
    }
    size_t n = *(size_t *)member(msg, f->quantifier_offset);
    void *items = *(void **)member(msg, f->offset);
    if (is_map_field(f))
        emit_map(o, f, items, n, depth);
    else
        emit_array(o, f, items, n, depth);
}

static void emit_message(out_t *o, const ProtobufCMessage *msg, int depth)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    bool first = true;
    put(o, "{", 1);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        /* bytes have no JSON form here, and no schema uses them */
        if (f->type == PROTOBUF_C_TYPE_BYTES || !field_present(msg, f))
            continue;
        emit_key(o, f->name, first, depth + 1);
        emit_field(o, msg, f, depth + 1);
        first = false;
    }
    if (!first)
        newline(o, depth);
    put(o, "}", 1);
}

char *cv_json_emit(const ProtobufCMessage *msg, int flags)
{
    if (!msg)
        return NULL;
    out_t o = {.pretty = (flags & CV_JSON_PRETTY) != 0};
    emit_message(&o, msg, 0);
    if (o.failed) {
        free(o.data);
        return NULL;
    }
    return o.data;
}

/* ------------------------------------------------------------------------ */
/*  The writer: the emitter above, with the commas and indentation of
 *  objects and arrays kept on a small stack.                               */

#define WRITER_DEPTH 32

struct cv_json_writer_t {
    out_t out;
    int depth;
    bool first[WRITER_DEPTH]; /* nothing written yet at this depth */
    bool after_key;           /* the next value belongs to a key */
};

cv_json_writer_t *cv_json_writer_new(int flags)
{
    cv_json_writer_t *self = calloc(1, sizeof *self);
    if (self) {
        self->out.pretty = (flags & CV_JSON_PRETTY) != 0;
        self->first[0] = true;
    }
    return self;
}

void cv_json_writer_destroy(cv_json_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->out.data);
    free(*self_p);
    *self_p = NULL;
}

/*  What goes before a value: nothing after a key, else a separator. */
static void value_prefix(cv_json_writer_t *self)
{
    if (self->after_key) {
        self->after_key = false;
        return;
    }
    if (!self->first[self->depth])
        put(&self->out, ",", 1);
    if (self->depth > 0)
        newline(&self->out, self->depth);
    self->first[self->depth] = false;
}

static void open_level(cv_json_writer_t *self, const char *bracket)
{
    value_prefix(self);
    put_str(&self->out, bracket);
    if (self->depth + 1 >= WRITER_DEPTH) {
        self->out.failed = true;
        return;
    }
    self->first[++self->depth] = true;
}

static void close_level(cv_json_writer_t *self, const char *bracket)
{
    if (self->depth == 0) {
        self->out.failed = true;
        return;
    }
    bool empty = self->first[self->depth--];
    if (!empty)
        newline(&self->out, self->depth);
    put_str(&self->out, bracket);
}

void cv_json_object_begin(cv_json_writer_t *self)
{
    open_level(self, "{");
}

void cv_json_object_end(cv_json_writer_t *self)
{
    close_level(self, "}");
}

void cv_json_array_begin(cv_json_writer_t *self)
{
    open_level(self, "[");
}

void cv_json_array_end(cv_json_writer_t *self)
{
    close_level(self, "]");
}

void cv_json_key(cv_json_writer_t *self, const char *key)
{
    emit_key(&self->out, key, self->first[self->depth], self->depth);
    self->first[self->depth] = false;
    self->after_key = true;
}

void cv_json_string(cv_json_writer_t *self, const char *text)
{
    value_prefix(self);
    if (text)
        emit_string(&self->out, text);
    else
        put_str(&self->out, "null");
}

void cv_json_bool(cv_json_writer_t *self, bool value)
{
    value_prefix(self);
    put_str(&self->out, value ? "true" : "false");
}

void cv_json_uint(cv_json_writer_t *self, uint64_t value)
{
    /* the digits from the right: every audit leaf has its time and most a
     * seq or count, and snprintf's format parsing cost more than the rest */
    char buf[24], *digit = buf + sizeof buf;
    do
        *--digit = (char)('0' + value % 10);
    while ((value /= 10) != 0);
    value_prefix(self);
    put(&self->out, digit, (size_t)(buf + sizeof buf - digit));
}

void cv_json_hex(cv_json_writer_t *self, const uint8_t *bytes, size_t len)
{
    /* written straight into the output: every audit leaf names a hash or
     * two, and converting them first, then scanning the digits for what
     * to escape, cost more than the rest of the leaf's strings together */
    static const char pairs[] = /* byte b's two digits at 2 * b */
        "000102030405060708090a0b0c0d0e0f"
        "101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f"
        "303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f"
        "505152535455565758595a5b5c5d5e5f"
        "606162636465666768696a6b6c6d6e6f"
        "707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f"
        "909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
        "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
        "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
        "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    value_prefix(self);
    if (!bytes) {
        put_str(&self->out, "null");
        return;
    }
    out_t *o = &self->out;
    if (len > (SIZE_MAX - 3) / 2) {
        o->failed = true; /* as room_for fails: never a key without its value */
        return;
    }
    if (!room_for(o, 2 * len + 2))
        return;
    char *at = o->data + o->len;
    *at++ = '"';
    for (size_t i = 0; i < len; i++, at += 2)
        memcpy(at, pairs + 2 * bytes[i], 2);
    *at++ = '"';
    *at = '\0';
    o->len += 2 * len + 2;
}

void cv_json_message(cv_json_writer_t *self, const ProtobufCMessage *msg)
{
    value_prefix(self);
    emit_message(&self->out, msg, self->depth);
}

void cv_json_members(cv_json_writer_t *self, const char *members, size_t len)
{
    assert(!self->out.pretty && !self->after_key && self->depth > 0);
    if (len == 0)
        return;
    if (!self->first[self->depth])
        put(&self->out, ",", 1);
    put(&self->out, members, len);
    self->first[self->depth] = false;
}

const char *cv_json_writer_text(const cv_json_writer_t *self)
{
    return self->out.failed ? NULL : self->out.data ? self->out.data : "";
}

size_t cv_json_writer_length(const cv_json_writer_t *self)
{
    return self->out.failed ? 0 : self->out.len;
}

void cv_json_writer_rewind(cv_json_writer_t *self, size_t len)
{
    /* a write that failed wrote nothing (room_for before every byte), so
     * the text before it is whole, failed or not */
    assert(len <= self->out.len);
    if (len > self->out.len)
        len = self->out.len;
    self->out.failed = false;
    self->out.len = len;
    if (self->out.data)
        self->out.data[len] = '\0';
    self->depth = 0;
    self->first[0] = true;
    self->after_key = false;
}

char *cv_json_writer_take(cv_json_writer_t **self_p, size_t *len)
{
    cv_json_writer_t *self = *self_p;
    char *text = NULL;
    if (!self->out.failed) {
        text = self->out.data ? self->out.data : strdup("");
        self->out.data = NULL;
    }
    *len = text ? self->out.len : 0;
    cv_json_writer_destroy(self_p);
    return text;
}
