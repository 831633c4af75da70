/*
 * test_lmtp.c - the LMTP client against a scripted fake server.
 *
 * The fake server runs in a thread on a unix socket (or 127.0.0.1) and
 * follows a script: send these bytes, expect exactly this command line,
 * read the DATA payload, check that the client is waiting, sleep, close.
 * A pipelined script answers nothing until it has read MAIL, every RCPT
 * and DATA, so a client that waits for each reply times out there; an
 * unpipelined script checks after each command that nothing more came.
 * Each case then compares the per-recipient outcomes and the raw
 * (dot-stuffed) DATA payload the server saw.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/reply.h"
#include "lmtp/lmtp.h"
#include "tests/unit/unit.h"

#define MAX_STEPS	40
#define MAX_RCPT	8
#define SERVER_WAIT_MS	3000

enum step_kind {
	S_END = 0,	/* then: answer QUIT, anything else is an error */
	S_SEND,		/* write s */
	S_EXPECT,	/* read one line, it must be s (without CRLF) */
	S_DATA,		/* read the DATA payload up to and with ".\r\n" */
	S_DATA_PART,	/* read at least n bytes of payload, then close */
	S_NOMORE,	/* nothing more may arrive before we answer */
	S_SLEEP,	/* sleep n ms */
	S_CLOSE,	/* close the connection now */
};

struct step {
	enum step_kind	 k;
	const char	*s;
	int		 n;
};

#define SEND(x)		{ S_SEND, (x), 0 }
#define EXPECT(x)	{ S_EXPECT, (x), 0 }
#define DATA_IN		{ S_DATA, NULL, 0 }
#define DATA_PART(x)	{ S_DATA_PART, NULL, (x) }
#define NOMORE		{ S_NOMORE, NULL, 0 }
#define SLEEP(x)	{ S_SLEEP, NULL, (x) }
#define CLOSE		{ S_CLOSE, NULL, 0 }

#define GREET		SEND("220 fake.example LMTP ready\r\n"), \
			EXPECT("LHLO test.example")
/* PIPELINING and 8BITMIME offered, multi-line. */
#define HELLO_PIPE	GREET, SEND("250-fake.example\r\n250-8BITMIME\r\n" \
			    "250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n")
/* Nothing offered. */
#define HELLO_PLAIN	GREET, SEND("250-fake.example\r\n" \
			    "250 ENHANCEDSTATUSCODES\r\n")
/* 8BITMIME and SMTPUTF8, no pipelining (lower case on purpose). */
#define HELLO_8BIT	GREET, SEND("250-fake.example\r\n250-8bitmime\r\n" \
			    "250 smtputf8\r\n")

struct tcase {
	const char	*name;
	struct step	 script[MAX_STEPS];
	const char	*from;		/* NULL: "sender@example.test" */
	const char	*rcpts[MAX_RCPT];
	const char	*body;		/* NULL: "Subject: t\r\n\r\nhello\r\n" */
	size_t		 body_len;	/* 0: strlen(body) */
	const char	*prefix;
	int		 eightbit;
	int		 use_mem;	/* message from memory, not a file */
	int		 timeout_ms;	/* 0: 3000 */
	int		 ntx;		/* transactions on one connection (1) */
	/* lmtp_begin() before the last transaction, with begin_rcpts (or
	 * rcpts when NULL); it must return begin_rv; then lmtp_cancel()
	 * when cancel is set. */
	int		 begin;
	const char	*begin_rcpts[MAX_RCPT];
	int		 begin_rv;
	int		 cancel;
	int		 tcp;
	int		 rv;		/* what lmtp_send/lmtp_deliver return */
	const char	*want[MAX_RCPT];	/* "class code enhanced" */
	const char	*want_text0;	/* text of rcpt 0's reply */
	const char	*want_data;	/* raw payload; NULL: not checked */
	size_t		 want_data_len;
};

struct fake {
	int		 lfd;
	int		 fd;
	const struct step *script;
	size_t		 nsteps;
	struct buf	 in;
	struct buf	 data;
	char		 err[512];
};

static char	 sock_path[108];

/* ---- the fake server --------------------------------------------------- */

static void
fake_err(struct fake *f, const char *what, const char *arg)
{
	if (f->err[0] == '\0')
		snprintf(f->err, sizeof(f->err), "%s%.200s", what, arg);
}

/* One raw line including its LF into line; -1 on EOF or timeout. */
static int
fake_line(struct fake *f, struct buf *line)
{
	struct pollfd	 pfd;
	char		 tmp[8192];
	char		*nl;
	ssize_t		 n;
	size_t		 len;

	for (;;) {
		if (f->in.len > 0 &&
		    (nl = memchr(f->in.data, '\n', f->in.len)) != NULL) {
			len = (size_t)(nl - f->in.data) + 1;
			buf_reset(line);
			buf_append(line, f->in.data, len);
			buf_consume(&f->in, len);
			return 0;
		}
		pfd.fd = f->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, SERVER_WAIT_MS) <= 0)
			return -1;
		n = recv(f->fd, tmp, sizeof(tmp), 0);
		if (n <= 0)
			return -1;
		buf_append(&f->in, tmp, (size_t)n);
	}
}

static void
chomp(struct buf *line)
{
	while (line->len > 0 && (line->data[line->len - 1] == '\n' ||
	    line->data[line->len - 1] == '\r'))
		line->data[--line->len] = '\0';
}

