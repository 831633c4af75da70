/*
 * test_addr.c - RFC 5321 address parser: one row per case, valid and
 * invalid, including every length limit at and one past its bound.
 */
#include <stdio.h>
#include <string.h>

#include "lib/addr.h"
#include "tests/unit/unit.h"

#define OK	1
#define BAD	0

struct row {
	const char *name;
	const char *in;
	size_t	 n;		/* 0: strlen(in) */
	int	 flags;
	int	 ok;
	const char *local;	/* expected, when ok */
	const char *domain;
	const char *err;	/* substring of the reason, when not ok */
};

static const struct row rows[] = {
	/* Valid. */
	{ "addr: plain mailbox is accepted", "user@example.com", 0, 0, OK,
	    "user", "example.com", NULL },
	{ "addr: single characters are enough", "a@b", 0, 0, OK, "a", "b", NULL },
	{ "addr: brackets are stripped", "<user@example.com>", 0, 0, OK,
	    "user", "example.com", NULL },
	{ "addr: domain is lower-cased, local part keeps its case",
	    "John.Doe@Example.COM", 0, 0, OK, "John.Doe", "example.com", NULL },
	{ "addr: dot-atom with several dots", "a.b.c@x.org", 0, 0, OK,
	    "a.b.c", "x.org", NULL },
	{ "addr: every atext special is allowed in the local part",
	    "!#$%&'*+-/=?^_`{|}~@x.org", 0, 0, OK, "!#$%&'*+-/=?^_`{|}~",
	    "x.org", NULL },
	{ "addr: +detail is kept in the local part", "a+tag@x.org", 0, 0, OK,
	    "a+tag", "x.org", NULL },
	{ "addr: domain without a dot (localhost) is accepted",
	    "postmaster@localhost", 0, 0, OK, "postmaster", "localhost", NULL },
	{ "addr: hyphen inside a label", "a@my-host.example", 0, 0, OK,
	    "a", "my-host.example", NULL },
	{ "addr: all-digit labels", "a@123.456.example", 0, 0, OK,
	    "a", "123.456.example", NULL },
	{ "addr: quoted dot-atom local part is unquoted", "\"a.b\"@x.org", 0, 0,
	    OK, "a.b", "x.org", NULL },
	{ "addr: quoted local part with space is kept quoted",
	    "\"a b\"@x.org", 0, 0, OK, "\"a b\"", "x.org", NULL },
	{ "addr: quoted-pair for a quote is kept escaped", "\"a\\\"b\"@x", 0, 0,
	    OK, "\"a\\\"b\"", "x", NULL },
	{ "addr: quoted-pair for a backslash is kept escaped", "\"a\\\\b\"@x", 0,
	    0, OK, "\"a\\\\b\"", "x", NULL },
	{ "addr: unnecessary quoted-pair is removed and quotes dropped",
	    "\"\\a\\b\"@x", 0, 0, OK, "ab", "x", NULL },
	{ "addr: empty quoted local part stays \"\"", "\"\"@x", 0, 0, OK,
	    "\"\"", "x", NULL },
	{ "addr: @ inside a quoted local part", "\"a@b\"@x", 0, 0, OK,
	    "\"a@b\"", "x", NULL },
	{ "addr: quoted local part with leading dot stays quoted", "\".a\"@x",
	    0, 0, OK, "\".a\"", "x", NULL },
	{ "addr: quoted local part with double dot stays quoted",
	    "\"a..b\"@x", 0, 0, OK, "\"a..b\"", "x", NULL },
	{ "addr: IPv4 address literal", "a@[192.0.2.1]", 0, 0, OK, "a",
	    "[192.0.2.1]", NULL },
	{ "addr: IPv4 literal with zero octets", "a@[0.0.0.0]", 0, 0, OK, "a",
	    "[0.0.0.0]", NULL },
	{ "addr: IPv6 literal hex digits lower-cased", "a@[IPv6:2001:DB8::1]", 0,
	    0, OK, "a", "[IPv6:2001:db8::1]", NULL },
	{ "addr: IPv6 tag is case-insensitive and normalised",
	    "a@[ipv6:::1]", 0, 0, OK, "a", "[IPv6:::1]", NULL },
	{ "addr: IPv6 literal with embedded IPv4",
	    "a@[IPv6:::ffff:192.0.2.1]", 0, 0, OK, "a",
	    "[IPv6:::ffff:192.0.2.1]", NULL },
	{ "addr: null path <> with ADDR_ALLOW_EMPTY", "<>", 0, ADDR_ALLOW_EMPTY,
	    OK, "", "", NULL },
	{ "addr: empty string with ADDR_ALLOW_EMPTY", "", 0, ADDR_ALLOW_EMPTY,
	    OK, "", "", NULL },
	{ "addr: brackets present with ADDR_REQUIRE_BRACKETS", "<a@b.c>", 0,
	    ADDR_REQUIRE_BRACKETS, OK, "a", "b.c", NULL },
	{ "addr: null path with both brackets and empty allowed", "<>", 0,
	    ADDR_REQUIRE_BRACKETS | ADDR_ALLOW_EMPTY, OK, "", "", NULL },
	{ "addr: source route is ignored",
	    "<@a.example,@b.example:u@c.example>", 0, 0, OK, "u", "c.example",
	    NULL },
	{ "addr: UTF-8 local part and domain with ADDR_ALLOW_UTF8",
	    "\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.example", 0,
	    ADDR_ALLOW_UTF8, OK, "\xce\xb4\xce\xbf\xce\xba",
	    "\xcf\x80\xce\xb1.example", NULL },
	{ "addr: UTF-8 domain only, ASCII letters still lower-cased",
	    "user@B\xc3\xbc" "cher.Example", 0, ADDR_ALLOW_UTF8, OK, "user",
	    "b\xc3\xbc" "cher.example", NULL },
	{ "addr: 4-byte UTF-8 sequence in the local part",
	    "\xf0\x9f\x98\x80@x.org", 0, ADDR_ALLOW_UTF8, OK, "\xf0\x9f\x98\x80",
	    "x.org", NULL },
	{ "addr: UTF-8 inside a quoted local part", "\"\xc3\xa9 x\"@x.org", 0,
	    ADDR_ALLOW_UTF8, OK, "\"\xc3\xa9 x\"", "x.org", NULL },
	{ "addr: 3-byte UTF-8 at the top of the BMP", "\xef\xbf\xbd@x", 0,
	    ADDR_ALLOW_UTF8, OK, "\xef\xbf\xbd", "x", NULL },

	/* Invalid: structure. */
	{ "addr: missing @ is rejected", "userexample.com", 0, 0, BAD, NULL,
	    NULL, "missing @" },
	{ "addr: a@ (empty domain) is rejected", "a@", 0, 0, BAD, NULL, NULL,
	    "empty domain" },
	{ "addr: @b (empty local part) is rejected", "@b", 0, 0, BAD, NULL,
	    NULL, "empty local part" },
	{ "addr: a@b@c is rejected", "a@b@c", 0, 0, BAD, NULL, NULL,
	    "bad domain" },
	{ "addr: empty string is rejected by default", "", 0, 0, BAD, NULL,
	    NULL, "empty address" },
	{ "addr: <> is rejected without ADDR_ALLOW_EMPTY", "<>", 0, 0, BAD,
	    NULL, NULL, "empty address" },
	{ "addr: missing brackets with ADDR_REQUIRE_BRACKETS", "a@b.c", 0,
	    ADDR_REQUIRE_BRACKETS, BAD, NULL, NULL, "missing <>" },
	{ "addr: empty string with ADDR_REQUIRE_BRACKETS", "", 0,
	    ADDR_REQUIRE_BRACKETS | ADDR_ALLOW_EMPTY, BAD, NULL, NULL,
	    "missing <>" },
	{ "addr: opening bracket only", "<a@b.c", 0, 0, BAD, NULL, NULL,
	    "unbalanced" },
	{ "addr: closing bracket only", "a@b.c>", 0, 0, BAD, NULL, NULL,
	    "unbalanced" },
	{ "addr: lone <", "<", 0, ADDR_ALLOW_EMPTY, BAD, NULL, NULL,
	    "unbalanced" },
	{ "addr: doubled brackets", "<<a@b.c>>", 0, 0, BAD, NULL, NULL,
	    "bad character" },
	{ "addr: domain only", "example.com", 0, 0, BAD, NULL, NULL,
	    "missing @" },
	{ "addr: source route without brackets", "@a.example:u@b.example", 0,
	    0, BAD, NULL, NULL, "empty local part" },
	{ "addr: source route with empty domain", "<@:u@b.example>", 0, 0, BAD,
	    NULL, NULL, "source route" },
	{ "addr: source route without colon", "<@a.example,u@b.example>", 0, 0,
	    BAD, NULL, NULL, "source route" },

	/* Invalid: local part. */
	{ "addr: leading dot in local part", ".a@x", 0, 0, BAD, NULL, NULL,
	    "dots" },
	{ "addr: trailing dot in local part", "a.@x", 0, 0, BAD, NULL, NULL,
	    "dots" },
	{ "addr: double dot in local part", "a..b@x", 0, 0, BAD, NULL, NULL,
	    "dots" },
	{ "addr: local part of a single dot", ".@x", 0, 0, BAD, NULL, NULL,
	    "dots" },
	{ "addr: space outside quotes", "a b@x", 0, 0, BAD, NULL, NULL,
	    "bad character" },
	{ "addr: tab in local part", "a\tb@x", 0, 0, BAD, NULL, NULL,
	    "bad character" },
	{ "addr: control character in local part", "a\001b@x", 0, 0, BAD,
	    NULL, NULL, "bad character" },
	{ "addr: DEL in local part", "a\177b@x", 0, 0, BAD, NULL, NULL,
	    "bad character" },
	{ "addr: NUL byte in local part", "a\0b@x", 5, 0, BAD, NULL, NULL,
	    "bad character" },
	{ "addr: comma in local part", "a,b@x", 0, 0, BAD, NULL, NULL,
	    "bad character" },
	{ "addr: comment in local part", "a(b)@x", 0, 0, BAD, NULL, NULL,
	    "bad character" },
	{ "addr: backslash outside quotes", "a\\b@x", 0, 0, BAD, NULL, NULL,
	    "bad character" },
	{ "addr: unterminated quoted string", "\"abc@x", 0, 0, BAD, NULL, NULL,
	    "unterminated" },
	{ "addr: text after the closing quote", "\"a\"b@x", 0, 0, BAD, NULL,
	    NULL, "after quoted" },
	{ "addr: quoted local part without domain", "\"a\"", 0, 0, BAD, NULL,
	    NULL, "missing @" },
	{ "addr: escaped closing quote leaves string open", "\"a\\\"@x", 0, 0,
	    BAD, NULL, NULL, "unterminated" },
	{ "addr: control character inside quotes", "\"a\001\"@x", 0, 0, BAD,
	    NULL, NULL, "bad character in quoted" },
	{ "addr: tab inside quotes", "\"a\tb\"@x", 0, 0, BAD, NULL, NULL,
	    "bad character in quoted" },
	{ "addr: quoted-pair of a control character", "\"a\\\001\"@x", 0, 0,
	    BAD, NULL, NULL, "quoted-pair" },
	{ "addr: UTF-8 local part without ADDR_ALLOW_UTF8",
	    "\xce\xb4@x.org", 0, 0, BAD, NULL, NULL, "non-ASCII" },
	{ "addr: UTF-8 in quotes without ADDR_ALLOW_UTF8",
	    "\"\xc3\xa9\"@x.org", 0, 0, BAD, NULL, NULL, "non-ASCII" },
	{ "addr: overlong UTF-8 encoding", "\xc0\xaf@x", 0, ADDR_ALLOW_UTF8,
	    BAD, NULL, NULL, "invalid UTF-8" },
	{ "addr: overlong 3-byte UTF-8", "\xe0\x80\xaf@x", 0, ADDR_ALLOW_UTF8,
	    BAD, NULL, NULL, "invalid UTF-8" },
	{ "addr: UTF-16 surrogate encoded in UTF-8", "\xed\xa0\x80@x", 0,
	    ADDR_ALLOW_UTF8, BAD, NULL, NULL, "invalid UTF-8" },
	{ "addr: truncated UTF-8 sequence", "\xe2\x82@x", 0, ADDR_ALLOW_UTF8,
	    BAD, NULL, NULL, "invalid UTF-8" },
	{ "addr: code point above U+10FFFF", "\xf4\x90\x80\x80@x", 0,
	    ADDR_ALLOW_UTF8, BAD, NULL, NULL, "invalid UTF-8" },
	{ "addr: lone continuation byte", "\x80@x", 0, ADDR_ALLOW_UTF8, BAD,
	    NULL, NULL, "invalid UTF-8" },
	{ "addr: 0xff byte", "\xff@x", 0, ADDR_ALLOW_UTF8, BAD, NULL, NULL,
	    "invalid UTF-8" },
	{ "addr: UTF-8 sequence cut by the end of the input", "a@x\xc3", 0,
	    ADDR_ALLOW_UTF8, BAD, NULL, NULL, "invalid UTF-8" },

	/* Invalid: domain. */
	{ "addr: empty label in domain", "a@x..com", 0, 0, BAD, NULL, NULL,
	    "bad domain" },
	{ "addr: trailing dot in domain", "a@x.com.", 0, 0, BAD, NULL, NULL,
	    "bad domain" },
	{ "addr: leading dot in domain", "a@.x.com", 0, 0, BAD, NULL, NULL,
	    "bad domain" },
	{ "addr: domain of a single dot", "a@.", 0, 0, BAD, NULL, NULL,
	    "bad domain" },
	{ "addr: label starting with a hyphen", "a@-x.com", 0, 0, BAD, NULL,
	    NULL, "bad domain" },
	{ "addr: label ending with a hyphen", "a@x-.com", 0, 0, BAD, NULL, NULL,
	    "bad domain" },
	{ "addr: domain ending with a hyphen", "a@x.com-", 0, 0, BAD, NULL,
	    NULL, "bad domain" },
	{ "addr: underscore in domain", "a@x_y.com", 0, 0, BAD, NULL, NULL,
	    "bad domain" },
	{ "addr: space in domain", "a@x .com", 0, 0, BAD, NULL, NULL,
	    "bad domain" },
	{ "addr: control character in domain", "a@x\001.com", 0, 0, BAD, NULL,
	    NULL, "bad domain" },
	{ "addr: quoted domain", "a@\"x\"", 0, 0, BAD, NULL, NULL,
	    "bad domain" },
	{ "addr: UTF-8 domain without ADDR_ALLOW_UTF8",
	    "a@b\xc3\xbc" "cher.example", 0, 0, BAD, NULL, NULL, "non-ASCII" },
	{ "addr: IPv4 literal with octet 256", "a@[256.1.1.1]", 0, 0, BAD, NULL,
	    NULL, "literal" },
	{ "addr: IPv4 literal with three parts", "a@[1.2.3]", 0, 0, BAD, NULL,
	    NULL, "literal" },
	{ "addr: IPv4 literal with five parts", "a@[1.2.3.4.5]", 0, 0, BAD,
	    NULL, NULL, "literal" },
	{ "addr: IPv4 literal with a leading zero", "a@[01.2.3.4]", 0, 0, BAD,
	    NULL, NULL, "literal" },
	{ "addr: IPv4 literal with trailing dot", "a@[1.2.3.4.]", 0, 0, BAD,
	    NULL, NULL, "literal" },
	{ "addr: IPv6 literal with two ::", "a@[IPv6:1::2::3]", 0, 0, BAD, NULL,
	    NULL, "literal" },
	{ "addr: IPv6 literal without the IPv6: tag", "a@[::1]", 0, 0, BAD,
	    NULL, NULL, "literal" },
	{ "addr: IPv6 literal with a zone id", "a@[IPv6:fe80::1%eth0]", 0, 0,
	    BAD, NULL, NULL, "literal" },
	{ "addr: general address literal is not supported", "a@[tag:foo]", 0,
	    0, BAD, NULL, NULL, "literal" },
	{ "addr: empty address literal", "a@[]", 0, 0, BAD, NULL, NULL,
	    "literal" },
	{ "addr: address literal without closing bracket", "a@[1.2.3.4", 0, 0,
	    BAD, NULL, NULL, "literal" },
	{ "addr: NUL byte inside an IPv6 literal", "a@[IPv6:::\0]", 13, 0,
	    BAD, NULL, NULL, "literal" },
	{ "addr: space inside an address literal", "a@[IPv6:: :1]", 0, 0, BAD,
	    NULL, NULL, "literal" },
	{ "addr: address literal followed by text", "a@[1.2.3.4]x", 0, 0, BAD,
	    NULL, NULL, "literal" },
};

