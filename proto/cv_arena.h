/*  cv_arena.h: a bump arena for unpacking protobuf-c messages.
 *
 *  protobuf-c unpacks a message as one malloc per submessage, string and
 *  array: some twenty for a delivered report. Unpacked into an arena they
 *  cost a few block allocations, and freeing them is one reset.
 *
 *  Allocations are aligned for any type (max_align_t) and never freed one
 *  by one: the allocator's free does nothing. So a message unpacked with
 *  cv_arena_allocator must never go to *_free_unpacked (with the arena's
 *  allocator that does nothing; with NULL it would free() arena memory):
 *  reset or destroy the arena instead. Not thread-safe: one arena, one
 *  thread at a time. Under AddressSanitizer, memory handed out before a
 *  reset is poisoned, so a message used after its arena's reset is caught.
 */
#ifndef CV_ARENA_H
#define CV_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cv_arena_t cv_arena_t;

enum { CV_ARENA_DEFAULT_BLOCK = 64 * 1024 };

/*  An arena that takes memory from malloc in blocks of block_size bytes
 *  (0: CV_ARENA_DEFAULT_BLOCK); a request larger than a block gets a block
 *  of its own. NULL when out of memory.                                    */
cv_arena_t *cv_arena_new(size_t block_size);
void cv_arena_destroy(cv_arena_t **self_p);

/*  The arena as a protobuf-c allocator, e.g.
 *  caveat__wire__frame__unpack(cv_arena_allocator(arena), len, data).
 *  Owned by the arena; valid until it is destroyed.                        */
ProtobufCAllocator *cv_arena_allocator(cv_arena_t *self);

/*  Takes back everything allocated: keeps one block for what comes next
 *  (or as many as cv_arena_keep allows) and frees the others.              */
void cv_arena_reset(cv_arena_t *self);
/*  A reset keeps up to bytes of blocks (at least one) instead of one: an
 *  arena filled to about the same size again and again then takes nothing
 *  more from malloc. What it keeps is the arena's until it is destroyed. */
void cv_arena_keep(cv_arena_t *self, size_t bytes);
/*  How many blocks the arena has taken from malloc since it was made:
 *  what tests look at.                                                    */
size_t cv_arena_mallocs(const cv_arena_t *self);

#ifdef __cplusplus
}
#endif
#endif
