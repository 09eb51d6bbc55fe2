/*  cv_zap.c: ZAP (RFC 27) for the broker's CURVE socket.
 *
 *  A request is: version "1.0", request id, domain, address, routing id,
 *  mechanism, then the mechanism's credentials (CURVE: the client's 32-byte
 *  public key). The reply: version, request id, status code, status text,
 *  user id, metadata. The user id becomes the "User-Id" property of every
 *  message of the connection; we put the client's key there, and the
 *  broker maps it to an agency through the policy in force per message.
 */
#include "cv_zap.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

struct cv_zap_t {
    zsock_t *socket;
    cv_log_t *log;     /* not owned */
    bool log_refusals; /* not during the start's own test */
    uint64_t admitted, refused;
};

cv_zap_t *cv_zap_new(cv_log_t *log, cv_error_t *err)
{
    cv_zap_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->log = log;
    self->socket = zsock_new(ZMQ_REP);
    if (!self->socket || zsock_bind(self->socket, ZAP_ENDPOINT) != 0) {
        cv_error_set(err, NULL, 0, 0, "cannot bind the ZAP handler at %s: %s", ZAP_ENDPOINT,
                     zmq_strerror(zmq_errno()));
        cv_zap_destroy(&self);
    }
    return self;
}

void cv_zap_destroy(cv_zap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zsock_destroy(&(*self_p)->socket);
    free(*self_p);
    *self_p = NULL;
}

zsock_t *cv_zap_socket(cv_zap_t *self)
{
    return self->socket;
}

/*  The agency's key in Z85, or "" when the request is not a CURVE request
 *  from an agency of the policy. */
static void admitted_key(zmsg_t *request, const cv_policy_t *policy, char z85[41])
{
    z85[0] = '\0';
    if (zmsg_size(request) != 7)
        return;
    zframe_t *frame = zmsg_first(request);
    for (int i = 0; i < 5; i++)
        frame = zmsg_next(request);
    zframe_t *credentials = zmsg_next(request);
    if (!zframe_streq(frame, "CURVE") || zframe_size(credentials) != CV_KEY_BYTES)
        return;
    int agency = cv_policy_agency_by_key(policy, zframe_data(credentials));
    if (agency >= 0)
        memcpy(z85, cv_policy_agency(policy, agency)->key_z85, 41);
}

/*  A refused handshake, logged with the peer's address and the key it
 *  offered (public, and what an administrator compares with the policy);
 *  at most CV_LOG_AGENCY_LINES a second, for anyone may try. */
static void log_refusal(cv_zap_t *self, zmsg_t *request)
{
    char address[64] = "?", key[41] = "none";
    zframe_t *frame = zmsg_first(request);
    for (int i = 0; frame && i < 3; i++)
        frame = zmsg_next(request);
    if (frame && zframe_size(frame) < sizeof address)
        snprintf(address, sizeof address, "%.*s", (int)zframe_size(frame),
                 (const char *)zframe_data(frame));
    zframe_t *credentials = zmsg_size(request) == 7 ? zmsg_last(request) : NULL;
    if (credentials && zframe_size(credentials) == CV_KEY_BYTES)
        zmq_z85_encode(key, zframe_data(credentials), CV_KEY_BYTES);
    cv_log_limited(self->log, "refused handshakes",
                   "handshake refused: key %s from %s is not an agency of this protocol", key,
                   address);
}

void cv_zap_handle(cv_zap_t *self, const cv_policy_t *policy)
{
    zmsg_t *request = zmsg_recv(self->socket);
    if (!request)
        return;
    char key[41];
    admitted_key(request, policy, key);
    if (!*key && self->log_refusals)
        log_refusal(self, request);
    zframe_t *version = zmsg_pop(request);
    zframe_t *request_id = zmsg_pop(request);
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "1.0");
    if (request_id)
        zmsg_append(reply, &request_id);
    else
        zmsg_addmem(reply, NULL, 0);
    zmsg_addstr(reply, *key ? "200" : "400");
    zmsg_addstr(reply, *key ? "OK" : "not an agency of this protocol");
    zmsg_addstr(reply, key);
    zmsg_addmem(reply, NULL, 0);
    zmsg_send(&reply, self->socket);
    if (*key)
        self->admitted++;
    else
        self->refused++;
    zframe_destroy(&version);
    zframe_destroy(&request_id);
    zmsg_destroy(&request);
}

void cv_zap_log_refusals(cv_zap_t *self)
{
    self->log_refusals = true;
}

uint64_t cv_zap_admitted(const cv_zap_t *self)
{
    return self->admitted;
}

uint64_t cv_zap_refused(const cv_zap_t *self)
{
    return self->refused;
}
