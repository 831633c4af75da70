/*
 * http_load.c - signed HTTPS load on edgemail-api: one thread per
 * keep-alive connection, blocking OpenSSL, plain HTTP/1.1.
 *
 * Every thread builds its request once (request line, headers of fixed
 * width, the message) and then, per message, rewrites in place only the
 * tail of the body, the timestamp and the signature, and sends it with a
 * single SSL_write.  The body hash is the shared SHA-256 state of the
 * fixed part plus the 49-byte tail, so a fresh signature costs a few
 * microseconds at any message size (see bench.c).  Latency is from the
 * first byte written to the last byte of the response read.
 *
 * A message counts when the answer is 200 with every recipient delivered
 * (or, with --status 202, 202: queued, no recipient rejected); anything else is an error (its first one is printed).  A connection the
 * server closes is opened again.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "auth/sig.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "tests/bench/bench.h"

#define RESP_MAX	(64 * 1024)
#define TS_WIDTH	10
#define IO_TIMEOUT_SECS	120

struct http_shared {
	SSL_CTX	*ctx;
	char	 key_id[65];
	char	 secret[257];
	size_t	 secret_len;
	char	*target;		/* /v1/messages?mail_from=..&rcpt=.. */
	atomic_int tls_told;
};

struct hconn {
	int	 fd;
	SSL	*ssl;
	char	 rbuf[RESP_MAX];
	size_t	 rlen;
};

/* ---- set-up ------------------------------------------------------------- */

static int
pct_append(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_') {
			if (buf_putc(b, (char)c) != 0)
				return -1;
		} else if (buf_putc(b, '%') != 0 ||
		    buf_putc(b, hex[c >> 4]) != 0 ||
		    buf_putc(b, hex[c & 15]) != 0)
			return -1;
	}
	return 0;
}

