/*
 * session.c - the SMTP submission state machine (RFC 5321, 6409, 3207,
 * 4954, 2920, 6152, 6531, 2034, 1870).
 *
 *   S_CONNECTED --EHLO/HELO--> S_HELO --MAIL--> S_MAIL --RCPT--> S_RCPT
 *        ^                       ^  ^                              |
 *        |  STARTTLS (back to    |  +--- RSET, EHLO, end of DATA --+
 *        |  S_CONNECTED)         |                                 v
 *        +-----------------------+---------------------------- S_DATA
 *
 * Commands are a table: each has the conditions it needs (EHLO done, TLS,
 * AUTH, no arguments) checked in one place, in the same order for all, so
 * that a command in the wrong place always gets the same, right reply;
 * then its handler checks what depends on the transaction state.
 *
 * Input is read into the connection's bounded buffer and handled line by
 * line; replies collect in the output buffer and are sent when no
 * complete command is left to handle (PIPELINING, RFC 2920).  Plaintext
 * pipelined after STARTTLS is thrown away (CVE-2011-0411).  DATA goes
 * through the DATA reader (parse.c): CRLF "." CRLF is the only end, and a
 * bare CR or LF makes the message refused (554 5.6.0) after its real end,
 * so what follows a fake end can never become a second message.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "lib/addr.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/reply.h"
#include "smtp-out/submit.h"

/* What a command needs before its handler runs. */
enum {
	CMD_NEED_HELO = 1 << 0,		/* EHLO/HELO first (503) */
	CMD_NEED_TLS = 1 << 1,		/* STARTTLS first (530) */
	CMD_NEED_AUTH = 1 << 2,		/* AUTH first (530) */
	CMD_NO_ARGS = 1 << 3,		/* nothing after the verb (501) */
	CMD_CLOSE = 1 << 4,		/* not SMTP at all: close at once */
};

struct smtp_cmd {
	const char *name;
	int	 flags;
	void	(*fn)(struct session *, const char *args);
	const char *help;
};

static void	cmd_ehlo(struct session *, const char *);
static void	cmd_helo(struct session *, const char *);
static void	cmd_starttls(struct session *, const char *);
static void	cmd_auth(struct session *, const char *);
static void	cmd_mail(struct session *, const char *);
static void	cmd_rcpt(struct session *, const char *);
static void	cmd_data(struct session *, const char *);
static void	cmd_rset(struct session *, const char *);
static void	cmd_noop(struct session *, const char *);
static void	cmd_quit(struct session *, const char *);
static void	cmd_help(struct session *, const char *);
static void	cmd_vrfy(struct session *, const char *);
static void	cmd_not_impl(struct session *, const char *);
static void	cmd_not_smtp(struct session *, const char *);

static const struct smtp_cmd smtp_cmds[] = {
	{ "EHLO", 0, cmd_ehlo, "EHLO hostname" },
	{ "HELO", 0, cmd_helo, "HELO hostname" },
	{ "STARTTLS", CMD_NEED_HELO | CMD_NO_ARGS, cmd_starttls, "STARTTLS" },
	{ "AUTH", CMD_NEED_TLS | CMD_NEED_HELO, cmd_auth,
	    "AUTH PLAIN|LOGIN [initial-response]" },
	{ "MAIL", CMD_NEED_TLS | CMD_NEED_HELO | CMD_NEED_AUTH, cmd_mail,
	    "MAIL FROM:<address> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8]" },
	{ "RCPT", CMD_NEED_TLS | CMD_NEED_HELO | CMD_NEED_AUTH, cmd_rcpt,
	    "RCPT TO:<address>" },
	{ "DATA", CMD_NEED_TLS | CMD_NEED_HELO | CMD_NEED_AUTH | CMD_NO_ARGS,
	    cmd_data, "DATA" },
	{ "RSET", CMD_NO_ARGS, cmd_rset, "RSET" },
	{ "NOOP", 0, cmd_noop, "NOOP" },
	{ "QUIT", CMD_NO_ARGS, cmd_quit, "QUIT" },
	{ "HELP", 0, cmd_help, "HELP" },
	{ "VRFY", 0, cmd_vrfy, NULL },
	{ "EXPN", 0, cmd_vrfy, NULL },
	{ "BDAT", 0, cmd_not_impl, NULL },
	{ "ETRN", 0, cmd_not_impl, NULL },
	{ "TURN", 0, cmd_not_impl, NULL },
	{ "GET", CMD_CLOSE, cmd_not_smtp, NULL },
	{ "POST", CMD_CLOSE, cmd_not_smtp, NULL },
	{ "HEAD", CMD_CLOSE, cmd_not_smtp, NULL },
	{ "PUT", CMD_CLOSE, cmd_not_smtp, NULL },
	{ "CONNECT", CMD_CLOSE, cmd_not_smtp, NULL },
	{ NULL, 0, NULL, NULL },
};