static void
fake_send(struct fake *f, const char *s)
{
	size_t	 n = strlen(s);
	ssize_t	 w;

	while (n > 0) {
		w = send(f->fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void *
fake_run(void *arg)
{
	struct fake		*f = arg;
	const struct step	*st;
	struct pollfd		 pfd;
	struct buf		 line;
	size_t			 i;

	buf_init(&line, 0);
	pfd.fd = f->lfd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, SERVER_WAIT_MS) <= 0 ||
	    (f->fd = accept(f->lfd, NULL, NULL)) == -1) {
		fake_err(f, "no connection", "");
		goto out;
	}
	for (i = 0; i < f->nsteps; i++) {
		st = &f->script[i];
		switch (st->k) {
		case S_END:
			/* The client may say QUIT, nothing else. */
			while (fake_line(f, &line) == 0) {
				chomp(&line);
				if (strcmp(buf_cstr(&line), "QUIT") != 0) {
					fake_err(f, "unexpected after the "
					    "script: ", buf_cstr(&line));
					break;
				}
				fake_send(f, "221 2.0.0 bye\r\n");
			}
			goto out;
		case S_SEND:
			fake_send(f, st->s);
			break;
		case S_EXPECT:
			if (fake_line(f, &line) == -1) {
				fake_err(f, "EOF, wanted ", st->s);
				goto out;
			}
			chomp(&line);
			if (strcmp(buf_cstr(&line), st->s) != 0) {
				fake_err(f, "got ", buf_cstr(&line));
				goto out;
			}
			break;
		case S_DATA:
			for (;;) {
				if (fake_line(f, &line) == -1) {
					fake_err(f, "EOF in DATA", "");
					goto out;
				}
				buf_append(&f->data, line.data, line.len);
				if (strcmp(buf_cstr(&line), ".\r\n") == 0)
					break;
			}
			break;
		case S_DATA_PART:
			while (f->data.len < (size_t)st->n) {
				if (fake_line(f, &line) == -1)
					break;
				buf_append(&f->data, line.data, line.len);
			}
			goto out;
		case S_NOMORE:
			usleep(50000);
			pfd.fd = f->fd;
			pfd.events = POLLIN;
			if (f->in.len > 0 || poll(&pfd, 1, 0) > 0) {
				fake_err(f, "the client did not wait "
				    "for the reply", "");
				goto out;
			}
			break;
		case S_SLEEP:
			usleep((useconds_t)st->n * 1000);
			break;
		case S_CLOSE:
			goto out;
		}
	}
out:
	if (f->fd != -1)
		close(f->fd);
	f->fd = -1;
	buf_free(&line);
	return NULL;
}

static int
listen_unix(void)
{
	struct sockaddr_un	 sun;
	int			 fd;

	unlink(sock_path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	str_copy(sun.sun_path, sizeof(sun.sun_path), sock_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 4) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Listen on 127.0.0.1 with a kernel-chosen port, written to port_r. */
static int
listen_tcp(int *port_r)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	int			 fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 4) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1) {
		close(fd);
		return -1;
	}
	*port_r = ntohs(sin.sin_port);
	return fd;
}

/* ---- reference dot-stuffing, byte by byte -------------------------------- */

