/*
 * addr.h - RFC 5321 mailbox addresses (envelope addresses).
 *
 * Accepts "local@domain", optionally inside <>, with a dot-atom or quoted
 * local part.  Enforces the RFC 5321 length limits (local part 64, domain
 * 255, whole path 256 octets incl. brackets).  The domain is lower-cased;
 * the local part keeps its case (it is the receiver's to interpret), but a
 * quoted local part that is a valid dot-atom is unquoted ("a.b"@x = a.b@x).
 * Not a parser for RFC 5322 header addresses (display names, groups).
 */
#ifndef EDGEMAIL_ADDR_H
#define EDGEMAIL_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX	64
#define ADDR_DOMAIN_MAX	255
#define ADDR_PATH_MAX	256

enum {
	ADDR_ALLOW_EMPTY = 1 << 0,	/* "" or "<>": the null reverse-path */
	ADDR_ALLOW_UTF8 = 1 << 1,	/* RFC 6531 UTF-8 in local part/domain */
	ADDR_REQUIRE_BRACKETS = 1 << 2,	/* SMTP command syntax: must be <...> */
};

struct addr {
	char	local[ADDR_LOCAL_MAX * 2 + 3];	/* as it must be written (quoted if needed) */
	char	domain[ADDR_DOMAIN_MAX + 1];	/* lower-case; "" for the null path */
	int	utf8;				/* contains non-ASCII */
};

/*
 * Parse s[0..len).  Returns 0 and fills a, or -1 with a short reason in
 * *err_r ("local part too long", "bad domain", ...).
 */
int	addr_parse(const char *s, size_t len, int flags, struct addr *a,
	    const char **err_r);
/* "local@domain" ("" for the null path) into out; -1 if it does not fit. */
int	addr_format(const struct addr *a, char *out, size_t outsz);
int	addr_is_null(const struct addr *a);
/* "local@domain" for lookups: the local part lower-cased and without a
 * +detail suffix (quoted local parts keep theirs). */
void	addr_lookup_key(const struct addr *a, char *out, size_t outsz);

#endif
