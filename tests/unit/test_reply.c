/*
 * test_reply.c - the reply type: class from code, the reply line parser
 * (one row per case) and formatting.
 */
#include <string.h>

#include "lib/reply.h"
#include "tests/unit/unit.h"

struct row {
	const char *name;
	const char *line;
	size_t	 n;		/* 0: strlen(line) */
	int	 rv;
	int	 code;
	int	 more;
	enum reply_class cls;
	const char *enhanced;
	const char *text;
};

static const struct row rows[] = {
	{ "reply: continuation line with enhanced code", "250-2.1.5 Ok", 0, 0,
	    250, 1, REPLY_OK, "2.1.5", "Ok" },
	{ "reply: last line with enhanced code", "250 2.1.5 Ok", 0, 0, 250, 0,
	    REPLY_OK, "2.1.5", "Ok" },
	{ "reply: permanent failure keeps the text after the code",
	    "550 5.1.1 <x> User doesn't exist", 0, 0, 550, 0, REPLY_PERM,
	    "5.1.1", "<x> User doesn't exist" },
	{ "reply: temporary failure", "451 4.3.0 Temporary internal failure", 0,
	    0, 451, 0, REPLY_TEMP, "4.3.0", "Temporary internal failure" },
	{ "reply: no enhanced code", "250 OK", 0, 0, 250, 0, REPLY_OK, "", "OK" },
	{ "reply: 354 intermediate reply is ok class",
	    "354 End data with <CR><LF>.<CR><LF>", 0, 0, 354, 0, REPLY_OK, "",
	    "End data with <CR><LF>.<CR><LF>" },
	{ "reply: the code alone is a complete reply", "250", 0, 0, 250, 0,
	    REPLY_OK, "", "" },
	{ "reply: code and hyphen alone is a continuation", "250-", 0, 0, 250, 1,
	    REPLY_OK, "", "" },
	{ "reply: code and space alone", "221 ", 0, 0, 221, 0, REPLY_OK, "", "" },
	{ "reply: enhanced code alone without text", "250 2.0.0", 0, 0, 250, 0,
	    REPLY_OK, "2.0.0", "" },
	{ "reply: three-digit subject and detail", "550 5.123.456 x", 0, 0, 550,
	    0, REPLY_PERM, "5.123.456", "x" },
	{ "reply: enhanced class different from the code stays in text",
	    "550 4.1.1 mismatch", 0, 0, 550, 0, REPLY_PERM, "",
	    "4.1.1 mismatch" },
	{ "reply: four-digit subject is not an enhanced code",
	    "550 5.1000.1 x", 0, 0, 550, 0, REPLY_PERM, "", "5.1000.1 x" },
	{ "reply: four-digit detail is not an enhanced code",
	    "550 5.1.1000 x", 0, 0, 550, 0, REPLY_PERM, "", "5.1.1000 x" },
	{ "reply: enhanced code glued to text stays in text",
	    "550 5.1.1x text", 0, 0, 550, 0, REPLY_PERM, "", "5.1.1x text" },
	{ "reply: two-part enhanced code stays in text", "550 5.1 text", 0, 0,
	    550, 0, REPLY_PERM, "", "5.1 text" },
	{ "reply: empty subject is not an enhanced code", "550 5..1 text", 0, 0,
	    550, 0, REPLY_PERM, "", "5..1 text" },
	{ "reply: multi-line continuation without enhanced code",
	    "220-mx.example ESMTP", 0, 0, 220, 1, REPLY_OK, "", "mx.example ESMTP" },
	{ "reply: spaces after the enhanced code are skipped",
	    "452 4.2.2   Mailbox full", 0, 0, 452, 0, REPLY_TEMP, "4.2.2",
	    "Mailbox full" },
	{ "reply: trailing CRLF left on is tolerated", "250 2.0.0 Ok\r\n", 0, 0,
	    250, 0, REPLY_OK, "2.0.0", "Ok" },
	{ "reply: control characters in text are replaced", "550 5.0.0 a\001b",
	    0, 0, 550, 0, REPLY_PERM, "5.0.0", "a?b" },
	{ "reply: NUL in text is replaced", "550 a\0b", 7, 0, 550, 0, REPLY_PERM,
	    "", "a?b" },
	{ "reply: lowest accepted code 200", "200 ok", 0, 0, 200, 0, REPLY_OK, "",
	    "ok" },
	{ "reply: highest accepted code 599", "599 x", 0, 0, 599, 0, REPLY_PERM,
	    "", "x" },
	{ "reply: tab in text is kept", "250 a\tb", 0, 0, 250, 0, REPLY_OK, "",
	    "a\tb" },

	{ "reply: empty line is rejected", "", 0, -1 },
	{ "reply: two digits are rejected", "25", 0, -1 },
	{ "reply: letters instead of a code are rejected", "abc def", 0, -1 },
	{ "reply: code with a letter is rejected", "2x0 ok", 0, -1 },
	{ "reply: code 199 is rejected", "199 x", 0, -1 },
	{ "reply: code 600 is rejected", "600 x", 0, -1 },
	{ "reply: code 000 is rejected", "000 x", 0, -1 },
	{ "reply: missing separator is rejected", "250Ok", 0, -1 },
	{ "reply: four-digit code is rejected", "2500 ok", 0, -1 },
	{ "reply: leading space is rejected", " 250 ok", 0, -1 },
	{ "reply: tab separator is rejected", "250\tok", 0, -1 },
	{ "reply: minus sign is rejected", "-250 ok", 0, -1 },
	{ "reply: a line of only CRLF is rejected", "\r\n", 0, -1 },
};

