/*
 * dkimverify.c - verify every DKIM signature of a message with
 * libopendkim (see dkimverify.h).
 *
 * libopendkim does the canonicalisation and the cryptography; we give it
 * keys through its key-lookup callback (lib/dns, with our timeout and our
 * server) and read each signature's outcome afterwards.  The callback
 * cannot tell libopendkim "try again later" without stopping the whole
 * evaluation, so a DNS failure is answered "no key" and remembered here:
 * that signature is reported temperror, the others are still checked.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <opendkim/dkim.h>

#include "lib/dkimverify.h"
#include "lib/dns.h"
#include "lib/hdr.h"

#define RSA_MIN_BITS	1024
#define BODY_CHUNK	(64 * 1024)

struct dkimv {
	DKIM_LIB *lib;
	struct dns_resolver *dns;
};

/* What the callbacks learn about one message. */
struct vctx {
	struct dkimv *v;
	size_t	 ignored;
	size_t	 nmark;
	struct {
		DKIM_SIGINFO *sig;
		const char *why;
		const char *result;
	} mark[DKIMV_SIGS_MAX];
};

static void
mark(struct vctx *c, DKIM_SIGINFO *sig, const char *result, const char *why)
{
	if (c->nmark < DKIMV_SIGS_MAX) {
		c->mark[c->nmark].sig = sig;
		c->mark[c->nmark].result = result;
		c->mark[c->nmark].why = why;
		c->nmark++;
	}
}

static DKIM_CBSTAT
prescreen_cb(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
	struct vctx *c = dkim_get_user_context(dkim);
	int i;

	for (i = DKIMV_SIGS_MAX; i < nsigs; i++) {
		dkim_sig_ignore(sigs[i]);
		if (c != NULL)
			c->ignored++;
	}
	return DKIM_CBSTAT_CONTINUE;
}

static DKIM_CBSTAT
key_lookup_cb(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct vctx *c = dkim_get_user_context(dkim);
	const char *sel = (const char *)dkim_sig_getselector(sig);
	const char *dom = (const char *)dkim_sig_getdomain(sig);
	char name[DNS_NAME_MAX + 2];
	struct dns_txt t;
	enum dns_status st;
	size_t i, pick = 0;
	int n;

	if (c == NULL || sel == NULL || dom == NULL)
		return DKIM_CBSTAT_ERROR;
	n = snprintf(name, sizeof(name), "%s._domainkey.%s", sel, dom);
	if (n < 0 || (size_t)n >= sizeof(name))
		return DKIM_CBSTAT_NOTFOUND;
	st = dns_txt(c->v->dns, name, &t);
	if (st == DNS_TEMP) {
		dns_txt_free(&t);
		mark(c, sig, "temperror", "key lookup failed");
		return DKIM_CBSTAT_NOTFOUND;
	}
	if (st != DNS_FOUND) {
		dns_txt_free(&t);
		return DKIM_CBSTAT_NOTFOUND;
	}
	/* Several records: prefer one that says it is a DKIM key. */
	for (i = 0; i < t.n; i++) {
		if (strncmp(t.rec[i], "v=DKIM1", 7) == 0) {
			pick = i;
			break;
		}
	}
	if (t.len[pick] + 1 > buflen) {
		dns_txt_free(&t);
		mark(c, sig, "permerror", "key record too long");
		return DKIM_CBSTAT_NOTFOUND;
	}
	memcpy(buf, t.rec[pick], t.len[pick] + 1);
	dns_txt_free(&t);
	return DKIM_CBSTAT_CONTINUE;
}

struct dkimv *
dkimv_new(struct dns_resolver *dns, char *err, size_t errsz)
{
	struct dkimv *v;
	unsigned int flags = DKIM_LIBFLAGS_NONE;
	unsigned int minbits = 0;

	if ((v = calloc(1, sizeof(*v))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	v->dns = dns;
	if ((v->lib = dkim_init(NULL, NULL)) == NULL) {
		free(v);
		snprintf(err, errsz, "dkim_init failed");
		return NULL;
	}
	if (!dkim_libfeature(v->lib, DKIM_FEATURE_SHA256) ||
	    !dkim_libfeature(v->lib, DKIM_FEATURE_ED25519)) {
		dkimv_free(&v);
		snprintf(err, errsz, "libopendkim lacks sha256 or ed25519");
		return NULL;
	}
	/* The key size floor is ours (RSA only): libopendkim would also
	 * apply it to Ed25519 keys, which are 256 bits by design. */
	if (dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	    sizeof(flags)) != DKIM_STAT_OK ||
	    dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS,
	    &minbits, sizeof(minbits)) != DKIM_STAT_OK ||
	    dkim_set_key_lookup(v->lib, key_lookup_cb) != DKIM_STAT_OK ||
	    dkim_set_prescreen(v->lib, prescreen_cb) != DKIM_STAT_OK) {
		dkimv_free(&v);
		snprintf(err, errsz, "dkim_options failed");
		return NULL;
	}
	return v;
}

