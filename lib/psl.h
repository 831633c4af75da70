/*
 * psl.h - the Public Suffix List, for DMARC's organizational domain.
 *
 * Reads the list as Debian ships it (/usr/share/publicsuffix/
 * public_suffix_list.dat, both the ICANN and the private sections, as
 * libopendmarc does) into a hash set once, then answers lookups without
 * locks or allocation.  Rules in Unicode are also stored as A-labels
 * (punycode), so "xn--" domains match them.  The algorithm is the list's
 * own (https://publicsuffix.org/list/): the longest matching rule wins,
 * "*." wildcards, "!" exceptions, and "*" when nothing matches.
 */
#ifndef EDGEMAIL_PSL_H
#define EDGEMAIL_PSL_H

#include <stddef.h>

struct psl;

struct psl *psl_load(const char *path, char *err, size_t errsz);
void	psl_free(struct psl **pp);
size_t	psl_count(const struct psl *p);		/* rules loaded */

/*
 * The organizational domain of domain (RFC 7489 3.2): its public suffix
 * plus one label, lower-case, into out.  A domain that is itself a public
 * suffix is its own organizational domain.  -1 for an empty or oversized
 * name.
 */
int	psl_org_domain(const struct psl *p, const char *domain, char *out,
	    size_t outsz);

/* A domain with every label that holds UTF-8 written as an A-label;
 * -1 when a label is not valid UTF-8 or the result does not fit. */
int	psl_alabels(const char *name, char *out, size_t outsz);

/* RFC 3492 encoding of one UTF-8 label into "xn--..." (exposed for tests);
 * -1 when it is not valid UTF-8 or does not fit. */
int	psl_punycode_label(const char *label, size_t len, char *out,
	    size_t outsz);

#endif
