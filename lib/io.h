/*
 * io.h - small, careful file-descriptor helpers shared by every program.
 */
#ifndef EDGEMAIL_IO_H
#define EDGEMAIL_IO_H

#include <stddef.h>

/* write(2) until all n bytes are out; retries EINTR.  -1 with errno. */
int	io_write_all(int fd, const void *p, size_t n);
/* The same on a socket, with send(2) and MSG_NOSIGNAL: a peer that went
 * away is -1 (EPIPE), not a SIGPIPE. */
int	io_send_all(int fd, const void *p, size_t n);
/* A whole file into a NUL-terminated malloc'd buffer of at most max
 * bytes; NULL with errno (EFBIG when larger).  *len_r may be NULL. */
char	*io_read_file(const char *path, size_t max, size_t *len_r);

#endif
