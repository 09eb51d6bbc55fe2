/*  cv_cache.c: unpacked reports in generations of arenas; see cv_cache.h.
 *
 *  The slots are direct-mapped by rowid. A slot remembers the generation
 *  and that generation's epoch when it was filled: once the generation is
 *  reset (its epoch rises) the slot no longer matches, so nothing points
 *  into freed memory without being noticed.
 */
#include <stdlib.h>
#include <string.h>

#include "cv_arena.h"
#include "cv_cache.h"

#define CV_CACHE_GENERATIONS 8
/*  What a generation takes (frames and reports as unpacked, and the bytes
 *  kept): eight hold the most credit a session may ask (10,000 deliveries)
 *  of typical reports (about 2 KB kept, as the vulnerable_individual
 *  example), so that a subscriber that far behind is served from memory;
 *  one farther behind, or of larger reports, is read back from the store.
 *  The oldest generation goes as a new one starts: seven are sure. */
#define GENERATION_BYTES (4 * 1024 * 1024)
#define SLOTS            16384 /* reports findable by rowid */

typedef struct {
    int64_t rowid; /* 0: empty */
    const Caveat__Report *report;
    const uint8_t *packed; /* NULL: not kept */
    size_t packed_len;
    const uint8_t *view_hash; /* of packed, in the same generation; NULL: not given */
    int generation;
    uint64_t epoch;
} slot_t;

struct cv_cache_t {
    cv_arena_t *arena[CV_CACHE_GENERATIONS];
    cv_arena_t *trial;   /* cv_cache_report_fits unpacks here, and resets it */
    cv_arena_t *passing; /* cv_cache_unpack_passing's one report */
    uint64_t epoch[CV_CACHE_GENERATIONS];
    int current;
    size_t generation_bytes; /* packed bytes unpacked into the current generation */
    size_t turn_bytes;       /* ... in this turn */
    size_t turn_reads;       /* what reports read back took in this turn */
    slot_t slots[SLOTS];
};

cv_cache_t *cv_cache_new(void)
{
    cv_cache_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    for (int g = 0; g < CV_CACHE_GENERATIONS; g++)
        if (!(self->arena[g] = cv_arena_new(0))) {
            cv_cache_destroy(&self);
            return NULL;
        }
    if (!(self->trial = cv_arena_new(0)) || !(self->passing = cv_arena_new(0)))
        cv_cache_destroy(&self);
    return self;
}

void cv_cache_destroy(cv_cache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_cache_t *self = *self_p;
    for (int g = 0; g < CV_CACHE_GENERATIONS; g++)
        cv_arena_destroy(&self->arena[g]);
    cv_arena_destroy(&self->trial);
    cv_arena_destroy(&self->passing);
    free(self);
    *self_p = NULL;
}

static ProtobufCAllocator *current(cv_cache_t *self, size_t bytes)
{
    self->generation_bytes += bytes;
    self->turn_bytes += bytes;
    return cv_arena_allocator(self->arena[self->current]);
}

/*  What one frame may take in the arena as it is unpacked: protobuf-c gives
 *  each element of a repeated message its whole struct, so two bytes on the
 *  wire (an empty Subject, an empty Report) can take a hundred and more. A
 *  frame of empty subjects took 66 times its size; counted in packed bytes,
 *  eight generations then held 1.6 GB for 30 MB an agency sent. The slack
 *  covers the structs of a Publish of many small reports. */
#define UNPACK_FACTOR 16
#define UNPACK_SLACK  (1024 * 1024)

typedef struct {
    ProtobufCAllocator *arena;
    size_t used, budget;
} budget_t;

static void *budget_alloc(void *data, size_t size)
{
    budget_t *b = data;
    if (size > b->budget - b->used)
        return NULL; /* protobuf-c fails the unpack */
    b->used += size;
    return b->arena->alloc(b->arena->allocator_data, size);
}

static void budget_free(void *data, void *pointer)
{
    budget_t *b = data;
    b->arena->free(b->arena->allocator_data, pointer);
}

/*  A frame that would take more than UNPACK_FACTOR times its size and
 *  UNPACK_SLACK is not unpacked (NULL); what a frame takes is counted
 *  against the generation and the turn, not its packed size. */
Caveat__Wire__Frame *cv_cache_unpack_frame(cv_cache_t *self, const uint8_t *data, size_t size)
{
    budget_t b = {cv_arena_allocator(self->arena[self->current]), 0,
                  size < (SIZE_MAX - UNPACK_SLACK) / UNPACK_FACTOR
                      ? size * UNPACK_FACTOR + UNPACK_SLACK
                      : SIZE_MAX};
    ProtobufCAllocator counted = {budget_alloc, budget_free, &b};
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(&counted, size, data);
    current(self, b.used > size ? b.used : size);
    return frame;
}

/*  What one stored report may take unpacked: as a frame may, but with
 *  less slack, since a turn may read back hundreds of them (cv_cache.h). */
#define REPORT_SLACK (64 * 1024)

static size_t report_budget(size_t size)
{
    return size < (SIZE_MAX - REPORT_SLACK) / UNPACK_FACTOR ? size * UNPACK_FACTOR + REPORT_SLACK
                                                            : SIZE_MAX;
}

