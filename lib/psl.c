/*
 * psl.c - Public Suffix List: loading into an open-addressing hash set,
 * the organizational-domain lookup, and a punycode encoder for Unicode
 * rules (see psl.h).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/psl.h"

#define PSL_NORMAL	1
#define PSL_WILDCARD	2	/* "*.rest": any label below rest */
#define PSL_EXCEPTION	4	/* "!name" */
#define PSL_NAME_MAX	253

/* 8 bytes a slot: the rule is arena[off - 1 .. off - 1 + len). */
struct psl_ent {
	uint32_t off;		/* 0: free slot */
	uint16_t len;
	uint16_t flags;
};

struct psl {
	struct psl_ent *tab;
	size_t	 mask;
	size_t	 n;
	char	*arena;		/* the rules, NUL-separated */
	size_t	 arena_len, arena_cap;
};

static uint32_t
hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static struct psl_ent *
slot(const struct psl *p, const char *key, size_t n)
{
	size_t i = hash(key, n) & p->mask;

	for (;;) {
		struct psl_ent *e = &p->tab[i];

		if (e->off == 0 || (e->len == n &&
		    memcmp(p->arena + e->off - 1, key, n) == 0))
			return e;
		i = (i + 1) & p->mask;
	}
}

static unsigned
lookup(const struct psl *p, const char *key, size_t n)
{
	struct psl_ent *e = slot(p, key, n);

	return e->off ? e->flags : 0;
}

/* ---- punycode (RFC 3492) ------------------------------------------- */

static int
utf8_next(const unsigned char **s, const unsigned char *end, uint32_t *cp)
{
	const unsigned char *p = *s;
	uint32_t c;
	int n, i;

	if (p >= end)
		return -1;
	if (*p < 0x80) {
		*cp = *p;
		*s = p + 1;
		return 0;
	}
	if ((*p & 0xe0) == 0xc0) {
		c = *p & 0x1f;
		n = 1;
	} else if ((*p & 0xf0) == 0xe0) {
		c = *p & 0x0f;
		n = 2;
	} else if ((*p & 0xf8) == 0xf0) {
		c = *p & 0x07;
		n = 3;
	} else
		return -1;
	if ((size_t)(end - p) <= (size_t)n)
		return -1;
	for (i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ||
	    (n == 1 && c < 0x80) || (n == 2 && c < 0x800) ||
	    (n == 3 && c < 0x10000))
		return -1;
	*cp = c;
	*s = p + n + 1;
	return 0;
}