static const char *state_names[] = {
	[S_CONNECTED] = "connected",
	[S_HELO] = "helo",
	[S_MAIL] = "mail",
	[S_RCPT] = "rcpt",
	[S_DATA] = "data",
	[S_QUIT] = "quit",
};

const char *
session_state_name(enum session_state st)
{
	return (unsigned)st <= S_QUIT ? state_names[st] : "?";
}

static void
session_set_state(struct session *s, enum session_state st)
{
	if (s->state == st)
		return;
	log_debug("session=%s event=state from=%s to=%s", s->id,
	    session_state_name(s->state), session_state_name(st));
	s->state = st;
}

/* ---- replies ------------------------------------------------------ */

static void
out_reply(struct session *s, int code, const char *enhanced, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static void
out_reply(struct session *s, int code, const char *enhanced, const char *fmt,
    ...)
{
	char text[512];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* A reply never carries a line end of its own. */
	for (i = 0; text[i] != '\0'; i++)
		if (text[i] == '\r' || text[i] == '\n')
			text[i] = ' ';
	if (enhanced != NULL && *enhanced != '\0')
		buf_printf(&s->conn.out, "%d %s %s\r\n", code, enhanced, text);
	else
		buf_printf(&s->conn.out, "%d %s\r\n", code, text);
}

static void
out_struct(struct session *s, const struct reply *r)
{
	out_reply(s, r->code, r->enhanced, "%s", r->text);
}

/* A refused command: counts towards SUBMIT_ERRORS_MAX. */
static void
out_error(struct session *s, int code, const char *enhanced, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

/* One more error; at SUBMIT_ERRORS_MAX the session ends with 421. */
static void
count_error(struct session *s)
{
	if (++s->errors >= SUBMIT_ERRORS_MAX) {
		out_reply(s, 421, "4.7.0", "%s Too many errors, closing",
		    s->sv->hostname);
		log_info("session=%s event=too_many_errors peer=%s", s->id,
		    s->conn.peer_ip);
		session_set_state(s, S_QUIT);
	}
}

/* NOOP, RSET, HELP are answered, but past SUBMIT_JUNK_MAX of them since
 * the last message each one is an error (Postfix's junk command limit):
 * they cannot keep an idle connection, and its slot, for ever. */
static void
count_junk(struct session *s)
{
	if (++s->junk > SUBMIT_JUNK_MAX)
		count_error(s);
}

static void
out_error(struct session *s, int code, const char *enhanced, const char *fmt,
    ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	out_reply(s, code, enhanced, "%s", text);
	count_error(s);
}

/* ---- the transaction ---------------------------------------------- */

static void
txn_reset(struct session *s)
{
	if (s->msg != NULL)
		msg_abort(s);
	memset(&s->mail, 0, sizeof(s->mail));
	s->mail_from[0] = '\0';
	s->nrcpt = 0;
	s->rcpt_tried = 0;
	if (s->state == S_MAIL || s->state == S_RCPT || s->state == S_DATA)
		session_set_state(s, S_HELO);
}

/* ---- input -------------------------------------------------------- */

/*
 * The next input line (without CRLF, or LF alone) into line[linesz].
 * Returns its length, -1 when the connection is gone, -2 when the line
 * was too long (it is discarded up to its end).
 */
static long
get_line(struct session *s, char *line, size_t linesz)
{
	struct conn *c = &s->conn;
	char *nl;
	size_t n;
	int too_long = 0;

	for (;;) {
		nl = c->in.len > 0 ? memchr(c->in.data, '\n', c->in.len) : NULL;
		if (nl != NULL)
			break;
		if (c->in.len >= linesz - 1) {
			/* Throw away what we have, remember to skip the
			 * rest of this line. */
			buf_reset(&c->in);
			too_long = 1;
		}
		if (conn_flush(c) != 0 || conn_fill(c) != 0)
			return -1;
	}
	n = (size_t)(nl - c->in.data);
	if (too_long || n >= linesz) {
		buf_consume(&c->in, n + 1);
		return -2;
	}
	memcpy(line, c->in.data, n);
	buf_consume(&c->in, n + 1);
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return (long)n;
}

/* ---- commands ----------------------------------------------------- */

static int
helo_arg_ok(const char *a)
{
	size_t i;

	if (*a == '\0' || strlen(a) > 255)
		return 0;
	for (i = 0; a[i] != '\0'; i++)
		if (a[i] == ' ' || (unsigned char)a[i] < 0x21 ||
		    (unsigned char)a[i] > 0x7e)
			return 0;
	return 1;
}

static void
greet_reset(struct session *s, const char *args, int esmtp)
{
	txn_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%s", args);
	s->esmtp = esmtp;
	session_set_state(s, S_HELO);
}

static void
cmd_ehlo(struct session *s, const char *args)
{
	struct buf *o = &s->conn.out;

	if (!helo_arg_ok(args)) {
		out_error(s, 501, "5.5.4", "Syntax: EHLO hostname");
		return;
	}
	greet_reset(s, args, 1);
	buf_printf(o, "250-%s\r\n", s->sv->hostname);
	buf_puts(o, "250-PIPELINING\r\n");
	buf_printf(o, "250-SIZE %llu\r\n", s->sv->max_message_size);
	if (!s->tls)
		buf_puts(o, "250-STARTTLS\r\n");
	else
		buf_puts(o, "250-AUTH PLAIN LOGIN\r\n");
	buf_puts(o, "250-ENHANCEDSTATUSCODES\r\n");
	buf_puts(o, "250-8BITMIME\r\n");
	buf_puts(o, "250 SMTPUTF8\r\n");
}

static void
cmd_helo(struct session *s, const char *args)
{
	if (!helo_arg_ok(args)) {
		out_error(s, 501, "5.5.4", "Syntax: HELO hostname");
		return;
	}
	greet_reset(s, args, 0);
	out_reply(s, 250, NULL, "%s", s->sv->hostname);
}

static void
cmd_starttls(struct session *s, const char *args)
{
	(void)args;
	if (s->tls) {
		out_error(s, 503, "5.5.1", "TLS already active");
		return;
	}
	if (s->state != S_HELO) {
		out_error(s, 503, "5.5.1", "STARTTLS not allowed during a mail "
		    "transaction");
		return;
	}
	out_reply(s, 220, "2.0.0", "Ready to start TLS");
	if (conn_flush(&s->conn) != 0) {
		session_set_state(s, S_QUIT);
		return;
	}
	if (s->conn.in.len > 0) {
		log_warnx("session=%s event=starttls_injection peer=%s bytes=%zu",
		    s->id, s->conn.peer_ip, s->conn.in.len);
		buf_reset(&s->conn.in);
	}
	if (conn_starttls(&s->conn, s->sv->tls) != 0) {
		session_set_state(s, S_QUIT);
		return;
	}
	/* RFC 3207: forget everything learnt before TLS. */
	s->tls = 1;
	s->esmtp = 0;
	s->helo[0] = '\0';
	s->authenticated = 0;
	s->user[0] = '\0';
	session_set_state(s, S_CONNECTED);
	log_info("session=%s event=starttls version=%s cipher=%s", s->id,
	    s->conn.tls_version, s->conn.tls_cipher);
}

/* A base64 line of the AUTH exchange after a 334; -1 ends the command
 * (the reply is out already). */
static long
auth_read(struct session *s, const char *prompt, unsigned char *out,
    size_t outsz)
{
	char line[SUBMIT_AUTH_LINE_MAX];
	long n, d;

	out_reply(s, 334, NULL, "%s", prompt);
	if ((n = get_line(s, line, sizeof(line))) == -1) {
		session_set_state(s, S_QUIT);
		return -1;
	}
	if (n == -2) {
		out_error(s, 500, "5.5.6", "Authentication exchange line too long");
		return -1;
	}
	if (strcmp(line, "*") == 0) {
		out_error(s, 501, "5.0.0", "Authentication cancelled");
		return -1;
	}
	if ((size_t)n / 4 * 3 + 1 > outsz ||
	    (d = b64_decode(line, (size_t)n, out)) < 0) {
		out_error(s, 501, "5.5.2", "Invalid base64 data");
		return -1;
	}
	return d;
}

static int
no_nul(const unsigned char *p, long n)
{
	return memchr(p, '\0', (size_t)n) == NULL;
}

static void
auth_finish(struct session *s, const char *authzid, const char *user,
    const char *pass)
{
	struct reply r;

	if (policy_auth(s, authzid, user, pass, &r) == 0) {
		s->authenticated = 1;
		out_struct(s, &r);
	} else if (r.cls == REPLY_PERM)
		out_error(s, r.code, r.enhanced, "%s", r.text);
	else
		out_struct(s, &r);
}

static void
cmd_auth(struct session *s, const char *args)
{
	char mech[32];
	const char *init;
	unsigned char data[SUBMIT_AUTH_LINE_MAX], user[SUBMIT_AUTH_LINE_MAX];
	long n, un;
	size_t i;

	if (s->authenticated) {
		out_error(s, 503, "5.5.1", "Already authenticated");
		return;
	}
	if (s->state != S_HELO) {
		out_error(s, 503, "5.5.1", "AUTH not allowed during a mail "
		    "transaction");
		return;
	}
	for (i = 0; args[i] != '\0' && args[i] != ' ' && i + 1 < sizeof(mech); i++)
		mech[i] = (char)toupper((unsigned char)args[i]);
	mech[i] = '\0';
	if (args[i] != '\0' && args[i] != ' ') {
		out_error(s, 504, "5.5.4", "Unrecognized authentication type");
		return;
	}
	init = args[i] == ' ' ? args + i + 1 : NULL;
	if (mech[0] == '\0') {
		out_error(s, 501, "5.5.4", "Syntax: AUTH mechanism");
		return;
	}

	if (strcmp(mech, "PLAIN") == 0) {
		const unsigned char *authz, *u, *p, *end;

		if (init != NULL) {
			size_t il = strlen(init);

			if (strcmp(init, "=") == 0)
				n = 0, data[0] = '\0';
			else if (il / 4 * 3 + 1 > sizeof(data) ||
			    (n = b64_decode(init, il, data)) < 0) {
				out_error(s, 501, "5.5.2", "Invalid base64 data");
				return;
			}
		} else if ((n = auth_read(s, "", data, sizeof(data))) < 0)
			return;
		/* authzid NUL authcid NUL passwd */
		authz = data;
		end = data + n;
		u = memchr(authz, '\0', (size_t)n);
		p = u != NULL ? memchr(u + 1, '\0', (size_t)(end - u - 1)) : NULL;
		if (u == NULL || p == NULL || memchr(p + 1, '\0',
		    (size_t)(end - p - 1)) != NULL) {
			out_error(s, 501, "5.5.2", "Invalid PLAIN response");
			return;
		}
		auth_finish(s, (const char *)authz, (const char *)u + 1,
		    (const char *)p + 1);
		OPENSSL_cleanse(data, sizeof(data));
		return;
	}
	if (strcmp(mech, "LOGIN") == 0) {
		if (init != NULL) {
			size_t il = strlen(init);

			if (il / 4 * 3 + 1 > sizeof(user) ||
			    (un = b64_decode(init, il, user)) < 0) {
				out_error(s, 501, "5.5.2", "Invalid base64 data");
				return;
			}
		} else if ((un = auth_read(s, "VXNlcm5hbWU6", user,
		    sizeof(user))) < 0)
			return;
		if ((n = auth_read(s, "UGFzc3dvcmQ6", data, sizeof(data))) < 0)
			return;
		if (!no_nul(user, un) || !no_nul(data, n)) {
			out_error(s, 501, "5.5.2", "Invalid LOGIN response");
			return;
		}
		auth_finish(s, "", (const char *)user, (const char *)data);
		OPENSSL_cleanse(data, sizeof(data));
		return;
	}
	out_error(s, 504, "5.5.4", "Unrecognized authentication type");
}

static void
cmd_mail(struct session *s, const char *args)
{
	struct smtp_mail_args m;
	struct reply r;

	if (s->state == S_MAIL || s->state == S_RCPT) {
		out_error(s, 503, "5.5.1", "Sender already specified");
		return;
	}
	if (smtp_parse_mail(args, s->esmtp, s->sv->max_message_size, &m,
	    &r) != 0) {
		out_error(s, r.code, r.enhanced, "%s", r.text);
		return;
	}
	if (policy_mail(s, &m.addr, &r) != 0) {
		if (r.cls == REPLY_PERM)
			out_error(s, r.code, r.enhanced, "%s", r.text);
		else
			out_struct(s, &r);
		return;
	}
	s->mail = m;
	addr_format(&m.addr, s->mail_from, sizeof(s->mail_from));
	s->nrcpt = 0;
	s->rcpt_tried = 0;
	session_set_state(s, S_MAIL);
	out_reply(s, 250, "2.1.0", "Sender <%s> OK", s->mail_from);
}

static void
cmd_rcpt(struct session *s, const char *args)
{
	struct addr a;
	struct reply r;
	char addr[ADDR_PATH_MAX + 1];
	size_t i;

	if (s->state != S_MAIL && s->state != S_RCPT) {
		out_error(s, 503, "5.5.1", "Need MAIL command first");
		return;
	}
	s->rcpt_tried++;
	if (smtp_parse_rcpt(args, s->mail.smtputf8, &a, &r) != 0) {
		out_error(s, r.code, r.enhanced, "%s", r.text);
		return;
	}
	if ((long long)s->nrcpt >= s->sv->max_rcpts) {
		out_reply(s, 452, "4.5.3", "Too many recipients (at most %lld "
		    "per message)", s->sv->max_rcpts);
		return;
	}
	addr_format(&a, addr, sizeof(addr));
	for (i = 0; i < s->nrcpt; i++)
		if (strcasecmp(s->rcpts[i], addr) == 0) {
			/* Once is enough. */
			out_reply(s, 250, "2.1.5", "Recipient <%s> OK", addr);
			return;
		}
	if (policy_rcpt(s, &a, &r) != 0) {
		if (r.cls == REPLY_PERM)
			out_error(s, r.code, r.enhanced, "%s", r.text);
		else
			out_struct(s, &r);
		return;
	}
	if (s->nrcpt == s->rcpt_cap) {
		size_t ncap = s->rcpt_cap ? s->rcpt_cap * 2 : 8;
		void *p = reallocarray(s->rcpts, ncap, sizeof(*s->rcpts));

		if (p == NULL) {
			out_reply(s, 452, "4.3.0", "Out of memory");
			return;
		}
		s->rcpts = p;
		s->rcpt_cap = ncap;
	}
	snprintf(s->rcpts[s->nrcpt++], sizeof(s->rcpts[0]), "%s", addr);
	session_set_state(s, S_RCPT);
	out_reply(s, 250, "2.1.5", "Recipient <%s> OK", addr);
}

/* Read the message after 354 to its end; the final reply goes out. */
static void
data_read(struct session *s)
{
	struct data_reader dr;
	struct conn *c = &s->conn;
	struct reply r;
	char *scratch;
	size_t used, outlen;
	unsigned long long size = 0;
	int too_big = 0, write_failed = 0;

	if ((scratch = malloc(c->in.max + 2)) == NULL) {
		msg_abort(s);
		out_reply(s, 451, "4.3.0", "Out of memory");
		session_set_state(s, S_QUIT);
		return;
	}
	data_reader_init(&dr);
	while (!dr.done) {
		if (c->in.len == 0 && conn_fill(c) != 0) {
			free(scratch);
			msg_abort(s);
			if (c->timed_out)
				out_reply(s, 421, "4.4.2", "%s Timeout in DATA, "
				    "closing", s->sv->hostname);
			session_set_state(s, S_QUIT);
			return;
		}
		used = data_reader_feed(&dr, c->in.data, c->in.len, scratch,
		    &outlen);
		buf_consume(&c->in, used);
		size += outlen;
		if (size > s->sv->max_message_size)
			too_big = 1;
		if (!too_big && !write_failed && outlen > 0 &&
		    msg_write(s, scratch, outlen) != 0)
			write_failed = 1;
	}
	free(scratch);
	if (too_big) {
		msg_abort(s);
		out_reply(s, 552, "5.3.4", "Message size exceeds fixed maximum "
		    "message size (%llu bytes)", s->sv->max_message_size);
	} else if (write_failed) {
		msg_abort(s);
		out_reply(s, 451, "4.3.0", "Local error storing the message, "
		    "try again later");
	} else {
		msg_end(s, dr.bad_eol, &r);
		out_struct(s, &r);
		if (r.cls == REPLY_OK)
			s->junk = 0;
	}
}

static void
cmd_data(struct session *s, const char *args)
{
	struct reply r;

	(void)args;
	if (s->state == S_HELO) {
		out_error(s, 503, "5.5.1", "Need MAIL command first");
		return;
	}
	if (s->state == S_MAIL) {
		if (s->rcpt_tried > 0)
			out_error(s, 554, "5.5.1", "No valid recipients");
		else
			out_error(s, 503, "5.5.1", "Need RCPT command first");
		return;
	}
	if (msg_begin(s, &r) != 0) {
		out_struct(s, &r);
		return;
	}
	out_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	if (conn_flush(&s->conn) != 0) {
		msg_abort(s);
		session_set_state(s, S_QUIT);
		return;
	}
	session_set_state(s, S_DATA);
	data_read(s);
	if (s->state != S_QUIT)
		txn_reset(s);
}

static void
cmd_rset(struct session *s, const char *args)
{
	(void)args;
	txn_reset(s);
	out_reply(s, 250, "2.0.0", "OK");
	count_junk(s);
}

static void
cmd_noop(struct session *s, const char *args)
{
	(void)args;
	out_reply(s, 250, "2.0.0", "OK");
	count_junk(s);
}

static void
cmd_quit(struct session *s, const char *args)
{
	(void)args;
	out_reply(s, 221, "2.0.0", "%s closing connection", s->sv->hostname);
	session_set_state(s, S_QUIT);
}

static void
cmd_help(struct session *s, const char *args)
{
	const struct smtp_cmd *c;

	(void)args;
	buf_puts(&s->conn.out, "214-2.0.0 Commands:\r\n");
	for (c = smtp_cmds; c->name != NULL; c++)
		if (c->help != NULL)
			buf_printf(&s->conn.out, "214-2.0.0   %s\r\n", c->help);
	out_reply(s, 214, "2.0.0", "End of HELP");
	count_junk(s);
}

static void
cmd_vrfy(struct session *s, const char *args)
{
	(void)args;
	out_error(s, 502, "5.5.1", "VRFY and EXPN are disabled");
}

static void
cmd_not_impl(struct session *s, const char *args)
{
	(void)args;
	out_error(s, 502, "5.5.1", "Command not implemented");
}

static void
cmd_not_smtp(struct session *s, const char *args)
{
	(void)args;
	log_info("session=%s event=not_smtp peer=%s", s->id, s->conn.peer_ip);
	out_reply(s, 421, "4.7.0", "%s This is an SMTP server, closing",
	    s->sv->hostname);
	session_set_state(s, S_QUIT);
}

/* ---- dispatch ----------------------------------------------------- */

static void
dispatch(struct session *s, const char *line, size_t len)
{
	const struct smtp_cmd *c;
	struct smtp_line l;

	if (memchr(line, '\0', len) != NULL || smtp_split(line, &l) != 0) {
		out_error(s, 500, "5.5.2", "Syntax error, command unrecognized");
		return;
	}
	for (c = smtp_cmds; c->name != NULL; c++)
		if (strcmp(c->name, l.verb) == 0)
			break;
	if (c->name == NULL) {
		out_error(s, 500, "5.5.2", "Command not recognized");
		return;
	}
	if (c->flags & CMD_CLOSE) {
		c->fn(s, l.args);
		return;
	}
	if ((c->flags & CMD_NEED_TLS) && !s->tls) {
		if (c->fn == cmd_auth)
			out_error(s, 538, "5.7.11", "Encryption required for "
			    "requested authentication mechanism: STARTTLS first");
		else
			out_error(s, 530, "5.7.0", "Must issue a STARTTLS command "
			    "first");
		return;
	}
	if ((c->flags & CMD_NEED_HELO) && s->state == S_CONNECTED) {
		out_error(s, 503, "5.5.1", "Send EHLO first");
		return;
	}
	if ((c->flags & CMD_NEED_AUTH) && !s->authenticated) {
		out_error(s, 530, "5.7.0", "Authentication required");
		return;
	}
	if ((c->flags & CMD_NO_ARGS) && *l.args != '\0') {
		out_error(s, 501, "5.5.4", "Syntax: %s", c->name);
		return;
	}
	c->fn(s, l.args);
}

void
session_run(struct session *s)
{
	char line[SUBMIT_CMD_MAX + 1];
	long n;

	s->state = S_CONNECTED;
	if (s->implicit_tls) {
		if (conn_starttls(&s->conn, s->sv->tls) != 0)
			return;
		s->tls = 1;
	}
	out_reply(s, 220, NULL, "%s ESMTP edgemail", s->sv->hostname);
	while (s->state != S_QUIT) {
		n = get_line(s, line, sizeof(line));
		if (n == -1) {
			if (s->conn.timed_out) {
				out_reply(s, 421, "4.4.2", "%s Timeout, closing "
				    "connection", s->sv->hostname);
				log_info("session=%s event=timeout peer=%s "
				    "state=%s", s->id, s->conn.peer_ip,
				    session_state_name(s->state));
			}
			break;
		}
		if (n == -2) {
			out_error(s, 500, "5.5.2", "Line too long");
			continue;
		}
		dispatch(s, line, (size_t)n);
	}
	txn_reset(s);
	conn_flush(&s->conn);
	free(s->rcpts);
	s->rcpts = NULL;
	s->rcpt_cap = 0;
}
