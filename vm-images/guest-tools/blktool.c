/*
 * blktool: the block-device requests busybox cannot make, for test guests.
 *
 * Every data transfer uses O_DIRECT with aligned buffers, so it reaches the
 * virtio-blk device instead of stopping in the guest page cache. Offsets and
 * lengths must be multiples of the device's logical block size for pread,
 * pwrite, setmark and getmark; the kernel checks discard and zeroout itself.
 *
 * Numbers accept a K, M or G suffix (powers of 1024) and a 0x prefix.
 * Success is silent except for commands that print a value. Errors go to
 * stderr and the exit status is 1 (2 for usage errors).
 *
 * Built statically (gcc -static -O2) into the guest initramfs as /bin/blktool.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1024 * 1024)
#define ALIGN 4096

static const char *command = "blktool";

static void usage(FILE *to)
{
	fputs("usage: blktool COMMAND DEV [ARGS]\n"
	      "  size DEV                       print the size in bytes (BLKGETSIZE64)\n"
	      "  sectorsize DEV                 print the logical block size (BLKSSZGET)\n"
	      "  getro DEV                      print 1 if read-only, else 0 (BLKROGET)\n"
	      "  flush DEV                      fsync the device (virtio-blk FLUSH when the\n"
	      "                                 device has a volatile write cache)\n"
	      "  discard DEV OFFSET LENGTH      BLKDISCARD\n"
	      "  zeroout DEV OFFSET LENGTH      BLKZEROOUT (WRITE_ZEROES when offered)\n"
	      "  pwrite DEV OFFSET FILE         write FILE at OFFSET with O_DIRECT\n"
	      "  pread DEV OFFSET LENGTH OUT    read LENGTH bytes at OFFSET with O_DIRECT into\n"
	      "                                 OUT ('-' for stdout)\n"
	      "  setmark DEV OFFSET TEXT        write TEXT, NUL-padded, as one logical block\n"
	      "                                 at OFFSET with O_DIRECT, then fsync\n"
	      "  getmark DEV OFFSET             print the text stored by setmark at OFFSET\n"
	      "                                 (empty line for a zeroed block)\n"
	      "  verify DEV OFFSET FILE PASSES  read FILE's length at OFFSET PASSES times with\n"
	      "                                 O_DIRECT through one 64 KiB buffer, comparing\n"
	      "                                 each piece with FILE; exit 1 at a difference\n"
	      "Numbers take a K/M/G suffix (x1024) or a 0x prefix.\n",
	      to);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "blktool %s: ", command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void __attribute__((noreturn)) die_usage(const char *why)
{
	fprintf(stderr, "blktool: %s\n", why);
	usage(stderr);
	exit(2);
}

static uint64_t parse_u64(const char *what, const char *text)
{
	char *end = NULL;
	errno = 0;
	if (text[0] == '-' || text[0] == '\0')
		die("%s must be a non-negative number, got '%s'", what, text);
	unsigned long long value = strtoull(text, &end, 0);
	if (errno != 0)
		die("%s '%s': %s", what, text, strerror(errno));
	unsigned shift = 0;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	default: break;
	}
	if (*end != '\0')
		die("%s must be a number, got '%s'", what, text);
	if (shift != 0 && value > (UINT64_MAX >> shift))
		die("%s '%s' is too large", what, text);
	return (uint64_t)value << shift;
}

static int open_dev(const char *dev, int flags)
{
	int fd = open(dev, flags | O_CLOEXEC);
	if (fd < 0)
		die("cannot open %s: %s", dev, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0)
		die("cannot stat %s: %s", dev, strerror(errno));
	if (!S_ISBLK(st.st_mode))
		die("%s is not a block device", dev);
	return fd;
}

static uint64_t dev_size(int fd, const char *dev)
{
	uint64_t size = 0;
	if (ioctl(fd, BLKGETSIZE64, &size) != 0)
		die("BLKGETSIZE64 on %s: %s", dev, strerror(errno));
	return size;
}

static unsigned dev_sector_size(int fd, const char *dev)
{
	int size = 0;
	if (ioctl(fd, BLKSSZGET, &size) != 0)
		die("BLKSSZGET on %s: %s", dev, strerror(errno));
	if (size <= 0)
		die("%s reports logical block size %d", dev, size);
	return (unsigned)size;
}

/* Checks that [offset, offset+length) is inside the device and, when
 * `aligned`, that both ends sit on logical block boundaries. */