static char
digit(uint32_t d)
{
	return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

static uint32_t
adapt(uint32_t delta, uint32_t numpoints, int first)
{
	uint32_t k = 0;

	delta = first ? delta / 700 : delta / 2;
	delta += delta / numpoints;
	while (delta > ((36 - 1) * 26) / 2) {
		delta /= 36 - 1;
		k += 36;
	}
	return k + (36 * delta) / (delta + 38);
}

int
psl_punycode_label(const char *label, size_t len, char *out, size_t outsz)
{
	uint32_t cps[64], n = 128, delta = 0, bias = 72, h, b, m, q, k, t;
	const unsigned char *s = (const unsigned char *)label;
	const unsigned char *end = s + len;
	size_t ncp = 0, w = 0, i;

	while (s < end) {
		if (ncp == 64 || utf8_next(&s, end, &cps[ncp]) != 0)
			return -1;
		ncp++;
	}
	if (outsz < 5)
		return -1;
	memcpy(out, "xn--", 4);
	w = 4;
	for (i = 0; i < ncp; i++) {
		if (cps[i] < 0x80) {
			if (w + 1 >= outsz)
				return -1;
			out[w++] = (char)tolower((int)cps[i]);
		}
	}
	h = b = (uint32_t)(w - 4);
	if (b > 0) {
		if (w + 1 >= outsz)
			return -1;
		out[w++] = '-';
	}
	while (h < ncp) {
		m = UINT32_MAX;
		for (i = 0; i < ncp; i++)
			if (cps[i] >= n && cps[i] < m)
				m = cps[i];
		if ((m - n) > (UINT32_MAX - delta) / (h + 1))
			return -1;
		delta += (m - n) * (h + 1);
		n = m;
		for (i = 0; i < ncp; i++) {
			if (cps[i] < n && ++delta == 0)
				return -1;
			if (cps[i] != n)
				continue;
			q = delta;
			for (k = 36;; k += 36) {
				t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
				if (q < t)
					break;
				if (w + 1 >= outsz)
					return -1;
				out[w++] = digit(t + (q - t) % (36 - t));
				q = (q - t) / (36 - t);
			}
			if (w + 1 >= outsz)
				return -1;
			out[w++] = digit(q);
			bias = adapt(delta, h + 1, h == b);
			delta = 0;
			h++;
		}
		delta++;
		n++;
	}
	out[w] = '\0';
	return 0;
}

/* Every label with a byte >= 0x80 as an A-label; 0 when nothing changed,
 * 1 when out differs, -1 on error. */
static int
to_alabels(const char *name, char *out, size_t outsz)
{
	const char *p = name, *dot;
	size_t w = 0, lab;
	int changed = 0;
	char tmp[128];

	while (*p) {
		size_t i;
		int ascii = 1;

		dot = strchr(p, '.');
		lab = dot ? (size_t)(dot - p) : strlen(p);
		for (i = 0; i < lab; i++)
			if ((unsigned char)p[i] >= 0x80)
				ascii = 0;
		if (!ascii) {
			if (psl_punycode_label(p, lab, tmp, sizeof(tmp)) != 0)
				return -1;
			changed = 1;
		} else {
			if (lab >= sizeof(tmp))
				return -1;
			memcpy(tmp, p, lab);
			tmp[lab] = '\0';
		}
		if (w + strlen(tmp) + 2 > outsz)
			return -1;
		if (w > 0)
			out[w++] = '.';
		memcpy(out + w, tmp, strlen(tmp));
		w += strlen(tmp);
		p += lab + (dot ? 1 : 0);
		if (!dot)
			break;
	}
	out[w] = '\0';
	return changed;
}

int
psl_alabels(const char *name, char *out, size_t outsz)
{
	int rc = to_alabels(name, out, outsz);

	return rc < 0 ? -1 : 0;
}

/* ---- loading ------------------------------------------------------- */

/* Append s to the arena; its offset + 1, or 0 when out of memory.  The
 * slots hold offsets, so the arena may move as it grows. */
static uint32_t
intern(struct psl *p, const char *s, size_t n)
{
	size_t at = p->arena_len, ncap;
	char *a;

	if (at + n + 1 > p->arena_cap) {
		ncap = p->arena_cap ? p->arena_cap * 2 : 64 * 1024;
		if (ncap > UINT32_MAX - 1 || (a = realloc(p->arena, ncap)) == NULL)
			return 0;
		p->arena = a;
		p->arena_cap = ncap;
	}
	memcpy(p->arena + at, s, n);
	p->arena[at + n] = '\0';
	p->arena_len += n + 1;
	return (uint32_t)at + 1;
}

static int
add_rule(struct psl *p, const char *rule, size_t n, unsigned flags)
{
	struct psl_ent *e;
	uint32_t off;

	if (n == 0)
		return 0;
	e = slot(p, rule, n);
	if (e->off == 0) {
		if ((p->n + 1) * 4 > (p->mask + 1) * 3)
			return -1;	/* table sized from the file: cannot be */
		if ((off = intern(p, rule, n)) == 0)
			return -1;
		e->off = off;
		e->len = (uint16_t)n;
		p->n++;
	}
	e->flags |= flags;
	return 0;
}

static int
add_line(struct psl *p, char *line)
{
	char *s = line, *e, alab[PSL_NAME_MAX + 2];
	unsigned flags = PSL_NORMAL;
	size_t i;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '\n' || (s[0] == '/' && s[1] == '/'))
		return 0;
	e = s;
	while (*e && *e != ' ' && *e != '\t' && *e != '\n' && *e != '\r')
		e++;
	*e = '\0';
	if (*s == '!') {
		flags = PSL_EXCEPTION;
		s++;
	} else if (s[0] == '*' && s[1] == '.') {
		flags = PSL_WILDCARD;
		s += 2;
	}
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x80)
			s[i] = (char)tolower((unsigned char)s[i]);
	if (strlen(s) > PSL_NAME_MAX)
		return 0;
	if (add_rule(p, s, strlen(s), flags) != 0)
		return -1;
	if (to_alabels(s, alab, sizeof(alab)) == 1 &&
	    add_rule(p, alab, strlen(alab), flags) != 0)
		return -1;
	return 0;
}

