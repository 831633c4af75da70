/*
 * test_smtp_parse.c - smtp-out/parse.c: command lines, MAIL/RCPT
 * arguments, base64, the DATA reader (every end-of-data and smuggling
 * variant, at every chunk boundary) and From: address lists.
 *
 * parse.c is part of edgemail-submit, not of the core library, so it is
 * compiled into this test directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp-out/parse.c"
#include "tests/unit/unit.h"

/* ---- command lines -------------------------------------------------- */

static void
test_split(void)
{
	static const struct {
		const char *name, *line, *verb, *args;
		int rc;
	} t[] = {
		{ "split_plain", "NOOP", "NOOP", "", 0 },
		{ "split_lower", "ehlo host.test", "EHLO", "host.test", 0 },
		{ "split_mixed", "MaIl FROM:<a@b>", "MAIL", "FROM:<a@b>", 0 },
		{ "split_two_spaces_kept", "NOOP  x", "NOOP", " x", 0 },
		{ "split_leading_space", " NOOP", NULL, NULL, -1 },
		{ "split_empty", "", NULL, NULL, -1 },
		{ "split_digit_verb", "N0OP", NULL, NULL, -1 },
		{ "split_tab", "NOOP\tx", NULL, NULL, -1 },
		{ "split_verb_too_long", "ABCDEFGHIJKLMNOPQ", NULL, NULL, -1 },
		{ "split_verb_15", "ABCDEFGHIJKLMNO", "ABCDEFGHIJKLMNO", "", 0 },
		{ "split_colon", "MAIL:x", NULL, NULL, -1 },
	};
	struct smtp_line l;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = smtp_split(t[i].line, &l);
		UNIT_CHECK(t[i].name, rc == t[i].rc && (rc != 0 ||
		    (strcmp(l.verb, t[i].verb) == 0 &&
		    strcmp(l.args, t[i].args) == 0)), "rc=%d verb=%s args=%s", rc,
		    rc == 0 ? l.verb : "-", rc == 0 ? l.args : "-");
	}
}

