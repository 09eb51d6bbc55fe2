/*  Crash test, in the spirit of Jepsen's total-queue checker.
 *
 *  The real caveatd (--sync full) is killed with SIGKILL at random moments
 *  (200-1500 ms apart) and restarted, while two publishers (hum-bcu-hull:
 *  referrals, radicalisation concerns, community tension; hull-cc:
 *  intervention reviews) publish small batches continuously and two
 *  long-lived subscribers (ne-ctu direct, hum-ctio-hull's ctio feed)
 *  receive and acknowledge. Clients are made again after each restart; a
 *  publisher whose publish failed retries the same reports (same ids),
 *  which the broker must accept idempotently. Most restarts bind the old
 *  port, so clients also reconnect by themselves (libcaveat's Hello again);
 *  every third moves the broker to a new port, so that they cannot. At the
 *  end the broker starts a last time and every queue of every agency
 *  (direct and ctio feed) is drained.
 *
 *  The checker decides every published report again with the engine and
 *  asserts:
 *  - lost = 0: every (queue, report) of an acknowledged report delivered;
 *  - unexpected = misrouted = 0: nothing delivered that was never
 *    published, nothing delivered to a queue the policy does not route it
 *    to;
 *  - duplicates = 0: no client returns a report twice, and a report seen
 *    again by a client made after a restart ("redelivered") has its first
 *    seq, and its earlier copy's acknowledgement was not proven committed;
 *  - mismatched = 0: every delivered view is the engine's view, byte for
 *    byte (content belongs to its id, even across crashes);
 *  - reordered = seq-reused = 0: per queue a seq names one report, and a
 *    publisher's reports of one priority arrive in the order published.
 *  Published but unacknowledged reports may or may not arrive (counted).
 *
 *  Bounded: CAVEAT_CRASH_KILLS kills (default 6) within CAVEAT_CRASH_SECONDS
 *  (default 20 s for the kill phase); a default run takes 8-17 s.
 *  CAVEAT_CRASH_SEED repeats a run's random choices (not its timing).
 *
 *  hull-cc is a publisher here, not a subscriber: a client of an agency
 *  opens a session on its direct queue, and a second client of the same
 *  queue replaces the first one's session (docs/protocol.md 3.3), so a
 *  hull-cc publisher and a hull-cc subscriber would take its deliveries
 *  from each other.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <czmq.h>
#include <sodium.h>

#include "cv_policy.h"
#include "harness.h"

#define DEFAULT_KILLS      6
#define DEFAULT_SECONDS    20
#define MAX_BATCH          8
#define PUBLISH_TIMEOUT_MS 2000
#define HELLO_TIMEOUT_MS   2000
#define LIVE_CREDIT        4    /* small, so that acknowledgements can be proven */
#define DRAIN_CREDIT       1000 /* the final drain: as fast as the broker goes */
#define DRAIN_QUIET_MS     1500
#define DRAIN_LIMIT_MS     30000 /* plus twice the kill phase: a soak drains more */
#define HASH_BYTES         16
#define MAX_CLIENTS        4096 /* client generations, for the checker */

/* ------------------------------------------------------------------------ */
/*  What the run shares between threads.                                    */

typedef struct crash_t crash_t;

/*  A publisher makes its reports from example reports, packed. */
typedef struct {
    crash_t *crash;
    const char *agency;
    uint8_t *templates[3];
    size_t template_len[3];
    int priority[3]; /* of each template */
    int n_templates;
    unsigned seed;
    int number;
    uint64_t made;
} publisher_t;

/*  A report as published: what it was made from, so that the checker can
 *  make it again (the run keeps no copy: a soak publishes millions). */
typedef struct {
    publisher_t *publisher;
    uint64_t number;
    uint8_t template;
    bool acked;
} sent_t;

/*  One delivery as an application saw it (after libcaveat's dedupe). */
typedef struct {
    char *queue; /* "agency/feed", feed "" for the direct queue */
    char *report_id;
    uint64_t seq;
    int client;               /* which cv_client_t returned it */
    uint8_t view[HASH_BYTES]; /* BLAKE2b of the packed view */
} event_t;

