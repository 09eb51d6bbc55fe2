/*  cv_peer.h: what the kernel says about one accepted TCP connection, by
 *  its descriptor: who is at the other end, and how much it has sent.
 *
 *  Apart from czmq on purpose: the byte counters are in <linux/tcp.h>,
 *  which cannot be included beside the <netinet/tcp.h> that czmq.h pulls in.
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

/*  "ip:port" ("[ip]:port" for IPv6). */
void cv_peer_format(const cv_peer_t *peer, char *text, size_t size);

/*  Bytes the peer has sent on fd since the connection opened (TCP_INFO);
 *  false when the kernel does not say. */
bool cv_peer_bytes_received(int fd, uint64_t *bytes);

#endif
