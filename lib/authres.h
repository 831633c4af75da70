/*
 * authres.h - message authentication header fields and records:
 *
 *   Authentication-Results   RFC 8601: parser and writer
 *   Received-SPF             RFC 7208 section 9.1: parser
 *   DMARC policy record      RFC 7489 section 6.3: parser
 *
 * The parsers take the field's value (after the colon, folding allowed)
 * and never allocate: results land in fixed-size structures whose limits
 * are below.  A value that does not fit, or any syntax error, makes the
 * whole field unparsable (-1): these fields come from the network and a
 * half-understood result must not be trusted.
 */
#ifndef EDGEMAIL_AUTHRES_H
#define EDGEMAIL_AUTHRES_H

#include <stddef.h>

struct buf;

#define AUTHRES_RESULTS_MAX	16	/* resinfo entries kept */
#define AUTHRES_PROPS_MAX	6	/* properties per result */
#define AUTHRES_VALUE_MAX	256

struct authres_prop {
	char	 ptype[16];		/* "smtp", "header", "body", "policy" */
	char	 property[32];		/* "mailfrom", "d", "from", ... */
	char	 value[AUTHRES_VALUE_MAX];
};

struct authres_result {
	char	 method[32];		/* "dkim", "spf", "dmarc", "arc" */
	char	 result[32];		/* "pass", "fail", ... (lower-case) */
	char	 reason[AUTHRES_VALUE_MAX];
	char	 comment[AUTHRES_VALUE_MAX];	/* first comment after result */
	struct authres_prop props[AUTHRES_PROPS_MAX];
	size_t	 nprops;
};

struct authres {
	char	 authserv_id[AUTHRES_VALUE_MAX];
	int	 none;			/* "id; none" */
	struct authres_result res[AUTHRES_RESULTS_MAX];
	size_t	 nres;
	size_t	 dropped;		/* results beyond AUTHRES_RESULTS_MAX */
};

/* Parse an Authentication-Results value; 0 or -1. */
int	authres_parse(const char *v, size_t len, struct authres *ar);
/* The authserv-id alone (first value); 0 or -1.  Cheap: for deciding
 * whether a field claims a given id. */
int	authres_id(const char *v, size_t len, char *out, size_t outsz);
/* First result of a method (case-insensitive), or NULL. */
const struct authres_result *authres_find(const struct authres *ar,
	    const char *method);
/* Value of ptype.property in a result, or NULL. */
const char *authres_prop(const struct authres_result *r, const char *ptype,
	    const char *property);

/*
 * Builders for the writer.  authres_add() appends a result (NULL when
 * full); authres_add_prop() a property (-1 when full or too long).
 * Text that does not fit is cut; comments are cleaned to plain ctext.
 */
struct authres_result *authres_add(struct authres *ar, const char *method,
	    const char *result, const char *comment);
int	authres_add_prop(struct authres_result *r, const char *ptype,
	    const char *property, const char *value);
/* The whole field, "Authentication-Results: ...\r\n", one result per
 * folded line; values quoted where RFC 8601 requires it. */
int	authres_write(struct buf *out, const struct authres *ar);

/* Received-SPF (RFC 7208 9.1). */
struct received_spf {
	char	 result[16];		/* lower-case */
	char	 comment[AUTHRES_VALUE_MAX];
	char	 client_ip[64];
	char	 envelope_from[AUTHRES_VALUE_MAX];
	char	 helo[AUTHRES_VALUE_MAX];
	char	 receiver[AUTHRES_VALUE_MAX];
	char	 identity[32];
};

int	received_spf_parse(const char *v, size_t len, struct received_spf *s);
/* Whether s is one of the seven SPF results (RFC 7208 2.6). */
int	spf_result_valid(const char *s);

/* DMARC policy record (RFC 7489 6.3). */
enum dmarc_policy {
	DMARC_P_UNSET = 0,
	DMARC_P_NONE,
	DMARC_P_QUARANTINE,
	DMARC_P_REJECT,
};

struct dmarc_record {
	enum dmarc_policy p;
	enum dmarc_policy sp;		/* UNSET: p applies */
	enum dmarc_policy np;		/* DMARCbis; UNSET: sp/p apply */
	char	 adkim;			/* 'r' or 's' */
	char	 aspf;
	int	 pct;			/* 0..100 */
	int	 has_rua;
};

/*
 * 1: a usable DMARC record; 0: not a DMARC record (does not start with
 * "v=DMARC1"); -1: a DMARC record without a usable policy (no valid p=
 * and no rua=: RFC 7489 6.6.3 says to ignore it).
 */
int	dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r);
const char *dmarc_policy_name(enum dmarc_policy p);	/* "none" ... */

#endif
