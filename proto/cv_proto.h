/*  cv_proto.h: the report schema, its field paths, and its JSON/YAML forms.
 *
 *  Everything here walks protobuf-c descriptors generically: no function
 *  knows the fields of a report by name except the small annotation table in
 *  cv_schema.c (which fields are dates, which form the envelope).
 */
#ifndef CV_PROTO_H
#define CV_PROTO_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "caveat/error.h"
#include "report.pb-c.h"
#include "wire.pb-c.h"

#define CV_KEY_BYTES 32 /* CURVE keys and the pseudonymisation key */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/*  Errors: one line, "FILE:LINE:COL: error: what" when a position is known. */

/*  cv_error_t is in caveat/error.h, shared with libcaveat's public API.
 *  Formats the error into err (when err is not NULL), with code
 *  CV_ERR_FAILED. line and col are 1-based; pass 0 for line when no
 *  position is known, and NULL for file. */
void cv_error_set(cv_error_t *err, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/*  Reads a whole file ("-": standard input) into a NUL-terminated malloc'd
 *  buffer; NULL with errno set on failure.                                 */
char *cv_read_file(const char *path, size_t *len);
/*  A regular file of at most max bytes, read whole and NUL-terminated: what
 *  the broker reads from a path an operator gave it. A FIFO, a device or
 *  a file over max is refused ("cannot read: ..."), and never waited on
 *  or read without end. *mode, when mode is not NULL, gets the file's
 *  permission bits. NULL with err otherwise, saying what is wrong without
 *  the path: each caller names the file as its errors do. */
char *cv_read_regular_file(const char *path, size_t max, size_t *len, unsigned *mode,
                           cv_error_t *err);

/* ------------------------------------------------------------------------ */
/*  Schema: every field path of a message type, in pre-order.
 *
 *  Node i's descendants are exactly the nodes i+1 .. end-1, so "this field
 *  and everything under it" is a contiguous range. Paths join field names
 *  with '.', and a repeated field's path covers all its elements.          */

typedef enum {
    CV_FORMAT_TEXT = 0,  /* any UTF-8 string */
    CV_FORMAT_DATE,      /* YYYY-MM-DD */
    CV_FORMAT_TIMESTAMP, /* RFC 3339 date-time */
} cv_format_t;

typedef struct {
    const char *path;                      /* "subjects.postcode" */
    const char *name;                      /* "postcode" */
    const ProtobufCFieldDescriptor *field; /* the proto field */
    int parent;                            /* node index, -1 for a top-level field */
    int end;                               /* one past the last descendant */
    int depth;                             /* 0 for top-level fields */
    bool is_map;                           /* map<string,string>: a leaf keyed by strings */
    bool is_leaf;                          /* not a message (maps count as leaves) */
    bool envelope;                         /* always travels with a delivered report */
    cv_format_t format;
} cv_schema_node_t;

typedef struct cv_schema_t cv_schema_t;

/*  The report's schema: built once, immutable, shared by every thread.     */
const cv_schema_t *cv_schema_report(void);

/*  Number of nodes and node access.                                        */
int cv_schema_size(const cv_schema_t *self);
const cv_schema_node_t *cv_schema_node(const cv_schema_t *self, int index);

/*  Index of the node for a dotted path, or -1 if the schema has none.      */
int cv_schema_find(const cv_schema_t *self, const char *path);

/*  Index of the child node for field descriptor field of the message at
 *  node parent (-1 for the root message), or -1.                          */
int cv_schema_child(const cv_schema_t *self, int parent, const ProtobufCFieldDescriptor *field);

/*  The message descriptor the schema was built from.                       */
const ProtobufCMessageDescriptor *cv_schema_descriptor(const cv_schema_t *self);

/*  True when text is a valid value of format (a real calendar date, etc).  */
bool cv_format_valid(cv_format_t format, const char *text);

/*  An RFC 3339 timestamp as unix seconds (UTC); false when not valid.     */
bool cv_timestamp_parse(const char *text, int64_t *unix_seconds);

/*  A command line's seconds ("30", "0.5"): a number above 0 and at most
 *  2,000,000 with nothing after it ("30s" is refused, not read as 30).   */
bool cv_seconds_parse(const char *text, double *seconds);

/*  unix_seconds as an RFC 3339 timestamp in UTC, "2026-01-02T03:04:05Z";
 *  returns text.                                                         */
#define CV_TIMESTAMP_MAX 32
const char *cv_timestamp_format(int64_t unix_seconds, char text[CV_TIMESTAMP_MAX]);

/*  A new report id (malloc'd; call sodium_init() first): "r-", 12 hex digits of the time in
 *  milliseconds and 12 random ones. Ids made later sort later, so the
 *  store's index of ids grows at its end instead of at random places.     */
char *cv_report_id_new(void);

/*  The size of one value of a field of this type inside a protobuf-c
 *  message (and of one element of a repeated field's array).             */
size_t cv_slot_size(ProtobufCType type);

/*  Forgets the unknown fields protobuf-c kept while unpacking msg, in msg
 *  and in every message under it (walking its descriptor; a oneof member
 *  only when it is the one set), so that packing it again writes known
 *  fields only. protobuf-c packs an unknown field with tag 0 in a form it
 *  refuses to unpack (cv_unknown.c). Their memory is not freed: meant for a
 *  message unpacked into an arena (cv_arena.h), whose reset takes it back;
 *  with malloc'd messages the unknown fields' bytes would leak. NULL is
 *  allowed.                                                              */
void cv_proto_drop_unknown(ProtobufCMessage *msg);
/*  At least what protobuf-c allocates to unpack msg's packed form (the
 *  structs, arrays, strings and bytes, and its scan records for each field
 *  it meets): a check that needs no unpacking, for the common case. */
size_t cv_proto_unpack_bound(const ProtobufCMessage *msg);

/*  Whether d is the entry of a map<K,V>: protobuf-c compiles one to a
 *  repeated message "XEntry" with fields key = 1 and value = 2, and keeps
 *  no map flag, so this recognises that shape.                           */
bool cv_proto_is_map_entry(const ProtobufCMessageDescriptor *d);

/*  What in msg, or in a message under it, cannot be kept as it came, or
 *  NULL (and a NULL msg is fine). A message holding one is refused, not
 *  stored, as no view or JSON form could carry it as it is:
 *  - "an entry without its key or its value": proto2 lets the wire leave
 *    either out of a map entry, and protobuf-c then holds it NULL;
 *  - "a key given twice": JSON and every view hold a map as an object, one
 *    value a key, and which of the two a reader keeps differs;
 *  - "a value its enum does not define": protobuf-c keeps any number in a
 *    proto2 enum, and the JSON form writes values by name;
 *  - "not UTF-8 text": a protobuf string is UTF-8, which protobuf-c does
 *    not check, and the JSON form writes each byte that is not as U+FFFD,
 *    so that two map keys could read alike there, or a value otherwise
 *    than stored.
 *  path (size bytes) names the field, e.g. "subjects.identifiers".       */
const char *cv_proto_form_fault(const ProtobufCMessage *msg, char *path, size_t size);

/*  How many reports the Publish in a packed caveat.wire.Frame holds,
 *  counted in the wire bytes without unpacking (0 when the frame is no
 *  Publish); SIZE_MAX when the bytes are not well formed protobuf. So a
 *  frame over the report limit is refused before it costs an unpack. */
size_t cv_wire_publish_reports(const uint8_t *frame, size_t len);

/*  A Feedback's value and text: why the broker refuses them, or NULL when
 *  value is one it knows and text (NULL: none) at most
 *  CV_FEEDBACK_TEXT_MAX bytes of UTF-8 without control characters but
 *  line feed and tab. */
#define CV_FEEDBACK_TEXT_MAX 1000
const char *cv_feedback_form_refusal(const char *value, const char *text);

/*  The values at leaf node in msg, as text: every element under every repeated
 *  parent, in order. Strings as they are, numbers in their JSON form, enums
 *  by name, booleans true/false, map entries "key=value". Returns how many
 *  and sets *values to a malloc'd array (free with cv_values_free).       */
int cv_message_values(const cv_schema_t *schema, const ProtobufCMessage *msg, int node,
                      char ***values);
void cv_values_free(char **values, int count);

/* ------------------------------------------------------------------------ */
/*  JSON and YAML forms, proto field names as keys.
 *
 *  Parsing refuses unknown keys, wrong types, out-of-range numbers, unknown
 *  enum names and malformed dates, naming the key's path and position:
 *  "FILE:LINE:COL: error: subjects[0].date_of_birth: not a date (YYYY-MM-DD)".
 *  In JSON mode a string field needs a JSON string; in YAML mode any scalar
 *  is taken as text (so "handling_code: 2" reads as "2").                  */

struct fy_node;

/*  Parses a JSON document from a buffer into a new message of schema's type.
 *  name labels errors (a file name or "<stdin>"). Returns NULL and sets err
 *  on any error. Free with protobuf_c_message_free_unpacked(msg, NULL).    */
ProtobufCMessage *cv_json_parse(const cv_schema_t *schema, const char *buf, size_t len,
                                const char *name, cv_error_t *err);

enum {
    CV_JSON_TYPED = 1 << 0, /* JSON typing rules (a string field needs a JSON string) */
    CV_JSON_VIEW = 1 << 1,  /* a recipient's view: masked values need not keep their
                               field's format (a date of birth masked to "2009") */
};

/*  Converts an already parsed YAML/JSON node (e.g. a report inside a test
 *  case file, or a delivery line) into a new message. flags: CV_JSON_*.   */
ProtobufCMessage *cv_json_from_node(const cv_schema_t *schema, struct fy_node *node, int flags,
                                    const char *name, cv_error_t *err);

enum {
    CV_JSON_PRETTY = 1 << 0, /* indented, one key per line */
};

/*  Emits msg as JSON; present fields only, in schema order. Returns a
 *  malloc'd NUL-terminated string (free()), or NULL on allocation failure. */
char *cv_json_emit(const ProtobufCMessage *msg, int flags);

/*  A JSON writer for output that is more than one message (policy
 *  explain, subscribe's delivery lines). libfyaml's own JSON emitter writes
 *  the string "2" as a number and leaks on long escaped strings, so all
 *  JSON the project writes goes through here.                              */
typedef struct cv_json_writer_t cv_json_writer_t;

cv_json_writer_t *cv_json_writer_new(int flags);
void cv_json_writer_destroy(cv_json_writer_t **self_p);
void cv_json_object_begin(cv_json_writer_t *self);
void cv_json_object_end(cv_json_writer_t *self);
void cv_json_array_begin(cv_json_writer_t *self);
void cv_json_array_end(cv_json_writer_t *self);
void cv_json_key(cv_json_writer_t *self, const char *key);
void cv_json_string(cv_json_writer_t *self, const char *text); /* NULL writes null */
void cv_json_bool(cv_json_writer_t *self, bool value);
void cv_json_uint(cv_json_writer_t *self, uint64_t value);
/*  bytes as a string of lowercase hex digits (a hash); NULL writes null. */
void cv_json_hex(cv_json_writer_t *self, const uint8_t *bytes, size_t len);
void cv_json_message(cv_json_writer_t *self, const ProtobufCMessage *msg);
/*  Members of the object being written, rendered beforehand by a compact
 *  writer: the len bytes between that object's braces ("k":v,...), for
 *  parts that are the same in every object (a compact writer only). */
void cv_json_members(cv_json_writer_t *self, const char *members, size_t len);
/*  The text so far, owned by the writer; NULL after an allocation failure. */
const char *cv_json_writer_text(const cv_json_writer_t *self);
/*  The length of the text so far; 0 after an allocation failure. */
size_t cv_json_writer_length(const cv_json_writer_t *self);
/*  Keeps the first len bytes of the text and goes back to the top level:
 *  what is written next is a new document after them, with no separator,
 *  in the same buffer. len = cv_json_writer_length() starts a second
 *  document after the first (a run of audit leaves in one allocation); 0
 *  empties the writer. After an allocation failure it takes a length
 *  read before the failure (a failed write wrote nothing), drops what
 *  came after, and clears the failure. */
void cv_json_writer_rewind(cv_json_writer_t *self, size_t len);
/*  The text, now the caller's to free, and its length; the writer is
 *  destroyed. NULL after an allocation failure. */
char *cv_json_writer_take(cv_json_writer_t **self_p, size_t *len);

/*  Whether the n bytes at s are UTF-8 (no overlong form, surrogate or
 *  code point beyond U+10FFFF).                                          */
bool cv_utf8_valid(const char *s, size_t n);
/*  libfyaml 0.7 takes an invalid UTF-8 byte between tokens for the end of
 *  input and silently parses a truncated document; so every parser checks
 *  its input first. Returns NULL when buf is valid UTF-8 without NUL bytes,
 *  else what is wrong, with the 1-based position in line and col.        */
const char *cv_text_check(const char *buf, size_t len, int *line, int *col);
/*  Whether text is something a person may read anywhere (a log, a
 *  terminal, a leaf of the audit log): UTF-8 without NUL, no control
 *  character (C0, DEL, C1) but those in controls ("" for one line), and
 *  nothing that shows text otherwise than it is stored: no line or
 *  paragraph separator (U+2028, U+2029), no bidirectional embedding,
 *  override or isolate (U+202A-U+202E, U+2066-U+2069).                   */
bool cv_text_readable(const char *text, size_t len, const char *controls);
/*  Writes text as a person may read it on a terminal, whatever its bytes:
 *  what cv_text_readable refuses (C0 and C1 controls, DEL, the separators
 *  and bidirectional controls above, bytes that are not UTF-8) and the
 *  backslash as \xNN a byte, the rest as it is. So a
 *  string from a store someone may have edited cannot move the cursor,
 *  start a new line or pass for another string.                       */
void cv_text_write(FILE *out, const char *text, size_t len);
/*  Text as XML character data or an attribute value: the five markup
 *  characters escaped, and what XML 1.0 cannot hold (the C0 controls but
 *  tab and line ends, bytes that are not UTF-8) written as '?'. For the
 *  JUnit report of `caveat policy test` and `caveat audit summary --svg`. */
void cv_xml_text(FILE *out, const char *text);

/*  Position of a node for error messages: 1-based line and column of the
 *  node, or of its first key/item when it is a collection (libfyaml 0.7
 *  keeps marks on tokens only); for an empty collection or a node made by
 *  alias resolution, the key that holds it, or else its parent's. 0 when
 *  nothing has a position.                                                 */
void cv_node_position(struct fy_node *node, int *line, int *col);
/*  cv_error_set at node's position (cv_node_position; NULL: none). */
void cv_error_at(cv_error_t *err, const char *file, struct fy_node *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void cv_error_vat(cv_error_t *err, const char *file, struct fy_node *node, const char *fmt,
                  va_list ap) __attribute__((format(printf, 4, 0)));

/*  A libfyaml diagnostic object that collects errors (for FILE:LINE:COL
 *  messages) and prints nothing; NULL when out of memory.                 */
struct fy_diag;
struct fy_diag *cv_diag_collecting(void);

#ifdef __cplusplus
}
#endif
#endif
