/*
 * srs.h - Sender Rewriting Scheme for forwarded mail.
 *
 * A message forwarded to an outside address leaves with an envelope
 * sender in one of our domains, so SPF at the far end passes:
 *
 *   a@sender.test -> SRS0=HHHH=TT=sender.test=a@forwarding.domain
 *
 * TT is the day (base32, mod 1024), HHHH a base32 HMAC-SHA256 of TT, the
 * domain and the local part with our secret.  A bounce to that address
 * comes back to us; srs_reverse() checks the hash and the age (at most
 * SRS_MAX_AGE_DAYS) and gives the original sender, so bounces reach them
 * and nobody can use us as an open relay with forged SRS addresses.
 */
#ifndef EDGEMAIL_SRS_H
#define EDGEMAIL_SRS_H

#include <stddef.h>
#include <time.h>

#define SRS_MAX_AGE_DAYS	21

/* The SRS key from path, made (random, 256 bits, mode 600) when the file
 * does not exist yet; safe when several programs start together.  0, or
 * -1 with the reason in err. */
int	srs_secret_load(const char *path, char *out, size_t outsz, char *err,
	    size_t errsz);
/* Rewrite sender (local@domain) into our domain.  -1 when it does not
 * fit an address (then forward with the null sender). */
int	srs_forward(const char *secret, const char *sender, const char *domain,
	    time_t now, char *out, size_t outsz);
/* The original sender of an SRS0 address, 0; -1 when addr is not ours,
 * forged or too old. */
int	srs_reverse(const char *secret, const char *addr, time_t now, char *out,
	    size_t outsz);

#endif
