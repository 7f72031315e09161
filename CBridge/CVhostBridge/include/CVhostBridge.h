// The thin C bridge: wrappers for what Swift cannot express directly (CMSG macros, variadic
// ioctl, packed epoll_event, C11 fences on shared memory). Every function returns the raw
// result of the call and leaves errno alone; all decisions are made in Swift.
#ifndef CVHOSTBRIDGE_H
#define CVHOSTBRIDGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// The glib and libcap-ng headers come through the CGLib and CCapNG system modules.

/// Largest number of descriptors one recvmsg collects. QEMU sends at most 8 per message
/// (VHOST_MEMORY_BASELINE_NREGIONS); the extra room lets Swift see, and close, a flood.
#define CVB_MAX_FDS_PER_MESSAGE 32

int cvb_memfd_create(const char *name, unsigned int flags);
/// mremap(source, 0, length, MREMAP_MAYMOVE | MREMAP_FIXED, target): a second mapping of the
/// shared pages at `source`, placed at `target` (mremap is variadic, which Swift cannot call).
/// Returns the new address, or MAP_FAILED with errno set.
void *cvb_mremap_alias(void *source, size_t length, void *target);
int cvb_memfd_add_seals(int fd, int seals);
int cvb_memfd_get_seals(int fd);
int cvb_eventfd(unsigned int initval, int flags);
/// A non-blocking, close-on-exec timerfd on CLOCK_MONOTONIC.
int cvb_timerfd_create(void);
/// Arms it to expire once at `nanoseconds` on CLOCK_MONOTONIC (absolute); 0 disarms.
int cvb_timerfd_arm(int fd, uint64_t nanoseconds);

int cvb_epoll_create(void);
int cvb_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// Fills `datas[i]` and `events[i]` for each ready entry; returns the count or -1.
int cvb_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms);

/// accept4 with SOCK_CLOEXEC.
int cvb_accept_cloexec(int sock);
extern const int CVB_MSG_DONTWAIT;

/// sendmsg of `len` bytes with `nfds` descriptors as one SCM_RIGHTS control message.
ssize_t cvb_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
/// recvmsg with MSG_CMSG_CLOEXEC. Every descriptor received is stored in `fds` (room for
/// CVB_MAX_FDS_PER_MESSAGE), `*nfds` says how many; `*msg_flags` carries msg_flags
/// (MSG_CTRUNC, MSG_TRUNC) for Swift to judge. `flags` is passed to recvmsg (MSG_DONTWAIT...).
ssize_t cvb_recv_with_fds(int sock, void *buf, size_t len, int *fds, int *nfds, int *msg_flags, int flags);

/// ioctl(BLKGETSIZE64).
int cvb_block_device_size(int fd, uint64_t *size);
/// ioctl(BLKSSZGET).
int cvb_block_device_logical_sector_size(int fd, int *size);
struct iovec;
/// preadv2 / pwritev2 with RWF_NOWAIT: the transfer if it can be done without blocking (the
/// data in the page cache), else -1 with EAGAIN.
ssize_t cvb_transfer_nowait(int fd, const struct iovec *vectors, int count, uint64_t offset, int write);
/// open(2)'s O_DIRECT (a _GNU_SOURCE flag Swift's Glibc module does not export).
extern const int CVB_O_DIRECT;
/// statx(STATX_DIOALIGN): O_DIRECT's memory and offset alignment for `fd`. 1 when the
/// kernel told (0 values: O_DIRECT unsupported), 0 when it cannot tell, -1 on error.
int cvb_direct_io_alignment(int fd, uint32_t *memory, uint32_t *offset);
/// ioctl(BLKDISCARD) / ioctl(BLKZEROOUT) over [offset, offset+length).
int cvb_block_device_discard(int fd, uint64_t offset, uint64_t length);
int cvb_block_device_zeroout(int fd, uint64_t offset, uint64_t length);

/// Names the calling thread (at most 15 bytes are kept), for ps / top / gdb.
void cvb_set_thread_name(const char *name);

int cvb_fallocate(int fd, int mode, uint64_t offset, uint64_t length);
extern const int CVB_FALLOC_FL_KEEP_SIZE;
extern const int CVB_FALLOC_FL_PUNCH_HOLE;
extern const int CVB_FALLOC_FL_ZERO_RANGE;
extern const int CVB_MFD_CLOEXEC;
extern const int CVB_MFD_ALLOW_SEALING;
extern const int CVB_F_SEAL_SHRINK;
extern const int CVB_F_SEAL_GROW;
extern const int CVB_F_SEAL_SEAL;
extern const int CVB_EFD_CLOEXEC;
extern const int CVB_EFD_NONBLOCK;
extern const int CVB_MSG_CTRUNC;
extern const int CVB_MSG_TRUNC;
extern const uint32_t CVB_EPOLLIN;
extern const uint32_t CVB_EPOLLOUT;
extern const uint32_t CVB_EPOLLERR;
extern const uint32_t CVB_EPOLLHUP;
extern const int CVB_EPOLL_CTL_ADD;
extern const int CVB_EPOLL_CTL_MOD;
extern const int CVB_EPOLL_CTL_DEL;

// Shared-memory ordering for virtqueue rings (C11 atomics; the guest is the other party).
void cvb_fence_acquire(void);
void cvb_fence_release(void);
void cvb_fence_seq_cst(void);
uint16_t cvb_load_acquire_u16(const void *address);
void cvb_store_release_u16(void *address, uint16_t value);
uint16_t cvb_load_relaxed_u16(const void *address);
/// Relaxed atomic OR of one byte (a dirty-log bitmap shared with the front end).
void cvb_or_relaxed_u8(void *address, uint8_t bits);