/* 'a' * n */
static void
fill_local(char *out, size_t n)
{
	memset(out, 'a', n);
	out[n] = '\0';
}

/* n bytes of labels "bbbbbbbbb." (10 bytes each), never ending in a dot. */
static void
fill_domain(char *out, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		out[i] = (i % 10 == 9 && i != n - 1) ? '.' : 'b';
	out[n] = '\0';
}

struct len_row {
	const char *name;
	size_t	 local;		/* length of the local part */
	int	 quoted;	/* local part "aaa a": quotes count */
	size_t	 domain;	/* length of the domain */
	size_t	 label;		/* if set: one label of this length */
	int	 bracketed;
	int	 ok;
	const char *err;
};

static const struct len_row len_rows[] = {
	{ "addr: local part of 64 octets is accepted", 64, 0, 5, 0, 0, OK, NULL },
	{ "addr: local part of 65 octets is rejected", 65, 0, 5, 0, 0, BAD,
	    "local part too long" },
	{ "addr: quoted local part of 64 octets with quotes is accepted", 64, 1,
	    5, 0, 0, OK, NULL },
	{ "addr: quoted local part of 65 octets with quotes is rejected", 65, 1,
	    5, 0, 0, BAD, "local part too long" },
	{ "addr: label of 63 octets is accepted", 1, 0, 0, 63, 0, OK, NULL },
	{ "addr: label of 64 octets is rejected", 1, 0, 0, 64, 0, BAD,
	    "label too long" },
	{ "addr: path of exactly 256 octets (1 + 252) is accepted", 1, 0, 252,
	    0, 0, OK, NULL },
	{ "addr: path of 257 octets (1 + 253) is rejected", 1, 0, 253, 0, 0, BAD,
	    "address too long" },
	{ "addr: bracketed path of exactly 256 octets is accepted", 1, 0, 252, 0,
	    1, OK, NULL },
	{ "addr: bracketed path of 257 octets is rejected", 1, 0, 253, 0, 1, BAD,
	    "address too long" },
	{ "addr: path of 256 octets with a 64-octet local part", 64, 0, 189, 0,
	    0, OK, NULL },
	{ "addr: path of 257 octets with a 64-octet local part", 64, 0, 190, 0,
	    0, BAD, "address too long" },
	{ "addr: domain of 255 octets passes the domain limit but not the path",
	    1, 0, 255, 0, 0, BAD, "address too long" },
	{ "addr: domain of 256 octets is rejected as too long", 1, 0, 256, 0, 0,
	    BAD, "domain too long" },
	{ "addr: very long input (4000 octets) is rejected", 1, 0, 3990, 0, 0,
	    BAD, "domain too long" },
};