void
dkimv_free(struct dkimv **vp)
{
	struct dkimv *v;

	if (vp == NULL || (v = *vp) == NULL)
		return;
	if (v->lib != NULL)
		dkim_close(v->lib);
	free(v);
	*vp = NULL;
}

static const char *
alg_name(DKIM_SIGINFO *sig)
{
	dkim_alg_t alg;

	if (dkim_sig_getsignalg(sig, &alg) != DKIM_STAT_OK)
		return "unknown";
	switch (alg) {
	case DKIM_SIGN_RSASHA256:
		return "rsa-sha256";
	case DKIM_SIGN_ED25519SHA256:
		return "ed25519-sha256";
	case DKIM_SIGN_RSASHA1:
		return "rsa-sha1";
	default:
		return "unknown";
	}
}

static void
set(char *dst, size_t dsz, const char *src)
{
	snprintf(dst, dsz, "%s", src ? src : "");
}

/* One signature's outcome in RFC 8601 words. */
static void
describe(DKIM *dkim, struct vctx *c, DKIM_SIGINFO *sig, struct dkimv_sig *o)
{
	unsigned int flags = dkim_sig_getflags(sig), bits = 0;
	int err = dkim_sig_geterror(sig), bh = dkim_sig_getbh(sig);
	size_t i, len;
	const char *es;

	memset(o, 0, sizeof(*o));
	set(o->domain, sizeof(o->domain),
	    (const char *)dkim_sig_getdomain(sig));
	set(o->selector, sizeof(o->selector),
	    (const char *)dkim_sig_getselector(sig));
	set(o->alg, sizeof(o->alg), alg_name(sig));
	if (dkim_sig_getidentity(dkim, sig, (u_char *)o->identity,
	    sizeof(o->identity)) != DKIM_STAT_OK)
		o->identity[0] = '\0';
	len = sizeof(o->b);
	if (dkim_get_sigsubstring(dkim, sig, o->b, &len) != DKIM_STAT_OK)
		o->b[0] = '\0';
	else
		o->b[len < sizeof(o->b) ? len : sizeof(o->b) - 1] = '\0';
	if (strlen(o->b) > 8)
		o->b[8] = '\0';

	for (i = 0; i < c->nmark; i++) {
		if (c->mark[i].sig == sig) {
			set(o->result, sizeof(o->result), c->mark[i].result);
			set(o->why, sizeof(o->why), c->mark[i].why);
			return;
		}
	}
	if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH) {
		ssize_t msglen = -1, canonlen = -1, signlen = -1;

		if (strcmp(o->alg, "rsa-sha1") == 0) {
			set(o->result, sizeof(o->result), "policy");
			set(o->why, sizeof(o->why), "rsa-sha1 is not accepted");
		} else if (strcmp(o->alg, "rsa-sha256") == 0 &&
		    dkim_sig_getkeysize(sig, &bits) == DKIM_STAT_OK &&
		    bits < RSA_MIN_BITS) {
			set(o->result, sizeof(o->result), "policy");
			snprintf(o->why, sizeof(o->why), "%u-bit key is too small",
			    bits);
		} else if (dkim_sig_getcanonlen(dkim, sig, &msglen, &canonlen,
		    &signlen) == DKIM_STAT_OK && signlen >= 0 &&
		    canonlen < msglen) {
			/* l= left part of the body unsigned: anything could
			 * have been added there (a new MIME part). */
			set(o->result, sizeof(o->result), "policy");
			snprintf(o->why, sizeof(o->why), "l= signs %zd of %zd "
			    "body bytes", canonlen, msglen);
		} else
			set(o->result, sizeof(o->result), "pass");
		return;
	}
	switch (err) {
	case DKIM_SIGERROR_OK:
	case DKIM_SIGERROR_UNKNOWN:
		if ((flags & DKIM_SIGFLAG_PROCESSED) == 0) {
			set(o->result, sizeof(o->result), "temperror");
			set(o->why, sizeof(o->why), "not verified");
		} else if (bh == DKIM_SIGBH_MISMATCH) {
			set(o->result, sizeof(o->result), "fail");
			set(o->why, sizeof(o->why), "body hash mismatch");
		} else {
			set(o->result, sizeof(o->result), "fail");
			set(o->why, sizeof(o->why), "signature mismatch");
		}
		return;
	case DKIM_SIGERROR_BADSIG:
		set(o->result, sizeof(o->result), "fail");
		set(o->why, sizeof(o->why), bh == DKIM_SIGBH_MISMATCH ?
		    "body hash mismatch" : "signature mismatch");
		return;
	case DKIM_SIGERROR_KEYREVOKED:
		set(o->result, sizeof(o->result), "fail");
		set(o->why, sizeof(o->why), "key revoked");
		return;
	case DKIM_SIGERROR_KEYFAIL:
		set(o->result, sizeof(o->result), "temperror");
		set(o->why, sizeof(o->why), "key lookup failed");
		return;
	case DKIM_SIGERROR_NOKEY:
		set(o->result, sizeof(o->result), "permerror");
		set(o->why, sizeof(o->why), "no key");
		return;
	case DKIM_SIGERROR_EXPIRED:
	case DKIM_SIGERROR_FUTURE:
	case DKIM_SIGERROR_KEYTOOSMALL:
		set(o->result, sizeof(o->result), "policy");
		break;
	default:
		set(o->result, sizeof(o->result), "permerror");
		break;
	}
	es = dkim_sig_geterrorstr(err);
	set(o->why, sizeof(o->why), es ? es : "invalid signature");
}

