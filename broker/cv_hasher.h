/*  cv_hasher.h: the sums of a batch of byte strings (each job says which
 *  sum; BLAKE2b-256 when it says none), taken by a worker thread while the broker's loop
 *  goes on with its other work.
 *
 *  The loop prepares a Publish's reports (checks, stamps, packs), starts
 *  their sums here, then stores them 16 at a time (cv_store_put_reports),
 *  asking for each batch's sums before it stores the batch: by then the
 *  worker has usually taken them. A sum nobody has begun
 *  when the loop asks is taken on the loop, so the loop never waits for
 *  the worker to wake, and one the worker is in is waited for no longer
 *  than a sum takes.
 *
 *  One batch at a time, and only the loop (one thread) calls these.
 */
#ifndef CV_HASHER_H
#define CV_HASHER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CV_CHECKSUM_BYTES 32 /* BLAKE2b-256 or SHA-256: the store's format says which */

/*  A 32-byte hash of bytes (cv_checksum's form). */
typedef void cv_hash_fn(uint8_t sum[CV_CHECKSUM_BYTES], const void *bytes, size_t len);

typedef struct {
    const uint8_t *bytes;
    size_t len;
    cv_hash_fn *fn;                  /* how it is hashed; NULL: cv_checksum */
    uint8_t sum[CV_CHECKSUM_BYTES];  /* the claimer's */
    uint8_t mine[CV_CHECKSUM_BYTES]; /* the loop's, when it tired of waiting */
    atomic_bool done;                /* set by whoever claimed the job, once sum is written */
} cv_hash_job_t;

typedef struct cv_hasher_t cv_hasher_t;

/*  The sums themselves, on the calling thread: BLAKE2b-256 (libsodium's
 *  crypto_generichash), the checksum of stores of format 4 and before,
 *  and SHA-256 (OpenSSL's, with the CPU's SHA instructions where it has
 *  them: about 2.6 times as fast here), that of stores made since. */
void cv_checksum(uint8_t sum[CV_CHECKSUM_BYTES], const void *bytes, size_t len);
void cv_checksum_sha256(uint8_t sum[CV_CHECKSUM_BYTES], const void *bytes, size_t len);

/*  Starts the worker thread, named name (at most 15 bytes: what `top -H`
 *  and /proc/PID/task/TID/comm show); NULL when it cannot (sums are then
 *  taken on the loop: the functions below accept a NULL hasher). */
cv_hasher_t *cv_hasher_new(const char *name);
void cv_hasher_destroy(cv_hasher_t **self_p);

/*  A batch of fewer bytes than this is not handed to the worker: waking
 *  a thread (a futex, an interrupt to the other core, a switch there)
 *  costs more than the sums, 25-35 us for 32 KB on the loop. At the
 *  fan-out, where a turn's batches are a few KB, handing each over cost
 *  caveatd about 5 % of a core more than hashing them on the loop. */
#define CV_HASHER_HAND_OVER_BYTES (32 * 1024)

/*  Whether a batch of n jobs would be handed to the worker: two or more,
 *  and CV_HASHER_HAND_OVER_BYTES in all. */
bool cv_hasher_hands_over(const cv_hash_job_t *jobs, size_t n);
/*  Starts a batch: jobs[0..n), handed to the worker when
 *  cv_hasher_hands_over says so. They must stay where they are, and their
 *  bytes unchanged, until cv_hasher_end. */
void cv_hasher_start(cv_hasher_t *self, cv_hash_job_t *jobs, size_t n);
/*  The sum of jobs[i] (of the batch started): the worker's, or taken now. */
const uint8_t *cv_hasher_take(cv_hasher_t *self, cv_hash_job_t *jobs, size_t i);
/*  Ends the batch: on return the worker no longer reads the jobs. */
void cv_hasher_end(cv_hasher_t *self);

/*  Nanoseconds the loop spent on sums (taken or waited for) since the
 *  hasher began: what the checksum costs the loop. */
uint64_t cv_hasher_loop_ns(const cv_hasher_t *self);

/*  Batches handed to the worker (it was signalled) since the hasher
 *  began. A worker woken for some other reason may take a small batch
 *  too; the sums are the same whoever takes them. */
uint64_t cv_hasher_handed(const cv_hasher_t *self);

#endif
