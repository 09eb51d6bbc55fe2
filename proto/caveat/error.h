/*  caveat/error.h: an error as libcaveat and the rest of caveat report it,
 *  a line of text for people and a code for programs.
 *
 *  Installed with libcaveat's public header (caveat.h includes it); the
 *  policy tools and the broker share the same type, where code stays
 *  CV_ERR_FAILED and the message says what went wrong.
 */
#ifndef CAVEAT_ERROR_H
#define CAVEAT_ERROR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  What kind of failure, so that a program need not read the message.
 *  The values are part of the ABI: new codes are only ever added.        */
typedef enum {
    CV_OK = 0,
    CV_ERR_FAILED = 1,      /* anything not listed below: the message says what */
    CV_ERR_BAD_INPUT = 2,   /* a wrong argument, configuration or certificate file */
    CV_ERR_NO_MEMORY = 3,   /* an allocation failed */
    CV_ERR_TIMEOUT = 4,     /* the broker is connected but did not answer in time; for
                               cv_client_receive, no delivery came in time (msg is "") */
    CV_ERR_UNREACHABLE = 5, /* no answer from the broker at all: not running, a wrong
                               address, or a wrong broker certificate */
    CV_ERR_REFUSED_KEY = 6, /* the broker refused this agency's key in the handshake */
    CV_ERR_BROKER = 7,      /* the broker sent Error: broker_code is its ErrorCode */
    CV_ERR_TRANSPORT = 8,   /* the connection cannot take a frame (send queue full) */
    CV_ERR_CLOSED = 9,      /* the session is over (REVOKED, VERSION): make a new client */
    CV_ERR_INTERRUPTED = 10 /* a signal interrupted the wait (czmq's zsys_interrupted) */
} cv_code_t;

/*  One line of text, "FILE:LINE:COL: error: what" when a position is
 *  known, and a code. Only meaningful after a call that failed.          */
typedef struct {
    char msg[512];
    cv_code_t code;
    uint32_t broker_code; /* with CV_ERR_BROKER: the wire ErrorCode (cv_error_code_name) */
} cv_error_t;

#ifdef __cplusplus
}
#endif
#endif
