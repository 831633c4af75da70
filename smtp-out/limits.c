/*
 * limits.c - sliding-window event counters for edgemail-submit: failed
 * AUTH attempts per client IP and per user name, messages and recipients
 * per user per hour.
 *
 * Each key ("kind/key") has 60 one-minute buckets, so a count over the
 * last N minutes (N <= 60) is exact to the minute and an entry is a
 * fixed 1 KB.  The table is bounded (max_keys): when it is full, entries
 * idle for an hour go first, then the least recently touched one, so a
 * flood of distinct keys costs memory only up to the bound.  One mutex;
 * every operation is a hash lookup plus at most 60 additions.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "smtp-out/submit.h"

#define LIM_BUCKETS	60		/* minutes */
#define LIM_KEY_MAX	300

struct lim_ent {
	char	 key[LIM_KEY_MAX];
	int64_t	 minute[LIM_BUCKETS];	/* which minute each bucket holds */
	uint32_t count[LIM_BUCKETS];
	int64_t	 touched;		/* seconds */
	struct lim_ent *next;
};

struct limits {
	pthread_mutex_t mu;
	struct lim_ent **tab;
	size_t	 nbuckets;
	size_t	 n;
	size_t	 max;
};

static uint64_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct limits *
limits_new(size_t max_keys)
{
	struct limits *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->max = max_keys > 0 ? max_keys : 10000;
	l->nbuckets = 1;
	while (l->nbuckets < l->max)
		l->nbuckets <<= 1;
	if ((l->tab = calloc(l->nbuckets, sizeof(*l->tab))) == NULL) {
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->mu, NULL);
	return l;
}

void
limits_free(struct limits **lp)
{
	struct limits *l;
	struct lim_ent *e, *next;
	size_t i;

	if (lp == NULL || (l = *lp) == NULL)
		return;
	for (i = 0; i < l->nbuckets; i++)
		for (e = l->tab[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	free(l->tab);
	pthread_mutex_destroy(&l->mu);
	free(l);
	*lp = NULL;
}

static void
make_key(char *out, const char *kind, const char *key)
{
	snprintf(out, LIM_KEY_MAX, "%s/%s", kind, key);
}

static struct lim_ent *
find(struct limits *l, const char *k)
{
	struct lim_ent *e;

	for (e = l->tab[hash(k) & (l->nbuckets - 1)]; e != NULL; e = e->next)
		if (strcmp(e->key, k) == 0)
			return e;
	return NULL;
}

/* Remove entries idle for an hour; if none, the least recently touched. */
static void
evict(struct limits *l, int64_t now)
{
	struct lim_ent **pp, *e, **oldest = NULL;
	size_t i, freed = 0;

	for (i = 0; i < l->nbuckets; i++) {
		pp = &l->tab[i];
		while ((e = *pp) != NULL) {
			if (e->touched <= now - LIM_BUCKETS * 60) {
				*pp = e->next;
				free(e);
				l->n--;
				freed++;
				continue;
			}
			if (oldest == NULL || e->touched < (*oldest)->touched)
				oldest = pp;
			pp = &e->next;
		}
	}
	if (freed == 0 && oldest != NULL) {
		e = *oldest;
		*oldest = e->next;
		free(e);
		l->n--;
	}
}

/* Events of entry e in the window; the caller holds the lock. */
static long long
count_locked(const struct lim_ent *e, long long window, int64_t now)
{
	int64_t cur = now / 60, first;
	long long total = 0;
	int i;

	if (window > LIM_BUCKETS * 60)
		window = LIM_BUCKETS * 60;
	/* The buckets of the minutes that overlap the window. */
	first = cur - (window + 59) / 60 + 1;
	for (i = 0; i < LIM_BUCKETS; i++)
		if (e->minute[i] >= first && e->minute[i] <= cur)
			total += e->count[i];
	return total;
}

/* The entry for k, made if needed (NULL when out of memory); the caller
 * holds the lock. */
static struct lim_ent *
get_locked(struct limits *l, const char *k, int64_t now)
{
	struct lim_ent *e;
	size_t b;

	if ((e = find(l, k)) != NULL)
		return e;
	if (l->n >= l->max)
		evict(l, now);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	snprintf(e->key, sizeof(e->key), "%s", k);
	b = hash(k) & (l->nbuckets - 1);
	e->next = l->tab[b];
	l->tab[b] = e;
	l->n++;
	return e;
}

static void
add_locked(struct lim_ent *e, long long n, int64_t now)
{
	int64_t cur = now / 60;
	int i = (int)(cur % LIM_BUCKETS);

	if (e->minute[i] != cur) {
		e->minute[i] = cur;
		e->count[i] = 0;
	}
	e->count[i] = e->count[i] + (uint32_t)n < e->count[i] ? UINT32_MAX :
	    e->count[i] + (uint32_t)n;
	e->touched = now;
}

long long
limits_count(struct limits *l, const char *kind, const char *key,
    long long window, int64_t now)
{
	char k[LIM_KEY_MAX];
	struct lim_ent *e;
	long long total = 0;

	make_key(k, kind, key);
	pthread_mutex_lock(&l->mu);
	if ((e = find(l, k)) != NULL)
		total = count_locked(e, window, now);
	pthread_mutex_unlock(&l->mu);
	return total;
}

void
limits_add(struct limits *l, const char *kind, const char *key, long long n,
    int64_t now)
{
	char k[LIM_KEY_MAX];
	struct lim_ent *e;

	if (n <= 0)
		return;
	make_key(k, kind, key);
	pthread_mutex_lock(&l->mu);
	if ((e = get_locked(l, k, now)) != NULL)
		add_locked(e, n, now);
	pthread_mutex_unlock(&l->mu);
}

int
limits_take(struct limits *l, const char *kind, const char *key,
    long long window, long long max, int64_t now)
{
	char k[LIM_KEY_MAX];
	struct lim_ent *e;
	int rc = -1;

	make_key(k, kind, key);
	pthread_mutex_lock(&l->mu);
	if ((e = get_locked(l, k, now)) != NULL &&
	    count_locked(e, window, now) < max) {
		add_locked(e, 1, now);
		rc = 0;
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}
