/*  cv_wire_feedback.c: what a Feedback's value and text may be, one
 *  definition for the broker that refuses and the client that checks
 *  before sending (docs/protocol.md, "Feedback"). */
#include <string.h>

#include "cv_proto.h"

/*  Whether text is lines a person may read anywhere: UTF-8 without NUL
 *  (cv_text_check), and no control character but line feed and tab: no
 *  C0 or C1 control, no DEL, nothing a terminal would take as a command. */
static bool readable_text(const char *text, size_t len)
{
    int line, col;
    if (cv_text_check(text, len, &line, &col))
        return false;
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < len; i++) {
        bool c0 = p[i] < 0x20 && p[i] != '\n' && p[i] != '\t';
        bool c1 = p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f;
        if (c0 || c1 || p[i] == 0x7f)
            return false;
    }
    return true;
}

const char *cv_feedback_form_refusal(const char *value, const char *text)
{
    static const char *const values[] = {"useful", "not_useful", "action_taken", "seen"};
    bool known = false;
    for (size_t i = 0; value && i < sizeof values / sizeof *values; i++)
        known = known || strcmp(value, values[i]) == 0;
    if (!known)
        return "feedback value must be useful, not_useful, action_taken or seen";
    size_t len = text ? strnlen(text, CV_FEEDBACK_TEXT_MAX + 1) : 0;
    if (len > CV_FEEDBACK_TEXT_MAX)
        return "feedback text is longer than 1000 bytes";
    if (text && !readable_text(text, len))
        return "feedback text must be UTF-8 without control characters (line feeds and tabs may "
               "stay)";
    return NULL;
}
