/*  cv_broker_approval.c: an originator's approval of its handling-code-5
 *  report for a named agency or type; only then is it routed there,
 *  still under the policy's field rules. See cv_broker_int.h.
 */
#include "cv_broker_int.h"

/* ------------------------------------------------------------------------ */
/*  Approvals: an originator releases its handling-code-5 report.           */

void broker_approval_answer_free(approval_answer_t *a)
{
    zframe_destroy(&a->routing);
    free(a->report_id);
    free(a->to);
    for (size_t i = 0; i < a->n_recipients; i++)
        free(a->recipients[i]);
    free(a->recipients);
    free(a);
}

/*  Drops the ApprovalAcks waiting for the session with serial (0: every
 *  one). */
void broker_forget_approval_answers_of(cv_broker_t *self, uint64_t serial)
{
    zlistx_t *list = self->approval_answers;
    for (approval_answer_t *a = list ? zlistx_first(list) : NULL; a; a = zlistx_next(list))
        if (!serial || a->session == serial) {
            zlistx_detach_cur(list); /* the cursor stays valid for next */
            broker_approval_answer_free(a);
        }
}

/*  The turn rolled back: nothing its approvals did was stored. */
void broker_approvals_unavailable(cv_broker_t *self)
{
    for (approval_answer_t *a = zlistx_first(self->approval_answers); a;
         a = zlistx_next(self->approval_answers)) {
        a->unavailable = true;
        for (size_t i = 0; i < a->n_recipients; i++)
            free(a->recipients[i]);
        a->n_recipients = 0;
    }
}

static approval_answer_t *approval_answer_new(cv_broker_t *self, const session_t *s,
                                              const char *report_id, const char *to)
{
    approval_answer_t *a = cv_xcalloc(1, sizeof *a);
    a->session = s->serial;
    a->routing = zframe_dup(s->routing);
    a->report_id = cv_xstrdup(report_id);
    a->to = cv_xstrdup(to);
    zlistx_add_end(self->approval_answers, a);
    return a;
}

static void approval_released_to(approval_answer_t *a, const char *agency)
{
    a->recipients = cv_xrealloc(a->recipients, (a->n_recipients + 1) * sizeof *a->recipients);
    a->recipients[a->n_recipients++] = cv_xstrdup(agency);
}

/*  Whether agency already has the report (rowid) or is to: routed to it
 *  when it was accepted, or released to it by an earlier approval. -1 on
 *  a store error. Nothing goes twice to one agency's queues. */
static int already_released(cv_broker_t *self, int64_t rowid, const Caveat__Report *report,
                            const char *agency, cv_error_t *err)
{
    int released =
        cv_approval_store_released(self->approvals, report->originator, report->id, agency, err);
    return released ? released : cv_approval_store_routed(self->approvals, rowid, agency, err);
}

/*  Decides the report again, with its approvals, for every candidate it
 *  has not gone to, and routes it to those now released, under one new
 *  rowid (cv_approval_store.h). The answer lists them, and so does the
 *  approval leaf begun, each with the decision that released it. */
static bool release_approved(cv_broker_t *self, int64_t rowid, const Caveat__Report *report,
                             approval_answer_t *answer, cv_error_t *err)
{
    cv_approvals_t approvals;
    if (cv_approval_store_list(self->approvals, report->originator, report->id, &approvals, err) <
        0)
        return false;
    const int *candidates;
    int agencies = cv_policy_candidates(self->policy, report, self->candidates, &candidates);
    reserve((void **)&self->route_to, &self->route_to_cap, (size_t)agencies * sizeof(cv_queue_t *));
    size_t n = 0;
    for (int i = 0; i < agencies; i++) {
        /* decided first, in memory: only an agency the approvals release
         * is looked up in the store, so an approval costs reads for the
         * agencies it names, not for every agency the report could reach
         * (an originator may send ten a second, each changing nothing) */
        if (!cv_policy_decide(self->policy, report, candidates[i], &approvals, self->decision))
            continue;
        const char *agency = cv_policy_agency(self->policy, candidates[i])->id;
        int released = already_released(self, rowid, report, agency, err);
        if (released < 0)
            return false;
        if (released)
            continue;
        const char *feed = cv_decision_feed(self->decision);
        cv_queue_t *q = cv_router_queue(self->queues, agency, feed ? feed : "", err);
        if (!q || !cv_approval_store_release(self->approvals, report->originator, report->id,
                                             agency, err))
            return false;
        self->route_to[n++] = q;
        approval_released_to(answer, agency);
        cv_record_recipient(self->record, candidates[i], self->decision);
        broker_mark_dirty(self, agency, feed ? feed : "");
    }
    if (n == 0)
        return true;
    int64_t release = cv_approval_store_alias(self->approvals, rowid, err);
    int priority = report->has_priority ? (int)report->priority : 0;
    return release > 0 && cv_router_route(self->queues, release, priority, self->route_to, n, err);
}

/*  Why an approval is refused (its Error code and reason), or 0 with the
 *  report found. An id that names none of the sender's reports is answered
 *  the same whether or not another agency has a report of that id: ids are
 *  the originator's own, and the answer must not tell who has which. */
