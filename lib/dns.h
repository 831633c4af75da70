/*
 * dns.h - a small stub resolver for TXT records (DKIM keys, DMARC policies).
 *
 * Sends one recursive query to one server over UDP (EDNS0), retries over
 * TCP when the answer is truncated, and gives up after a timeout.  The
 * server is the `dns_server` setting ("ip", "ip:port", "[v6]:port"), or
 * the first nameserver of /etc/resolv.conf when that is empty; "none"
 * turns lookups off (every name is answered as not existing: for offline
 * development stacks).  No cache, no DNSSEC validation, no search list:
 * names are always absolute.  Thread-safe: a resolver is read-only after
 * dns_new() and every lookup uses its own socket.
 *
 * The one rule callers rely on: a lookup that did not get a clear answer
 * (timeout, SERVFAIL, REFUSED, a malformed reply) is DNS_TEMP, never
 * DNS_NOTFOUND, so a DNS outage never becomes a permanent verdict.
 */
#ifndef EDGEMAIL_DNS_H
#define EDGEMAIL_DNS_H

#include <stddef.h>
#include <stdint.h>

#define DNS_TXT_MAX	32	/* TXT records kept from one answer */
#define DNS_NAME_MAX	253

enum dns_status {
	DNS_FOUND = 0,		/* at least one TXT record */
	DNS_NOTFOUND,		/* NXDOMAIN, or the name has no TXT record */
	DNS_TEMP,		/* no usable answer: try again later */
};

/* The TXT records of one answer, each one's strings joined. */
struct dns_txt {
	size_t	 n;
	char	*rec[DNS_TXT_MAX];	/* NUL-terminated, point into mem */
	size_t	 len[DNS_TXT_MAX];
	int	 nxdomain;		/* DNS_NOTFOUND because of NXDOMAIN */
	char	*mem;
};

struct dns_resolver;

/*
 * server: "" (system resolver), "none", or an address with an optional
 * port.  timeout_ms bounds each lookup as a whole.  NULL with err filled
 * on a malformed setting.
 */
struct dns_resolver *dns_new(const char *server, int timeout_ms, char *err,
	    size_t errsz);
void	dns_free(struct dns_resolver **rp);
/* "127.0.0.1:5353", "system 10.0.0.1:53" or "none", for logs. */
const char *dns_describe(const struct dns_resolver *r);

/* TXT records of name (no trailing dot needed).  out is filled for
 * DNS_FOUND and must be released with dns_txt_free in every case. */
enum dns_status dns_txt(struct dns_resolver *r, const char *name,
	    struct dns_txt *out);
void	dns_txt_free(struct dns_txt *t);
const char *dns_status_name(enum dns_status s);	/* "found" ... */

/* Wire format helpers, exposed for the unit and fuzz tests. */
/* Build a TXT query for name with id; returns its length or -1. */
int	dns_build_query(const char *name, uint16_t id, unsigned char *out,
	    size_t outsz);
/* Parse an answer to that query; DNS_TEMP for anything malformed or an
 * answer that does not match id/name. */
enum dns_status dns_parse_answer(const unsigned char *msg, size_t len,
	    uint16_t id, const char *name, struct dns_txt *out, int *truncated_r);

#endif
