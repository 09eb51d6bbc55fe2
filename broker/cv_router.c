/*  cv_router.c: the queues and their mirror in the store; see cv_router.h.
 *
 *  Queues are found by name (cv_queue_name); while loading, also by store
 *  id, which is how the store's rows name them.
 */
#include <assert.h>
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "cv_router.h"

struct cv_router_t {
    cv_store_t *store;
    zhashx_t *queues;            /* cv_queue_name() -> cv_queue_t (owns them) */
    int64_t max_report;          /* the highest report rowid routed */
    bool unsaved;                /* acknowledgements not yet saved */
    cv_router_saving_fn *saving; /* the audit leaves of what a save finishes */
    void *saving_arg;
    struct {
        bool open; /* between cv_router_batch_begin and _end */
        /* the reports' rows, their queues pointed into ids at the end
         * (ids may move until then): row i's are after those of rows < i */
        cv_route_row_t *rows;
        size_t n, cap;
        int64_t *ids; /* the routes' queue ids, one after another */
        size_t n_ids, ids_cap;
    } batch;
    struct {
        cv_queue_t **by_id; /* in ascending store id, as the store lists them */
        size_t n, cap;
        bool failed;  /* out of memory */
        bool damaged; /* a row caveat never writes: the id below */
        int64_t damaged_id;
    } load;
};

static void queue_free(void **item)
{
    cv_queue_destroy((cv_queue_t **)item);
}

cv_router_t *cv_router_new(cv_store_t *store)
{
    cv_router_t *self = calloc(1, sizeof *self);
    if (!self || !(self->queues = zhashx_new())) {
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->queues, queue_free);
    self->store = store;
    return self;
}

void cv_router_destroy(cv_router_t **self_p)
{
    cv_router_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->queues);
    free(self->load.by_id);
    free(self->batch.rows);
    free(self->batch.ids);
    free(self);
    *self_p = NULL;
}

static cv_queue_t *add_queue(cv_router_t *self, int64_t id, const char *agency, const char *feed)
{
    cv_queue_name_t name;
    const char *key = cv_queue_name(&name, agency, feed);
    cv_queue_t *q = key ? cv_queue_new(id, agency, feed) : NULL;
    if (q)
        zhashx_update(self->queues, key, q);
    cv_queue_name_free(&name);
    return q;
}

cv_queue_t *cv_router_find(cv_router_t *self, const char *agency, const char *feed)
{
    cv_queue_name_t name;
    const char *key = cv_queue_name(&name, agency, feed);
    cv_queue_t *q = key ? zhashx_lookup(self->queues, key) : NULL;
    cv_queue_name_free(&name);
    return q;
}

cv_queue_t *cv_router_queue(cv_router_t *self, const char *agency, const char *feed,
                            cv_error_t *err)
{
    cv_queue_t *q = cv_router_find(self, agency, feed);
    if (q)
        return q;
    /* nothing routed before it can be for it */
    int64_t id = cv_store_queue(self->store, agency, feed, self->max_report, err);
    if (id < 0)
        return NULL;
    q = add_queue(self, id, agency, feed);
    if (!q)
        cv_error_set(err, NULL, 0, 0, "out of memory making a queue");
    return q;
}

size_t cv_router_queued(const cv_router_t *self)
{
    size_t n = 0;
    for (cv_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues))
        n += cv_queue_size(q);
    return n;
}

int64_t cv_router_max_report(const cv_router_t *self)
{
    return self->max_report;
}

/* ------------------------------------------------------------------------ */
/*  Loading: the store's rows name queues by id.                            */

/*  Queues arrive in ascending id; they are kept in that order and found
 *  by binary search, so memory follows the number of queues, not their
 *  ids (a damaged store's id of 2^32 must not size an array). */
static bool index_queue(cv_router_t *self, cv_queue_t *q)
{
    if (self->load.n == self->load.cap) {
        size_t cap = self->load.cap * 2 + 16;
        cv_queue_t **grown = realloc(self->load.by_id, cap * sizeof *grown);
        if (!grown)
            return false;
        self->load.by_id = grown;
        self->load.cap = cap;
    }
    self->load.by_id[self->load.n++] = q;
    return true;
}

