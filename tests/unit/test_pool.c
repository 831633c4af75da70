/*
 * test_pool.c - the LMTP connection pool against a small LMTP server on a
 * unix socket: never more than `max` connections at once, every caller
 * served (no lost wake-up), connections reused, first come first served.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lmtp/pool.h"
#include "tests/unit/unit.h"

#define NCALLERS	24
#define MAXCONN		3

static atomic_int open_now, open_max, accepted;
static atomic_int hang_up;	/* close after each transaction, as Dovecot
				 * does after its idle timeout */
static atomic_int served_seq;
static int order[NCALLERS];	/* caller index, in the order of MAIL FROM */

static int
atoi_2(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

static void
reply(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) < 0)
		return;
}

/* One connection: a minimal LMTP server, slow on DATA. */
static void *
serve(void *arg)
{
	int fd = (int)(intptr_t)arg, n, cur;
	char buf[4096], line[1024];
	size_t len = 0;
	int in_data = 0, rcpts = 0;

	cur = atomic_fetch_add(&open_now, 1) + 1;
	while ((n = atomic_load(&open_max)) < cur &&
	    !atomic_compare_exchange_weak(&open_max, &n, cur))
		;
	reply(fd, "220 fake LMTP\r\n");
	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - len - 1);
		char *nl;

		if (r <= 0)
			break;
		len += (size_t)r;
		while ((nl = memchr(buf, '\n', len)) != NULL) {
			size_t l = (size_t)(nl - buf) + 1;

			snprintf(line, sizeof(line), "%.*s", (int)l, buf);
			memmove(buf, buf + l, len - l);
			len -= l;
			if (in_data) {
				if (strcmp(line, ".\r\n") == 0) {
					in_data = 0;
					usleep(20000);
					while (rcpts-- > 0)
						reply(fd, "250 2.0.0 ok\r\n");
					rcpts = 0;
					if (atomic_load(&hang_up)) {
						reply(fd, "421 4.4.2 idle\r\n");
						goto out;
					}
				}
				continue;
			}
			if (strncmp(line, "LHLO", 4) == 0)
				reply(fd, "250-fake\r\n250-8BITMIME\r\n"
				    "250 PIPELINING\r\n");
			else if (strncmp(line, "MAIL FROM:<c", 12) == 0) {
				order[atomic_fetch_add(&served_seq, 1) %
				    NCALLERS] = atoi_2(line + 12);
				reply(fd, "250 2.1.0 ok\r\n");
			} else if (strncmp(line, "RCPT", 4) == 0) {
				rcpts++;
				reply(fd, "250 2.1.5 ok\r\n");
			} else if (strncmp(line, "DATA", 4) == 0) {
				in_data = 1;
				reply(fd, "354 go\r\n");
			} else if (strncmp(line, "RSET", 4) == 0) {
				rcpts = 0;
				reply(fd, "250 2.0.0 ok\r\n");
			} else if (strncmp(line, "QUIT", 4) == 0) {
				reply(fd, "221 bye\r\n");
				goto out;
			} else
				reply(fd, "250 2.0.0 ok\r\n");
		}
	}
out:
	atomic_fetch_sub(&open_now, 1);
	close(fd);
	return NULL;
}

static void *
acceptor(void *arg)
{
	int lfd = (int)(intptr_t)arg, fd;
	pthread_t t;

	while ((fd = accept(lfd, NULL, NULL)) >= 0) {
		atomic_fetch_add(&accepted, 1);
		pthread_create(&t, NULL, serve, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
	return NULL;
}

struct caller {
	struct lmtp_pool *p;
	int	 idx;
	int	 ok;
};

static void *
call(void *arg)
{
	struct caller *c = arg;
	const char *rcpt = "a@example.test";
	struct lmtp_msg m;
	struct reply r;
	char from[32];

	memset(&m, 0, sizeof(m));
	m.fd = -1;
	m.mem = "Subject: x\r\n\r\nhi\r\n";
	m.mem_len = strlen(m.mem);
	snprintf(from, sizeof(from), "c%02d@example.test", c->idx);
	lmtp_pool_send(c->p, from, &rcpt, 1, &m, &r);
	c->ok = r.cls == REPLY_OK;
	return NULL;
}

/* lmtp_pool_begin: only idle connections, at most half the pool, and
 * the slot goes back whether the begun transaction is sent or dropped. */
static void
early_envelope(const struct lmtp_server *srv)
{
	const char *rcpt = "a@example.test", *from = "early@example.test";
	struct caller cs[4];
	struct lmtp_conn *b[3];
	struct lmtp_pool *p;
	struct lmtp_msg m;
	struct reply r;
	pthread_t t[4];
	int i;

	p = lmtp_pool_new(srv, "test", 5000, 4, 30);
	UNIT_CHECK("pool: nothing begun without an idle connection",
	    lmtp_pool_begin(p, from, &rcpt, 1) == NULL, "begun");
	/* Four at once leave four idle connections. */
	for (i = 0; i < 4; i++) {
		cs[i].p = p;
		cs[i].idx = i;
		pthread_create(&t[i], NULL, call, &cs[i]);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < 3; i++)
		b[i] = lmtp_pool_begin(p, from, &rcpt, 1);
	UNIT_CHECK("pool: begun on idle connections",
	    b[0] != NULL && b[1] != NULL, "%p %p", (void *)b[0], (void *)b[1]);
	UNIT_CHECK("pool: at most half the pool begun", b[2] == NULL,
	    "a third one of four");
	lmtp_pool_cancel(p, &b[1]);
	UNIT_CHECK("pool: cancel clears the handle", b[1] == NULL, "not NULL");
	b[1] = lmtp_pool_begin(p, from, &rcpt, 1);
	UNIT_CHECK("pool: a dropped one makes room", b[1] != NULL, "NULL");
	memset(&m, 0, sizeof(m));
	m.fd = -1;
	m.mem = "Subject: x\r\n\r\nhi\r\n";
	m.mem_len = strlen(m.mem);
	for (i = 0; i < 2; i++) {
		reply_set(&r, 0, "", "unset");
		lmtp_pool_send_begun(p, &b[i], from, &rcpt, 1, &m, &r);
		UNIT_CHECK("pool: a begun transaction is delivered",
		    r.cls == REPLY_OK && b[i] == NULL, "%d %s", r.code, r.text);
	}
	/* Both slots are ordinary again: four callers at once still go. */
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, call, &cs[i]);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		UNIT_CHECK("pool: every slot back after early envelopes",
		    cs[i].ok, "caller %d failed", i);
	}
	lmtp_pool_free(&p);
}

