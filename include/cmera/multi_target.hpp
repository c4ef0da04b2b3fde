// CMERA_MULTI_TARGET: compile a hot kernel twice, for x86-64-v3 (AVX2 + FMA) and for the
// baseline, and let the loader pick one per machine (GCC's target_clones). The portable
// build (no -march) thus runs AVX2 code where the machine has it and stays correct where it
// does not. Other compilers and architectures get the one plain build.
// Trade-off: a clone per kernel, not per program: only the few loops that the profile
// names carry it, so code size and build time stay as they were.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CMERA_MULTI_TARGET __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CMERA_MULTI_TARGET
#endif
