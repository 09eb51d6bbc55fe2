/*  caveat subscribe: prints each delivery as one JSON line
 *  {"delivery": {"report_id", "seq", "rules", "feed"}, "report": {...}},
 *  and feedback on the agency's own reports as
 *  {"delivery": {...}, "report": null, "feedback": {"report_id", "from",
 *  "value", "text", "time"}},
 *  and acknowledges it only once the line is written and flushed, so a
 *  delivery lost by a crash is delivered again, never dropped.
 *
 *  With --receipts DIR it asks the broker for a receipt of each delivery
 *  and writes each, once it has checked that its leaf records that very
 *  delivery (this agency and queue, its seq and report, the SHA-256 of the
 *  view received) and that its proof is of that leaf (receipt_check.h),
 *  and with --audit-key that the proof holds under the log's key, as
 *  DIR/ID.SEQ.tlog-proof (DIR: a directory of this user's that no one
 *  else may write); with --count it waits for the receipts of those
 *  deliveries before it ends. */
#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "receipt_check.h"

static const char usage[] = "usage: caveat subscribe --broker EP --server-key BROKER.cert "
                            "--cert AGENCY.cert_secret [--feed NAME] [--count N] [--timeout S] "
                            "[--receipts DIR [--audit-key VERIFIER-KEY]]";

#define SUBSCRIBE_CREDIT 100
#define DEFAULT_HELLO_MS 10000
#define WAIT_SLICE_MS    60000  /* without --timeout, waits forever in slices */
#define RECEIPT_WAIT_MS  30000  /* with --count and no --timeout: for the last receipts */
#define TEMP_SUFFIX      ".tmp" /* a receipt's name while it is written */

/*  --receipts: where they go, whose they must be, the log's key their
 *  proofs must hold under, and the deliveries received whose receipts
 *  have not come yet (seq -> received_t). */
typedef struct {
    const char *dir;
    int dir_fd;                         /* DIR, open: receipts are made in it by name */
    const char *feed;                   /* --feed, or NULL */
    const cv_note_verifier_t *verifier; /* --audit-key, or NULL */
    zhashx_t *received;
} receipts_t;

/*  What a receipt of a delivery must name: its view's SHA-256, in hex,
 *  and its report. */
typedef struct {
    char view[65];
    char report_id[];
} received_t;

static void received_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void seq_key(char key[24], uint64_t seq)
{
    snprintf(key, 24, "%" PRIu64, seq);
}

static const char *delivered_id(const cv_delivery_t *d)
{
    return d->report_id ? d->report_id : d->report ? d->report->id : NULL;
}

static bool remember_delivery(receipts_t *r, const cv_delivery_t *d)
{
    uint8_t hash[32];
    char key[24];
    if (!r->dir)
        return true;
    const char *id = delivered_id(d) ? delivered_id(d) : "";
    received_t *received = malloc(sizeof *received + strlen(id) + 1);
    if (!received || !cv_client_view_hash(d, hash)) {
        free(received);
        return false;
    }
    sodium_bin2hex(received->view, sizeof received->view, hash, sizeof hash);
    strcpy(received->report_id, id);
    seq_key(key, d->seq);
    zhashx_update(r->received, key, received);
    return true;
}

/*  An id escaped to at most size - 1 bytes of name: every byte outside
 *  [A-Za-z0-9_-] as %XX (an id is the sender's choice, a file name must
 *  not climb out). Returns the bytes written; *whole, whether that is
 *  all of the id. */
static size_t escaped_id(char *name, size_t size, const char *id, bool *whole)
{
    size_t at = 0;
    const unsigned char *c = (const unsigned char *)id;
    for (; *c && at + 4 <= size; c++)
        at += (size_t)snprintf(name + at, size - at,
                               isalnum(*c) || *c == '_' || *c == '-' ? "%c" : "%%%02X", *c);
    *whole = *c == '\0';
    return at;
}

/*  ID.SEQ.tlog-proof, the id escaped (escaped_id). An id whose escaped
 *  form would not fit in a file name with the seq and TEMP_SUFFIX (an id
 *  of 128 bytes of dots, or of Cyrillic letters, takes three bytes of
 *  name for each) is named by the first 120 bytes of that form, "~", and
 *  32 hex digits of a BLAKE2b hash of the whole id: never cut to another
 *  id's name ("~" is not in an escaped id), and never a reason to stop
 *  taking receipts, whose id another agency chose. */
