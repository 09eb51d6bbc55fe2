/*  cv_monitor.c: /metrics and /healthz over HTTP (cv_monitor.h), with
 *  libmicrohttpd in its own thread.
 */
#include "cv_monitor.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <czmq.h>

#include "cv_alloc.h"

#define STALE_MS           5000 /* a loop that has not published for this long is stuck */
#define CONNECTIONS_MAX    16   /* a scraper or two, and a probe */
#define CONNECTION_TIMEOUT 10   /* seconds an idle connection is kept */

struct cv_monitor_t {
    struct MHD_Daemon *daemon;
    char address[64];
    pthread_mutex_t lock; /* over what follows: the loop writes, the daemon's thread reads */
    char *metrics;
    char *unhealthy;   /* NULL: healthy */
    int64_t published; /* zclock_mono of the last snapshot */
};

static enum MHD_Result answer(struct MHD_Connection *connection, unsigned status, const char *type,
                              const char *body)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result queued = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return queued;
}

/*  /healthz: "ok", or why not (a stuck loop, a failing store). */
static enum MHD_Result answer_health(cv_monitor_t *self, struct MHD_Connection *connection)
{
    char why[256] = "";
    pthread_mutex_lock(&self->lock);
    if (zclock_mono() - self->published > STALE_MS)
        snprintf(why, sizeof why, "the broker's loop has not turned for %lld ms",
                 (long long)(zclock_mono() - self->published));
    else if (self->unhealthy)
        snprintf(why, sizeof why, "%s", self->unhealthy);
    pthread_mutex_unlock(&self->lock);
    char body[300];
    snprintf(body, sizeof body, "%s\n", *why ? why : "ok");
    return answer(connection, *why ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK,
                  "text/plain; charset=utf-8", body);
}

static enum MHD_Result answer_metrics(cv_monitor_t *self, struct MHD_Connection *connection)
{
    pthread_mutex_lock(&self->lock);
    char *body = cv_xstrdup(self->metrics ? self->metrics : "");
    pthread_mutex_unlock(&self->lock);
    enum MHD_Result queued =
        answer(connection, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body);
    free(body);
    return queued;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **request)
{
    (void)version, (void)upload_data, (void)request;
    cv_monitor_t *self = cls;
    if (*upload_data_size) { /* a body: nothing here takes one */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    if (strcmp(url, "/metrics") == 0)
        return answer_metrics(self, connection);
    if (strcmp(url, "/healthz") == 0)
        return answer_health(self, connection);
    return answer(connection, MHD_HTTP_NOT_FOUND, "text/plain", "/metrics or /healthz\n");
}

/*  "HOST:PORT" or "PORT" (host 127.0.0.1) into addr; false when it is
 *  neither. */
static bool parse_address(const char *text, struct sockaddr_in *addr)
{
    char host[64] = "127.0.0.1";
    const char *colon = strrchr(text, ':');
    const char *port_text = colon ? colon + 1 : text;
    if (colon && (size_t)(colon - text) < sizeof host)
        snprintf(host, sizeof host, "%.*s", (int)(colon - text), text);
    else if (colon)
        return false;
    char *end = NULL;
    long port = strtol(port_text, &end, 10);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    return *port_text && *end == '\0' && port >= 0 && port <= 65535 &&
           inet_pton(AF_INET, host, &addr->sin_addr) == 1;
}

cv_monitor_t *cv_monitor_new(const char *address, cv_error_t *err)
{
    struct sockaddr_in addr;
    if (!parse_address(address, &addr)) {
        cv_error_set(err, NULL, 0, 0, "--monitor %s: expected PORT or IPV4:PORT", address);
        return NULL;
    }
    cv_monitor_t *self = cv_xcalloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->published = zclock_mono();
    self->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL,
                                    on_request, self, MHD_OPTION_SOCK_ADDR,
                                    (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
                                    (unsigned)CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
                                    (unsigned)CONNECTION_TIMEOUT, MHD_OPTION_END);
    if (!self->daemon) {
        cv_error_set(err, NULL, 0, 0, "--monitor %s: cannot listen there", address);
        cv_monitor_destroy(&self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, host, sizeof host);
    snprintf(self->address, sizeof self->address, "%s:%u", host,
             info ? (unsigned)info->port : (unsigned)ntohs(addr.sin_port));
    return self;
}

void cv_monitor_destroy(cv_monitor_t **self_p)
{
    cv_monitor_t *self = *self_p;
    if (!self)
        return;
    if (self->daemon)
        MHD_stop_daemon(self->daemon); /* joins its thread: nothing reads below after */
    pthread_mutex_destroy(&self->lock);
    free(self->metrics);
    free(self->unhealthy);
    free(self);
    *self_p = NULL;
}

const char *cv_monitor_address(const cv_monitor_t *self)
{
    return self->address;
}

void cv_monitor_publish(cv_monitor_t *self, const char *metrics, const char *unhealthy)
{
    char *fresh = cv_xstrdup(metrics);
    char *why = unhealthy ? cv_xstrdup(unhealthy) : NULL;
    pthread_mutex_lock(&self->lock);
    char *old = self->metrics, *old_why = self->unhealthy;
    self->metrics = fresh;
    self->unhealthy = why;
    self->published = zclock_mono();
    pthread_mutex_unlock(&self->lock);
    free(old);
    free(old_why);
}