static void
ref_stuff(const char *p, size_t n, struct buf *out)
{
	size_t	 i;
	int	 bol = 1;

	for (i = 0; i < n; i++) {
		if (bol && p[i] == '.')
			buf_putc(out, '.');
		buf_putc(out, p[i]);
		bol = p[i] == '\n';
	}
	if (n > 0 && (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n'))
		buf_puts(out, p[n - 1] == '\r' ? "\n" : "\r\n");
	buf_puts(out, ".\r\n");
}

/* The message back from a received payload (RFC 5321 4.5.2). */
static void
ref_unstuff(const char *p, size_t n, struct buf *out)
{
	size_t	 i;
	int	 bol = 1;

	for (i = 0; i < n; i++) {
		if (bol && p[i] == '.') {
			if (n - i == 3 && memcmp(p + i, ".\r\n", 3) == 0)
				break;
			bol = 0;
			continue;
		}
		buf_putc(out, p[i]);
		bol = p[i] == '\n';
	}
}

/* ---- the runner -------------------------------------------------------- */

static int
msg_file(const char *body, size_t len, off_t *off_r)
{
	char	 path[] = "/tmp/test_lmtp.XXXXXX";
	int	 fd;

	if ((fd = mkstemp(path)) == -1)
		return -1;
	unlink(path);
	/* Junk before the message: pread must start at m->off. */
	if (write(fd, "JUNK..\n", 7) != 7 ||
	    write(fd, body, len) != (ssize_t)len ||
	    write(fd, "\r\n.\r\nTRAILER", 12) != 12) {
		close(fd);
		return -1;
	}
	*off_r = 7;
	return fd;
}

static void
reply_short(const struct reply *r, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s %d %s", reply_class_name(r->cls), r->code,
	    r->enhanced);
}

static void
begin_case(const struct tcase *tc, struct lmtp_conn *c, size_t nrcpt)
{
	const char *const *br = tc->begin_rcpts[0] ? tc->begin_rcpts :
	    tc->rcpts;
	char name[160];
	size_t nb = 0;
	int brv;

	while (tc->begin_rcpts[0] && nb < MAX_RCPT && br[nb] != NULL)
		nb++;
	brv = lmtp_begin(c, tc->from ? tc->from : "sender@example.test", br,
	    tc->begin_rcpts[0] ? nb : nrcpt);
	snprintf(name, sizeof(name), "%s_begin_returns_%d", tc->name,
	    tc->begin_rv);
	UNIT_CHECK(name, brv == tc->begin_rv, "got %d", brv);
	if (tc->cancel) {
		snprintf(name, sizeof(name), "%s_cancel", tc->name);
		UNIT_CHECK(name, lmtp_cancel(c) == 0, "lmtp_cancel failed");
	}
}

static void
run_case(const struct tcase *tc)
{
	struct fake		 f;
	struct lmtp_server	 srv;
	struct lmtp_msg		 m;
	struct lmtp_conn	*c;
	struct reply		 rr[MAX_RCPT], cr;
	pthread_t		 th;
	char			 spec[160], got[64], name[160];
	const char		*body;
	size_t			 nrcpt = 0, blen, wlen, i;
	int			 rv = 0, port = 0, tx, ntx, timeout, ok;

	while (nrcpt < MAX_RCPT && tc->rcpts[nrcpt] != NULL)
		nrcpt++;
	memset(&f, 0, sizeof(f));
	f.fd = -1;
	f.script = tc->script;
	f.nsteps = MAX_STEPS;
	buf_init(&f.in, 0);
	buf_init(&f.data, 0);
	f.lfd = tc->tcp ? listen_tcp(&port) : listen_unix();
	if (f.lfd == -1) {
		UNIT_CHECK(tc->name, 0, "listen: %s", strerror(errno));
		return;
	}
	if (tc->tcp)
		snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	else
		snprintf(spec, sizeof(spec), "unix:%s", sock_path);
	if (lmtp_server_parse(spec, &srv) == -1) {
		UNIT_CHECK(tc->name, 0, "lmtp_server_parse(%s)", spec);
		close(f.lfd);
		return;
	}

	body = tc->body != NULL ? tc->body : "Subject: t\r\n\r\nhello\r\n";
	blen = tc->body_len != 0 ? tc->body_len : strlen(body);
	memset(&m, 0, sizeof(m));
	m.prefix = tc->prefix;
	m.prefix_len = tc->prefix != NULL ? strlen(tc->prefix) : 0;
	m.eightbit = tc->eightbit;
	if (tc->use_mem) {
		m.fd = -1;
		m.mem = body;
		m.mem_len = blen;
	} else {
		m.fd = msg_file(body, blen, &m.off);
		m.len = (off_t)blen;
	}

	pthread_create(&th, NULL, fake_run, &f);
	timeout = tc->timeout_ms ? tc->timeout_ms : 3000;
	ntx = tc->ntx ? tc->ntx : 1;
	for (i = 0; i < MAX_RCPT; i++)
		reply_set(&rr[i], 0, "", "unset");
	if (ntx == 1 && !tc->begin) {
		rv = lmtp_deliver(&srv, "test.example", timeout,
		    tc->from ? tc->from : "sender@example.test", tc->rcpts,
		    nrcpt, &m, rr);
	} else if ((c = lmtp_connect(&srv, "test.example", timeout, &cr))
	    == NULL) {
		rv = -2;
	} else {
		for (tx = 0; tx < ntx; tx++) {
			if (tc->begin && tx == ntx - 1)
				begin_case(tc, c, nrcpt);
			rv |= lmtp_send(c, tc->from ? tc->from :
			    "sender@example.test", tc->rcpts, nrcpt, &m, rr);
		}
		lmtp_close(&c);
	}
	pthread_join(th, NULL);
	close(f.lfd);
	if (m.fd >= 0)
		close(m.fd);

	snprintf(name, sizeof(name), "%s_returns_%d", tc->name, tc->rv);
	UNIT_CHECK(name, rv == tc->rv, "got %d", rv);
	for (i = 0; i < nrcpt; i++) {
		reply_short(&rr[i], got, sizeof(got));
		snprintf(name, sizeof(name), "%s_rcpt%zu", tc->name, i);
		UNIT_CHECK(name, tc->want[i] != NULL &&
		    strcmp(got, tc->want[i]) == 0, "got \"%s\" (%s), want "
		    "\"%s\"", got, rr[i].text, tc->want[i] ? tc->want[i] : "?");
	}
	if (tc->want_text0 != NULL) {
		snprintf(name, sizeof(name), "%s_text", tc->name);
		UNIT_CHECK(name, strcmp(rr[0].text, tc->want_text0) == 0,
		    "got \"%s\"", rr[0].text);
	}
	snprintf(name, sizeof(name), "%s_server_saw_script", tc->name);
	UNIT_CHECK(name, f.err[0] == '\0', "%s", f.err);
	if (tc->want_data != NULL) {
		wlen = tc->want_data_len != 0 ? tc->want_data_len :
		    strlen(tc->want_data);
		ok = f.data.len == wlen &&
		    memcmp(buf_cstr(&f.data), tc->want_data, f.data.len) == 0;
		snprintf(name, sizeof(name), "%s_data", tc->name);
		if (f.data.len < 300)
			UNIT_CHECK(name, ok, "got [%s]", buf_cstr(&f.data));
		else
			UNIT_CHECK(name, ok, "payload differs (%zu bytes, "
			    "want %zu)", f.data.len, wlen);
	}
	buf_free(&f.in);
	buf_free(&f.data);
}

/* ---- the cases --------------------------------------------------------- */

#define R2	{ "a@example.test", "b@example.test" }
#define OK2	{ "ok 250 2.0.0", "ok 250 2.0.0" }
/* A whole pipelined transaction for two recipients, all accepted. */
#define PIPE_OK2(mailcmd) \
	EXPECT(mailcmd), EXPECT("RCPT TO:<a@example.test>"), \
	EXPECT("RCPT TO:<b@example.test>"), EXPECT("DATA"), \
	SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n" \
	    "354 OK\r\n"), \
	DATA_IN, SEND("250 2.0.0 <a> Saved\r\n250 2.0.0 <b> Saved\r\n")
#define MAIL_STD	"MAIL FROM:<sender@example.test>"
#define MAIL_8BIT	MAIL_STD " BODY=8BITMIME"
/* A whole unpipelined transaction for a@example.test, accepted. */
#define PLAIN_OK1(mailcmd) \
	EXPECT(mailcmd), SEND("250 2.1.0 Ok\r\n"), \
	EXPECT("RCPT TO:<a@example.test>"), SEND("250 2.1.5 Ok\r\n"), \
	EXPECT("DATA"), SEND("354 go\r\n"), \
	DATA_IN, SEND("250 2.0.0 Saved\r\n")

static const struct tcase cases[] = {
	{
		.name = "pipelined_two_rcpts",
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD) },
		.rcpts = R2, .rv = 0, .want = OK2,
		.want_data = "Subject: t\r\n\r\nhello\r\n.\r\n",
	},
	{
		.name = "unpipelined_waits_for_each_reply",
		.script = { HELLO_PLAIN,
			EXPECT(MAIL_STD), NOMORE, SEND("250 2.1.0 Ok\r\n"),
			EXPECT("RCPT TO:<a@example.test>"), NOMORE,
			SEND("250 2.1.5 Ok\r\n"),
			EXPECT("RCPT TO:<b@example.test>"), NOMORE,
			SEND("250 2.1.5 Ok\r\n"),
			EXPECT("DATA"), NOMORE, SEND("354 go\r\n"),
			DATA_IN, SEND("250 2.0.0 Saved\r\n250 2.0.0 Saved\r\n"),
		},
		.rcpts = R2, .rv = 0, .want = OK2,
		.want_data = "Subject: t\r\n\r\nhello\r\n.\r\n",
	},
	{
		.name = "tcp_loopback",
		.tcp = 1,
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD) },
		.rcpts = R2, .rv = 0, .want = OK2,
	},
	{
		.name = "dot_stuffing_lines",
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD) },
		.rcpts = R2, .rv = 0, .want = OK2,
		.body = ".first\r\nSubject: x\r\n\r\n.hidden\r\n..two\r\n"
		    ".\r\n. \r\nmid.dle\r\n.",
		.want_data = "..first\r\nSubject: x\r\n\r\n..hidden\r\n"
		    "...two\r\n..\r\n.. \r\nmid.dle\r\n..\r\n.\r\n",
	},
	{
		.name = "no_final_crlf",
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD) },
		.rcpts = R2, .rv = 0, .want = OK2,
		.body = "Subject: x\r\n\r\nno end",
		.want_data = "Subject: x\r\n\r\nno end\r\n.\r\n",
	},
	{
		.name = "final_bare_cr",
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD) },
		.rcpts = R2, .rv = 0, .want = OK2,
		.body = "Subject: x\r\n\r\nend\r",
		.want_data = "Subject: x\r\n\r\nend\r\n.\r\n",
	},
	{
		.name = "empty_message",
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD) },
		.rcpts = R2, .rv = 0, .want = OK2,
		.body = "", .body_len = 0, .use_mem = 1,
		.want_data = ".\r\n",
	},
	{
		.name = "prefix_then_body_from_memory",
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD) },
		.rcpts = R2, .rv = 0, .want = OK2, .use_mem = 1,
		.prefix = "Return-Path: <s@x>\r\n.X: dotted\r\n",
		.body = ".Subject: x\r\n\r\nbody\r\n",
		.want_data = "Return-Path: <s@x>\r\n..X: dotted\r\n"
		    "..Subject: x\r\n\r\nbody\r\n.\r\n",
	},
	{
		.name = "multiline_final_reply_keeps_last_text",
		.script = { HELLO_PIPE,
			EXPECT(MAIL_STD), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("DATA"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 OK\r\n"),
			DATA_IN,
			SEND("250-2.0.0 first line\r\n250-second\r\n"
			    "250 2.0.0 <a> Saved\r\n"),
		},
		.rcpts = { "a@example.test" }, .rv = 0,
		.want = { "ok 250 2.0.0" }, .want_text0 = "<a> Saved",
	},
	{
		.name = "mixed_replies_after_data",
		.script = { HELLO_PIPE,
			EXPECT(MAIL_STD), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"),
			EXPECT("RCPT TO:<c@example.test>"),
			EXPECT("RCPT TO:<d@example.test>"), EXPECT("DATA"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
			    "550 5.1.1 <c@example.test> User doesn't exist\r\n"
			    "250 2.1.5 Ok\r\n354 OK\r\n"),
			DATA_IN,
			SEND("250 2.0.0 <a> Saved\r\n"
			    "452 4.2.2 <b> Mailbox is full\r\n"
			    "552 5.2.2 <d> Quota exceeded\r\n"),
		},
		.rcpts = { "a@example.test", "b@example.test",
		    "c@example.test", "d@example.test" },
		.rv = 0,
		.want = { "ok 250 2.0.0", "temp 452 4.2.2", "perm 550 5.1.1",
		    "perm 552 5.2.2" },
	},
	{
		.name = "mail_from_refused_unpipelined",
		.script = { HELLO_PLAIN,
			EXPECT(MAIL_STD), NOMORE,
			SEND("550 5.7.1 Sender refused\r\n"),
			EXPECT("RSET"), SEND("250 2.0.0 Ok\r\n"),
		},
		.rcpts = R2, .rv = 0,
		.want = { "perm 550 5.7.1", "perm 550 5.7.1" },
	},
	{
		.name = "mail_from_tempfail_pipelined",
		.script = { HELLO_PIPE,
			EXPECT(MAIL_STD), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"), EXPECT("DATA"),
			SEND("451 4.3.0 Try later\r\n503 5.5.1 MAIL needed\r\n"
			    "503 5.5.1 MAIL needed\r\n503 5.5.1 No rcpts\r\n"),
			EXPECT("RSET"), SEND("250 2.0.0 Ok\r\n"),
		},
		.rcpts = R2, .rv = 0,
		.want = { "temp 451 4.3.0", "temp 451 4.3.0" },
	},
	{
		.name = "all_rcpts_refused_unpipelined_no_body",
		.script = { HELLO_PLAIN,
			EXPECT(MAIL_STD), SEND("250 2.1.0 Ok\r\n"),
			EXPECT("RCPT TO:<a@example.test>"),
			SEND("550 5.1.1 no such user\r\n"),
			EXPECT("RCPT TO:<b@example.test>"),
			SEND("450 4.2.1 busy\r\n"),
			EXPECT("RSET"), NOMORE, SEND("250 2.0.0 Ok\r\n"),
		},
		.rcpts = R2, .rv = 0,
		.want = { "perm 550 5.1.1", "temp 450 4.2.1" },
	},
	{
		.name = "all_rcpts_refused_pipelined_no_body",
		.script = { HELLO_PIPE,
			EXPECT(MAIL_STD), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"), EXPECT("DATA"),
			SEND("250 2.1.0 Ok\r\n550 5.1.1 no such user\r\n"
			    "550 5.1.1 no such user\r\n"
			    "554 5.5.1 No valid recipients\r\n"),
			EXPECT("RSET"), NOMORE, SEND("250 2.0.0 Ok\r\n"),
		},
		.rcpts = R2, .rv = 0,
		.want = { "perm 550 5.1.1", "perm 550 5.1.1" },
	},
	{
		.name = "data_354_with_no_rcpt_closes",
		.script = { HELLO_PIPE,
			EXPECT(MAIL_STD), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("DATA"),
			SEND("250 2.1.0 Ok\r\n550 5.1.1 no such user\r\n"
			    "354 go ahead anyway\r\n"),
		},
		.rcpts = { "a@example.test" }, .rv = -1,
		.want = { "perm 550 5.1.1" },
	},
	{
		.name = "data_refused_applies_to_accepted",
		.script = { HELLO_PIPE,
			EXPECT(MAIL_STD), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"), EXPECT("DATA"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
			    "550 5.1.1 nope\r\n451 4.3.2 Not now\r\n"),
			EXPECT("RSET"), SEND("250 2.0.0 Ok\r\n"),
		},
		.rcpts = R2, .rv = 0,
		.want = { "temp 451 4.3.2", "perm 550 5.1.1" },
	},
	{
		.name = "server_closes_mid_data",
		.script = { HELLO_PIPE,
			EXPECT(MAIL_STD), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"),
			EXPECT("RCPT TO:<c@example.test>"), EXPECT("DATA"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
			    "550 5.1.1 nope\r\n250 2.1.5 Ok\r\n354 OK\r\n"),
			DATA_PART(10),
		},
		.rcpts = { "a@example.test", "b@example.test",
		    "c@example.test" },
		.rv = -1,
		.want = { "temp 451 4.4.2", "perm 550 5.1.1",
		    "temp 451 4.4.2" },
	},
	{
		.name = "server_closes_between_final_replies",
		.script = { HELLO_PIPE, EXPECT(MAIL_STD),
			EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"), EXPECT("DATA"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
			    "354 OK\r\n"),
			DATA_IN, SEND("250 2.0.0 <a> Saved\r\n"), CLOSE,
		},
		.rcpts = R2, .rv = -1,
		.want = { "ok 250 2.0.0", "temp 451 4.4.2" },
	},
	{
		.name = "server_closes_after_rcpt_replies",
		.script = { HELLO_PIPE, EXPECT(MAIL_STD),
			EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"), EXPECT("DATA"),
			SEND("250 2.1.0 Ok\r\n550 5.1.1 nope\r\n"
			    "250 2.1.5 Ok\r\n"), CLOSE,
		},
		.rcpts = R2, .rv = -1,
		.want = { "perm 550 5.1.1", "temp 451 4.4.2" },
	},
	{
		.name = "timeout_after_data",
		.timeout_ms = 200,
		.script = { HELLO_PIPE, EXPECT(MAIL_STD),
			EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"), EXPECT("DATA"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
			    "354 OK\r\n"),
			DATA_IN, SLEEP(600),
		},
		.rcpts = R2, .rv = -1,
		.want = { "temp 451 4.4.2", "temp 451 4.4.2" },
	},
	{
		.name = "timeout_in_greeting",
		.timeout_ms = 200,
		.script = { SLEEP(600) },
		.rcpts = R2, .rv = -1,
		.want = { "temp 451 4.4.2", "temp 451 4.4.2" },
	},
	{
		.name = "greeting_refused_is_temp",
		.script = { SEND("554 5.3.2 go away\r\n") },
		.rcpts = R2, .rv = -1,
		.want = { "temp 451 4.4.1", "temp 451 4.4.1" },
	},
	{
		.name = "garbage_reply_to_mail",
		.script = { HELLO_PIPE, EXPECT(MAIL_STD),
			EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"), EXPECT("DATA"),
			SEND("HTTP/1.1 400 Bad Request\r\n"), SLEEP(100),
		},
		.rcpts = R2, .rv = -1,
		.want = { "temp 451 4.5.0", "temp 451 4.5.0" },
	},
	{
		.name = "garbage_mixed_codes_in_multiline",
		.script = { HELLO_PLAIN, EXPECT(MAIL_STD),
			SEND("250-2.1.0 Ok\r\n550 5.1.0 what\r\n"), SLEEP(100),
		},
		.rcpts = R2, .rv = -1,
		.want = { "temp 451 4.5.0", "temp 451 4.5.0" },
	},
	{
		.name = "garbage_code_out_of_range",
		.script = { HELLO_PLAIN, EXPECT(MAIL_STD),
			SEND("699 nonsense\r\n"), SLEEP(100),
		},
		.rcpts = R2, .rv = -1,
		.want = { "temp 451 4.5.0", "temp 451 4.5.0" },
	},
	{
		.name = "unexpected_3xx_to_rcpt",
		.script = { HELLO_PLAIN, EXPECT(MAIL_STD),
			SEND("250 2.1.0 Ok\r\n"),
			EXPECT("RCPT TO:<a@example.test>"),
			SEND("354 what\r\n"), SLEEP(100),
		},
		.rcpts = R2, .rv = -1,
		.want = { "temp 451 4.5.0", "temp 451 4.5.0" },
	},
	{
		.name = "eightbit_offered_body_8bitmime",
		.eightbit = 1,
		.script = { HELLO_PIPE,
			PIPE_OK2(MAIL_STD " BODY=8BITMIME") },
		.rcpts = R2, .rv = 0, .want = OK2,
		.body = "Subject: x\r\n\r\ngr\xc3\xbc\xc3\x9f\r\n",
		.want_data = "Subject: x\r\n\r\ngr\xc3\xbc\xc3\x9f\r\n.\r\n",
	},
	{
		.name = "sevenbit_no_body_param",
		.eightbit = 0,
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD) },
		.rcpts = R2, .rv = 0, .want = OK2,
	},
	{
		.name = "eightbit_not_offered_no_param",
		.eightbit = 1,
		.script = { HELLO_PLAIN,
			PLAIN_OK1(MAIL_STD),
		},
		.rcpts = { "a@example.test" }, .rv = 0,
		.want = { "ok 250 2.0.0" },
	},
	{
		.name = "smtputf8_when_offered_and_needed",
		.eightbit = 1,
		.script = { HELLO_8BIT,
			EXPECT(MAIL_STD " BODY=8BITMIME SMTPUTF8"),
			SEND("250 2.1.0 Ok\r\n"),
			EXPECT("RCPT TO:<j\xc3\xb6rg@example.test>"),
			SEND("250 2.1.5 Ok\r\n"),
			EXPECT("DATA"), SEND("354 go\r\n"),
			DATA_IN, SEND("250 2.0.0 Saved\r\n"),
		},
		.rcpts = { "j\xc3\xb6rg@example.test" }, .rv = 0,
		.want = { "ok 250 2.0.0" },
	},
	{
		.name = "smtputf8_not_offered",
		.script = { HELLO_PLAIN,
			EXPECT(MAIL_STD), SEND("250 2.1.0 Ok\r\n"),
			EXPECT("RCPT TO:<j\xc3\xb6rg@example.test>"),
			SEND("553 5.6.7 no utf8\r\n"),
			EXPECT("RSET"), SEND("250 2.0.0 Ok\r\n"),
		},
		.rcpts = { "j\xc3\xb6rg@example.test" }, .rv = 0,
		.want = { "perm 553 5.6.7" },
	},
	{
		.name = "null_sender",
		.from = "",
		.script = { HELLO_PIPE, PIPE_OK2("MAIL FROM:<>") },
		.rcpts = R2, .rv = 0, .want = OK2,
	},
	{
		.name = "injection_in_rcpt_refused_locally",
		.script = { HELLO_PIPE,
			EXPECT(MAIL_STD), EXPECT("RCPT TO:<b@example.test>"),
			EXPECT("DATA"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 OK\r\n"),
			DATA_IN, SEND("250 2.0.0 Saved\r\n"),
		},
		.rcpts = { "a@example.test>\r\nDATA", "b@example.test" },
		.rv = 0, .want = { "perm 501 5.1.3", "ok 250 2.0.0" },
	},
	{
		.name = "two_transactions_pipelined_rset",
		.ntx = 2,
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD),
			EXPECT("RSET"), SEND("250 2.0.0 Ok\r\n"),
			PIPE_OK2(MAIL_STD),
		},
		.rcpts = R2, .rv = 0, .want = OK2,
	},
	{
		.name = "two_transactions_unpipelined_rset",
		.ntx = 2,
		.script = { HELLO_PLAIN,
			PLAIN_OK1(MAIL_STD),
			EXPECT("RSET"), NOMORE, SEND("250 2.0.0 Ok\r\n"),
			PLAIN_OK1(MAIL_STD),
		},
		.rcpts = { "a@example.test" }, .rv = 0,
		.want = { "ok 250 2.0.0" },
	},
	/* Early envelope (lmtp_begin): MAIL and RCPT go out before the
	 * message is there; lmtp_send() then writes only DATA. */
	{
		.name = "begun_then_sent",
		.begin = 1,
		.script = { HELLO_PIPE,
			EXPECT(MAIL_8BIT), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"),
			EXPECT("DATA"), SEND("354 OK\r\n"), DATA_IN,
			SEND("250 2.0.0 <a> Saved\r\n250 2.0.0 <b> Saved\r\n"),
		},
		.rcpts = R2, .rv = 0, .want = OK2,
		.want_data = "Subject: t\r\n\r\nhello\r\n.\r\n",
	},
	{
		.name = "begun_after_a_transaction_starts_with_rset",
		.ntx = 2, .begin = 1,
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD),
			EXPECT("RSET"), EXPECT(MAIL_8BIT),
			EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"),
			SEND("250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
			    "250 2.1.5 Ok\r\n"),
			EXPECT("DATA"), SEND("354 OK\r\n"), DATA_IN,
			SEND("250 2.0.0 <a> Saved\r\n250 2.0.0 <b> Saved\r\n"),
		},
		.rcpts = R2, .rv = 0, .want = OK2,
	},
	{
		.name = "begun_rcpt_refused_keeps_its_reply",
		.begin = 1,
		.script = { HELLO_PIPE,
			EXPECT(MAIL_8BIT), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
			    "550 5.1.1 no such user\r\n"),
			EXPECT("DATA"), SEND("354 OK\r\n"), DATA_IN,
			SEND("250 2.0.0 <a> Saved\r\n"),
		},
		.rcpts = R2, .rv = 0,
		.want = { "ok 250 2.0.0", "perm 550 5.1.1" },
	},
	{
		/* The directory changed between the headers and the body:
		 * the begun envelope is read and dropped, RSET, the real
		 * one follows. */
		.name = "begun_for_another_envelope_is_dropped",
		.begin = 1, .begin_rcpts = { "a@example.test", "c@example.test" },
		.script = { HELLO_PIPE,
			EXPECT(MAIL_8BIT), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<c@example.test>"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"),
			EXPECT("RSET"), SEND("250 2.0.0 Ok\r\n"),
			PIPE_OK2(MAIL_STD),
		},
		.rcpts = R2, .rv = 0, .want = OK2,
		.want_data = "Subject: t\r\n\r\nhello\r\n.\r\n",
	},
	{
		.name = "begun_and_cancelled",
		.begin = 1, .cancel = 1,
		.script = { HELLO_PIPE,
			EXPECT(MAIL_8BIT), EXPECT("RCPT TO:<a@example.test>"),
			EXPECT("RCPT TO:<b@example.test>"),
			SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"),
			EXPECT("RSET"), SEND("250 2.0.0 Ok\r\n"),
			PIPE_OK2(MAIL_STD),
		},
		.rcpts = R2, .rv = 0, .want = OK2,
	},
	{
		/* Without PIPELINING nothing is begun or written. */
		.name = "begin_needs_pipelining",
		.begin = 1, .begin_rv = -1,
		.script = { HELLO_PLAIN,
			EXPECT(MAIL_STD), NOMORE, SEND("250 2.1.0 Ok\r\n"),
			EXPECT("RCPT TO:<a@example.test>"),
			SEND("250 2.1.5 Ok\r\n"),
			EXPECT("DATA"), SEND("354 go\r\n"),
			DATA_IN, SEND("250 2.0.0 Saved\r\n"),
		},
		.rcpts = { "a@example.test" }, .rv = 0,
		.want = { "ok 250 2.0.0" },
	},
	{
		.name = "begin_refuses_a_bad_address",
		.begin = 1, .begin_rv = -1,
		.begin_rcpts = { "a@example.test>\r\nDATA" },
		.script = { HELLO_PIPE, PIPE_OK2(MAIL_STD) },
		.rcpts = R2, .rv = 0, .want = OK2,
	},
};

