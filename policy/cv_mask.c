/*  cv_mask.c: the masks a rule may put on a field.
 *
 *  Each string mask returns a new string, or NULL when the value lacks the
 *  shape the mask needs (a "year" of something that is not a date). The
 *  caller then withholds the value: a mask never fails open.
 */
#include <ctype.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

static const char *const grant_text[] = {
    [CV_GRANT_NONE] = "withheld",
    [CV_GRANT_SHARE] = "share",
    [CV_GRANT_YEAR] = "mask:year",
    [CV_GRANT_POSTCODE_DISTRICT] = "mask:postcode_district",
    [CV_GRANT_INITIALS] = "mask:initials",
    [CV_GRANT_ROUND_1KM] = "mask:round_1km",
    [CV_GRANT_PSEUDONYMISE] = "mask:pseudonymise",
    [CV_GRANT_DENY] = "withheld",
};

const char *cv_grant_name(cv_grant_t grant)
{
    return grant <= CV_GRANT_DENY ? grant_text[grant] : "withheld";
}

/*  Which leaves a grant can apply to. */
static bool grant_fits_leaf(const cv_schema_node_t *node, cv_grant_t grant)
{
    ProtobufCType type = node->field->type;
    bool text = type == PROTOBUF_C_TYPE_STRING && !node->is_map;
    switch (grant) {
    case CV_GRANT_YEAR:
        return text && node->format != CV_FORMAT_TEXT;
    case CV_GRANT_POSTCODE_DISTRICT:
    case CV_GRANT_INITIALS:
        return text && node->format == CV_FORMAT_TEXT;
    case CV_GRANT_ROUND_1KM:
        return type == PROTOBUF_C_TYPE_DOUBLE || type == PROTOBUF_C_TYPE_FLOAT;
    case CV_GRANT_PSEUDONYMISE:
        return text || node->is_map;
    default:
        return true;
    }
}

bool cv_grant_fits(const cv_schema_t *schema, int index, cv_grant_t grant)
{
    int end = cv_schema_node(schema, index)->end;
    for (int i = index; i < end; i++) {
        const cv_schema_node_t *node = cv_schema_node(schema, i);
        if (node->is_leaf && !grant_fits_leaf(node, grant))
            return false;
    }
    return true;
}

bool cv_mask_year_into(const char *value, char *out)
{
    if (strlen(value) < 4 || !isdigit((unsigned char)value[0]) ||
        !isdigit((unsigned char)value[1]) || !isdigit((unsigned char)value[2]) ||
        !isdigit((unsigned char)value[3]))
        return false;
    memcpy(out, value, 4);
    out[4] = '\0';
    return true;
}

/*  A UK outward code: a letter, then letters and digits, 2 to 4 in all,
 *  with a digit in second or third place ("HU3", "SW1A", "M1"). */
static bool outward_code(const char *s, size_t n)
{
    if (n < 2 || n > 4 || !isalpha((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]))
            return false;
    return isdigit((unsigned char)s[1]) || (n > 2 && isdigit((unsigned char)s[2]));
}

/*  The inward code: a digit and two letters ("2AB"). */
static bool inward_code(const char *s)
{
    return isdigit((unsigned char)s[0]) && isalpha((unsigned char)s[1]) &&
           isalpha((unsigned char)s[2]);
}

/*  "HU3 2AB" -> "HU3". The outward code is what precedes the inward code,
 *  with or without the space between them. */
bool cv_mask_postcode_district_into(const char *value, char *out)
{
    while (*value == ' ')
        value++;
    size_t len = strlen(value);
    while (len > 0 && value[len - 1] == ' ')
        len--;
    if (len < 5 || !inward_code(value + len - 3))
        return false;
    size_t outward = len - 3;
    if (value[outward - 1] == ' ')
        outward--;
    if (!outward_code(value, outward)) /* at most 4 characters */
        return false;
    for (size_t i = 0; i < outward; i++)
        out[i] = (char)toupper((unsigned char)value[i]);
    out[outward] = '\0';
    return true;
}

/*  "Jane Doe" -> "J. D."; the first character of each word, whole UTF-8
 *  sequences so that "Émile Zola" gives "É. Z.". */
bool cv_mask_initials_into(const char *value, char *out)
{
    char *w = out;
    const unsigned char *p = (const unsigned char *)value;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (w != out)
            *w++ = ' ';
        do
            *w++ = (char)*p++;
        while ((*p & 0xC0) == 0x80);
        *w++ = '.';
        while (*p && *p != ' ' && *p != '\t')
            p++;
    }
    *w = '\0';
    return w != out;
}

/*  Two decimal places of a degree: about 1.1 km of latitude. */
double cv_mask_round_1km(double value)
{
    return round(value * 100.0) / 100.0;
}

/*  A keyed BLAKE2b of the value, keyed per recipient organisation: each
 *  organisation can link its own records without learning the identity,
 *  and two organisations cannot join theirs. */
void cv_mask_pseudonymise_into(const uint8_t key[CV_KEY_BYTES], const char *organisation,
                               const char *value, char *out)
{
    crypto_generichash_state state;
    uint8_t digest[12];
    _Static_assert(sizeof CV_PSEUDONYM_PREFIX + 2 * sizeof digest <= CV_MASK_MAX, "CV_MASK_MAX");
    crypto_generichash_init(&state, key, CV_KEY_BYTES, sizeof digest);
    crypto_generichash_update(&state, (const uint8_t *)organisation, strlen(organisation) + 1);
    crypto_generichash_update(&state, (const uint8_t *)value, strlen(value));
    crypto_generichash_final(&state, digest, sizeof digest);
    sodium_memzero(&state, sizeof state);
    memcpy(out, CV_PSEUDONYM_PREFIX, sizeof CV_PSEUDONYM_PREFIX - 1);
    sodium_bin2hex(out + sizeof CV_PSEUDONYM_PREFIX - 1, 2 * sizeof digest + 1, digest,
                   sizeof digest);
}

/* ------------------------------------------------------------------------ */
/*  The malloc'd forms.                                                     */

static char *keep(bool ok, char *out)
{
    if (ok)
        return out;
    free(out);
    return NULL;
}

char *cv_mask_year(const char *value)
{
    char *out = malloc(CV_MASK_MAX);
    return out ? keep(cv_mask_year_into(value, out), out) : NULL;
}

char *cv_mask_postcode_district(const char *value)
{
    char *out = malloc(CV_MASK_MAX);
    return out ? keep(cv_mask_postcode_district_into(value, out), out) : NULL;
}

char *cv_mask_initials(const char *value)
{
    char *out = malloc(strlen(value) * 2 + 1);
    return out ? keep(cv_mask_initials_into(value, out), out) : NULL;
}

char *cv_mask_pseudonymise(const uint8_t key[CV_KEY_BYTES], const char *organisation,
                           const char *value)
{
    char *out = malloc(CV_MASK_MAX);
    if (out)
        cv_mask_pseudonymise_into(key, organisation, value, out);
    return out;
}