static void
test_mail(void)
{
	static const struct {
		const char *name, *args;
		int esmtp;
		unsigned long long max;
		int code;		/* 0: accepted */
		const char *addr;
		long long size;
		int eightbit, utf8;
	} t[] = {
		{ "mail_plain", "FROM:<a@b.test>", 1, 100, 0, "a@b.test", -1, 0, 0 },
		{ "mail_lower_keyword", "from:<a@b.test>", 1, 100, 0, "a@b.test",
		    -1, 0, 0 },
		{ "mail_space_after_colon", "FROM: <a@b.test>", 1, 100, 0,
		    "a@b.test", -1, 0, 0 },
		{ "mail_null", "FROM:<>", 1, 100, 0, "", -1, 0, 0 },
		{ "mail_size", "FROM:<a@b.test> SIZE=99", 1, 100, 0, "a@b.test",
		    99, 0, 0 },
		{ "mail_size_equal_max", "FROM:<a@b.test> SIZE=100", 1, 100, 0,
		    "a@b.test", 100, 0, 0 },
		{ "mail_size_over_max", "FROM:<a@b.test> SIZE=101", 1, 100, 552,
		    NULL, 0, 0, 0 },
		{ "mail_size_huge", "FROM:<a@b.test> SIZE=99999999999999999999999",
		    1, 100, 501, NULL, 0, 0, 0 },
		{ "mail_size_empty", "FROM:<a@b.test> SIZE=", 1, 100, 501, NULL,
		    0, 0, 0 },
		{ "mail_size_twice", "FROM:<a@b.test> SIZE=1 SIZE=2", 1, 100, 501,
		    NULL, 0, 0, 0 },
		{ "mail_size_negative", "FROM:<a@b.test> SIZE=-1", 1, 100, 501,
		    NULL, 0, 0, 0 },
		{ "mail_body_8bit", "FROM:<a@b.test> BODY=8BITMIME", 1, 100, 0,
		    "a@b.test", -1, 1, 0 },
		{ "mail_body_7bit", "FROM:<a@b.test> body=7bit", 1, 100, 0,
		    "a@b.test", -1, 0, 0 },
		{ "mail_body_binary", "FROM:<a@b.test> BODY=BINARYMIME", 1, 100,
		    555, NULL, 0, 0, 0 },
		{ "mail_smtputf8", "FROM:<ü@b.test> SMTPUTF8", 1, 100, 0,
		    "ü@b.test", -1, 0, 1 },
		{ "mail_utf8_without_param", "FROM:<ü@b.test>", 1, 100, 501, NULL,
		    0, 0, 0 },
		{ "mail_auth_param_ignored", "FROM:<a@b.test> AUTH=<>", 1, 100, 0,
		    "a@b.test", -1, 0, 0 },
		{ "mail_unknown_param", "FROM:<a@b.test> RET=FULL", 1, 100, 555,
		    NULL, 0, 0, 0 },
		{ "mail_params_need_ehlo", "FROM:<a@b.test> SIZE=1", 0, 100, 555,
		    NULL, 0, 0, 0 },
		{ "mail_no_brackets", "FROM:a@b.test", 1, 100, 501, NULL, 0, 0, 0 },
		{ "mail_no_keyword", "<a@b.test>", 1, 100, 501, NULL, 0, 0, 0 },
		{ "mail_unclosed", "FROM:<a@b.test", 1, 100, 501, NULL, 0, 0, 0 },
		{ "mail_junk_after_path", "FROM:<a@b.test>x", 1, 100, 501, NULL, 0,
		    0, 0 },
		{ "mail_quoted_gt", "FROM:<\"a>b\"@b.test>", 1, 100, 0,
		    "\"a>b\"@b.test", -1, 0, 0 },
		{ "mail_bad_domain", "FROM:<a@-b.test>", 1, 100, 501, NULL, 0, 0,
		    0 },
		{ "mail_nested_bracket", "FROM:<<a@b.test>>", 1, 100, 501, NULL, 0,
		    0, 0 },
		{ "mail_many_params", "FROM:<a@b.test> "
		    "A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 "
		    "A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 "
		    "A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 "
		    "A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 A=1 "
		    "A=1", 1, 100, 501, NULL, 0, 0, 0 },
	};
	struct smtp_mail_args m;
	struct reply r;
	char a[ADDR_PATH_MAX + 1];
	size_t i;
	int rc, ok;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&r, 0, sizeof(r));
		rc = smtp_parse_mail(t[i].args, t[i].esmtp, t[i].max, &m, &r);
		if (t[i].code == 0) {
			addr_format(&m.addr, a, sizeof(a));
			ok = rc == 0 && strcmp(a, t[i].addr) == 0 &&
			    m.size == t[i].size && m.body_8bit == t[i].eightbit &&
			    m.smtputf8 == t[i].utf8;
		} else {
			a[0] = '\0';
			ok = rc == -1 && r.code == t[i].code &&
			    r.enhanced[0] == (t[i].code >= 500 ? '5' : '4');
		}
		UNIT_CHECK(t[i].name, ok, "rc=%d code=%d %s addr=%s", rc, r.code,
		    r.text, a);
	}
}