/* A script for big bodies: one pipelined transaction, one recipient. */
static const struct step big_script[MAX_STEPS] = {
	HELLO_PIPE,
	EXPECT(MAIL_STD), EXPECT("RCPT TO:<a@example.test>"), EXPECT("DATA"),
	SEND("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 OK\r\n"),
	DATA_IN, SEND("250 2.0.0 Saved\r\n"),
};

/*
 * Messages whose interesting bytes sit on the 64 KiB read boundaries:
 * a '.' as the first byte of the second chunk, a CR/LF pair split by a
 * boundary followed by a '.', and a big message with dots everywhere.
 */
static void
big_cases(void)
{
	struct tcase	 tc;
	struct buf	 body, want, back;
	size_t		 i;
	unsigned int	 seed = 12345;
	int		 which;

	for (which = 0; which < 4; which++) {
		buf_init(&body, 0);
		buf_init(&want, 0);
		memset(&tc, 0, sizeof(tc));
		memcpy(tc.script, big_script, sizeof(big_script));
		tc.rcpts[0] = "a@example.test";
		tc.want[0] = "ok 250 2.0.0";
		buf_puts(&body, "Subject: big\r\n\r\n");
		switch (which) {
		case 0:
			/* Line ends exactly at 65536: '.' opens chunk 2. */
			tc.name = "dot_at_64k_boundary";
			while (body.len < 65536 - 2)
				buf_putc(&body, 'x');
			buf_puts(&body, "\r\n.dot at the boundary\r\nend");
			break;
		case 1:
			/* CR ends chunk 1, LF starts chunk 2, then '.'. */
			tc.name = "crlf_split_at_64k_then_dot";
			while (body.len < 65536 - 1)
				buf_putc(&body, 'y');
			buf_puts(&body, "\r\n.after split\r\n");
			while (body.len < 2 * 65536)
				buf_putc(&body, 'z');
			buf_puts(&body, "\r\n..\r\n.\r\n");
			break;
		case 2:
			/* A '.' opens chunk 2 in the middle of a line: it
			 * must not be stuffed. */
			tc.name = "dot_mid_line_at_64k_boundary";
			while (body.len < 65536)
				buf_putc(&body, 'w');
			buf_puts(&body, ".not a line start\r\n");
			break;
		default:
			tc.name = "big_random_dots_1mib";
			while (body.len < 1024 * 1024 + 17) {
				seed = seed * 1103515245u + 12345u;
				switch ((seed >> 16) % 5) {
				case 0:
					buf_putc(&body, '.');
					break;
				case 1:
					buf_puts(&body, "\r\n");
					break;
				default:
					buf_putc(&body, (char)('a' +
					    (seed >> 8) % 26));
				}
			}
			break;
		}
		ref_stuff(body.data, body.len, &want);
		tc.body = body.data;
		tc.body_len = body.len;
		tc.want_data = want.data;
		tc.want_data_len = want.len;
		run_case(&tc);

		/* The reference is checked too: unstuffing gives the body
		 * back (plus the CRLF the client adds). */
		buf_init(&back, 0);
		ref_unstuff(want.data, want.len, &back);
		i = back.len;
		UNIT_CHECK(tc.name, i >= body.len &&
		    memcmp(back.data, body.data, body.len) == 0,
		    "reference stuffing does not round-trip");
		buf_free(&back);
		buf_free(&body);
		buf_free(&want);
	}
}

