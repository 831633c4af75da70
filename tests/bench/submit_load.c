/*
 * submit_load.c - SMTP submission load for edgemail-bench: authenticated
 * clients sending back to back through edgemail-submit, the way a mail
 * program does (STARTTLS, AUTH PLAIN, then MAIL/RCPT/DATA pipelined).
 *
 * Meant to run against a relay whose relayhost is a null smarthost, with
 * DKIM signing on: the figure is what the relay accepts (scan, DKIM,
 * fsync'd spool, 250) while its queue delivers to the smarthost.
 *
 * Options of struct bench_opts it uses (no new fields needed):
 *   host, port    the relay's STARTTLS listener (e.g. 127.0.0.1:1587)
 *   ca_file       CA of the relay's certificate
 *   from          the user name and envelope sender (the message's From:
 *                 is the same, as the relay requires)
 *   keys_file     a file holding the user's password (run/demo.password)
 *   nrcpt, rcpt   recipients (use --domain of a far domain for relaying)
 *
 * For bench.c (owned by the bench owner) to call, like the other modes:
 *   int  submit_load_init(const struct bench_opts *o,
 *            const struct bench_msg *m, void **shared_r);
 *   void *submit_load_conn(void *arg);    one connection thread
 *
 * A message counts when MAIL, every RCPT and the end of data got 2xx; its
 * latency runs from the MAIL command to the 250 after the data.  A broken
 * connection is an error and is opened again.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "tests/bench/bench.h"

int	submit_load_init(const struct bench_opts *o, const struct bench_msg *m,
	    void **shared_r);
void	*submit_load_conn(void *arg);

#define SL_TIMEOUT_S	120

struct sl_shared {
	SSL_CTX	*ctx;
	char	 auth[1024];	/* "AUTH PLAIN base64\r\n" */
	char	*data;		/* the message, dot-stuffed, without the tail */
	size_t	 data_len;
};

struct sl_conn {
	int	 fd;
	SSL	*ssl;
	char	 in[8192];
	size_t	 inlen;
};