static int
feed_body(DKIM *dkim, const struct dkim_input *in)
{
	unsigned char *chunk;
	off_t pos = in->off, end = in->off + in->len;
	ssize_t n;
	size_t want;

	if (in->fd < 0) {
		if (in->body_len > 0)
			(void)dkim_body(dkim, (u_char *)(uintptr_t)in->body,
			    in->body_len);
		return 0;
	}
	if ((chunk = malloc(BODY_CHUNK)) == NULL)
		return -1;
	while (pos < end) {
		want = (size_t)(end - pos) < BODY_CHUNK ? (size_t)(end - pos) :
		    BODY_CHUNK;
		n = pread(in->fd, chunk, want, pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(chunk);
			return -1;
		}
		(void)dkim_body(dkim, chunk, (size_t)n);
		pos += n;
	}
	free(chunk);
	return 0;
}

int
dkimv_verify(struct dkimv *v, const char *job_id,
    const struct dkim_input *in, struct dkimv_report *rep)
{
	struct vctx c;
	DKIM *dkim;
	DKIM_STAT st;
	DKIM_SIGINFO **sigs = NULL;
	struct hdr_field f;
	size_t pos = 0, flen;
	int nsigs = 0, i, rc;

	memset(rep, 0, sizeof(*rep));
	memset(&c, 0, sizeof(c));
	c.v = v;
	dkim = dkim_verify(v->lib, (const u_char *)(job_id ? job_id : "-"),
	    NULL, &st);
	if (dkim == NULL)
		return -1;
	dkim_set_user_context(dkim, &c);
	while ((rc = hdr_next(in->hdr, in->hdr_len, &pos, &f)) == 1) {
		flen = f.end - f.start;
		/* the field without its final line end */
		if (flen >= 2 && in->hdr[f.end - 2] == '\r')
			flen -= 2;
		else if (flen >= 1 && in->hdr[f.end - 1] == '\n')
			flen -= 1;
		st = dkim_header(dkim, (u_char *)(uintptr_t)(in->hdr + f.start),
		    flen);
		if (st != DKIM_STAT_OK)
			break;
	}
	st = dkim_eoh(dkim);
	if (st == DKIM_STAT_NOSIG) {
		dkim_free(dkim);
		return 0;
	}
	if (feed_body(dkim, in) != 0) {
		dkim_free(dkim);
		return -1;
	}
	(void)dkim_eom(dkim, NULL);
	if (dkim_getsiglist(dkim, &sigs, &nsigs) != DKIM_STAT_OK)
		nsigs = 0;
	for (i = 0; i < nsigs && rep->nsig < DKIMV_SIGS_MAX; i++) {
		if (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE)
			continue;
		describe(dkim, &c, sigs[i], &rep->sig[rep->nsig++]);
	}
	rep->ignored = c.ignored;
	dkim_free(dkim);
	return 0;
}