/*
 * 250 recipients with pipelining: the client writes at most 100 RCPTs,
 * then reads their replies before the next group (NOMORE proves it
 * waits), so a long recipient list cannot deadlock the two socket
 * buffers.  Recipient 7 is refused at RCPT and keeps that reply.
 */
static void
pipelined_batches_case(void)
{
	enum { N = 250, REFUSED = 7 };
	struct fake		 f;
	struct lmtp_server	 srv;
	struct lmtp_msg		 m;
	struct reply		*rr;
	struct step		*sc;
	struct buf		 rep[4];
	const char		*rcpts[N];
	char			*cmds[N], *rnames[N];
	pthread_t		 th;
	size_t			 n = 0, i, ok = 0;
	int			 rv, g;
	static const struct step hello[] = { HELLO_PIPE };

	sc = calloc(N + 40, sizeof(*sc));
	rr = calloc(N, sizeof(*rr));
	for (g = 0; g < 4; g++)
		buf_init(&rep[g], 0);
	for (i = 0; i < N; i++) {
		if (asprintf(&rnames[i], "r%03zu@example.test", i) == -1 ||
		    asprintf(&cmds[i], "RCPT TO:<%s>", rnames[i]) == -1)
			abort();
		rcpts[i] = rnames[i];
	}
	buf_puts(&rep[0], "250 2.1.0 Ok\r\n");
	for (i = 0; i < N; i++)
		buf_puts(&rep[i / 100], i == REFUSED ?
		    "550 5.1.1 unknown\r\n" : "250 2.1.5 Ok\r\n");
	buf_puts(&rep[2], "354 OK\r\n");
	for (i = 0; i < N - 1; i++)
		buf_puts(&rep[3], "250 2.0.0 Saved\r\n");

	for (i = 0; i < sizeof(hello) / sizeof(hello[0]); i++)
		sc[n++] = hello[i];
	sc[n++] = (struct step)EXPECT(MAIL_STD);
	for (i = 0; i < N; i++) {
		sc[n++] = (struct step)EXPECT(cmds[i]);
		if (i == 99 || i == 199) {
			sc[n++] = (struct step)NOMORE;
			sc[n++] = (struct step)SEND(rep[i / 100].data);
		}
	}
	sc[n++] = (struct step)EXPECT("DATA");
	sc[n++] = (struct step)SEND(rep[2].data);
	sc[n++] = (struct step)DATA_IN;
	sc[n++] = (struct step)SEND(rep[3].data);
	sc[n++] = (struct step){ S_END, NULL, 0 };

	memset(&f, 0, sizeof(f));
	f.fd = -1;
	f.script = sc;
	f.nsteps = n;
	buf_init(&f.in, 0);
	buf_init(&f.data, 0);
	f.lfd = listen_unix();
	lmtp_server_parse(sock_path, &srv);
	memset(&m, 0, sizeof(m));
	m.fd = -1;
	m.mem = "Subject: many\r\n\r\nhi\r\n";
	m.mem_len = strlen(m.mem);
	pthread_create(&th, NULL, fake_run, &f);
	rv = lmtp_deliver(&srv, "test.example", 3000, "sender@example.test",
	    rcpts, N, &m, rr);
	pthread_join(th, NULL);
	close(f.lfd);
	for (i = 0; i < N; i++)
		if (i != REFUSED && rr[i].cls == REPLY_OK && rr[i].code == 250)
			ok++;
	UNIT_CHECK("pipelined_250_rcpts_in_groups_of_100", rv == 0 &&
	    ok == N - 1 && rr[REFUSED].code == 550 && f.err[0] == '\0',
	    "rv %d, %zu ok, rcpt %d got %d, server: %s", rv, ok, REFUSED,
	    rr[REFUSED].code, f.err);

	for (i = 0; i < N; i++) {
		free(cmds[i]);
		free(rnames[i]);
	}
	for (g = 0; g < 4; g++)
		buf_free(&rep[g]);
	buf_free(&f.in);
	buf_free(&f.data);
	free(sc);
	free(rr);
}

