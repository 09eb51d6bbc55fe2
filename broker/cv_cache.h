/*  cv_cache.h: caveatd's unpacked reports, by rowid, in generations.
 *
 *  Everything the broker unpacks (incoming frames, reports read back from
 *  the store) is unpacked into the current generation: an arena
 *  (cv_arena.h), so unpacking costs no malloc per field and nothing is
 *  freed one by one. The reports of a Publish are then delivered straight
 *  from the frame they came in. When a generation has taken its share of
 *  bytes the next one starts; the oldest is then reset and its reports
 *  forgotten. Memory is bounded by CV_CACHE_GENERATIONS generations.
 *
 *  Only between turns may a generation end (cv_cache_next_turn): nothing
 *  unpacked in a turn is taken back before the turn is over.
 */
#ifndef CV_CACHE_H
#define CV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cv_hasher.h"
#include "cv_proto.h"

typedef struct cv_cache_t cv_cache_t;

cv_cache_t *cv_cache_new(void);
void cv_cache_destroy(cv_cache_t **self_p);

/*  Unpacks into the current generation, counting packed_size bytes
 *  against it (a frame: the bytes it took, which may be many times more).
 *  NULL when not valid, or for a frame that would take more than 16 times
 *  its size and 1 MiB. */
Caveat__Wire__Frame *cv_cache_unpack_frame(cv_cache_t *self, const uint8_t *data, size_t size);
/*  A stored report read back: counted as what it takes, and NULL when it
 *  would take more than 16 times its size and 64 KiB (which the broker
 *  checks before it stores one: cv_cache_report_fits). */
Caveat__Report *cv_cache_unpack_report(cv_cache_t *self, const uint8_t *data, size_t size);
/*  The same, into a place of its own that the next call reuses: for a
 *  report needed once, past what a turn may keep (a save that hashes the
 *  views of thousands of acknowledged deliveries). Not counted, and
 *  never given to cv_cache_put. */
Caveat__Report *cv_cache_unpack_passing(cv_cache_t *self, const uint8_t *data, size_t size);
/*  Whether data (size bytes: report, packed) can be read back by
 *  cv_cache_unpack_report. An empty repeated element is 2 bytes packed
 *  and a whole struct unpacked, and a frame's bound covers its reports
 *  together, not each: a report stored without this check could be
 *  acknowledged and never read back, or take many times what it is
 *  counted. */
bool cv_cache_report_fits(cv_cache_t *self, const Caveat__Report *report, const uint8_t *data,
                          size_t size);
/*  A copy of text in the current generation: for strings the broker sets
 *  in a report it unpacked. */
char *cv_cache_strdup(cv_cache_t *self, const char *text);

/*  Keeps report (unpacked by this cache, in this turn) as the report at
 *  rowid; finds it again until its generation ends. packed (len bytes) is
 *  the report as caveat__report__pack writes it, copied into the
 *  generation (counted as unpacked bytes are): a recipient given the whole
 *  report is sent those bytes rather than the report packed again. NULL:
 *  not kept (a body read back from the store may have been written by
 *  another version, and hold what this one would not pack). */
void cv_cache_put(cv_cache_t *self, int64_t rowid, const Caveat__Report *report,
                  const uint8_t *packed, size_t len);
const Caveat__Report *cv_cache_get(const cv_cache_t *self, int64_t rowid);
/*  The stored bytes of report, kept at rowid with them (cv_cache_put);
 *  NULL when it is not kept there or they were not given. */
const uint8_t *cv_cache_packed(const cv_cache_t *self, int64_t rowid, const Caveat__Report *report,
                               size_t *len);
/*  The SHA-256 of the bytes kept with report at rowid (cv_checksum_sha256: what
 *  a "delivered" leaf names of a view that is the whole report), taken
 *  beside the loop as the report was stored; kept while they are. Nothing
 *  when those bytes are not kept, or not in the current generation. */
void cv_cache_put_view_hash(cv_cache_t *self, int64_t rowid, const Caveat__Report *report,
                            const uint8_t hash[CV_CHECKSUM_BYTES]);
/*  That hash, or NULL: not given, or the bytes no longer kept. */
const uint8_t *cv_cache_view_hash(const cv_cache_t *self, int64_t rowid,
                                  const Caveat__Report *report);
/*  Forgets every report (a rolled-back turn may have given their rowids). */
void cv_cache_forget(cv_cache_t *self);

/*  Between turns: starts the next generation if this one is full. */
void cv_cache_next_turn(cv_cache_t *self);
/*  Bytes unpacked in the current turn so far: a turn stops draining past
 *  a bound, so one generation never holds more than its share by much. */
size_t cv_cache_turn_bytes(const cv_cache_t *self);
/*  What reports read back from the store took in this turn: the sends
 *  stop past a bound, so that reading back a backlog does not fill a
 *  generation many times over in one turn. */
size_t cv_cache_turn_reads(const cv_cache_t *self);

#endif