struct crash_t {
    harness_t *h;
    char dir[600]; /* the harness directory, with a trailing slash */
    const char *const *broker_args;
    pthread_mutex_t lock;
    char endpoint[512]; /* the running broker's, guarded by lock */
    int epoch;          /* raised at every kill, guarded by lock */
    bool up;            /* guarded by lock */
    atomic_bool stop;
    zhashx_t *sent;   /* report id -> sent_t, guarded by lock */
    zlistx_t *events; /* event_t, in the order seen, guarded by lock */
    uint32_t credit[MAX_CLIENTS];
    uint64_t max_seq[MAX_CLIENTS];
    atomic_int clients;
    atomic_int refused, publish_failures, connect_failures;
    int same_port; /* restarts that bound the port of the run before */
    int held[64];  /* ports held so that the broker moves (hold_port) */
    int n_held;
};

static void event_free(void **item)
{
    event_t *e = *item;
    if (e) {
        free(e->queue);
        free(e->report_id);
        free(e);
    }
    *item = NULL;
}

/*  For code that runs on the worker threads, where cmocka's asserts (a
 *  longjmp to the main thread's test) must not be used. */
#define require(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: requirement failed: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void hash_of(const ProtobufCMessage *message, uint8_t hash[HASH_BYTES])
{
    size_t len = protobuf_c_message_get_packed_size(message);
    uint8_t *bytes = malloc(len ? len : 1);
    require(bytes);
    protobuf_c_message_pack(message, bytes);
    crypto_generichash(hash, HASH_BYTES, bytes, len, NULL, 0);
    free(bytes);
}

static void free_item(void **item)
{
    free(*item);
    *item = NULL;
}

static int env_int(const char *name, int fallback)
{
    const char *value = getenv(name);
    return value && atoi(value) > 0 ? atoi(value) : fallback;
}

static int64_t now_ms(void)
{
    return zclock_mono();
}

/* ------------------------------------------------------------------------ */
/*  Clients follow the broker: one made before a kill is replaced by one of
 *  the broker now running, which may listen on another port. */

static int next_client(crash_t *x, uint32_t credit)
{
    int id = atomic_fetch_add(&x->clients, 1);
    require(id < MAX_CLIENTS);
    x->credit[id] = credit;
    return id;
}

/*  Makes *c a client of the running broker unless it already is; false
 *  while the broker is down or the handshake fails. */
static bool ensure_client(crash_t *x, cv_client_t **c, int *epoch, int *id, const char *agency,
                          const char *feed, uint32_t credit)
{
    char endpoint[512];
    pthread_mutex_lock(&x->lock);
    bool up = x->up;
    int current = x->epoch;
    snprintf(endpoint, sizeof endpoint, "%s", x->endpoint);
    pthread_mutex_unlock(&x->lock);
    if (*c && *epoch == current)
        return true;
    cv_client_destroy(c);
    if (!up)
        return false;
    char server[700], secret[700];
    snprintf(server, sizeof server, "%sbroker.cert", x->dir);
    snprintf(secret, sizeof secret, "%s%s.cert_secret", x->dir, agency);
    cv_client_config_t config = {.endpoint = endpoint,
                                 .server_cert = server,
                                 .client_cert = secret,
                                 .feed = feed,
                                 .credit = credit,
                                 .timeout_ms = HELLO_TIMEOUT_MS};
    cv_error_t err = {0};
    *c = cv_client_new(&config, &err);
    if (!*c) {
        atomic_fetch_add(&x->connect_failures, 1);
        return false;
    }
    *epoch = current;
    if (id)
        *id = next_client(x, credit);
    return true;
}

/*  Records one delivery returned to an application. */
static void record_event(crash_t *x, const char *agency, const char *feed, int client,
                         const cv_delivery_t *d)
{
    event_t *e = calloc(1, sizeof *e);
    require(e && asprintf(&e->queue, "%s/%s", agency, feed ? feed : "") > 0);
    e->report_id = strdup(d->report_id ? d->report_id : "");
    e->seq = d->seq;
    e->client = client;
    if (d->report)
        hash_of(&d->report->base, e->view);
    pthread_mutex_lock(&x->lock);
    if (d->seq > x->max_seq[client])
        x->max_seq[client] = d->seq;
    zlistx_add_end(x->events, e);
    pthread_mutex_unlock(&x->lock);
}

/*  Receives whatever is waiting, then acknowledges it with one cumulative
 *  ack (an ack per delivery can fill the client's send queue while the
 *  broker is busy); the number received, or -1 when the client failed (it
 *  is then destroyed). */