static void
run_rows(void)
{
	struct addr	 a;
	const char	*err;
	size_t		 i, n;
	int		 rv, good;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];

		n = r->n ? r->n : strlen(r->in);
		err = "";
		rv = addr_parse(r->in, n, r->flags, &a, &err);
		if (r->ok)
			good = rv == 0 && strcmp(a.local, r->local) == 0 &&
			    strcmp(a.domain, r->domain) == 0;
		else
			good = rv == -1 && err != NULL &&
			    strstr(err, r->err) != NULL;
		UNIT_CHECK(r->name, good, "rv=%d local=[%s] domain=[%s] "
		    "err=[%s]", rv, rv == 0 ? a.local : "",
		    rv == 0 ? a.domain : "", rv == 0 ? "" : err);
	}
}

static void
run_len_rows(void)
{
	char		 in[4400], local[300], domain[4000];
	struct addr	 a;
	const char	*err;
	size_t		 i;
	int		 rv, good;

	for (i = 0; i < sizeof(len_rows) / sizeof(len_rows[0]); i++) {
		const struct len_row *r = &len_rows[i];

		if (r->quoted) {
			/* "aaa a" with the quotes making up r->local. */
			fill_local(local + 1, r->local - 2);
			local[0] = '"';
			local[r->local - 3] = ' ';
			local[r->local - 1] = '"';
			local[r->local] = '\0';
		} else
			fill_local(local, r->local);
		if (r->label) {
			memset(domain, 'c', r->label);
			memcpy(domain + r->label, ".example", 9);
		} else
			fill_domain(domain, r->domain);
		snprintf(in, sizeof(in), "%s%s@%s%s", r->bracketed ? "<" : "",
		    local, domain, r->bracketed ? ">" : "");
		err = "";
		rv = addr_parse(in, strlen(in), 0, &a, &err);
		if (r->ok)
			good = rv == 0 && strcmp(a.local, local) == 0 &&
			    strcmp(a.domain, domain) == 0;
		else
			good = rv == -1 && strstr(err, r->err) != NULL;
		UNIT_CHECK(r->name, good, "rv=%d err=[%s]", rv,
		    rv == 0 ? "" : err);
	}
}

