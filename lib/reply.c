/*
 * reply.c - the outcome type: construction, classification, SMTP/LMTP
 * reply line parsing and formatting.
 *
 * The parser is strict about the reply code (three digits, 200-599, then
 * SP, "-" or the end of the line) and lenient about the rest: an enhanced
 * status code (RFC 3463) is taken only when it is well formed and its class
 * matches the reply code, otherwise it stays part of the text.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/reply.h"

enum reply_class
reply_class_of(int code)
{
	if (code >= 200 && code < 400)
		return REPLY_OK;
	if (code >= 500 && code < 600)
		return REPLY_PERM;
	/* 4xx, and anything we do not understand: retrying is the safe side. */
	return REPLY_TEMP;
}

const char *
reply_class_name(enum reply_class cls)
{
	switch (cls) {
	case REPLY_OK:
		return "ok";
	case REPLY_TEMP:
		return "temp";
	case REPLY_PERM:
		return "perm";
	}
	return "temp";
}

void
reply_set(struct reply *r, int code, const char *enhanced, const char *fmt, ...)
{
	va_list	 ap;

	r->code = code;
	r->cls = reply_class_of(code);
	(void)str_copy(r->enhanced, sizeof(r->enhanced),
	    enhanced != NULL ? enhanced : "");
	if (fmt == NULL) {
		r->text[0] = '\0';
		return;
	}
	va_start(ap, fmt);
	if (vsnprintf(r->text, sizeof(r->text), fmt, ap) < 0)
		r->text[0] = '\0';
	va_end(ap);
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 1 to 3 digits at s[*i]; advances *i. */
static int
parse_small_number(const char *s, size_t len, size_t *i)
{
	size_t	 start = *i;

	while (*i < len && is_digit(s[*i]) && *i - start < 3)
		(*i)++;
	return *i > start && (*i >= len || !is_digit(s[*i]));
}

/*
 * Length of a valid enhanced status code "c.y.z" at the start of s whose
 * class digit is cls, followed by SP or the end; 0 if there is none.
 */
static size_t
enhanced_len(const char *s, size_t len, char cls)
{
	size_t	 i = 0;

	if (len < 5 || s[0] != cls || s[1] != '.')
		return 0;
	i = 2;
	if (!parse_small_number(s, len, &i) || i >= len || s[i] != '.')
		return 0;
	i++;
	if (!parse_small_number(s, len, &i))
		return 0;
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

int
reply_parse_line(const char *line, size_t len, struct reply *r, int *more_r)
{
	size_t	 i, n, o;
	int	 code;
	unsigned char c;

	/* Tolerate a line end left on by the caller. */
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) ||
	    !is_digit(line[2]))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (code < 200 || code > 599)
		return -1;
	/* RFC 5321 4.2: the code alone is a complete reply line. */
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;

	r->code = code;
	r->cls = reply_class_of(code);
	r->enhanced[0] = '\0';
	r->text[0] = '\0';
	if (more_r != NULL)
		*more_r = len > 3 && line[3] == '-';
	if (len <= 4)
		return 0;

	i = 4;
	if ((n = enhanced_len(line + i, len - i, line[0])) > 0 &&
	    n < sizeof(r->enhanced)) {
		memcpy(r->enhanced, line + i, n);
		r->enhanced[n] = '\0';
		i += n;
		while (i < len && line[i] == ' ')
			i++;
	}
	/* The text may go to logs and HTTP answers: no control characters. */
	for (o = 0; i < len && o < sizeof(r->text) - 1; i++) {
		c = (unsigned char)line[i];
		r->text[o++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' :
		    (char)c;
	}
	r->text[o] = '\0';
	return 0;
}

void
reply_format(const struct reply *r, char *out, size_t outsz)
{
	const char *sep1 = r->enhanced[0] != '\0' ? " " : "";
	const char *sep2 = r->text[0] != '\0' ? " " : "";

	if (outsz == 0)
		return;
	if (snprintf(out, outsz, "%03d%s%s%s%s", r->code, sep1, r->enhanced,
	    sep2, r->text) < 0)
		out[0] = '\0';
}