static int take_all(crash_t *x, cv_client_t **c, int client, const char *agency, const char *feed)
{
    int got = 0;
    uint64_t highest = 0;
    cv_error_t err = {0};
    const cv_delivery_t *d;
    while ((d = cv_client_receive(*c, 0, &err))) {
        record_event(x, agency, feed, client, d);
        highest = d->seq > highest ? d->seq : highest;
        got++;
    }
    bool ok = err.code == CV_ERR_TIMEOUT && (!highest || cv_client_ack(*c, highest, &err));
    if (!ok) {
        fprintf(stderr, "crash: %s/%s: %s\n", agency, feed ? feed : "", err.msg);
        cv_client_destroy(c);
    }
    return ok ? got : -1;
}

/* ------------------------------------------------------------------------ */
/*  Publishers.                                                             */

/*  Report number of a publisher, from template t: a summary of its own (so
 *  that a delivered view can only match its own report) and no id yet. */
static Caveat__Report *report_of(const publisher_t *p, int t, uint64_t number)
{
    Caveat__Report *r = caveat__report__unpack(NULL, p->template_len[t], p->templates[t]);
    require(r);
    char *summary = NULL;
    require(asprintf(&summary, "%s (crash test %d-%llu)", r->summary ? r->summary : "", p->number,
                     (unsigned long long)number) > 0);
    free(r->summary);
    r->summary = summary;
    return r;
}

/*  The next report: libcaveat gives it an id when sending it. */
static Caveat__Report *make_report(publisher_t *p, uint8_t *template)
{
    *template = (uint8_t)(rand_r(&p->seed) % (unsigned)p->n_templates);
    return report_of(p, *template, p->made++);
}

/*  The ids libcaveat gave the batch go into its reports, so that a retry
 *  of the same reports is the same reports to the broker. */
static void keep_ids(Caveat__Report **batch, const cv_publish_result_t *results, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        require(results[i].report_id);
        if (!batch[i]->id || !*batch[i]->id) {
            free(batch[i]->id);
            batch[i]->id = strdup(results[i].report_id);
            require(batch[i]->id);
        }
    }
}

/*  The reports of a batch become the run's on their first attempt: from
 *  then on they may be stored, whatever the outcome. */
static void record_attempted(publisher_t *p, Caveat__Report **batch, const uint8_t *templates,
                             size_t n)
{
    crash_t *x = p->crash;
    pthread_mutex_lock(&x->lock);
    for (size_t i = 0; i < n; i++) {
        sent_t *s = calloc(1, sizeof *s);
        require(s);
        *s = (sent_t){p, p->made - n + i, templates[i], false};
        require(zhashx_insert(x->sent, batch[i]->id, s) == 0); /* ids are unique */
    }
    pthread_mutex_unlock(&x->lock);
}

static void record_results(crash_t *x, const cv_publish_result_t *results, size_t n)
{
    pthread_mutex_lock(&x->lock);
    for (size_t i = 0; i < n; i++) {
        sent_t *s = zhashx_lookup(x->sent, results[i].report_id);
        require(s);
        if (results[i].status == CAVEAT__WIRE__STATUS__OK)
            s->acked = true;
        else if (results[i].status != CV_PUBLISH_PENDING) {
            fprintf(stderr, "crash: %s refused: %s %s\n", results[i].report_id,
                    cv_status_name(results[i].status), results[i].reason);
            atomic_fetch_add(&x->refused, 1);
        }
    }
    pthread_mutex_unlock(&x->lock);
}

