/*  receipt_check.c: see receipt_check.h. The leaf's form is the broker's
 *  (docs/protocol.md, 5a): {"event":"delivered","time":...,"salt":...,
 *  "agency":...,"feed":null or a name,"deliveries":[{"report":...,
 *  "seq":N,"view":hex or null},...]}, compact, seqs ascending, no other
 *  key.
 *
 *  The leaf is the broker's word, so it is held to that form exactly, not
 *  to whatever libfyaml reads as JSON: another reader of the same bytes
 *  must not find a different delivery in them (a second value after the
 *  object, a second seq 7 written 7.0, a comment libfyaml skips).
 */
#include <libfyaml.h>
#include <stdio.h>
#include <string.h>

#include "leaf_json.h"
#include "receipt_check.h"

/*  16 deliveries of ids of at most 128 bytes, each byte escaped at worst
 *  (\u00XX), and two names, are far below it. libfyaml's check for a key
 *  given twice is quadratic in the keys: a frame-sized leaf of short keys
 *  would keep the subscriber for minutes. */
#define RECEIPT_LEAF_MAX (32 * 1024)

static bool refuse(char *why, size_t size, const char *what)
{
    snprintf(why, size, "%s", what);
    return false;
}

/*  Whether the leaf is written as the broker writes it: one object and
 *  nothing after it (libfyaml reads the first value and stops, where
 *  another reader would find a second), no space, line break or comment
 *  outside its strings. */
static bool compact(const uint8_t *leaf, size_t len)
{
    if (len == 0 || leaf[0] != '{')
        return false;
    bool in_string = false;
    size_t depth = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = leaf[i];
        if (in_string) {
            if (c == '\\')
                i++; /* the escaped byte, whatever it is */
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0 && i + 1 < len) {
            return false; /* the object ended before the leaf did */
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '#') {
            return false;
        }
    }
    return true;
}

/*  The seq node holds, in canonical decimal only (no sign, point,
 *  exponent or leading zero, and within 64 bits). */