static cv_queue_t *loaded(cv_router_t *self, int64_t id)
{
    size_t lo = 0, hi = self->load.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t at = cv_queue_id(self->load.by_id[mid]);
        if (at == id)
            return self->load.by_id[mid];
        if (at < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/*  Notes the first id caveat never writes, and whether id is one: queue
 *  ids are positive, ascending, and fit the routes' 4-byte entries; report
 *  rowids are positive. A store holding others was damaged outside caveat
 *  and is refused rather than half-loaded. */
static bool damaged(cv_router_t *self, int64_t id, bool bad)
{
    if (bad && !self->load.damaged) {
        self->load.damaged = true;
        self->load.damaged_id = id;
    }
    return bad;
}

static void on_load_queue(void *arg, int64_t id, const char *agency, const char *feed,
                          const cv_queue_state_t *state)
{
    cv_router_t *self = arg;
    size_t n = self->load.n;
    if (damaged(self, id,
                id <= 0 || id > (int64_t)UINT32_MAX ||
                    (n && id <= cv_queue_id(self->load.by_id[n - 1]))))
        return;
    cv_queue_t *q = add_queue(self, id, agency, feed);
    if (q && index_queue(self, q))
        cv_queue_restore_state(q, state);
    else
        self->load.failed = true;
}

static void on_load_sent(void *arg, int64_t queue, uint64_t seq, cv_routed_t item)
{
    cv_router_t *self = arg;
    cv_queue_t *q = loaded(self, queue);
    if (q && !damaged(self, item.report, item.report <= 0) && !cv_queue_restore_sent(q, seq, item))
        self->load.failed = true;
}

static void on_load_route(void *arg, int64_t report, int priority, const int64_t *queues, size_t n)
{
    cv_router_t *self = arg;
    if (damaged(self, report, report <= 0))
        return;
    for (size_t i = 0; i < n; i++) {
        cv_queue_t *q = loaded(self, queues[i]);
        if (q && !cv_queue_restore_route(q, (cv_routed_t){report, priority}))
            self->load.failed = true;
    }
}

/*  What this process knows of its deliveries in flight and the store
 *  does not (which of them left, which were withdrawn unsent: cv_queue.h)
 *  passes from the queues before a reload to those read back. */
static void carry_marks(cv_router_t *self, zhashx_t *before)
{
    for (cv_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues)) {
        cv_queue_t *was = zhashx_lookup(before, zhashx_cursor(self->queues));
        if (was)
            cv_queue_carry_marks(q, was);
    }
}

bool cv_router_load(cv_router_t *self, cv_error_t *err)
{
    static const cv_store_loader_t loader = {on_load_queue, on_load_sent, on_load_route};
    zhashx_t *before = self->queues; /* empty when the process starts */
    self->queues = zhashx_new();
    if (!self->queues) {
        self->queues = before;
        zhashx_purge(self->queues);
        cv_error_set(err, NULL, 0, 0, "store: out of memory loading the queues");
        return false;
    }
    zhashx_set_destructor(self->queues, queue_free);
    self->load.failed = false;
    self->load.damaged = false;
    self->load.n = 0;
    self->unsaved = false;
    bool ok = cv_store_load(self->store, &loader, self, &self->max_report, err);
    for (cv_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues))
        cv_queue_restore_end(q);
    carry_marks(self, before);
    zhashx_destroy(&before);
    if (ok && self->load.damaged) {
        cv_error_set(err, NULL, 0, 0,
                     "store: damaged: a queue or report id of %lld, which caveat never writes",
                     (long long)self->load.damaged_id);
        ok = false;
    } else if (ok && self->load.failed) {
        cv_error_set(err, NULL, 0, 0, "store: out of memory loading the queues");
        ok = false;
    }
    free(self->load.by_id);
    self->load.by_id = NULL;
    self->load.n = self->load.cap = 0;
    if (!ok)
        zhashx_purge(self->queues);
    return ok;
}

/* ------------------------------------------------------------------------ */
/*  Routing, pumping, acknowledging.                                        */

/*  Room for a batch's next row and its n queue ids. */
static bool batch_reserve(cv_router_t *self, size_t n)
{
    if (self->batch.n == self->batch.cap) {
        size_t cap = self->batch.cap ? 2 * self->batch.cap : CV_PUT_BATCH;
        cv_route_row_t *rows = realloc(self->batch.rows, cap * sizeof *rows);
        if (!rows)
            return false;
        self->batch.rows = rows;
        self->batch.cap = cap;
    }
    if (self->batch.n_ids + n > self->batch.ids_cap) {
        size_t cap = 2 * (self->batch.n_ids + n);
        int64_t *ids = realloc(self->batch.ids, cap * sizeof *ids);
        if (!ids)
            return false;
        self->batch.ids = ids;
        self->batch.ids_cap = cap;
    }
    return true;
}