static void *publisher_run(void *arg)
{
    publisher_t *p = arg;
    crash_t *x = p->crash;
    cv_client_t *c = NULL;
    int epoch = -1;
    Caveat__Report *batch[MAX_BATCH];
    uint8_t templates[MAX_BATCH];
    size_t n = 0;
    while (!atomic_load(&x->stop)) {
        if (!ensure_client(x, &c, &epoch, NULL, p->agency, NULL, 0)) {
            usleep(20 * 1000);
            continue;
        }
        bool first = n == 0;
        if (first) {
            n = 1 + rand_r(&p->seed) % MAX_BATCH;
            for (size_t i = 0; i < n; i++)
                batch[i] = make_report(p, &templates[i]);
        }
        cv_publish_result_t results[MAX_BATCH] = {{0}};
        cv_error_t err = {0};
        int refused = cv_client_publish(c, (const Caveat__Report *const *)batch, n, results,
                                        PUBLISH_TIMEOUT_MS, &err);
        if (first) {
            keep_ids(batch, results, n);
            record_attempted(p, batch, templates, n);
        }
        record_results(x, results, n);
        cv_publish_results_clear(results, n);
        if (refused >= 0) {
            for (size_t i = 0; i < n; i++)
                caveat__report__free_unpacked(batch[i], NULL);
            n = 0;
        } else { /* the same reports again, on a client of the broker now running */
            atomic_fetch_add(&x->publish_failures, 1);
            cv_client_destroy(&c);
        }
    }
    for (size_t i = 0; i < n; i++) /* attempted: the run can make them again */
        caveat__report__free_unpacked(batch[i], NULL);
    cv_client_destroy(&c);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/*  Subscribers connected through the crashes.                              */

typedef struct {
    const char *agency;
    const char *feed;
    cv_client_t *c;
    int epoch;
    int id;
} live_t;

static void *subscriber_run(void *arg)
{
    crash_t *x = arg;
    live_t live[] = {{"ne-ctu", NULL, NULL, -1, -1}, {"hum-ctio-hull", "ctio", NULL, -1, -1}};
    size_t n = sizeof live / sizeof *live;
    while (!atomic_load(&x->stop)) {
        int got = 0;
        for (size_t i = 0; i < n; i++) {
            live_t *l = &live[i];
            if (ensure_client(x, &l->c, &l->epoch, &l->id, l->agency, l->feed, LIVE_CREDIT))
                got += take_all(x, &l->c, l->id, l->agency, l->feed) > 0;
        }
        if (!got)
            usleep(5 * 1000);
    }
    for (size_t i = 0; i < n; i++)
        cv_client_destroy(&live[i].c);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/*  The run.                                                                */

static void load_template(publisher_t *p, const char *name)
{
    Caveat__Report *r = harness_report(name);
    assert_non_null(r);
    assert_string_equal(r->originator, p->agency); /* stored as published */
    int t = p->n_templates++;
    p->priority[t] = (int)r->priority;
    p->template_len[t] = caveat__report__get_packed_size(r);
    p->templates[t] = malloc(p->template_len[t]);
    caveat__report__pack(r, p->templates[t]);
    caveat__report__free_unpacked(r, NULL);
}

static void read_pseudonym_key(crash_t *x, uint8_t key[CV_KEY_BYTES])
{
    char path[700];
    snprintf(path, sizeof path, "%sdata/pseudonym.key", x->dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(key, 1, CV_KEY_BYTES, f), CV_KEY_BYTES);
    fclose(f);
}

static bool broker_up(crash_t *x)
{
    if (!harness_start(x->h, x->broker_args))
        return false;
    pthread_mutex_lock(&x->lock);
    x->same_port += strcmp(x->endpoint, harness_endpoint(x->h)) == 0;
    snprintf(x->endpoint, sizeof x->endpoint, "%s", harness_endpoint(x->h));
    x->up = true;
    pthread_mutex_unlock(&x->lock);
    return true;
}

static void broker_kill(crash_t *x)
{
    pthread_mutex_lock(&x->lock);
    x->up = false;
    x->epoch++;
    pthread_mutex_unlock(&x->lock);
    harness_kill(x->h);
}

/*  Listens on the port of endpoint (tcp://127.0.0.1:PORT) so that a broker
 *  started meanwhile binds another one: the harness binds the first free
 *  port from 49152, so a restarted broker usually gets its old port back
 *  and clients reconnect by themselves. Holding it makes them fail over to
 *  new clients instead. Returns the descriptor, or -1. */
static int hold_port(const char *endpoint)
{
    const char *colon = strrchr(endpoint, ':');
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)atoi(colon ? colon + 1 : "0")),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
                    bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1) != 0)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/*  Restarts the broker, every third time on a new port: the old one stays
 *  held until the kills end, so that the clients of the old port see their
 *  calls time out and the application makes new ones. */
static bool restart(crash_t *x, int kills)
{
    int held = kills % 3 == 0 && x->n_held < 64 ? hold_port(x->endpoint) : -1;
    if (held >= 0)
        x->held[x->n_held++] = held;
    return broker_up(x);
}