static void
test_rcpt(void)
{
	static const struct {
		const char *name, *args;
		int utf8, code;
		const char *addr;
	} t[] = {
		{ "rcpt_plain", "TO:<x@y.test>", 0, 0, "x@y.test" },
		{ "rcpt_domain_lowered", "TO:<X@Y.TEST>", 0, 0, "X@y.test" },
		{ "rcpt_space", "TO: <x@y.test>", 0, 0, "x@y.test" },
		{ "rcpt_trailing_space", "TO:<x@y.test> ", 0, 0, "x@y.test" },
		{ "rcpt_null_refused", "TO:<>", 0, 501, NULL },
		{ "rcpt_notify_refused", "TO:<x@y.test> NOTIFY=NEVER", 0, 555, NULL },
		{ "rcpt_no_keyword", "<x@y.test>", 0, 501, NULL },
		{ "rcpt_from_keyword", "FROM:<x@y.test>", 0, 501, NULL },
		{ "rcpt_no_domain", "TO:<postmaster>", 0, 501, NULL },
		{ "rcpt_utf8_allowed", "TO:<ü@y.test>", 1, 0, "ü@y.test" },
		{ "rcpt_utf8_refused", "TO:<ü@y.test>", 0, 501, NULL },
		{ "rcpt_local_too_long", "TO:<"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "@y.test>", 0, 501, NULL },
	};
	struct addr a;
	struct reply r;
	char s[ADDR_PATH_MAX + 1];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&r, 0, sizeof(r));
		rc = smtp_parse_rcpt(t[i].args, t[i].utf8, &a, &r);
		s[0] = '\0';
		if (rc == 0)
			addr_format(&a, s, sizeof(s));
		UNIT_CHECK(t[i].name, t[i].code == 0 ? rc == 0 &&
		    strcmp(s, t[i].addr) == 0 : rc == -1 && r.code == t[i].code,
		    "rc=%d code=%d addr=%s", rc, r.code, s);
	}
}

static void
test_base64(void)
{
	static const struct {
		const char *name, *in;
		long len;
		const char *out;
	} t[] = {
		{ "b64_empty", "", 0, "" },
		{ "b64_one", "YQ==", 1, "a" },
		{ "b64_two", "YWI=", 2, "ab" },
		{ "b64_three", "YWJj", 3, "abc" },
		{ "b64_plain", "AHUAcA==", 4, "\0u\0p" },
		{ "b64_bad_length", "YWJ", -1, NULL },
		{ "b64_bad_char", "YW!j", -1, NULL },
		{ "b64_pad_in_middle", "YQ==YWJj", -1, NULL },
		{ "b64_pad_first", "=QQQ", -1, NULL },
		{ "b64_three_pads", "Y===", -1, NULL },
		{ "b64_space", "YW Jj", -1, NULL },
		{ "b64_data_after_pad", "YQ=a", -1, NULL },
	};
	unsigned char out[64];
	char enc[64];
	size_t i;
	long n;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		n = b64_decode(t[i].in, strlen(t[i].in), out);
		UNIT_CHECK(t[i].name, n == t[i].len && (n < 0 ||
		    memcmp(out, t[i].out, (size_t)n) == 0), "n=%ld", n);
		if (n >= 0) {
			char nm[64];

			b64_encode(out, (size_t)n, enc);
			snprintf(nm, sizeof(nm), "%s_roundtrip", t[i].name);
			UNIT_CHECK(nm, strcmp(enc, t[i].in) == 0, "%s", enc);
		}
	}
}

/* ---- the DATA reader -------------------------------------------------- */

struct dr_case {
	const char *name;
	const char *in;
	size_t	 inlen;
	const char *out;	/* message bytes */
	size_t	 outlen;
	size_t	 consumed;	/* (size_t)-1: all, not done */
	int	 bad;
};

#define S(x)	x, sizeof(x) - 1
#define WHOLE	((size_t)-2)	/* done, every byte consumed */

