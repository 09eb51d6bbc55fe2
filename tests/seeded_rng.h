/*  seeded_rng.h: a deterministic PRNG (xorshift64*) for generated test and
 *  benchmark inputs: from the same seed, the same policies and reports
 *  every run. Fast, and good enough to draw names from lists; not for
 *  anything secret. Each file that includes it has its own state.
 */
#ifndef SEEDED_RNG_H
#define SEEDED_RNG_H

#include <stdbool.h>
#include <stdint.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15u; /* set it to reseed; never 0 */

static inline uint64_t rnd64(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}

/*  0 .. n-1 */
static inline int rnd(int n)
{
    return (int)(rnd64() % (uint64_t)n);
}

static inline bool chance(int percent)
{
    return rnd(100) < percent;
}

#endif