static uint32_t approval_refusal(cv_broker_t *self, const char *sender,
                                 const Caveat__Wire__Approval *approval, int64_t *rowid,
                                 const Caveat__Report **report, const char **reason)
{
    cv_error_t err = {0};
    /* first, whatever the turn: an answer names the id, which must be one */
    if (!cv_policy_report_id_ok(approval->report_id, &err)) {
        *reason = "no such report of this agency"; /* as for an id nobody has */
        return E_BAD_REQUEST;
    }
    int found = cv_approval_store_report(self->approvals, sender, approval->report_id, rowid, &err);
    if (found < 0)
        broker_fail_turn(self, err.msg); /* answered REFUSED_UNAVAILABLE with the turn */
    *report = found > 0 ? broker_report_at(self, *rowid) : NULL;
    if (found >= 0 && !*report && !broker_turn_failing(self)) {
        *reason = "no such report of this agency";
        return E_BAD_REQUEST;
    }
    if (!cv_policy_names_recipient(self->policy, approval->to)) {
        *reason = "'to' names no agency and no agency type of the policy";
        return E_BAD_REQUEST;
    }
    if (*report && !cv_policy_needs_approval(self->policy, *report)) {
        *reason = "this report's handling code needs no approval";
        return E_BAD_REQUEST;
    }
    return 0;
}

/*  Records the approval, unless the report has APPROVALS_PER_REPORT
 *  already: 1, 2 when it was recorded before, 0 over the limit, -1 on a
 *  store error. */
static int add_approval(cv_broker_t *self, const Caveat__Report *report, const char *to,
                        cv_error_t *err)
{
    cv_approvals_t approvals;
    int count =
        cv_approval_store_list(self->approvals, report->originator, report->id, &approvals, err);
    bool known = false;
    for (int i = 0; i < count; i++)
        known = known || strcmp(approvals.to[i], to) == 0;
    if (count < 0)
        return -1;
    if (!known && count >= APPROVALS_PER_REPORT)
        return 0;
    if (cv_approval_store_add(self->approvals, report->originator, report->id, to, err) < 0)
        return -1;
    return known ? 2 : 1;
}

/*  An ApprovalAck to routing: the agencies the approval released the
 *  report to, or not stored (why, and nobody released). */
zmsg_t *broker_approval_ack(const zframe_t *routing, const char *report_id, const char *to,
                            const char *not_stored, char **recipients, size_t n_recipients)
{
    Caveat__Wire__ApprovalAck ack = CAVEAT__WIRE__APPROVAL_ACK__INIT;
    ack.report_id = (char *)report_id;
    ack.to = (char *)to;
    ack.has_status = ack.has_released = true;
    ack.status = not_stored ? CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE : CAVEAT__WIRE__STATUS__OK;
    ack.reason = (char *)not_stored;
    ack.released = (uint32_t)n_recipients;
    ack.n_recipients = n_recipients;
    ack.recipients = recipients;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_APPROVAL_ACK;
    frame.approval_ack = &ack;
    return broker_frame_message(routing, &frame);
}

/*  A literal: formatted in the handler, it was made for every approval. */
static const char over_rate[] =
    "at most " TEXT_OF(APPROVALS_PER_SECOND) " approvals a second; wait a second";

/*  An originator's approval: stored, the report routed to the agencies it
 *  releases, and the audit leaf, all in the turn's transaction; logged
 *  once that commits, answered once it is on disk. Answered with an
 *  Error, and nothing changed, when refused. An approval already given is
 *  decided again: a reload may have added agencies of its type. */
void broker_on_approval(cv_broker_t *self, session_t *s, int agency, const char *sender,
                        const Caveat__Wire__Approval *approval)
{
    if (broker_over_rate(self, s->routing, agency, &broker_use_of(self, agency)->approvals,
                         APPROVALS_PER_SECOND, over_rate))
        return;
    const Caveat__Report *report = NULL;
    const char *why = NULL;
    int64_t rowid = 0;
    uint32_t refused = approval_refusal(self, sender, approval, &rowid, &report, &why);
    if (refused) {
        broker_refuse(self, s->routing, sender, "approval", refused, why);
        return;
    }
    if (cv_space_short(self->space)) { /* as a publish is: deliveries go first */
        /* answered now: nothing of it waits for the turn's commit */
        zmsg_t *msg = broker_approval_ack(s->routing, approval->report_id, approval->to,
                                          "the broker's disk is full; retry later", NULL, 0);
        broker_send_now(self, &msg);
        return;
    }
    cv_error_t err = {0};
    int added = broker_turn_failing(self) ? -1 : add_approval(self, report, approval->to, &err);
    if (added == 0) { /* a refusal, logged as every other is */
        char reason[96];
        snprintf(reason, sizeof reason, "a report may be approved to at most %d agencies or types",
                 APPROVALS_PER_REPORT);
        broker_refuse(self, s->routing, sender, "approval", E_LIMIT, reason);
        return;
    }
    /* from here it is answered: ApprovalAck, or REFUSED_UNAVAILABLE if the
     * turn rolls back */
    approval_answer_t *answer = approval_answer_new(self, s, approval->report_id, approval->to);
    if (broker_turn_failing(self))
        return;
    if (added < 0) {
        broker_fail_turn(self, err.msg);
        return;
    }
    cv_record_approval_begin(self->record, report, approval->to, self->policy);
    if (!release_approved(self, rowid, report, answer, &err)) {
        cv_record_approval_drop(self->record);
        broker_fail_turn(self, err.msg);
        return;
    }
    /* one given before that releases no one new changes nothing: no leaf,
     * or an originator could grow the log at the approvals' rate forever */
    bool changed = added == 1 || answer->n_recipients > 0;
    if (!changed)
        cv_record_approval_drop(self->record);
    else if (!cv_record_approval_end(self->record, (const char *const *)answer->recipients,
                                     answer->n_recipients, &err)) {
        broker_fail_turn(self, err.msg);
        return;
    }
    cv_log_agency_on_commit(self->log, sender, false,
                            "approval from %s: %s released to %zu agencies", sender, report->id,
                            answer->n_recipients);
}
