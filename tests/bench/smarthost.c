/*
 * smarthost.c - a null SMTP smarthost: the relayhost edgemail-submit
 * delivers to in part (f) of `make bench`.  It takes every message and
 * throws it away, so that the run measures the relay and not its peer
 * (`edgemail-bench smarthost --listen HOST:PORT --cert PEM --key PEM
 * [--user USER --password PASS]`).
 *
 * One thread per connection, blocking I/O.  EHLO offers PIPELINING,
 * 8BITMIME, SIZE, ENHANCEDSTATUSCODES and STARTTLS, after TLS (>= 1.2)
 * AUTH PLAIN LOGIN instead of STARTTLS; STARTTLS resets the session as
 * RFC 3207 says.  With --user, MAIL needs AUTH with that user and
 * password.  MAIL, RCPT, RSET and NOOP get 250, DATA 354, and the body is
 * skipped up to the line "." (250), QUIT 221, anything else 502.  Input
 * is read into a buffer and handled line by line, and the replies are
 * written before the next read blocks, which is what pipelining needs.
 * SIGTERM or SIGINT end it with status 0 and the number of messages
 * taken on stderr.  It checks little: a load generator's peer, not a
 * protocol reference.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lmtp/lmtp.h"
#include "tests/bench/bench.h"

#define SH_IN_MAX	(64 * 1024)
#define SH_LINE_MAX	4096
#define SH_CRED_MAX	256
#define SH_TIMEOUT_SECS	300
#define SH_NAME		"smarthost.test"

enum sh_auth { AUTH_NONE, AUTH_PLAIN_WAIT, AUTH_LOGIN_USER, AUTH_LOGIN_PASS };

struct sh_conn {
	int	 fd;
	SSL	*ssl;			/* NULL until STARTTLS */
	char	*in;
	size_t	 len;
	struct buf out;
	int	 quit;
	/* the session; STARTTLS resets it */
	int	 helo;
	int	 authed;
	enum sh_auth auth;
	char	 login_user[SH_CRED_MAX];
	int	 mail;
	int	 nrcpt;
	/* DATA */
	int	 in_data;
	int	 match;			/* bytes of "\r\n.\r\n" matched */
};

struct sh_cmd {
	const char *name;
	void	(*fn)(struct sh_conn *, const char *args);
};

static SSL_CTX *sh_ctx;
static const char *sh_user;
static const char *sh_password;
static atomic_uint_fast64_t sh_messages;


static void
sh_reply(struct sh_conn *c, const char *line)
{
	(void)buf_puts(&c->out, line);
	(void)buf_puts(&c->out, "\r\n");
}