static void release_ports(crash_t *x)
{
    while (x->n_held > 0)
        close(x->held[--x->n_held]);
}

/*  Kills at random moments 200-1500 ms apart, restarting after each but
 *  the last; returns the number of kills, or -1 when a restart failed. */
static int kill_repeatedly(crash_t *x, unsigned *seed)
{
    int max_kills = env_int("CAVEAT_CRASH_KILLS", DEFAULT_KILLS);
    int64_t deadline = now_ms() + 1000LL * env_int("CAVEAT_CRASH_SECONDS", DEFAULT_SECONDS);
    int kills = 0;
    while (kills < max_kills) {
        usleep((useconds_t)(200 + rand_r(seed) % 1301) * 1000);
        broker_kill(x);
        kills++;
        if (kills == max_kills || now_ms() >= deadline)
            break;
        if (!restart(x, kills)) {
            release_ports(x);
            return -1;
        }
    }
    release_ports(x);
    return kills;
}

/*  Every queue of every agency (direct and the ctio feed, which only the
 *  CTIO should get anything on: only its recipients open it), received and
 *  acknowledged until quiet. */
static void drain(crash_t *x, const cv_policy_t *policy, int64_t limit_ms)
{
    enum { MAX_DRAIN = 128 };
    live_t queues[MAX_DRAIN];
    size_t n = 0;
    for (int a = 0; a < cv_policy_agency_count(policy); a++)
        for (int f = 0; f < 2; f++) {
            if (f && !cv_policy_feed_recipient(policy, "ctio", a))
                continue; /* only the feed's recipients may open it */
            assert_true(n < MAX_DRAIN);
            live_t *q = &queues[n++];
            *q = (live_t){cv_policy_agency(policy, a)->id, f ? "ctio" : NULL, NULL, -1, -1};
            for (int tries = 0; tries < 3 && !q->c; tries++) /* a busy broker may be slow */
                ensure_client(x, &q->c, &q->epoch, &q->id, q->agency, q->feed, DRAIN_CREDIT);
            assert_non_null(q->c);
        }
    int64_t start = now_ms(), quiet_since = start;
    while (now_ms() - quiet_since < DRAIN_QUIET_MS && now_ms() - start < limit_ms) {
        int got = 0;
        for (size_t i = 0; i < n; i++) {
            int taken = take_all(x, &queues[i].c, queues[i].id, queues[i].agency, queues[i].feed);
            assert_true(taken >= 0);
            got += taken;
        }
        if (got)
            quiet_since = now_ms();
        else
            usleep(10 * 1000);
    }
    if (now_ms() - quiet_since < DRAIN_QUIET_MS)
        fprintf(stderr, "crash: the drain was still receiving after %lld ms\n",
                (long long)limit_ms);
    for (size_t i = 0; i < n; i++)
        cv_client_destroy(&queues[i].c);
}

/* ------------------------------------------------------------------------ */
/*  The checker.                                                            */

typedef struct {
    int acked, attempted, deliveries, pairs, expected, lost, unexpected, misrouted, duplicates,
        redelivered, mismatched, unacked_delivered, reordered, seq_reused;
} counts_t;

/*  A report's first delivery to a queue, for the checks of order. */
typedef struct {
    const char *queue;
    const char *id;
    uint64_t seq;
    const sent_t *sent;
} first_t;

typedef struct {
    first_t *items;
    size_t count;
} firsts_t;

/*  A (queue, report) the engine routes an attempted report to. */
typedef struct {
    const sent_t *sent;
    char *id;
    uint8_t view[HASH_BYTES]; /* of the engine's view */
} route_t;

/*  Where the deliveries of a report to a queue stand. */
typedef struct {
    uint64_t seq;
    int client;
    bool confirmed; /* its acknowledgement provably committed */
} seen_t;

static void route_free(void **item)
{
    route_t *r = *item;
    if (r) {
        free(r->id);
        free(r);
    }
    *item = NULL;
}

static char *pair_key(const char *queue, const char *id)
{
    char *key = NULL;
    assert_true(asprintf(&key, "%s|%s", queue, id) > 0);
    return key;
}

