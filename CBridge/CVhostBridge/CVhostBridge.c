#define _GNU_SOURCE
#include "CVhostBridge.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(sizeof(int) == 4, "fd arrays are int32 on the Swift side");

const int CVB_FALLOC_FL_KEEP_SIZE = FALLOC_FL_KEEP_SIZE;
const int CVB_FALLOC_FL_PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE;
const int CVB_FALLOC_FL_ZERO_RANGE = FALLOC_FL_ZERO_RANGE;
const int CVB_MFD_CLOEXEC = MFD_CLOEXEC;
const int CVB_MFD_ALLOW_SEALING = MFD_ALLOW_SEALING;
const int CVB_F_SEAL_SHRINK = F_SEAL_SHRINK;
const int CVB_F_SEAL_GROW = F_SEAL_GROW;
const int CVB_F_SEAL_SEAL = F_SEAL_SEAL;
const int CVB_EFD_CLOEXEC = EFD_CLOEXEC;
const int CVB_EFD_NONBLOCK = EFD_NONBLOCK;
const int CVB_MSG_CTRUNC = MSG_CTRUNC;
const int CVB_MSG_TRUNC = MSG_TRUNC;
const uint32_t CVB_EPOLLIN = EPOLLIN;
const uint32_t CVB_EPOLLOUT = EPOLLOUT;
const uint32_t CVB_EPOLLERR = EPOLLERR;
const uint32_t CVB_EPOLLHUP = EPOLLHUP;
const int CVB_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
const int CVB_EPOLL_CTL_MOD = EPOLL_CTL_MOD;
const int CVB_EPOLL_CTL_DEL = EPOLL_CTL_DEL;

int cvb_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}

int cvb_memfd_add_seals(int fd, int seals) { return fcntl(fd, F_ADD_SEALS, seals); }

int cvb_memfd_get_seals(int fd) { return fcntl(fd, F_GET_SEALS); }

int cvb_eventfd(unsigned int initval, int flags) { return eventfd(initval, flags); }

int cvb_timerfd_create(void) { return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC); }

int cvb_timerfd_arm(int fd, uint64_t nanoseconds) {
    struct itimerspec setting;
    memset(&setting, 0, sizeof(setting));
    setting.it_value.tv_sec = (time_t)(nanoseconds / 1000000000u);
    setting.it_value.tv_nsec = (long)(nanoseconds % 1000000000u);
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &setting, NULL);
}

int cvb_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cvb_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event;
    memset(&event, 0, sizeof(event));
    event.events = events;
    event.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &event);
}

int cvb_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event ready[64];
    if (max > 64) max = 64;
    int count = epoll_wait(epfd, ready, max, timeout_ms);
    for (int i = 0; i < count; i++) {
        datas[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return count;
}

int cvb_accept_cloexec(int sock) { return accept4(sock, NULL, NULL, SOCK_CLOEXEC); }
const int CVB_MSG_DONTWAIT = MSG_DONTWAIT;

ssize_t cvb_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    union {
        char buffer[CMSG_SPACE(sizeof(int) * CVB_MAX_FDS_PER_MESSAGE)];
        struct cmsghdr align;
    } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds > 0) {
        if (nfds > CVB_MAX_FDS_PER_MESSAGE) {
            nfds = CVB_MAX_FDS_PER_MESSAGE;
        }
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buffer;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

ssize_t cvb_recv_with_fds(int sock, void *buf, size_t len, int *fds, int *nfds, int *msg_flags, int flags) {
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    union {
        char buffer[CMSG_SPACE(sizeof(int) * CVB_MAX_FDS_PER_MESSAGE)];
        struct cmsghdr align;
    } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    memset(&control, 0, sizeof(control));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buffer;
    msg.msg_controllen = sizeof(control.buffer);
    *nfds = 0;
    *msg_flags = 0;
    ssize_t received = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
    if (received < 0) {
        return received;
    }
    *msg_flags = msg.msg_flags;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        // The control buffer holds at most CVB_MAX_FDS_PER_MESSAGE descriptors in total, so
        // every one the kernel installed fits in `fds`.
        for (size_t i = 0; i < count && *nfds < CVB_MAX_FDS_PER_MESSAGE; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
            fds[(*nfds)++] = fd;
        }
    }
    return received;
}

int cvb_block_device_size(int fd, uint64_t *size) { return ioctl(fd, BLKGETSIZE64, size); }

int cvb_block_device_logical_sector_size(int fd, int *size) { return ioctl(fd, BLKSSZGET, size); }

const int CVB_O_DIRECT = O_DIRECT;

ssize_t cvb_transfer_nowait(int fd, const struct iovec *vectors, int count, uint64_t offset, int write) {
    return write ? pwritev2(fd, vectors, count, (off_t)offset, RWF_NOWAIT)
                 : preadv2(fd, vectors, count, (off_t)offset, RWF_NOWAIT);
}

