/*  cv_alloc.h: allocation for caveatd, which aborts when memory runs out
 *  (docs/architecture.md, "Memory"), as czmq does underneath it. A broker
 *  that stops loses nothing it acknowledged; one that runs on after a
 *  failed allocation would have to prove every recovery path. The
 *  libraries an agency links (libcaveat, the policy engine) report "out of
 *  memory" to their caller instead.
 */
#ifndef CV_ALLOC_H
#define CV_ALLOC_H

#include <stdlib.h>
#include <string.h>

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