static int
sh_flush(struct sh_conn *c)
{
	const char *p = c->out.data;
	size_t n = c->out.len;

	while (n > 0) {
		ssize_t w;

		if (c->ssl != NULL) {
			int k = SSL_write(c->ssl, p, n > INT32_MAX ?
			    INT32_MAX : (int)n);

			if (k <= 0)
				return -1;
			w = k;
		} else if ((w = send(c->fd, p, n, MSG_NOSIGNAL)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	buf_reset(&c->out);
	return 0;
}

static ssize_t
sh_read(struct sh_conn *c)
{
	size_t room = SH_IN_MAX - c->len;
	ssize_t n;

	if (c->ssl != NULL) {
		int k = SSL_read(c->ssl, c->in + c->len, (int)room);

		return k > 0 ? k : -1;
	}
	do {
		n = recv(c->fd, c->in + c->len, room, 0);
	} while (n < 0 && errno == EINTR);
	return n > 0 ? n : -1;
}

static void
sh_reset_txn(struct sh_conn *c)
{
	c->mail = 0;
	c->nrcpt = 0;
}

/* RFC 3207: after the handshake the client knows nothing it was told. */
static void
sh_reset_session(struct sh_conn *c)
{
	sh_reset_txn(c);
	c->helo = 0;
	c->authed = 0;
	c->auth = AUTH_NONE;
	OPENSSL_cleanse(c->login_user, sizeof(c->login_user));
}

/* Base64 into out (NUL-terminated); its length, or -1. */
static int
sh_b64(const char *s, char *out, size_t outsz)
{
	size_t len = strlen(s);
	int n, pad = 0;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 >= outsz)
		return -1;
	if ((n = EVP_DecodeBlock((unsigned char *)out,
	    (const unsigned char *)s, (int)len)) < 0)
		return -1;
	if (s[len - 1] == '=')
		pad++;
	if (s[len - 2] == '=')
		pad++;
	n -= pad;
	out[n] = '\0';
	return n;
}

static int
sh_check(const char *user, size_t ulen, const char *pass, size_t plen)
{
	return ulen == strlen(sh_user) && plen == strlen(sh_password) &&
	    memcmp(user, sh_user, ulen) == 0 &&
	    CRYPTO_memcmp(pass, sh_password, plen) == 0;
}

static void
sh_auth_done(struct sh_conn *c, int ok)
{
	c->auth = AUTH_NONE;
	OPENSSL_cleanse(c->login_user, sizeof(c->login_user));
	if (ok) {
		c->authed = 1;
		sh_reply(c, "235 2.7.0 Authentication successful");
	} else
		sh_reply(c, "535 5.7.8 Authentication credentials invalid");
}

/* "authzid NUL authcid NUL password", base64. */
static void
sh_auth_plain(struct sh_conn *c, const char *b64)
{
	char dec[3 * SH_CRED_MAX];
	const char *user, *pass, *end;
	int n;

	if (strcmp(b64, "=") == 0 ||
	    (n = sh_b64(b64, dec, sizeof(dec))) < 0) {
		c->auth = AUTH_NONE;
		sh_reply(c, "501 5.5.2 Cannot decode the response");
		return;
	}
	end = dec + n;
	if ((user = memchr(dec, '\0', (size_t)n)) != NULL)
		user++;
	if (user == NULL ||
	    (pass = memchr(user, '\0', (size_t)(end - user))) == NULL) {
		c->auth = AUTH_NONE;
		sh_reply(c, "501 5.5.2 Bad AUTH PLAIN response");
		OPENSSL_cleanse(dec, sizeof(dec));
		return;
	}
	pass++;
	sh_auth_done(c, sh_check(user, (size_t)(pass - 1 - user), pass,
	    (size_t)(end - pass)));
	OPENSSL_cleanse(dec, sizeof(dec));
}

/* A line that answers a 334 challenge. */
static void
sh_auth_line(struct sh_conn *c, const char *line)
{
	char dec[SH_CRED_MAX];
	int n;

	if (strcmp(line, "*") == 0) {
		c->auth = AUTH_NONE;
		sh_reply(c, "501 5.7.0 Authentication cancelled");
		return;
	}
	if (c->auth == AUTH_PLAIN_WAIT) {
		sh_auth_plain(c, line);
		return;
	}
	if ((n = sh_b64(line, dec, sizeof(dec))) < 0) {
		c->auth = AUTH_NONE;
		sh_reply(c, "501 5.5.2 Cannot decode the response");
		return;
	}
	if (c->auth == AUTH_LOGIN_USER) {
		(void)str_copy(c->login_user, sizeof(c->login_user), dec);
		c->auth = AUTH_LOGIN_PASS;
		sh_reply(c, "334 UGFzc3dvcmQ6");	/* "Password:" */
	} else
		sh_auth_done(c, sh_check(c->login_user,
		    strlen(c->login_user), dec, (size_t)n));
	OPENSSL_cleanse(dec, sizeof(dec));
}

static void
sh_cmd_ehlo(struct sh_conn *c, const char *args)
{
	(void)args;
	sh_reset_txn(c);
	c->helo = 1;
	(void)buf_puts(&c->out, "250-" SH_NAME "\r\n250-PIPELINING\r\n"
	    "250-8BITMIME\r\n250-SIZE 67108864\r\n");
	if (c->ssl == NULL)
		sh_reply(c, "250-ENHANCEDSTATUSCODES\r\n250 STARTTLS");
	else if (sh_user != NULL)
		sh_reply(c, "250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN");
	else
		sh_reply(c, "250 ENHANCEDSTATUSCODES");
}

static void
sh_cmd_helo(struct sh_conn *c, const char *args)
{
	(void)args;
	sh_reset_txn(c);
	c->helo = 1;
	sh_reply(c, "250 " SH_NAME);
}

static void
sh_cmd_starttls(struct sh_conn *c, const char *args)
{
	if (c->ssl != NULL) {
		sh_reply(c, "503 5.5.1 TLS already active");
		return;
	}
	if (*args != '\0') {
		sh_reply(c, "501 5.5.4 No parameters allowed");
		return;
	}
	sh_reply(c, "220 2.0.0 Ready to start TLS");
	if (sh_flush(c) != 0) {
		c->quit = 1;
		return;
	}
	/* Input sent before the handshake is not trusted (RFC 3207). */
	c->len = 0;
	if ((c->ssl = SSL_new(sh_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1 || SSL_accept(c->ssl) != 1) {
		c->quit = 1;
		return;
	}
	sh_reset_session(c);
}

static void
sh_cmd_auth(struct sh_conn *c, const char *args)
{
	const char *ir;
	size_t mlen;

	if (sh_user == NULL || c->ssl == NULL) {
		sh_reply(c, c->ssl == NULL ?
		    "530 5.7.0 Must issue a STARTTLS command first" :
		    "502 5.5.1 AUTH not offered");
		return;
	}
	if (c->authed || c->mail) {
		sh_reply(c, "503 5.5.1 Bad sequence of commands");
		return;
	}
	mlen = strcspn(args, " ");
	ir = args[mlen] == ' ' ? args + mlen + 1 : NULL;
	if (mlen == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
		c->auth = AUTH_PLAIN_WAIT;
		if (ir != NULL)
			sh_auth_plain(c, ir);
		else
			sh_reply(c, "334 ");
	} else if (mlen == 5 && strncasecmp(args, "LOGIN", 5) == 0) {
		c->auth = AUTH_LOGIN_USER;
		if (ir != NULL)
			sh_auth_line(c, ir);
		else
			sh_reply(c, "334 VXNlcm5hbWU6");	/* "Username:" */
	} else
		sh_reply(c, "504 5.5.4 Unrecognized authentication type");
}

static void
sh_cmd_mail(struct sh_conn *c, const char *args)
{
	if (!c->helo)
		sh_reply(c, "503 5.5.1 Send EHLO first");
	else if (sh_user != NULL && !c->authed)
		sh_reply(c, "530 5.7.0 Authentication required");
	else if (c->mail)
		sh_reply(c, "503 5.5.1 Nested MAIL command");
	else if (strncasecmp(args, "FROM:", 5) != 0)
		sh_reply(c, "501 5.5.4 Syntax: MAIL FROM:<address>");
	else {
		c->mail = 1;
		sh_reply(c, "250 2.1.0 Ok");
	}
}

static void
sh_cmd_rcpt(struct sh_conn *c, const char *args)
{
	if (!c->mail)
		sh_reply(c, "503 5.5.1 Need MAIL command");
	else if (strncasecmp(args, "TO:", 3) != 0)
		sh_reply(c, "501 5.5.4 Syntax: RCPT TO:<address>");
	else {
		c->nrcpt++;
		sh_reply(c, "250 2.1.5 Ok");
	}
}

static void
sh_cmd_data(struct sh_conn *c, const char *args)
{
	if (*args != '\0')
		sh_reply(c, "501 5.5.4 No parameters allowed");
	else if (c->nrcpt == 0)
		sh_reply(c, "503 5.5.1 Need RCPT command");
	else {
		c->in_data = 1;
		c->match = 2;		/* at the start of a line */
		sh_reply(c, "354 End data with <CR><LF>.<CR><LF>");
	}
}

static void
sh_cmd_rset(struct sh_conn *c, const char *args)
{
	(void)args;
	sh_reset_txn(c);
	sh_reply(c, "250 2.0.0 Ok");
}

static void
sh_cmd_noop(struct sh_conn *c, const char *args)
{
	(void)args;
	sh_reply(c, "250 2.0.0 Ok");
}

static void
sh_cmd_quit(struct sh_conn *c, const char *args)
{
	(void)args;
	sh_reply(c, "221 2.0.0 Bye");
	c->quit = 1;
}

static const struct sh_cmd sh_cmds[] = {
	{ "EHLO",	sh_cmd_ehlo },
	{ "HELO",	sh_cmd_helo },
	{ "STARTTLS",	sh_cmd_starttls },
	{ "AUTH",	sh_cmd_auth },
	{ "MAIL",	sh_cmd_mail },
	{ "RCPT",	sh_cmd_rcpt },
	{ "DATA",	sh_cmd_data },
	{ "RSET",	sh_cmd_rset },
	{ "NOOP",	sh_cmd_noop },
	{ "QUIT",	sh_cmd_quit },
};

/* One line (NUL-terminated, without its line end). */
static void
sh_line(struct sh_conn *c, const char *line)
{
	size_t i, vlen = strcspn(line, " ");

	if (c->auth != AUTH_NONE) {
		sh_auth_line(c, line);
		return;
	}
	for (i = 0; i < sizeof(sh_cmds) / sizeof(sh_cmds[0]); i++)
		if (vlen == strlen(sh_cmds[i].name) &&
		    strncasecmp(line, sh_cmds[i].name, vlen) == 0) {
			sh_cmds[i].fn(c, line[vlen] == ' ' ?
			    line + vlen + 1 : line + vlen);
			return;
		}
	sh_reply(c, "502 5.5.2 Command not recognized");
}

/*
 * Skip message bytes up to the end marker; returns the bytes used.  The
 * match count carries over from one read to the next, so a marker split
 * between two reads is found too.
 */
static size_t
sh_data(struct sh_conn *c, const char *p, size_t n)
{
	size_t used;
	int found;
	uint64_t k;

	used = bench_data_end(&c->match, p, n, &found);
	if (found) {
		k = atomic_fetch_add(&sh_messages, 1) + 1;
		(void)buf_printf(&c->out, "250 2.0.0 Ok: queued as null%llu\r\n",
		    (unsigned long long)k);
		sh_reset_txn(c);
		c->in_data = 0;
	}
	return used;
}

/* Handle what is in the input buffer; the rest of a line waits. */
static void
sh_input(struct sh_conn *c)
{
	size_t pos = 0;

	while (pos < c->len && !c->quit) {
		char *line, *nl;
		size_t ll;

		if (c->in_data) {
			pos += sh_data(c, c->in + pos, c->len - pos);
			continue;
		}
		line = c->in + pos;
		if ((nl = memchr(line, '\n', c->len - pos)) == NULL) {
			if (c->len - pos > SH_LINE_MAX) {
				sh_reply(c, "500 5.5.6 Line too long");
				c->quit = 1;
			}
			break;
		}
		ll = (size_t)(nl - line);
		pos += ll + 1;
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		line[ll] = '\0';
		sh_line(c, line);
		if (c->len == 0)	/* STARTTLS dropped the input */
			return;
	}
	memmove(c->in, c->in + pos, c->len - pos);
	c->len -= pos;
}

static void *
sh_serve(void *arg)
{
	struct sh_conn *c = xcalloc(1, sizeof(*c));
	struct timeval tv = { SH_TIMEOUT_SECS, 0 };
	ssize_t n;

	c->fd = (int)(intptr_t)arg;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	c->in = xmalloc(SH_IN_MAX);
	buf_init(&c->out, 0);
	sh_reply(c, "220 " SH_NAME " ESMTP null smarthost");
	while (!c->quit && sh_flush(c) == 0) {
		if ((n = sh_read(c)) < 0)
			break;
		c->len += (size_t)n;
		sh_input(c);
	}
	(void)sh_flush(c);
	if (c->ssl != NULL) {
		(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	buf_free(&c->out);
	free(c->in);
	free(c);
	return NULL;
}

static int
sh_listen(const char *spec)
{
	struct lmtp_server srv;

	if (lmtp_server_parse(spec, &srv) != 0 || srv.is_unix)
		fatalx("bad --listen '%s' (want HOST:PORT)", spec);
	return bench_listen(spec);
}

static void *
sh_accept_loop(void *arg)
{
	bench_accept_loop(*(int *)arg, sh_serve);
	return NULL;
}

int
smarthost_main(int argc, char **argv)
{
	const char *listen_spec = NULL, *cert = NULL, *key = NULL;
	sigset_t sigs;
	pthread_t tid;
	int lfd, i, sig;

	for (i = 1; i < argc; i++) {
		const char **v = NULL;

		if (strcmp(argv[i], "--listen") == 0)
			v = &listen_spec;
		else if (strcmp(argv[i], "--cert") == 0)
			v = &cert;
		else if (strcmp(argv[i], "--key") == 0)
			v = &key;
		else if (strcmp(argv[i], "--user") == 0)
			v = &sh_user;
		else if (strcmp(argv[i], "--password") == 0)
			v = &sh_password;
		if (v == NULL || i + 1 >= argc) {
			listen_spec = NULL;
			break;
		}
		*v = argv[++i];
	}
	if (listen_spec == NULL || cert == NULL || key == NULL ||
	    (sh_user == NULL) != (sh_password == NULL)) {
		fprintf(stderr, "usage: edgemail-bench smarthost --listen "
		    "HOST:PORT --cert PEM --key PEM [--user USER "
		    "--password PASS]\n");
		return 2;
	}
	if ((sh_ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		fatalx("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(sh_ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(sh_ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(sh_ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(sh_ctx) != 1)
		fatalx("cannot load %s / %s", cert, key);
	lfd = sh_listen(listen_spec);

	/* Signals go to this thread only, through sigwait. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (pthread_create(&tid, NULL, sh_accept_loop, &lfd) != 0)
		fatalx("pthread_create failed");
	fprintf(stderr, "edgemail-bench: smarthost listening on %s\n",
	    listen_spec);
	while (sigwait(&sigs, &sig) != 0)
		;
	fprintf(stderr, "edgemail-bench: smarthost: %llu messages received\n",
	    (unsigned long long)atomic_load(&sh_messages));
	/* Connection threads may be inside OpenSSL: no exit handlers. */
	_exit(0);
}
