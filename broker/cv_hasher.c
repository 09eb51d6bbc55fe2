/*  cv_hasher.c: checksums off the loop; see cv_hasher.h.
 *
 *  The loop and the worker claim jobs in order from one counter (next), so
 *  each job is normally hashed once, by whichever claimed it; its done
 *  flag (release) publishes the sum to the other (acquire). The loop never
 *  waits long for the worker: on two cores the worker may be descheduled
 *  inside a job, so after about one sum's time the loop takes that sum
 *  itself, into its own copy (the worker may still be writing the job's).
 *  The mutex guards only the batch's hand-over and end, never a sum.
 */
#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "cv_audit.h"
#include "cv_hasher.h"

/*  How long the loop waits for a sum of len bytes the worker is taking:
 *  about twice what the slower sum takes (BLAKE2b, near 2 ns a byte). */
#define WAIT_NS(len) (2000 + 4 * (uint64_t)(len))

struct cv_hasher_t {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;  /* a batch started, or the worker must stop */
    pthread_cond_t ended; /* the worker let go of its batch */
    cv_hash_job_t *jobs;  /* the batch, or NULL */
    size_t n;
    uint64_t batch; /* batches started: the worker takes each once */
    bool working;   /* the worker is inside a batch */
    bool stopping;
    atomic_size_t next; /* the next job to claim */
    uint64_t loop_ns;
    uint64_t handed; /* batches handed over: the worker signalled */
};

void cv_checksum(uint8_t sum[CV_CHECKSUM_BYTES], const void *bytes, size_t len)
{
    crypto_generichash(sum, CV_CHECKSUM_BYTES, bytes ? bytes : (const void *)"", len, NULL, 0);
}

void cv_checksum_sha256(uint8_t sum[CV_CHECKSUM_BYTES], const void *bytes, size_t len)
{
    cv_audit_sha256(bytes ? bytes : (const void *)"", len, sum);
}

static void sum_of(const cv_hash_job_t *job, uint8_t sum[CV_CHECKSUM_BYTES])
{
    (job->fn ? job->fn : cv_checksum)(sum, job->bytes, job->len);
}

static void hash_job(cv_hash_job_t *job)
{
    sum_of(job, job->sum);
    atomic_store_explicit(&job->done, true, memory_order_release);
}

/*  Claims and hashes the next job of the batch; false when none is left. */
static bool hash_next(atomic_size_t *next, cv_hash_job_t *jobs, size_t n)
{
    size_t i = atomic_fetch_add(next, 1);
    if (i >= n)
        return false;
    hash_job(&jobs[i]);
    return true;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *worker(void *arg)
{
    cv_hasher_t *self = arg;
    uint64_t taken = 0;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!self->stopping && (!self->jobs || self->batch == taken))
            pthread_cond_wait(&self->wake, &self->lock);
        if (self->stopping)
            break;
        taken = self->batch;
        cv_hash_job_t *jobs = self->jobs;
        size_t n = self->n;
        self->working = true;
        pthread_mutex_unlock(&self->lock);
        while (hash_next(&self->next, jobs, n))
            ;
        pthread_mutex_lock(&self->lock);
        self->working = false;
        pthread_cond_signal(&self->ended);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

cv_hasher_t *cv_hasher_new(const char *name)
{
    cv_hasher_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->ended, NULL);
    if (pthread_create(&self->thread, NULL, worker, self) != 0) {
        pthread_cond_destroy(&self->ended);
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->lock);
        free(self);
        return NULL;
    }
    pthread_setname_np(self->thread, name); /* a name too long is left unset */
    return self;
}

void cv_hasher_destroy(cv_hasher_t **self_p)
{
    cv_hasher_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    pthread_cond_destroy(&self->ended);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

bool cv_hasher_hands_over(const cv_hash_job_t *jobs, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += jobs[i].len;
    return n > 1 && bytes >= CV_HASHER_HAND_OVER_BYTES;
}

void cv_hasher_start(cv_hasher_t *self, cv_hash_job_t *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        atomic_init(&jobs[i].done, false);
    if (!self)
        return;
    /* a small batch is the loop's own: waking a thread costs more than
     * its sums (docs/performance.md, "Small batches hashed on the loop") */
    bool hand_over = cv_hasher_hands_over(jobs, n);
    pthread_mutex_lock(&self->lock);
    assert(!self->jobs && !self->working);
    self->jobs = jobs;
    self->n = n;
    self->batch++;
    atomic_store(&self->next, 0);
    self->handed += hand_over;
    pthread_mutex_unlock(&self->lock);
    /* signalled after the unlock, so the woken worker does not block at
     * once on the mutex the loop still holds */
    if (hand_over)
        pthread_cond_signal(&self->wake);
}

const uint8_t *cv_hasher_take(cv_hasher_t *self, cv_hash_job_t *jobs, size_t i)
{
    cv_hash_job_t *job = &jobs[i];
    if (atomic_load_explicit(&job->done, memory_order_acquire))
        return job->sum;
    if (!self) {
        hash_job(job);
        return job->sum;
    }
    assert(self->jobs == jobs && i < self->n);
    uint64_t began = now_ns();
    const uint8_t *sum = job->sum;
    /* a job not yet claimed is hashed here (perhaps a later one, when the
     * worker claims i first); one the worker holds is waited for a while */
    while (!atomic_load_explicit(&job->done, memory_order_acquire)) {
        if (atomic_load(&self->next) <= i)
            hash_next(&self->next, jobs, self->n);
        else if (now_ns() - began > WAIT_NS(job->len)) {
            sum_of(job, job->mine);
            sum = job->mine;
            break;
        }
    }
    self->loop_ns += now_ns() - began;
    return sum;
}

void cv_hasher_end(cv_hasher_t *self)
{
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->jobs = NULL; /* a worker not yet woken finds nothing */
    while (self->working)
        pthread_cond_wait(&self->ended, &self->lock);
    pthread_mutex_unlock(&self->lock);
}

uint64_t cv_hasher_loop_ns(const cv_hasher_t *self)
{
    return self ? self->loop_ns : 0;
}

uint64_t cv_hasher_handed(const cv_hasher_t *self)
{
    return self ? self->handed : 0;
}
