/*
 * dkim_sign.h - DKIM signing of outgoing mail (RFC 6376, RFC 8463) on
 * OpenSSL; keys parsed once, not per message (dkim_sign.c says why not
 * libopendkim).
 *
 * Keys are the files `edgemailctl dkim keygen` writes:
 *
 *	KEYS_DIR/DOMAIN/SELECTOR.key	PEM private key (RSA or Ed25519)
 *
 * A signer is made once per program and shared by every thread.  Each
 * message gets an rsa-sha256 signature with `selector` and, when an
 * `ed25519_selector` is configured and its key file exists, a second
 * ed25519-sha256 one (receivers that do not know Ed25519 ignore it).
 * Canonicalisation is relaxed/relaxed, From is over-signed (a second From
 * added later breaks the signature).  Key files are read when first
 * needed and read again when they change on disk (key rotation needs no
 * restart).
 *
 * The message must have CRLF line ends (a bare LF also ends a line).
 * Not a verifier (dkimverify.h).
 */
#ifndef EDGEMAIL_DKIM_SIGN_H
#define EDGEMAIL_DKIM_SIGN_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/reply.h"

struct buf;
struct dkim_signer;

/* A message to sign: its header section (with the blank line) in memory
 * and the body either in memory (fd < 0) or in fd at [off, off + len). */
struct dkim_input {
	const char *hdr;
	size_t	 hdr_len;
	const char *body;
	size_t	 body_len;
	int	 fd;
	off_t	 off;
	off_t	 len;
};

/* keys_dir: where DOMAIN/SELECTOR.key live; ed25519_selector may be NULL
 * or "" (no second signature).  NULL and err when libopendkim fails. */
struct dkim_signer *dkim_signer_new(const char *keys_dir, const char *selector,
	    const char *ed25519_selector, char *err, size_t errsz);
void	dkim_signer_free(struct dkim_signer **sp);

/*
 * Sign for domain d= `domain`: append one "DKIM-Signature: ...\r\n" field
 * per signature to out (to be put on top of the header section).
 * Returns the number of signatures added (0 when the domain has no key),
 * or -1 with a TEMP reply (a key that does not load, a signing failure):
 * mail of a domain with a key is never sent unsigned.
 */
int	dkim_sign_message(struct dkim_signer *s, const char *domain,
	    const char *job_id, const struct dkim_input *in, struct buf *out,
	    struct reply *r);

/* Whether a DKIM key file exists for the domain (rsa selector). */
int	dkim_signer_has_key(struct dkim_signer *s, const char *domain);

#endif
