/*  cv_alloc.h: allocation for caveatd, which aborts when memory runs out
 *  (docs/architecture.md, "Memory"), as czmq does underneath it. A broker
 *  that stops loses nothing it acknowledged; one that runs on after a
 *  failed allocation would have to prove every recovery path. The
 *  libraries an agency links (libcaveat, the policy engine) report "out of
 *  memory" to their caller instead.
 */
#ifndef CV_ALLOC_H
#define CV_ALLOC_H

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/*  Frames of up to 1 MB (caveatd --max-frame) pass between threads: libzmq's
 *  I/O thread receives each into a buffer of its own that the loop frees,
 *  and the other way for sends. With glibc's defaults a free of more than
 *  128 KB or so gives the pages back to the system (munmap, or a trim of
 *  the thread's heap with madvise), and the next frame faults them in
 *  again, a page at a time: a fifth of a subscriber's CPU went there.
 *  Called first thing by caveatd, caveat and broker_bench, so that
 *  buffers up to CV_KEEP_BUFFER_MAX come from the heap and up to
 *  CV_KEEP_FREE_MAX of free memory stays with it (docs/architecture.md,
 *  "Memory"). A library does not change its process's allocator:
 *  libcaveat leaves it to the application (caveat.h). */
#define CV_KEEP_BUFFER_MAX (4 * 1024 * 1024)
#define CV_KEEP_FREE_MAX   (32 * 1024 * 1024)

static inline void cv_keep_freed_memory(void)
{
#if defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
    mallopt(M_MMAP_THRESHOLD, CV_KEEP_BUFFER_MAX);
    mallopt(M_TRIM_THRESHOLD, CV_KEEP_FREE_MAX);
#endif
}

static inline void *cv_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        abort();
    return p;
}

static inline void *cv_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

static inline void *cv_xrealloc(void *old, size_t size)
{
    void *p = realloc(old, size ? size : 1);
    if (!p)
        abort();
    return p;
}

static inline char *cv_xstrdup(const char *text)
{
    char *p = strdup(text);
    if (!p)
        abort();
    return p;
}

#endif
