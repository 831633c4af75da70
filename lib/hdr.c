/*
 * hdr.c - walk the fields of an RFC 5322 header section held in memory.
 *
 * A line ends at LF, with or without a CR before it.  A field is
 * "name [WSP] : value" followed by any number of continuation lines (lines
 * that start with SP or HTAB).  The section ends at an empty line, at the
 * end of the data, or at the first line that is not a field.  Each step
 * moves forward by at least one byte, so every loop ends within len steps.
 */
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/hdr.h"

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 5322 ftext: printable US-ASCII except ':'. */
static int
is_ftext(char c)
{
	unsigned char u = (unsigned char)c;

	return u >= 33 && u <= 126 && u != ':';
}

/* Offset just past the line end that starts at or after i, or len. */
static size_t
line_next(const char *msg, size_t len, size_t i)
{
	const char *lf = memchr(msg + i, '\n', len - i);

	return lf != NULL ? (size_t)(lf - msg) + 1 : len;
}

int
hdr_line_kind(const char *line, size_t len)
{
	size_t i;

	if (len > 0 && is_wsp(line[0]))
		return HDR_LINE_CONT;
	for (i = 0; i < len && is_ftext(line[i]); i++)
		;
	if (i == 0)
		return HDR_LINE_OTHER;
	while (i < len && is_wsp(line[i]))
		i++;
	return i < len && line[i] == ':' ? HDR_LINE_FIELD : HDR_LINE_OTHER;
}

int
hdr_next(const char *msg, size_t len, size_t *pos, struct hdr_field *f)
{
	size_t	 p = *pos, i, next, vend;

	if (p >= len) {
		*pos = len;
		return 0;
	}
	/* The empty line that ends the section (a CR alone at the end too). */
	if (msg[p] == '\n') {
		*pos = p + 1;
		return 0;
	}
	if (msg[p] == '\r' && (p + 1 == len || msg[p + 1] == '\n')) {
		*pos = p + 1 == len ? len : p + 2;
		return 0;
	}

	for (i = p; i < len && is_ftext(msg[i]); i++)
		;
	if (i == p)
		return -1;	/* starts with WSP, ':' or a control byte */
	f->name = msg + p;
	f->name_len = i - p;
	while (i < len && is_wsp(msg[i]))	/* obs-optional */
		i++;
	if (i >= len || msg[i] != ':')
		return -1;
	i++;
	f->value = msg + i;
	f->start = p;

	/* The field goes on while the next line starts with WSP. */
	for (;;) {
		next = line_next(msg, len, i);
		if (next >= len || !is_wsp(msg[next]))
			break;
		i = next;
	}
	vend = next;
	if (vend > i && msg[vend - 1] == '\n') {
		vend--;
		if (vend > i && msg[vend - 1] == '\r')
			vend--;
	}
	f->value_len = vend - (size_t)(f->value - msg);
	f->end = next;
	*pos = next;
	return 1;
}

size_t
hdr_section_end(const char *msg, size_t len)
{
	struct hdr_field f;
	size_t	 pos = 0;

	while (hdr_next(msg, len, &pos, &f) == 1)
		;
	return pos;
}

int
hdr_is(const struct hdr_field *f, const char *name)
{
	size_t	 n = strlen(name);

	return n == f->name_len && strncasecmp(f->name, name, n) == 0;
}

int
hdr_unfold(const struct hdr_field *f, struct buf *out)
{
	const char *v = f->value;
	size_t	 e = f->value_len, i, run, lead;

	buf_reset(out);
	if (buf_reserve(out, 0) == -1)
		return -1;
	/* Copy everything but the line ends; folding keeps its WSP. */
	for (i = 0; i < e; i += run) {
		if (v[i] == '\n') {
			run = 1;
			continue;
		}
		if (v[i] == '\r' && i + 1 < e && v[i + 1] == '\n') {
			run = 2;
			continue;
		}
		for (run = 0; i + run < e && v[i + run] != '\n' &&
		    !(v[i + run] == '\r' && i + run + 1 < e &&
		    v[i + run + 1] == '\n'); run++)
			;
		if (buf_append(out, v + i, run) == -1)
			return -1;
	}
	while (out->len > 0 && is_wsp(out->data[out->len - 1]))
		out->data[--out->len] = '\0';
	for (lead = 0; lead < out->len && is_wsp(out->data[lead]); lead++)
		;
	buf_consume(out, lead);
	return 0;
}

int
hdr_find(const char *msg, size_t len, const char *name, struct buf *out)
{
	struct hdr_field f;
	size_t	 pos = 0;

	while (hdr_next(msg, len, &pos, &f) == 1)
		if (hdr_is(&f, name))
			return hdr_unfold(&f, out) == -1 ? -1 : 1;
	return 0;
}