int
submit_load_init(const struct bench_opts *o, const struct bench_msg *m,
    void **shared_r)
{
	struct sl_shared *sh;
	unsigned char raw[600];
	char pass[256];
	FILE *f;
	size_t ul, pl, i, o2;

	if (o->ca_file == NULL || o->keys_file == NULL || o->from == NULL) {
		fprintf(stderr, "submit mode: --ca, --keys-file (the password "
		    "file) and --from (the user) are needed\n");
		return -1;
	}
	if ((f = fopen(o->keys_file, "r")) == NULL ||
	    fgets(pass, sizeof(pass), f) == NULL) {
		fprintf(stderr, "submit mode: cannot read %s\n", o->keys_file);
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	pass[strcspn(pass, "\r\n")] = '\0';
	sh = xcalloc(1, sizeof(*sh));
	ul = strlen(o->from);
	pl = strlen(pass);
	if (ul + pl + 2 > sizeof(raw)) {
		free(sh);
		return -1;
	}
	raw[0] = '\0';
	memcpy(raw + 1, o->from, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, pass, pl);
	memcpy(sh->auth, "AUTH PLAIN ", 11);
	i = 11 + (size_t)EVP_EncodeBlock((unsigned char *)sh->auth + 11, raw,
	    (int)(ul + pl + 2));
	memcpy(sh->auth + i, "\r\n", 3);

	/* Dot-stuff the fixed part once (the tail never starts a line
	 * with a dot). */
	sh->data = xmalloc(2 * m->tail_off + 1);
	for (i = 0, o2 = 0; i < m->tail_off; i++) {
		if (m->data[i] == '.' && (i == 0 || m->data[i - 1] == '\n'))
			sh->data[o2++] = '.';
		sh->data[o2++] = m->data[i];
	}
	sh->data_len = o2;

	if ((sh->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_load_verify_locations(sh->ctx, o->ca_file, NULL) != 1) {
		fprintf(stderr, "submit mode: TLS set-up failed (%s)\n",
		    o->ca_file);
		return -1;
	}
	SSL_CTX_set_min_proto_version(sh->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(sh->ctx, SSL_VERIFY_PEER, NULL);
	*shared_r = sh;
	return 0;
}

static void
sl_close(struct sl_conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->inlen = 0;
}

static int
sl_write(struct sl_conn *c, const char *p, size_t n)
{
	ssize_t w;
	int k;

	while (n > 0) {
		if (c->ssl != NULL) {
			k = SSL_write(c->ssl, p, n > 1 << 30 ? 1 << 30 : (int)n);
			if (k <= 0)
				return -1;
			w = k;
		} else if ((w = send(c->fd, p, n, MSG_NOSIGNAL)) <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One whole reply; returns its code (-1 on error), text of the last
 * line in why. */
static int
sl_reply(struct sl_conn *c, char *why, size_t whysz)
{
	char *nl;
	ssize_t n;
	int code;

	for (;;) {
		while ((nl = memchr(c->in, '\n', c->inlen)) == NULL) {
			if (c->inlen == sizeof(c->in))
				return -1;
			if (c->ssl != NULL)
				n = SSL_read(c->ssl, c->in + c->inlen,
				    (int)(sizeof(c->in) - c->inlen));
			else
				n = recv(c->fd, c->in + c->inlen,
				    sizeof(c->in) - c->inlen, 0);
			if (n <= 0)
				return -1;
			c->inlen += (size_t)n;
		}
		*nl = '\0';
		if (nl - c->in < 3)
			return -1;
		code = (c->in[0] - '0') * 100 + (c->in[1] - '0') * 10 +
		    (c->in[2] - '0');
		if (nl - c->in >= 4 && c->in[3] == '-') {
			c->inlen -= (size_t)(nl + 1 - c->in);
			memmove(c->in, nl + 1, c->inlen);
			continue;
		}
		snprintf(why, whysz, "%.*s", (int)(whysz > 1 ? whysz - 1 : 0), c->in);
		c->inlen -= (size_t)(nl + 1 - c->in);
		memmove(c->in, nl + 1, c->inlen);
		return code;
	}
}

static int
sl_open(struct sl_conn *c, const struct bench_opts *o, struct sl_shared *sh,
    char *why, size_t whysz)
{
	struct addrinfo hints, *res, *ai;
	struct timeval tv = { SL_TIMEOUT_S, 0 };
	int one = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(o->host, o->port, &hints, &res)) != 0) {
		snprintf(why, whysz, "resolve %s: %s", o->host, gai_strerror(rc));
		return -1;
	}
	c->fd = -1;
	for (ai = res; ai != NULL && c->fd < 0; ai = ai->ai_next) {
		c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd >= 0 && connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			close(c->fd);
			c->fd = -1;
		}
	}
	freeaddrinfo(res);
	if (c->fd < 0) {
		snprintf(why, whysz, "connect %s:%s: %s", o->host, o->port,
		    strerror(errno));
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (sl_reply(c, why, whysz) != 220 ||
	    sl_write(c, "EHLO bench.test\r\n", 17) != 0 ||
	    sl_reply(c, why, whysz) != 250 ||
	    sl_write(c, "STARTTLS\r\n", 10) != 0 ||
	    sl_reply(c, why, whysz) != 220)
		return -1;
	if ((c->ssl = SSL_new(sh->ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1 ||
	    SSL_set1_host(c->ssl, o->host) != 1 ||
	    SSL_connect(c->ssl) != 1) {
		snprintf(why, whysz, "TLS handshake failed");
		return -1;
	}
	if (sl_write(c, "EHLO bench.test\r\n", 17) != 0 ||
	    sl_reply(c, why, whysz) != 250 ||
	    sl_write(c, sh->auth, strlen(sh->auth)) != 0 ||
	    sl_reply(c, why, whysz) != 235)
		return -1;
	return 0;
}

void *
submit_load_conn(void *arg)
{
	struct bench_conn_ctx *cx = arg;
	const struct bench_opts *o = cx->o;
	const struct bench_msg *m = cx->msg;
	struct sl_shared *sh = cx->shared;
	struct sl_conn c = { .fd = -1 };
	struct buf cmds;
	char why[512], tail[BENCH_TAIL_LEN + 1];
	double t0, t1;
	int i, ok, code;

	buf_init(&cmds, 0);
	buf_printf(&cmds, "MAIL FROM:<%s>\r\n", o->from);
	for (i = 0; i < m->nrcpt; i++)
		buf_printf(&cmds, "RCPT TO:<%s>\r\n", m->rcpt[i]);
	buf_puts(&cmds, "DATA\r\n");

	while (bench_now() < cx->t_end) {
		if (c.fd < 0 && sl_open(&c, o, sh, why, sizeof(why)) != 0) {
			bench_record(cx, 0, 0, 0, why);
			sl_close(&c);
			break;
		}
		bench_msg_tail(m, bench_next_seq(), tail);
		t0 = bench_now();
		ok = sl_write(&c, cmds.data, cmds.len) == 0;
		why[0] = '\0';
		for (i = 0; ok && i < m->nrcpt + 2; i++) {
			code = sl_reply(&c, why, sizeof(why));
			if (code < 0 || code / 100 != (i == m->nrcpt + 1 ? 3 : 2))
				ok = 0;
		}
		if (ok)
			ok = sl_write(&c, sh->data, sh->data_len) == 0 &&
			    sl_write(&c, tail, BENCH_TAIL_LEN) == 0 &&
			    sl_write(&c, ".\r\n", 3) == 0 &&
			    sl_reply(&c, why, sizeof(why)) / 100 == 2;
		t1 = bench_now();
		bench_record(cx, t0, t1, ok, why[0] ? why : "connection lost");
		if (!ok)
			sl_close(&c);
	}
	if (c.fd >= 0) {
		sl_write(&c, "QUIT\r\n", 6);
		sl_close(&c);
	}
	buf_free(&cmds);
	return NULL;
}
