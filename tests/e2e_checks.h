/*  e2e_checks.h: client steps the end-to-end tests share, each with its
 *  assertion: a client of an agency, a receive, "nothing more arrives".
 *  For cmocka tests (include cmocka.h first) against a broker the harness
 *  started.
 */
#ifndef CV_E2E_CHECKS_H
#define CV_E2E_CHECKS_H

#include <czmq.h>
#include <sqlite3.h>

#include "harness.h"

/*  A harness with caveatd started (extra: its further arguments, or NULL). */
static inline harness_t *started_with(const char *const *extra)
{
    harness_t *h = harness_new();
    assert_non_null(h);
    assert_true(harness_start(h, extra));
    return h;
}

static inline harness_t *started(void)
{
    return started_with(NULL);
}

/*  A harness whose data directory is on a disk of its own of bytes, not
 *  started; the test is skipped where no disk can be mounted. */
static inline harness_t *on_a_small_disk(size_t bytes)
{
    harness_t *h = harness_new();
    assert_non_null(h);
    if (!harness_small_disk(h, bytes)) {
        harness_destroy(&h);
        skip(); /* no mount here: not root, no user namespaces */
    }
    return h;
}

/*  caveatd started on a disk of its own of bytes, keeping reserve_mb MB
 *  back (--disk-reserve). */
static inline harness_t *started_on_a_small_disk(size_t bytes, const char *reserve_mb)
{
    harness_t *h = on_a_small_disk(bytes);
    const char *const extra[] = {"--disk-reserve", reserve_mb, NULL};
    assert_true(harness_start(h, extra));
    return h;
}

/*  Fills the broker's disk, and waits until it has seen that (it looks
 *  every 100 ms). */
static inline void disk_filled(harness_t *h)
{
    assert_true(harness_fill_disk(h) > 0);
    zclock_sleep(300);
}

/*  Every test ends here: the broker must stop cleanly, sanitizers quiet. */
static inline void finish(harness_t **h)
{
    assert_true(harness_stop(*h));
    harness_destroy(h);
}

static inline cv_client_t *client(harness_t *h, const char *agency, const char *feed,
                                  uint32_t credit)
{
    cv_error_t err = {0};
    cv_client_t *c = harness_client(h, agency, feed, credit, &err);
    if (!c)
        print_error("client %s: %s\n", agency, err.msg);
    assert_non_null(c);
    return c;
}

/*  The next delivery, or NULL on timeout (an error is printed). */
static inline const cv_delivery_t *receive(cv_client_t *c, int timeout_ms)
{
    cv_error_t err = {0};
    const cv_delivery_t *d = cv_client_receive(c, timeout_ms, &err);
    if (!d && err.code != CV_ERR_TIMEOUT)
        print_error("receive: %s\n", err.msg);
    return d;
}

static inline void assert_nothing_arrives(cv_client_t *c, int timeout_ms)
{
    const cv_delivery_t *d = receive(c, timeout_ms);
    if (d)
        print_error("unexpected delivery of %s, seq %llu\n", d->report_id,
                    (unsigned long long)d->seq);
    assert_null(d);
}

