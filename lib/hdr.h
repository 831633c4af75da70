/*
 * hdr.h - RFC 5322 header section reader.
 *
 * Works on a message held in memory (the header section only is enough):
 * walks the fields in order, gives each field's name, raw value (with its
 * folding) and the byte range of the whole field, so that callers can
 * copy a message while dropping or adding fields.  Tolerant of what is
 * seen in real mail (bare LF, obsolete whitespace before the colon), strict
 * about bounds.  Not a MIME parser.
 */
#ifndef EDGEMAIL_HDR_H
#define EDGEMAIL_HDR_H

#include <stddef.h>

struct buf;

struct hdr_field {
	const char *name;	/* points into the message */
	size_t	 name_len;
	const char *value;	/* after "name:" up to (not incl.) the final line end */
	size_t	 value_len;
	size_t	 start;		/* offset of the field's first byte */
	size_t	 end;		/* offset after its final line end */
};

/*
 * Next field at *pos.  Returns 1 with f filled and *pos advanced, 0 at the
 * end of the header section (then *pos is the offset of the body, after
 * the empty line, or len when there is none), -1 for a line that is not a
 * header field (*pos then points at it; treat the rest as body).
 */
int	hdr_next(const char *msg, size_t len, size_t *pos, struct hdr_field *f);
/* Offset where the body starts (after the blank line), or len. */
size_t	hdr_section_end(const char *msg, size_t len);
/* What a line of a header section is (the same rule as hdr_next): the
 * start of a field ("name:"), a continuation (starts with WSP), or
 * something else, which ends the section. */
enum { HDR_LINE_OTHER = 0, HDR_LINE_FIELD, HDR_LINE_CONT };
int	hdr_line_kind(const char *line, size_t len);
/* Case-insensitive name comparison. */
int	hdr_is(const struct hdr_field *f, const char *name);
/* Value unfolded (CRLF+WSP -> WSP), leading/trailing space trimmed. */
int	hdr_unfold(const struct hdr_field *f, struct buf *out);
/* First field with this name, unfolded into out; 1 found, 0 not, -1 error. */
int	hdr_find(const char *msg, size_t len, const char *name, struct buf *out);

#endif
