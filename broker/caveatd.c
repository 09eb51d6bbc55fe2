/*  caveatd: the caveat broker. Thin: options, then cv_broker. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cv_alloc.h"
#include "cv_broker.h"
#include "cv_proto.h"

static const char usage[] =
    "usage: caveatd --policy FILE --endpoint EP --cert BROKER.cert_secret --data DIR\n"
    "               [--policy-signers SIGNERS]  (then only a policy they signed loads)\n"
    "               [--sync full|normal|off] [--max-frame BYTES] [--max-reports N]\n"
    "               [--ack-timeout SECONDS] [--max-pending N] [--handshake-timeout SECONDS]\n"
    "               [--clock-skew SECONDS] [--disk-reserve MB] [--backup-rate MB]\n"
    "               [--log-format text|json] [--audit-log on|off]\n"
    "               [--pid-file FILE] [--monitor [IPV4:]PORT] [--verbose] [--help]\n"
    "               [--version]\n";

static int bad_option(const char *option, const char *expected, const char *value)
{
    fprintf(stderr, "caveatd: %s: %s, not '%s'\n", option, expected, value);
    return 2;
}

/*  TEXT as a whole number from min to max: nothing after the digits, so
 *  "--clock-skew 1d" is refused rather than taken as 1 second. */
static bool whole_number(const char *text, long min, long max, int *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (end == text || *end || errno || value < min || value > max)
        return false;
    *out = (int)value;
    return true;
}

/*  TEXT as seconds (fractions allowed), at least min_s, as milliseconds;
 *  nothing after the number ("30s" is refused, not read as 30). */
static bool seconds_as_ms(const char *text, double min_s, int *out_ms)
{
    double value;
    if (!cv_seconds_parse(text, &value) || value < min_s)
        return false;
    *out_ms = (int)(value * 1000);
    return true;
}

static int parse(int argc, char **argv, cv_broker_config_t *config)
{
    static const struct option options[] = {{"policy", required_argument, NULL, 'p'},
                                            {"endpoint", required_argument, NULL, 'e'},
                                            {"cert", required_argument, NULL, 'c'},
                                            {"data", required_argument, NULL, 'd'},
                                            {"sync", required_argument, NULL, 's'},
                                            {"max-frame", required_argument, NULL, 'm'},
                                            {"verbose", no_argument, NULL, 'v'},
                                            {"help", no_argument, NULL, 'h'},
                                            {"ack-timeout", required_argument, NULL, 'a'},
                                            {"max-reports", required_argument, NULL, 'r'},
                                            {"clock-skew", required_argument, NULL, 'k'},
                                            {"version", no_argument, NULL, 'V'},
                                            {"max-pending", required_argument, NULL, 'n'},
                                            {"handshake-timeout", required_argument, NULL, 't'},
                                            {"disk-reserve", required_argument, NULL, 'D'},
                                            {"backup-rate", required_argument, NULL, 'B'},
                                            {"log-format", required_argument, NULL, 'L'},
                                            {"pid-file", required_argument, NULL, 'P'},
                                            {"monitor", required_argument, NULL, 'M'},
                                            {"policy-signers", required_argument, NULL, 'S'},
                                            {"audit-log", required_argument, NULL, 'A'},
                                            {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'p':
            config->policy_path = optarg;
            break;
        case 'S':
            config->policy_signers = optarg;
            break;
        case 'e':
            config->endpoint = optarg;
            break;
        case 'c':
            config->cert_path = optarg;
            break;
        case 'd':
            config->data_dir = optarg;
            break;
        case 'v':
            config->verbose = true;
            break;
        case 's':
            if (!strcmp(optarg, "full"))
                config->sync = CV_SYNC_FULL;
            else if (!strcmp(optarg, "normal"))
                config->sync = CV_SYNC_NORMAL;
            else if (!strcmp(optarg, "off"))
                config->sync = CV_SYNC_OFF;
            else
                return bad_option("--sync", "full, normal or off", optarg);
            break;
        case 'a':
            if (!seconds_as_ms(optarg, 0.1, &config->ack_timeout_ms))
                return bad_option("--ack-timeout", "at least 0.1 seconds", optarg);
            break;
        case 'n':
            if (!whole_number(optarg, 1, INT_MAX, &config->max_pending))
                return bad_option("--max-pending", "at least 1", optarg);
            break;
        case 't':
            if (!seconds_as_ms(optarg, 0.1, &config->handshake_timeout_ms))
                return bad_option("--handshake-timeout", "at least 0.1 seconds", optarg);
            break;
        case 'm':
            if (!whole_number(optarg, 1024, INT_MAX, &config->max_frame))
                return bad_option("--max-frame", "at least 1024 bytes", optarg);
            break;
        case 'r':
            if (!whole_number(optarg, 1, 100000, &config->max_reports))
                return bad_option("--max-reports", "from 1 to 100000", optarg);
            break;
        case 'k':
            if (!whole_number(optarg, 1, 365 * 86400, &config->clock_skew_s))
                return bad_option("--clock-skew", "from 1 second to a year", optarg);
            break;
        case 'L':
            if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0)
                return bad_option("--log-format", "text or json", optarg);
            config->log_json = strcmp(optarg, "json") == 0;
            break;
        case 'M':
            config->monitor = optarg;
            break;
        case 'A':
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
                return bad_option("--audit-log", "on or off", optarg);
            config->audit_off = strcmp(optarg, "off") == 0;
            break;
        case 'P':
            config->pid_file = optarg;
            break;
        case 'D':
            if (!whole_number(optarg, 1, 65536, &config->disk_reserve_mb))
                return bad_option("--disk-reserve", "from 1 to 65536 (MB)", optarg);
            break;
        case 'B':
            if (!whole_number(optarg, 0, 65536, &config->backup_rate_mb))
                return bad_option("--backup-rate", "from 0 (no limit) to 65536 (MB a second)",
                                  optarg);
            config->backup_rate_mb = config->backup_rate_mb ? config->backup_rate_mb : -1;
            break;
        case 'h':
            fputs(usage, stdout);
            return 1;
        case 'V':
            printf("caveatd %s\n", CAVEAT_VERSION);
            return 1;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "caveatd: unexpected argument '%s'\n%s", argv[optind], usage);
        return 2;
    }
    const char *missing[4];
    int n = 0;
    if (!config->policy_path)
        missing[n++] = "--policy FILE";
    if (!config->endpoint)
        missing[n++] = "--endpoint EP";
    if (!config->cert_path)
        missing[n++] = "--cert BROKER.cert_secret";
    if (!config->data_dir)
        missing[n++] = "--data DIR";
    for (int i = 0; i < n; i++)
        fprintf(stderr, "caveatd: missing %s\n", missing[i]);
    if (n) {
        fputs(usage, stderr);
        return 2;
    }
    return 0;
}

