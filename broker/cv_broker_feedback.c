/*  cv_broker_feedback.c: a recipient's feedback on a report it received,
 *  stored and queued for the report's originator alone. See
 *  cv_broker_int.h.
 */
#include "cv_broker_int.h"

/* ------------------------------------------------------------------------ */
/*  Feedback: a recipient's word on a report, for its originator alone.     */

/*  What a Feedback may say, whoever sends it: why not, or NULL. */
static const char *feedback_form_refusal(const Caveat__Wire__Feedback *feedback)
{
    cv_error_t err = {0};
    const char *why = cv_feedback_form_refusal(feedback->value, feedback->text);
    if (why)
        return why;
    if (!cv_policy_report_id_ok(feedback->report_id, &err))
        return "feedback needs the id of a report";
    if (feedback->originator && !cv_policy_report_id_ok(feedback->originator, &err))
        return "feedback names no agency as the originator";
    return NULL;
}

/*  The report a Feedback names, among those delivered to the sender. */
typedef struct {
    cv_broker_t *broker;
    const char *agency; /* the sender's */
    int64_t report;     /* the first found, 0: none */
    char *originator;   /* its originator */
    int reports;        /* how many different reports: 0, 1, or 2 for more */
} delivered_t;

/*  A route of the report to one of the sender's queues: it was delivered
 *  there when that queue has given it a seq (it no longer waits), unless
 *  the queue still holds that seq as never sent (a reload withdrew it
 *  while it waited for its sync, or the recipient's connection was full):
 *  feedback accepted on it would tell the sender that a report it never
 *  received exists, and tell the originator the sender had it. A report
 *  may come more than once: delivered on two queues (direct and a feed),
 *  or released by its originator's approval (under the release's rowid). */
static void on_routed_to(void *arg, int64_t report, int64_t routed, const char *originator,
                         int priority, const char *feed)
{
    delivered_t *d = arg;
    cv_queue_t *q = cv_router_find(d->broker->queues, d->agency, feed);
    cv_routed_t item = {routed, priority};
    if (!q || cv_queue_waits(q, item) || cv_queue_holds_unsent(q, item))
        return;
    if (d->reports == 0) {
        d->reports = 1;
        d->report = report;
        d->originator = cv_xstrdup(originator);
    } else if (report != d->report) {
        d->reports = 2;
    }
}

/*  A FeedbackAck to routing: stored, or not (why). */
zmsg_t *broker_feedback_ack(const zframe_t *routing, const char *report_id, const char *not_stored)
{
    Caveat__Wire__FeedbackAck ack = CAVEAT__WIRE__FEEDBACK_ACK__INIT;
    ack.report_id = (char *)report_id;
    ack.has_status = true;
    ack.status = not_stored ? CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE : CAVEAT__WIRE__STATUS__OK;
    ack.reason = (char *)not_stored;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK;
    frame.feedback_ack = &ack;
    return broker_frame_message(routing, &frame);
}

/*  Nothing is stored, through no fault of the sender's: it may send again. */
static void feedback_unavailable(cv_broker_t *self, const session_t *s, const char *report_id,
                                 const char *why)
{
    zmsg_t *msg = broker_feedback_ack(s->routing, report_id, why);
    broker_send_now(self, &msg);
}

/*  Stores the feedback, queues it for the originator's direct queue and
 *  records it, all in the turn's transaction; its FeedbackAck and its log
 *  line wait for the commit. */
static void store_feedback(cv_broker_t *self, const session_t *s, const char *sender,
                           const Caveat__Wire__Feedback *feedback, const delivered_t *d)
{
    cv_error_t err = {0};
    cv_feedback_row_t row = {.report = d->report,
                             .from = sender,
                             .value = feedback->value,
                             .text = feedback->text,
                             .time = (int64_t)zclock_time()};
    int64_t rowid = cv_feedback_put(self->feedback, &row, &err);
    cv_queue_t *q = rowid ? cv_router_queue(self->queues, d->originator, "", &err) : NULL;
    if (!q || !cv_router_route(self->queues, rowid, 0, &q, 1, &err) ||
        !cv_record_feedback(self->record, feedback->report_id, d->originator, sender,
                            feedback->value, &err))
        broker_fail_turn(self, err.msg);
    broker_mark_dirty(self, d->originator, "");
    pending_feedback_t *p = cv_xcalloc(1, sizeof *p);
    *p = (pending_feedback_t){s->serial, zframe_dup(s->routing), cv_xstrdup(feedback->report_id),
                              false};
    zlistx_add_end(self->pending_feedback, p);
    cv_log_agency_on_commit(self->log, sender, false, "feedback from %s on %s of %s: %s", sender,
                            feedback->report_id, d->originator, feedback->value);
}

/*  A Feedback refused (broker_refuse): never the text the agency sent. */
static void refuse(cv_broker_t *self, const session_t *s, const char *sender, uint32_t code,
                   const char *why)
{
    broker_refuse(self, s->routing, sender, "feedback", code, why);
}

/*  A Feedback from the agency of session s. Refused, with nothing stored:
 *  over the agency's rate (LIMIT), a bad form (BAD_REQUEST), a report not
 *  delivered to the agency, whether or not one of that id exists
 *  (FORBIDDEN, in the same words), too much feedback on one report
 *  (LIMIT). */
void broker_on_feedback(cv_broker_t *self, const session_t *s, int agency, const char *sender,
                        const Caveat__Wire__Feedback *feedback)
{
    if (broker_over_rate(self, s->routing, agency, &broker_use_of(self, agency)->feedback,
                         FEEDBACK_PER_SECOND,
                         "more feedback a second than the broker takes from one agency"))
        return;
    const char *why = feedback_form_refusal(feedback);
    if (why) {
        refuse(self, s, sender, E_BAD_REQUEST, why);
        return;
    }
    if (cv_space_short(self->space)) { /* as a publish is: deliveries go first */
        feedback_unavailable(self, s, feedback->report_id,
                             "the broker's disk is full; retry later");
        return;
    }
    cv_error_t err = {0};
    delivered_t d = {self, sender, 0, NULL, 0};
    int routes = cv_store_routed_to(self->store, feedback->report_id, feedback->originator, sender,
                                    on_routed_to, &d, &err);
    int given = d.reports == 1 ? cv_feedback_count(self->feedback, d.report, sender, &err) : 0;
    if (routes < 0 || given < 0) {
        cv_log_error(self->log, "feedback from %s: %s", sender, err.msg);
        feedback_unavailable(self, s, feedback->report_id, "the store could not be read; retry");
    } else if (d.reports == 0) {
        refuse(self, s, sender, E_FORBIDDEN, "no report of that id was delivered to you");
    } else if (d.reports > 1) {
        refuse(self, s, sender, E_BAD_REQUEST,
               "reports of different originators have that id: name the originator");
    } else if (given >= FEEDBACK_PER_REPORT) {
        refuse(self, s, sender, E_LIMIT, "no more feedback on this report is taken from you");
    } else {
        store_feedback(self, s, sender, feedback, &d);
    }
    free(d.originator);
}
