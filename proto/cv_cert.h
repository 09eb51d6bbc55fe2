/*  cv_cert.h: the CURVE keys of a czmq certificate file, for the broker
 *  and libcaveat alike.
 */
#ifndef CV_CERT_H
#define CV_CERT_H

#include <stdbool.h>
#include <stdint.h>

#include "cv_proto.h"

/*  Loads a certificate file: the public key, and the secret one when
 *  secret_key is not NULL; then the file read must give group and others
 *  no access (0600 and 0400 do), and its two keys must be a pair. On failure err names the
 *  file and what is wrong, and secret_key is wiped. */
bool cv_cert_load(const char *path, uint8_t public_key[CV_KEY_BYTES], uint8_t *secret_key,
                  cv_error_t *err);

#endif
