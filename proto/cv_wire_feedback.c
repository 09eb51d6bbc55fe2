/*  cv_wire_feedback.c: what a Feedback's value and text may be, one
 *  definition for the broker that refuses and the client that checks
 *  before sending (docs/protocol.md, "Feedback"). */
#include <string.h>

#include "cv_proto.h"

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
    if (text && !cv_text_readable(text, len, "\n\t"))
        return "feedback text must be UTF-8 without control characters (line feeds and tabs may "
               "stay)";
    return NULL;
}