/* A long line without LF from the server must not grow without bound. */
static void
overlong_reply_case(void)
{
	struct tcase	 tc;
	struct buf	 junk;

	buf_init(&junk, 0);
	buf_puts(&junk, "250-");
	while (junk.len < 200000)
		buf_putc(&junk, 'A');
	memset(&tc, 0, sizeof(tc));
	tc.name = "overlong_reply_line";
	{
		struct step s[] = { GREET, SEND(junk.data), SLEEP(200) };

		memcpy(tc.script, s, sizeof(s));
	}
	tc.rcpts[0] = "a@example.test";
	tc.rv = -1;
	tc.want[0] = "temp 451 4.5.0";
	run_case(&tc);
	buf_free(&junk);
}

static void
connect_failure_cases(void)
{
	struct lmtp_server	 srv;
	struct lmtp_conn	*c;
	struct reply		 r, rr[2];
	const char		*rcpts[] = { "a@example.test", "b@example.test" };
	struct lmtp_msg		 m;
	int			 port, fd, rv;

	unlink(sock_path);
	lmtp_server_parse(sock_path, &srv);
	c = lmtp_connect(&srv, "test.example", 500, &r);
	UNIT_CHECK("connect_missing_socket_is_temp_441", c == NULL &&
	    r.cls == REPLY_TEMP && r.code == 451 &&
	    strcmp(r.enhanced, "4.4.1") == 0, "%d %s %s", r.code, r.enhanced,
	    r.text);

	/* A port that was just free on 127.0.0.1: connection refused. */
	fd = listen_tcp(&port);
	close(fd);
	memset(&m, 0, sizeof(m));
	m.fd = -1;
	m.mem = "x\r\n";
	m.mem_len = 3;
	snprintf(srv.host, sizeof(srv.host), "127.0.0.1");
	snprintf(srv.port, sizeof(srv.port), "%d", port);
	srv.is_unix = 0;
	rv = lmtp_deliver(&srv, "test.example", 500, "s@example.test", rcpts,
	    2, &m, rr);
	UNIT_CHECK("connect_refused_tcp_is_temp_for_all", rv == -1 &&
	    rr[0].cls == REPLY_TEMP && rr[1].cls == REPLY_TEMP &&
	    rr[0].code == 451 && strcmp(rr[1].enhanced, "4.4.1") == 0,
	    "rv %d, %d %s", rv, rr[1].code, rr[1].enhanced);
}

