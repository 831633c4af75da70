/*
 * lmtp.c - LMTP client (RFC 2033): delivery of one message to many
 * recipients over a unix socket or TCP.
 *
 * Every read and write waits in poll(2) with the connection's timeout, the
 * connect is non-blocking with the same timeout, and the socket never
 * raises SIGPIPE (send with MSG_NOSIGNAL).  Replies are read through a
 * bounded buffer and parsed with reply_parse_line(); anything that is not
 * a well-formed reply breaks the connection.  A broken connection is
 * always TEMP for the recipients that have no final answer yet: the
 * message is still ours and will be retried.
 *
 * This is not an SMTP client: there is no TLS, no AUTH and no MX logic.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/reply.h"
#include "lmtp/lmtp.h"

#define LMTP_DEFAULT_TIMEOUT	60000	/* ms, when the caller gives <= 0 */
#define LMTP_LINE_MAX		65536	/* bounded reply input */
#define LMTP_REPLY_LINES_MAX	1000	/* continuation lines in one reply */
#define LMTP_CHUNK		16384	/* message read and write size */
#define LMTP_ADDR_MAX		1024
#define LMTP_PIPE_MAX		100	/* RCPTs per pipelined write */
#define LMTP_QUIT_TIMEOUT	1000	/* ms */

struct lmtp_conn {
	int		 fd;
	int		 timeout_ms;
	char		 name[300];	/* "unix:/path" or "host:port" */
	int		 pipelining;
	int		 eightbitmime;
	int		 smtputf8;
	int		 broken;
	int		 need_rset;	/* a transaction ran on this connection */
	struct reply	 fail;		/* why it broke: TEMP for the pending */
	struct buf	 in;		/* reply input, bounded */
	struct buf	 out;		/* commands and message data */
	int		 bol;		/* DATA: at the start of a line */
	char		 last[2];	/* DATA: the last two bytes sent */
	long long	 data_bytes;
	/* A transaction begun ahead of its message (lmtp_begin): [RSET,]
	 * MAIL and the RCPTs are written, their replies not read yet. */
	int		 ahead;
	int		 ahead_rset;	/* RSET went first */
	size_t		 ahead_nrcpt;
	struct buf	 ahead_env;	/* mail_from NUL rcpt NUL rcpt NUL ... */
};

/* Where each recipient stands during a transaction. */
enum rcpt_state {
	RS_PENDING,	/* no answer yet */
	RS_FINAL,	/* refused (or never sent): rcpt_r holds the outcome */
	RS_ACCEPTED,	/* RCPT accepted, waiting for the reply after DATA */
	RS_DONE,	/* reply after DATA received */
};

/* ---- server address ---------------------------------------------------- */

int
lmtp_server_parse(const char *spec, struct lmtp_server *s)
{
	const char	*colon, *host, *port;
	size_t		 hostlen;
	long long	 portnum;

	memset(s, 0, sizeof(*s));
	if (spec == NULL || *spec == '\0')
		return -1;
	if (strncmp(spec, "unix:", 5) == 0 || spec[0] == '/') {
		if (spec[0] != '/')
			spec += 5;
		if (*spec == '\0' || strlen(spec) >= sizeof(s->path))
			return -1;
		s->is_unix = 1;
		return str_copy(s->path, sizeof(s->path), spec);
	}
	if (spec[0] == '[') {
		host = spec + 1;
		if ((colon = strchr(host, ']')) == NULL || colon[1] != ':')
			return -1;
		hostlen = (size_t)(colon - host);
		port = colon + 2;
	} else {
		host = spec;
		if ((colon = strrchr(spec, ':')) == NULL ||
		    memchr(spec, ':', (size_t)(colon - spec)) != NULL)
			return -1;	/* no port, or a bare IPv6 address */
		hostlen = (size_t)(colon - spec);
		port = colon + 1;
	}
	if (hostlen == 0 || hostlen >= sizeof(s->host) ||
	    str_to_ll(port, 1, 65535, &portnum) == -1 ||
	    strlen(port) >= sizeof(s->port))
		return -1;
	memcpy(s->host, host, hostlen);
	s->host[hostlen] = '\0';
	snprintf(s->port, sizeof(s->port), "%lld", portnum);
	return 0;
}

static void
server_name(const struct lmtp_server *s, char *out, size_t outsz)
{
	if (s->is_unix)
		snprintf(out, outsz, "unix:%s", s->path);
	else if (strchr(s->host, ':') != NULL)
		snprintf(out, outsz, "[%s]:%s", s->host, s->port);
	else
		snprintf(out, outsz, "%s:%s", s->host, s->port);
}