int cvb_direct_io_alignment(int fd, uint32_t *memory, uint32_t *offset) {
#ifdef STATX_DIOALIGN
    struct statx info;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &info) != 0) return -1;
    if (!(info.stx_mask & STATX_DIOALIGN)) return 0;
    *memory = info.stx_dio_mem_align;
    *offset = info.stx_dio_offset_align;
    return 1;
#else
    (void)fd; (void)memory; (void)offset;
    return 0;
#endif
}

int cvb_block_device_discard(int fd, uint64_t offset, uint64_t length) {
    uint64_t range[2] = { offset, length };
    return ioctl(fd, BLKDISCARD, &range);
}

int cvb_block_device_zeroout(int fd, uint64_t offset, uint64_t length) {
    uint64_t range[2] = { offset, length };
    return ioctl(fd, BLKZEROOUT, &range);
}

void *cvb_mremap_alias(void *source, size_t length, void *target) {
    return mremap(source, 0, length, MREMAP_MAYMOVE | MREMAP_FIXED, target);
}

void cvb_set_thread_name(const char *name) { (void)prctl(PR_SET_NAME, name, 0, 0, 0); }

int cvb_fallocate(int fd, int mode, uint64_t offset, uint64_t length) {
    return fallocate(fd, mode, (off_t)offset, (off_t)length);
}

void cvb_fence_acquire(void) { atomic_thread_fence(memory_order_acquire); }
void cvb_fence_release(void) { atomic_thread_fence(memory_order_release); }
void cvb_fence_seq_cst(void) { atomic_thread_fence(memory_order_seq_cst); }

void cvb_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

uint16_t cvb_load_acquire_u16(const void *address) {
    return atomic_load_explicit((const _Atomic uint16_t *)address, memory_order_acquire);
}

void cvb_store_release_u16(void *address, uint16_t value) {
    atomic_store_explicit((_Atomic uint16_t *)address, value, memory_order_release);
}

uint16_t cvb_load_relaxed_u16(const void *address) {
    return atomic_load_explicit((const _Atomic uint16_t *)address, memory_order_relaxed);
}

void cvb_or_relaxed_u8(void *address, uint8_t bits) {
    atomic_fetch_or_explicit((_Atomic uint8_t *)address, bits, memory_order_relaxed);
}

_Static_assert(sizeof(struct cvb_bpf_instruction) == sizeof(struct sock_filter), "sock_filter layout");
_Static_assert(offsetof(struct cvb_bpf_instruction, value) == offsetof(struct sock_filter, k), "sock_filter layout");

int cvb_set_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

int cvb_seccomp_set_filter(const struct cvb_bpf_instruction *program, unsigned short count, unsigned int flags) {
    struct sock_fprog fprog = { .len = count, .filter = (struct sock_filter *)program };
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
}

extern void __asan_init(void) __attribute__((weak));
extern void __tsan_init(void) __attribute__((weak));

int cvb_sanitizer_runtime_linked(void) {
    return __asan_init != NULL || __tsan_init != NULL;
}

int cvb_unshare(int flags) {
    return unshare(flags);
}

int cvb_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

