/*
 * test_hdr.c - header section reader: each row is a message and the fields
 * (name and unfolded value) and body offset it must give.
 */
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/hdr.h"
#include "tests/unit/unit.h"

#define MAXF	6

struct row {
	const char *name;
	const char *msg;
	int	 last;		/* what hdr_next returns after the fields */
	const char *body;	/* the text from the body offset on */
	const char *fields[MAXF * 2];	/* name, unfolded value, ... */
};

static const struct row rows[] = {
	{ "hdr: two fields, CRLF, body",
	    "From: a@x\r\nTo: b@y\r\n\r\nHello\r\n", 0, "Hello\r\n",
	    { "From", "a@x", "To", "b@y" } },
	{ "hdr: bare LF line ends", "From: a@x\nTo: b@y\n\nHello\n", 0,
	    "Hello\n", { "From", "a@x", "To", "b@y" } },
	{ "hdr: mixed CRLF and bare LF", "A: 1\r\nB: 2\n\r\nbody", 0, "body",
	    { "A", "1", "B", "2" } },
	{ "hdr: folded value is unfolded with its whitespace",
	    "Subject: a long\r\n subject\r\n\tline\r\n\r\nb", 0, "b",
	    { "Subject", "a long subject\tline" } },
	{ "hdr: folded value with bare LF",
	    "Subject: one\n two\nX: y\n\nb", 0, "b",
	    { "Subject", "one two", "X", "y" } },
	{ "hdr: value starting on a continuation line",
	    "Subject:\r\n  hello\r\n\r\n", 0, "", { "Subject", "hello" } },
	{ "hdr: no body, section ends at the empty line",
	    "From: a\r\n\r\n", 0, "", { "From", "a" } },
	{ "hdr: no empty line, message is all header",
	    "From: a\r\nTo: b\r\n", 0, "", { "From", "a", "To", "b" } },
	{ "hdr: field at the end without a newline", "From: a\r\nTo: b", 0, "",
	    { "From", "a", "To", "b" } },
	{ "hdr: field at the end ending in a bare CR", "To: b\r", 0, "",
	    { "To", "b\r" } },
	{ "hdr: empty header section (body right away)", "\r\nbody\r\n", 0,
	    "body\r\n", { NULL } },
	{ "hdr: empty header section with bare LF", "\nbody", 0, "body",
	    { NULL } },
	{ "hdr: empty message", "", 0, "", { NULL } },
	{ "hdr: first line without a colon is not a field",
	    "not a header\r\n\r\nbody", -1, "not a header\r\n\r\nbody",
	    { NULL } },
	{ "hdr: first line starting with whitespace is not a field",
	    " From: a\r\n\r\n", -1, " From: a\r\n\r\n", { NULL } },
	{ "hdr: mbox From_ line is not a field",
	    "From a@x Thu Jan  1 00:00:00 2026\nSubject: x\n\n", -1,
	    "From a@x Thu Jan  1 00:00:00 2026\nSubject: x\n\n", { NULL } },
	{ "hdr: line starting with a colon is not a field", ": x\r\n", -1,
	    ": x\r\n", { NULL } },
	{ "hdr: a bad line after fields ends the section there",
	    "A: 1\r\nnot a field\r\nB: 2\r\n", -1,
	    "not a field\r\nB: 2\r\n", { "A", "1" } },
	{ "hdr: whitespace before the colon (obsolete syntax)",
	    "Subject : hi\r\n\r\n", 0, "", { "Subject", "hi" } },
	{ "hdr: empty value", "X-Empty:\r\nY: 1\r\n\r\n", 0, "",
	    { "X-Empty", "", "Y", "1" } },
	{ "hdr: value of only whitespace", "X:   \r\n\r\n", 0, "", { "X", "" } },
	{ "hdr: colon inside the value", "Date: 10:00:01\r\n\r\n", 0, "",
	    { "Date", "10:00:01" } },
	{ "hdr: trailing whitespace is trimmed", "X: a  \t\r\n\r\n", 0, "",
	    { "X", "a" } },
	{ "hdr: non-ASCII value bytes are kept",
	    "Subject: caf\xc3\xa9\r\n\r\n", 0, "", { "Subject", "caf\xc3\xa9" } },
	{ "hdr: field name with every allowed punctuation",
	    "X-a.b_c!#$%&'*+/=?^`{|}~: v\r\n\r\n", 0, "",
	    { "X-a.b_c!#$%&'*+/=?^`{|}~", "v" } },
	{ "hdr: space inside a field name is not a field", "X Y: v\r\n", -1,
	    "X Y: v\r\n", { NULL } },
	{ "hdr: control byte in a field name is not a field", "X\001Y: v\r\n",
	    -1, "X\001Y: v\r\n", { NULL } },
	{ "hdr: name without colon at the end of data", "Subject", -1,
	    "Subject", { NULL } },
	{ "hdr: continuation line that is whitespace only",
	    "A: 1\r\n \r\nB: 2\r\n\r\n", 0, "", { "A", "1", "B", "2" } },
	{ "hdr: blank line made of a bare CR then LF ends the section",
	    "A: 1\n\r\nbody", 0, "body", { "A", "1" } },
};

