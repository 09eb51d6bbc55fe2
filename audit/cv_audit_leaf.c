/*  cv_audit_leaf.c: the leaves' form, one compact JSON object an event.
 *
 *  Every leaf starts {"event":NAME,"time":MILLISECONDS, so that a reader
 *  can tell events apart without knowing them all; the keys after those
 *  are the event's own (docs/architecture.md lists them). The project's
 *  JSON writer writes them: strings escaped one way everywhere, numbers
 *  never quoted.
 */
#include <stdlib.h>
#include <string.h>

#include "audit_internal.h"

cv_json_writer_t *cv_audit_leaf_begin(const char *event, uint64_t time_ms)
{
    cv_json_writer_t *writer = cv_json_writer_new(0);
    if (!writer)
        return NULL;
    cv_json_object_begin(writer);
    cv_json_key(writer, "event");
    cv_json_string(writer, event);
    cv_json_key(writer, "time");
    cv_json_uint(writer, time_ms);
    return writer;
}

char *cv_audit_leaf_end(cv_json_writer_t **writer_p)
{
    if (!writer_p || !*writer_p)
        return NULL;
    cv_json_object_end(*writer_p);
    const char *text = cv_json_writer_text(*writer_p);
    char *leaf = text ? strdup(text) : NULL;
    cv_json_writer_destroy(writer_p);
    return leaf;
}
