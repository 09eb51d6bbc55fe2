/*  caveatd's log (broker/cv_log.h), read back from the stderr it writes:
 *  a text line is escaped as a whole, so that no value in it (a report id,
 *  a feed name, a peer's text) starts a line of its own, forges one, or
 *  reaches an operator's terminal as an escape sequence; lines an agency's
 *  traffic causes are rate-limited per agency.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cv_log.h"

/*  stderr sent to a file for the test's lines, and back. */
typedef struct {
    FILE *file;
    int saved;
} capture_t;

static capture_t capture_begin(void)
{
    capture_t c = {tmpfile(), dup(STDERR_FILENO)};
    assert_non_null(c.file);
    assert_true(c.saved >= 0);
    fflush(stderr);
    assert_true(dup2(fileno(c.file), STDERR_FILENO) >= 0);
    return c;
}

/*  What was written meanwhile (malloc'd). */
static char *capture_end(capture_t *c)
{
    fflush(stderr);
    assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
    close(c->saved);
    long size = ftell(c->file);
    assert_true(size >= 0);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    rewind(c->file);
    assert_int_equal(fread(text, 1, (size_t)size, c->file), (size_t)size);
    fclose(c->file);
    return text;
}

/*  The message of a text line: what follows "caveatd: ". */
static const char *message_of(const char *line)
{
    const char *at = strstr(line, " caveatd: ");
    assert_non_null(at);
    return at + strlen(" caveatd: ");
}

/*  A line feed, ESC, BEL, DEL, the C1 control U+009B in UTF-8 and as the
 *  byte alone, bytes that are not UTF-8 and a backslash: each as \xNN a
 *  byte; UTF-8 text as it is. One line, whatever the value. */
static void test_a_text_line_escapes_what_a_terminal_acts_on(void **state)
{
    (void)state;
    cv_log_t *log = cv_log_new(CV_LOG_TEXT, false, false);
    assert_non_null(log);
    capture_t c = capture_begin();
    cv_log_info(log, "id %s",
                "a\nb\x1b[2J\x07\x7f\xc2\x9b"
                "c\x9b"
                "d\xff\\é");
    char *text = capture_end(&c);
    cv_log_destroy(&log);
    assert_non_null(strchr(text, '\n'));
    assert_int_equal(strchr(text, '\n') - text + 1, (long)strlen(text)); /* one line */
    assert_string_equal(message_of(text),
                        "id a\\x0ab\\x1b[2J\\x07\\x7f\\xc2\\x9bc\\x9bd\\xff\\x5c\xc3\xa9\n");
    free(text);
}

/*  A line longer than the log keeps is cut, and still one escaped line:
 *  a cut through a UTF-8 character leaves bytes that are escaped. */
static void test_a_long_line_is_cut_and_escaped(void **state)
{
    (void)state;
    cv_log_t *log = cv_log_new(CV_LOG_TEXT, false, false);
    char value[3000];
    for (size_t i = 0; i + 2 < sizeof value; i += 2)
        memcpy(value + i, "\xc2\x9b", 2); /* U+009B, 2 bytes, escaped to 8 */
    value[sizeof value - 2] = '\0';
    capture_t c = capture_begin();
    cv_log_warning(log, "%s", value);
    char *text = capture_end(&c);
    cv_log_destroy(&log);
    assert_int_equal(strchr(text, '\n') - text + 1, (long)strlen(text)); /* one line */
    const char *message = message_of(text);
    assert_true(strlen(message) > 4000); /* all of what was kept, escaped */
    assert_null(strstr(message, "\xc2"));
    free(text);
}

/*  One agency's lines past CV_LOG_AGENCY_LINES in a second are not
 *  written: counted, and said in one line when it next logs. */
