/*
 * test_smtp_session.c - the SMTP state machine of edgemail-submit
 * (smtp-out/session.c) driven by scripted clients.
 *
 * session.c and parse.c are compiled in; the connection, the policy and
 * the message store are stubs: input comes from a script (chunks
 * separated by \001, each one conn_fill), replies are collected, and
 * the stub policy knows user "u" with password "p", senders in ok.test,
 * and refuses recipients whose local part is "unknown".  Each row states
 * the reply codes a client must get, in order: every command in every
 * wrong place, AUTH exchanges, pipelining, STARTTLS injection, DATA and
 * smuggling, limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp-out/parse.c"
#include "smtp-out/session.c"
#include "tests/unit/unit.h"

static const char *script;	/* what the client sends, \001 = new read */
static struct buf transcript;	/* what it got */
static struct buf message;	/* DATA bytes as handed to msg_write */
static int nmessages;		/* msg_end calls that gave 250 */
static int tls_started;

/* ---- stubs ------------------------------------------------------------- */

void
conn_init(struct conn *c, int fd, int idle_ms, int64_t deadline)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->idle_ms = idle_ms;
	c->session_deadline = deadline;
	buf_init(&c->in, 256 * 1024);
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
	const char *end;
	size_t n;

	if (script == NULL || *script == '\0') {
		c->eof = 1;
		return -1;
	}
	if (*script == '\001')
		script++;
	end = strchr(script, '\001');
	n = end != NULL ? (size_t)(end - script) : strlen(script);
	if (n > c->in.max - c->in.len)
		n = c->in.max - c->in.len;
	buf_append(&c->in, script, n);
	script += n;
	return 0;
}

int
conn_flush(struct conn *c)
{
	buf_append(&transcript, c->out.data ? c->out.data : "", c->out.len);
	buf_reset(&c->out);
	return 0;
}

int
conn_starttls(struct conn *c, SSL_CTX *ctx)
{
	(void)c;
	(void)ctx;
	tls_started++;
	return 0;
}

int
policy_auth(struct session *s, const char *authzid, const char *user,
    const char *pass, struct reply *r)
{
	(void)authzid;
	if (strcmp(user, "u") == 0 && strcmp(pass, "p") == 0) {
		snprintf(s->user, sizeof(s->user), "u@ok.test");
		reply_set(r, 235, "2.7.0", "Authentication successful");
		return 0;
	}
	reply_set(r, 535, "5.7.8", "Authentication credentials invalid");
	return -1;
}

int
policy_mail(struct session *s, const struct addr *from, struct reply *r)
{
	(void)s;
	if (strcmp(from->domain, "ok.test") == 0)
		return 0;
	reply_set(r, 553, "5.7.1", "Sender address rejected");
	return -1;
}

int
policy_rcpt(struct session *s, const struct addr *to, struct reply *r)
{
	(void)s;
	if (strcmp(to->local, "unknown") != 0)
		return 0;
	reply_set(r, 550, "5.1.1", "No such user");
	return -1;
}

int
msg_begin(struct session *s, struct reply *r)
{
	(void)r;
	s->msg = &message;
	buf_reset(&message);
	return 0;
}

int
msg_write(struct session *s, const char *p, size_t n)
{
	(void)s;
	return buf_append(&message, p, n);
}

void
msg_end(struct session *s, int bad_eol, struct reply *r)
{
	s->msg = NULL;
	if (bad_eol) {
		reply_set(r, 554, "5.6.0", "bare CR or LF");
		return;
	}
	nmessages++;
	reply_set(r, 250, "2.0.0", "Ok: queued");
}

void
msg_abort(struct session *s)
{
	s->msg = NULL;
}

/* ---- driver ------------------------------------------------------------- */