static void receipt_name(char name[NAME_MAX + 1], const cv_receipt_t *receipt)
{
    enum { HASH_BYTES = 16, SHORT_ID = 120 };
    const size_t size = NAME_MAX + 1 - strlen(TEMP_SUFFIX);
    const char *id = receipt->report_id;
    char seq[48]; /* ".", 20 digits at most, ".tlog-proof" */
    int seq_len = snprintf(seq, sizeof seq, ".%" PRIu64 ".tlog-proof", receipt->seq);
    assert(seq_len > 0 && (size_t)seq_len < sizeof seq);
    bool whole;
    size_t at = escaped_id(name, size, id, &whole);
    if (!whole || at + (size_t)seq_len >= size) {
        uint8_t hash[HASH_BYTES];
        crypto_generichash(hash, sizeof hash, (const uint8_t *)id, strlen(id), NULL, 0);
        at = escaped_id(name, SHORT_ID + 1, id, &whole);
        name[at++] = '~';
        sodium_bin2hex(name + at, 2 * HASH_BYTES + 1, hash, sizeof hash);
        at += 2 * HASH_BYTES;
    }
    assert(at + (size_t)seq_len < size); /* 120 + 1 + 32 + 32 bytes, far below NAME_MAX */
    memcpy(name + at, seq, (size_t)seq_len + 1);
}

/*  Whether what is at tmp may be removed: a regular file of this user's,
 *  left by a run that died writing it. Anything else (a symbolic link
 *  planted to have a receipt written through it) stays, and is refused. */
static bool stale_temp(int dir_fd, const char *tmp)
{
    struct stat st;
    return fstatat(dir_fd, tmp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           st.st_uid == geteuid();
}

/*  A new file tmp in DIR, 0600, for writing: never one that was there,
 *  nor through a link. -1 with errno (EEXIST: something is in the way). */
static int create_temp(int dir_fd, const char *tmp)
{
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dir_fd, tmp, flags, 0600);
    if (fd >= 0 || errno != EEXIST)
        return fd;
    if (!stale_temp(dir_fd, tmp)) {
        errno = EEXIST;
        return -1;
    }
    return unlinkat(dir_fd, tmp, 0) == 0 ? openat(dir_fd, tmp, flags, 0600) : -1;
}

/*  All of data to fd, and to the disk. */
static bool write_synced(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return fsync(fd) == 0;
}

/*  Written whole or not at all: to a new temporary file in DIR, synced,
 *  then renamed to name, and DIR synced. On failure the temporary file is
 *  removed, and errno says why. */
static bool write_receipt(int dir_fd, const char *name, const cv_receipt_t *receipt)
{
    char tmp[NAME_MAX + 1];
    if (snprintf(tmp, sizeof tmp, "%s" TEMP_SUFFIX, name) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG; /* receipt_name leaves room: never */
        return false;
    }
    int fd = create_temp(dir_fd, tmp);
    if (fd < 0)
        return false;
    bool ok = write_synced(fd, receipt->proof, receipt->proof_len);
    ok = close(fd) == 0 && ok;
    /* the name too survives a power loss once the receipt is counted */
    ok = ok && renameat(dir_fd, tmp, dir_fd, name) == 0 && fsync(dir_fd) == 0;
    int saved = errno;
    if (!ok)
        unlinkat(dir_fd, tmp, 0);
    errno = saved;
    return ok;
}

/*  Whether the receipt records the delivery received at its seq, its
 *  proof is of that leaf, and with --audit-key the proof holds; why not. */
static bool receipt_good(cv_client_t *client, const receipts_t *r, const received_t *received,
                         const cv_receipt_t *receipt, char *why, size_t size)
{
    return receipt_check(receipt, cv_client_agency(client), r->feed, received->report_id,
                         received->view, why, size) &&
           (!r->verifier || receipt_verify(receipt, r->verifier, why, size));
}

/*  Every receipt that came: checked against the delivery received (its
 *  agency, queue, seq, report and view: receipt_check.h), written. One for
 *  a seq this run did not receive, or received a receipt for already, is
 *  not written: nothing here can say what it should name. */
static int take_receipts(cv_client_t *client, receipts_t *r)
{
    const cv_receipt_t *receipt;
    while (r->dir && (receipt = cv_client_receipt(client))) {
        char key[24], name[NAME_MAX + 1], why[600]; /* room for a cv_error_t's message */
        seq_key(key, receipt->seq);
        const received_t *received = zhashx_lookup(r->received, key);
        if (!received) {
            fprintf(stderr, "caveat: a receipt of seq %" PRIu64 " not awaited: not written\n",
                    receipt->seq);
            continue;
        }
        if (!receipt_good(client, r, received, receipt, why, sizeof why))
            return cli_error(CLI_FAILED, "the receipt of seq %" PRIu64 ": %s", receipt->seq, why);
        receipt_name(name, receipt);
        if (!write_receipt(r->dir_fd, name, receipt))
            return cli_error(CLI_FAILED, "%s/%s: %s", r->dir, name,
                             errno == EEXIST ? "its temporary file's name is taken by what is "
                                               "not a file of this user's: nothing written"
                                             : strerror(errno));
        zhashx_delete(r->received, key);
    }
    return CLI_OK;
}