int
main(void)
{
	struct sockaddr_un sun;
	struct lmtp_server srv;
	struct lmtp_pool *p;
	struct caller cs[NCALLERS];
	pthread_t acc, t[NCALLERS];
	char path[] = "/tmp/edgemail-pool-XXXXXX";
	int lfd, i, all_ok = 1, inversions = 0;

	if (mkdtemp(path) == NULL)
		return 1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/lmtp", path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    listen(lfd, 64) != 0)
		return 1;
	pthread_create(&acc, NULL, acceptor, (void *)(intptr_t)lfd);
	pthread_detach(acc);

	lmtp_server_parse(sun.sun_path, &srv);
	p = lmtp_pool_new(&srv, "test", 5000, MAXCONN, 30);
	for (i = 0; i < NCALLERS; i++) {
		cs[i].p = p;
		cs[i].idx = i;
		pthread_create(&t[i], NULL, call, &cs[i]);
	}
	for (i = 0; i < NCALLERS; i++) {
		pthread_join(t[i], NULL);
		all_ok &= cs[i].ok;
	}
	UNIT_CHECK("pool: every caller is served", all_ok, "a delivery failed");
	UNIT_CHECK("pool: never more than max connections at once",
	    atomic_load(&open_max) <= MAXCONN, "%d open at once",
	    atomic_load(&open_max));
	UNIT_CHECK("pool: connections are reused",
	    atomic_load(&accepted) <= MAXCONN, "%d connections for %d calls",
	    atomic_load(&accepted), NCALLERS);
	lmtp_pool_free(&p);

	/* A kept connection the server closed meanwhile: the next message
	 * goes on a new one instead of failing. */
	atomic_store(&hang_up, 1);
	p = lmtp_pool_new(&srv, "test", 5000, 1, 30);
	for (i = 0; i < 3; i++) {
		cs[i].p = p;
		cs[i].idx = i;
		call(&cs[i]);
		usleep(50000);	/* the server hangs up meanwhile */
	}
	UNIT_CHECK("pool: a connection the server closed is not used",
	    cs[0].ok && cs[1].ok && cs[2].ok, "deliveries %d %d %d", cs[0].ok,
	    cs[1].ok, cs[2].ok);
	lmtp_pool_free(&p);
	atomic_store(&hang_up, 0);

	/* First come, first served: one connection, callers arriving 10 ms
	 * apart while each transaction takes 20 ms, so all but the first
	 * wait; the server must see them in the order they came. */
	atomic_store(&served_seq, 0);
	p = lmtp_pool_new(&srv, "test", 5000, 1, 30);
	for (i = 0; i < NCALLERS; i++) {
		cs[i].p = p;
		cs[i].idx = i;
		pthread_create(&t[i], NULL, call, &cs[i]);
		usleep(10000);
	}
	for (i = 0; i < NCALLERS; i++)
		pthread_join(t[i], NULL);
	for (i = 1; i < NCALLERS; i++)
		if (order[i] < order[i - 1])
			inversions++;
	/* One inversion is tolerated: the arrival order itself depends on
	 * thread start-up under load. */
	UNIT_CHECK("pool: first come, first served", inversions <= 1,
	    "%d callers overtaken", inversions);
	lmtp_pool_free(&p);
	UNIT_CHECK("pool: free sets the pointer to NULL", p == NULL, "not NULL");

	early_envelope(&srv);
	unlink(sun.sun_path);
	rmdir(path);
	return unit_done();
}