/* The codes of the final lines of every reply: "220 250 354". */
static void
codes_of(const struct buf *t, char *out, size_t outsz)
{
	const char *p = buf_cstr(t), *nl;
	size_t o = 0;

	out[0] = '\0';
	while (*p != '\0' && (nl = strstr(p, "\r\n")) != NULL) {
		if (nl - p >= 4 && p[3] == ' ' && o + 5 < outsz) {
			if (o > 0)
				out[o++] = ' ';
			memcpy(out + o, p, 3);
			o += 3;
			out[o] = '\0';
		}
		p = nl + 2;
	}
}

struct row {
	const char *name;
	int	 plain;		/* the 587 listener (no TLS yet) */
	const char *in;
	const char *codes;
	int	 messages;	/* messages accepted, -1: don't care */
	const char *data;	/* bytes of the last message, NULL: don't care */
};

#define AUTH	"EHLO c.test\r\nAUTH PLAIN AHUAcA==\r\n"
#define AUTHC	"220 250 235"
#define TXN	AUTH "MAIL FROM:<a@ok.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"
#define TXNC	AUTHC " 250 250 354"

static const struct row rows[] = {
	{ "greeting_quit", 0, "QUIT\r\n", "220 221", -1, NULL },
	{ "eof_without_quit", 0, "NOOP\r\n", "220 250", -1, NULL },
	{ "ehlo_needs_argument", 0, "EHLO\r\nEHLO  \r\nHELO\r\n",
	    "220 501 501 501", -1, NULL },
	{ "helo_then_noop", 0, "HELO c.test\r\nNOOP x\r\n", "220 250 250", -1,
	    NULL },
	{ "mail_before_ehlo", 0, "MAIL FROM:<a@ok.test>\r\n", "220 503", -1,
	    NULL },
	{ "auth_before_ehlo", 0, "AUTH PLAIN AHUAcA==\r\n", "220 503", -1, NULL },
	{ "starttls_before_ehlo", 1, "STARTTLS\r\n", "220 503", -1, NULL },
	{ "mail_before_auth", 0, "EHLO c.test\r\nMAIL FROM:<a@ok.test>\r\n",
	    "220 250 530", -1, NULL },
	{ "rcpt_before_auth", 0, "EHLO c.test\r\nRCPT TO:<a@ok.test>\r\n",
	    "220 250 530", -1, NULL },
	{ "data_before_auth", 0, "EHLO c.test\r\nDATA\r\n", "220 250 530", -1,
	    NULL },
	{ "auth_plain_initial", 0, AUTH, AUTHC, -1, NULL },
	{ "auth_plain_bad_password", 0, "EHLO c.test\r\nAUTH PLAIN AHUAeA==\r\n",
	    "220 250 535", -1, NULL },
	{ "auth_plain_two_steps", 0, "EHLO c.test\r\nAUTH PLAIN\r\nAHUAcA==\r\n",
	    "220 250 334 235", -1, NULL },
	{ "auth_plain_empty_initial", 0, "EHLO c.test\r\nAUTH PLAIN =\r\n",
	    "220 250 501", -1, NULL },
	{ "auth_plain_cancelled", 0, "EHLO c.test\r\nAUTH PLAIN\r\n*\r\n",
	    "220 250 334 501", -1, NULL },
	{ "auth_plain_bad_base64", 0, "EHLO c.test\r\nAUTH PLAIN !!!!\r\n",
	    "220 250 501", -1, NULL },
	{ "auth_plain_too_many_parts", 0,
	    "EHLO c.test\r\nAUTH PLAIN AHUAcAB4\r\n", "220 250 501", -1, NULL },
	{ "auth_login", 0, "EHLO c.test\r\nAUTH LOGIN\r\ndQ==\r\ncA==\r\n",
	    "220 250 334 334 235", -1, NULL },
	{ "auth_login_initial", 0, "EHLO c.test\r\nAUTH LOGIN dQ==\r\ncA==\r\n",
	    "220 250 334 235", -1, NULL },
	{ "auth_unknown_mechanism", 0, "EHLO c.test\r\nAUTH CRAM-MD5\r\n",
	    "220 250 504", -1, NULL },
	{ "auth_no_mechanism", 0, "EHLO c.test\r\nAUTH\r\n", "220 250 501", -1,
	    NULL },
	{ "auth_twice", 0, AUTH "AUTH PLAIN AHUAcA==\r\n", AUTHC " 503", -1,
	    NULL },
	{ "auth_in_transaction", 0, "EHLO c.test\r\nAUTH PLAIN AHUAcA==\r\n"
	    "MAIL FROM:<a@ok.test>\r\nAUTH LOGIN\r\n", AUTHC " 250 503", -1,
	    NULL },
	{ "rcpt_before_mail", 0, AUTH "RCPT TO:<b@x.test>\r\n", AUTHC " 503", -1,
	    NULL },
	{ "data_before_mail", 0, AUTH "DATA\r\n", AUTHC " 503", -1, NULL },
	{ "data_before_rcpt", 0, AUTH "MAIL FROM:<a@ok.test>\r\nDATA\r\n",
	    AUTHC " 250 503", -1, NULL },
	{ "data_without_valid_rcpt", 0, AUTH "MAIL FROM:<a@ok.test>\r\n"
	    "RCPT TO:<unknown@x.test>\r\nDATA\r\n", AUTHC " 250 550 554", -1,
	    NULL },
	{ "mail_twice", 0, AUTH "MAIL FROM:<a@ok.test>\r\nMAIL FROM:<a@ok.test>\r\n",
	    AUTHC " 250 503", -1, NULL },
	{ "mail_foreign_sender", 0, AUTH "MAIL FROM:<a@bad.test>\r\n",
	    AUTHC " 553", -1, NULL },
	{ "mail_size_too_big", 0, AUTH "MAIL FROM:<a@ok.test> SIZE=999999999\r\n",
	    AUTHC " 552", -1, NULL },
	{ "helo_refuses_parameters", 0, "HELO c.test\r\nAUTH PLAIN AHUAcA==\r\n"
	    "MAIL FROM:<a@ok.test> SIZE=1\r\n", "220 250 235 555", -1, NULL },
	{ "rset_ends_transaction", 0, AUTH "MAIL FROM:<a@ok.test>\r\nRSET\r\n"
	    "RCPT TO:<b@x.test>\r\n", AUTHC " 250 250 503", -1, NULL },
	{ "rset_takes_no_arguments", 0, "RSET x\r\n", "220 501", -1, NULL },
	{ "ehlo_ends_transaction", 0, AUTH "MAIL FROM:<a@ok.test>\r\n"
	    "EHLO c.test\r\nRCPT TO:<b@x.test>\r\n", AUTHC " 250 250 503", -1,
	    NULL },
	{ "duplicate_rcpt_once", 0, TXN ".\r\n", TXNC " 250", 1, "" },
	{ "too_many_rcpts", 0, AUTH "MAIL FROM:<a@ok.test>\r\n"
	    "RCPT TO:<1@x.test>\r\nRCPT TO:<2@x.test>\r\nRCPT TO:<3@x.test>\r\n"
	    "RCPT TO:<4@x.test>\r\n", AUTHC " 250 250 250 250 452", -1, NULL },
	{ "vrfy_expn_refused", 0, "VRFY a\r\nEXPN b\r\n", "220 502 502", -1,
	    NULL },
	{ "unknown_and_unimplemented", 0, "FOO\r\nBDAT 1\r\nETRN x\r\n",
	    "220 500 502 502", -1, NULL },
	{ "quit_takes_no_arguments", 0, "QUIT now\r\nQUIT\r\n", "220 501 221",
	    -1, NULL },
	{ "help", 0, "HELP\r\n", "220 214", -1, NULL },
	{ "http_request_closes", 0, "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	    "220 421", -1, NULL },
	{ "lf_terminated_commands", 0, "NOOP\nQUIT\n", "220 250 221", -1, NULL },
	{ "full_transaction", 0, TXN "Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
	    TXNC " 250 221", 1, "Subject: x\r\n\r\nhi\r\n" },
	{ "dot_unstuffed", 0, TXN "..a\r\n.b\r\n.\r\n", TXNC " 250", 1,
	    ".a\r\nb\r\n" },
	{ "data_in_many_reads", 0, TXN "a\r\001\n.\001\r\001\n", TXNC " 250", 1,
	    "a\r\n" },
	{ "second_transaction", 0, TXN "a\r\n.\r\nMAIL FROM:<a@ok.test>\r\n"
	    "RCPT TO:<c@x.test>\r\nDATA\r\nb\r\n.\r\n",
	    TXNC " 250 250 250 354 250", 2, "b\r\n" },
	{ "bare_lf_refused", 0, TXN "a\nb\r\n.\r\nNOOP\r\n", TXNC " 554 250", 0,
	    NULL },
	{ "bare_cr_refused", 0, TXN "a\rb\r\n.\r\n", TXNC " 554", 0, NULL },
	{ "smuggle_lf_dot_lf_is_one_message", 0, TXN "a\n.\nMAIL FROM:<a@ok.test>\r\n"
	    "RCPT TO:<b@x.test>\r\nDATA\r\nevil\r\n.\r\nQUIT\r\n",
	    TXNC " 554 221", 0, NULL },
	{ "smuggle_cr_dot_cr_is_one_message", 0, TXN "a\r.\rMAIL FROM:<a@ok.test>\r\n"
	    "DATA\r\nevil\r\n.\r\nQUIT\r\n", TXNC " 554 221", 0, NULL },
	{ "smuggle_crlf_dot_lf_is_one_message", 0, TXN "a\r\n.\nMAIL "
	    "FROM:<a@ok.test>\r\nDATA\r\nevil\r\n.\r\nQUIT\r\n",
	    TXNC " 554 221", 0, NULL },
	{ "eof_in_data", 0, TXN "a\r\n", TXNC, 0, NULL },
	{ "pipelined_in_one_read", 0, "EHLO c.test\r\nAUTH PLAIN AHUAcA==\r\n"
	    "MAIL FROM:<a@ok.test>\r\nRCPT TO:<b@x.test>\r\n"
	    "RCPT TO:<unknown@x.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
	    "220 250 235 250 250 550 354 250 221", 1, "x\r\n" },
	{ "line_too_long", 0, "NOOP "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "\001%LONG%\r\nNOOP\r\n", "220 500 250", -1, NULL },
	/* 587: TLS first. */
	{ "plain_auth_refused_538", 1, "EHLO c.test\r\nAUTH PLAIN AHUAcA==\r\n",
	    "220 250 538", -1, NULL },
	{ "plain_mail_refused_530", 1, "EHLO c.test\r\nMAIL FROM:<a@ok.test>\r\n",
	    "220 250 530", -1, NULL },
	{ "starttls_then_auth", 1, "EHLO c.test\r\nSTARTTLS\r\n\001EHLO c.test\r\n"
	    "AUTH PLAIN AHUAcA==\r\n", "220 250 220 250 235", -1, NULL },
	{ "starttls_needs_ehlo_again", 1, "EHLO c.test\r\nSTARTTLS\r\n\001"
	    "AUTH PLAIN AHUAcA==\r\n", "220 250 220 503", -1, NULL },
	{ "starttls_with_argument", 1, "EHLO c.test\r\nSTARTTLS x\r\n",
	    "220 250 501", -1, NULL },
	{ "starttls_injection_discarded", 1, "EHLO c.test\r\nSTARTTLS\r\n"
	    "NOOP\r\nNOOP\r\n", "220 250 220", -1, NULL },
	{ "starttls_twice", 1, "EHLO c.test\r\nSTARTTLS\r\n\001EHLO c.test\r\n"
	    "STARTTLS\r\n", "220 250 220 250 503", -1, NULL },
};

static char long_line[SUBMIT_CMD_MAX + 64];

static void
run_row(const struct row *r)
{
	struct submit sv;
	struct session s;
	char codes[512], in[16384];
	const char *p;
	size_t o = 0;
	int ok;

	/* The script, with %LONG% replaced (NUL bytes: run_nul_rows). */
	memset(in, 0, sizeof(in));
	for (p = r->in; ; p++) {
		if (strncmp(p, "%LONG%", 6) == 0) {
			memcpy(in + o, long_line, strlen(long_line));
			o += strlen(long_line);
			p += 5;
			continue;
		}
		if (*p == '\0')
			break;
		in[o++] = *p;
	}
	memset(&sv, 0, sizeof(sv));
	snprintf(sv.hostname, sizeof(sv.hostname), "mx.test");
	sv.max_message_size = 1000;
	sv.max_header_size = 1000;
	sv.max_rcpts = 3;
	memset(&s, 0, sizeof(s));
	s.sv = &sv;
	snprintf(s.id, sizeof(s.id), "test");
	conn_init(&s.conn, -1, 1000, INT64_MAX);
	s.implicit_tls = !r->plain;
	script = in;
	buf_reset(&transcript);
	buf_reset(&message);
	nmessages = 0;
	tls_started = 0;
	session_run(&s);
	conn_free(&s.conn);
	codes_of(&transcript, codes, sizeof(codes));
	ok = strcmp(codes, r->codes) == 0 &&
	    (r->messages < 0 || r->messages == nmessages) &&
	    (r->data == NULL || (message.len == strlen(r->data) &&
	    memcmp(buf_cstr(&message), r->data, message.len) == 0));
	UNIT_CHECK(r->name, ok, "codes \"%s\" want \"%s\", messages %d, data "
	    "\"%s\"", codes, r->codes, nmessages, buf_cstr(&message));
}

/* NUL bytes inside a row's script need the literal length: these rows
 * are run from explicit buffers. */
static void
run_nul_rows(void)
{
	static const char nul_cmd[] = "NO\0OP\r\n";
	static const char nul_data[] = TXN "a\r\n\0.\r\nNOOP\r\n.\r\nQUIT\r\n";
	struct row r;
	struct submit sv;
	struct session s;
	char codes[512];
	int i;

	for (i = 0; i < 2; i++) {
		memset(&r, 0, sizeof(r));
		memset(&sv, 0, sizeof(sv));
		snprintf(sv.hostname, sizeof(sv.hostname), "mx.test");
		sv.max_message_size = 1000;
		sv.max_header_size = 1000;
		sv.max_rcpts = 3;
		memset(&s, 0, sizeof(s));
		s.sv = &sv;
		s.implicit_tls = 1;
		conn_init(&s.conn, -1, 1000, INT64_MAX);
		/* Feed the whole buffer at once, NULs included. */
		if (i == 0)
			buf_append(&s.conn.in, nul_cmd, sizeof(nul_cmd) - 1);
		else
			buf_append(&s.conn.in, nul_data, sizeof(nul_data) - 1);
		script = NULL;
		buf_reset(&transcript);
		buf_reset(&message);
		nmessages = 0;
		session_run(&s);
		conn_free(&s.conn);
		codes_of(&transcript, codes, sizeof(codes));
		if (i == 0)
			UNIT_CHECK("nul_in_command_refused",
			    strcmp(codes, "220 500") == 0, "codes %s", codes);
		else
			UNIT_CHECK("nul_after_crlf_is_data_not_end",
			    strcmp(codes, TXNC " 250 221") == 0 && nmessages == 1 &&
			    message.len == 13 &&
			    memcmp(message.data, "a\r\n\0.\r\nNOOP\r\n", 13) == 0,
			    "codes %s messages %d len %zu", codes, nmessages,
			    message.len);
	}
}

static void
test_ehlo_keywords(void)
{
	struct submit sv;
	struct session s;
	const char *t;
	int plain;

	for (plain = 0; plain < 2; plain++) {
		memset(&sv, 0, sizeof(sv));
		snprintf(sv.hostname, sizeof(sv.hostname), "mx.test");
		sv.max_message_size = 1234;
		memset(&s, 0, sizeof(s));
		s.sv = &sv;
		s.implicit_tls = !plain;
		conn_init(&s.conn, -1, 1000, INT64_MAX);
		script = "EHLO c.test\r\n";
		buf_reset(&transcript);
		session_run(&s);
		conn_free(&s.conn);
		t = buf_cstr(&transcript);
		if (plain)
			UNIT_CHECK("ehlo_plain_offers_starttls_not_auth",
			    strstr(t, "250-STARTTLS\r\n") != NULL &&
			    strstr(t, "AUTH") == NULL, "%s", t);
		else
			UNIT_CHECK("ehlo_tls_offers_auth_not_starttls",
			    strstr(t, "250-AUTH PLAIN LOGIN\r\n") != NULL &&
			    strstr(t, "STARTTLS") == NULL, "%s", t);
		UNIT_CHECK(plain ? "ehlo_plain_extensions" : "ehlo_tls_extensions",
		    strstr(t, "250-PIPELINING\r\n") && strstr(t, "250-SIZE 1234\r\n")
		    && strstr(t, "250-ENHANCEDSTATUSCODES\r\n") &&
		    strstr(t, "250-8BITMIME\r\n") && strstr(t, "250 SMTPUTF8\r\n"),
		    "%s", t);
	}
}

/* A session that gets `line` n times; the reply codes into codes. */
static void
run_repeated(const char *line, int n, char *codes, size_t codesz)
{
	struct submit sv;
	struct session s;
	struct buf in;
	int i;

	buf_init(&in, 0);
	for (i = 0; i < n; i++)
		buf_puts(&in, line);
	memset(&sv, 0, sizeof(sv));
	snprintf(sv.hostname, sizeof(sv.hostname), "mx.test");
	memset(&s, 0, sizeof(s));
	s.sv = &sv;
	s.implicit_tls = 1;
	conn_init(&s.conn, -1, 1000, INT64_MAX);
	script = in.data;
	buf_reset(&transcript);
	session_run(&s);
	conn_free(&s.conn);
	codes_of(&transcript, codes, codesz);
	buf_free(&in);
}

static void
test_too_many_errors(void)
{
	static char codes[4096];
	size_t want;

	run_repeated("BOGUS\r\n", SUBMIT_ERRORS_MAX + 5, codes, sizeof(codes));
	/* 220, SUBMIT_ERRORS_MAX x 500, then 421 and nothing more. */
	UNIT_CHECK("too_many_errors_421", strlen(codes) ==
	    4 * (SUBMIT_ERRORS_MAX + 2) - 1 &&
	    strcmp(codes + strlen(codes) - 3, "421") == 0, "%s", codes);
	/* NOOP: SUBMIT_JUNK_MAX free, then each is an error as well. */
	run_repeated("NOOP\r\n", SUBMIT_JUNK_MAX + SUBMIT_ERRORS_MAX + 5, codes,
	    sizeof(codes));
	want = 4 * (SUBMIT_JUNK_MAX + SUBMIT_ERRORS_MAX + 2) - 1;
	UNIT_CHECK("junk_commands_421", strlen(codes) == want &&
	    strcmp(codes + strlen(codes) - 3, "421") == 0 &&
	    strncmp(codes + strlen(codes) - 7, "250", 3) == 0,
	    "%zu codes, want %zu: ...%s", strlen(codes), want,
	    codes + (strlen(codes) > 20 ? strlen(codes) - 20 : 0));
}

int
main(void)
{
	size_t i;

	log_init("test_smtp_session", LOG_LVL_ERR);
	buf_init(&transcript, 0);
	buf_init(&message, 0);
	memset(long_line, 'y', sizeof(long_line) - 1);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run_row(&rows[i]);
	run_nul_rows();
	test_ehlo_keywords();
	test_too_many_errors();
	buf_free(&transcript);
	buf_free(&message);
	return unit_done();
}