// A spin-wait hint (x86 PAUSE, arm64 YIELD): lets the sibling hyperthread run while polling.
void cvb_cpu_relax(void);

// io_uring through liburing (uring.c). Submission functions answer 0, or -EBUSY when the
// submission queue is full; the others answer what liburing answers (a negative errno on
// failure).
struct iovec;
struct cvb_uring;
/// io_uring_queue_init with `entries`; NULL and *error set (an errno) on failure.
struct cvb_uring *cvb_uring_create(unsigned entries, int *error);
void cvb_uring_destroy(struct cvb_uring *uring);
int cvb_uring_register_eventfd(struct cvb_uring *uring, int fd);
int cvb_uring_register_files(struct cvb_uring *uring, const int *fds, unsigned count);
int cvb_uring_register_buffers(struct cvb_uring *uring, const struct iovec *buffers, unsigned count);
int cvb_uring_unregister_buffers(struct cvb_uring *uring);
unsigned cvb_uring_space_left(struct cvb_uring *uring);
/// `fd` is an index into the registered files when `fixed_file` is non-zero.
int cvb_uring_prep_readv(struct cvb_uring *uring, int fd, int fixed_file, const struct iovec *vectors,
                         unsigned count, uint64_t offset, uint64_t tag);
int cvb_uring_prep_writev(struct cvb_uring *uring, int fd, int fixed_file, const struct iovec *vectors,
                          unsigned count, uint64_t offset, uint64_t tag);
int cvb_uring_prep_read_fixed(struct cvb_uring *uring, int fd, int fixed_file, void *buffer, unsigned length,
                              uint64_t offset, int buffer_index, uint64_t tag);
int cvb_uring_prep_write_fixed(struct cvb_uring *uring, int fd, int fixed_file, const void *buffer, unsigned length,
                               uint64_t offset, int buffer_index, uint64_t tag);
int cvb_uring_prep_fdatasync(struct cvb_uring *uring, int fd, int fixed_file, uint64_t tag);
/// io_uring_submit: the number submitted, or a negative errno.
int cvb_uring_submit(struct cvb_uring *uring);
/// Whether the registered eventfd is signalled for new completions (a flag in the shared
/// completion ring, no system call): 0, or a negative errno when the kernel cannot toggle it.
int cvb_uring_notify_completions(struct cvb_uring *uring, int enabled);
/// Completions waiting (a load of the completion ring's indices, no system call).
unsigned cvb_uring_ready(struct cvb_uring *uring);
/// Copies up to `capacity` completions out (tag and result: bytes or a negative errno) and
/// marks them seen; returns how many.
unsigned cvb_uring_reap(struct cvb_uring *uring, uint64_t *tags, int32_t *results, unsigned capacity);

// The sandbox (docs/security.md). Swift builds the seccomp program and chooses what it allows.

/// One classic-BPF instruction, laid out as the kernel's struct sock_filter.
struct cvb_bpf_instruction {
    uint16_t code;
    uint8_t jump_if_true;
    uint8_t jump_if_false;
    uint32_t value;
};
/// prctl(PR_SET_NO_NEW_PRIVS, 1): required before an unprivileged process installs a filter.
int cvb_set_no_new_privs(void);
/// seccomp(SECCOMP_SET_MODE_FILTER, flags, {count, program}).
int cvb_seccomp_set_filter(const struct cvb_bpf_instruction *program, unsigned short count, unsigned int flags);
/// The number of the system call `name` on this architecture, or -1 when the bridge's table
/// (the calls a back end could plausibly need) does not list it.
long cvb_syscall_number(const char *name);
/// unshare(2) (needs _GNU_SOURCE, which Swift's Glibc module is not built with).
int cvb_unshare(int flags);
/// 1 if an AddressSanitizer or ThreadSanitizer runtime is linked into this process (their
/// leak checks and reports need ptrace, clone and exec, which a seccomp filter forbids).
int cvb_sanitizer_runtime_linked(void);
/// pivot_root(2), which glibc does not wrap.
int cvb_pivot_root(const char *new_root, const char *put_old);
extern const unsigned int CVB_SECCOMP_FILTER_FLAG_TSYNC;
extern const uint32_t CVB_SECCOMP_RET_ALLOW;
extern const uint32_t CVB_SECCOMP_RET_KILL_PROCESS;
/// SECCOMP_RET_ERRNO: the call fails with the errno in the low 16 bits of the action.
extern const uint32_t CVB_SECCOMP_RET_ERRNO;
/// AUDIT_ARCH_* of the architecture this is built for; 0 where the bridge does not know it.
extern const uint32_t CVB_AUDIT_ARCH_NATIVE;
/// x86-64's x32 ABI marker bit in system call numbers (0 elsewhere).
extern const uint32_t CVB_X32_SYSCALL_BIT;
/// Byte offsets in struct seccomp_data.
extern const uint32_t CVB_SECCOMP_DATA_NR_OFFSET;
extern const uint32_t CVB_SECCOMP_DATA_ARCH_OFFSET;
extern const uint32_t CVB_SECCOMP_DATA_ARGS_OFFSET;
/// Classic-BPF opcodes: load a 32-bit word of seccomp_data; jump if equal / greater or equal to
/// a constant; return a constant.
extern const uint16_t CVB_BPF_LD_W_ABS;
extern const uint16_t CVB_BPF_JEQ_K;
extern const uint16_t CVB_BPF_JGE_K;
extern const uint16_t CVB_BPF_RET_K;
extern const int CVB_CLONE_NEWNS;

#endif