Caveat__Report *cv_cache_unpack_report(cv_cache_t *self, const uint8_t *data, size_t size)
{
    budget_t b = {cv_arena_allocator(self->arena[self->current]), 0, report_budget(size)};
    ProtobufCAllocator counted = {budget_alloc, budget_free, &b};
    Caveat__Report *report = caveat__report__unpack(&counted, size, data);
    size_t took = b.used > size ? b.used : size;
    current(self, took);
    self->turn_reads += took;
    return report;
}

Caveat__Report *cv_cache_unpack_passing(cv_cache_t *self, const uint8_t *data, size_t size)
{
    cv_arena_reset(self->passing);
    budget_t b = {cv_arena_allocator(self->passing), 0, report_budget(size)};
    ProtobufCAllocator counted = {budget_alloc, budget_free, &b};
    return caveat__report__unpack(&counted, size, data);
}

bool cv_cache_report_fits(cv_cache_t *self, const Caveat__Report *report, const uint8_t *data,
                          size_t size)
{
    size_t budget = report_budget(size);
    if (cv_proto_unpack_bound(&report->base) <= budget)
        return true; /* the common case: no need to unpack it again */
    budget_t b = {cv_arena_allocator(self->trial), 0, budget};
    ProtobufCAllocator counted = {budget_alloc, budget_free, &b};
    bool fits = caveat__report__unpack(&counted, size, data) != NULL;
    cv_arena_reset(self->trial);
    return fits;
}

char *cv_cache_strdup(cv_cache_t *self, const char *text)
{
    size_t len = strlen(text) + 1;
    ProtobufCAllocator *a = current(self, len);
    char *copy = a->alloc(a->allocator_data, len);
    if (copy)
        memcpy(copy, text, len);
    return copy;
}

/*  Unsigned, so that a rowid below 1 (which only a damaged store holds)
 *  still names a slot rather than memory before the table. */
static size_t slot_of(int64_t rowid)
{
    return (size_t)((uint64_t)rowid % SLOTS);
}

void cv_cache_put(cv_cache_t *self, int64_t rowid, const Caveat__Report *report,
                  const uint8_t *packed, size_t len)
{
    uint8_t *copy = NULL;
    if (packed && len) {
        ProtobufCAllocator *a = current(self, len);
        if ((copy = a->alloc(a->allocator_data, len)))
            memcpy(copy, packed, len);
    }
    self->slots[slot_of(rowid)] = (slot_t){
        rowid, report, copy, copy ? len : 0, NULL, self->current, self->epoch[self->current]};
}

/*  The slot of rowid while its generation lasts, else NULL. */
static const slot_t *kept(const cv_cache_t *self, int64_t rowid)
{
    const slot_t *s = &self->slots[slot_of(rowid)];
    return s->rowid == rowid && s->report && s->epoch == self->epoch[s->generation] ? s : NULL;
}

const Caveat__Report *cv_cache_get(const cv_cache_t *self, int64_t rowid)
{
    const slot_t *s = kept(self, rowid);
    return s ? s->report : NULL;
}

const uint8_t *cv_cache_packed(const cv_cache_t *self, int64_t rowid, const Caveat__Report *report,
                               size_t *len)
{
    const slot_t *s = kept(self, rowid);
    if (s && s->report != report)
        s = NULL;
    *len = s ? s->packed_len : 0;
    return s ? s->packed : NULL;
}

void cv_cache_put_view_hash(cv_cache_t *self, int64_t rowid, const Caveat__Report *report,
                            const uint8_t hash[CV_CHECKSUM_BYTES])
{
    slot_t *s = &self->slots[slot_of(rowid)];
    /* in the current generation alone: the hash lives as long as the bytes */
    if (!kept(self, rowid) || s->report != report || !s->packed || s->generation != self->current)
        return;
    ProtobufCAllocator *a = current(self, CV_CHECKSUM_BYTES);
    uint8_t *copy = a->alloc(a->allocator_data, CV_CHECKSUM_BYTES);
    if (copy)
        memcpy(copy, hash, CV_CHECKSUM_BYTES);
    s->view_hash = copy;
}

const uint8_t *cv_cache_view_hash(const cv_cache_t *self, int64_t rowid,
                                  const Caveat__Report *report)
{
    const slot_t *s = kept(self, rowid);
    return s && s->report == report ? s->view_hash : NULL;
}

void cv_cache_forget(cv_cache_t *self)
{
    memset(self->slots, 0, sizeof self->slots);
}

void cv_cache_next_turn(cv_cache_t *self)
{
    self->turn_bytes = 0;
    self->turn_reads = 0;
    if (self->generation_bytes < GENERATION_BYTES)
        return;
    /* the oldest generation becomes the current one, empty */
    self->current = (self->current + 1) % CV_CACHE_GENERATIONS;
    self->epoch[self->current]++;
    cv_arena_reset(self->arena[self->current]);
    self->generation_bytes = 0;
}

size_t cv_cache_turn_bytes(const cv_cache_t *self)
{
    return self->turn_bytes;
}

size_t cv_cache_turn_reads(const cv_cache_t *self)
{
    return self->turn_reads;
}
