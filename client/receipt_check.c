/*  receipt_check.c: see receipt_check.h. The leaf's form is the broker's
 *  (docs/operations.md, "The audit log"): {"event":"delivered","time":...,
 *  "agency":...,"feed":null or a name,"deliveries":[{"report":...,"seq":N,
 *  "view":hex or null},...]}. */
#include <inttypes.h>
#include <libfyaml.h>
#include <stdio.h>
#include <string.h>

#include "leaf_json.h"
#include "receipt_check.h"

static bool refuse(char *why, size_t size, const char *what)
{
    snprintf(why, size, "%s", what);
    return false;
}

/*  Whether node is the number n, in decimal digits alone. */
static bool is_number(struct fy_node *node, uint64_t n)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%" PRIu64, n);
    return node && fy_node_is_scalar(node) && fy_node_get_style(node) == FYNS_PLAIN &&
           strcmp(fy_node_get_scalar0(node), digits) == 0;
}

/*  Whether key in map is the text expected (a string, not null); never
 *  when nothing is expected. Compared by length too: JSON's \u0000 puts a
 *  NUL inside a string, and "hull-cc\u0000x" is not "hull-cc". */
static bool text_is(struct fy_node *map, const char *key, const char *expected)
{
    struct fy_node *node = fy_node_mapping_lookup_by_string(map, key, FY_NT);
    size_t len = 0;
    const char *text = node && fy_node_is_scalar(node) && !audit_node_null(node)
                           ? fy_node_get_scalar(node, &len)
                           : NULL;
    return expected && text && len == strlen(expected) && memcmp(text, expected, len) == 0;
}

static bool same_feed(struct fy_node *leaf, const char *feed)
{
    if (!feed || !*feed)
        return audit_node_null(fy_node_mapping_lookup_by_string(leaf, "feed", FY_NT));
    return text_is(leaf, "feed", feed);
}

/*  The one entry of deliveries with seq; NULL when none or several. */
static struct fy_node *entry_of(struct fy_node *deliveries, uint64_t seq)
{
    struct fy_node *found = NULL, *item;
    void *iter = NULL;
    while ((item = fy_node_sequence_iterate(deliveries, &iter)) != NULL) {
        struct fy_node *number =
            fy_node_is_mapping(item) ? fy_node_mapping_lookup_by_string(item, "seq", FY_NT) : NULL;
        if (!is_number(number, seq))
            continue;
        if (found)
            return NULL;
        found = item;
    }
    return found;
}

static bool check_leaf(struct fy_node *leaf, const cv_receipt_t *receipt, const char *agency,
                       const char *feed, const char *view_hex, char *why, size_t size)
{
    if (!text_is(leaf, "event", "delivered"))
        return refuse(why, size, "its leaf is not a \"delivered\" leaf");
    if (!text_is(leaf, "agency", agency))
        return refuse(why, size, "its leaf is another agency's delivery");
    if (!same_feed(leaf, feed))
        return refuse(why, size, "its leaf is another queue's delivery");
    struct fy_node *deliveries = fy_node_mapping_lookup_by_string(leaf, "deliveries", FY_NT);
    struct fy_node *entry =
        deliveries && fy_node_is_sequence(deliveries) ? entry_of(deliveries, receipt->seq) : NULL;
    if (!entry)
        return refuse(why, size, "its leaf does not list its seq, once");
    if (!text_is(entry, "report", receipt->report_id))
        return refuse(why, size, "its leaf names another report at its seq");
    if (!text_is(entry, "view", view_hex))
        return refuse(why, size, "its leaf names a view other than the one received");
    return true;
}

bool receipt_check(const cv_receipt_t *receipt, const char *agency, const char *feed,
                   const char *view_hex, char *why, size_t why_size)
{
    struct fy_document *doc = audit_leaf_parse(receipt->leaf, receipt->leaf_len);
    if (!doc)
        return refuse(why, why_size, "its leaf is not a JSON object");
    bool good = check_leaf(fy_document_root(doc), receipt, agency, feed, view_hex, why, why_size);
    fy_document_destroy(doc);
    return good;
}
