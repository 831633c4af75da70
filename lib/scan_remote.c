/*
 * scan_remote.c - one libclamav engine for every program of a machine:
 * the protocol between edgemail-scand and its clients (the API and the
 * relay with `scan_socket` set).
 *
 * Why: an engine with the official signatures takes about a gigabyte,
 * and while a new database is compiled the old engine keeps serving, so
 * a reload holds two.  With an engine in the API and another in the
 * relay a small server would hold four at a reload; with scand it holds
 * two, and the API and the relay stay small.
 *
 * A unix stream socket; a client keeps its connections open and uses one
 * per scan in flight (a small pool), the daemon serves each connection on
 * a thread of its own and scans with the ordinary in-process scanner
 * (scan.c: fixed workers, reloads).  One request, one answer, in host
 * byte order (both ends are this machine):
 *
 *	request	 struct wire_req, then prefix_len bytes (the header fields
 *		 the client adds on top), then mem_len bytes of message when
 *		 no descriptor comes along.  A message in a file is not
 *		 copied: its descriptor is passed (SCM_RIGHTS) and the daemon
 *		 reads [off, off + len) of it.
 *	answer	 struct wire_resp: the verdict, the signature name (or why
 *		 not), the number of signatures (for PING).
 *
 * A daemon that is down, or dies during a scan, is SCAN_ERROR: a TEMP
 * answer (503 / 451), never "clean".  An idle connection found dead (the
 * daemon was restarted) is replaced once.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/io.h"
#include "lib/scan.h"
#include "lib/scan_remote.h"

#define WIRE_MAGIC	0x31435345u	/* "ESC1" */
#define WIRE_SCAN	1u
#define WIRE_PING	2u
#define WIRE_PREFIX_MAX	(16u * 1024 * 1024)
#define WIRE_MEM_MAX	(64u * 1024 * 1024)
#define WIRE_TIMEOUT	150	/* s: above libclamav's own scan time limit */
#define REMOTE_IDLE_MAX	64

struct wire_req {
	uint32_t magic;
	uint32_t op;
	uint64_t prefix_len;
	uint64_t mem_len;
	uint64_t off;
	uint64_t len;
	uint32_t has_fd;
	uint32_t pad;
};

struct wire_resp {
	uint32_t magic;
	uint32_t verdict;
	uint32_t sigs;
	uint32_t pad;
	char	 name[128];
};

struct scan_remote {
	struct sockaddr_un sun;
	pthread_mutex_t mu;
	int	 idle[REMOTE_IDLE_MAX];
	unsigned nidle;
};

/* ---- both ends ------------------------------------------------------- */

