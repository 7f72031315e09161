// io_uring through liburing: liburing's inline helpers behind plain functions, so Swift sees
// neither its structures nor its macros. Decides nothing: every choice is the caller's.
#include "CVhostBridge.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

struct cvb_uring {
    struct io_uring ring;
};

struct cvb_uring *cvb_uring_create(unsigned entries, int *error) {
    struct cvb_uring *uring = calloc(1, sizeof *uring);
    if (uring == NULL) {
        *error = ENOMEM;
        return NULL;
    }
    int result = io_uring_queue_init(entries, &uring->ring, 0);
    if (result < 0) {
        free(uring);
        *error = -result;
        return NULL;
    }
    return uring;
}

void cvb_uring_destroy(struct cvb_uring *uring) {
    io_uring_queue_exit(&uring->ring);
    free(uring);
}

int cvb_uring_register_eventfd(struct cvb_uring *uring, int fd) {
    return io_uring_register_eventfd(&uring->ring, fd);
}

int cvb_uring_register_files(struct cvb_uring *uring, const int *fds, unsigned count) {
    return io_uring_register_files(&uring->ring, fds, count);
}

int cvb_uring_register_buffers(struct cvb_uring *uring, const struct iovec *buffers, unsigned count) {
    return io_uring_register_buffers(&uring->ring, buffers, count);
}

int cvb_uring_unregister_buffers(struct cvb_uring *uring) {
    return io_uring_unregister_buffers(&uring->ring);
}

unsigned cvb_uring_space_left(struct cvb_uring *uring) {
    return io_uring_sq_space_left(&uring->ring);
}

static struct io_uring_sqe *cvb_uring_next(struct cvb_uring *uring) {
    return io_uring_get_sqe(&uring->ring);
}

static int cvb_uring_finish(struct io_uring_sqe *sqe, int fixed_file, uint64_t tag) {
    if (fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, tag);
    return 0;
}

int cvb_uring_prep_readv(struct cvb_uring *uring, int fd, int fixed_file, const struct iovec *vectors,
                         unsigned count, uint64_t offset, uint64_t tag) {
    struct io_uring_sqe *sqe = cvb_uring_next(uring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_readv(sqe, fd, vectors, count, offset);
    return cvb_uring_finish(sqe, fixed_file, tag);
}

int cvb_uring_prep_writev(struct cvb_uring *uring, int fd, int fixed_file, const struct iovec *vectors,
                          unsigned count, uint64_t offset, uint64_t tag) {
    struct io_uring_sqe *sqe = cvb_uring_next(uring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_writev(sqe, fd, vectors, count, offset);
    return cvb_uring_finish(sqe, fixed_file, tag);
}

int cvb_uring_prep_read_fixed(struct cvb_uring *uring, int fd, int fixed_file, void *buffer, unsigned length,
                              uint64_t offset, int buffer_index, uint64_t tag) {
    struct io_uring_sqe *sqe = cvb_uring_next(uring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_read_fixed(sqe, fd, buffer, length, offset, buffer_index);
    return cvb_uring_finish(sqe, fixed_file, tag);
}

int cvb_uring_prep_write_fixed(struct cvb_uring *uring, int fd, int fixed_file, const void *buffer, unsigned length,
                               uint64_t offset, int buffer_index, uint64_t tag) {
    struct io_uring_sqe *sqe = cvb_uring_next(uring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_write_fixed(sqe, fd, buffer, length, offset, buffer_index);
    return cvb_uring_finish(sqe, fixed_file, tag);
}

int cvb_uring_prep_fdatasync(struct cvb_uring *uring, int fd, int fixed_file, uint64_t tag) {
    struct io_uring_sqe *sqe = cvb_uring_next(uring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    return cvb_uring_finish(sqe, fixed_file, tag);
}

int cvb_uring_submit(struct cvb_uring *uring) {
    return io_uring_submit(&uring->ring);
}

int cvb_uring_notify_completions(struct cvb_uring *uring, int enabled) {
    return io_uring_cq_eventfd_toggle(&uring->ring, enabled != 0);
}

unsigned cvb_uring_ready(struct cvb_uring *uring) {
    return io_uring_cq_ready(&uring->ring);
}

unsigned cvb_uring_reap(struct cvb_uring *uring, uint64_t *tags, int32_t *results, unsigned capacity) {
    unsigned count = 0;
    struct io_uring_cqe *cqe;
    while (count < capacity && io_uring_peek_cqe(&uring->ring, &cqe) == 0 && cqe != NULL) {
        tags[count] = io_uring_cqe_get_data64(cqe);
        results[count] = cqe->res;
        io_uring_cqe_seen(&uring->ring, cqe);
        count++;
    }
    return count;
}
