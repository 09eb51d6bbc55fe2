/*  cv_peer.h: what the kernel says about one accepted TCP connection, by
 *  its descriptor: who is at the other end, and whether the descriptor
 *  still holds that connection.
 */
#ifndef CV_PEER_H
#define CV_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct {
    struct sockaddr_storage addr;
    socklen_t len;
} cv_peer_t;

/*  The address at the other end of fd (getpeername); false when fd is not
 *  a connected socket. */
bool cv_peer_of(int fd, cv_peer_t *peer);

/*  Whether fd is still a socket connected to peer: false once the
 *  descriptor was closed, or reused for anything else. */
bool cv_peer_is(int fd, const cv_peer_t *peer);

/*  Whether peer's address, written as libzmq writes a message's
 *  Peer-Address (getnameinfo, numeric), is host. */
bool cv_peer_host_is(const cv_peer_t *peer, const char *host);

/*  "ip:port" ("[ip]:port" for IPv6). */
void cv_peer_format(const cv_peer_t *peer, char *text, size_t size);

#endif
