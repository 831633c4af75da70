/*
 * conn.c - one client connection of edgemail-submit: plain TCP until
 * STARTTLS (or TLS from the first byte on the 465 listener), bounded
 * input, buffered replies.
 *
 * Sockets are blocking; every read and write is bounded by SO_RCVTIMEO /
 * SO_SNDTIMEO set to the smaller of the idle timeout and what is left of
 * the session's deadline, so a silent or slow client can hold a thread
 * for at most that long, also in the middle of a TLS record.  Replies are
 * collected in `out` and sent when the session is about to wait for
 * input (that is what makes PIPELINING work: one write per batch).
 *
 * TLS: TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, no
 * renegotiation, no compression, no session tickets (one process, a
 * small session cache instead).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "smtp-out/submit.h"

#define CONN_IN_MAX	(256 * 1024)	/* pipelined input or DATA chunk */
#define CONN_OUT_MAX	(1024 * 1024)	/* pipelined replies */
#define CONN_READ	(64 * 1024)

/* TLS 1.2 ciphers: ECDHE with AEAD only (Mozilla "intermediate"). */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
ssl_err(void)
{
	static __thread char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

SSL_CTX *
tls_server_ctx(const char *cert_file, const char *key_file, char *err,
    size_t errsz)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errsz, "SSL_CTX_new: %s", ssl_err());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, 1024);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"edgemail-submit",
	    15);
	if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
		snprintf(err, errsz, "TLS ciphers: %s", ssl_err());
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		snprintf(err, errsz, "certificate %s: %s", cert_file, ssl_err());
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errsz, "private key %s: %s", key_file, ssl_err());
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void
conn_init(struct conn *c, int fd, int idle_ms, int64_t deadline)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->idle_ms = idle_ms;
	c->session_deadline = deadline;
	buf_init(&c->in, CONN_IN_MAX);
	buf_init(&c->out, CONN_OUT_MAX);
}

void
conn_free(struct conn *c)
{
	if (c->ssl != NULL) {
		if (!c->eof)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	buf_free(&c->in);
	buf_free(&c->out);
}

/* Set the socket timeouts for the next read or write; -1 when the
 * session deadline has passed. */
static int
arm_timeout(struct conn *c)
{
	struct timeval tv;
	int64_t left = c->session_deadline - monotonic_ms();
	int64_t ms = c->idle_ms;

	if (left <= 0) {
		c->eof = c->timed_out = 1;
		return -1;
	}
	if (left < ms)
		ms = left;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		return -1;
	return 0;
}

int
conn_fill(struct conn *c)
{
	ssize_t n;
	size_t room;
	int e;

	if (c->eof)
		return -1;
	if (c->in.len >= CONN_IN_MAX)
		return 0;		/* the caller consumes first */
	room = CONN_IN_MAX - c->in.len < CONN_READ ? CONN_IN_MAX - c->in.len :
	    CONN_READ;
	if (buf_reserve(&c->in, room) != 0 || arm_timeout(c) != 0)
		return -1;
	for (;;) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			n = SSL_read(c->ssl, c->in.data + c->in.len, (int)room);
			if (n <= 0) {
				e = SSL_get_error(c->ssl, (int)n);
				if (e == SSL_ERROR_SYSCALL &&
				    (errno == EAGAIN || errno == EWOULDBLOCK))
					c->timed_out = 1;
				else if (e == SSL_ERROR_WANT_READ &&
				    (errno == EAGAIN || errno == EWOULDBLOCK))
					c->timed_out = 1;
				c->eof = 1;
				return -1;
			}
		} else {
			n = recv(c->fd, c->in.data + c->in.len, room, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
					c->timed_out = 1;
				c->eof = 1;
				return -1;
			}
		}
		break;
	}
	c->in.len += (size_t)n;
	c->in.data[c->in.len] = '\0';
	return 0;
}

int
conn_flush(struct conn *c)
{
	size_t off = 0;
	ssize_t n;

	if (c->out.len == 0)
		return 0;
	if (c->eof && !c->timed_out)
		goto fail;
	/* A reply after a timeout (421) gets one more idle period. */
	if (c->timed_out)
		c->session_deadline = monotonic_ms() + 5000;
	if (arm_timeout(c) != 0)
		goto fail;
	while (off < c->out.len) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			n = SSL_write(c->ssl, c->out.data + off,
			    (int)(c->out.len - off));
			if (n <= 0)
				goto fail;
		} else {
			n = send(c->fd, c->out.data + off, c->out.len - off,
			    MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				goto fail;
		}
		off += (size_t)n;
	}
	buf_reset(&c->out);
	return 0;
fail:
	buf_reset(&c->out);
	c->eof = 1;
	return -1;
}

int
conn_starttls(struct conn *c, SSL_CTX *ctx)
{
	const char *v;

	if (arm_timeout(c) != 0)
		return -1;
	if ((c->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		log_warnx("event=tls_failed peer=%s error=\"%s\"", c->peer_ip,
		    ssl_err());
		c->eof = 1;
		return -1;
	}
	ERR_clear_error();
	if (SSL_accept(c->ssl) != 1) {
		log_info("event=tls_failed peer=%s error=\"%s\"", c->peer_ip,
		    ssl_err());
		c->eof = 1;
		return -1;
	}
	v = SSL_get_version(c->ssl);
	snprintf(c->tls_version, sizeof(c->tls_version), "%s", v ? v : "?");
	v = SSL_get_cipher_name(c->ssl);
	snprintf(c->tls_cipher, sizeof(c->tls_cipher), "%s", v ? v : "?");
	return 0;
}
