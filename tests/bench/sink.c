/*
 * sink.c - a null LMTP server: it accepts every command at once and
 * throws the message away, so that a run of the API against it measures
 * the bridge's own cost (`edgemail-bench sink --listen PATH|HOST:PORT`).
 *
 * One thread per connection.  LHLO offers PIPELINING, 8BITMIME and
 * SMTPUTF8; MAIL, RCPT, RSET and NOOP get 250, DATA 354 (503 with no
 * recipient), the end of data one 250 per accepted recipient, QUIT 221.
 * Replies are collected while complete input lines are waiting and
 * written before the next read blocks, which is what pipelining needs.
 * It stores nothing and checks little: a load generator's peer, not a
 * protocol reference.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lmtp/lmtp.h"
#include "tests/bench/bench.h"

#define SINK_IN_MAX	(256 * 1024)
#define SINK_LINE_MAX	4096

struct sink_conn {
	int	 fd;
	char	*in;
	size_t	 len;
	struct buf out;
	int	 in_data;
	int	 match;		/* DATA: bytes of "\r\n.\r\n" matched */
	int	 nrcpt;
};

static const char end_marker[] = "\r\n.\r\n";

static int
sink_flush(struct sink_conn *s)
{
	const char *p = s->out.data;
	size_t n = s->out.len;

	while (n > 0) {
		ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	buf_reset(&s->out);
	return 0;
}

size_t
bench_data_end(int *match, const char *p, size_t n, int *found)
{
	size_t i = 0;

	*found = 0;
	while (i < n) {
		if (*match == 0) {
			const char *cr = memchr(p + i, '\r', n - i);

			if (cr == NULL)
				return n;
			i = (size_t)(cr - p);
		}
		if (p[i] == end_marker[*match])
			(*match)++;
		else
			*match = p[i] == '\r' ? 1 : 0;
		i++;
		if (*match == 5) {
			*match = 0;
			*found = 1;
			return i;
		}
	}
	return n;
}

/* Skip DATA bytes up to the end marker; returns bytes used, sets in_data
 * to 0 when the marker was found. */
static size_t
sink_data(struct sink_conn *s, const char *p, size_t n)
{
	size_t used;
	int found, k;

	used = bench_data_end(&s->match, p, n, &found);
	if (found) {
		for (k = 0; k < s->nrcpt; k++)
			(void)buf_puts(&s->out, "250 2.0.0 Ok: discarded\r\n");
		s->nrcpt = 0;
		s->in_data = 0;
	}
	return used;
}

/* One command line (without CRLF); -1 to close the connection. */
static int
sink_command(struct sink_conn *s, const char *line, size_t len)
{
	if (len >= 4 && strncasecmp(line, "LHLO", 4) == 0)
		return buf_puts(&s->out, "250-sink\r\n250-PIPELINING\r\n"
		    "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
		    "250 SMTPUTF8\r\n");
	if (len >= 4 && strncasecmp(line, "MAIL", 4) == 0) {
		s->nrcpt = 0;
		return buf_puts(&s->out, "250 2.1.0 Ok\r\n");
	}
	if (len >= 4 && strncasecmp(line, "RCPT", 4) == 0) {
		s->nrcpt++;
		return buf_puts(&s->out, "250 2.1.5 Ok\r\n");
	}
	if (len == 4 && strncasecmp(line, "DATA", 4) == 0) {
		if (s->nrcpt == 0)
			return buf_puts(&s->out,
			    "503 5.5.1 No valid recipients\r\n");
		s->in_data = 1;
		s->match = 2;		/* at the start of a line */
		return buf_puts(&s->out, "354 Go ahead\r\n");
	}
	if (len >= 4 && (strncasecmp(line, "RSET", 4) == 0 ||
	    strncasecmp(line, "NOOP", 4) == 0)) {
		s->nrcpt = 0;
		return buf_puts(&s->out, "250 2.0.0 Ok\r\n");
	}
	if (len >= 4 && strncasecmp(line, "QUIT", 4) == 0) {
		(void)buf_puts(&s->out, "221 2.0.0 Bye\r\n");
		return -1;
	}
	return buf_puts(&s->out, "500 5.5.2 Unknown command\r\n");
}

static void *
sink_serve(void *arg)
{
	struct sink_conn *s = xcalloc(1, sizeof(*s));
	size_t pos;
	ssize_t n;
	int quit = 0;

	s->fd = (int)(intptr_t)arg;
	s->in = xmalloc(SINK_IN_MAX);
	buf_init(&s->out, 0);
	(void)buf_puts(&s->out, "220 sink LMTP ready\r\n");
	while (!quit && sink_flush(s) == 0) {
		n = recv(s->fd, s->in + s->len, SINK_IN_MAX - s->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		s->len += (size_t)n;
		pos = 0;
		while (pos < s->len && !quit) {
			if (s->in_data) {
				pos += sink_data(s, s->in + pos, s->len - pos);
				continue;
			}
			const char *nl = memchr(s->in + pos, '\n', s->len - pos);
			size_t ll;

			if (nl == NULL) {
				if (s->len - pos > SINK_LINE_MAX)
					quit = 1;
				break;
			}
			ll = (size_t)(nl - (s->in + pos));
			if (sink_command(s, s->in + pos,
			    ll > 0 && nl[-1] == '\r' ? ll - 1 : ll) != 0)
				quit = 1;
			pos += ll + 1;
		}
		memmove(s->in, s->in + pos, s->len - pos);
		s->len -= pos;
	}
	(void)sink_flush(s);
	close(s->fd);
	buf_free(&s->out);
	free(s->in);
	free(s);
	return NULL;
}

int
bench_listen(const char *spec)
{
	struct lmtp_server srv;
	int fd = -1, one = 1;

	if (lmtp_server_parse(spec, &srv) != 0)
		fatalx("bad --listen '%s'", spec);
	if (srv.is_unix) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (str_copy(sun.sun_path, sizeof(sun.sun_path), srv.path) != 0)
			fatalx("socket path too long");
		(void)unlink(srv.path);
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
		    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
			fatalx("%s: %s", srv.path, strerror(errno));
		chmod(srv.path, 0600);
	} else {
		struct addrinfo hints, *res;
		int gai;

		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
		if ((gai = getaddrinfo(srv.host, srv.port, &hints, &res)) != 0)
			fatalx("%s: %s", spec, gai_strerror(gai));
		if ((fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC,
		    res->ai_protocol)) < 0)
			fatalx("socket: %s", strerror(errno));
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
			fatalx("%s: %s", spec, strerror(errno));
		freeaddrinfo(res);
	}
	if (listen(fd, 128) != 0)
		fatalx("listen: %s", strerror(errno));
	return fd;
}

int
sink_main(int argc, char **argv)
{
	const char *listen_spec = NULL;
	int lfd, i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			listen_spec = argv[++i];
		else
			listen_spec = NULL, i = argc;
	}
	if (listen_spec == NULL) {
		fprintf(stderr, "usage: edgemail-bench sink --listen "
		    "PATH|HOST:PORT\n");
		return 2;
	}
	lfd = bench_listen(listen_spec);
	fprintf(stderr, "edgemail-bench: sink listening on %s\n", listen_spec);
	bench_accept_loop(lfd, sink_serve);
	return 0;
}

void
bench_accept_loop(int lfd, void *(*serve)(void *))
{
	pthread_attr_t attr;
	pthread_t tid;
	int fd;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	for (;;) {
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE) {
				if (errno == EMFILE || errno == ENFILE)
					usleep(100 * 1000);
				continue;
			}
			fatalx("accept: %s", strerror(errno));
		}
		if (pthread_create(&tid, &attr, serve, (void *)(intptr_t)fd) != 0)
			close(fd);
	}
}