static void test_an_agency_is_limited_to_its_lines(void **state)
{
    (void)state;
    cv_log_t *log = cv_log_new(CV_LOG_TEXT, false, false);
    capture_t c = capture_begin();
    for (int i = 0; i < 10 * CV_LOG_AGENCY_LINES; i++)
        cv_log_agency(log, "hull-college", false, "line %d", i);
    cv_log_agency(log, "hull-cc", false, "another agency's line");
    char *text = capture_end(&c);
    int college = 0; /* "line N": the college's; the council's ends "line" */
    for (const char *p = text; (p = strstr(p, "line ")); p += 5)
        college++;
    assert_true(college >= CV_LOG_AGENCY_LINES);
    assert_true(college <= 2 * CV_LOG_AGENCY_LINES); /* the loop may cross a second */
    assert_non_null(strstr(text, "another agency's line"));
    assert_int_equal(cv_log_suppressed(log), 10 * CV_LOG_AGENCY_LINES - college);
    cv_log_destroy(&log);
    free(text);
}

/*  A debug line from outside any agency (a message from a revoked key,
 *  whose open connection may send without end) is rate-limited too, and
 *  written only with --verbose. */
static void test_debug_lines_from_unknown_keys_are_limited(void **state)
{
    (void)state;
    cv_log_t *log = cv_log_new(CV_LOG_TEXT, true, false);
    capture_t c = capture_begin();
    for (int i = 0; i < 10 * CV_LOG_AGENCY_LINES; i++)
        cv_log_debug_limited(log, "unknown keys", "drop %d", i);
    char *text = capture_end(&c);
    int written = 0;
    for (const char *p = text; (p = strstr(p, "drop ")); p += 5)
        written++;
    assert_true(written >= 1);
    assert_true(written <= 2 * CV_LOG_AGENCY_LINES); /* the loop may cross a second */
    assert_int_equal(cv_log_suppressed(log), 10 * CV_LOG_AGENCY_LINES - written);
    cv_log_destroy(&log);
    free(text);

    log = cv_log_new(CV_LOG_TEXT, false, false); /* without --verbose: nothing */
    c = capture_begin();
    cv_log_debug_limited(log, "unknown keys", "drop");
    text = capture_end(&c);
    assert_null(strstr(text, "drop"));
    cv_log_destroy(&log);
    free(text);
}

/*  Lines held for a turn's commit are written when it commits, in the
 *  order held and escaped as any; dropped when it rolls back; a debug one
 *  only with --verbose. */
static void test_lines_held_for_a_commit_are_written_only_after_it(void **state)
{
    (void)state;
    cv_log_t *log = cv_log_new(CV_LOG_TEXT, false, false);
    capture_t c = capture_begin();
    cv_log_agency_on_commit(log, "hull-cc", false, "feedback %s", "rolled\nback");
    cv_log_settle(log, false);
    cv_log_agency_on_commit(log, "hull-cc", false, "feedback %d", 1);
    cv_log_agency_on_commit(log, "hull-cc", true, "debug, not verbose");
    cv_log_agency(log, "hull-cc", false, "refused");
    cv_log_agency_on_commit(log, "hull-nhs", false, "feedback %d", 2);
    cv_log_settle(log, true);
    cv_log_settle(log, true); /* nothing twice */
    cv_log_agency_on_commit(log, "hull-cc", false, "never settled: dropped with the log");
    cv_log_destroy(&log);
    char *text = capture_end(&c);
    assert_null(strstr(text, "rolled"));
    assert_null(strstr(text, "debug"));
    assert_null(strstr(text, "never"));
    const char *refused = strstr(text, "refused\n"), *one = strstr(text, "feedback 1\n"),
               *two = strstr(text, "feedback 2\n");
    assert_true(refused && one && two && refused < one && one < two);
    assert_null(strstr(two + 1, "feedback"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_text_line_escapes_what_a_terminal_acts_on),
        cmocka_unit_test(test_a_long_line_is_cut_and_escaped),
        cmocka_unit_test(test_an_agency_is_limited_to_its_lines),
        cmocka_unit_test(test_debug_lines_from_unknown_keys_are_limited),
        cmocka_unit_test(test_lines_held_for_a_commit_are_written_only_after_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