/* ---- low-level I/O ----------------------------------------------------- */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Mark the connection broken; the first reason wins. */
static void
conn_fail(struct lmtp_conn *c, const char *enhanced, const char *why)
{
	if (c->broken)
		return;
	c->broken = 1;
	reply_set(&c->fail, 451, enhanced, "LMTP %s: %s", c->name, why);
}

static int
conn_wait(struct lmtp_conn *c, short events, int timeout_ms)
{
	struct pollfd	 pfd;
	int		 n;

	for (;;) {
		pfd.fd = c->fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, timeout_ms);
		if (n > 0)
			return 0;	/* errors show up in send/recv */
		if (n == 0) {
			conn_fail(c, "4.4.2", "connection timed out");
			return -1;
		}
		if (errno != EINTR) {
			conn_fail(c, "4.4.2", strerror(errno));
			return -1;
		}
	}
}

static int
conn_write(struct lmtp_conn *c, const char *p, size_t n)
{
	ssize_t	 w;
	char	 why[128];

	if (c->broken)
		return -1;
	while (n > 0) {
		w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (conn_wait(c, POLLOUT, c->timeout_ms) == -1)
				return -1;
			continue;
		}
		snprintf(why, sizeof(why), "connection broken: %s",
		    w == -1 ? strerror(errno) : "short write");
		conn_fail(c, "4.4.2", why);
		return -1;
	}
	return 0;
}

static int
conn_flush(struct lmtp_conn *c)
{
	int	 rv;

	rv = conn_write(c, buf_cstr(&c->out), c->out.len);
	buf_reset(&c->out);
	return rv;
}

/* Read more reply input; -1 on timeout, close or error. */
static int
conn_fill(struct lmtp_conn *c, int timeout_ms)
{
	char	 tmp[4096];
	size_t	 room;
	ssize_t	 n;
	char	 why[128];

	room = c->in.max - c->in.len;
	if (room == 0) {
		conn_fail(c, "4.5.0", "reply line too long");
		return -1;
	}
	if (room > sizeof(tmp))
		room = sizeof(tmp);
	for (;;) {
		n = recv(c->fd, tmp, room, 0);
		if (n > 0)
			break;
		if (n == 0) {
			conn_fail(c, "4.4.2", "connection closed by server");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (conn_wait(c, POLLIN, timeout_ms) == -1)
				return -1;
			continue;
		}
		snprintf(why, sizeof(why), "connection broken: %s",
		    strerror(errno));
		conn_fail(c, "4.4.2", why);
		return -1;
	}
	if (buf_append(&c->in, tmp, (size_t)n) == -1) {
		conn_fail(c, "4.5.0", "reply line too long");
		return -1;
	}
	return 0;
}

/* The next input line without its line end; consume it with
 * buf_consume(&c->in, *used_r). */
static int
conn_read_line(struct lmtp_conn *c, int timeout_ms, const char **line_r,
    size_t *len_r, size_t *used_r)
{
	const char	*nl;
	size_t		 len;

	if (c->broken)
		return -1;
	while ((nl = c->in.len > 0 ? memchr(c->in.data, '\n', c->in.len) :
	    NULL) == NULL) {
		if (conn_fill(c, timeout_ms) == -1)
			return -1;
	}
	len = (size_t)(nl - c->in.data);
	*used_r = len + 1;
	if (len > 0 && c->in.data[len - 1] == '\r')
		len--;
	*line_r = c->in.data;
	*len_r = len;
	return 0;
}

typedef void (*line_fn)(struct lmtp_conn *, const char *, size_t);

/*
 * Read one complete reply.  A multi-line reply keeps the last line's text;
 * its lines must all carry the same code.  fn, when set, sees the text of
 * every line (LHLO capabilities).  -1 when the connection broke or the
 * reply was malformed (c->fail says which).
 */
static int
conn_read_reply_t(struct lmtp_conn *c, int timeout_ms, struct reply *r,
    line_fn fn)
{
	struct reply	 lr;
	const char	*line;
	size_t		 len, used;
	int		 more, nlines = 0;
	char		 enhanced[sizeof(r->enhanced)] = "";

	do {
		if (conn_read_line(c, timeout_ms, &line, &len, &used) == -1)
			return -1;
		if (reply_parse_line(line, len, &lr, &more) == -1 ||
		    (nlines > 0 && lr.code != r->code) ||
		    nlines >= LMTP_REPLY_LINES_MAX) {
			conn_fail(c, "4.5.0", "malformed reply from server");
			return -1;
		}
		if (fn != NULL && len > 4)
			fn(c, line + 4, len - 4);
		buf_consume(&c->in, used);
		if (lr.enhanced[0] != '\0')
			memcpy(enhanced, lr.enhanced, sizeof(enhanced));
		*r = lr;
		nlines++;
	} while (more);
	memcpy(r->enhanced, enhanced, sizeof(r->enhanced));
	r->cls = reply_class_of(r->code);
	return 0;
}

