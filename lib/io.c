/*
 * io.c - file-descriptor helpers (see io.h).
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/io.h"

/* write(2), or send(2) with MSG_NOSIGNAL on a socket, until all n bytes
 * are out; EINTR retried. */
static int
put_all(int fd, const void *p, size_t n, int sock)
{
	const char *s = p;
	ssize_t w;

	while (n > 0) {
		w = sock ? send(fd, s, n, MSG_NOSIGNAL) : write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int
io_write_all(int fd, const void *p, size_t n)
{
	return put_all(fd, p, n, 0);
}

int
io_send_all(int fd, const void *p, size_t n)
{
	return put_all(fd, p, n, 1);
}

char *
io_read_file(const char *path, size_t max, size_t *len_r)
{
	char *buf, *shrunk;
	size_t len = 0;
	ssize_t r;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	if ((buf = malloc(max + 1)) == NULL) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	for (;;) {
		r = read(fd, buf + len, max + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len > max) {
			r = -1;
			errno = EFBIG;
			break;
		}
	}
	saved = errno;
	close(fd);
	if (r < 0) {
		free(buf);
		errno = saved;
		return NULL;
	}
	buf[len] = '\0';
	if (len < max && (shrunk = realloc(buf, len + 1)) != NULL)
		buf = shrunk;		/* keep what the file needs, not max */
	if (len_r != NULL)
		*len_r = len;
	return buf;
}