static void check_range(int fd, const char *dev, uint64_t offset, uint64_t length, int aligned)
{
	uint64_t size = dev_size(fd, dev);
	if (length == 0)
		die("length must not be zero");
	if (offset > size || length > size - offset)
		die("range offset=%" PRIu64 " length=%" PRIu64 " exceeds the device size %" PRIu64,
		    offset, length, size);
	if (aligned) {
		unsigned sector = dev_sector_size(fd, dev);
		if (offset % sector != 0 || length % sector != 0)
			die("O_DIRECT needs offset (%" PRIu64 ") and length (%" PRIu64
			    ") to be multiples of the logical block size %u",
			    offset, length, sector);
	}
}

static void *aligned_buffer(size_t size)
{
	void *buffer = NULL;
	int rc = posix_memalign(&buffer, ALIGN, size);
	if (rc != 0)
		die("cannot allocate %zu bytes: %s", size, strerror(rc));
	memset(buffer, 0, size);
	return buffer;
}

/* Reads until `want` bytes or end of file; returns the count. */
static size_t read_fully(int fd, const char *name, char *buffer, size_t want)
{
	size_t got = 0;
	while (got < want) {
		ssize_t n = read(fd, buffer + got, want - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("reading %s: %s", name, strerror(errno));
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static void write_fully(int fd, const char *name, const char *buffer, size_t length)
{
	while (length > 0) {
		ssize_t n = write(fd, buffer, length);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("writing %s: %s", name, strerror(errno));
		}
		buffer += n;
		length -= (size_t)n;
	}
}

static void dev_pwrite(int fd, const char *dev, const char *buffer, size_t length, uint64_t offset)
{
	size_t done = 0;
	while (done < length) {
		ssize_t n = pwrite(fd, buffer + done, length - done, (off_t)(offset + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("pwrite %s offset=%" PRIu64 " length=%zu: %s", dev, offset + done,
			    length - done, strerror(errno));
		}
		if (n == 0)
			die("pwrite %s offset=%" PRIu64 ": device accepted no bytes", dev, offset + done);
		done += (size_t)n;
	}
}

static void dev_pread(int fd, const char *dev, char *buffer, size_t length, uint64_t offset)
{
	size_t done = 0;
	while (done < length) {
		ssize_t n = pread(fd, buffer + done, length - done, (off_t)(offset + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("pread %s offset=%" PRIu64 " length=%zu: %s", dev, offset + done,
			    length - done, strerror(errno));
		}
		if (n == 0)
			die("pread %s offset=%" PRIu64 ": unexpected end of device", dev, offset + done);
		done += (size_t)n;
	}
}

static void dev_fsync(int fd, const char *dev)
{
	if (fsync(fd) != 0)
		die("fsync %s: %s", dev, strerror(errno));
}

static int cmd_size(const char *dev)
{
	int fd = open_dev(dev, O_RDONLY);
	printf("%" PRIu64 "\n", dev_size(fd, dev));
	return 0;
}

static int cmd_sectorsize(const char *dev)
{
	int fd = open_dev(dev, O_RDONLY);
	printf("%u\n", dev_sector_size(fd, dev));
	return 0;
}

static int cmd_getro(const char *dev)
{
	int fd = open_dev(dev, O_RDONLY);
	int ro = 0;
	if (ioctl(fd, BLKROGET, &ro) != 0)
		die("BLKROGET on %s: %s", dev, strerror(errno));
	printf("%d\n", ro ? 1 : 0);
	return 0;
}

static int cmd_flush(const char *dev)
{
	/* fsync needs no write access; a read-only device can be flushed too. */
	int fd = open_dev(dev, O_RDONLY);
	dev_fsync(fd, dev);
	return 0;
}

static int cmd_range_ioctl(const char *dev, const char *off, const char *len,
			   unsigned long request, const char *name)
{
	uint64_t range[2] = { parse_u64("OFFSET", off), parse_u64("LENGTH", len) };
	int fd = open_dev(dev, O_WRONLY);
	check_range(fd, dev, range[0], range[1], 0);
	if (ioctl(fd, request, range) != 0)
		die("%s on %s offset=%" PRIu64 " length=%" PRIu64 ": %s", name, dev, range[0],
		    range[1], strerror(errno));
	return 0;
}

/* Opens FILE, a regular file, for reading; its size in *st. */
static int open_input(const char *file, struct stat *st)
{
	int in = open(file, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		die("cannot open %s: %s", file, strerror(errno));
	if (fstat(in, st) != 0)
		die("cannot stat %s: %s", file, strerror(errno));
	if (!S_ISREG(st->st_mode))
		die("%s is not a regular file", file);
	return in;
}

static int cmd_pwrite(const char *dev, const char *off, const char *file)
{
	uint64_t offset = parse_u64("OFFSET", off);
	struct stat st;
	int in = open_input(file, &st);

	int fd = open_dev(dev, O_WRONLY | O_DIRECT);
	/* Check the whole range before writing anything. */
	check_range(fd, dev, offset, (uint64_t)st.st_size, 1);

	char *buffer = aligned_buffer(CHUNK);
	uint64_t written = 0;
	for (;;) {
		size_t got = read_fully(in, file, buffer, CHUNK);
		if (got == 0)
			break;
		if (written + got > (uint64_t)st.st_size)
			die("%s grew while being written", file);
		dev_pwrite(fd, dev, buffer, got, offset + written);
		written += got;
	}
	if (written != (uint64_t)st.st_size)
		die("%s shrank while being written (%" PRIu64 " of %jd bytes)", file, written,
		    (intmax_t)st.st_size);
	return 0;
}

static int cmd_pread(const char *dev, const char *off, const char *len, const char *out_name)
{
	uint64_t offset = parse_u64("OFFSET", off);
	uint64_t length = parse_u64("LENGTH", len);
	int fd = open_dev(dev, O_RDONLY | O_DIRECT);
	check_range(fd, dev, offset, length, 1);

	int out = STDOUT_FILENO;
	if (strcmp(out_name, "-") != 0) {
		out = open(out_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out < 0)
			die("cannot create %s: %s", out_name, strerror(errno));
	}
	char *buffer = aligned_buffer(CHUNK);
	for (uint64_t done = 0; done < length;) {
		size_t want = length - done < CHUNK ? (size_t)(length - done) : CHUNK;
		dev_pread(fd, dev, buffer, want, offset + done);
		write_fully(out, out_name, buffer, want);
		done += want;
	}
	if (out != STDOUT_FILENO && close(out) != 0)
		die("closing %s: %s", out_name, strerror(errno));
	return 0;
}

/* The buffer is written only by the device after its first use: a live migration that
 * misses a device write into it (the dirty log) shows as a difference here. */
#define VERIFY_CHUNK 65536

static int cmd_verify(const char *dev, const char *off, const char *file, const char *count)
{
	uint64_t offset = parse_u64("OFFSET", off);
	uint64_t passes = parse_u64("PASSES", count);
	struct stat st;
	int in = open_input(file, &st);
	size_t length = (size_t)st.st_size;
	if (length == 0 || length % VERIFY_CHUNK != 0)
		die("%s is not a non-zero multiple of %d bytes", file, VERIFY_CHUNK);
	char *expected = malloc(length);
	if (expected == NULL)
		die("out of memory for %zu bytes", length);
	if (read_fully(in, file, expected, length) != length)
		die("%s shrank while being read", file);
	int fd = open_dev(dev, O_RDONLY | O_DIRECT);
	check_range(fd, dev, offset, length, 1);
	char *buffer = aligned_buffer(VERIFY_CHUNK);
	for (uint64_t pass = 0; pass < passes; pass++) {
		for (size_t done = 0; done < length; done += VERIFY_CHUNK) {
			dev_pread(fd, dev, buffer, VERIFY_CHUNK, offset + done);
			if (memcmp(buffer, expected + done, VERIFY_CHUNK) != 0)
				die("pass %" PRIu64 ": the %d bytes at %" PRIu64 " differ from %s", pass,
				    VERIFY_CHUNK, offset + done, file);
		}
	}
	return 0;
}

static int cmd_setmark(const char *dev, const char *off, const char *text)
{
	uint64_t offset = parse_u64("OFFSET", off);
	int fd = open_dev(dev, O_WRONLY | O_DIRECT);
	unsigned sector = dev_sector_size(fd, dev);
	check_range(fd, dev, offset, sector, 1);
	size_t length = strlen(text);
	if (length >= sector)
		die("mark text is %zu bytes; at most %u fit in one block", length, sector - 1);
	char *buffer = aligned_buffer(sector);
	memcpy(buffer, text, length);
	dev_pwrite(fd, dev, buffer, sector, offset);
	dev_fsync(fd, dev);
	return 0;
}

static int cmd_getmark(const char *dev, const char *off)
{
	uint64_t offset = parse_u64("OFFSET", off);
	int fd = open_dev(dev, O_RDONLY | O_DIRECT);
	unsigned sector = dev_sector_size(fd, dev);
	check_range(fd, dev, offset, sector, 1);
	char *buffer = aligned_buffer(sector);
	dev_pread(fd, dev, buffer, sector, offset);
	buffer[sector - 1] = '\0';
	/* Print only the text part; stop at the first NUL or non-printing byte. */
	size_t n = 0;
	while (buffer[n] >= 0x20 && buffer[n] < 0x7f)
		n++;
	printf("%.*s\n", (int)n, buffer);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die_usage("missing command");
	command = argv[1];
	if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0 ||
	    strcmp(command, "help") == 0) {
		usage(stdout);
		return 0;
	}
	int nargs = argc - 2;
	char **a = argv + 2;
	int rc = -1;
	if (strcmp(command, "size") == 0 && nargs == 1)
		rc = cmd_size(a[0]);
	else if (strcmp(command, "sectorsize") == 0 && nargs == 1)
		rc = cmd_sectorsize(a[0]);
	else if (strcmp(command, "getro") == 0 && nargs == 1)
		rc = cmd_getro(a[0]);
	else if (strcmp(command, "flush") == 0 && nargs == 1)
		rc = cmd_flush(a[0]);
	else if (strcmp(command, "discard") == 0 && nargs == 3)
		rc = cmd_range_ioctl(a[0], a[1], a[2], BLKDISCARD, "BLKDISCARD");
	else if (strcmp(command, "zeroout") == 0 && nargs == 3)
		rc = cmd_range_ioctl(a[0], a[1], a[2], BLKZEROOUT, "BLKZEROOUT");
	else if (strcmp(command, "pwrite") == 0 && nargs == 3)
		rc = cmd_pwrite(a[0], a[1], a[2]);
	else if (strcmp(command, "pread") == 0 && nargs == 4)
		rc = cmd_pread(a[0], a[1], a[2], a[3]);
	else if (strcmp(command, "setmark") == 0 && nargs == 3)
		rc = cmd_setmark(a[0], a[1], a[2]);
	else if (strcmp(command, "getmark") == 0 && nargs == 2)
		rc = cmd_getmark(a[0], a[1]);
	else if (strcmp(command, "verify") == 0 && nargs == 4)
		rc = cmd_verify(a[0], a[1], a[2], a[3]);
	else
		die_usage("unknown command or wrong number of arguments");
	if (fflush(stdout) != 0)
		die("writing stdout: %s", strerror(errno));
	return rc;
}
