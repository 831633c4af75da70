/*
 * dkimverify.h - DKIM verification of received mail (RFC 6376, RFC 8463)
 * with libopendkim: every signature of a message, rsa-sha256 and
 * ed25519-sha256, keys looked up through lib/dns (so tests can point it at
 * a loopback server) and a DNS failure kept apart as temperror.
 *
 * Results use the RFC 8601 words: pass, fail, policy (valid but not
 * acceptable: rsa-sha1 (RFC 8301), expired, a key below 1024 bits),
 * temperror (key lookup failed), permerror (no key, broken signature or
 * key).  At most DKIMV_SIGS_MAX signatures are verified; the others are
 * ignored (a message with a thousand signatures must not cost a thousand
 * DNS lookups).  One verifier is shared by every thread.
 *
 * Not a DMARC evaluator: alignment is the caller's.
 */
#ifndef EDGEMAIL_DKIMVERIFY_H
#define EDGEMAIL_DKIMVERIFY_H

#include <stddef.h>

#include "lib/dkim_sign.h"	/* struct dkim_input */

struct dns_resolver;
struct dkimv;

#define DKIMV_SIGS_MAX	8

struct dkimv_sig {
	char	 result[16];		/* "pass", "fail", ... */
	char	 why[96];		/* for a comment in the A-R */
	char	 domain[256];		/* d= */
	char	 selector[128];		/* s= */
	char	 identity[256];		/* i= (or "@d") */
	char	 alg[24];		/* "rsa-sha256", "ed25519-sha256" */
	char	 b[16];			/* start of b=, for header.b */
};

struct dkimv_report {
	size_t	 nsig;			/* entries in sig[] */
	size_t	 ignored;		/* signatures over the limit */
	struct dkimv_sig sig[DKIMV_SIGS_MAX];
};

/* dns is borrowed (must outlive the verifier).  NULL and err on failure. */
struct dkimv *dkimv_new(struct dns_resolver *dns, char *err, size_t errsz);
void	dkimv_free(struct dkimv **vp);

/*
 * Verify every signature of a message (CRLF line ends; the header
 * section with its blank line in in->hdr).  Returns 0 with rep filled
 * (nsig 0: not signed), -1 on an internal failure (out of memory, a
 * read error of the body file): then the caller treats DKIM as
 * temperror.
 */
int	dkimv_verify(struct dkimv *v, const char *job_id,
	    const struct dkim_input *in, struct dkimv_report *rep);

#endif