/* Exactly n bytes; -1 on error or end of stream. */
static int
recv_all(int fd, void *p, size_t n)
{
	char *c = p;
	ssize_t r;

	while (n > 0) {
		if ((r = recv(fd, c, n, 0)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ---- client ---------------------------------------------------------- */

struct scan_remote *
scan_remote_new(const char *socket_path)
{
	struct scan_remote *rm;

	if (strlen(socket_path) >= sizeof(rm->sun.sun_path) ||
	    (rm = calloc(1, sizeof(*rm))) == NULL)
		return NULL;
	rm->sun.sun_family = AF_UNIX;
	memcpy(rm->sun.sun_path, socket_path, strlen(socket_path) + 1);
	pthread_mutex_init(&rm->mu, NULL);
	return rm;
}

void
scan_remote_free(struct scan_remote **rp)
{
	struct scan_remote *rm;

	if (rp == NULL || (rm = *rp) == NULL)
		return;
	while (rm->nidle > 0)
		close(rm->idle[--rm->nidle]);
	pthread_mutex_destroy(&rm->mu);
	free(rm);
	*rp = NULL;
}

static int
conn_open(struct scan_remote *rm, char *why, size_t whysz)
{
	struct timeval tv = { WIRE_TIMEOUT, 0 };
	int fd;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(why, whysz, "socket: %s", strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&rm->sun, sizeof(rm->sun)) != 0) {
		snprintf(why, whysz, "edgemail-scand at %s: %s",
		    rm->sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* An idle connection (*fresh = 0) or a new one (*fresh = 1). */
static int
conn_take(struct scan_remote *rm, int *fresh, char *why, size_t whysz)
{
	int fd = -1;

	pthread_mutex_lock(&rm->mu);
	if (rm->nidle > 0)
		fd = rm->idle[--rm->nidle];
	pthread_mutex_unlock(&rm->mu);
	*fresh = fd < 0;
	return fd >= 0 ? fd : conn_open(rm, why, whysz);
}

static void
conn_put(struct scan_remote *rm, int fd)
{
	pthread_mutex_lock(&rm->mu);
	if (rm->nidle < REMOTE_IDLE_MAX) {
		rm->idle[rm->nidle++] = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&rm->mu);
	if (fd >= 0)
		close(fd);
}

/* Room for the one descriptor a request may carry (SCM_RIGHTS). */
union fd_ctl {
	struct cmsghdr h;
	char	 buf[CMSG_SPACE(sizeof(int))];
};

/* A message of len bytes at base, with room for a descriptor when ctl is
 * given; both sides of the protocol use it. */
static void
msg_init(struct msghdr *mh, struct iovec *iov, void *base, size_t len,
    union fd_ctl *ctl)
{
	iov->iov_base = base;
	iov->iov_len = len;
	memset(mh, 0, sizeof(*mh));
	mh->msg_iov = iov;
	mh->msg_iovlen = 1;
	if (ctl != NULL) {
		memset(ctl, 0, sizeof(*ctl));
		mh->msg_control = ctl->buf;
		mh->msg_controllen = sizeof(ctl->buf);
	}
}

/* One request (with in's bytes and descriptor) and its answer. */
static int
exchange(int fd, const struct wire_req *q, const struct scan_input *in,
    struct wire_resp *a)
{
	union fd_ctl ctl;
	struct cmsghdr *cm;
	struct msghdr mh;
	struct iovec iov;
	ssize_t n;

	msg_init(&mh, &iov, (void *)(uintptr_t)q, sizeof(*q),
	    q->has_fd ? &ctl : NULL);
	if (q->has_fd) {
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &in->fd, sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*q))
		return -1;
	if (in != NULL && (io_send_all(fd, in->prefix, in->prefix_len) != 0 ||
	    (!q->has_fd && io_send_all(fd, in->mem, in->mem_len) != 0)))
		return -1;
	if (recv_all(fd, a, sizeof(*a)) != 0 || a->magic != WIRE_MAGIC)
		return -1;
	a->name[sizeof(a->name) - 1] = '\0';
	return 0;
}

/*
 * The request on a pooled connection, again on the next one when an idle
 * connection turns out dead (closed by a scand that restarted: that
 * fails at once); -1 with why.  Never again after a timeout: scand has
 * the request and is working on it or has it queued, and sending it
 * again on every idle connection would only queue more copies.
 */
static int
request(struct scan_remote *rm, const struct wire_req *q,
    const struct scan_input *in, struct wire_resp *a, char *why, size_t whysz)
{
	int fd, fresh, saved;

	for (;;) {
		if ((fd = conn_take(rm, &fresh, why, whysz)) < 0)
			return -1;
		if (exchange(fd, q, in, a) == 0) {
			conn_put(rm, fd);
			return 0;
		}
		saved = errno;
		close(fd);
		if (fresh || saved == EAGAIN || saved == EWOULDBLOCK) {
			snprintf(why, whysz, "edgemail-scand at %s: %s",
			    rm->sun.sun_path, saved == EAGAIN ||
			    saved == EWOULDBLOCK ? "no answer in time" :
			    "connection lost");
			return -1;
		}
	}
}

void
scan_remote_message(struct scan_remote *rm, const struct scan_input *in,
    struct scan_result *r)
{
	struct wire_req q;
	struct wire_resp a;
	char why[200];

	memset(&q, 0, sizeof(q));
	q.magic = WIRE_MAGIC;
	q.op = WIRE_SCAN;
	q.prefix_len = in->prefix_len;
	if (in->fd >= 0) {
		q.has_fd = 1;
		q.off = (uint64_t)in->off;
		q.len = (uint64_t)in->len;
	} else
		q.mem_len = in->mem_len;
	if (request(rm, &q, in, &a, why, sizeof(why)) != 0) {
		r->verdict = SCAN_ERROR;
		snprintf(r->name, sizeof(r->name), "%s", why);
		return;
	}
	r->verdict = a.verdict <= SCAN_ERROR ? (enum scan_verdict)a.verdict :
	    SCAN_ERROR;
	snprintf(r->name, sizeof(r->name), "%s", a.name);
}

int
scan_remote_ready(struct scan_remote *rm, char *why, size_t whysz,
    unsigned *sigs)
{
	struct wire_req q;
	struct wire_resp a;

	memset(&q, 0, sizeof(q));
	q.magic = WIRE_MAGIC;
	q.op = WIRE_PING;
	*sigs = 0;
	if (request(rm, &q, NULL, &a, why, whysz) != 0)
		return 0;
	if (a.verdict != SCAN_CLEAN) {
		snprintf(why, whysz, "edgemail-scand: %s", a.name);
		return 0;
	}
	*sigs = a.sigs;
	return 1;
}

/* ---- daemon ---------------------------------------------------------- */

/* The request header and the descriptor that came with it (-1: none);
 * -1 at the end of the stream or on error. */
static int
recv_req(int fd, struct wire_req *q, int *passed)
{
	union fd_ctl ctl;
	struct cmsghdr *cm;
	struct msghdr mh;
	struct iovec iov;
	ssize_t n;

	*passed = -1;
	msg_init(&mh, &iov, q, sizeof(*q), &ctl);
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (cm = CMSG_FIRSTHDR(&mh); n > 0 && cm != NULL;
	    cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(passed, CMSG_DATA(cm), sizeof(int));
	if (n > 0 && (size_t)n < sizeof(*q) &&
	    recv_all(fd, (char *)q + n, sizeof(*q) - (size_t)n) == 0)
		n = (ssize_t)sizeof(*q);
	return n == (ssize_t)sizeof(*q) ? 0 : -1;
}

void
scan_serve(struct scanner *s, int fd)
{
	struct wire_req q;
	struct wire_resp a;
	struct scan_result res;
	struct scan_input in;
	char *prefix = NULL, *mem = NULL, why[128];
	int passed;

	while (recv_req(fd, &q, &passed) == 0) {
		memset(&a, 0, sizeof(a));
		a.magic = WIRE_MAGIC;
		if (q.magic != WIRE_MAGIC || (q.op != WIRE_SCAN &&
		    q.op != WIRE_PING) || q.prefix_len > WIRE_PREFIX_MAX ||
		    q.mem_len > WIRE_MEM_MAX || (q.has_fd != 0) != (passed >= 0) ||
		    q.off > INT64_MAX || q.len > INT64_MAX - q.off)
			break;		/* not our client: hang up */
		if (q.op == WIRE_PING) {
			a.verdict = scan_ready(s, why, sizeof(why)) ? SCAN_CLEAN :
			    SCAN_ERROR;
			if (a.verdict != SCAN_CLEAN)
				snprintf(a.name, sizeof(a.name), "%s", why);
			a.sigs = scan_signatures(s);
		} else {
			if ((prefix = malloc(q.prefix_len + 1)) == NULL ||
			    (mem = malloc(q.mem_len + 1)) == NULL ||
			    recv_all(fd, prefix, q.prefix_len) != 0 ||
			    recv_all(fd, mem, q.mem_len) != 0)
				break;
			memset(&in, 0, sizeof(in));
			in.prefix = prefix;
			in.prefix_len = q.prefix_len;
			in.fd = passed;
			in.off = (off_t)q.off;
			in.len = (off_t)q.len;
			in.mem = mem;
			in.mem_len = q.mem_len;
			scan_message(s, &in, &res);
			a.verdict = res.verdict;
			snprintf(a.name, sizeof(a.name), "%s", res.name);
			free(prefix);
			free(mem);
			prefix = mem = NULL;
		}
		if (passed >= 0)
			close(passed);
		passed = -1;
		if (io_send_all(fd, &a, sizeof(a)) != 0)
			break;
	}
	if (passed >= 0)
		close(passed);
	free(prefix);
	free(mem);
}