/*  Adds the route of report to agency a, when the engine sends it there. */
static void add_route(zhashx_t *routes, const cv_policy_t *policy, cv_decision_t *decision,
                      const sent_t *s, const Caveat__Report *report, int a)
{
    if (!cv_policy_decide(policy, report, a, NULL, decision))
        return;
    const char *feed = cv_decision_feed(decision);
    char *key = NULL;
    assert_true(asprintf(&key, "%s/%s|%s", cv_policy_agency(policy, a)->id, feed ? feed : "",
                         report->id) > 0);
    route_t *r = calloc(1, sizeof *r);
    *r = (route_t){.sent = s, .id = strdup(report->id)};
    Caveat__Report *view = cv_decision_view(decision, report);
    hash_of(&view->base, r->view);
    protobuf_c_message_free_unpacked(&view->base, NULL);
    assert_int_equal(zhashx_insert(routes, key, r), 0);
    free(key);
}

/*  Every (queue, report) the engine routes an attempted report to. */
static zhashx_t *routes_of(crash_t *x, const cv_policy_t *policy, cv_decision_t *decision,
                           counts_t *n)
{
    zhashx_t *routes = zhashx_new();
    zhashx_set_destructor(routes, route_free);
    for (sent_t *s = zhashx_first(x->sent); s; s = zhashx_next(x->sent)) {
        /* as the broker stored it: the originator is the sender already */
        Caveat__Report *report = report_of(s->publisher, s->template, s->number);
        report->id = strdup(zhashx_cursor(x->sent));
        size_t before = zhashx_size(routes);
        for (int a = 0; a < cv_policy_agency_count(policy); a++)
            add_route(routes, policy, decision, s, report, a);
        n->attempted++;
        n->acked += s->acked;
        n->expected += s->acked ? (int)(zhashx_size(routes) - before) : 0;
        caveat__report__free_unpacked(report, NULL);
    }
    return routes;
}

/*  A copy seen again by another client is allowed only with its first seq
 *  and when no earlier copy's acknowledgement was proven committed. */
static void judge_event(crash_t *x, zhashx_t *seen, const char *key, const event_t *e,
                        const route_t *route, firsts_t *firsts, counts_t *n)
{
    seen_t *was = zhashx_lookup(seen, key);
    /* the broker sent seq s + credit only when at most credit - 1 of what
       it had sent this session was unacknowledged: acks are cumulative, so
       the ack covering s had committed (nothing is sent before a commit) */
    bool confirmed = x->max_seq[e->client] >= e->seq + x->credit[e->client];
    if (!was) {
        was = calloc(1, sizeof *was);
        *was = (seen_t){e->seq, e->client, confirmed};
        zhashx_insert(seen, key, was);
        firsts->items[firsts->count++] = (first_t){e->queue, e->report_id, e->seq, route->sent};
        n->pairs++;
    } else if (was->client == e->client || was->seq != e->seq || was->confirmed) {
        fprintf(stderr,
                "crash: duplicate: %s seq %llu (client %d), earlier seq %llu (client %d%s)\n", key,
                (unsigned long long)e->seq, e->client, (unsigned long long)was->seq, was->client,
                was->confirmed ? ", acknowledged" : "");
        n->duplicates++;
    } else {
        n->redelivered++;
        was->client = e->client;
        was->confirmed = confirmed;
    }
}

static void judge_events(crash_t *x, zhashx_t *routes, zhashx_t *seen, firsts_t *firsts,
                         counts_t *n)
{
    for (event_t *e = zlistx_first(x->events); e; e = zlistx_next(x->events)) {
        n->deliveries++;
        char *key = pair_key(e->queue, e->report_id);
        route_t *route = zhashx_lookup(routes, key);
        if (!zhashx_lookup(x->sent, e->report_id)) {
            fprintf(stderr, "crash: unexpected: %s got %s, never published\n", e->queue,
                    e->report_id);
            n->unexpected++;
        } else if (!route) {
            fprintf(stderr, "crash: misrouted: %s got %s\n", e->queue, e->report_id);
            n->misrouted++;
        } else {
            if (memcmp(route->view, e->view, HASH_BYTES) != 0) {
                fprintf(stderr, "crash: %s got a view of %s that is not the engine's\n", e->queue,
                        e->report_id);
                n->mismatched++;
            }
            judge_event(x, seen, key, e, route, firsts, n);
        }
        free(key);
    }
}