/* The key id of the first "KEY_ID SECRET" line of the keys file. */
static int
first_key_id(const char *path, char *out, size_t outsz)
{
	FILE *fp;
	char line[1024];
	int rc = -1;

	if ((fp = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t n = strspn(line, " \t");
		size_t len = strcspn(line + n, " \t\r\n");

		if (line[n] == '#' || len == 0)
			continue;
		if (len < outsz) {
			memcpy(out, line + n, len);
			out[len] = '\0';
			rc = 0;
		}
		break;
	}
	fclose(fp);
	return rc;
}

int
http_load_init(const struct bench_opts *o, const struct bench_msg *m,
    void **shared_r)
{
	struct http_shared *hs = xcalloc(1, sizeof(*hs));
	struct keyring *kr;
	const char *secret;
	struct buf t;
	char err[300];
	int i;

	if ((kr = keyring_load(o->keys_file, err, sizeof(err))) == NULL)
		fatalx("keys: %s", err);
	if (o->key_id != NULL)
		snprintf(hs->key_id, sizeof(hs->key_id), "%s", o->key_id);
	else if (first_key_id(o->keys_file, hs->key_id, sizeof(hs->key_id)) != 0)
		fatalx("keys: no key in %s", o->keys_file);
	if ((secret = keyring_find(kr, hs->key_id, &hs->secret_len)) == NULL ||
	    hs->secret_len >= sizeof(hs->secret))
		fatalx("keys: no usable key '%s' in %s", hs->key_id,
		    o->keys_file);
	memcpy(hs->secret, secret, hs->secret_len);
	keyring_free(&kr);

	buf_init(&t, 0);
	if (buf_puts(&t, "/v1/messages?mail_from=") != 0 ||
	    pct_append(&t, o->from) != 0)
		fatalx("out of memory");
	for (i = 0; i < m->nrcpt; i++)
		if (buf_puts(&t, "&rcpt=") != 0 || pct_append(&t, m->rcpt[i]) != 0)
			fatalx("out of memory");
	hs->target = t.data;

	if ((hs->ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		fatalx("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(hs->ctx, TLS1_2_VERSION);
	if (SSL_CTX_load_verify_locations(hs->ctx, o->ca_file, NULL) != 1)
		fatalx("cannot load the CA file %s", o->ca_file);
	SSL_CTX_set_verify(hs->ctx, SSL_VERIFY_PEER, NULL);
	*shared_r = hs;
	return 0;
}

void
http_load_free(void *shared)
{
	struct http_shared *hs = shared;

	if (hs == NULL)
		return;
	SSL_CTX_free(hs->ctx);
	explicit_bzero(hs->secret, sizeof(hs->secret));
	free(hs->target);
	free(hs);
}

/* ---- one connection ----------------------------------------------------- */

static void
tls_error(char *why, size_t whysz, const char *what)
{
	unsigned long e = ERR_get_error();
	char es[200];

	if (e != 0)
		ERR_error_string_n(e, es, sizeof(es));
	else
		snprintf(es, sizeof(es), "%s", errno ? strerror(errno) :
		    "connection closed");
	snprintf(why, whysz, "%s: %s", what, es);
	ERR_clear_error();
}

static void
hconn_close(struct hconn *h)
{
	if (h->ssl != NULL) {
		SSL_shutdown(h->ssl);
		SSL_free(h->ssl);
		h->ssl = NULL;
	}
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	h->rlen = 0;
}

static int
hconn_open(struct hconn *h, const struct bench_opts *o,
    struct http_shared *hs, char *why, size_t whysz)
{
	struct addrinfo hints, *res, *ai;
	struct timeval tmo = { IO_TIMEOUT_SECS, 0 };
	int gai, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if ((gai = getaddrinfo(o->host, o->port, &hints, &res)) != 0) {
		snprintf(why, whysz, "%s: %s", o->host, gai_strerror(gai));
		return -1;
	}
	h->fd = -1;
	for (ai = res; ai != NULL && h->fd < 0; ai = ai->ai_next) {
		h->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (h->fd < 0)
			continue;
		if (connect(h->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			snprintf(why, whysz, "connect: %s", strerror(errno));
			close(h->fd);
			h->fd = -1;
		}
	}
	freeaddrinfo(res);
	if (h->fd < 0)
		return -1;
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A server that stops answering fails the message, not the run. */
	setsockopt(h->fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo));
	setsockopt(h->fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
	if ((h->ssl = SSL_new(hs->ctx)) == NULL ||
	    SSL_set_fd(h->ssl, h->fd) != 1 ||
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(h->ssl), o->host)
	    != 1) {
		tls_error(why, whysz, "TLS set-up");
		hconn_close(h);
		return -1;
	}
	if (SSL_connect(h->ssl) != 1) {
		tls_error(why, whysz, "TLS handshake");
		hconn_close(h);
		return -1;
	}
	if (atomic_exchange(&hs->tls_told, 1) == 0)
		fprintf(stderr, "edgemail-bench: %s %s\n",
		    SSL_get_version(h->ssl), SSL_get_cipher_name(h->ssl));
	h->rlen = 0;
	return 0;
}

/* Find a header's value in the header block [p, end). */
static const char *
find_header(const char *p, const char *end, const char *name, size_t *len_r)
{
	size_t nlen = strlen(name);

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *v;

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
		    strncasecmp(p, name, nlen) == 0) {
			v = p + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*len_r = (size_t)(eol - v);
			if (*len_r > 0 && v[*len_r - 1] == '\r')
				(*len_r)--;
			return v;
		}
		p = eol + 1;
	}
	return NULL;
}

/*
 * Read one response.  0: a `want` (200: every recipient delivered; 202:
 * queued, none rejected); 1: another
 * complete response (why says what); -1: the connection is unusable.
 * *keep_r is 0 when the server will close the connection.
 */
static int
read_response(struct hconn *h, int want, int *keep_r, char *why,
    size_t whysz)
{
	const char *hend, *v;
	size_t hlen, vlen, total;
	long long clen = -1;
	int status, n;
	char num[24];

	for (;;) {
		hend = h->rlen >= 4 ? memmem(h->rbuf, h->rlen, "\r\n\r\n", 4) :
		    NULL;
		if (hend != NULL)
			break;
		if (h->rlen == sizeof(h->rbuf)) {
			snprintf(why, whysz, "response header too long");
			return -1;
		}
		errno = 0;
		n = SSL_read(h->ssl, h->rbuf + h->rlen,
		    (int)(sizeof(h->rbuf) - h->rlen));
		if (n <= 0) {
			tls_error(why, whysz, "reading the response");
			return -1;
		}
		h->rlen += (size_t)n;
	}
	hlen = (size_t)(hend - h->rbuf) + 4;
	if (h->rlen < 12 || strncmp(h->rbuf, "HTTP/1.", 7) != 0) {
		snprintf(why, whysz, "not an HTTP response");
		return -1;
	}
	memcpy(num, h->rbuf + 9, 3);
	num[3] = '\0';
	status = (int)strtol(num, NULL, 10);
	*keep_r = 1;
	if ((v = find_header(h->rbuf, hend, "Connection", &vlen)) != NULL &&
	    vlen == 5 && strncasecmp(v, "close", 5) == 0)
		*keep_r = 0;
	if ((v = find_header(h->rbuf, hend, "Content-Length", &vlen)) != NULL &&
	    vlen < sizeof(num)) {
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		if (str_to_ll(num, 0, RESP_MAX, &clen) != 0)
			clen = -1;
	}
	if (clen < 0 || hlen + (size_t)clen > sizeof(h->rbuf)) {
		snprintf(why, whysz, "HTTP %d without a usable Content-Length",
		    status);
		return -1;
	}
	total = hlen + (size_t)clen;
	while (h->rlen < total) {
		errno = 0;
		n = SSL_read(h->ssl, h->rbuf + h->rlen,
		    (int)(sizeof(h->rbuf) - h->rlen));
		if (n <= 0) {
			tls_error(why, whysz, "reading the response body");
			return -1;
		}
		h->rlen += (size_t)n;
	}
	n = 0;
	/* 202 (queued) has deferred recipients by definition. */
	if (status != want ||
	    memmem(h->rbuf + hlen, (size_t)clen, "\"status\":\"rejected\"", 19) ||
	    (want == 200 && memmem(h->rbuf + hlen, (size_t)clen,
	    "\"status\":\"deferred\"", 19))) {
		snprintf(why, whysz, "HTTP %d %.*s", status,
		    (int)(clen > 200 ? 200 : clen), h->rbuf + hlen);
		n = 1;
	}
	memmove(h->rbuf, h->rbuf + total, h->rlen - total);
	h->rlen -= total;
	return n;
}

void *
http_load_conn(void *arg)
{
	struct bench_conn_ctx *cx = arg;
	const struct bench_opts *o = cx->o;
	const struct bench_msg *m = cx->msg;
	struct http_shared *hs = cx->shared;
	struct hconn *h = xcalloc(1, sizeof(*h));
	EVP_MD_CTX *sha = EVP_MD_CTX_new(), *base = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	char hex[SIG_HEX_LEN + 1], sig[SIG_HEADER_LEN + 1], ts[TS_WIDTH + 1];
	char why[400], *req, *ts_pos, *sig_pos, *tail_pos;
	struct buf hdr, canon;
	size_t req_len;
	double t0, t1;
	int rc, keep = 1, fails = 0;

	h->fd = -1;
	if (sha == NULL || base == NULL ||
	    EVP_MD_CTX_copy_ex(base, m->prefix_sha) != 1)
		fatalx("SHA-256 state copy failed");

	/* The request once, with fixed-width fields to fill in later. */
	buf_init(&hdr, 0);
	if (buf_printf(&hdr, "POST %s HTTP/1.1\r\n"
	    "Host: %s:%s\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "Content-Length: %zu\r\n"
	    "Edgemail-Key-Id: %s\r\n"
	    "Edgemail-Timestamp: %0*d\r\n"
	    "Edgemail-Signature: v1=%0*d\r\n"
	    "\r\n", hs->target, o->host, o->port, m->size, hs->key_id,
	    TS_WIDTH, 0, SIG_HEX_LEN, 0) != 0)
		fatalx("out of memory");
	req_len = hdr.len + m->size;
	req = xmalloc(req_len);
	memcpy(req, hdr.data, hdr.len);
	memcpy(req + hdr.len, m->data, m->size);
	ts_pos = req + (strstr(hdr.data, "Edgemail-Timestamp: ") - hdr.data) +
	    20;
	sig_pos = req + (strstr(hdr.data, "Edgemail-Signature: v1=") -
	    hdr.data) + 23;
	tail_pos = req + hdr.len + m->tail_off;
	buf_free(&hdr);
	buf_init(&canon, 0);

	for (;;) {
		bench_turn_next(cx);
		if (bench_now() >= cx->t_end)
			break;
		if (h->ssl == NULL) {
			if (hconn_open(h, o, hs, why, sizeof(why)) != 0) {
				bench_record(cx, 0, 0, 0, why);
				if (++fails > 10)
					break;
				usleep(100 * 1000);
				continue;
			}
		}
		/* A fresh message: tail, timestamp, body hash, signature. */
		bench_msg_tail(m, bench_next_seq(), tail_pos);
		snprintf(ts, sizeof(ts), "%0*lld", TS_WIDTH,
		    (long long)time(NULL));
		memcpy(ts_pos, ts, TS_WIDTH);
		if (EVP_MD_CTX_copy_ex(sha, base) != 1 ||
		    EVP_DigestUpdate(sha, tail_pos, BENCH_TAIL_LEN) != 1 ||
		    EVP_DigestUpdate(sha, tail_pos + BENCH_TAIL_LEN, m->size -
		    m->tail_off - BENCH_TAIL_LEN) != 1 ||
		    EVP_DigestFinal_ex(sha, md, &mdlen) != 1)
			fatalx("SHA-256 failed");
		hex_encode(md, mdlen, hex);
		if (sig_canonical(&canon, ts, "POST", hs->target, "", hex) != 0)
			fatalx("out of memory");
		sig_sign(hs->secret, hs->secret_len, canon.data, canon.len, sig);
		memcpy(sig_pos, sig + 3, SIG_HEX_LEN);

		t0 = bench_now();
		errno = 0;
		if (SSL_write(h->ssl, req, (int)req_len) != (int)req_len) {
			tls_error(why, sizeof(why), "sending the request");
			bench_record(cx, 0, 0, 0, why);
			hconn_close(h);
			continue;
		}
		rc = read_response(h, cx->o->http_status, &keep, why,
		    sizeof(why));
		t1 = bench_now();
		bench_record(cx, t0, t1, rc == 0, why);
		if (rc < 0 || !keep)
			hconn_close(h);
	}
	bench_turn_leave(cx);
	hconn_close(h);
	buf_free(&canon);
	EVP_MD_CTX_free(sha);
	EVP_MD_CTX_free(base);
	free(req);
	free(h);
	return NULL;
}