static void
run_parse_rows(void)
{
	struct reply	 r;
	size_t		 i;
	int		 rv, more, good;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *w = &rows[i];

		memset(&r, 0x5a, sizeof(r));
		more = -1;
		rv = reply_parse_line(w->line, w->n ? w->n : strlen(w->line),
		    &r, &more);
		if (w->rv == 0)
			good = rv == 0 && r.code == w->code && more == w->more &&
			    r.cls == w->cls &&
			    strcmp(r.enhanced, w->enhanced) == 0 &&
			    strcmp(r.text, w->text) == 0;
		else
			good = rv == -1;
		UNIT_CHECK(w->name, good, "rv=%d code=%d more=%d cls=%d "
		    "enhanced=[%.15s] text=[%.255s]", rv, rv == 0 ? r.code : 0,
		    more, rv == 0 ? (int)r.cls : -1, rv == 0 ? r.enhanced : "",
		    rv == 0 ? r.text : "");
	}
}

static void
run_long_text(void)
{
	char		 line[600];
	struct reply	 r;
	int		 more, rv;

	memcpy(line, "250 ", 4);
	memset(line + 4, 'x', sizeof(line) - 4);
	rv = reply_parse_line(line, sizeof(line), &r, &more);
	UNIT_CHECK("reply: overlong text is cut to the field size",
	    rv == 0 && strlen(r.text) == sizeof(r.text) - 1,
	    "rv=%d len=%zu", rv, strlen(r.text));
	rv = reply_parse_line("250 ok", 6, &r, NULL);
	UNIT_CHECK("reply: more_r may be NULL", rv == 0 && r.code == 250,
	    "rv=%d", rv);
}

struct class_row {
	const char *name;
	int	 code;
	enum reply_class cls;
	const char *cname;
};

static const struct class_row class_rows[] = {
	{ "reply_class_of: 250 is ok", 250, REPLY_OK, "ok" },
	{ "reply_class_of: 354 is ok", 354, REPLY_OK, "ok" },
	{ "reply_class_of: 421 is temp", 421, REPLY_TEMP, "temp" },
	{ "reply_class_of: 452 is temp", 452, REPLY_TEMP, "temp" },
	{ "reply_class_of: 550 is perm", 550, REPLY_PERM, "perm" },
	{ "reply_class_of: 554 is perm", 554, REPLY_PERM, "perm" },
	{ "reply_class_of: an unknown code (0) is temp, never perm", 0,
	    REPLY_TEMP, "temp" },
	{ "reply_class_of: an unknown code (999) is temp, never perm", 999,
	    REPLY_TEMP, "temp" },
};

static void
run_class_rows(void)
{
	struct reply	 r;
	size_t		 i;

	for (i = 0; i < sizeof(class_rows) / sizeof(class_rows[0]); i++) {
		const struct class_row *w = &class_rows[i];

		reply_set(&r, w->code, NULL, "x");
		UNIT_CHECK(w->name, reply_class_of(w->code) == w->cls &&
		    r.cls == w->cls &&
		    strcmp(reply_class_name(r.cls), w->cname) == 0,
		    "cls=%d name=%s", (int)r.cls, reply_class_name(r.cls));
	}
}

struct fmt_row {
	const char *name;
	int	 code;
	const char *enhanced;
	const char *text;
	size_t	 outsz;
	const char *out;
};

static const struct fmt_row fmt_rows[] = {
	{ "reply_format: code, enhanced code and text", 550, "5.1.1",
	    "no such user", 64, "550 5.1.1 no such user" },
	{ "reply_format: no enhanced code", 250, "", "OK", 64, "250 OK" },
	{ "reply_format: NULL enhanced code", 250, NULL, "OK", 64, "250 OK" },
	{ "reply_format: no text", 250, "2.0.0", "", 64, "250 2.0.0" },
	{ "reply_format: code only", 221, "", "", 64, "221" },
	{ "reply_format: output is cut to outsz", 550, "5.1.1", "abcdef", 8,
	    "550 5.1" },
};

static void
run_fmt_rows(void)
{
	struct reply	 r, p;
	char		 out[128];
	size_t		 i;
	int		 more;

	for (i = 0; i < sizeof(fmt_rows) / sizeof(fmt_rows[0]); i++) {
		const struct fmt_row *w = &fmt_rows[i];

		reply_set(&r, w->code, w->enhanced, "%s", w->text);
		reply_format(&r, out, w->outsz);
		UNIT_CHECK(w->name, strcmp(out, w->out) == 0, "out=[%s]", out);
	}
	reply_set(&r, 452, "4.2.2", "mailbox %s is %s", "bob", "full");
	reply_format(&r, out, sizeof(out));
	UNIT_CHECK("reply: format then parse gives the same reply",
	    reply_parse_line(out, strlen(out), &p, &more) == 0 &&
	    p.code == r.code && p.cls == r.cls &&
	    strcmp(p.enhanced, r.enhanced) == 0 && strcmp(p.text, r.text) == 0,
	    "out=[%s]", out);
	reply_set(&r, 250, "2.0.0", NULL);
	UNIT_CHECK("reply_set: NULL format gives an empty text",
	    r.text[0] == '\0' && r.code == 250, "text=[%s]", r.text);
}

int
main(void)
{
	run_parse_rows();
	run_long_text();
	run_class_rows();
	run_fmt_rows();
	return unit_done();
}