/*  Lines of the broker's log that hold text. */
static inline int log_lines_with(harness_t *h, const char *text)
{
    FILE *f = fopen(harness_path(h, "broker.log"), "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    fclose(f);
    return n;
}

/*  The file at path, as text (the caller frees). */
static inline char *read_text(const char *path)
{
    size_t len = 0;
    char *text = cv_read_file(path, &len);
    assert_non_null(text);
    return text;
}

/*  text with its first occurrence of from, at or after after, replaced
 *  (the caller frees). */
static inline char *text_replace(const char *text, const char *after, const char *from,
                                 const char *to)
{
    const char *start = strstr(text, after);
    assert_non_null(start);
    const char *at = strstr(start, from);
    assert_non_null(at);
    char *out = malloc(strlen(text) - strlen(from) + strlen(to) + 1);
    size_t head = (size_t)(at - text);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

/*  The policy text without the agency block of id. */
static inline char *without_agency(const char *policy, const char *id)
{
    char header[64];
    snprintf(header, sizeof header, "\n  %s:\n", id);
    const char *start = strstr(policy, header);
    assert_non_null(start);
    const char *end = start + strlen(header);
    while (strncmp(end, "    ", 4) == 0) /* the agency's indented lines */
        end = strchr(end, '\n') + 1;
    char *out = malloc(strlen(policy) + 1);
    size_t head = (size_t)(start - policy) + 1;
    memcpy(out, policy, head);
    strcpy(out + head, end);
    return out;
}

/*  How many times needle occurs in text. */
static inline int occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ------------------------------------------------------------------------ */
/*  The administrator's view: stats.                                        */

/*  hum-bcu-hull publishes the example vulnerable_individual report n
 *  times, under a new id each time; each is acknowledged. */
static inline void publish_examples(harness_t *h, int n)
{
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report *report = harness_report("vulnerable_individual");
    assert_non_null(report);
    for (int i = 0; i < n; i++) {
        free(report->id);
        report->id = NULL; /* a new one each time */
        cv_publish_result_t result = {0};
        cv_error_t err = {0};
        assert_int_equal(cv_client_publish_one(police, report, &result, 5000, &err), 0);
        cv_publish_results_clear(&result, 1);
    }
    caveat__report__free_unpacked(report, NULL);
    cv_client_destroy(&police);
}

/*  Publishes a vulnerable_individual report whose narrative is bytes long. */
static inline void publish_big(cv_client_t *c, size_t bytes)
{
    Caveat__Report *report = harness_report("vulnerable_individual");
    assert_non_null(report);
    free(report->id);
    report->id = NULL;
    free(report->narrative);
    report->narrative = malloc(bytes + 1);
    assert_non_null(report->narrative);
    memset(report->narrative, 'x', bytes);
    report->narrative[bytes] = '\0';
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    if (cv_client_publish_one(c, report, &result, 20000, &err) != 0)
        fail_msg("publish: %s %s", err.msg, result.reason ? result.reason : "");
    cv_publish_results_clear(&result, 1);
    caveat__report__free_unpacked(report, NULL);
}

/*  A send-only client of agency (its example key): it takes no queue, as
 *  `caveat publish` and `caveat admin` open. */
static inline cv_client_t *sender_of(harness_t *h, const char *agency)
{
    cv_error_t err = {0};
    cv_client_t *c = harness_sender(h, agency, &err);
    if (!c)
        print_error("sender %s: %s\n", agency, err.msg);
    assert_non_null(c);
    return c;
}

static inline cv_client_t *admin_client_of(harness_t *h)
{
    return sender_of(h, "caveat-admin");
}

static inline char *admin(harness_t *h, const char *command, bool *ok)
{
    cv_client_t *c = admin_client_of(h);
    cv_error_t err = {0};
    char *text = cv_client_admin(c, command, ok, 5000, &err);
    if (!text)
        print_error("admin: %s\n", err.msg);
    assert_non_null(text);
    cv_client_destroy(&c);
    return text;
}

/*  The value of a counter in the stats JSON. */
static inline long stat_of(harness_t *h, const char *name)
{
    bool ok = false;
    char *text = admin(h, "stats", &ok);
    assert_true(ok);
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *at = strstr(text, key);
    assert_non_null(at);
    long value = atol(at + strlen(key));
    free(text);
    return value;
}

/*  What read(h, what) gives once it is want, or its value after
 *  timeout_ms: for what the broker does in its own time, however busy the
 *  machine. */
static inline long reading_awaited(harness_t *h, long (*read)(harness_t *, const char *),
                                   const char *what, long want, int timeout_ms)
{
    int64_t until = zclock_mono() + timeout_ms;
    long value = read(h, what);
    while (value != want && zclock_mono() < until) {
        zclock_sleep(50);
        value = read(h, what);
    }
    return value;
}

/*  The counter once it is want (a connection's end, read from libzmq's
 *  monitor), or its value after timeout_ms. */
static inline long stat_awaited(harness_t *h, const char *name, long want, int timeout_ms)
{
    return reading_awaited(h, stat_of, name, want, timeout_ms);
}

static inline long log_lines_counted(harness_t *h, const char *text)
{
    return log_lines_with(h, text);
}

/*  Lines of the broker's log with text once there are want, or how many
 *  after timeout_ms. */
static inline long log_lines_awaited(harness_t *h, const char *text, long want, int timeout_ms)
{
    return reading_awaited(h, log_lines_counted, text, want, timeout_ms);
}

/* ------------------------------------------------------------------------ */
/*  Frames libcaveat would never send: a raw CURVE DEALER.                  */

/*  A raw CURVE DEALER of agency (its example key), for frames libcaveat
 *  would never send, not yet connected (raw_dealer_connect): a test may
 *  set socket options first. routing_id, when not NULL, is the routing id
 *  it gives the broker (size bytes); reconnect false makes a connection
 *  the broker ends stay ended. */
static inline zsock_t *raw_dealer_new(harness_t *h, const char *agency, const void *routing_id,
                                      size_t size, bool reconnect)
{
    char path[600];
    snprintf(path, sizeof path, "%s", harness_path(h, "broker.cert"));
    zcert_t *server = zcert_load(path);
    snprintf(path, sizeof path, "%s/%s.cert_secret", harness_path(h, ""), agency);
    zcert_t *mine = zcert_load(path);
    assert_non_null(server);
    assert_non_null(mine);
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_linger(dealer, 0);
    zsock_set_rcvtimeo(dealer, 3000);
    if (!reconnect)
        zsock_set_reconnect_ivl(dealer, -1);
    zcert_apply(mine, dealer);
    zsock_set_curve_serverkey(dealer, zcert_public_txt(server));
    if (routing_id)
        zmq_setsockopt(zsock_resolve(dealer), ZMQ_ROUTING_ID, routing_id, size);
    zcert_destroy(&server);
    zcert_destroy(&mine);
    return dealer;
}

static inline void raw_dealer_connect(harness_t *h, zsock_t *dealer)
{
    assert_int_equal(zsock_connect(dealer, "%s", harness_endpoint(h)), 0);
}

static inline zsock_t *raw_dealer_as(harness_t *h, const char *agency, const void *routing_id,
                                     size_t size, bool reconnect)
{
    zsock_t *dealer = raw_dealer_new(h, agency, routing_id, size, reconnect);
    raw_dealer_connect(h, dealer);
    return dealer;
}

static inline zsock_t *raw_dealer(harness_t *h, const char *agency)
{
    return raw_dealer_as(h, agency, NULL, 0, true);
}

static inline void send_frame(zsock_t *dealer, const Caveat__Wire__Frame *frame)
{
    size_t size = caveat__wire__frame__get_packed_size(frame);
    zframe_t *f = zframe_new(NULL, size);
    caveat__wire__frame__pack(frame, zframe_data(f));
    if (zframe_send(&f, dealer, 0) != 0)
        zframe_destroy(&f); /* czmq keeps a frame it could not send */
}

/*  The broker's next frame on dealer, unpacked (it must unpack); NULL when
 *  none comes within the dealer's receive timeout. */
static inline Caveat__Wire__Frame *next_frame(zsock_t *dealer)
{
    zframe_t *f = zframe_recv(dealer);
    if (!f)
        return NULL;
    Caveat__Wire__Frame *frame = caveat__wire__frame__unpack(NULL, zframe_size(f), zframe_data(f));
    zframe_destroy(&f);
    assert_non_null(frame);
    return frame;
}

/*  next_frame within timeout_ms, which stays the dealer's. */
static inline Caveat__Wire__Frame *next_frame_within(zsock_t *dealer, int timeout_ms)
{
    zsock_set_rcvtimeo(dealer, timeout_ms);
    return next_frame(dealer);
}

/*  The next frame of body on dealer (others skipped), or NULL as
 *  next_frame. */
static inline Caveat__Wire__Frame *frame_of(zsock_t *dealer, Caveat__Wire__Frame__BodyCase body)
{
    Caveat__Wire__Frame *frame;
    while ((frame = next_frame(dealer)) && frame->body_case != body)
        caveat__wire__frame__free_unpacked(frame, NULL);
    return frame;
}

/*  The error code of the broker's answer, or 0 when it is no error. */
static inline uint32_t error_answer(zsock_t *dealer)
{
    Caveat__Wire__Frame *frame = next_frame(dealer);
    assert_non_null(frame);
    uint32_t code = frame->body_case == CAVEAT__WIRE__FRAME__BODY_ERROR ? frame->error->code : 0;
    caveat__wire__frame__free_unpacked(frame, NULL);
    return code;
}

/*  The broker's answer as "CODE reason" (malloc'd), "0" when it is no
 *  error: to compare two refusals word for word. */
static inline char *error_text_answer(zsock_t *dealer)
{
    Caveat__Wire__Frame *frame = next_frame(dealer);
    assert_non_null(frame);
    bool error = frame->body_case == CAVEAT__WIRE__FRAME__BODY_ERROR;
    char *text = error ? zsys_sprintf("%u %s", frame->error->code,
                                      frame->error->reason ? frame->error->reason : "")
                       : strdup("0");
    caveat__wire__frame__free_unpacked(frame, NULL);
    return text;
}

/*  A Hello of version for feed (NULL: the agency's own queue), with
 *  credit (-1: none given), asking for receipts or not. */
static inline void send_hello_asking(zsock_t *dealer, uint32_t version, const char *feed,
                                     int credit, bool receipts)
{
    Caveat__Wire__Hello hello = CAVEAT__WIRE__HELLO__INIT;
    hello.has_version = true;
    hello.version = version;
    hello.feed = (char *)feed;
    hello.has_credit = credit >= 0;
    hello.credit = credit >= 0 ? (uint32_t)credit : 0;
    hello.has_receipts = hello.receipts = receipts;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HELLO;
    frame.hello = &hello;
    send_frame(dealer, &frame);
}

static inline void send_hello_with(zsock_t *dealer, uint32_t version, const char *feed, int credit)
{
    send_hello_asking(dealer, version, feed, credit, false);
}

static inline void send_hello(zsock_t *dealer, uint32_t version)
{
    send_hello_with(dealer, version, NULL, -1);
}

/*  A publish-only session of agency on a dealer of the test's own: it
 *  sends frames libcaveat would not, as fast as it likes, and reads the
 *  answers when it likes. */
static inline zsock_t *raw_session(harness_t *h, const char *agency)
{
    zsock_t *dealer = raw_dealer(h, agency);
    send_hello_with(dealer, 1, NULL, 0);
    assert_int_equal(error_answer(dealer), 0); /* HelloAck */
    return dealer;
}

/*  A Publish of reports[0..n). */
static inline void send_publish(zsock_t *dealer, Caveat__Report **reports, size_t n)
{
    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    publish.n_reports = n;
    publish.reports = reports;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    send_frame(dealer, &frame);
}

/*  An AdminRequest of command with args[0..n_args) and the client's id
 *  for it (0: none, as on the wire). */
static inline void send_admin_request(zsock_t *dealer, const char *command, const char *const *args,
                                      size_t n_args, uint64_t id)
{
    Caveat__Wire__AdminRequest request = CAVEAT__WIRE__ADMIN_REQUEST__INIT;
    request.command = (char *)command;
    request.n_args = n_args;
    request.args = (char **)args;
    request.has_id = id != 0;
    request.id = id;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ADMIN_REQUEST;
    frame.admin_request = &request;
    send_frame(dealer, &frame);
}

/*  A DeliveryAck of every seq up to up_to, with new credit (-1: none). */
static inline void send_ack(zsock_t *dealer, uint64_t up_to, int credit)
{
    Caveat__Wire__DeliveryAck ack = CAVEAT__WIRE__DELIVERY_ACK__INIT;
    ack.has_up_to = true;
    ack.up_to = up_to;
    ack.has_credit = credit >= 0;
    ack.credit = credit >= 0 ? (uint32_t)credit : 0;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_DELIVERY_ACK;
    frame.delivery_ack = &ack;
    send_frame(dealer, &frame);
}

/*  A connection of agency that says Hello and never reads: one message
 *  and a 4 KB kernel buffer fill it. */
static inline zsock_t *deaf_subscriber(harness_t *h, const char *agency, int credit)
{
    zsock_t *dealer = raw_dealer_new(h, agency, NULL, 0, true);
    zsock_set_rcvhwm(dealer, 1);
    zsock_set_rcvbuf(dealer, 4096);
    raw_dealer_connect(h, dealer);
    send_hello_with(dealer, 1, NULL, credit);
    return dealer;
}

/*  A raw session of agency with credit, its Hello asking for receipts or
 *  not. */
static inline zsock_t *raw_subscriber(harness_t *h, const char *agency, int credit, bool receipts)
{
    zsock_t *dealer = raw_dealer(h, agency);
    send_hello_asking(dealer, 1, NULL, credit, receipts);
    return dealer;
}

/* ------------------------------------------------------------------------ */
/*  The store, underneath.                                                  */

/*  Runs one SQL statement on DIR/data/caveat.db from the test, as an
 *  operator's sqlite3 would (SQLite shares the file with a running broker). */
static inline void store_sql(harness_t *h, const char *sql)
{
    char path[600];
    snprintf(path, sizeof path, "%s/caveat.db", harness_path(h, "data"));
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000); /* the broker may be in a transaction */
    char *error = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &error);
    if (rc != SQLITE_OK)
        print_error("%s: %s\n", sql, error);
    sqlite3_free(error);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);
}

/*  The one integer a query on DIR/data/caveat.db gives (a count). */
static inline int64_t store_count(harness_t *h, const char *sql)
{
    char path[600];
    snprintf(path, sizeof path, "%s/caveat.db", harness_path(h, "data"));
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

#endif