struct parse_case {
	const char	*spec;
	int		 rv;
	int		 is_unix;
	const char	*path_or_host;
	const char	*port;
};

static const struct parse_case parse_cases[] = {
	{ "unix:/run/dovecot/lmtp", 0, 1, "/run/dovecot/lmtp", "" },
	{ "/run/dovecot/lmtp", 0, 1, "/run/dovecot/lmtp", "" },
	{ "127.0.0.1:24", 0, 0, "127.0.0.1", "24" },
	{ "localhost:2424", 0, 0, "localhost", "2424" },
	{ "[::1]:24", 0, 0, "::1", "24" },
	{ "[::1]24", -1, 0, NULL, NULL },
	{ "::1:24", -1, 0, NULL, NULL },
	{ "127.0.0.1", -1, 0, NULL, NULL },
	{ "127.0.0.1:", -1, 0, NULL, NULL },
	{ ":24", -1, 0, NULL, NULL },
	{ "host:0", -1, 0, NULL, NULL },
	{ "host:65536", -1, 0, NULL, NULL },
	{ "host:24x", -1, 0, NULL, NULL },
	{ "host:-1", -1, 0, NULL, NULL },
	{ "unix:", -1, 0, NULL, NULL },
	{ "", -1, 0, NULL, NULL },
	{ "unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", -1, 0,
	    NULL, NULL },
};

