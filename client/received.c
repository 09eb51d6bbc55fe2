/*  received.c: `caveat received`'s reader (received.h). */
#include "received.h"

#include <czmq.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_alloc.h"

struct received_t {
    received_report_t *reports;
    int n, cap;
    zhashx_t *index; /* report_key() -> its index + 1 in reports */
};

received_t *received_new(void)
{
    received_t *self = cv_xcalloc(1, sizeof *self);
    self->index = zhashx_new();
    if (!self->index)
        abort(); /* out of memory, as cv_alloc.h does */
    return self;
}

void received_destroy(received_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    received_t *self = *self_p;
    for (int i = 0; i < self->n; i++) {
        received_report_t *r = &self->reports[i];
        for (int v = 0; v < r->n; v++) {
            protobuf_c_message_free_unpacked(&r->views[v].view->base, NULL);
            free(r->views[v].feed);
        }
        free(r->views);
        free(r->report_id);
        free(r->originator);
    }
    free(self->reports);
    zhashx_destroy(&self->index);
    free(self);
    *self_p = NULL;
}

int received_count(const received_t *self)
{
    return self->n;
}

const received_report_t *received_at(const received_t *self, int index)
{
    return index >= 0 && index < self->n ? &self->reports[index] : NULL;
}

/*  A report's key: its originator's length first, so that no originator
 *  and id spell another pair's. malloc'd. */
static char *report_key(const char *report_id, const char *originator)
{
    size_t len = strlen(originator) + strlen(report_id) + 24;
    char *key = cv_xmalloc(len);
    snprintf(key, len, "%zu:%s%s", strlen(originator), originator, report_id);
    return key;
}

/*  The table of the report (id, originator), made when new: a hash
 *  lookup, so that a day's file of many reports is read in linear time. */
static received_report_t *report_for(received_t *self, const char *report_id,
                                     const char *originator)
{
    originator = originator ? originator : "";
    char *key = report_key(report_id, originator);
    uintptr_t at = (uintptr_t)zhashx_lookup(self->index, key);
    if (at) {
        free(key);
        return &self->reports[at - 1];
    }
    if (self->n == self->cap) {
        self->cap = self->cap ? 2 * self->cap : 16;
        self->reports = cv_xrealloc(self->reports, (size_t)self->cap * sizeof *self->reports);
    }
    received_report_t *r = &self->reports[self->n++];
    *r = (received_report_t){cv_xstrdup(report_id), cv_xstrdup(originator), NULL, 0};
    zhashx_insert(self->index, key, (void *)(uintptr_t)self->n);
    free(key);
    return r;
}

/*  A line of feedback on the agency's own report ("report": null and a
 *  "feedback" object): what subscribe writes beside deliveries, not a
 *  view of a report, so not a column of any table. */
static bool feedback_line(struct fy_node *root)
{
    struct fy_node *feedback = root ? fy_node_by_path(root, "/feedback", FY_NT, 0) : NULL;
    struct fy_node *report = root ? fy_node_by_path(root, "/report", FY_NT, 0) : NULL;
    size_t len = 0;
    const char *text = report && fy_node_is_scalar(report) && !fy_node_is_alias(report) &&
                               fy_node_get_style(report) == FYNS_PLAIN
                           ? fy_node_get_scalar(report, &len)
                           : NULL;
    return feedback && fy_node_is_mapping(feedback) && text && len == 4 &&
           memcmp(text, "null", 4) == 0;
}

/*  A delivery's report_id is a JSON string; anything else (a list, an
 *  object, null) is refused. NULL when it is not text. */
static const char *scalar_text(struct fy_node *node)
{
    if (!node || !fy_node_is_scalar(node) || fy_node_is_alias(node) ||
        fy_node_get_style(node) != FYNS_DOUBLE_QUOTED)
        return NULL;
    return fy_node_get_scalar0(node);
}

/*  One line of `caveat subscribe`: {"delivery": {...}, "report": {...}}. */
bool received_read_line(received_t *self, const char *label, const char *line, size_t len,
                        const char *file, cv_error_t *err)
{
    int at_line, at_col;
    if (cv_text_check(line, len, &at_line, &at_col)) {
        cv_error_set(err, NULL, 0, 0, "not UTF-8 text");
        return false;
    }
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_JSON_FORCE};
    struct fy_document *doc = fy_document_build_from_string(&cfg, line, len);
    struct fy_node *root = doc ? fy_document_root(doc) : NULL;
    if (feedback_line(root)) {
        fy_document_destroy(doc);
        return true;
    }
    struct fy_node *id = root ? fy_node_by_path(root, "/delivery/report_id", FY_NT, 0) : NULL;
    struct fy_node *report = root ? fy_node_by_path(root, "/report", FY_NT, 0) : NULL;
    cv_error_t why = {0};
    const char *report_id = scalar_text(id);
    if (id && !report_id)
        cv_error_at(&why, file, id, "delivery.report_id: expected a string");
    ProtobufCMessage *view = report_id && report
                                 ? cv_json_from_node(cv_schema_report(), report,
                                                     CV_JSON_TYPED | CV_JSON_VIEW, file, &why)
                                 : NULL;
    if (view) {
        received_report_t *r = report_for(self, report_id, ((Caveat__Report *)view)->originator);
        r->views = cv_xrealloc(r->views, (size_t)(r->n + 1) * sizeof *r->views);
        /* the feed's name is the document's: the view keeps a copy */
        const char *feed =
            scalar_text(root ? fy_node_by_path(root, "/delivery/feed", FY_NT, 0) : NULL);
        r->views[r->n++] =
            (received_view_t){label, (Caveat__Report *)view, feed ? cv_xstrdup(feed) : NULL};
    }
    fy_document_destroy(doc);
    if (!view)
        cv_error_set(err, NULL, 0, 0, "not a delivery line%s%s", why.msg[0] ? ": " : "", why.msg);
    return view != NULL;
}