static void
run_utf8_flag(void)
{
	struct addr	 a;
	const char	*err;
	int		 rv;

	rv = addr_parse("a@x.org", 7, ADDR_ALLOW_UTF8, &a, &err);
	UNIT_CHECK("addr: ASCII address with UTF-8 allowed has utf8 = 0",
	    rv == 0 && a.utf8 == 0, "rv=%d utf8=%d", rv, a.utf8);
	rv = addr_parse("\xc3\xa9@x.org", 8, ADDR_ALLOW_UTF8, &a, &err);
	UNIT_CHECK("addr: UTF-8 local part sets utf8 = 1",
	    rv == 0 && a.utf8 == 1, "rv=%d utf8=%d", rv, a.utf8);
	rv = addr_parse("a@\xc3\xa9.org", 8, ADDR_ALLOW_UTF8, &a, &err);
	UNIT_CHECK("addr: UTF-8 domain sets utf8 = 1",
	    rv == 0 && a.utf8 == 1, "rv=%d utf8=%d", rv, a.utf8);
	rv = addr_parse("a@", 2, 0, &a, NULL);
	UNIT_CHECK("addr: a NULL err_r is allowed", rv == -1, "rv=%d", rv);
}

struct fmt_row {
	const char *name;
	const char *in;
	int	 flags;
	size_t	 outsz;
	int	 rv;
	const char *out;
};

