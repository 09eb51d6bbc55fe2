/*  cv_wire_scan.c: how many reports a Frame's Publish holds, read from the
 *  wire bytes without unpacking them (cv_proto.h).
 *
 *  protobuf-c can only unpack a whole message: a 1 MiB Publish of empty
 *  reports is half a million allocations before the broker could see that
 *  it holds more than it may. This walks the protobuf wire format (varint
 *  keys; wire types 0, 1, 2 and 5) just far enough to count: Frame field 3
 *  (publish), and inside it field 2 (reports). A singular embedded message
 *  that occurs twice is merged by protobuf-c, so every occurrence counts.
 */
#include "cv_proto.h"

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    *value = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        *value |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return true;
    }
    return false;
}

/*  Steps over one field's value; *body and *body_len are set for a
 *  length-delimited one. */
static bool skip_value(const uint8_t **p, const uint8_t *end, unsigned wire_type,
                       const uint8_t **body, size_t *body_len)
{
    uint64_t n;
    switch (wire_type) {
    case 0:
        return read_varint(p, end, &n);
    case 1:
    case 5: {
        size_t size = wire_type == 1 ? 8 : 4;
        if ((size_t)(end - *p) < size)
            return false;
        *p += size;
        return true;
    }
    case 2:
        if (!read_varint(p, end, &n) || n > (uint64_t)(end - *p))
            return false;
        *body = *p;
        *body_len = (size_t)n;
        *p += n;
        return true;
    default:
        return false;
    }
}

/*  Fields numbered field with wire type 2 in data, each passed to each()
 *  (NULL: counted only); SIZE_MAX when data is not well formed. */
static size_t count_fields(const uint8_t *data, size_t len, uint64_t field,
                           size_t (*each)(const uint8_t *, size_t))
{
    const uint8_t *p = data, *end = data + len;
    size_t count = 0;
    while (p < end) {
        uint64_t key;
        const uint8_t *body = NULL;
        size_t body_len = 0;
        if (!read_varint(&p, end, &key) || !skip_value(&p, end, key & 7, &body, &body_len))
            return SIZE_MAX;
        if (key >> 3 != field || (key & 7) != 2)
            continue;
        size_t n = each ? each(body, body_len) : 1;
        if (n == SIZE_MAX)
            return SIZE_MAX;
        count += n;
    }
    return count;
}

static size_t reports_in_publish(const uint8_t *publish, size_t len)
{
    return count_fields(publish, len, 2, NULL); /* Publish.reports */
}

size_t cv_wire_publish_reports(const uint8_t *frame, size_t len)
{
    return count_fields(frame, len, 3, reports_in_publish); /* Frame.publish */
}
