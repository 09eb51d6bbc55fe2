/*  test_keep_freed.c: cv_keep_freed_memory (proto/cv_alloc.h). A frame's
 *  buffer of up to 1 MB comes from the heap, not from its own mapping, and
 *  freeing a window of them leaves their pages with the process, so the
 *  next frames do not fault them in again (docs/architecture.md,
 *  "Memory"). glibc's own counts say so (mallinfo2); under a sanitizer,
 *  whose allocator is not glibc's, there is nothing to check.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cv_alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

#define FRAME  (1024 * 1024) /* caveatd's largest frame by default */
#define WINDOW 8             /* frames in flight at once */

static void test_frames_come_from_the_heap_and_stay(void **state)
{
    (void)state;
#ifdef UNDER_SANITIZER
    skip();
#else
    cv_keep_freed_memory();
    uint8_t *frames[WINDOW];
    for (int i = 0; i < WINDOW; i++) {
        frames[i] = malloc(FRAME);
        assert_non_null(frames[i]);
        memset(frames[i], i, FRAME); /* its pages are in use */
    }
    struct mallinfo2 held = mallinfo2();
    assert_int_equal(held.hblks, 0); /* no frame mapped apart */
    assert_true(held.arena >= (size_t)WINDOW * FRAME);
    for (int i = 0; i < WINDOW; i++)
        free(frames[i]);
    struct mallinfo2 freed = mallinfo2();
    /* the window's pages stay with the heap, for the next frames */
    assert_int_equal(freed.arena, held.arena);
    assert_true(freed.fordblks >= (size_t)WINDOW * FRAME);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_come_from_the_heap_and_stay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