#define CVB_SYSCALL(name) { #name, SYS_##name }
static const struct { const char *name; long number; } cvb_syscalls[] = {
    CVB_SYSCALL(read), CVB_SYSCALL(write), CVB_SYSCALL(readv), CVB_SYSCALL(writev),
    CVB_SYSCALL(pread64), CVB_SYSCALL(pwrite64), CVB_SYSCALL(preadv), CVB_SYSCALL(pwritev),
    CVB_SYSCALL(preadv2), CVB_SYSCALL(pwritev2), CVB_SYSCALL(close), CVB_SYSCALL(fstat),
    CVB_SYSCALL(newfstatat), CVB_SYSCALL(statx), CVB_SYSCALL(lseek), CVB_SYSCALL(fsync),
    CVB_SYSCALL(fdatasync), CVB_SYSCALL(fallocate), CVB_SYSCALL(ftruncate), CVB_SYSCALL(fcntl),
    CVB_SYSCALL(ioctl), CVB_SYSCALL(dup), CVB_SYSCALL(dup3), CVB_SYSCALL(mmap), CVB_SYSCALL(munmap),
    CVB_SYSCALL(mremap), CVB_SYSCALL(mprotect), CVB_SYSCALL(madvise), CVB_SYSCALL(brk),
    CVB_SYSCALL(memfd_create), CVB_SYSCALL(eventfd2), CVB_SYSCALL(epoll_create1), CVB_SYSCALL(epoll_ctl),
    CVB_SYSCALL(epoll_pwait), CVB_SYSCALL(epoll_pwait2), CVB_SYSCALL(ppoll), CVB_SYSCALL(pipe2),
    CVB_SYSCALL(recvmsg), CVB_SYSCALL(sendmsg), CVB_SYSCALL(recvfrom), CVB_SYSCALL(sendto),
    CVB_SYSCALL(accept4), CVB_SYSCALL(shutdown), CVB_SYSCALL(setsockopt), CVB_SYSCALL(getsockopt),
    CVB_SYSCALL(getsockname), CVB_SYSCALL(getpeername), CVB_SYSCALL(socket), CVB_SYSCALL(connect),
    CVB_SYSCALL(timerfd_create), CVB_SYSCALL(timerfd_settime),
    CVB_SYSCALL(bind), CVB_SYSCALL(listen), CVB_SYSCALL(unlinkat),
    CVB_SYSCALL(openat), CVB_SYSCALL(readlink),
    CVB_SYSCALL(getdents64), CVB_SYSCALL(futex), CVB_SYSCALL(clone), CVB_SYSCALL(clone3),
    CVB_SYSCALL(set_robust_list), CVB_SYSCALL(rseq), CVB_SYSCALL(exit), CVB_SYSCALL(exit_group),
    CVB_SYSCALL(gettid), CVB_SYSCALL(getpid), CVB_SYSCALL(getppid), CVB_SYSCALL(tgkill), CVB_SYSCALL(prctl),
    CVB_SYSCALL(rt_sigaction), CVB_SYSCALL(rt_sigprocmask), CVB_SYSCALL(rt_sigreturn),
    CVB_SYSCALL(sigaltstack), CVB_SYSCALL(clock_gettime), CVB_SYSCALL(clock_nanosleep),
    CVB_SYSCALL(nanosleep), CVB_SYSCALL(gettimeofday), CVB_SYSCALL(sched_yield),
    CVB_SYSCALL(sched_getaffinity), CVB_SYSCALL(getrandom), CVB_SYSCALL(getrusage),
    CVB_SYSCALL(uname), CVB_SYSCALL(restart_syscall), CVB_SYSCALL(membarrier),
    CVB_SYSCALL(io_uring_setup), CVB_SYSCALL(io_uring_enter), CVB_SYSCALL(io_uring_register),
    CVB_SYSCALL(execve), CVB_SYSCALL(ptrace), CVB_SYSCALL(mount), CVB_SYSCALL(kill),
#ifdef SYS_open
    // x86-64's older calls (arm64 has only the *at forms).
    CVB_SYSCALL(epoll_wait), CVB_SYSCALL(open), CVB_SYSCALL(access), CVB_SYSCALL(readlink), CVB_SYSCALL(poll), CVB_SYSCALL(unlink),
#endif
};

long cvb_syscall_number(const char *name) {
    for (size_t i = 0; i < sizeof cvb_syscalls / sizeof cvb_syscalls[0]; i++) {
        if (strcmp(cvb_syscalls[i].name, name) == 0) return cvb_syscalls[i].number;
    }
    return -1;
}

const unsigned int CVB_SECCOMP_FILTER_FLAG_TSYNC = SECCOMP_FILTER_FLAG_TSYNC;
const uint32_t CVB_SECCOMP_RET_ALLOW = SECCOMP_RET_ALLOW;
const uint32_t CVB_SECCOMP_RET_KILL_PROCESS = SECCOMP_RET_KILL_PROCESS;
const uint32_t CVB_SECCOMP_RET_ERRNO = SECCOMP_RET_ERRNO;
#if defined(__x86_64__)
const uint32_t CVB_AUDIT_ARCH_NATIVE = AUDIT_ARCH_X86_64;
const uint32_t CVB_X32_SYSCALL_BIT = __X32_SYSCALL_BIT;
#elif defined(__aarch64__)
const uint32_t CVB_AUDIT_ARCH_NATIVE = AUDIT_ARCH_AARCH64;
const uint32_t CVB_X32_SYSCALL_BIT = 0;
#else
const uint32_t CVB_AUDIT_ARCH_NATIVE = 0;
const uint32_t CVB_X32_SYSCALL_BIT = 0;
#endif
const uint32_t CVB_SECCOMP_DATA_NR_OFFSET = offsetof(struct seccomp_data, nr);
const uint32_t CVB_SECCOMP_DATA_ARCH_OFFSET = offsetof(struct seccomp_data, arch);
const uint32_t CVB_SECCOMP_DATA_ARGS_OFFSET = offsetof(struct seccomp_data, args);
const uint16_t CVB_BPF_LD_W_ABS = BPF_LD | BPF_W | BPF_ABS;
const uint16_t CVB_BPF_JEQ_K = BPF_JMP | BPF_JEQ | BPF_K;
const uint16_t CVB_BPF_JGE_K = BPF_JMP | BPF_JGE | BPF_K;
const uint16_t CVB_BPF_RET_K = BPF_RET | BPF_K;
const int CVB_CLONE_NEWNS = CLONE_NEWNS;
