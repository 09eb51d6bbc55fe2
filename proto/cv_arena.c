/*  cv_arena.c: a bump arena for protobuf-c (cv_arena.h).
 *
 *  Blocks of one size come from malloc; each allocation takes the next
 *  bytes of the newest block, rounded up to keep the next one aligned. A
 *  request larger than a block gets a block of its own on a second list,
 *  so that it never wastes the rest of the block in use.
 */
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "cv_arena.h"

#define ALIGN alignof(max_align_t)

/*  Under AddressSanitizer the arena tells it what is handed out: free
 *  space and everything before a reset are poisoned, and a gap after each
 *  allocation keeps an overflow from landing silently in the next one. */
#if defined(__SANITIZE_ADDRESS__)
#define CV_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CV_ARENA_ASAN 1
#endif
#endif

#ifdef CV_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#define REDZONE        ALIGN
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define REDZONE        0
#endif

typedef struct block_t {
    struct block_t *next;
    size_t size; /* bytes in data */
    alignas(max_align_t) unsigned char data[];
} block_t;

struct cv_arena_t {
    ProtobufCAllocator allocator; /* allocator_data is the arena */
    size_t block_size;
    unsigned char *next; /* the free bytes of the block in use */
    size_t room;
    block_t *blocks; /* of block_size bytes, the one in use first */
    block_t *large;  /* one request each */
    block_t *spare;  /* of block_size bytes, kept by a reset for what comes next */
    size_t keep;     /* blocks a reset keeps: at least one */
    size_t mallocs;  /* blocks taken from malloc, ever */
};

static block_t *block_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(block_t))
        return NULL;
    block_t *block = malloc(sizeof(block_t) + size);
    if (block) {
        block->size = size;
        POISON(block->data, size);
    }
    return block;
}

static void blocks_free(block_t *block)
{
    while (block) {
        block_t *next = block->next;
        UNPOISON(block->data, block->size); /* malloc gets back what it gave */
        free(block);
        block = next;
    }
}

/*  When the block in use has no room: a new block, or for a request larger
 *  than a block, a block of its own. rounded: the request with its gap.
 *  Not inlined, so that arena_alloc's common case saves no registers. */
__attribute__((noinline)) static void *take_block(cv_arena_t *self, size_t rounded)
{
    bool own = rounded > self->block_size;
    block_t *block = NULL;
    if (!own && self->spare) { /* one a reset kept */
        block = self->spare;
        self->spare = block->next;
    } else if ((block = block_new(own ? rounded : self->block_size)) != NULL) {
        self->mallocs++;
    } else {
        return NULL;
    }
    block_t **list = own ? &self->large : &self->blocks;
    block->next = *list;
    *list = block;
    if (!own) {
        self->next = block->data + rounded;
        self->room = self->block_size - rounded;
    }
    return block->data;
}

/*  protobuf-c calls this for every string, array and message: the common
 *  case is kept to a compare and two adds. */
static void *arena_alloc(void *data, size_t size)
{
    cv_arena_t *self = data;
    if (size > SIZE_MAX / 2)
        return NULL;
    size_t rounded = ((size ? size : 1) + REDZONE + ALIGN - 1) & ~(ALIGN - 1);
    void *p;
    if (rounded <= self->room) {
        p = self->next;
        self->next += rounded;
        self->room -= rounded;
    } else {
        p = take_block(self, rounded);
    }
    if (p)
        UNPOISON(p, size);
    return p;
}

/*  Memory comes back all at once, at reset. */
static void arena_free(void *data, void *pointer)
{
    (void)data;
    (void)pointer;
}

cv_arena_t *cv_arena_new(size_t block_size)
{
    size_t size = block_size ? block_size : CV_ARENA_DEFAULT_BLOCK;
    cv_arena_t *self = size <= SIZE_MAX / 2 ? calloc(1, sizeof *self) : NULL;
    if (!self)
        return NULL;
    self->block_size = (size + ALIGN - 1) & ~(ALIGN - 1);
    self->keep = 1;
    self->allocator = (ProtobufCAllocator){arena_alloc, arena_free, self};
    return self;
}

void cv_arena_destroy(cv_arena_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_arena_t *self = *self_p;
    blocks_free(self->blocks);
    blocks_free(self->large);
    blocks_free(self->spare);
    free(self);
    *self_p = NULL;
}

ProtobufCAllocator *cv_arena_allocator(cv_arena_t *self)
{
    return &self->allocator;
}

size_t cv_arena_mallocs(const cv_arena_t *self)
{
    return self->mallocs;
}

void cv_arena_keep(cv_arena_t *self, size_t bytes)
{
    size_t blocks = bytes / self->block_size;
    self->keep = blocks ? blocks : 1;
}

void cv_arena_reset(cv_arena_t *self)
{
    blocks_free(self->large);
    self->large = NULL;
    /* the blocks in use join the spares, up to keep of them: malloc would
     * give the same memory back at a cost (a freed run of blocks at the top
     * of the heap goes back to the system, and comes back page by page) */
    size_t kept = 0;
    for (block_t *b = self->spare; b; b = b->next)
        kept++;
    while (self->blocks) {
        block_t *block = self->blocks;
        self->blocks = block->next;
        if (kept < self->keep) {
            POISON(block->data, self->block_size);
            block->next = self->spare;
            self->spare = block;
            kept++;
        } else {
            block->next = NULL;
            blocks_free(block);
        }
    }
    self->next = NULL;
    self->room = 0;
}