static void count_outcomes(zhashx_t *routes, zhashx_t *seen, counts_t *n)
{
    zhashx_t *unacked = zhashx_new(); /* ids of unacknowledged reports delivered */
    for (route_t *r = zhashx_first(routes); r; r = zhashx_next(routes)) {
        const char *key = zhashx_cursor(routes);
        bool delivered = zhashx_lookup(seen, key) != NULL;
        if (r->sent->acked && !delivered) {
            fprintf(stderr, "crash: lost: %s\n", key);
            n->lost++;
        }
        if (!r->sent->acked && delivered)
            zhashx_insert(unacked, r->id, r);
    }
    n->unacked_delivered = (int)zhashx_size(unacked);
    zhashx_destroy(&unacked);
}

static int by_queue_and_seq(const void *a, const void *b)
{
    const first_t *x = a, *y = b;
    int queue = strcmp(x->queue, y->queue);
    return queue ? queue : (x->seq > y->seq) - (x->seq < y->seq);
}

/*  Per queue, in seq order: a seq names one report, and a publisher's
 *  reports of one priority come in the order it published them (it waits
 *  for each batch's ack before the next, so that is the order of
 *  acceptance; a higher priority may overtake, docs/protocol.md 5). */
static void check_order(firsts_t *firsts, counts_t *n)
{
    qsort(firsts->items, firsts->count, sizeof *firsts->items, by_queue_and_seq);
    uint64_t last[3][3] = {{0}}; /* publisher number, priority: 1 + report number */
    for (size_t i = 0; i < firsts->count; i++) {
        const first_t *f = &firsts->items[i], *before = i ? &firsts->items[i - 1] : NULL;
        if (!before || strcmp(before->queue, f->queue) != 0)
            memset(last, 0, sizeof last);
        else if (before->seq == f->seq) {
            fprintf(stderr, "crash: %s seq %llu names %s and %s\n", f->queue,
                    (unsigned long long)f->seq, before->id, f->id);
            n->seq_reused++;
        }
        const publisher_t *p = f->sent->publisher;
        uint64_t *was = &last[p->number][p->priority[f->sent->template]];
        if (f->sent->number + 1 < *was) {
            fprintf(stderr, "crash: %s seq %llu: %s (report %d-%llu) after report %d-%llu\n",
                    f->queue, (unsigned long long)f->seq, f->id, p->number,
                    (unsigned long long)f->sent->number, p->number, (unsigned long long)(*was - 1));
            n->reordered++;
        }
        *was = f->sent->number + 1;
    }
}

static void check(crash_t *x, const cv_policy_t *policy, counts_t *n)
{
    cv_decision_t *decision = cv_decision_new();
    zhashx_t *routes = routes_of(x, policy, decision, n);
    zhashx_t *seen = zhashx_new();
    zhashx_set_destructor(seen, free_item);
    firsts_t firsts = {calloc(zlistx_size(x->events) + 1, sizeof(first_t)), 0};
    judge_events(x, routes, seen, &firsts, n);
    count_outcomes(routes, seen, n);
    check_order(&firsts, n);
    free(firsts.items);
    zhashx_destroy(&seen);
    zhashx_destroy(&routes);
    cv_decision_destroy(&decision);
}

/* ------------------------------------------------------------------------ */

static void crash_init(crash_t *x, harness_t *h, const char *const *args)
{
    memset(x, 0, sizeof *x);
    x->h = h;
    x->broker_args = args;
    snprintf(x->dir, sizeof x->dir, "%s", harness_path(h, ""));
    pthread_mutex_init(&x->lock, NULL);
    x->sent = zhashx_new();
    zhashx_set_destructor(x->sent, free_item);
    x->events = zlistx_new();
    zlistx_set_destructor(x->events, event_free);
}

static void crash_fini(crash_t *x)
{
    zlistx_destroy(&x->events);
    zhashx_destroy(&x->sent);
    pthread_mutex_destroy(&x->lock);
}

/*  A broker key of the run's own. The harness copies the example broker
 *  key, which every harness on this machine shares, and binds the first
 *  free port from 49152: a client whose broker was killed could reconnect
 *  to another test's broker that took the port, and have its reports
 *  acknowledged there. With a key of its own it cannot complete the
 *  handshake anywhere but here. */