static const struct fmt_row fmt_rows[] = {
	{ "addr_format: local@domain", "<User@Example.COM>", 0, 64, 0,
	    "User@example.com" },
	{ "addr_format: null path gives the empty string", "<>",
	    ADDR_ALLOW_EMPTY, 64, 0, "" },
	{ "addr_format: quoted local part is written quoted",
	    "\"a b\"@x", 0, 64, 0, "\"a b\"@x" },
	{ "addr_format: output exactly fitting", "ab@cd", 0, 6, 0, "ab@cd" },
	{ "addr_format: output one byte short fails", "ab@cd", 0, 5, -1, "" },
};

struct key_row {
	const char *name;
	const char *in;
	size_t	 outsz;
	const char *key;
};

static const struct key_row key_rows[] = {
	{ "addr_lookup_key: lower-cased, +detail removed",
	    "First.Last+Tag@Example.com", 128, "first.last@example.com" },
	{ "addr_lookup_key: no detail", "Bob@x.org", 128, "bob@x.org" },
	{ "addr_lookup_key: cut at the first '+'", "a+b+c@x", 128, "a@x" },
	{ "addr_lookup_key: empty detail", "a+@x", 128, "a@x" },
	{ "addr_lookup_key: a local part that starts with '+' is kept",
	    "+tag@x", 128, "+tag@x" },
	{ "addr_lookup_key: quoted local part is only lower-cased",
	    "\"A+b C\"@x", 128, "\"a+b c\"@x" },
	{ "addr_lookup_key: null path gives the empty string", "<>", 128, "" },
	{ "addr_lookup_key: output is cut and terminated", "abcdef@x", 4,
	    "abc" },
};