static void
run_rows(void)
{
	struct hdr_field f;
	struct buf	 v;
	char		 why[256];
	size_t		 i, pos, nf;
	int		 rv, good;

	buf_init(&v, 4096);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		size_t len = strlen(r->msg);

		pos = 0;
		nf = 0;
		good = 1;
		why[0] = '\0';
		while ((rv = hdr_next(r->msg, len, &pos, &f)) == 1) {
			if (nf >= MAXF || r->fields[nf * 2] == NULL) {
				snprintf(why, sizeof(why), "extra field %.*s",
				    (int)f.name_len, f.name);
				good = 0;
				break;
			}
			hdr_unfold(&f, &v);
			if (!hdr_is(&f, r->fields[nf * 2]) ||
			    strcmp(buf_cstr(&v), r->fields[nf * 2 + 1]) != 0 ||
			    f.start >= f.end || f.end > len ||
			    f.name != r->msg + f.start) {
				snprintf(why, sizeof(why), "field %zu: "
				    "[%.*s] = [%s]", nf, (int)f.name_len,
				    f.name, buf_cstr(&v));
				good = 0;
				break;
			}
			nf++;
		}
		if (good && nf < MAXF && r->fields[nf * 2] != NULL) {
			snprintf(why, sizeof(why), "missing field %s",
			    r->fields[nf * 2]);
			good = 0;
		}
		if (good && rv != r->last) {
			snprintf(why, sizeof(why), "hdr_next ended with %d", rv);
			good = 0;
		}
		if (good && strcmp(r->msg + pos, r->body) != 0) {
			snprintf(why, sizeof(why), "body at %zu: [%s]", pos,
			    r->msg + pos);
			good = 0;
		}
		if (good && hdr_section_end(r->msg, len) != pos) {
			snprintf(why, sizeof(why), "hdr_section_end %zu != %zu",
			    hdr_section_end(r->msg, len), pos);
			good = 0;
		}
		UNIT_CHECK(r->name, good, "%s", why);
	}
	buf_free(&v);
}

static void
run_ranges(void)
{
	static const char msg[] =
	    "Received: from a\r\n\tby b\r\nSubject: x\r\n\r\nbody";
	struct hdr_field f;
	size_t	 pos = 0;
	int	 rv;

	rv = hdr_next(msg, sizeof(msg) - 1, &pos, &f);
	UNIT_CHECK("hdr: byte range of a folded field covers its final CRLF",
	    rv == 1 && f.start == 0 && f.end == 25 && pos == 25,
	    "rv=%d start=%zu end=%zu", rv, f.start, f.end);
	UNIT_CHECK("hdr: raw value keeps its folding, not its line end",
	    rv == 1 && f.value_len == 14 &&
	    memcmp(f.value, " from a\r\n\tby b", 14) == 0,
	    "value_len=%zu", f.value_len);
	rv = hdr_next(msg, sizeof(msg) - 1, &pos, &f);
	UNIT_CHECK("hdr: second field range starts at the first one's end",
	    rv == 1 && f.start == 25 && f.end == 37, "start=%zu end=%zu",
	    f.start, f.end);
	rv = hdr_next(msg, sizeof(msg) - 1, &pos, &f);
	UNIT_CHECK("hdr: end of section reported once, at the body", rv == 0 &&
	    pos == 39, "rv=%d pos=%zu", rv, pos);
}

static void
run_find(void)
{
	static const char msg[] = "From: a\r\nSUBJECT: first\r\n second\r\n"
	    "Subject: other\r\n\r\nSubject: in body\r\n";
	struct buf	 v;
	int		 rv;

	buf_init(&v, 64);
	rv = hdr_find(msg, sizeof(msg) - 1, "subject", &v);
	UNIT_CHECK("hdr_find: first field, case-insensitive, unfolded",
	    rv == 1 && strcmp(buf_cstr(&v), "first second") == 0,
	    "rv=%d v=[%s]", rv, buf_cstr(&v));
	rv = hdr_find(msg, sizeof(msg) - 1, "To", &v);
	UNIT_CHECK("hdr_find: missing field gives 0", rv == 0, "rv=%d", rv);
	rv = hdr_find(msg, sizeof(msg) - 1, "Subjec", &v);
	UNIT_CHECK("hdr_find: a name prefix does not match", rv == 0, "rv=%d",
	    rv);
	buf_free(&v);
	buf_init(&v, 4);
	rv = hdr_find(msg, sizeof(msg) - 1, "subject", &v);
	UNIT_CHECK("hdr_find: value larger than the buffer limit gives -1",
	    rv == -1, "rv=%d", rv);
	buf_free(&v);
	buf_init(&v, 64);
	rv = hdr_find("X: 1\r\n\r\nSubject: b\r\n", 19, "subject", &v);
	UNIT_CHECK("hdr_find: a field in the body is not found", rv == 0,
	    "rv=%d", rv);
	buf_free(&v);
}

static void
run_line_kind(void)
{
	static const struct {
		const char *line;
		int	 kind;
	} k[] = {
		{ "From: a@x\r\n", HDR_LINE_FIELD },
		{ "From : obsolete space\r\n", HDR_LINE_FIELD },
		{ "X-Empty:\r\n", HDR_LINE_FIELD },
		{ " folded\r\n", HDR_LINE_CONT },
		{ "\tfolded\r\n", HDR_LINE_CONT },
		{ "X-Junk\r\n", HDR_LINE_OTHER },
		{ ": no name\r\n", HDR_LINE_OTHER },
		{ "Bad Name: x\r\n", HDR_LINE_OTHER },
		{ "From a@x Thu Dec  3\r\n", HDR_LINE_OTHER },
		{ "\r\n", HDR_LINE_OTHER },
	};
	size_t i;

	for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		int got = hdr_line_kind(k[i].line, strlen(k[i].line));

		UNIT_CHECK("hdr_line_kind", got == k[i].kind, "%s: got %d, "
		    "want %d", k[i].line, got, k[i].kind);
	}
}

int
main(void)
{
	run_rows();
	run_ranges();
	run_find();
	run_line_kind();
	return unit_done();
}