static int setup(void **state)
{
    harness_t *h = harness_new();
    zcert_t *cert = zcert_new();
    char path[700];
    snprintf(path, sizeof path, "%s", h ? harness_path(h, "broker.cert") : "");
    bool ok = h && cert && zcert_save(cert, path) == 0 &&
              chmod(harness_path(h, "broker.cert_secret"), 0600) == 0;
    zcert_destroy(&cert);
    if (!ok)
        harness_destroy(&h);
    *state = h;
    return ok ? 0 : -1;
}

/*  Also after a failure: no broker outlives its test. */
static int teardown(void **state)
{
    harness_t *h = *state;
    harness_destroy(&h);
    return 0;
}

static void test_kill_and_restart_loses_nothing(void **state)
{
    harness_t *h = *state;
    unsigned seed = (unsigned)env_int("CAVEAT_CRASH_SEED", (int)(time(NULL) ^ getpid()));
    printf("crash: seed %u\n", seed);
    static const char *const args[] = {"--sync", "full", NULL};
    crash_t x;
    crash_init(&x, h, args);
    assert_true(broker_up(&x));
    uint8_t key[CV_KEY_BYTES];
    read_pseudonym_key(&x, key);

    publisher_t police = {.crash = &x, .agency = "hum-bcu-hull", .seed = seed + 1, .number = 1};
    load_template(&police, "vulnerable_individual");
    load_template(&police, "radicalisation_concern");
    load_template(&police, "community_tension");
    publisher_t council = {.crash = &x, .agency = "hull-cc", .seed = seed + 2, .number = 2};
    load_template(&council, "intervention_review");
    zsys_init(); /* once, before the threads: czmq's own start is not thread-safe */
    pthread_t threads[3];
    int64_t started = now_ms();
    assert_int_equal(pthread_create(&threads[0], NULL, publisher_run, &police), 0);
    assert_int_equal(pthread_create(&threads[1], NULL, publisher_run, &council), 0);
    assert_int_equal(pthread_create(&threads[2], NULL, subscriber_run, &x), 0);

    int kills = kill_repeatedly(&x, &seed); /* the broker is down after the last */
    int64_t kill_phase = now_ms() - started;
    atomic_store(&x.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(threads[i], NULL);
    assert_true(kills >= 1); /* else a restart failed: see the broker's log above */
    assert_true(broker_up(&x));
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_file(harness_path(h, "policy.yaml"), key, &err);
    if (!policy)
        print_error("%s\n", err.msg);
    assert_non_null(policy);
    int64_t drain_start = now_ms();
    drain(&x, policy, DRAIN_LIMIT_MS + 2 * kill_phase);
    int64_t drained = now_ms() - drain_start;

    counts_t n = {0};
    check(&x, policy, &n);
    printf("crash: kills %d (%d restarts on the same port) in %.1f s, drain %.1f s\n", kills,
           x.same_port, kill_phase / 1000.0, drained / 1000.0);
    printf("crash: acked %d attempted %d unacked %d (delivered anyway %d) refused %d; publish "
           "failures %d, connect failures %d, clients %d\n",
           n.acked, n.attempted, n.attempted - n.acked, n.unacked_delivered,
           atomic_load(&x.refused), atomic_load(&x.publish_failures),
           atomic_load(&x.connect_failures), atomic_load(&x.clients));
    printf("crash: deliveries %d (queue-report pairs %d, expected %d) lost %d unexpected %d "
           "misrouted %d duplicates %d redelivered-after-restart %d mismatched %d reordered %d "
           "seq-reused %d\n",
           n.deliveries, n.pairs, n.expected, n.lost, n.unexpected, n.misrouted, n.duplicates,
           n.redelivered, n.mismatched, n.reordered, n.seq_reused);
    assert_true(n.acked > 0);
    assert_int_equal(atomic_load(&x.refused), 0);
    assert_int_equal(n.lost, 0);
    assert_int_equal(n.unexpected, 0);
    assert_int_equal(n.misrouted, 0);
    assert_int_equal(n.duplicates, 0);
    assert_int_equal(n.mismatched, 0);
    assert_int_equal(n.reordered, 0);
    assert_int_equal(n.seq_reused, 0);

    cv_policy_destroy(&policy);
    for (int i = 0; i < police.n_templates; i++)
        free(police.templates[i]);
    free(council.templates[0]);
    crash_fini(&x);
    assert_true(harness_stop(h)); /* cleanly, sanitizers quiet */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_and_restart_loses_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
