/*  cv_sha256.c: SHA-256 for the audit log, by OpenSSL's libcrypto.
 *
 *  Every leaf the broker writes is hashed once, and `caveat audit verify`
 *  hashes every leaf of the log: SHA-256 is the log's main cost. On the
 *  x86-64 machines caveat runs on, libcrypto uses the CPU's SHA
 *  instructions where libsodium (which caveat uses for everything else)
 *  has portable code only: 3 to 4 times the speed on a 660-byte leaf
 *  (docs/architecture.md, "Dependencies", has the figures). libsodium's
 *  SHA-256 stays where speed does not matter (key IDs).
 *
 *  One EVP_MD_CTX per thread, kept in thread-specific data (freed when
 *  the thread ends), so that a hash allocates nothing, and the digest
 *  fetched once for the process (it lives as long as the process).
 */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>

#include "audit_internal.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;
static EVP_MD *sha256; /* fetched once: EVP_sha256()'s would be fetched again each hash */

static void free_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void init(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256 || pthread_key_create(&ctx_key, free_ctx) != 0)
        abort();
}

static EVP_MD_CTX *thread_ctx(void)
{
    pthread_once(&once, init);
    EVP_MD_CTX *ctx = pthread_getspecific(ctx_key);
    if (!ctx) {
        ctx = EVP_MD_CTX_new();
        if (!ctx || pthread_setspecific(ctx_key, ctx) != 0)
            abort(); /* out of memory: nothing sensible to hash with */
    }
    return ctx;
}

void cv_sha256_parts(const cv_bytes_t *parts, size_t n, uint8_t out[CV_HASH_BYTES])
{
    EVP_MD_CTX *ctx = thread_ctx();
    bool ok = EVP_DigestInit_ex(ctx, sha256, NULL) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = parts[i].len == 0 || EVP_DigestUpdate(ctx, parts[i].data, parts[i].len) == 1;
    unsigned int len = 0;
    if (!ok || EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != CV_HASH_BYTES)
        abort(); /* libcrypto's SHA-256 does not fail on memory it was given */
}

void cv_audit_sha256(const void *data, size_t len, uint8_t out[CV_HASH_BYTES])
{
    const cv_bytes_t part = {data, len};
    cv_sha256_parts(&part, 1, out);
}
