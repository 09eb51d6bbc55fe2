/*  policy_cases.h: a protocol's test cases (`caveat policy test`), read
 *  and run with the real engine. examples/CASES.yaml documents the format.
 *  Apart from the command so that the fuzz tests run the same reader.   */
#ifndef CV_POLICY_CASES_H
#define CV_POLICY_CASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cv_policy.h"

/*  What cv_cases_run returns; the command's exit status too. */
enum { CV_CASES_PASSED = 0, CV_CASES_FAILED = 1, CV_CASES_BAD_INPUT = 2 };

/*  How the results are written on out. */
typedef enum {
    CV_CASES_TEXT,  /* FAIL lines as cases fail, then "N passed, M failed" */
    CV_CASES_JSON,  /* one JSON object, for scripts */
    CV_CASES_JUNIT, /* JUnit XML, for CI: a testcase per case */
} cv_cases_format_t;

typedef struct {
    FILE *out;    /* the results, in format */
    FILE *err;    /* bad input: "FILE:LINE:COL: error: what" */
    bool verbose; /* text: a PASS line for each passing case */
    cv_cases_format_t format;
    bool coverage; /* also the policy's entries that no case exercises */
    /*  Reads a report file a case names (as cv_read_file, which NULL
     *  stands for): the fuzz tests keep fuzzed names off the disk. */
    char *(*read_file)(const char *path, size_t *len);
} cv_cases_options_t;

/*  Reads the cases in text (len bytes, the cases file's content; file names
 *  it in messages, and report paths are relative to it) and runs them all
 *  against policy, unless any case is malformed. Returns CV_CASES_*.     */
int cv_cases_run(const cv_policy_t *policy, const char *text, size_t len, const char *file,
                 const cv_cases_options_t *options);

#endif
