/*
 * reply.h - the one outcome type carried end to end (DESIGN section 1).
 *
 * Every layer (LMTP client, spool, scanner, API, relay) reports what
 * happened in a struct reply, and passes it up unchanged, so the class of
 * an outcome is never lost: OK, TEMP (retrying can help) or PERM (it
 * cannot), with the SMTP reply code, the RFC 3463 enhanced status code and
 * a human text.
 */
#ifndef EDGEMAIL_REPLY_H
#define EDGEMAIL_REPLY_H

#include <stddef.h>

enum reply_class {
	REPLY_OK = 0,
	REPLY_TEMP,
	REPLY_PERM,
};

struct reply {
	enum reply_class cls;
	int	 code;		/* 250, 451, 550, ... */
	char	 enhanced[16];	/* "2.0.0", "" when the peer gave none */
	char	 text[256];	/* without code and enhanced code */
};

/* Fill r; the class follows from the code (2xx/3xx OK, 4xx TEMP, 5xx PERM). */
void	reply_set(struct reply *r, int code, const char *enhanced,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
enum reply_class reply_class_of(int code);
const char *reply_class_name(enum reply_class cls);	/* "ok" "temp" "perm" */

/*
 * Parse one SMTP/LMTP reply line ("250-2.1.5 Ok" or "550 5.1.1 <x> unknown")
 * without its CRLF.  On success sets *more_r to 1 for a continuation line
 * ("250-...") and fills r (text of this line only).  Returns -1 for a line
 * that is not a reply.
 */
int	reply_parse_line(const char *line, size_t len, struct reply *r,
	    int *more_r);

/* "550 5.1.1 text" (no CRLF) into out. */
void	reply_format(const struct reply *r, char *out, size_t outsz);

#endif