static void
run_fmt_rows(void)
{
	struct addr	 a;
	const char	*err;
	char		 out[128];
	size_t		 i;
	int		 rv;

	for (i = 0; i < sizeof(fmt_rows) / sizeof(fmt_rows[0]); i++) {
		const struct fmt_row *r = &fmt_rows[i];

		if (addr_parse(r->in, strlen(r->in), r->flags, &a, &err) == -1) {
			UNIT_CHECK(r->name, 0, "parse failed: %s", err);
			continue;
		}
		memset(out, 'X', sizeof(out));
		rv = addr_format(&a, out, r->outsz);
		UNIT_CHECK(r->name, rv == r->rv && strcmp(out, r->out) == 0,
		    "rv=%d out=[%.*s]", rv, (int)r->outsz, out);
	}
	for (i = 0; i < sizeof(key_rows) / sizeof(key_rows[0]); i++) {
		const struct key_row *r = &key_rows[i];

		if (addr_parse(r->in, strlen(r->in), ADDR_ALLOW_EMPTY, &a,
		    &err) == -1) {
			UNIT_CHECK(r->name, 0, "parse failed: %s", err);
			continue;
		}
		memset(out, 'X', sizeof(out));
		addr_lookup_key(&a, out, r->outsz);
		UNIT_CHECK(r->name, strcmp(out, r->key) == 0, "out=[%.*s]",
		    (int)r->outsz, out);
	}
	if (addr_parse("<>", 2, ADDR_ALLOW_EMPTY, &a, &err) == 0)
		UNIT_CHECK("addr_is_null: <> is the null path", addr_is_null(&a),
		    "not null");
	if (addr_parse("\"\"@x", 4, 0, &a, &err) == 0)
		UNIT_CHECK("addr_is_null: \"\"@x is not the null path",
		    !addr_is_null(&a), "null");
}

int
main(void)
{
	run_rows();
	run_len_rows();
	run_utf8_flag();
	run_fmt_rows();
	return unit_done();
}
