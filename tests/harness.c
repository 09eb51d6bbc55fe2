/*  harness.c: start and stop the real caveatd for end-to-end tests. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <czmq.h>

#include "harness.h"

struct harness_t {
    char dir[256];
    char path[512];
    char endpoint[512];
    pid_t pid;
    int nofile;      /* caveatd's descriptor limit; 0: inherited */
    bool small_disk; /* DIR/data is a tmpfs of its own */
};

static void run_shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*  Harnesses not destroyed yet. A failed cmocka assertion leaves its test
 *  at once, so its harness is never destroyed: at exit, what its broker
 *  was doing is printed (ctest shows it on failure) and it is cleaned up. */
#define LIVE_MAX 64
static harness_t *live[LIVE_MAX];

static void run_shell(const char *fmt, ...)
{
    char command[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(command, sizeof command, fmt, ap);
    va_end(ap);
    if (system(command) != 0)
        fprintf(stderr, "harness: failed: %s\n", command);
}

/*  Where a broker a failed test left is: its state and CPU time from
 *  /proc (a busy loop or a wait), its threads' stacks when gdb is here,
 *  and the end of its log. */
static void report_abandoned(harness_t *self)
{
    fprintf(stderr, "harness: a test ended without stopping caveatd (pid %d) in %s\n",
            (int)self->pid, self->dir);
    if (self->pid > 0) {
        run_shell(
            "cut -d' ' -f3,14,15 /proc/%d/stat | sed 's/^/harness: state, utime, stime: /' >&2",
            (int)self->pid);
        run_shell("! command -v gdb >/dev/null || gdb -batch -p %d -ex 'thread apply all bt' "
                  "2>/dev/null | grep -E '^(Thread|#)' | head -120 >&2",
                  (int)self->pid);
    }
    fprintf(stderr, "harness: the end of its broker.log:\n");
    run_shell("tail -n 60 %s/broker.log >&2", self->dir);
}

static pid_t live_owner; /* a forked child that exits leaves them alone */

static void clean_up_abandoned(void)
{
    if (getpid() != live_owner)
        return;
    for (size_t i = 0; i < LIVE_MAX; i++)
        if (live[i]) {
            report_abandoned(live[i]);
            harness_kill(live[i]); /* it may not answer SIGTERM */
            harness_destroy(&live[i]);
        }
}

static void set_live(harness_t *old, harness_t *new)
{
    static bool registered;
    if (!registered) {
        live_owner = getpid();
        registered = atexit(clean_up_abandoned) == 0;
    }
    for (size_t i = 0; i < LIVE_MAX; i++)
        if (live[i] == old) {
            live[i] = new;
            return;
        }
}

harness_t *harness_new(void)
{
    harness_t *self = calloc(1, sizeof *self);
    snprintf(self->dir, sizeof self->dir, "/tmp/caveat-e2e-XXXXXX");
    if (!mkdtemp(self->dir)) {
        free(self);
        return NULL;
    }
    /* git keeps no file modes: the secret keys are made 0600 here */
    run_shell("cp %s/examples/keys/*.cert* %s/ && chmod 600 %s/*.cert_secret", CAVEAT_SOURCE_DIR,
              self->dir, self->dir);
    run_shell("cp %s/examples/policy.yaml %s/policy.yaml", CAVEAT_SOURCE_DIR, self->dir);
    /* a fresh broker key: a client left over from another test, reconnecting
     * to a port the kernel reused, fails the handshake instead of joining */
    zcert_t *broker = zcert_new();
    int saved = broker ? zcert_save(broker, harness_path(self, "broker.cert")) : -1;
    zcert_destroy(&broker);
    chmod(harness_path(self, "broker.cert_secret"), 0600);
    if (saved != 0) {
        harness_destroy(&self);
        return NULL;
    }
    set_live(NULL, self);
    return self;
}

void harness_destroy(harness_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    harness_t *self = *self_p;
    set_live(self, NULL);
    harness_stop(self);
    if (self->small_disk)
        umount2(harness_path(self, "data"), MNT_DETACH);
    run_shell("rm -rf %s", self->dir);
    free(self);
    *self_p = NULL;
}

/*  A mount namespace of the test's own, so that its mounts are private to
 *  it and its brokers: as root, or as a user where user namespaces are
 *  allowed (then root within one). */
static bool own_mount_namespace(void)
{
    static int done = -1;
    if (done >= 0)
        return done;
    uid_t uid = getuid();
    gid_t gid = getgid();
    done = unshare(CLONE_NEWNS) == 0;
    if (!done && unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0) {
        char map[64];
        int fd = open("/proc/self/setgroups", O_WRONLY);
        done = fd >= 0 && write(fd, "deny", 4) == 4;
        if (fd >= 0)
            close(fd);
        snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        fd = open("/proc/self/uid_map", O_WRONLY);
        done = done && fd >= 0 && write(fd, map, strlen(map)) == (ssize_t)strlen(map);
        if (fd >= 0)
            close(fd);
        snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        fd = open("/proc/self/gid_map", O_WRONLY);
        done = done && fd >= 0 && write(fd, map, strlen(map)) == (ssize_t)strlen(map);
        if (fd >= 0)
            close(fd);
    }
    done = done && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
    return done;
}

bool harness_small_disk(harness_t *self, size_t bytes)
{
    char options[64];
    snprintf(options, sizeof options, "size=%zu,mode=0700", bytes);
    const char *data = harness_path(self, "data");
    if (!own_mount_namespace() || mkdir(data, 0700) != 0 ||
        mount("tmpfs", data, "tmpfs", MS_NOSUID | MS_NODEV, options) != 0)
        return false;
    self->small_disk = true;
    return true;
}

size_t harness_fill_disk(harness_t *self)
{
    static char block[64 * 1024];
    int fd = open(harness_path(self, "data/filler"), O_WRONLY | O_CREAT | O_APPEND, 0600);
    size_t written = 0;
    ssize_t n;
    for (size_t size = sizeof block; fd >= 0 && size > 0; size /= 2)
        while ((n = write(fd, block, size)) > 0)
            written += (size_t)n;
    if (fd >= 0)
        close(fd);
    return written;
}

void harness_free_disk(harness_t *self)
{
    unlink(harness_path(self, "data/filler"));
}

void harness_shrink_filler(harness_t *self, size_t bytes)
{
    struct stat st;
    const char *filler = harness_path(self, "data/filler");
    if (stat(filler, &st) == 0)
        truncate(filler, (size_t)st.st_size > bytes ? st.st_size - (off_t)bytes : 0);
}

bool harness_add_councils(harness_t *self, int n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    FILE *in = fopen(harness_path(self, "policy.yaml"), "r");
    bool ok = out && in;
    char line[4096];
    while (ok && fgets(line, sizeof line, in)) {
        fputs(line, out);
        if (strcmp(line, "agencies:\n") != 0)
            continue;
        for (int i = 0; ok && i < n; i++) {
            zcert_t *cert = zcert_new();
            char path[700];
            snprintf(path, sizeof path, "%s/council-%d.cert", self->dir, i);
            ok = cert && zcert_save(cert, path) == 0;
            snprintf(path, sizeof path, "%s/council-%d.cert_secret", self->dir, i);
            ok = ok && chmod(path, 0600) == 0;
            if (ok)
                fprintf(out,
                        "  council-%d:\n    organisation: council-%d\n    type: local_authority\n"
                        "    clearance: OFFICIAL-SENSITIVE\n    areas: [hull]\n    key: \"%s\"\n",
                        i, i, zcert_public_txt(cert));
            zcert_destroy(&cert);
        }
    }
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    if (ok)
        harness_write_policy(self, text);
    free(text);
    return ok;
}

const char *harness_path(harness_t *self, const char *name)
{
    snprintf(self->path, sizeof self->path, "%s/%s", self->dir, name);
    return self->path;
}

void harness_write_policy(harness_t *self, const char *text)
{
    /* written beside and renamed: a reload never sees half a file */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/policy.yaml.new", self->dir);
    FILE *f = fopen(tmp, "w");
    fputs(text, f);
    fclose(f);
    rename(tmp, harness_path(self, "policy.yaml"));
}

static void exec_broker(harness_t *self, const char *const *extra, int out_fd)
{
    char policy[600], cert[600], data[600], log[600];
    snprintf(policy, sizeof policy, "%s/policy.yaml", self->dir);
    snprintf(cert, sizeof cert, "%s/broker.cert_secret", self->dir);
    snprintf(data, sizeof data, "%s/data", self->dir);
    snprintf(log, sizeof log, "%s/broker.log", self->dir);
    const char *argv[48];
    int argc = 0;
    /* a tool to run the broker under, for the benchmarks' instruction
     * counts ("valgrind --tool=callgrind ..."): words split at spaces */
    char *tool = getenv("CAVEAT_BROKER_TOOL") ? strdup(getenv("CAVEAT_BROKER_TOOL")) : NULL;
    char *save = NULL;
    for (char *word = tool ? strtok_r(tool, " ", &save) : NULL; word && argc < 16;
         word = strtok_r(NULL, " ", &save))
        argv[argc++] = word;
    const char *const broker[] = {CAVEATD,  "--policy", policy,   "--endpoint", "tcp://127.0.0.1:!",
                                  "--cert", cert,       "--data", data};
    for (size_t i = 0; i < sizeof broker / sizeof *broker; i++)
        argv[argc++] = broker[i];
    for (int i = 0; extra && extra[i] && argc < 47; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    if (self->nofile > 0)
        setrlimit(RLIMIT_NOFILE, &(struct rlimit){(rlim_t)self->nofile, (rlim_t)self->nofile});
    /* a test that dies must not leave its broker running */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(out_fd, STDOUT_FILENO);
    int log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (log_fd >= 0)
        dup2(log_fd, STDERR_FILENO);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

/*  Reads "caveatd: ready on ENDPOINT" within 10 s, or 60 s for a broker
 *  under a tool (CAVEAT_BROKER_TOOL): callgrind starts it far slower. */
static bool wait_ready(harness_t *self, int fd)
{
    char line[512] = "";
    size_t len = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int timeout_ms = getenv("CAVEAT_BROKER_TOOL") ? 60000 : 10000;
    while (len < sizeof line - 1 && poll(&p, 1, timeout_ms) == 1) {
        ssize_t n = read(fd, line + len, 1);
        if (n <= 0)
            break;
        if (line[len] == '\n') {
            line[len] = '\0';
            const char *prefix = "caveatd: ready on ";
            if (strncmp(line, prefix, strlen(prefix)) != 0)
                return false;
            snprintf(self->endpoint, sizeof self->endpoint, "%s", line + strlen(prefix));
            return true;
        }
        len++;
    }
    return false;
}

void harness_set_nofile(harness_t *self, int limit)
{
    self->nofile = limit;
}

bool harness_start(harness_t *self, const char *const *extra)
{
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    self->pid = fork();
    if (self->pid == 0) {
        close(fds[0]);
        exec_broker(self, extra, fds[1]);
    }
    close(fds[1]);
    bool ready = self->pid > 0 && wait_ready(self, fds[0]);
    close(fds[0]);
    if (!ready) {
        fprintf(stderr, "harness: caveatd did not start; see %s/broker.log:\n", self->dir);
        run_shell("cat %s/broker.log >&2", self->dir);
        harness_kill(self);
    }
    return ready;
}

static int end(harness_t *self, int sig)
{
    if (self->pid <= 0)
        return 0;
    kill(self->pid, sig);
    int status = 0;
    waitpid(self->pid, &status, 0);
    self->pid = 0;
    return status;
}

static bool log_is_clean(harness_t *self)
{
    char command[600];
    snprintf(command, sizeof command,
             "! grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' "
             "-e 'runtime error:' %s/broker.log 2>/dev/null",
             self->dir);
    return system(command) == 0;
}

bool harness_stop(harness_t *self)
{
    bool running = self->pid > 0;
    int status = end(self, SIGTERM);
    bool clean = !running || (WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!clean || !log_is_clean(self)) {
        fprintf(stderr, "harness: caveatd did not stop cleanly (status %d):\n", status);
        run_shell("cat %s/broker.log >&2", self->dir);
        return false;
    }
    return true;
}

void harness_kill(harness_t *self)
{
    end(self, SIGKILL);
}

void harness_signal(harness_t *self, int sig)
{
    if (self->pid > 0)
        kill(self->pid, sig);
}

const char *harness_endpoint(const harness_t *self)
{
    return self->endpoint;
}

pid_t harness_pid(const harness_t *self)
{
    return self->pid;
}

bool harness_has_thread(pid_t pid, const char *name)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    bool found = false;
    for (struct dirent *task; tasks && !found && (task = readdir(tasks));) {
        char comm[32] = "";
        snprintf(path, sizeof path, "/proc/%d/task/%.16s/comm", (int)pid, task->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = '\0';
        if (f)
            fclose(f);
        found = strcmp(comm, name) == 0;
    }
    if (tasks)
        closedir(tasks);
    return found;
}

/*  A client of agency with its DIR/AGENCY.cert_secret, to this broker. */
static cv_client_t *client_of(harness_t *self, const char *agency, cv_client_config_t config,
                              cv_error_t *err)
{
    char server[600], client[600];
    snprintf(server, sizeof server, "%s/broker.cert", self->dir);
    snprintf(client, sizeof client, "%s/%s.cert_secret", self->dir, agency);
    config.endpoint = self->endpoint;
    config.server_cert = server;
    config.client_cert = client;
    return cv_client_new(&config, err);
}

cv_client_t *harness_client_with(harness_t *self, const char *agency, cv_client_config_t config,
                                 cv_error_t *err)
{
    return client_of(self, agency, config, err);
}

cv_client_t *harness_client(harness_t *self, const char *agency, const char *feed, uint32_t credit,
                            cv_error_t *err)
{
    cv_client_config_t config = {.feed = feed, .credit = credit, .timeout_ms = 3000};
    return client_of(self, agency, config, err);
}

cv_client_t *harness_sender(harness_t *self, const char *agency, cv_error_t *err)
{
    cv_client_config_t config = {.publish_only = true};
    return client_of(self, agency, config, err);
}

Caveat__Report *harness_report(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/examples/reports/%s.json", CAVEAT_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char buf[65536];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cv_error_t err;
    ProtobufCMessage *msg = cv_json_parse(cv_schema_report(), buf, len, path, &err);
    if (!msg)
        fprintf(stderr, "harness: %s\n", err.msg);
    return (Caveat__Report *)msg;
}
