/*
 * crlf.c - streaming line-end normalisation (bare LF / bare CR -> CRLF).
 *
 * A CR is held back when it is the last byte of a chunk: only the next
 * chunk (or crlf_finish) tells whether it starts a CRLF or stands alone.
 * Either way it produces exactly one CRLF, so the output does not depend
 * on where the input was split.
 */
#include <stddef.h>

#include "lib/crlf.h"

void
crlf_init(struct crlf_state *st)
{
	st->pending_cr = 0;
	st->at_bol = 1;
}

size_t
crlf_convert(struct crlf_state *st, const char *in, size_t n, char *out)
{
	size_t	 i = 0, o = 0;

	if (n == 0)
		return 0;
	if (st->pending_cr) {
		/* The held CR becomes CRLF; an LF right after it is its own. */
		out[o++] = '\r';
		out[o++] = '\n';
		st->pending_cr = 0;
		st->at_bol = 1;
		if (in[0] == '\n')
			i = 1;
	}
	for (; i < n; i++) {
		switch (in[i]) {
		case '\r':
			if (i + 1 == n) {
				st->pending_cr = 1;
				return o;
			}
			out[o++] = '\r';
			out[o++] = '\n';
			if (in[i + 1] == '\n')
				i++;
			st->at_bol = 1;
			break;
		case '\n':
			out[o++] = '\r';
			out[o++] = '\n';
			st->at_bol = 1;
			break;
		default:
			out[o++] = in[i];
			st->at_bol = 0;
			break;
		}
	}
	return o;
}

size_t
crlf_finish(struct crlf_state *st, char *out)
{
	if (st->pending_cr || !st->at_bol) {
		st->pending_cr = 0;
		st->at_bol = 1;
		out[0] = '\r';
		out[1] = '\n';
		return 2;
	}
	return 0;
}
