/*
 * crlf.h - streaming line-end normalisation of message bodies.
 *
 * Mail is stored and sent with CRLF line ends, once, at ingest (libcurl and
 * LMTP dot-stuffing both depend on it).  A bare LF becomes CRLF, a bare CR
 * becomes CRLF; CRLF stays.  The converter keeps one byte of state, so a
 * CR at the end of one chunk and an LF at the start of the next are seen
 * as one CRLF.
 */
#ifndef EDGEMAIL_CRLF_H
#define EDGEMAIL_CRLF_H

#include <stddef.h>

struct crlf_state {
	int	pending_cr;	/* the last chunk ended in CR */
	int	at_bol;		/* the output so far ends with CRLF (or is empty) */
};

void	crlf_init(struct crlf_state *st);
/* Convert n bytes; out must have room for 2n + 1 bytes.  Returns the
 * number of bytes written. */
size_t	crlf_convert(struct crlf_state *st, const char *in, size_t n, char *out);
/* How many bytes at the start of in crlf_convert would pass on
 * unchanged (every line end already CRLF), for the caller to use where
 * they are; the state moves past them and the rest goes to
 * crlf_convert.  Checked in blocks, so a short or untidy input may get 0. */
size_t	crlf_clean_prefix(struct crlf_state *st, const char *in, size_t n);
/* Flush a pending CR and, when the data does not end with a line end,
 * add CRLF.  out needs 2 bytes.  Returns the bytes written. */
size_t	crlf_finish(struct crlf_state *st, char *out);

#endif
