/* OURDL_CLONES: compile a loop in vectors (even in a module built without vectorization,
 * setup.py), for several instruction sets at once; the processor runs the widest version it
 * has (GCC's target_clones; one portable version elsewhere). Only for loops whose lanes are
 * independent, so that every version gives the same bits; never an FMA (setup.py says why,
 * and it is said here again in case a compiler lets the attribute reset it). */
#ifndef OURDL_CLONES_H
#define OURDL_CLONES_H

/* OURDL_NO_CLONES (setup.py, from the environment) builds the portable version alone: how
 * the tests check it on a machine that would run a wider one. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(OURDL_NO_CLONES)
#define OURDL_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), \
                                     optimize("tree-vectorize", "fp-contract=off")))
/* The same choice of instruction sets for a chain of scalar operations, not vectorized:
 * AVX-512 gives it 32 registers instead of 16. */
#define OURDL_CLONES_SCALAR __attribute__((target_clones("avx512f", "default"), \
                                            optimize("no-tree-vectorize", "fp-contract=off")))
#else
#define OURDL_CLONES
#define OURDL_CLONES_SCALAR
#endif

#endif