static int
conn_read_reply(struct lmtp_conn *c, struct reply *r)
{
	return conn_read_reply_t(c, c->timeout_ms, r, NULL);
}

/* ---- connect and LHLO -------------------------------------------------- */

/* Non-blocking connect with a timeout; -1 with errno-ish text in why. */
static int
connect_fd(int fd, const struct sockaddr *sa, socklen_t salen, int timeout_ms,
    int is_unix, char *why, size_t whysz)
{
	struct pollfd	 pfd;
	long long	 deadline = now_ms() + timeout_ms;
	int		 err, n;
	socklen_t	 errlen = sizeof(err);

	for (;;) {
		if (connect(fd, sa, salen) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		/* A unix socket with a full backlog: try again until the
		 * deadline (it cannot be waited for with poll). */
		if (is_unix && errno == EAGAIN && now_ms() < deadline) {
			usleep(10000);
			continue;
		}
		break;
	}
	if (errno != EINPROGRESS) {
		snprintf(why, whysz, "%s", errno == EAGAIN ?
		    "connection timed out" : strerror(errno));
		return -1;
	}
	for (;;) {
		pfd.fd = fd;
		pfd.events = POLLOUT;
		pfd.revents = 0;
		n = poll(&pfd, 1, (int)(deadline - now_ms() > 0 ?
		    deadline - now_ms() : 0));
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (n == 0) {
		snprintf(why, whysz, "connection timed out");
		return -1;
	}
	if (n == -1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
	    &errlen) == -1) {
		snprintf(why, whysz, "%s", strerror(errno));
		return -1;
	}
	if (err != 0) {
		snprintf(why, whysz, "%s", strerror(err));
		return -1;
	}
	return 0;
}

static int
open_socket(const struct lmtp_server *s, int timeout_ms, char *why,
    size_t whysz)
{
	struct sockaddr_un	 sun;
	struct addrinfo		 hints, *res, *ai;
	int			 fd, gai;

	if (s->is_unix) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (str_copy(sun.sun_path, sizeof(sun.sun_path), s->path)
		    == -1) {
			snprintf(why, whysz, "socket path too long");
			return -1;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
		if (fd == -1) {
			snprintf(why, whysz, "socket: %s", strerror(errno));
			return -1;
		}
		if (connect_fd(fd, (struct sockaddr *)&sun, sizeof(sun),
		    timeout_ms, 1, why, whysz) == -1) {
			close(fd);
			return -1;
		}
		return fd;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
	if ((gai = getaddrinfo(s->host, s->port, &hints, &res)) != 0) {
		snprintf(why, whysz, "%s", gai_strerror(gai));
		return -1;
	}
	fd = -1;
	snprintf(why, whysz, "no address");
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			snprintf(why, whysz, "socket: %s", strerror(errno));
			continue;
		}
		if (connect_fd(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms, 0,
		    why, whysz) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int
keyword_is(const char *p, size_t len, const char *kw)
{
	size_t	 n = strlen(kw);

	return len >= n && strncasecmp(p, kw, n) == 0 &&
	    (len == n || p[n] == ' ');
}

static void
lhlo_line(struct lmtp_conn *c, const char *p, size_t len)
{
	if (keyword_is(p, len, "PIPELINING"))
		c->pipelining = 1;
	else if (keyword_is(p, len, "8BITMIME"))
		c->eightbitmime = 1;
	else if (keyword_is(p, len, "SMTPUTF8"))
		c->smtputf8 = 1;
}

static int
safe_word(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return 0;
	return *s != '\0' && strlen(s) < 256;
}

static void
conn_free(struct lmtp_conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->ahead_env);
	free(c);
}

struct lmtp_conn *
lmtp_connect(const struct lmtp_server *s, const char *lhlo_name,
    int timeout_ms, struct reply *r)
{
	struct lmtp_conn	*c;
	struct reply		 gr;
	char			 why[160];

	if (timeout_ms <= 0)
		timeout_ms = LMTP_DEFAULT_TIMEOUT;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		reply_set(r, 451, "4.3.0", "LMTP: out of memory");
		return NULL;
	}
	c->fd = -1;
	c->timeout_ms = timeout_ms;
	server_name(s, c->name, sizeof(c->name));
	buf_init(&c->in, LMTP_LINE_MAX);
	buf_init(&c->out, 0);
	buf_init(&c->ahead_env, 0);

	if ((c->fd = open_socket(s, timeout_ms, why, sizeof(why))) == -1) {
		reply_set(r, 451, "4.4.1", "LMTP %s: cannot connect: %s",
		    c->name, why);
		log_debug("event=lmtp_connect server=%s result=fail why=\"%s\"",
		    c->name, why);
		conn_free(c);
		return NULL;
	}
	if (conn_read_reply(c, &gr) == -1)
		goto broken;
	if (gr.code != 220) {
		/* Refusing the session says nothing about the message. */
		reply_set(r, 451, "4.4.1", "LMTP %s: greeting %d %s", c->name,
		    gr.code, gr.text);
		goto fail;
	}
	if (lhlo_name == NULL || !safe_word(lhlo_name))
		lhlo_name = "localhost";
	if (buf_printf(&c->out, "LHLO %s\r\n", lhlo_name) == -1 ||
	    conn_flush(c) == -1 ||
	    conn_read_reply_t(c, c->timeout_ms, &gr, lhlo_line) == -1)
		goto broken;
	if (gr.cls != REPLY_OK) {
		reply_set(r, 451, "4.4.1", "LMTP %s: LHLO refused: %d %s",
		    c->name, gr.code, gr.text);
		goto fail;
	}
	log_debug("event=lmtp_connect server=%s pipelining=%d 8bitmime=%d "
	    "smtputf8=%d", c->name, c->pipelining, c->eightbitmime,
	    c->smtputf8);
	reply_set(r, 250, "2.0.0", "connected");
	return c;

broken:
	*r = c->fail;
fail:
	log_debug("event=lmtp_connect server=%s result=fail code=%d", c->name,
	    r->code);
	conn_free(c);
	return NULL;
}

int
lmtp_idle_ok(struct lmtp_conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	/* An idle connection has nothing to say: anything readable is the
	 * server's 421 before it hung up, or the hang-up itself. */
	return !c->broken && c->in.len == 0 && poll(&pfd, 1, 0) == 0;
}

void
lmtp_close(struct lmtp_conn **cp)
{
	struct lmtp_conn	*c = *cp;
	struct reply		 r;

	if (c == NULL)
		return;
	*cp = NULL;
	if (!c->broken) {
		buf_reset(&c->out);
		if (buf_puts(&c->out, "QUIT\r\n") == 0 && conn_flush(c) == 0)
			(void)conn_read_reply_t(c, LMTP_QUIT_TIMEOUT, &r, NULL);
	}
	conn_free(c);
}

/* ---- DATA -------------------------------------------------------------- */

/* Append message bytes with dot-stuffing; the state survives across
 * calls, so a line may be split anywhere between chunks.  It looks for
 * dots, not line ends: base64 attachments have none, and text has about
 * as many as lines. */
static int
data_put_slice(struct lmtp_conn *c, const char *p, size_t n)
{
	const char	*dot;
	size_t		 i = 0, start = 0, at;

	if (n == 0)
		return 0;
	while (i < n && (dot = memchr(p + i, '.', n - i)) != NULL) {
		at = (size_t)(dot - p);
		if (at == 0 ? c->bol : p[at - 1] == '\n') {
			if (buf_append(&c->out, p + start, at - start) == -1 ||
			    buf_putc(&c->out, '.') == -1)
				return -1;
			start = at;
		}
		i = at + 1;
	}
	c->bol = p[n - 1] == '\n';
	if (buf_append(&c->out, p + start, n - start) == -1)
		return -1;
	if (n >= 2) {
		c->last[0] = p[n - 2];
		c->last[1] = p[n - 1];
	} else {
		c->last[0] = c->last[1];
		c->last[1] = p[0];
	}
	c->data_bytes += (long long)n;
	if (c->out.len >= LMTP_CHUNK)
		return conn_flush(c);
	return 0;
}

/* The same for any length, a chunk at a time: the output buffer stays
 * about two chunks long, whatever size the message held in memory. */
static int
data_put(struct lmtp_conn *c, const char *p, size_t n)
{
	size_t off, k;

	for (off = 0; off < n; off += k) {
		k = n - off < LMTP_CHUNK ? n - off : LMTP_CHUNK;
		if (data_put_slice(c, p + off, k) == -1)
			return -1;
	}
	return 0;
}

static void
local_fail(struct lmtp_conn *c, const char *why)
{
	/* Mid-DATA there is no way back but to drop the connection. */
	if (!c->broken) {
		c->broken = 1;
		reply_set(&c->fail, 451, "4.3.0", "LMTP: %s", why);
	}
}

static int
send_body(struct lmtp_conn *c, const struct lmtp_msg *m)
{
	char		*chunk = NULL;
	off_t		 done = 0;
	size_t		 want;
	ssize_t		 n;
	char		 why[128];
	int		 rv = -1;

	buf_reset(&c->out);
	c->bol = 1;
	c->last[0] = c->last[1] = '\0';
	c->data_bytes = 0;
	if (m->prefix_len > 0 && data_put(c, m->prefix, m->prefix_len) == -1)
		goto out;
	if (m->fd < 0) {
		if (m->mem_len > 0 && data_put(c, m->mem, m->mem_len) == -1)
			goto out;
	} else if (m->len > 0) {
		if ((chunk = malloc(LMTP_CHUNK)) == NULL) {
			local_fail(c, "out of memory");
			goto out;
		}
		while (done < m->len) {
			want = m->len - done > LMTP_CHUNK ? LMTP_CHUNK :
			    (size_t)(m->len - done);
			n = pread(m->fd, chunk, want, m->off + done);
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0) {
				snprintf(why, sizeof(why),
				    "cannot read message: %s", n == 0 ?
				    "file shorter than expected" :
				    strerror(errno));
				local_fail(c, why);
				goto out;
			}
			if (data_put(c, chunk, (size_t)n) == -1)
				goto out;
			done += n;
		}
	}
	if (c->data_bytes > 0 && (c->last[0] != '\r' || c->last[1] != '\n')) {
		if (buf_puts(&c->out, c->last[1] == '\r' ? "\n" : "\r\n") == -1)
			goto out;
	}
	if (buf_puts(&c->out, ".\r\n") == -1)
		goto out;
	rv = conn_flush(c);
out:
	if (rv == -1 && !c->broken)
		local_fail(c, "out of memory");
	free(chunk);
	buf_reset(&c->out);
	return rv;
}

