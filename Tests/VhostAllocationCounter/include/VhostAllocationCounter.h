// The allocation checks' counter, preloaded into the test process (LD_PRELOAD), never linked:
// it replaces malloc and friends with pass-throughs to glibc that count calls per thread while
// counting is on. The tests reach these functions with dlsym (VhostTestSupport's
// AllocationCounter). docs/testing.md says why this is not ordo-one/malloc-interposer.
#ifndef VHOST_ALLOCATION_COUNTER_H
#define VHOST_ALLOCATION_COUNTER_H

/// Calls into the allocator seen while counting was on.
struct vac_counts {
    long allocations;  // malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc, pvalloc
    long frees;        // free of a non-null pointer, and the old block of a moving realloc
};

/// Zeroes the counts and starts counting; the calling thread is the measured one.
void vac_start(void);
/// Stops counting and reports the measured thread's calls and everyone else's.
void vac_stop(struct vac_counts *measured, struct vac_counts *others);

#endif