static void
parse_table(void)
{
	struct lmtp_server	 s;
	const struct parse_case	*pc;
	char			 name[200];
	size_t			 i;
	int			 rv, ok;

	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		pc = &parse_cases[i];
		rv = lmtp_server_parse(pc->spec, &s);
		ok = rv == pc->rv;
		if (ok && rv == 0) {
			ok = s.is_unix == pc->is_unix &&
			    strcmp(s.is_unix ? s.path : s.host,
			    pc->path_or_host) == 0 &&
			    strcmp(s.port, pc->port) == 0;
		}
		snprintf(name, sizeof(name), "server_parse_%zu_%.40s", i,
		    pc->spec);
		UNIT_CHECK(name, ok, "rv %d unix %d [%s] [%s] [%s]", rv,
		    s.is_unix, s.path, s.host, s.port);
	}
}

int
main(void)
{
	char	 dir[] = "/tmp/test_lmtp.XXXXXX";
	size_t	 i;

	log_init("test_lmtp", getenv("LMTP_TEST_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERR);
	if (mkdtemp(dir) == NULL) {
		printf("FAIL setup: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/lmtp", dir);

	parse_table();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	big_cases();
	pipelined_batches_case();
	overlong_reply_case();
	connect_failure_cases();

	unlink(sock_path);
	rmdir(dir);
	return unit_done();
}