static const struct dr_case dr_cases[] = {
	{ "data_empty_message", S(".\r\n"), S(""), 3, 0 },
	{ "data_simple", S("a\r\n.\r\n"), S("a\r\n"), 6, 0 },
	{ "data_stops_at_end", S("a\r\n.\r\nQUIT\r\n"), S("a\r\n"), 6, 0 },
	{ "data_dot_stuffed", S("..a\r\n.\r\n"), S(".a\r\n"), 8, 0 },
	{ "data_double_dot_line", S("..\r\n.\r\n"), S(".\r\n"), 7, 0 },
	{ "data_dot_mid_line", S("a.b\r\n.\r\n"), S("a.b\r\n"), 8, 0 },
	{ "data_empty_lines", S("\r\n\r\n.\r\n"), S("\r\n\r\n"), 7, 0 },
	{ "data_no_end", S("a\r\nb\r\n"), S("a\r\nb\r\n"), (size_t)-1, 0 },
	{ "data_dot_space_not_end", S(".  \r\n.\r\n"), S("  \r\n"), 8, 0 },
	/* Smuggling: none of these ends the data; all but the NUL ones are
	 * refused for their bare CR/LF. */
	{ "smuggle_lf_dot_lf", S("a\n.\nb\r\n.\r\n"), S("a\n.\nb\r\n"), WHOLE, 1 },
	{ "smuggle_lf_dot_crlf", S("a\n.\r\nb\r\n.\r\n"), S("a\n.\r\nb\r\n"),
	    WHOLE, 1 },
	{ "smuggle_cr_dot_cr", S("a\r.\rb\r\n.\r\n"), S("a\r.\rb\r\n"), WHOLE, 1 },
	{ "smuggle_cr_dot_lf", S("a\r.\nb\r\n.\r\n"), S("a\r.\nb\r\n"), WHOLE, 1 },
	{ "smuggle_cr_dot_crlf", S("a\r.\r\nb\r\n.\r\n"), S("a\r.\r\nb\r\n"),
	    WHOLE, 1 },
	{ "smuggle_crlf_dot_lf", S("a\r\n.\nb\r\n.\r\n"), S("a\r\n\nb\r\n"),
	    WHOLE, 1 },
	{ "smuggle_crlf_dot_cr", S("a\r\n.\rb\r\n.\r\n"), S("a\r\n\rb\r\n"),
	    WHOLE, 1 },
	{ "smuggle_lf_dot_cr", S("a\n.\rb\r\n.\r\n"), S("a\n.\rb\r\n"), WHOLE, 1 },
	{ "smuggle_crlf_nul_dot", S("a\r\n\0.\r\nb\r\n.\r\n"),
	    S("a\r\n\0.\r\nb\r\n"), WHOLE, 0 },
	{ "smuggle_crlf_dot_nul", S("a\r\n.\0\r\nb\r\n.\r\n"),
	    S("a\r\n\0\r\nb\r\n"), WHOLE, 0 },
	{ "smuggle_lf_lf_dot", S("a\n\n.\n\nb\r\n.\r\n"), S("a\n\n.\n\nb\r\n"),
	    WHOLE, 1 },
	{ "smuggle_bare_lf_then_crlf_dot", S("a\n.\r\n"), S("a\n.\r\n"),
	    (size_t)-1, 1 },
	{ "smuggle_crlf_crlf_dot_lf_end", S("\r\n.\n\r\n.\r\n"),
	    S("\r\n\n\r\n"), WHOLE, 1 },
	{ "bare_cr_at_end_of_line", S("a\r\r\n.\r\n"), S("a\r\r\n"), WHOLE, 1 },
	{ "bare_lf_in_header", S("Subject: x\n\r\n.\r\n"),
	    S("Subject: x\n\r\n"), WHOLE, 1 },
};

static int
dr_run(const struct dr_case *c, size_t step, char *out, size_t *outlen,
    size_t *consumed, struct data_reader *d)
{
	size_t pos = 0, o = 0, n, used, got;

	data_reader_init(d);
	while (pos < c->inlen && !d->done) {
		n = c->inlen - pos < step ? c->inlen - pos : step;
		used = data_reader_feed(d, c->in + pos, n, out + o, &got);
		if (got > n + 2)
			return -1;
		o += got;
		pos += used;
		if (used < n && !d->done)
			return -1;
	}
	*outlen = o;
	*consumed = pos;
	return 0;
}