struct psl *
psl_load(const char *path, char *err, size_t errsz)
{
	struct psl *p;
	FILE *f;
	char line[1024], *a;
	size_t rules = 0, cap;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errsz, "%s: cannot open", path);
		return NULL;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *s = line + strspn(line, " \t");

		if (*s != '\0' && *s != '\n' && *s != '\r' &&
		    !(s[0] == '/' && s[1] == '/'))
			rules++;
	}
	rewind(f);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		goto oom;
	/* Each rule at most twice (Unicode + A-label), the table at most
	 * three quarters full. */
	for (cap = 1024; cap * 3 < rules * 2 * 4; cap *= 2)
		;
	p->mask = cap - 1;
	if ((p->tab = calloc(cap, sizeof(*p->tab))) == NULL)
		goto oom;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (add_line(p, line) != 0) {
			snprintf(err, errsz, "%s: too many rules", path);
			fclose(f);
			psl_free(&p);
			return NULL;
		}
	}
	fclose(f);
	if (p->arena_len < p->arena_cap &&
	    (a = realloc(p->arena, p->arena_len)) != NULL) {
		p->arena = a;
		p->arena_cap = p->arena_len;
	}
	if (p->n == 0) {
		snprintf(err, errsz, "%s: no rules", path);
		psl_free(&p);
		return NULL;
	}
	return p;
oom:
	fclose(f);
	psl_free(&p);
	snprintf(err, errsz, "out of memory");
	return NULL;
}

void
psl_free(struct psl **pp)
{
	struct psl *p;

	if (pp == NULL || (p = *pp) == NULL)
		return;
	free(p->tab);
	free(p->arena);
	free(p);
	*pp = NULL;
}

size_t
psl_count(const struct psl *p)
{
	return p->n;
}

/* ---- lookup -------------------------------------------------------- */

int
psl_org_domain(const struct psl *p, const char *domain, char *out,
    size_t outsz)
{
	char d[PSL_NAME_MAX + 2];
	size_t n = strlen(domain), i, starts[128], nl = 0, ps = 1, k;

	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (n == 0 || n > PSL_NAME_MAX || n >= outsz)
		return -1;
	for (i = 0; i < n; i++)
		d[i] = (char)tolower((unsigned char)domain[i]);
	d[n] = '\0';
	/* label start offsets, left to right */
	starts[nl++] = 0;
	for (i = 0; i < n; i++) {
		if (d[i] == '.') {
			if (nl == 128 || i + 1 >= n || i == 0 || d[i + 1] == '.')
				return -1;
			starts[nl++] = i + 1;
		}
	}
	/* suffix of k labels starts at starts[nl - k] */
	for (k = 1; k <= nl; k++) {
		const char *s = d + starts[nl - k];
		size_t sl = n - starts[nl - k];
		unsigned fl = lookup(p, s, sl);

		if (fl & PSL_EXCEPTION) {
			ps = k - 1;
			break;
		}
		if ((fl & PSL_NORMAL) && k > ps)
			ps = k;
		if (k >= 2) {
			const char *parent = d + starts[nl - k + 1];

			if ((lookup(p, parent, n - starts[nl - k + 1]) &
			    PSL_WILDCARD) && k > ps)
				ps = k;
		}
	}
	if (ps >= nl) {			/* the domain is a public suffix */
		memcpy(out, d, n + 1);
		return 0;
	}
	memcpy(out, d + starts[nl - ps - 1], n - starts[nl - ps - 1] + 1);
	return 0;
}
