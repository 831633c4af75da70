/*
 * dovecot_auth.c - Dovecot auth-client protocol client (see dovecot_auth.h).
 *
 * Locking: `mu` guards everything but the socket reads.  At most one
 * thread reads the socket at a time (`reading`); it owns `in` while it
 * does, takes `mu` to hand each reply to its request, and wakes the
 * waiters.  A thread whose reply came stops reading and lets another
 * waiter take over.  Writes (whole request lines, a few hundred bytes)
 * happen under `mu`.  The reader is the only one that closes the socket
 * while someone may be reading it; anybody else only shuts it down, so
 * a descriptor is never closed under a poll(2) in another thread.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "auth/dovecot_auth.h"
#include "lib/buf.h"
#include "lib/io.h"
#include "lib/log.h"

#define DA_LINE_MAX	16384		/* a reply line */
#define DA_CRED_MAX	1024		/* user name or password */
#define DA_DEFAULT_TIMEOUT 15000	/* ms */

struct da_req {
	unsigned id;
	int	 done;
	enum dovecot_auth_status status;
	struct dovecot_auth_result *res;
	struct da_req *next;
};

struct dovecot_auth {
	char	 path[108];
	int	 timeout_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int	 fd;		/* -1: not connected */
	int	 broken;	/* shut down, to be closed by the reader */
	int	 reading;	/* a thread reads the socket */
	unsigned next_id;
	struct da_req *pending;
	struct buf in;		/* owned by the reader */
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct dovecot_auth *
dovecot_auth_new(const char *socket_path, int timeout_ms)
{
	struct dovecot_auth *a;
	pthread_condattr_t ca;

	if (strlen(socket_path) >= sizeof(a->path))
		return NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	snprintf(a->path, sizeof(a->path), "%s", socket_path);
	a->timeout_ms = timeout_ms > 0 ? timeout_ms : DA_DEFAULT_TIMEOUT;
	a->fd = -1;
	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cv, &ca);
	pthread_condattr_destroy(&ca);
	buf_init(&a->in, DA_LINE_MAX * 4);
	return a;
}

void
dovecot_auth_free(struct dovecot_auth **ap)
{
	struct dovecot_auth *a;

	if (ap == NULL || (a = *ap) == NULL)
		return;
	if (a->fd >= 0)
		close(a->fd);
	buf_free(&a->in);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
	*ap = NULL;
}

/* Every pending request gets TEMP (called locked). */
static void
fail_pending(struct dovecot_auth *a)
{
	struct da_req *q;

	for (q = a->pending; q != NULL; q = q->next) {
		q->done = 1;
		q->status = DOVECOT_AUTH_TEMP;
	}
	a->pending = NULL;
	pthread_cond_broadcast(&a->cv);
}

/* Give up the connection (called locked). */
static void
conn_break(struct dovecot_auth *a)
{
	if (a->fd < 0)
		return;
	fail_pending(a);
	if (a->reading) {
		shutdown(a->fd, SHUT_RDWR);
		a->broken = 1;
	} else {
		close(a->fd);
		a->fd = -1;
		a->broken = 0;
		buf_reset(&a->in);
	}
}

/* Read one line (without LF) from fd into a->in before deadline; the
 * line is a->in.data[0..len).  1 line, 0 timeout, -1 EOF/error. */