static void
test_data_reader(void)
{
	struct data_reader d;
	char out[256], name[128];
	size_t i, step, outlen = 0, consumed = 0;
	int ok, all_steps;

	for (i = 0; i < sizeof(dr_cases) / sizeof(dr_cases[0]); i++) {
		const struct dr_case *c = &dr_cases[i];

		all_steps = 1;
		for (step = 1; step <= c->inlen; step++) {
			ok = dr_run(c, step, out, &outlen, &consumed, &d) == 0 &&
			    outlen == c->outlen &&
			    memcmp(out, c->out, outlen) == 0 &&
			    d.bad_eol == c->bad &&
			    (c->consumed == (size_t)-1 ? !d.done &&
			    consumed == c->inlen : d.done &&
			    consumed == (c->consumed == WHOLE ? c->inlen :
			    c->consumed));
			if (!ok) {
				all_steps = 0;
				break;
			}
		}
		snprintf(name, sizeof(name), "%s_every_chunking", c->name);
		UNIT_CHECK(name, all_steps, "step=%zu outlen=%zu consumed=%zu "
		    "done=%d bad=%d", step, outlen, consumed, d.done, d.bad_eol);
	}
}

/* ---- From: address lists ---------------------------------------------- */

static int
collect(void *arg, const char *a, size_t len)
{
	struct buf *b = arg;

	if (b->len > 0)
		buf_putc(b, ',');
	return buf_append(b, a, len);
}

static void
test_hdr_addresses(void)
{
	static const struct {
		const char *name, *value;
		int n;
		const char *list;
	} t[] = {
		{ "from_bare", "a@b.test", 1, "a@b.test" },
		{ "from_spaces", "  a@b.test  ", 1, "a@b.test" },
		{ "from_angle", "<a@b.test>", 1, "a@b.test" },
		{ "from_name_angle", "Alice Example <a@b.test>", 1, "a@b.test" },
		{ "from_quoted_name", "\"Example, Alice\" <a@b.test>", 1,
		    "a@b.test" },
		{ "from_quoted_name_with_angle", "\"x <evil@bad.test>\" <a@b.test>",
		    1, "a@b.test" },
		{ "from_comment", "a@b.test (Alice)", 1, "a@b.test" },
		{ "from_comment_nested", "(x (y) z) a@b.test", 1, "a@b.test" },
		{ "from_comment_with_angle", "(<evil@bad.test>) a@b.test", 1,
		    "a@b.test" },
		{ "from_two", "a@b.test, C <c@d.test>", 2, "a@b.test,c@d.test" },
		{ "from_folded", "Alice\r\n <a@b.test>", 1, "a@b.test" },
		{ "from_group", "team: a@b.test, c@d.test;", 2,
		    "a@b.test,c@d.test" },
		{ "from_empty_group", "undisclosed-recipients:;", 0, "" },
		{ "from_quoted_local", "\"a b\"@b.test", 1, "\"a b\"@b.test" },
		{ "from_empty", "", 0, "" },
		{ "from_trailing_comma", "a@b.test,", 1, "a@b.test" },
		{ "from_name_only", "Alice Example", -1, NULL },
		{ "from_empty_angle", "<>", -1, NULL },
		{ "from_name_empty_angle", "Nobody <>", -1, NULL },
		{ "from_unclosed_angle", "Alice <a@b.test", -1, NULL },
		{ "from_two_angles", "<a@b.test> <c@d.test>", -1, NULL },
		{ "from_text_after_angle", "<a@b.test> x", -1, NULL },
		{ "from_unclosed_comment", "a@b.test (x", -1, NULL },
		{ "from_unclosed_quote", "\"a <a@b.test>", -1, NULL },
		{ "from_stray_gt", "a@b.test>", -1, NULL },
		{ "from_unclosed_group", "team: a@b.test", -1, NULL },
	};
	struct buf b;
	size_t i;
	int n;

	buf_init(&b, 4096);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_reset(&b);
		n = hdr_addresses(t[i].value, strlen(t[i].value), collect, &b);
		UNIT_CHECK(t[i].name, n == t[i].n && (n < 0 ||
		    strcmp(buf_cstr(&b), t[i].list) == 0), "n=%d list=%s", n,
		    buf_cstr(&b));
	}
	buf_free(&b);
}

int
main(void)
{
	test_split();
	test_mail();
	test_rcpt();
	test_base64();
	test_data_reader();
	test_hdr_addresses();
	return unit_done();
}
