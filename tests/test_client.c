/*  libcaveat without the broker: certificate checks, and the client's side
 *  of the protocol against a scripted fake broker (a CURVE ROUTER in a
 *  zactor on a free loopback port). The fake runs no ZAP handler except in
 *  the refused-key test, so it admits any key: acceptable here, where what
 *  is under test is the client's framing, batching, buffering, dedupe and
 *  reconnect; the end-to-end tests run the real caveatd.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>
#include <ftw.h>

#include "caveat.h"
#include "cv_proto.h" /* internals: the schema, JSON, the wire protocol */

#define KEYS          CAVEAT_SOURCE_DIR "/examples/keys"
#define MAX_PUBLISHES 256

/* ------------------------------------------------------------------------ */
/*  Files */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char paths[4][256];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, sizeof paths[0], "%s/%s", tmpdir, name);
    return path;
}

static char *slurp(const char *path)
{
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, file);
    fclose(file);
    buf[n] = '\0';
    return buf;
}

static const char *write_file(const char *name, const char *text, mode_t mode)
{
    const char *path = tmp_path(name);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    fputs(text, file);
    fclose(file);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

/*  A copy of an example key file with the given mode (git keeps no modes). */
static const char *copy_key(const char *name, mode_t mode)
{
    char source[512];
    snprintf(source, sizeof source, "%s/%s", KEYS, name);
    char *text = slurp(source);
    const char *path = write_file(name, text, mode);
    free(text);
    return path;
}

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_client-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    zsys_init();
    zsys_set_logstream(stderr);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int remove_tmpdir(void **state)
{
    (void)state;
    return nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static cv_client_config_t config_for(const char *endpoint)
{
    return (cv_client_config_t){
        .endpoint = endpoint,
        .server_cert = copy_key("broker.cert", 0644),
        .client_cert = copy_key("hull-cc.cert_secret", 0600),
        .timeout_ms = 3000,
    };
}

/*  One version: the header's macros, the library's and the programs'. */
static void test_version(void **state)
{
    (void)state;
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", CAVEAT_VERSION_MAJOR, CAVEAT_VERSION_MINOR,
             CAVEAT_VERSION_PATCH);
    assert_string_equal(CAVEAT_VERSION_STRING, expected);
    assert_string_equal(caveat_version(), CAVEAT_VERSION_STRING);
    assert_string_equal(CAVEAT_VERSION, CAVEAT_VERSION_STRING); /* caveat --version's */
}

/* ------------------------------------------------------------------------ */
/*  Certificates */

static void check_refused(const cv_client_config_t *config, const char *expected)
{
    cv_error_t err = {0};
    assert_false(cv_client_check_certs(config, &err));
    if (!strstr(err.msg, expected))
        print_error("error '%s' lacks '%s'\n", err.msg, expected);
    assert_non_null(strstr(err.msg, expected));
    /* cv_client_new refuses the same way, before touching the network */
    cv_error_t err2 = {0};
    assert_null(cv_client_new(config, &err2));
    assert_string_equal(err.msg, err2.msg);
    assert_int_equal(err.code, CV_ERR_BAD_INPUT);
    assert_int_equal(err2.code, CV_ERR_BAD_INPUT);
}

static void test_cert_modes(void **state)
{
    (void)state;
    cv_client_config_t config = config_for("tcp://127.0.0.1:1");
    cv_error_t err = {0};
    assert_true(cv_client_check_certs(&config, &err));
    config.client_cert = copy_key("hull-cc.cert_secret", 0400);
    assert_true(cv_client_check_certs(&config, &err));
    config.client_cert = copy_key("hull-cc.cert_secret", 0640);
    check_refused(&config, "hull-cc.cert_secret: secret key file must give group and others no "
                           "access (0600 and 0400 do; it is 0640)");
    config.client_cert = copy_key("hull-cc.cert_secret", 0604);
    check_refused(&config, "(0600 and 0400 do; it is 0604)");
}

static void test_cert_missing_and_wrong(void **state)
{
    (void)state;
    cv_client_config_t config = config_for("tcp://127.0.0.1:1");
    config.client_cert = tmp_path("nowhere.cert_secret");
    check_refused(&config, "nowhere.cert_secret: No such file or directory");

    config = config_for("tcp://127.0.0.1:1");
    config.server_cert = tmp_path("nowhere.cert");
    check_refused(&config, "nowhere.cert: No such file or directory");

    /* the public half given where the secret one belongs */
    config = config_for("tcp://127.0.0.1:1");
    config.client_cert = copy_key("hull-cc.cert", 0600);
    check_refused(&config, "not a secret certificate");

    config = config_for("tcp://127.0.0.1:1");
    config.server_cert = write_file("report.json", "{\"id\": \"x\"}\n", 0644);
    check_refused(&config, "report.json: not a czmq certificate");

    config = config_for("tcp://127.0.0.1:1");
    config.server_cert = tmpdir;
    check_refused(&config, "not a regular file");
}

/*  Another agency's public key with this agency's secret one. */
static void test_cert_mismatch(void **state)
{
    (void)state;
    char *text = slurp(KEYS "/hull-cc.cert_secret");
    char *other = slurp(KEYS "/ne-ctu.cert");
    char *pub = strstr(text, "public-key = \""), *other_pub = strstr(other, "public-key = \"");
    assert_non_null(pub);
    assert_non_null(other_pub);
    memcpy(pub, other_pub, strlen("public-key = \"") + 40);
    cv_client_config_t config = config_for("tcp://127.0.0.1:1");
    config.client_cert = write_file("mixed.cert_secret", text, 0600);
    check_refused(&config, "the secret key does not match the public key");
    free(text);
    free(other);
}

static void test_bad_config(void **state)
{
    (void)state;
    cv_client_config_t config = config_for("tcp://127.0.0.1:1");
    config.credit = 10001;
    check_refused(&config, "at most 10000");
    config = config_for(NULL);
    check_refused(&config, "no broker endpoint");
    config = config_for("not-an-endpoint");
    cv_error_t err = {0};
    assert_null(cv_client_new(&config, &err));
    assert_non_null(strstr(err.msg, "not-an-endpoint"));
    assert_int_equal(err.code, CV_ERR_BAD_INPUT);
}

/*  A broker with another key than the one the client expects: the CURVE
 *  handshake fails in silence, so no HelloAck, and the error says what to
 *  check. */
static void test_no_answer(void **state)
{
    (void)state;
    zcert_t *impostor = zcert_new();
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_set_curve_server(router, 1);
    zcert_apply(impostor, router);
    int port = zsock_bind(router, "tcp://127.0.0.1:*");
    assert_true(port > 0);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    cv_client_config_t config = config_for(endpoint);
    config.timeout_ms = 300;
    cv_error_t err = {0};
    int64_t start = zclock_mono();
    assert_null(cv_client_new(&config, &err));
    assert_true(zclock_mono() - start < 2000);
    char expected[256];
    snprintf(expected, sizeof expected,
             "%s took the connection but no CURVE handshake completed within 0.3s (is the "
             "broker certificate this broker's?)",
             endpoint);
    assert_string_equal(err.msg, expected);
    assert_int_equal(err.code, CV_ERR_UNREACHABLE);
    zsock_destroy(&router);
    zcert_destroy(&impostor);
}

/*  Nothing listening: no answer at all, which is not a key problem. The
 *  port is held bound and not listening, so connections to it are refused
 *  and no other test's broker can take it meanwhile (a port merely free a
 *  moment ago was, once, taken by one). */
static void test_broker_down(void **state)
{
    (void)state;
    int held = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(held >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    assert_int_equal(bind(held, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(getsockname(held, (struct sockaddr *)&addr, &len), 0);
    int port = ntohs(addr.sin_port);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    cv_client_config_t config = config_for(endpoint);
    config.timeout_ms = 300;
    cv_error_t err = {0};
    assert_null(cv_client_new(&config, &err));
    char expected[256];
    snprintf(expected, sizeof expected, "no answer from %s within 0.3s (is caveatd running there?)",
             endpoint);
    assert_string_equal(err.msg, expected);
    assert_int_equal(err.code, CV_ERR_UNREACHABLE);
    assert_string_equal(cv_code_name(err.code), "UNREACHABLE");
    close(held);
}

/* ------------------------------------------------------------------------ */
/*  The fake broker */

typedef struct {
    /* script */
    uint32_t max_frame;
    bool deliver_before_ack;   /* a Deliver (seq 1) ahead of each PublishAck */
    bool restart_on_publish;   /* the first Publish: no ack, rebind instead */
    uint32_t error_on_publish; /* answer Publish with this Error code */
    int silent_publishes;      /* the first ones: no answer at all */
    bool silent_hello;         /* no HelloAck */
    bool not_ready_once;       /* the first Publish or Feedback: Error NOT_READY */
    int hello_acks;            /* HelloAcks for each Hello after the first (default 1) */
    int late_feedback_ms;      /* the first FeedbackAck comes this late */
    int late_admin_ms;         /* the first AdminReply comes this late */
    bool admin_without_id;     /* AdminReply without the request's id, as before ids */
    int late_approval_ms;      /* the first ApprovalAck comes this late */
    const char *allowed_dir;   /* run zauth admitting only these keys */
    /* what it saw (read after fake_sync) */
    int port;
    int hellos;
    uint32_t hello_credit;
    char hello_feed[64];
    int publishes;
    size_t publish_size[MAX_PUBLISHES];
    size_t publish_count[MAX_PUBLISHES];
    uint64_t publish_batch[MAX_PUBLISHES];
    char first_ids[MAX_PUBLISHES][32];
    uint64_t acked;
    int acks;
    int frames_before_hello;
    int feedbacks;
    int admins;
    int approvals;
} fake_t;

typedef struct {
    fake_t *fake;
    zsock_t *router;
    zframe_t *peer; /* the last client's routing id */
} fake_state_t;

static zsock_t *fake_bind(fake_t *fake, int port)
{
    zcert_t *cert = zcert_load(KEYS "/broker.cert_secret");
    assert_non_null(cert);
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_set_curve_server(router, 1);
    zcert_apply(cert, router);
    zcert_destroy(&cert);
    zsock_set_linger(router, 0);
    char endpoint[64];
    if (port)
        snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    else
        snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:*");
    int bound = -1;
    for (int tries = 0; bound < 0 && tries < 50; tries++) /* a rebind may wait for the port */
        if ((bound = zsock_bind(router, "%s", endpoint)) < 0)
            zclock_sleep(20);
    assert_true(bound > 0);
    fake->port = bound;
    return router;
}

static void fake_send(fake_state_t *s, const Caveat__Wire__Frame *frame)
{
    size_t size = caveat__wire__frame__get_packed_size(frame);
    zframe_t *body = zframe_new(NULL, size);
    caveat__wire__frame__pack(frame, zframe_data(body));
    zframe_t *peer = zframe_dup(s->peer);
    zframe_send(&peer, s->router, ZFRAME_MORE);
    zframe_send(&body, s->router, 0);
}

static void fake_hello_ack(fake_state_t *s)
{
    Caveat__Wire__HelloAck ack = CAVEAT__WIRE__HELLO_ACK__INIT;
    ack.has_version = true;
    ack.version = 1;
    ack.agency = "hull-cc";
    ack.protocol = "fake";
    ack.has_max_frame = true;
    ack.max_frame = s->fake->max_frame;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HELLO_ACK;
    frame.hello_ack = &ack;
    fake_send(s, &frame);
}

static void fake_error(fake_state_t *s, uint32_t code, const char *reason)
{
    Caveat__Wire__Error error = CAVEAT__WIRE__ERROR__INIT;
    error.has_code = true;
    error.code = code;
    error.reason = (char *)reason;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ERROR;
    frame.error = &error;
    fake_send(s, &frame);
}

/*  Deliveries first..last, each with report id "d-SEQ". */
static void fake_deliver(fake_state_t *s, uint64_t first, uint64_t last)
{
    size_t n = (size_t)(last - first + 1);
    Caveat__Wire__Delivery *items = calloc(n, sizeof *items);
    Caveat__Wire__Delivery **list = calloc(n, sizeof *list);
    Caveat__Report *reports = calloc(n, sizeof *reports);
    char(*ids)[32] = calloc(n, sizeof *ids);
    static char *rules[] = {"rule-a", "screen-b"};
    for (size_t i = 0; i < n; i++) {
        caveat__wire__delivery__init(&items[i]);
        caveat__report__init(&reports[i]);
        snprintf(ids[i], sizeof ids[i], "d-%" PRIu64, first + i);
        reports[i].id = ids[i];
        items[i].has_seq = true;
        items[i].seq = first + i;
        items[i].report_id = ids[i];
        items[i].n_rules = 2;
        items[i].rules = rules;
        items[i].report = &reports[i];
        list[i] = &items[i];
    }
    Caveat__Wire__Deliver deliver = CAVEAT__WIRE__DELIVER__INIT;
    deliver.n_deliveries = n;
    deliver.deliveries = list;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_DELIVER;
    frame.deliver = &deliver;
    fake_send(s, &frame);
    free(items);
    free(list);
    free(reports);
    free(ids);
}

/*  Accepts every report, except those whose id starts "bad". */
static void fake_publish_ack(fake_state_t *s, const Caveat__Wire__Publish *publish)
{
    size_t n = publish->n_reports;
    Caveat__Wire__PublishResult *items = calloc(n, sizeof *items);
    Caveat__Wire__PublishResult **list = calloc(n, sizeof *list);
    for (size_t i = 0; i < n; i++) {
        caveat__wire__publish_result__init(&items[i]);
        items[i].report_id = publish->reports[i]->id;
        items[i].has_status = true;
        bool bad = strncmp(publish->reports[i]->id, "bad", 3) == 0;
        items[i].status = bad ? CAVEAT__WIRE__STATUS__REFUSED_INVALID : CAVEAT__WIRE__STATUS__OK;
        items[i].reason = bad ? "unknown category" : NULL;
        list[i] = &items[i];
    }
    Caveat__Wire__PublishAck ack = CAVEAT__WIRE__PUBLISH_ACK__INIT;
    ack.has_batch = true;
    ack.batch = publish->batch;
    ack.n_results = n;
    ack.results = list;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK;
    frame.publish_ack = &ack;
    fake_send(s, &frame);
    free(items);
    free(list);
}

static void fake_admin(fake_state_t *s, const Caveat__Wire__AdminRequest *request)
{
    const char *command = request->command;
    if (s->fake->admins++ == 0)
        zclock_sleep(s->fake->late_admin_ms);
    Caveat__Wire__AdminReply reply = CAVEAT__WIRE__ADMIN_REPLY__INIT;
    reply.has_id = request->has_id && !s->fake->admin_without_id;
    reply.id = request->id;
    reply.has_ok = true;
    reply.ok = strcmp(command, "stats") == 0;
    reply.text = reply.ok ? "{\"sessions\":1}" : "policy.yaml:3:1: error: bad";
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ADMIN_REPLY;
    frame.admin_reply = &reply;
    fake_send(s, &frame);
}

static void fake_record_publish(fake_t *fake, const Caveat__Wire__Publish *publish, size_t size)
{
    if (fake->publishes >= MAX_PUBLISHES)
        return;
    int i = fake->publishes++;
    fake->publish_size[i] = size;
    fake->publish_count[i] = publish->n_reports;
    fake->publish_batch[i] = publish->batch;
    snprintf(fake->first_ids[i], sizeof fake->first_ids[i], "%s",
             publish->n_reports ? publish->reports[0]->id : "");
}

/*  As a broker that dropped the session answers a request: once. */
static bool fake_not_ready(fake_state_t *s)
{
    if (!s->fake->not_ready_once)
        return false;
    s->fake->not_ready_once = false;
    fake_error(s, CAVEAT__WIRE__ERROR_CODE__NOT_READY, "send Hello first");
    return true;
}

static void fake_on_feedback(fake_state_t *s, const Caveat__Wire__Feedback *feedback)
{
    if (s->fake->feedbacks++ == 0)
        zclock_sleep(s->fake->late_feedback_ms);
    if (fake_not_ready(s))
        return;
    bool bad = strncmp(feedback->report_id, "bad", 3) == 0;
    Caveat__Wire__FeedbackAck ack = CAVEAT__WIRE__FEEDBACK_ACK__INIT;
    ack.report_id = feedback->report_id;
    ack.has_status = true;
    ack.status = bad ? CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE : CAVEAT__WIRE__STATUS__OK;
    ack.reason = bad ? "the store could not commit; retry" : NULL;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK;
    frame.feedback_ack = &ack;
    fake_send(s, &frame);
}

/*  Releases the report to the agency named, and says so. */
static void fake_on_approval(fake_state_t *s, const Caveat__Wire__Approval *approval)
{
    if (s->fake->approvals++ == 0)
        zclock_sleep(s->fake->late_approval_ms);
    Caveat__Wire__ApprovalAck ack = CAVEAT__WIRE__APPROVAL_ACK__INIT;
    ack.report_id = approval->report_id;
    ack.to = approval->to;
    ack.has_status = ack.has_released = true;
    ack.status = CAVEAT__WIRE__STATUS__OK;
    ack.released = 1;
    ack.n_recipients = 1;
    char *to = approval->to;
    ack.recipients = &to;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_APPROVAL_ACK;
    frame.approval_ack = &ack;
    fake_send(s, &frame);
}

static void fake_on_publish(fake_state_t *s, const Caveat__Wire__Publish *publish, size_t size)
{
    fake_t *fake = s->fake;
    fake_record_publish(fake, publish, size);
    if (fake->publishes <= fake->silent_publishes || fake_not_ready(s))
        return;
    if (fake->restart_on_publish && fake->publishes == 1) {
        zsock_destroy(&s->router); /* the connection drops; the client reconnects */
        zclock_sleep(100);
        s->router = fake_bind(fake, fake->port);
        return;
    }
    if (fake->error_on_publish) {
        fake_error(s, fake->error_on_publish, "key removed from the policy");
        return;
    }
    if (fake->deliver_before_ack)
        fake_deliver(s, 1, 1);
    fake_publish_ack(s, publish);
}

static void fake_on_frame(fake_state_t *s, const Caveat__Wire__Frame *frame, size_t size)
{
    fake_t *fake = s->fake;
    if (frame->body_case != CAVEAT__WIRE__FRAME__BODY_HELLO && fake->hellos == 0)
        fake->frames_before_hello++;
    switch (frame->body_case) {
    case CAVEAT__WIRE__FRAME__BODY_HELLO:
        fake->hellos++;
        fake->hello_credit = frame->hello->credit;
        snprintf(fake->hello_feed, sizeof fake->hello_feed, "%s",
                 frame->hello->feed ? frame->hello->feed : "");
        /* more than one: as the answers to Hellos the client sent while
           one was unanswered (a NOT_READY's and a reconnect's) */
        for (int i = 0; !fake->silent_hello &&
                        i < (fake->hellos > 1 && fake->hello_acks ? fake->hello_acks : 1);
             i++)
            fake_hello_ack(s);
        break;
    case CAVEAT__WIRE__FRAME__BODY_FEEDBACK:
        fake_on_feedback(s, frame->feedback);
        break;
    case CAVEAT__WIRE__FRAME__BODY_PUBLISH:
        fake_on_publish(s, frame->publish, size);
        break;
    case CAVEAT__WIRE__FRAME__BODY_DELIVERY_ACK:
        fake->acked = frame->delivery_ack->up_to;
        fake->acks++;
        break;
    case CAVEAT__WIRE__FRAME__BODY_ADMIN_REQUEST:
        fake_admin(s, frame->admin_request);
        break;
    case CAVEAT__WIRE__FRAME__BODY_APPROVAL:
        fake_on_approval(s, frame->approval);
        break;
    default:
        break;
    }
}

static void fake_on_message(fake_state_t *s)
{
    zmsg_t *msg = zmsg_recv(s->router);
    if (!msg || zmsg_size(msg) != 2) {
        zmsg_destroy(&msg);
        return;
    }
    zframe_destroy(&s->peer);
    s->peer = zmsg_pop(msg);
    zframe_t *body = zmsg_pop(msg);
    Caveat__Wire__Frame *frame =
        caveat__wire__frame__unpack(NULL, zframe_size(body), zframe_data(body));
    if (frame)
        fake_on_frame(s, frame, zframe_size(body));
    caveat__wire__frame__free_unpacked(frame, NULL);
    zframe_destroy(&body);
    zmsg_destroy(&msg);
}

/*  Pipe commands: "SYNC" (answers "OK"), "DELIVER first last". */
static bool fake_on_command(fake_state_t *s, zsock_t *pipe)
{
    char *command = NULL, *a = NULL, *b = NULL;
    zstr_recvx(pipe, &command, &a, &b, NULL);
    bool go_on = command && strcmp(command, "$TERM") != 0;
    if (command && strcmp(command, "DELIVER") == 0 && a && b)
        fake_deliver(s, strtoull(a, NULL, 10), strtoull(b, NULL, 10));
    if (go_on)
        zstr_send(pipe, "OK");
    zstr_free(&command);
    zstr_free(&a);
    zstr_free(&b);
    return go_on;
}

static void fake_actor(zsock_t *pipe, void *args)
{
    fake_state_t s = {.fake = args};
    zactor_t *auth = NULL;
    if (s.fake->allowed_dir) { /* ZAP first: then no key gets in unchecked */
        auth = zactor_new(zauth, NULL);
        zstr_sendx(auth, "CURVE", s.fake->allowed_dir, NULL);
        zsock_wait(auth);
    }
    s.router = fake_bind(s.fake, 0);
    zsock_signal(pipe, 0);
    bool running = true;
    while (running) {
        zpoller_t *poller = zpoller_new(pipe, s.router, NULL);
        void *which = zpoller_wait(poller, -1);
        zpoller_destroy(&poller);
        if (which == pipe)
            running = fake_on_command(&s, pipe);
        else if (which == s.router)
            fake_on_message(&s);
        else
            running = false;
    }
    zframe_destroy(&s.peer);
    zsock_destroy(&s.router);
    zactor_destroy(&auth);
}

static zactor_t *fake_start(fake_t *fake)
{
    if (!fake->max_frame)
        fake->max_frame = 1024 * 1024;
    zactor_t *actor = zactor_new(fake_actor, fake);
    assert_non_null(actor);
    return actor;
}

/*  A round trip through the actor: everything it did before is visible. */
static void fake_command(zactor_t *actor, const char *command, const char *a, const char *b)
{
    zstr_sendx(actor, command, a ? a : "", b ? b : "", NULL);
    char *reply = zstr_recv(actor);
    assert_non_null(reply);
    zstr_free(&reply);
}

/*  The states a client went through, in order. */
typedef struct {
    cv_client_state_t seen[8];
    int n;
} states_t;

static void record_state(cv_client_t *client, cv_client_state_t state, void *arg)
{
    (void)client;
    states_t *states = arg;
    if (states->n < 8)
        states->seen[states->n++] = state;
}

static cv_client_t *fake_client_told(fake_t *fake, const char *feed, states_t *states)
{
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", fake->port);
    cv_client_config_t config = config_for(endpoint);
    config.feed = feed;
    config.on_state = states ? record_state : NULL;
    config.on_state_arg = states;
    cv_error_t err = {0};
    cv_client_t *client = cv_client_new(&config, &err);
    if (!client)
        print_error("cv_client_new: %s\n", err.msg);
    assert_non_null(client);
    return client;
}

static cv_client_t *fake_client(fake_t *fake, const char *feed)
{
    return fake_client_told(fake, feed, NULL);
}

/* ------------------------------------------------------------------------ */
/*  Reports */

static Caveat__Report *new_report(const char *id, size_t narrative_bytes)
{
    Caveat__Report *report = malloc(sizeof *report);
    caveat__report__init(report);
    report->id = strdup(id);
    report->category = strdup("feedback");
    report->narrative = malloc(narrative_bytes + 1);
    memset(report->narrative, 'n', narrative_bytes);
    report->narrative[narrative_bytes] = '\0';
    return report;
}

static void free_reports(Caveat__Report **reports, size_t n)
{
    for (size_t i = 0; i < n; i++)
        caveat__report__free_unpacked(reports[i], NULL);
}

static bool is_random_id(const char *id)
{
    return strlen(id) == 26 && strncmp(id, "r-", 2) == 0 &&
           strspn(id + 2, "0123456789abcdef") == 24;
}

/* ------------------------------------------------------------------------ */
/*  Protocol tests */

static void test_hello(void **state)
{
    (void)state;
    fake_t fake = {0};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, "ctio");
    assert_string_equal(cv_client_agency(client), "hull-cc");
    assert_int_equal(cv_client_max_frame(client), 1024 * 1024);
    fake_command(actor, "SYNC", NULL, NULL);
    assert_int_equal(fake.hellos, 1);
    assert_int_equal(fake.hello_credit, 100);
    assert_string_equal(fake.hello_feed, "ctio");
    cv_client_destroy(&client);
    assert_null(client);
    zactor_destroy(&actor);
}

/*  Batches fit max_frame and are full; a report too large alone is refused
 *  locally and never sent; empty ids get random ids before sending. */
static void test_publish_batches(void **state)
{
    (void)state;
    fake_t fake = {.max_frame = 4096};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    enum { N = 40, BIG = 17 };
    Caveat__Report *reports[N];
    for (size_t i = 0; i < N; i++)
        reports[i] = new_report(i == 3 ? "bad-3" : i % 2 ? "" : "given", i == BIG ? 5000 : 300 + i);
    cv_publish_result_t results[N];
    cv_error_t err = {0};
    int refused =
        cv_client_publish(client, (const Caveat__Report *const *)reports, N, results, 5000, &err);
    assert_int_equal(refused, 2); /* "bad-3" by the broker, BIG locally */
    assert_int_equal(results[BIG].status, CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    assert_non_null(strstr(results[BIG].reason, "too large"));
    assert_int_equal(results[3].status, CAVEAT__WIRE__STATUS__REFUSED_INVALID);
    assert_string_equal(results[3].reason, "unknown category");
    for (size_t i = 0; i < N; i++) {
        if (i % 2 && i != 3) { /* given an id in the results; the report is left as it was */
            assert_string_equal(reports[i]->id, "");
            assert_true(is_random_id(results[i].report_id));
        } else {
            assert_string_equal(results[i].report_id, reports[i]->id);
        }
        if (i != 3 && i != BIG)
            assert_int_equal(results[i].status, CAVEAT__WIRE__STATUS__OK);
    }
    fake_command(actor, "SYNC", NULL, NULL);
    size_t sent = 0;
    for (int b = 0; b < fake.publishes; b++) {
        assert_true(fake.publish_size[b] <= 4096);
        sent += fake.publish_count[b];
        /* full: the next batch's first report would not have fitted */
        if (b + 1 < fake.publishes)
            assert_true(fake.publish_size[b] > 4096 - 400);
    }
    assert_int_equal(sent, N - 1);
    assert_true(fake.publishes >= 4);
    cv_publish_results_clear(results, N);
    assert_null(results[0].report_id);
    free_reports(reports, N);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  A Deliver that arrives while a publish waits is kept for receive. */
static void test_deliveries_kept_while_publishing(void **state)
{
    (void)state;
    fake_t fake = {.deliver_before_ack = true};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    Caveat__Report *report = new_report("", 10);
    cv_publish_result_t result;
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish_one(client, report, &result, 5000, &err), 0);
    assert_true(is_random_id(result.report_id));
    /* again with the id it was given, so the broker can tell a retry from a
       new report */
    free(report->id);
    report->id = strdup(result.report_id);
    cv_publish_results_clear(&result, 1);
    assert_int_equal(cv_client_publish_one(client, report, &result, 5000, &err), 0);
    assert_string_equal(result.report_id, report->id);
    cv_publish_results_clear(&result, 1);
    const cv_delivery_t *d = cv_client_receive(client, 0, &err);
    assert_non_null(d);
    assert_int_equal(d->seq, 1);
    assert_string_equal(d->report_id, "d-1");
    /* the second publish's Deliver repeats seq 1: dropped */
    assert_null(cv_client_receive(client, 100, &err));
    assert_string_equal(err.msg, "");
    free_reports(&report, 1);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  The reports are the caller's and only read: one on the stack, with
 *  string literals and an empty id, goes out with a new id that only the
 *  results carry. */
static void test_reports_only_read(void **state)
{
    (void)state;
    fake_t fake = {0};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    Caveat__Report report = CAVEAT__REPORT__INIT;
    char *empty = "";
    report.id = empty;
    report.category = "feedback";
    Caveat__Report before = report;
    cv_publish_result_t result;
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish_one(client, &report, &result, 5000, &err), 0);
    assert_memory_equal(&report, &before, sizeof report);
    assert_ptr_equal(report.id, empty);
    assert_true(is_random_id(result.report_id));
    cv_publish_results_clear(&result, 1);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  No PublishAck in time is CV_ERR_TIMEOUT, with the id the report was
 *  given in its pending result: publishing it again with that id is the
 *  same report to the broker. */
static void test_publish_timeout_then_retry(void **state)
{
    (void)state;
    fake_t fake = {.silent_publishes = 1};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    Caveat__Report *report = new_report("", 10);
    cv_publish_result_t result;
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish_one(client, report, &result, 300, &err), -1);
    assert_int_equal(err.code, CV_ERR_TIMEOUT);
    assert_non_null(strstr(err.msg, "no PublishAck from"));
    assert_int_equal(result.status, CV_PUBLISH_PENDING);
    assert_true(is_random_id(result.report_id));
    free(report->id);
    report->id = strdup(result.report_id);
    cv_publish_results_clear(&result, 1);
    assert_int_equal(cv_client_publish_one(client, report, &result, 5000, &err), 0);
    assert_string_equal(result.report_id, report->id);
    cv_publish_results_clear(&result, 1);
    fake_command(actor, "SYNC", NULL, NULL);
    assert_int_equal(fake.publishes, 2);
    assert_string_equal(fake.first_ids[0], fake.first_ids[1]);
    free_reports(&report, 1);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  Pipelined publishes: an ack goes to the publish whose batch it names,
 *  not to the oldest waiting; one that never comes times out its own
 *  publish alone. */
static void test_pipelined_ack_goes_to_its_publish(void **state)
{
    (void)state;
    fake_t fake = {.silent_publishes = 1};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    Caveat__Report *first = new_report("first", 10), *second = new_report("second", 10);
    cv_publish_result_t a, b;
    cv_error_t err = {0};
    int64_t ta =
        cv_client_publish_start(client, (const Caveat__Report *const *)&first, 1, &a, &err);
    int64_t tb =
        cv_client_publish_start(client, (const Caveat__Report *const *)&second, 1, &b, &err);
    assert_true(ta > 0 && tb > ta);
    assert_int_equal(cv_client_publish_finish(client, tb, 5000, &err), 0);
    assert_string_equal(b.report_id, "second");
    assert_false(cv_client_publish_done(client, ta));
    assert_int_equal(cv_client_publish_finish(client, ta, 300, &err), -1);
    assert_int_equal(err.code, CV_ERR_TIMEOUT);
    assert_int_equal(a.status, CV_PUBLISH_PENDING);
    assert_string_equal(a.report_id, "first");
    cv_publish_results_clear(&a, 1);
    cv_publish_results_clear(&b, 1);
    free_reports(&first, 1);
    free_reports(&second, 1);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  A broker that accepts the key but does not answer Hello: a timeout,
 *  not an unreachable broker. */
static void test_no_hello_ack(void **state)
{
    (void)state;
    fake_t fake = {.silent_hello = true};
    zactor_t *actor = fake_start(&fake);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", fake.port);
    cv_client_config_t config = config_for(endpoint);
    config.timeout_ms = 300;
    cv_error_t err = {0};
    assert_null(cv_client_new(&config, &err));
    char expected[128];
    snprintf(expected, sizeof expected, "no HelloAck from %s within 0.3s", endpoint);
    assert_string_equal(err.msg, expected);
    assert_int_equal(err.code, CV_ERR_TIMEOUT);
    zactor_destroy(&actor);
}

/*  An event loop polls cv_client_fd, then drains with timeout 0, which
 *  never waits. */
static void test_poll_descriptor(void **state)
{
    (void)state;
    fake_t fake = {0};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    cv_error_t err = {0};
    int64_t start = zclock_mono();
    assert_null(cv_client_receive(client, 0, &err)); /* drained: the edge is reset */
    assert_int_equal(err.code, CV_ERR_TIMEOUT);
    assert_true(zclock_mono() - start < 50);
    struct pollfd item = {.fd = cv_client_fd(client), .events = POLLIN};
    assert_true(item.fd >= 0);
    fake_command(actor, "DELIVER", "1", "2");
    int seen = 0;
    for (int round = 0; round < 10 && seen < 2; round++) {
        assert_true(poll(&item, 1, 2000) == 1);
        const cv_delivery_t *d;
        while ((d = cv_client_receive(client, 0, &err)))
            assert_int_equal(d->seq, ++seen);
        assert_int_equal(err.code, CV_ERR_TIMEOUT);
    }
    assert_int_equal(seen, 2);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  Resent deliveries (seq not above the highest returned) are dropped;
 *  acks are cumulative and never above what was received. */
static void test_receive_dedupe_and_ack(void **state)
{
    (void)state;
    fake_t fake = {0};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    fake_command(actor, "DELIVER", "1", "2");
    fake_command(actor, "DELIVER", "1", "3");
    uint64_t seen[4] = {0};
    cv_error_t err = {0};
    for (int i = 0; i < 3; i++) {
        const cv_delivery_t *d = cv_client_receive(client, 2000, &err);
        assert_non_null(d);
        seen[i] = d->seq;
        assert_int_equal(d->n_rules, 2);
    }
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 2);
    assert_int_equal(seen[2], 3);
    int64_t start = zclock_mono();
    assert_null(cv_client_receive(client, 200, &err));
    assert_string_equal(err.msg, "");
    assert_int_equal(err.code, CV_ERR_TIMEOUT);
    assert_true(zclock_mono() - start >= 190);
    assert_false(cv_client_ack(client, 4, &err));
    assert_non_null(strstr(err.msg, "highest received is 3"));
    assert_int_equal(err.code, CV_ERR_BAD_INPUT);
    assert_true(cv_client_ack(client, 3, &err));
    fake_command(actor, "SYNC", NULL, NULL);
    zclock_sleep(50); /* the ack crosses TCP */
    fake_command(actor, "SYNC", NULL, NULL);
    assert_int_equal(fake.acked, 3);
    /* the broker lost that ack (a reconnect) and resends 2 and 3: both are
       dropped, and acknowledged again up to the highest resent */
    fake_command(actor, "DELIVER", "2", "3");
    assert_null(cv_client_receive(client, 200, &err));
    fake_command(actor, "SYNC", NULL, NULL);
    zclock_sleep(50);
    fake_command(actor, "SYNC", NULL, NULL);
    assert_int_equal(fake.acks, 2);
    assert_int_equal(fake.acked, 3);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  A resend of a delivery returned but not yet acknowledged is dropped and
 *  not acknowledged: that stays the application's call. */
static void test_no_ack_for_the_application(void **state)
{
    (void)state;
    fake_t fake = {0};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    fake_command(actor, "DELIVER", "1", "1");
    cv_error_t err = {0};
    const cv_delivery_t *d = cv_client_receive(client, 2000, &err);
    assert_non_null(d);
    fake_command(actor, "DELIVER", "1", "1");
    assert_null(cv_client_receive(client, 200, &err));
    fake_command(actor, "SYNC", NULL, NULL);
    assert_int_equal(fake.acks, 0);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  Error REVOKED ends the publish and the session. */
static void test_revoked(void **state)
{
    (void)state;
    fake_t fake = {.error_on_publish = 6};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    Caveat__Report *report = new_report("a", 10);
    cv_publish_result_t result;
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish_one(client, report, &result, 5000, &err), -1);
    assert_string_equal(err.msg, "broker: REVOKED: key removed from the policy");
    assert_int_equal(err.code, CV_ERR_BROKER);
    assert_int_equal(err.broker_code, 6);
    assert_int_equal(result.status, CV_PUBLISH_PENDING);
    cv_publish_results_clear(&result, 1);
    assert_null(cv_client_receive(client, 100, &err));
    assert_string_equal(err.msg, "broker: REVOKED: key removed from the policy");
    assert_int_equal(err.code, CV_ERR_CLOSED);
    assert_false(cv_client_ack(client, 0, &err));
    assert_int_equal(err.code, CV_ERR_CLOSED);
    free_reports(&report, 1);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

static void test_admin(void **state)
{
    (void)state;
    fake_t fake = {0};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    bool ok = false;
    cv_error_t err = {0};
    char *text = cv_client_admin(client, "stats", &ok, 2000, &err);
    assert_non_null(text);
    assert_true(ok);
    assert_string_equal(text, "{\"sessions\":1}");
    free(text);
    text = cv_client_admin(client, "reload", &ok, 2000, &err);
    assert_non_null(text);
    assert_false(ok);
    free(text);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  The broker goes away while a batch waits for its ack: the client opens
 *  the session again on the new connection and resends the same batch. */
static void test_reconnect_resends(void **state)
{
    (void)state;
    fake_t fake = {.restart_on_publish = true};
    zactor_t *actor = fake_start(&fake);
    states_t states = {0};
    cv_client_t *client = fake_client_told(&fake, NULL, &states);
    Caveat__Report *reports[2] = {new_report("", 10), new_report("k", 10)};
    cv_publish_result_t results[2];
    cv_error_t err = {0};
    int refused =
        cv_client_publish(client, (const Caveat__Report *const *)reports, 2, results, 8000, &err);
    if (refused < 0)
        print_error("publish: %s\n", err.msg);
    assert_int_equal(refused, 0);
    fake_command(actor, "SYNC", NULL, NULL);
    assert_int_equal(fake.hellos, 2);
    assert_int_equal(fake.publishes, 2);
    assert_int_equal(fake.publish_batch[0], fake.publish_batch[1]);
    assert_string_equal(fake.first_ids[0], fake.first_ids[1]);
    assert_string_equal(fake.first_ids[0], results[0].report_id);
    assert_string_equal(reports[0]->id, "");
    /* the application heard of it */
    assert_int_equal(states.n, 3);
    assert_int_equal(states.seen[0], CV_STATE_CONNECTED);
    assert_int_equal(states.seen[1], CV_STATE_DISCONNECTED);
    assert_int_equal(states.seen[2], CV_STATE_CONNECTED);
    cv_publish_results_clear(results, 2);
    free_reports(reports, 2);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  A request the broker answered NOT_READY goes again once the new
 *  session is open, and once only: a HelloAck of a Hello the request went
 *  after (two Hellos can be unanswered at once) does not send it again,
 *  since the broker would store a feedback twice. */
static void test_not_ready_resends_once(void **state)
{
    (void)state;
    fake_t fake = {.not_ready_once = true, .hello_acks = 2};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    cv_error_t err = {0};
    bool stored = cv_client_feedback(client, "r-1", NULL, "seen", NULL, 5000, &err);
    if (!stored)
        print_error("feedback: %s\n", err.msg);
    assert_true(stored);
    assert_true(cv_client_feedback(client, "r-2", NULL, "seen", NULL, 5000, &err));
    fake_command(actor, "SYNC", NULL, NULL);
    assert_int_equal(fake.hellos, 2);

    fake.not_ready_once = true; /* the same for a publish's batch */
    Caveat__Report *report = new_report("k", 10);
    cv_publish_result_t result;
    assert_int_equal(
        cv_client_publish(client, (const Caveat__Report *const *)&report, 1, &result, 5000, &err),
        0);
    fake_command(actor, "SYNC", NULL, NULL);
    assert_int_equal(fake.hellos, 3);
    assert_int_equal(fake.publishes, 2);
    /* r-1 twice (NOT_READY, then to the new session) and r-2, all before
       the publish on the same connection */
    assert_int_equal(fake.feedbacks, 3);
    cv_publish_results_clear(&result, 1);
    free_reports(&report, 1);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  A FeedbackAck that comes after its call gave up is not the next
 *  call's answer: that one waits for the ack naming its own report. */
static void test_a_late_answer_is_not_the_next_ones(void **state)
{
    (void)state;
    fake_t fake = {.late_feedback_ms = 300};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    cv_error_t err = {0};
    assert_false(cv_client_feedback(client, "r-1", NULL, "seen", NULL, 50, &err));
    assert_int_equal(err.code, CV_ERR_TIMEOUT);
    err = (cv_error_t){0};
    assert_false(cv_client_feedback(client, "bad-2", NULL, "seen", NULL, 5000, &err));
    assert_int_equal(err.code, CV_ERR_FAILED);
    assert_non_null(strstr(err.msg, "could not commit"));
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  The same for an AdminReply, matched by the id its request carried: a
 *  late "stats" reply is not the answer to the "reload" asked next. A
 *  broker that sends no id back is taken at its word, as before. */
static void test_a_late_admin_reply_is_not_the_next_ones(void **state)
{
    (void)state;
    for (int without_id = 0; without_id < 2; without_id++) {
        fake_t fake = {.late_admin_ms = 300, .admin_without_id = without_id};
        zactor_t *actor = fake_start(&fake);
        cv_client_t *client = fake_client(&fake, NULL);
        bool ok = false;
        cv_error_t err = {0};
        assert_null(cv_client_admin(client, "stats", &ok, 50, &err));
        assert_int_equal(err.code, CV_ERR_TIMEOUT);
        err = (cv_error_t){0};
        char *text = cv_client_admin(client, "reload", &ok, 5000, &err);
        assert_non_null(text);
        if (without_id) { /* the late reply is all it can go by */
            assert_true(ok);
            assert_string_equal(text, "{\"sessions\":1}");
        } else {
            assert_false(ok);
            assert_non_null(strstr(text, "error: bad"));
        }
        free(text);
        cv_client_destroy(&client);
        zactor_destroy(&actor);
    }
}

/*  An ApprovalAck names the report and the agency approved: a late ack of
 *  one agency's approval is not the answer to another's for the same
 *  report. */
static void test_a_late_approval_ack_is_not_the_next_ones(void **state)
{
    (void)state;
    fake_t fake = {.late_approval_ms = 300};
    zactor_t *actor = fake_start(&fake);
    cv_client_t *client = fake_client(&fake, NULL);
    cv_approval_result_t result;
    cv_error_t err = {0};
    assert_int_equal(cv_client_approve(client, "r-1", "hull-college", &result, 50, &err), -1);
    assert_int_equal(err.code, CV_ERR_TIMEOUT);
    err = (cv_error_t){0};
    assert_int_equal(cv_client_approve(client, "r-1", "hull-cc", &result, 5000, &err), 0);
    assert_int_equal(result.n_recipients, 1);
    assert_string_equal(result.recipients[0], "hull-cc");
    cv_approval_result_clear(&result);
    cv_client_destroy(&client);
    zactor_destroy(&actor);
}

/*  With a ZAP handler that does not list the key, the handshake fails and
 *  the client says so at once instead of waiting out its timeout. Again
 *  and again: a refusal that comes in before the Hello is sent is told as
 *  a refusal too (libzmq drops the refused connection's pipe, and a Hello
 *  sent then failed as a full send queue). */
static void test_refused_key(void **state)
{
    (void)state;
    const char *dir = tmp_path("allowed");
    assert_int_equal(mkdir(dir, 0700), 0);
    char allowed[256];
    snprintf(allowed, sizeof allowed, "%s/ne-ctu.cert", dir);
    char *text = slurp(KEYS "/ne-ctu.cert");
    FILE *file = fopen(allowed, "wb");
    fputs(text, file);
    fclose(file);
    free(text);
    fake_t fake = {.allowed_dir = dir};
    zactor_t *actor = fake_start(&fake);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", fake.port);
    cv_client_config_t config = config_for(endpoint);
    config.timeout_ms = 5000;
    for (int attempt = 0; attempt < 20; attempt++) {
        states_t states = {0};
        config.on_state = record_state;
        config.on_state_arg = &states;
        cv_error_t err = {0};
        int64_t start = zclock_mono();
        assert_null(cv_client_new(&config, &err));
        assert_true(zclock_mono() - start < 4000);
        assert_non_null(strstr(err.msg, "refused this agency's key"));
        assert_int_equal(err.code, CV_ERR_REFUSED_KEY);
        assert_int_equal(states.n, 1);
        assert_int_equal(states.seen[0], CV_STATE_REFUSED);
    }
    fake_command(actor, "SYNC", NULL, NULL);
    assert_int_equal(fake.hellos, 0);
    zactor_destroy(&actor);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_cert_modes),
        cmocka_unit_test(test_cert_missing_and_wrong),
        cmocka_unit_test(test_cert_mismatch),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_no_answer),
        cmocka_unit_test(test_broker_down),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_publish_batches),
        cmocka_unit_test(test_deliveries_kept_while_publishing),
        cmocka_unit_test(test_reports_only_read),
        cmocka_unit_test(test_publish_timeout_then_retry),
        cmocka_unit_test(test_pipelined_ack_goes_to_its_publish),
        cmocka_unit_test(test_no_hello_ack),
        cmocka_unit_test(test_poll_descriptor),
        cmocka_unit_test(test_receive_dedupe_and_ack),
        cmocka_unit_test(test_no_ack_for_the_application),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_admin),
        cmocka_unit_test(test_reconnect_resends),
        cmocka_unit_test(test_not_ready_resends_once),
        cmocka_unit_test(test_a_late_answer_is_not_the_next_ones),
        cmocka_unit_test(test_a_late_admin_reply_is_not_the_next_ones),
        cmocka_unit_test(test_a_late_approval_ack_is_not_the_next_ones),
        cmocka_unit_test(test_refused_key),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