/*  With --count: the receipts of what was received, within timeout_ms. */
static int await_receipts(cv_client_t *client, receipts_t *r, int timeout_ms)
{
    int64_t deadline = zclock_mono() + (timeout_ms > 0 ? timeout_ms : RECEIPT_WAIT_MS);
    int status = take_receipts(client, r);
    while (status == CLI_OK && r->dir && zhashx_size(r->received) > 0 && zclock_mono() < deadline) {
        cv_error_t err;
        if (!cv_client_receive(client, 100, &err) && err.code != CV_ERR_TIMEOUT)
            return cli_error(CLI_FAILED, "%s", err.msg);
        status = take_receipts(client, r);
    }
    if (status == CLI_OK && r->dir && zhashx_size(r->received) > 0)
        return cli_error(CLI_FAILED, "timeout: %zu receipts did not come",
                         zhashx_size(r->received));
    return status;
}

static void feedback_object(cv_json_writer_t *w, const cv_feedback_note_t *note)
{
    const char *const keys[] = {"report_id", "from", "value", "text", "time"};
    const char *const values[] = {note->report_id, note->from, note->value, note->text, note->time};
    cv_json_key(w, "feedback");
    cv_json_object_begin(w);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        cv_json_key(w, keys[i]);
        cv_json_string(w, values[i]);
    }
    cv_json_object_end(w);
}

static char *delivery_line(const cv_delivery_t *d)
{
    cv_json_writer_t *w = cv_json_writer_new(0);
    if (!w)
        return NULL;
    cv_json_object_begin(w);
    cv_json_key(w, "delivery");
    cv_json_object_begin(w);
    cv_json_key(w, "report_id");
    cv_json_string(w, delivered_id(d));
    cv_json_key(w, "seq");
    cv_json_uint(w, d->seq);
    cv_json_key(w, "rules");
    cv_json_array_begin(w);
    for (size_t i = 0; i < d->n_rules; i++)
        cv_json_string(w, d->rules[i]);
    cv_json_array_end(w);
    cv_json_key(w, "feed");
    cv_json_string(w, d->feed && *d->feed ? d->feed : NULL);
    cv_json_object_end(w);
    cv_json_key(w, "report");
    if (d->report)
        cv_json_message(w, &d->report->base);
    else
        cv_json_string(w, NULL);
    if (d->feedback)
        feedback_object(w, d->feedback);
    cv_json_object_end(w);
    const char *text = cv_json_writer_text(w);
    char *line = text ? strdup(text) : NULL;
    cv_json_writer_destroy(&w);
    return line;
}

/*  Write, flush, then acknowledge: the order is the guarantee. */
static int emit(cv_client_t *client, const cv_delivery_t *d)
{
    char *line = delivery_line(d);
    if (!line)
        return cli_error(CLI_FAILED, "out of memory");
    bool written = printf("%s\n", line) >= 0 && fflush(stdout) == 0;
    free(line);
    if (!written)
        return cli_error(CLI_FAILED, "stdout: write error");
    cv_error_t err;
    if (!cv_client_ack(client, d->seq, &err))
        return cli_error(CLI_FAILED, "%s", err.msg);
    return CLI_OK;
}

/*  Receives until count deliveries (0: no limit), or until timeout_ms pass
 *  without one (-1: never). */
static int run(cv_client_t *client, uint64_t count, int timeout_ms, receipts_t *r)
{
    uint64_t received = 0;
    /* with receipts, waits in short slices so that receipts are written as
     * they come, not only when a delivery does */
    int slice = r->dir ? 200 : timeout_ms > 0 ? timeout_ms : WAIT_SLICE_MS;
    int64_t deadline = timeout_ms > 0 ? zclock_mono() + timeout_ms : INT64_MAX;
    while (count == 0 || received < count) {
        cv_error_t err;
        const cv_delivery_t *d = cv_client_receive(client, slice, &err);
        if (!d && err.code != CV_ERR_TIMEOUT)
            return cli_error(CLI_FAILED, "%s", err.msg);
        int status = take_receipts(client, r);
        if (d && status == CLI_OK && !remember_delivery(r, d))
            status = cli_error(CLI_FAILED, "out of memory");
        if (d && status == CLI_OK)
            status = emit(client, d);
        if (status != CLI_OK)
            return status;
        if (d) {
            received++;
            deadline = timeout_ms > 0 ? zclock_mono() + timeout_ms : INT64_MAX;
        } else if (zclock_mono() >= deadline)
            break;
    }
    if (count && received < count)
        return cli_error(CLI_FAILED, "timeout: received %" PRIu64 " of %" PRIu64, received, count);
    return count ? await_receipts(client, r, timeout_ms) : CLI_OK;
}

