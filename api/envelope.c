/*
 * envelope.c - the envelope of POST /v1/messages, from the query string.
 *
 *   mail_from=ADDR&rcpt=ADDR[&rcpt=ADDR...]
 *
 * Parsed strictly from the raw request target (the same bytes the
 * signature covers): every %XX must be valid, '+' is a literal plus (it is
 * common in addresses; clients that encode a space as '+' produce an
 * invalid address either way), unknown or repeated parameters are refused.
 * Duplicate recipients are folded into one.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"


/* Decode p[0..n) into out; -1 on a bad escape or a control character. */
static int
pct_decode(const char *p, size_t n, char *out, size_t outsz, size_t *len_r)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)p[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = hex_digit(p[i + 1]);
			lo = hex_digit(p[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			return -1;
		if (o + 1 >= outsz)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	*len_r = o;
	return 0;
}

void
envelope_free(struct envelope *env)
{
	free(env->rcpts);
	env->rcpts = NULL;
	env->nrcpt = 0;
}

const char **
envelope_addrs(const struct envelope *env)
{
	const char **a;
	size_t i;

	if ((a = calloc(env->nrcpt ? env->nrcpt : 1, sizeof(*a))) == NULL)
		return NULL;
	for (i = 0; i < env->nrcpt; i++)
		a[i] = env->rcpts[i].addr;
	return a;
}

/* Room for one more recipient: first for as many as the query names
 * (first), then doubling up to max (a request pays for the recipients it
 * names, not for max_recipients). */
static int
grow_rcpts(struct envelope *env, size_t *cap, size_t first, size_t max,
    char *why, size_t whysz)
{
	size_t ncap = *cap ? *cap * 2 : first;
	struct rcpt *r;

	if (*cap >= max) {
		snprintf(why, whysz, "more than %zu recipients", max);
		return -1;
	}
	if (ncap > max)
		ncap = max;
	if ((r = realloc(env->rcpts, ncap * sizeof(*r))) == NULL) {
		snprintf(why, whysz, "out of memory");
		return -2;
	}
	memset(r + *cap, 0, (ncap - *cap) * sizeof(*r));
	env->rcpts = r;
	*cap = ncap;
	return 0;
}

/* How many rcpt parameters the query has (at least 1). */
static size_t
count_rcpts(const char *q)
{
	size_t n = 0;

	for (;;) {
		if (strncmp(q, "rcpt=", 5) == 0)
			n++;
		if ((q = strchr(q, '&')) == NULL)
			break;
		q++;
	}
	return n ? n : 1;
}

int
envelope_parse(const char *query, long long max_rcpts, struct envelope *env,
    char *why, size_t whysz)
{
	const char *p = query ? query : "";
	int have_from = 0, rc = -1;
	size_t cap = 0, named;

	memset(env, 0, sizeof(*env));
	if (max_rcpts < 1 || max_rcpts > API_MAX_RCPTS_HARD)
		max_rcpts = API_MAX_RCPTS_HARD;
	named = count_rcpts(p);
	while (*p != '\0') {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', plen);
		char val[ADDR_PATH_MAX * 3 + 1];
		size_t klen, vlen;
		struct addr a;
		const char *err;

		if (plen == 0 || eq == NULL) {
			snprintf(why, whysz, "malformed query parameter");
			goto fail;
		}
		klen = (size_t)(eq - p);
		if (pct_decode(eq + 1, plen - klen - 1, val, sizeof(val), &vlen)
		    != 0) {
			snprintf(why, whysz, "malformed or over-long value in "
			    "query parameter '%.*s'", (int)(klen > 32 ? 32 : klen), p);
			goto fail;
		}
		if (klen == 9 && memcmp(p, "mail_from", 9) == 0) {
			if (have_from++) {
				snprintf(why, whysz, "mail_from given twice");
				goto fail;
			}
			if (addr_parse(val, vlen, ADDR_ALLOW_EMPTY |
			    ADDR_ALLOW_UTF8, &a, &err) != 0) {
				snprintf(why, whysz, "bad mail_from: %s", err);
				goto fail;
			}
			addr_format(&a, env->mail_from, sizeof(env->mail_from));
		} else if (klen == 4 && memcmp(p, "rcpt", 4) == 0) {
			char norm[ADDR_PATH_MAX + 1];
			size_t i;
			int grown;

			if (addr_parse(val, vlen, ADDR_ALLOW_UTF8, &a, &err) != 0) {
				snprintf(why, whysz, "bad rcpt '%.64s': %s", val, err);
				goto fail;
			}
			addr_format(&a, norm, sizeof(norm));
			for (i = 0; i < env->nrcpt; i++)
				if (strcmp(env->rcpts[i].addr, norm) == 0)
					break;
			if (i == env->nrcpt) {
				if (env->nrcpt == cap &&
				    (grown = grow_rcpts(env, &cap, named,
				    (size_t)max_rcpts, why, whysz)) != 0) {
					rc = grown;
					goto fail;
				}
				memcpy(env->rcpts[env->nrcpt++].addr, norm,
				    sizeof(norm));
			}
		} else {
			snprintf(why, whysz, "unknown query parameter '%.*s'",
			    (int)(klen > 32 ? 32 : klen), p);
			goto fail;
		}
		p += plen;
		if (*p == '&')
			p++;
	}
	if (!have_from) {
		snprintf(why, whysz, "missing mail_from (use mail_from= for "
		    "the null sender)");
		goto fail;
	}
	if (env->nrcpt == 0) {
		snprintf(why, whysz, "missing rcpt");
		goto fail;
	}
	return 0;
fail:
	envelope_free(env);
	return rc;
}