static int
read_line(struct dovecot_auth *a, int fd, int64_t deadline, size_t *len_r)
{
	struct pollfd pfd;
	char *nl;
	ssize_t n;
	int64_t left;

	for (;;) {
		if (a->in.len > 0 &&
		    (nl = memchr(a->in.data, '\n', a->in.len)) != NULL) {
			*len_r = (size_t)(nl - a->in.data);
			return 1;
		}
		if (a->in.len >= DA_LINE_MAX)
			return -1;
		if ((left = deadline - now_ms()) <= 0)
			return 0;
		pfd.fd = fd;
		pfd.events = POLLIN;
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (buf_reserve(&a->in, 4096) != 0)
			return -1;
		n = recv(fd, a->in.data + a->in.len, a->in.cap - a->in.len - 1, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		a->in.len += (size_t)n;
		a->in.data[a->in.len] = '\0';
	}
}

/* Connect and do the handshake (called locked, nobody reading). */
static int
conn_open(struct dovecot_auth *a, struct reply *r)
{
	struct sockaddr_un sun;
	struct timeval tv;
	char hello[64];
	int64_t deadline = now_ms() + a->timeout_ms;
	int fd, got_version = 0, rc;
	size_t len;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a->path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	tv.tv_sec = a->timeout_ms / 1000;
	tv.tv_usec = (a->timeout_ms % 1000) * 1000;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		goto fail;
	snprintf(hello, sizeof(hello), "VERSION\t1\t2\nCPID\t%d\n", (int)getpid());
	if (io_send_all(fd, hello, strlen(hello)) != 0)
		goto fail;
	buf_reset(&a->in);
	for (;;) {
		if ((rc = read_line(a, fd, deadline, &len)) != 1) {
			errno = rc == 0 ? ETIMEDOUT : ECONNRESET;
			goto fail;
		}
		a->in.data[len] = '\0';
		if (strncmp(a->in.data, "VERSION\t", 8) == 0) {
			if (strncmp(a->in.data + 8, "1\t", 2) != 0) {
				errno = EPROTO;
				goto fail;
			}
			got_version = 1;
		} else if (strcmp(a->in.data, "DONE") == 0) {
			buf_consume(&a->in, len + 1);
			break;
		}
		buf_consume(&a->in, len + 1);
	}
	if (!got_version) {
		errno = EPROTO;
		goto fail;
	}
	a->fd = fd;
	a->broken = 0;
	log_debug("event=dovecot_auth_connected socket=%s", a->path);
	return 0;
fail:
	log_warnx("event=dovecot_auth_unavailable socket=%s error=\"%s\"",
	    a->path, strerror(errno));
	if (fd >= 0)
		close(fd);
	buf_reset(&a->in);
	reply_set(r, 454, "4.7.0", "Temporary authentication failure");
	return -1;
}

/* Dovecot's tab escaping (\001 -> \0011, \t -> \001t, \n -> \001n ...). */
static void
unescape(char *s)
{
	char *w = s;

	for (; *s != '\0'; s++) {
		if (*s == '\001' && s[1] != '\0') {
			s++;
			*w++ = *s == '1' ? '\001' : *s == 't' ? '\t' :
			    *s == 'r' ? '\r' : *s == 'n' ? '\n' :
			    *s == '0' ? ' ' : *s;
		} else
			*w++ = *s;
	}
	*w = '\0';
}

/* Hand one reply line to its request (called locked). */
static void
dispatch(struct dovecot_auth *a, char *line)
{
	struct da_req *q, **pp;
	char *fields[32], *p;
	size_t nf = 0, i;
	long long id;
	int ok, fail;

	for (p = line; nf < 32; ) {
		fields[nf++] = p;
		if ((p = strchr(p, '\t')) == NULL)
			break;
		*p++ = '\0';
	}
	ok = strcmp(fields[0], "OK") == 0;
	fail = strcmp(fields[0], "FAIL") == 0;
	if (!ok && !fail && strcmp(fields[0], "CONT") != 0)
		return;		/* not about a request */
	if (nf < 2 || str_to_ll(fields[1], 1, UINT32_MAX, &id) != 0)
		return;
	for (pp = &a->pending; (q = *pp) != NULL; pp = &q->next)
		if (q->id == (unsigned)id)
			break;
	if (q == NULL)
		return;		/* timed out already */
	*pp = q->next;
	q->done = 1;
	/* CONT would be a second round of PLAIN: not a success. */
	q->status = ok ? DOVECOT_AUTH_OK : DOVECOT_AUTH_FAIL;
	for (i = 2; i < nf; i++) {
		unescape(fields[i]);
		if (strncmp(fields[i], "user=", 5) == 0)
			snprintf(q->res->user, sizeof(q->res->user), "%s",
			    fields[i] + 5);
		else if (strcmp(fields[i], "nologin") == 0 ||
		    strncmp(fields[i], "nologin=", 8) == 0)
			q->res->nologin = 1;
		else if (strncmp(fields[i], "reason=", 7) == 0)
			snprintf(q->res->reason, sizeof(q->res->reason), "%s",
			    fields[i] + 7);
		else if (fail && strcmp(fields[i], "temp") == 0)
			q->status = DOVECOT_AUTH_TEMP;
	}
	if (q->status == DOVECOT_AUTH_OK && q->res->nologin)
		q->status = DOVECOT_AUTH_FAIL;
	pthread_cond_broadcast(&a->cv);
}

/* Read replies until q is answered or the deadline (called locked, with
 * `reading` set by the caller; drops the lock while it waits). */
static void
read_replies(struct dovecot_auth *a, struct da_req *q, int64_t deadline)
{
	int fd = a->fd, rc;
	size_t len;

	while (!q->done) {
		pthread_mutex_unlock(&a->mu);
		rc = read_line(a, fd, deadline, &len);
		pthread_mutex_lock(&a->mu);
		if (rc == 0)
			break;
		if (rc < 0) {
			if (!a->broken)
				log_warnx("event=dovecot_auth_lost socket=%s",
				    a->path);
			fail_pending(a);
			close(fd);
			a->fd = -1;
			a->broken = 0;
			buf_reset(&a->in);
			break;
		}
		a->in.data[len] = '\0';
		dispatch(a, a->in.data);
		buf_consume(&a->in, len + 1);
	}
	a->reading = 0;
	pthread_cond_broadcast(&a->cv);
}

/* Base64 of "\0user\0password" into out; -1 if too long. */
static int
plain_response(const char *user, const char *pass, char *out, size_t outsz)
{
	unsigned char raw[2 * DA_CRED_MAX + 2];
	size_t ul = strlen(user), pl = strlen(pass);

	if (ul > DA_CRED_MAX || pl > DA_CRED_MAX ||
	    ((ul + pl + 2 + 2) / 3) * 4 + 1 > outsz)
		return -1;
	raw[0] = '\0';
	memcpy(raw + 1, user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, pass, pl);
	EVP_EncodeBlock((unsigned char *)out, raw, (int)(ul + pl + 2));
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

/* A value for a request field: no tabs, newlines or control bytes. */
static int
field_ok(const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if ((unsigned char)*s < 0x20)
			return 0;
	return 1;
}

enum dovecot_auth_status
dovecot_auth_plain(struct dovecot_auth *a, const struct dovecot_auth_req *rq,
    struct dovecot_auth_result *res, struct reply *r)
{
	struct da_req q;
	struct buf line;
	char resp[((2 * DA_CRED_MAX + 2 + 2) / 3) * 4 + 1];
	int64_t deadline;
	struct timespec ts;

	memset(res, 0, sizeof(*res));
	memset(&q, 0, sizeof(q));
	q.res = res;
	if (strchr(rq->user, '\0') == rq->user || !field_ok(rq->service) ||
	    !field_ok(rq->remote_ip) || !field_ok(rq->local_ip) ||
	    !field_ok(rq->session) ||
	    plain_response(rq->user, rq->password, resp, sizeof(resp)) != 0) {
		reply_set(r, 535, "5.7.8", "Authentication credentials invalid");
		return DOVECOT_AUTH_FAIL;
	}
	buf_init(&line, 8192);

	pthread_mutex_lock(&a->mu);
	/* Wait for a broken connection to be closed by its reader. */
	deadline = now_ms() + a->timeout_ms;
	while (a->broken && now_ms() < deadline) {
		ts.tv_sec = (time_t)(deadline / 1000);
		ts.tv_nsec = (long)(deadline % 1000) * 1000000;
		pthread_cond_timedwait(&a->cv, &a->mu, &ts);
	}
	if (a->broken || (a->fd < 0 && conn_open(a, r) != 0)) {
		pthread_mutex_unlock(&a->mu);
		buf_free(&line);
		OPENSSL_cleanse(resp, sizeof(resp));
		if (a->broken)
			reply_set(r, 454, "4.7.0", "Temporary authentication failure");
		return DOVECOT_AUTH_TEMP;
	}
	if (++a->next_id == 0 || a->next_id > UINT32_MAX / 2)
		a->next_id = 1;
	q.id = a->next_id;
	buf_printf(&line, "AUTH\t%u\tPLAIN\tservice=%s", q.id,
	    rq->service != NULL ? rq->service : "smtp");
	if (rq->secured)
		buf_puts(&line, "\tsecured");
	if (rq->session != NULL)
		buf_printf(&line, "\tsession=%s", rq->session);
	if (rq->local_ip != NULL && *rq->local_ip != '\0')
		buf_printf(&line, "\tlip=%s", rq->local_ip);
	if (rq->remote_ip != NULL && *rq->remote_ip != '\0')
		buf_printf(&line, "\trip=%s", rq->remote_ip);
	if (rq->local_port > 0)
		buf_printf(&line, "\tlport=%d", rq->local_port);
	if (rq->remote_port > 0)
		buf_printf(&line, "\trport=%d", rq->remote_port);
	buf_printf(&line, "\tresp=%s\n", resp);
	OPENSSL_cleanse(resp, sizeof(resp));
	/* q lives on this stack until it is off the list again (answered,
	 * failed or timed out, all under mu, before we return). */
	q.next = a->pending;
	/* cppcheck-suppress autoVariables */
	a->pending = &q;
	if (io_send_all(a->fd, line.data, line.len) != 0) {
		log_warnx("event=dovecot_auth_lost socket=%s error=\"%s\"",
		    a->path, strerror(errno));
		conn_break(a);
	}
	if (line.data != NULL)
		OPENSSL_cleanse(line.data, line.len);
	buf_free(&line);

	deadline = now_ms() + a->timeout_ms;
	while (!q.done) {
		if (now_ms() >= deadline)
			break;
		if (!a->reading && a->fd >= 0 && !a->broken) {
			a->reading = 1;
			read_replies(a, &q, deadline);
			continue;
		}
		ts.tv_sec = (time_t)(deadline / 1000);
		ts.tv_nsec = (long)(deadline % 1000) * 1000000;
		pthread_cond_timedwait(&a->cv, &a->mu, &ts);
	}
	if (!q.done) {
		struct da_req **pp;

		for (pp = &a->pending; *pp != NULL; pp = &(*pp)->next)
			if (*pp == &q) {
				*pp = q.next;
				break;
			}
		q.status = DOVECOT_AUTH_TEMP;
		log_warnx("event=dovecot_auth_timeout socket=%s", a->path);
	}
	pthread_mutex_unlock(&a->mu);

	switch (q.status) {
	case DOVECOT_AUTH_OK:
		reply_set(r, 235, "2.7.0", "Authentication successful");
		break;
	case DOVECOT_AUTH_FAIL:
		reply_set(r, 535, "5.7.8", "Authentication credentials invalid");
		break;
	case DOVECOT_AUTH_TEMP:
		reply_set(r, 454, "4.7.0", "Temporary authentication failure");
		break;
	}
	return q.status;
}
