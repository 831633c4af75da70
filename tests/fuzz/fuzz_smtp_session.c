/*
 * fuzz_smtp_session.c - libFuzzer target for the whole SMTP state
 * machine of edgemail-submit (smtp-out/session.c + parse.c).
 *
 * The input is what a client sends, split into reads at every \001 byte;
 * the first byte chooses the listener (TLS at once or STARTTLS first).
 * Connection, policy and message store are stubs (user "u" / "p",
 * senders in ok.test).  Besides memory safety: every reply line is
 * "NNN " or "NNN-" followed by text and CRLF, and no more messages are
 * accepted than the input has CRLF "." CRLF sequences.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp-out/parse.c"
#include "smtp-out/session.c"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *in_p, *in_end;
static struct buf transcript;
static int accepted;

void
conn_init(struct conn *c, int fd, int idle_ms, int64_t deadline)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->idle_ms = idle_ms;
	c->session_deadline = deadline;
	buf_init(&c->in, 4096);
	buf_init(&c->out, 1024 * 1024);
}

void
conn_free(struct conn *c)
{
	buf_free(&c->in);
	buf_free(&c->out);
}

int
conn_fill(struct conn *c)
{
	const char *e;
	size_t n;

	if (in_p >= in_end) {
		c->eof = 1;
		return -1;
	}
	if (*in_p == '\001')
		in_p++;
	e = memchr(in_p, '\001', (size_t)(in_end - in_p));
	n = (size_t)((e != NULL ? e : in_end) - in_p);
	if (n > c->in.max - c->in.len)
		n = c->in.max - c->in.len;
	buf_append(&c->in, in_p, n);
	in_p += n;
	return 0;
}

int
conn_flush(struct conn *c)
{
	if (c->out.len > 0)
		buf_append(&transcript, c->out.data, c->out.len);
	buf_reset(&c->out);
	return 0;
}

int
conn_starttls(struct conn *c, SSL_CTX *ctx)
{
	(void)c;
	(void)ctx;
	return 0;
}

int
policy_auth(struct session *s, const char *authzid, const char *user,
    const char *pass, struct reply *r)
{
	(void)authzid;
	if (strcmp(user, "u") == 0 && strcmp(pass, "p") == 0) {
		snprintf(s->user, sizeof(s->user), "u@ok.test");
		reply_set(r, 235, "2.7.0", "ok");
		return 0;
	}
	reply_set(r, 535, "5.7.8", "no");
	return -1;
}

int
policy_mail(struct session *s, const struct addr *from, struct reply *r)
{
	(void)s;
	if (strcmp(from->domain, "ok.test") == 0)
		return 0;
	reply_set(r, 553, "5.7.1", "not yours");
	return -1;
}

int
policy_rcpt(struct session *s, const struct addr *to, struct reply *r)
{
	(void)s;
	if (strcmp(to->local, "unknown") != 0)
		return 0;
	reply_set(r, 550, "5.1.1", "unknown");
	return -1;
}

void
policy_accepted(struct session *s)
{
	(void)s;
}

static int msg_token;

int
msg_begin(struct session *s, struct reply *r)
{
	(void)r;
	s->msg = &msg_token;
	return 0;
}

int
msg_write(struct session *s, const char *p, size_t n)
{
	(void)s;
	(void)p;
	(void)n;
	return 0;
}

void
msg_end(struct session *s, int bad_eol, struct reply *r)
{
	s->msg = NULL;
	if (bad_eol) {
		reply_set(r, 554, "5.6.0", "bare");
		return;
	}
	accepted++;
	reply_set(r, 250, "2.0.0", "queued");
}

void
msg_abort(struct session *s)
{
	s->msg = NULL;
}

static size_t
count_ends(const uint8_t *d, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i + 3 <= n; i++)
		if (d[i] == '.' && d[i + 1] == '\r' && d[i + 2] == '\n')
			c++;
	return c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct submit sv;
	struct session s;
	const char *p, *nl;

	if (size < 1)
		return 0;
	memset(&sv, 0, sizeof(sv));
	snprintf(sv.hostname, sizeof(sv.hostname), "mx.test");
	sv.max_message_size = 2000;
	sv.max_header_size = 1000;
	sv.max_rcpts = 3;
	memset(&s, 0, sizeof(s));
	s.sv = &sv;
	s.implicit_tls = data[0] & 1;
	conn_init(&s.conn, -1, 1000, INT64_MAX);
	in_p = (const char *)data + 1;
	in_end = (const char *)data + size;
	buf_init(&transcript, 0);
	accepted = 0;
	session_run(&s);
	conn_free(&s.conn);
	if ((size_t)accepted > count_ends(data, size))
		abort();
	for (p = buf_cstr(&transcript); *p != '\0'; p = nl + 2) {
		if ((nl = strstr(p, "\r\n")) == NULL)
			abort();	/* a reply without its CRLF */
		if (nl - p < 4 || p[0] < '2' || p[0] > '5' ||
		    (p[3] != ' ' && p[3] != '-') ||
		    memchr(p, '\n', (size_t)(nl - p)) != NULL)
			abort();
	}
	buf_free(&transcript);
	return 0;
}
