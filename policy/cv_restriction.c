/*  cv_restriction.c: which restrictions apply to a delivery, and what they
 *  do to its fields.
 *
 *  A restriction names deliveries by category, originator and recipient,
 *  never by the report's area or level, so whether one applies is known
 *  from (category, originator, recipient) alone. The recipient side (to,
 *  except_to) is settled at load: agencies that the same restrictions
 *  reach form a group, and per (group, category) the index lists the
 *  restrictions that may apply, in policy order. Deciding then reads one
 *  bucket, usually empty, and checks only the originator: a policy's
 *  restrictions cost a decision next to nothing unless they apply to it.
 */
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort();
    return p;
}

bool cv_restriction_to(const cv_policy_t *p, int r, int to)
{
    const cv_restriction_t *restriction = &p->restrictions[r];
    const cv_agency_internal_t *agency = &p->agencies[to];
    return cv_agency_set_has(&restriction->to, agency, to) &&
           (restriction->except_to.any || !cv_agency_set_has(&restriction->except_to, agency, to));
}

bool cv_restriction_from(const cv_policy_t *p, int r, int from)
{
    return cv_hot_from(p, &p->restriction_hot[r], p->agencies[from].type_id, from);
}

/*  Each agency's row (a byte per restriction: it may reach the agency)
 *  looked up among the groups' rows; a new row makes a new group. rep
 *  holds each group's first agency, whose row stands for the group. */
static int group_of(cv_policy_t *p, const uint8_t *rows, int agency, cv_table_t *groups, int *rep)
{
    size_t n = (size_t)p->n_restrictions;
    const uint8_t *row = rows + (size_t)agency * n;
    unsigned h = n ? cv_hash(row, n) & groups->mask : 0;
    for (; groups->slots[h] >= 0; h = (h + 1) & groups->mask)
        if (memcmp(rows + (size_t)rep[groups->slots[h]] * n, row, n) == 0)
            return groups->slots[h];
    rep[p->n_restriction_groups] = agency;
    groups->slots[h] = p->n_restriction_groups;
    return p->n_restriction_groups++;
}

/*  Per (group, category), the restrictions of the group's row that cover
 *  the category: counted, then placed in policy order. */
static void fill_buckets(cv_policy_t *p, const uint8_t *rows, const int *rep)
{
    int n = p->n_restrictions, n_buckets = p->n_restriction_groups * p->n_categories;
    int *start = xcalloc((size_t)n_buckets + 1, sizeof *start);
    for (int pass = 0; pass < 2; pass++) {
        for (int g = 0; g < p->n_restriction_groups; g++)
            for (int r = 0; r < n; r++) {
                if (!rows[(size_t)rep[g] * (size_t)n + (size_t)r])
                    continue;
                for (uint64_t c = p->restrictions[r].categories; c; c &= c - 1) {
                    int bucket = g * p->n_categories + __builtin_ctzll(c);
                    if (pass == 0)
                        start[bucket + 1]++;
                    else
                        p->restriction_pool[start[bucket]++] = r;
                }
            }
        if (pass == 0) {
            for (int b = 0; b < n_buckets; b++)
                start[b + 1] += start[b];
            p->restriction_pool = xcalloc((size_t)start[n_buckets], sizeof *p->restriction_pool);
            p->restriction_buckets = xcalloc((size_t)n_buckets + 1, sizeof *start);
            memcpy(p->restriction_buckets, start, ((size_t)n_buckets + 1) * sizeof *start);
        }
    }
    free(start);
}

void cv_restrictions_index(cv_policy_t *p)
{
    size_t n = (size_t)p->n_restrictions;
    uint8_t *rows = xcalloc((size_t)p->n_agencies * n, 1);
    for (int a = 0; a < p->n_agencies; a++)
        for (int r = 0; r < p->n_restrictions; r++)
            rows[(size_t)a * n + (size_t)r] = cv_restriction_to(p, r, a);
    int *rep = xcalloc((size_t)p->n_agencies, sizeof *rep);
    cv_table_t groups;
    cv_table_init(&groups, p->n_agencies);
    p->n_restriction_groups = 0;
    for (int a = 0; a < p->n_agencies; a++)
        p->agency_hot[a].restriction_group = group_of(p, rows, a, &groups, rep);
    fill_buckets(p, rows, rep);
    size_t size = (size_t)cv_schema_size(p->schema);
    p->restriction_denies = xcalloc(size, 1);
    for (int r = 0; r < p->n_restrictions; r++)
        for (size_t i = 0; i < size; i++)
            p->restriction_denies[i] |=
                p->restriction_grants[(size_t)r * size + i] == CV_GRANT_DENY;
    cv_table_free(&groups);
    free(rep);
    free(rows);
}

int cv_restrictions_for(const cv_policy_t *p, int category, int from, int to, int *out)
{
    const int *bucket =
        p->restriction_buckets + p->agency_hot[to].restriction_group * p->n_categories + category;
    int count = 0;
    for (int i = bucket[0]; i < bucket[1]; i++)
        if (cv_restriction_from(p, p->restriction_pool[i], from))
            out[count++] = p->restriction_pool[i];
    return count;
}

void cv_restriction_cap(const cv_policy_t *p, int r, uint8_t *restrict grant, size_t size)
{
    const uint8_t *restrict row = p->restriction_grants + (size_t)r * size;
    for (size_t i = 0; i < size; i++) { /* vectorised: no branch in the loop */
        uint8_t capped = row[i] > grant[i] ? row[i] : grant[i];
        grant[i] = grant[i] != CV_GRANT_NONE ? capped : CV_GRANT_NONE;
    }
}