/* ---- transaction ------------------------------------------------------- */

static int
addr_ok(const char *a)
{
	const unsigned char *p;

	if (a == NULL || strlen(a) > LMTP_ADDR_MAX)
		return 0;
	for (p = (const unsigned char *)a; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
			return 0;
	return 1;
}

static int
non_ascii(const char *a)
{
	for (; *a != '\0'; a++)
		if ((unsigned char)*a >= 0x80)
			return 1;
	return 0;
}

/* Give every recipient without a final answer the connection's failure. */
static void
fail_pending(struct lmtp_conn *c, enum rcpt_state *st, size_t nrcpt,
    struct reply *rcpt_r)
{
	size_t	 i;

	for (i = 0; i < nrcpt; i++) {
		if (st[i] == RS_PENDING || st[i] == RS_ACCEPTED) {
			rcpt_r[i] = c->fail;
			st[i] = RS_DONE;
		}
	}
}

/* A reply with a code that makes no sense where it came. */
static int
unexpected(struct lmtp_conn *c, const char *cmd, const struct reply *r)
{
	char	 why[160];

	snprintf(why, sizeof(why), "unexpected reply to %s: %d", cmd, r->code);
	conn_fail(c, "4.5.0", why);
	return -1;
}

static int
send_rset(struct lmtp_conn *c)
{
	struct reply	 r;

	if (buf_puts(&c->out, "RSET\r\n") == -1 || conn_flush(c) == -1 ||
	    conn_read_reply(c, &r) == -1)
		return -1;
	c->need_rset = 0;
	if (r.cls != REPLY_OK)
		return unexpected(c, "RSET", &r);
	return 0;
}

static int
put_mail(struct lmtp_conn *c, const char *mail_from, int eightbit, int utf8)
{
	return buf_printf(&c->out, "MAIL FROM:<%s>%s%s\r\n", mail_from,
	    eightbit && c->eightbitmime ? " BODY=8BITMIME" : "",
	    utf8 && c->smtputf8 ? " SMTPUTF8" : "");
}

/* The RCPT reply for recipient i (MAIL was accepted). */
static int
rcpt_reply(struct lmtp_conn *c, size_t i, enum rcpt_state *st,
    struct reply *rcpt_r, size_t *naccepted)
{
	struct reply	 r;

	if (conn_read_reply(c, &r) == -1)
		return -1;
	if (r.code >= 300 && r.code < 400)
		return unexpected(c, "RCPT", &r);
	rcpt_r[i] = r;
	if (r.cls == REPLY_OK) {
		st[i] = RS_ACCEPTED;
		(*naccepted)++;
	} else
		st[i] = RS_FINAL;
	return 0;
}

/*
 * The pipelined exchange (RFC 2920), after [RSET and] MAIL were put into
 * c->out.  RCPTs go out in groups of at most LMTP_PIPE_MAX, and a group's
 * replies are read before the next group is written, so neither side can
 * fill the other's socket buffer while it is not reading.  DATA ends the
 * last group.  Returns 0 with the reply to DATA in data_r, 1 when MAIL was
 * refused and DATA never sent (RSET done), -1 when the connection broke.
 * ahead: lmtp_begin() wrote every RCPT already (one group), only DATA
 * is left to write.
 */
static int
pipelined(struct lmtp_conn *c, const char *const *rcpts, size_t nrcpt,
    enum rcpt_state *st, struct reply *rcpt_r, size_t *naccepted,
    int rset_sent, int ahead, struct reply *data_r)
{
	struct reply	 mail, r;
	size_t		 sent = ahead ? nrcpt : 0, done = 0, n, i;
	int		 first = 1, last;

	for (;;) {
		for (n = 0; sent < nrcpt && n < LMTP_PIPE_MAX; sent++) {
			if (st[sent] != RS_PENDING)
				continue;
			if (buf_printf(&c->out, "RCPT TO:<%s>\r\n",
			    rcpts[sent]) == -1)
				goto nomem;
			n++;
		}
		last = sent == nrcpt;
		if (last && buf_puts(&c->out, "DATA\r\n") == -1)
			goto nomem;
		if (conn_flush(c) == -1)
			return -1;
		if (first) {
			first = 0;
			if (rset_sent) {
				if (conn_read_reply(c, &r) == -1)
					return -1;
				c->need_rset = 0;
				if (r.cls != REPLY_OK)
					return unexpected(c, "RSET", &r);
			}
			if (conn_read_reply(c, &mail) == -1)
				return -1;
			if (mail.code >= 300 && mail.code < 400)
				return unexpected(c, "MAIL", &mail);
		}
		for (; done < sent; done++) {
			if (st[done] != RS_PENDING)
				continue;
			if (mail.cls == REPLY_OK) {
				if (rcpt_reply(c, done, st, rcpt_r, naccepted)
				    == -1)
					return -1;
				continue;
			}
			/* MAIL refused: its reply is every answer; the RCPT
			 * replies (503) are read and dropped. */
			rcpt_r[done] = mail;
			st[done] = RS_FINAL;
			if (conn_read_reply(c, &r) == -1)
				return -1;
		}
		if (last)
			break;
		if (mail.cls != REPLY_OK) {
			for (i = sent; i < nrcpt; i++) {
				if (st[i] == RS_PENDING) {
					rcpt_r[i] = mail;
					st[i] = RS_FINAL;
				}
			}
			return send_rset(c) == -1 ? -1 : 1;
		}
	}
	return conn_read_reply(c, data_r) == -1 ? -1 : 0;

nomem:
	buf_reset(&c->out);
	local_fail(c, "out of memory");
	return -1;
}

static int
transaction(struct lmtp_conn *c, const char *mail_from,
    const char *const *rcpts, size_t nrcpt, const struct lmtp_msg *m,
    struct reply *rcpt_r, enum rcpt_state *st, size_t *naccepted)
{
	struct reply	 r;
	size_t		 i, nvalid = 0;
	int		 utf8 = 0, rset_sent = 0, ahead = 0;

	for (i = 0; i < nrcpt; i++) {
		if (!addr_ok(rcpts[i])) {
			reply_set(&rcpt_r[i], 501, "5.1.3",
			    "invalid recipient address");
			st[i] = RS_FINAL;
			continue;
		}
		nvalid++;
		utf8 |= non_ascii(rcpts[i]);
	}
	if (!addr_ok(mail_from)) {
		for (i = 0; i < nrcpt; i++) {
			reply_set(&rcpt_r[i], 501, "5.1.7",
			    "invalid sender address");
			st[i] = RS_FINAL;
		}
		return 0;
	}
	if (nvalid == 0)
		return 0;
	utf8 |= non_ascii(mail_from);

	buf_reset(&c->out);
	if (c->ahead) {
		/* lmtp_begin() sent this very envelope: read on. */
		ahead = 1;
		rset_sent = c->ahead_rset;
		c->ahead = 0;
	} else {
		if (c->need_rset) {
			if (!c->pipelining) {
				if (send_rset(c) == -1)
					return -1;
			} else {
				if (buf_puts(&c->out, "RSET\r\n") == -1)
					goto nomem;
				rset_sent = 1;
			}
		}
		if (put_mail(c, mail_from, m->eightbit, utf8) == -1)
			goto nomem;
	}

	if (c->pipelining) {
		switch (pipelined(c, rcpts, nrcpt, st, rcpt_r, naccepted,
		    rset_sent, ahead, &r)) {
		case -1:
			return -1;
		case 1:
			return 0;
		}
	} else {
		if (conn_flush(c) == -1 || conn_read_reply(c, &r) == -1)
			return -1;
		if (r.code >= 300 && r.code < 400)
			return unexpected(c, "MAIL", &r);
		if (r.cls != REPLY_OK) {
			for (i = 0; i < nrcpt; i++) {
				if (st[i] == RS_PENDING) {
					rcpt_r[i] = r;
					st[i] = RS_FINAL;
				}
			}
			return send_rset(c);
		}
		for (i = 0; i < nrcpt; i++) {
			if (st[i] != RS_PENDING)
				continue;
			if (buf_printf(&c->out, "RCPT TO:<%s>\r\n", rcpts[i])
			    == -1)
				goto nomem;
			if (conn_flush(c) == -1 ||
			    rcpt_reply(c, i, st, rcpt_r, naccepted) == -1)
				return -1;
		}
		if (*naccepted == 0)
			return send_rset(c);
		if (buf_puts(&c->out, "DATA\r\n") == -1)
			goto nomem;
		if (conn_flush(c) == -1 || conn_read_reply(c, &r) == -1)
			return -1;
	}

	/* r is the reply to DATA. */
	if (r.code != 354) {
		if (*naccepted > 0 && r.cls == REPLY_OK)
			return unexpected(c, "DATA", &r);
		for (i = 0; i < nrcpt; i++) {
			if (st[i] == RS_ACCEPTED) {
				rcpt_r[i] = r;
				st[i] = RS_DONE;
			}
		}
		return send_rset(c);
	}
	if (*naccepted == 0) {
		/* The server wants a body that nobody would get: it does
		 * not follow the protocol, so stop talking to it. */
		return unexpected(c, "DATA", &r);
	}
	if (send_body(c, m) == -1)
		return -1;
	c->need_rset = 1;
	for (i = 0; i < nrcpt; i++) {
		if (st[i] != RS_ACCEPTED)
			continue;
		if (conn_read_reply(c, &r) == -1)
			return -1;
		if (r.code >= 300 && r.code < 400)
			return unexpected(c, "end of data", &r);
		rcpt_r[i] = r;
		st[i] = RS_DONE;
	}
	return 0;

nomem:
	buf_reset(&c->out);
	local_fail(c, "out of memory");
	return -1;
}

/* ---- a transaction begun ahead of its message --------------------------- */

/* Is the envelope the one lmtp_begin() sent? */
static int
ahead_is(const struct lmtp_conn *c, const char *mail_from,
    const char *const *rcpts, size_t nrcpt)
{
	const char *p = c->ahead_env.data, *end = p + c->ahead_env.len;
	size_t i;

	if (nrcpt != c->ahead_nrcpt || strcmp(p, mail_from) != 0)
		return 0;
	p += strlen(p) + 1;
	for (i = 0; i < nrcpt; i++) {
		if (p >= end || strcmp(p, rcpts[i]) != 0)
			return 0;
		p += strlen(p) + 1;
	}
	return 1;
}

int
lmtp_begin(struct lmtp_conn *c, const char *mail_from,
    const char *const *rcpts, size_t nrcpt)
{
	size_t i;
	int utf8;

	/* One pipelined group, every address one the transaction would
	 * send: then lmtp_send() has nothing to do differently. */
	if (c->broken || c->ahead || !c->pipelining || nrcpt == 0 ||
	    nrcpt > LMTP_PIPE_MAX || !addr_ok(mail_from))
		return -1;
	utf8 = non_ascii(mail_from);
	buf_reset(&c->ahead_env);
	buf_append(&c->ahead_env, mail_from, strlen(mail_from) + 1);
	for (i = 0; i < nrcpt; i++) {
		if (!addr_ok(rcpts[i]))
			return -1;
		utf8 |= non_ascii(rcpts[i]);
		buf_append(&c->ahead_env, rcpts[i], strlen(rcpts[i]) + 1);
	}
	buf_reset(&c->out);
	if (c->need_rset)
		buf_puts(&c->out, "RSET\r\n");
	/* The body is not here yet: declare 8BITMIME whenever offered
	 * (RFC 6152 lets a 7-bit body be sent so). */
	put_mail(c, mail_from, 1, utf8);
	for (i = 0; i < nrcpt; i++)
		buf_printf(&c->out, "RCPT TO:<%s>\r\n", rcpts[i]);
	if (c->out.failed || c->ahead_env.failed) {
		buf_reset(&c->out);
		return -1;
	}
	if (conn_flush(c) == -1)
		return -1;
	c->ahead = 1;
	c->ahead_rset = c->need_rset;
	c->ahead_nrcpt = nrcpt;
	return 0;
}

int
lmtp_cancel(struct lmtp_conn *c)
{
	struct reply r;
	size_t i, n;

	if (!c->ahead)
		return c->broken ? -1 : 0;
	c->ahead = 0;
	/* Read what the begun commands got; MAIL may have been accepted,
	 * so the next transaction starts with RSET. */
	n = (size_t)c->ahead_rset + 1 + c->ahead_nrcpt;
	for (i = 0; i < n; i++)
		if (conn_read_reply(c, &r) == -1)
			return -1;
	c->need_rset = 1;
	return 0;
}

int
lmtp_send(struct lmtp_conn *c, const char *mail_from,
    const char *const *rcpts, size_t nrcpt, const struct lmtp_msg *m,
    struct reply *rcpt_r)
{
	enum rcpt_state	*st;
	size_t		 i, naccepted = 0, nok = 0, ntemp = 0, nperm = 0;
	long long	 start = now_ms();
	char		 qfrom[300];
	int		 rv;

	/* Begun ahead for another envelope (the directory changed in
	 * between): finish that one first. */
	if (c->ahead && !ahead_is(c, mail_from, rcpts, nrcpt) &&
	    lmtp_cancel(c) == -1)
		return -1;
	if (nrcpt == 0)
		return c->broken ? -1 : 0;
	if ((st = calloc(nrcpt, sizeof(*st))) == NULL) {
		for (i = 0; i < nrcpt; i++)
			reply_set(&rcpt_r[i], 451, "4.3.0",
			    "LMTP: out of memory");
		return c->broken ? -1 : 0;
	}
	rv = c->broken ? -1 : transaction(c, mail_from, rcpts, nrcpt, m,
	    rcpt_r, st, &naccepted);
	if (rv == -1) {
		if (!c->broken)
			conn_fail(c, "4.4.2", "connection failed");
		fail_pending(c, st, nrcpt, rcpt_r);
	}
	for (i = 0; i < nrcpt; i++) {
		if (rcpt_r[i].cls == REPLY_OK)
			nok++;
		else if (rcpt_r[i].cls == REPLY_TEMP)
			ntemp++;
		else
			nperm++;
	}
	log_debug("event=lmtp_transaction server=%s from=%s rcpts=%zu "
	    "accepted=%zu ok=%zu temp=%zu perm=%zu pipelining=%d "
	    "size=%lld ms=%lld result=%s", c->name,
	    log_quote(mail_from != NULL ? mail_from : "", qfrom, sizeof(qfrom)),
	    nrcpt, naccepted, nok, ntemp, nperm, c->pipelining,
	    (long long)(m->prefix_len + (m->fd < 0 ? (off_t)m->mem_len :
	    m->len)), now_ms() - start, rv == 0 ? "ok" : "broken");
	free(st);
	return rv;
}

int
lmtp_deliver(const struct lmtp_server *s, const char *lhlo_name,
    int timeout_ms, const char *mail_from, const char *const *rcpts,
    size_t nrcpt, const struct lmtp_msg *m, struct reply *rcpt_r)
{
	struct lmtp_conn	*c;
	struct reply		 r;
	size_t			 i;
	int			 rv;

	if ((c = lmtp_connect(s, lhlo_name, timeout_ms, &r)) == NULL) {
		for (i = 0; i < nrcpt; i++)
			rcpt_r[i] = r;
		return -1;
	}
	rv = lmtp_send(c, mail_from, rcpts, nrcpt, m, rcpt_r);
	lmtp_close(&c);
	return rv;
}
