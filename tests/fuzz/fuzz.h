/*  fuzz.h: what the fuzz targets share. Each target is one
 *  LLVMFuzzerTestOneInput, built twice: with libFuzzer (CAVEAT_FUZZ, clang)
 *  and with replay.c, which feeds it the kept inputs as an ordinary test.
 *  A target calls abort() when an invariant fails, so both report it. */
#ifndef CV_FUZZ_H
#define CV_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*  Prints what is wrong on stderr and aborts: the input is a crash. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*  A file of the repository (e.g. "examples/policy.yaml"), read whole and
 *  NUL-terminated; aborts when it cannot be read, a broken set-up. */
char *fuzz_source_file(const char *relative, size_t *len);

#endif