bool cv_router_route(cv_router_t *self, int64_t report, int priority, cv_queue_t *const *queues,
                     size_t n, cv_error_t *err)
{
    assert(report > 0);
    int64_t ids[64], *heap = NULL, *at = ids;
    bool ok = !self->batch.open || batch_reserve(self, n);
    if (ok && self->batch.open && n) /* none yet when nothing was routed */
        at = self->batch.ids + self->batch.n_ids;
    else if (ok && n > 64)
        ok = (at = heap = malloc(n * sizeof *heap)) != NULL;
    for (size_t i = 0; i < n && ok; i++) {
        at[i] = cv_queue_id(queues[i]);
        ok = cv_queue_push(queues[i], (cv_routed_t){report, priority});
    }
    if (!ok)
        cv_error_set(err, NULL, 0, 0, "out of memory routing a report");
    if (report > self->max_report)
        self->max_report = report;
    if (ok && n && self->batch.open) { /* its queues found at the end: ids may yet move */
        self->batch.rows[self->batch.n++] = (cv_route_row_t){report, priority, NULL, n};
        self->batch.n_ids += n;
    } else if (ok && n) {
        ok = cv_store_route(self->store, report, priority, at, n, err);
    }
    free(heap);
    return ok;
}

void cv_router_batch_begin(cv_router_t *self)
{
    assert(!self->batch.open);
    self->batch.open = true;
    self->batch.n = self->batch.n_ids = 0;
}

bool cv_router_batch_end(cv_router_t *self, cv_error_t *err)
{
    assert(self->batch.open);
    self->batch.open = false;
    for (size_t i = 0, first = 0; i < self->batch.n; first += self->batch.rows[i++].n)
        self->batch.rows[i].queues = self->batch.ids + first;
    return cv_store_route_many(self->store, self->batch.rows, self->batch.n, err);
}

void cv_router_pump_begin(cv_router_t *self, cv_pump_t *pump, cv_queue_t *queue)
{
    (void)self;
    assert(!self->batch.open);
    pump->queue = queue;
    pump->first_seq = cv_queue_last_seq(queue) + 1;
    pump->n = 0;
}

bool cv_router_pump_take(cv_router_t *self, cv_pump_t *pump, cv_routed_t *item)
{
    (void)self;
    return pump->n < CV_PUMP_MAX && cv_queue_take(pump->queue, item);
}

uint64_t cv_router_pump_give(cv_router_t *self, cv_pump_t *pump, cv_routed_t item)
{
    (void)self;
    assert(pump->n < CV_PUMP_MAX);
    uint64_t seq = cv_queue_give_seq(pump->queue, item);
    if (seq) {
        assert(seq == pump->first_seq + pump->n); /* seqs run without gaps */
        pump->given[pump->n++] = item;
    }
    return seq;
}

bool cv_router_pump_drop(cv_router_t *self, cv_pump_t *pump, cv_routed_t item, cv_error_t *err)
{
    return cv_store_unroute(self->store, item.report, cv_queue_id(pump->queue), err);
}

bool cv_router_pump_end(cv_router_t *self, cv_pump_t *pump, cv_error_t *err)
{
    return pump->n == 0 || cv_store_sent(self->store, cv_queue_id(pump->queue), pump->first_seq,
                                         pump->given, pump->n, err);
}

size_t cv_router_ack(cv_router_t *self, cv_queue_t *queue, uint64_t up_to)
{
    assert(up_to <= cv_queue_last_seq(queue));
    size_t acked = cv_queue_ack(queue, up_to);
    self->unsaved = self->unsaved || acked > 0;
    return acked;
}

bool cv_router_unsaved(const cv_router_t *self)
{
    return self->unsaved;
}

void cv_router_set_saving(cv_router_t *self, cv_router_saving_fn *fn, void *arg)
{
    self->saving = fn;
    self->saving_arg = arg;
}

bool cv_router_save(cv_router_t *self, cv_queue_t *queue, cv_error_t *err)
{
    if (self->saving && cv_queue_acked_count(queue) && !self->saving(self->saving_arg, queue, err))
        return false;
    cv_queue_state_t state;
    cv_queue_state(queue, self->max_report, &state);
    cv_queue_mark_saved(queue);
    return cv_store_save_queue(self->store, cv_queue_id(queue), &state, err);
}

bool cv_router_save_all(cv_router_t *self, cv_error_t *err)
{
    bool ok = true;
    self->unsaved = false;
    for (cv_queue_t *q = zhashx_first(self->queues); q && ok; q = zhashx_next(self->queues))
        if (cv_queue_unsaved(q))
            ok = cv_router_save(self, q, err);
    return ok;
}