/*  Whether DIR is fit to hold receipts: this user's, and no one else may
 *  write in it (put names in the receipts' way, or swap them). */
static int check_receipts_dir(const char *dir, const struct stat *st)
{
    if (st->st_uid != geteuid())
        return cli_error(CLI_FAILED, "--receipts %s: the directory is not this user's", dir);
    if (st->st_mode & 022)
        return cli_error(CLI_FAILED, "--receipts %s: group or others may write in it (mode %04o)",
                         dir, (unsigned)(st->st_mode & 07777));
    return CLI_OK;
}

/*  --receipts DIR, made (0700) when missing, checked and kept open: each
 *  receipt is made in the directory checked, whatever becomes of its
 *  path. A symbolic link to a directory is followed, once, here. */
static int open_receipts_dir(receipts_t *r)
{
    struct stat st;
    if (mkdir(r->dir, 0700) != 0 && errno != EEXIST)
        return cli_error(CLI_FAILED, "--receipts %s: %s", r->dir, strerror(errno));
    int fd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int status = fd >= 0 && fstat(fd, &st) == 0
                     ? check_receipts_dir(r->dir, &st)
                     : cli_error(CLI_FAILED, "--receipts %s: %s", r->dir, strerror(errno));
    /* one writer a directory: two would take each other's temporary file
     * for one a run left, and remove it (the lock goes with the process) */
    if (status == CLI_OK && flock(fd, LOCK_EX | LOCK_NB) != 0)
        status =
            errno == EWOULDBLOCK
                ? cli_error(CLI_FAILED,
                            "--receipts %s: another caveat subscribe writes receipts in it", r->dir)
                : cli_error(CLI_FAILED, "--receipts %s: %s", r->dir, strerror(errno));
    if (status == CLI_OK)
        r->dir_fd = fd;
    else if (fd >= 0)
        close(fd);
    return status;
}

static bool parse_count(const char *text, uint64_t *count)
{
    char *end = NULL;
    if (!text[0] || strspn(text, "0123456789") != strlen(text))
        return false;
    unsigned long long value = strtoull(text, &end, 10);
    *count = value;
    return *end == '\0' && value > 0 && value != ULLONG_MAX;
}

static int subscribe(const cv_client_config_t *config, uint64_t count, int timeout_ms,
                     receipts_t *r)
{
    cv_error_t err;
    cv_client_t *client = cv_client_new(config, &err);
    if (!client)
        return cli_error(CLI_FAILED, "%s", err.msg);
    r->received = zhashx_new();
    zhashx_set_destructor(r->received, received_free);
    int status = run(client, count, timeout_ms, r);
    zhashx_destroy(&r->received);
    cv_client_destroy(&client);
    return status;
}

int cmd_subscribe(int argc, char **argv)
{
    bool missing = false;
    const char *feed = cli_take_option(&argc, argv, "--feed", &missing);
    const char *count_text = cli_take_option(&argc, argv, "--count", &missing);
    const char *audit_key = cli_take_option(&argc, argv, "--audit-key", &missing);
    receipts_t receipts = {
        .dir = cli_take_option(&argc, argv, "--receipts", &missing), .dir_fd = -1, .feed = feed};
    cv_client_config_t config = {
        .feed = feed, .credit = SUBSCRIBE_CREDIT, .receipts = receipts.dir != NULL};
    int timeout_ms;
    int status = cli_broker_options(&argc, argv, usage, &config, &timeout_ms);
    if (status != CLI_OK)
        return status;
    if (missing || argc != 1 || (audit_key && !receipts.dir))
        return cli_error(CLI_USAGE, "%s", usage);
    uint64_t count = 0;
    if (count_text && !parse_count(count_text, &count))
        return cli_error(CLI_USAGE, "--count %s: not a positive number", count_text);
    config.timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_HELLO_MS;
    cv_note_verifier_t verifier;
    cv_error_t err;
    if (audit_key && !cv_note_verifier_parse(audit_key, &verifier, &err))
        return cli_error(CLI_USAGE, "--audit-key: %s", err.msg);
    receipts.verifier = audit_key ? &verifier : NULL;
    if (receipts.dir && (status = open_receipts_dir(&receipts)) != CLI_OK)
        return status;
    if (receipts.dir && !audit_key) /* written as the broker gave them: say so, once */
        fprintf(stderr, "caveat: note: without --audit-key a receipt's leaf is checked, not its "
                        "proof or signature: check them later with `caveat audit receipt FILE "
                        "--key KEY`\n");
    status = subscribe(&config, count, timeout_ms, &receipts);
    if (receipts.dir_fd >= 0)
        close(receipts.dir_fd);
    return status;
}