/*  The pid FILE names, or 0. */
static int pid_in(const char *path)
{
    FILE *in = fopen(path, "r");
    int pid = 0;
    if (in && fscanf(in, "%d", &pid) != 1)
        pid = 0;
    if (in)
        fclose(in);
    return pid;
}

/*  FILE holds the broker's pid and a newline, for `kill -HUP $(cat FILE)`
 *  (pidof would signal every broker on the machine). Written beside and
 *  renamed: a reader never sees half of it. The file beside is made anew,
 *  never opened through a link someone left in its place (which would
 *  have the broker truncate whatever file it pointed at). A file naming a
 *  live process is another broker's: refused. */
static bool write_pid_file(const char *path)
{
    int other = pid_in(path);
    if (other > 0 && other != getpid() && kill(other, 0) == 0) {
        fprintf(stderr, "caveatd: %s: names process %d, which is running\n", path, other);
        return false;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    unlink(tmp); /* a link is removed, not followed; one made again now fails O_EXCL */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fd >= 0 && !out)
        close(fd);
    bool ok = out && fprintf(out, "%d\n", (int)getpid()) > 0;
    ok = out && fclose(out) == 0 && ok && rename(tmp, path) == 0;
    if (!ok) {
        fprintf(stderr, "caveatd: %s: cannot write: %s\n", path, strerror(errno));
        unlink(tmp);
    }
    return ok;
}

int main(int argc, char **argv)
{
    cv_keep_freed_memory();
    cv_broker_config_t config = {.sync = CV_SYNC_FULL};
    int rc = parse(argc, argv, &config);
    if (rc)
        return rc == 1 ? 0 : rc;
    cv_error_t err = {0};
    cv_broker_t *broker = cv_broker_new(&config, &err);
    if (!broker) {
        fprintf(stderr, "caveatd: %s\n", err.msg[0] ? err.msg : "cannot start");
        return 1;
    }
    if (config.pid_file && !write_pid_file(config.pid_file)) {
        cv_broker_destroy(&broker);
        return 1;
    }
    /* scripts and tests wait for this line: the endpoint, with its port */
    printf("caveatd: ready on %s\n", cv_broker_endpoint(broker));
    fflush(stdout);
    rc = cv_broker_run(broker);
    cv_broker_destroy(&broker);
    if (config.pid_file && pid_in(config.pid_file) == getpid()) /* still ours */
        unlink(config.pid_file);
    return rc;
}