static bool seq_of(struct fy_node *node, uint64_t *seq)
{
    size_t len = 0;
    const char *digits = node && fy_node_is_scalar(node) && fy_node_get_style(node) == FYNS_PLAIN
                             ? fy_node_get_scalar(node, &len)
                             : NULL;
    if (!digits || len == 0 || len > 20 || (len > 1 && digits[0] == '0'))
        return false;
    uint64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned digit = (unsigned)(digits[i] - '0');
        if (digit > 9 || value > (UINT64_MAX - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    *seq = value;
    return true;
}

/*  Whether key in map is a JSON string, and the text expected; never when
 *  nothing (or "") is expected. Compared by length too: JSON's \u0000 puts
 *  a NUL inside a string, and "hull-cc\u0000x" is not "hull-cc". */
static bool text_is(struct fy_node *map, const char *key, const char *expected)
{
    struct fy_node *node = fy_node_mapping_lookup_by_string(map, key, FY_NT);
    size_t len = 0;
    const char *text =
        node && fy_node_is_scalar(node) && fy_node_get_style(node) == FYNS_DOUBLE_QUOTED
            ? fy_node_get_scalar(node, &len)
            : NULL;
    return expected && *expected && text && len == strlen(expected) &&
           memcmp(text, expected, len) == 0;
}

static bool same_feed(struct fy_node *leaf, const char *feed)
{
    if (!feed || !*feed)
        return audit_node_null(fy_node_mapping_lookup_by_string(leaf, "feed", FY_NT));
    return text_is(leaf, "feed", feed);
}

/*  Whether every key of map is one of keys (NULL-ended): a key the
 *  broker does not write (a second "seq" beside the deliveries, say)
 *  could be read by another reader as the delivery. Keys given twice
 *  libfyaml refuses. */
static bool only_keys(struct fy_node *map, const char *const *keys)
{
    struct fy_node_pair *pair;
    void *iter = NULL;
    while ((pair = fy_node_mapping_iterate(map, &iter)) != NULL) {
        struct fy_node *key = fy_node_pair_key(pair);
        size_t len = 0;
        const char *text = key && fy_node_is_scalar(key) ? fy_node_get_scalar(key, &len) : NULL;
        bool known = false;
        for (const char *const *k = keys; text && *k && !known; k++)
            known = len == strlen(*k) && memcmp(text, *k, len) == 0;
        if (!known)
            return false;
    }
    return true;
}

static const char *const leaf_keys[] = {"event", "time",       "salt", "agency",
                                        "feed",  "deliveries", NULL};
static const char *const entry_keys[] = {"report", "seq", "view", NULL};

/*  The entry of deliveries with seq; NULL when there is none, or when any
 *  entry is not an object with a canonical seq above the one before it (as
 *  the broker lists them): then no seq is listed only once for sure. */
static struct fy_node *entry_of(struct fy_node *deliveries, uint64_t seq)
{
    struct fy_node *found = NULL, *item;
    void *iter = NULL;
    uint64_t last = 0;
    while ((item = fy_node_sequence_iterate(deliveries, &iter)) != NULL) {
        uint64_t n;
        if (!fy_node_is_mapping(item) || !only_keys(item, entry_keys) ||
            !seq_of(fy_node_mapping_lookup_by_string(item, "seq", FY_NT), &n) ||
            (last && n <= last))
            return NULL;
        last = n;
        if (n == seq)
            found = item;
    }
    return found;
}

static bool check_leaf(struct fy_node *leaf, const cv_receipt_t *receipt, const char *agency,
                       const char *feed, const char *report_id, const char *view_hex, char *why,
                       size_t size)
{
    if (!text_is(leaf, "event", "delivered"))
        return refuse(why, size, "its leaf is not a \"delivered\" leaf");
    if (!only_keys(leaf, leaf_keys))
        return refuse(why, size, "its leaf has a key a \"delivered\" leaf does not");
    if (!text_is(leaf, "agency", agency))
        return refuse(why, size, "its leaf is another agency's delivery");
    if (!same_feed(leaf, feed))
        return refuse(why, size, "its leaf is another queue's delivery");
    struct fy_node *deliveries = fy_node_mapping_lookup_by_string(leaf, "deliveries", FY_NT);
    struct fy_node *entry =
        deliveries && fy_node_is_sequence(deliveries) ? entry_of(deliveries, receipt->seq) : NULL;
    if (!entry)
        return refuse(why, size, "its leaf does not list its seq, once");
    if (!text_is(entry, "report", report_id))
        return refuse(why, size, "its leaf names another report at its seq");
    if (!text_is(entry, "view", view_hex))
        return refuse(why, size, "its leaf names a view other than the one received");
    return true;
}

/*  The receipt's proof, read. */
static bool proof_parse(const cv_receipt_t *receipt, cv_audit_proof_t *proof, char *why,
                        size_t size)
{
    cv_error_t err;
    if (receipt->proof && cv_audit_proof_parse(receipt->proof, receipt->proof_len, proof, &err))
        return true;
    return refuse(why, size, "its proof is not a c2sp.org/tlog-proof@v1 text");
}

/*  Whether proof, the file a subscriber keeps, is of the receipt's leaf
 *  (its extra data, byte for byte) at the receipt's index. */
static bool proves_the_leaf(const cv_audit_proof_t *proof, const cv_receipt_t *receipt, char *why,
                            size_t size)
{
    if (!proof->extra || proof->extra_len != receipt->leaf_len ||
        memcmp(proof->extra, receipt->leaf, receipt->leaf_len) != 0)
        return refuse(why, size, "its proof is of another leaf than the one checked");
    if (proof->index != receipt->index)
        return refuse(why, size, "its proof puts its leaf at another index than the receipt's");
    return true;
}

/*  What proves_the_leaf says of the receipt's proof; with a verifier
 *  (may be NULL), also whether that proof holds under it. */
static bool proof_holds(const cv_receipt_t *receipt, const cv_note_verifier_t *verifier, char *why,
                        size_t size)
{
    cv_audit_proof_t proof;
    cv_error_t err;
    if (!proof_parse(receipt, &proof, why, size))
        return false;
    bool good = proves_the_leaf(&proof, receipt, why, size);
    if (good && verifier &&
        !cv_audit_proof_check(&proof, receipt->leaf, receipt->leaf_len, verifier, NULL, &err)) {
        snprintf(why, size, "its proof does not hold: %s", err.msg);
        good = false;
    }
    cv_audit_proof_clear(&proof);
    return good;
}

bool receipt_check(const cv_receipt_t *receipt, const char *agency, const char *feed,
                   const char *report_id, const char *view_hex, char *why, size_t why_size)
{
    if (!report_id || !receipt->report_id || strcmp(receipt->report_id, report_id) != 0)
        return refuse(why, why_size, "it is for another report than the one received");
    if (receipt->leaf_len > RECEIPT_LEAF_MAX)
        return refuse(why, why_size, "its leaf is too long");
    if (!compact(receipt->leaf, receipt->leaf_len))
        return refuse(why, why_size, "its leaf is not written as the broker writes leaves");
    struct fy_document *doc = audit_leaf_parse(receipt->leaf, receipt->leaf_len);
    if (!doc)
        return refuse(why, why_size, "its leaf is not a JSON object");
    bool good = check_leaf(fy_document_root(doc), receipt, agency, feed, report_id, view_hex, why,
                           why_size);
    fy_document_destroy(doc);
    return good && proof_holds(receipt, NULL, why, why_size);
}

bool receipt_verify(const cv_receipt_t *receipt, const cv_note_verifier_t *verifier, char *why,
                    size_t why_size)
{
    return proof_holds(receipt, verifier, why, why_size);
}
