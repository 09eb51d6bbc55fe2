/*  cv_peer.c: getpeername for the connection guard and the sessions. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cv_peer.h"

bool cv_peer_of(int fd, cv_peer_t *peer)
{
    memset(peer, 0, sizeof *peer);
    peer->len = sizeof peer->addr;
    return getpeername(fd, (struct sockaddr *)&peer->addr, &peer->len) == 0;
}

bool cv_peer_is(int fd, const cv_peer_t *peer)
{
    cv_peer_t now;
    return cv_peer_of(fd, &now) && now.len == peer->len &&
           memcmp(&now.addr, &peer->addr, peer->len) == 0;
}

void cv_peer_format(const cv_peer_t *peer, char *text, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (peer->addr.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&peer->addr;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(text, size, "%s:%u", ip, ntohs(in->sin_port));
    } else if (peer->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&peer->addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(text, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(text, size, "(not an IP peer)");
    }
}

bool cv_peer_host_is(const cv_peer_t *peer, const char *host)
{
    char text[NI_MAXHOST];
    return host &&
           getnameinfo((const struct sockaddr *)&peer->addr, peer->len, text, sizeof text, NULL, 0,
                       NI_NUMERICHOST) == 0 &&
           strcmp(text, host) == 0;
}
