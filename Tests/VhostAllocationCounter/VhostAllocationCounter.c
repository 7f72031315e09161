#define _GNU_SOURCE
#include "VhostAllocationCounter.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

// glibc's own entry points: calling them needs no dlsym (which may itself allocate).
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);
extern void __libc_free(void *pointer);

static atomic_bool counting;
// Initial-exec TLS: a preloaded library's TLS is allocated at start, so reading this never
// calls malloc (which a lazily allocated TLS block could, from inside malloc).
static __thread __attribute__((tls_model("initial-exec"))) bool measured_thread;
static atomic_long measured_allocations, measured_frees, other_allocations, other_frees;

static inline void note(bool allocation) {
    if (!atomic_load_explicit(&counting, memory_order_relaxed)) return;
    atomic_long *counter = measured_thread ? (allocation ? &measured_allocations : &measured_frees)
                                           : (allocation ? &other_allocations : &other_frees);
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

void vac_start(void) {
    atomic_store(&measured_allocations, 0);
    atomic_store(&measured_frees, 0);
    atomic_store(&other_allocations, 0);
    atomic_store(&other_frees, 0);
    measured_thread = true;
    atomic_store(&counting, true);
}

void vac_stop(struct vac_counts *measured, struct vac_counts *others) {
    atomic_store(&counting, false);
    measured_thread = false;
    measured->allocations = atomic_load(&measured_allocations);
    measured->frees = atomic_load(&measured_frees);
    others->allocations = atomic_load(&other_allocations);
    others->frees = atomic_load(&other_frees);
}

void *malloc(size_t size) {
    note(true);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    note(true);
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    note(true);
    if (pointer) note(false);
    return __libc_realloc(pointer, size);
}

void free(void *pointer) {
    if (pointer) note(false);
    __libc_free(pointer);
}

void *memalign(size_t alignment, size_t size) {
    note(true);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    note(true);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    note(true);
    // As glibc: a power of two that is a multiple of sizeof(void *).
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 || alignment == 0) return EINVAL;
    void *pointer = __libc_memalign(alignment, size);
    if (!pointer) return ENOMEM;
    *result = pointer;
    return 0;
}

void *valloc(size_t size) {
    note(true);
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    note(true);
    return __libc_pvalloc(size);
}
