/*
 * directory.c - the directory: parsing and writing its four files,
 * editing under a lock, recursive expansion, the live copy a running
 * program reloads when the files change, and the delivery plan of one
 * message.  Formats and rules are in directory.h.
 *
 * Not here: password hashing (edgemailctl runs doveadm pw), Dovecot's own
 * view of the users file (it reads the same passwd-file itself).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/directory.h"
#include "lib/io.h"
#include "lib/log.h"

#define DIR_LINE_MAX	(64 * 1024)
#define DIR_FILE_MAX	(256 * 1024 * 1024)
#define QUOTA_PREFIX	"userdb_quota_rule=*:storage="

const char *const dir_admin_aliases[] = {
	"postmaster", "abuse", "admin", "root", "nobody", "dmarc-report", NULL
};

static const char *const file_names[DIR__NFILES] = {
	"domains", "users", "aliases", "groups"
};

/* ---- a string -> index map ------------------------------------------ */

struct map_ent {
	const char *key;	/* borrowed from the entry */
	size_t	 val;
};

struct map {
	struct map_ent *e;
	size_t	 cap;		/* power of two, or 0 */
	size_t	 n;
};

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void
map_clear(struct map *m)
{
	free(m->e);
	memset(m, 0, sizeof(*m));
}

static int
map_put(struct map *m, const char *key, size_t val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		struct map bigger;
		size_t j;

		bigger.cap = m->cap ? m->cap * 2 : 64;
		bigger.n = 0;
		if ((bigger.e = calloc(bigger.cap, sizeof(*bigger.e))) == NULL)
			return -1;
		for (j = 0; j < m->cap; j++)
			if (m->e[j].key != NULL)
				map_put(&bigger, m->e[j].key, m->e[j].val);
		free(m->e);
		*m = bigger;
	}
	i = (size_t)hash_str(key) & (m->cap - 1);
	while (m->e[i].key != NULL) {
		if (strcmp(m->e[i].key, key) == 0) {
			m->e[i].val = val;	/* the last entry wins */
			return 0;
		}
		i = (i + 1) & (m->cap - 1);
	}
	m->e[i].key = key;
	m->e[i].val = val;
	m->n++;
	return 0;
}

static int
map_get(const struct map *m, const char *key, size_t *val_r)
{
	size_t i;

	if (m->cap == 0)
		return -1;
	i = (size_t)hash_str(key) & (m->cap - 1);
	while (m->e[i].key != NULL) {
		if (strcmp(m->e[i].key, key) == 0) {
			*val_r = m->e[i].val;
			return 0;
		}
		i = (i + 1) & (m->cap - 1);
	}
	return -1;
}

/* ---- the parsed directory ------------------------------------------- */

struct dir {
	char	*path;
	struct dir_domain *domains;
	size_t	 ndomains;
	struct dir_user *users;
	size_t	 nusers;
	struct dir_list *lists[2];	/* aliases, groups */
	size_t	 nlists[2];
	char	*tail[DIR__NFILES];	/* comment lines after the last entry */
	int	 dirty[DIR__NFILES];
	struct map idx_domain, idx_user, idx_list[2], idx_userdom;
};

const char *
dir_file_name(enum dir_file f)
{
	return f < DIR__NFILES ? file_names[f] : "?";
}

static char *
dup_lower(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	size_t i;

	if (p == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		p[i] = (char)tolower((unsigned char)s[i]);
	p[n] = '\0';
	return p;
}

static char *
dup_n(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void
lower_into(const char *s, char *out, size_t outsz)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < outsz; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[i] = '\0';
}

static void
free_words(char **w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(w[i]);
	free(w);
}

static void
domain_clear(struct dir_domain *e)
{
	free(e->comment);
	free(e->name);
	free_words(e->words, e->nwords);
	memset(e, 0, sizeof(*e));
}

static void
user_clear(struct dir_user *e)
{
	size_t i;

	free(e->comment);
	free(e->name);
	free(e->pass);
	for (i = 0; i < 5; i++)
		free(e->mid[i]);
	free_words(e->extra, e->nextra);
	memset(e, 0, sizeof(*e));
}

static void
list_clear(struct dir_list *e)
{
	free(e->comment);
	free(e->src);
	free_words(e->targets, e->ntargets);
	memset(e, 0, sizeof(*e));
}

void
dir_free(struct dir **dp)
{
	struct dir *d;
	size_t i, k;

	if (dp == NULL || (d = *dp) == NULL)
		return;
	for (i = 0; i < d->ndomains; i++)
		domain_clear(&d->domains[i]);
	for (i = 0; i < d->nusers; i++)
		user_clear(&d->users[i]);
	for (k = 0; k < 2; k++) {
		for (i = 0; i < d->nlists[k]; i++)
			list_clear(&d->lists[k][i]);
		free(d->lists[k]);
		map_clear(&d->idx_list[k]);
	}
	for (i = 0; i < DIR__NFILES; i++)
		free(d->tail[i]);
	free(d->domains);
	free(d->users);
	map_clear(&d->idx_domain);
	map_clear(&d->idx_user);
	map_clear(&d->idx_userdom);
	free(d->path);
	free(d);
	*dp = NULL;
}

const char *
dir_path(const struct dir *d)
{
	return d->path;
}

static int
reindex(struct dir *d)
{
	size_t i, k;

	map_clear(&d->idx_domain);
	map_clear(&d->idx_user);
	map_clear(&d->idx_userdom);
	for (k = 0; k < 2; k++)
		map_clear(&d->idx_list[k]);
	for (i = 0; i < d->ndomains; i++)
		if (map_put(&d->idx_domain, d->domains[i].name, i) != 0)
			return -1;
	for (i = 0; i < d->nusers; i++) {
		const char *at = strrchr(d->users[i].name, '@');

		if (map_put(&d->idx_user, d->users[i].name, i) != 0)
			return -1;
		if (at != NULL && map_put(&d->idx_userdom, at + 1, i) != 0)
			return -1;
	}
	for (k = 0; k < 2; k++)
		for (i = 0; i < d->nlists[k]; i++)
			if (map_put(&d->idx_list[k], d->lists[k][i].src, i) != 0)
				return -1;
	return 0;
}

/* ---- validation ----------------------------------------------------- */

/* A domain name as we store it: LDH labels (or UTF-8), dots between. */
static int
domain_ok(const char *s)
{
	size_t n = strlen(s), i, label = 0;

	if (n == 0 || n > ADDR_DOMAIN_MAX || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!(isalnum(c) || c == '-' || c >= 0x80))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

/* A full address (local@domain); normalised lower case into out. */
static int
address_norm(const char *s, char *out, size_t outsz, const char **why)
{
	struct addr a;
	const char *err = NULL;
	size_t i;

	if (addr_parse(s, strlen(s), ADDR_ALLOW_UTF8, &a, &err) != 0) {
		*why = err ? err : "bad address";
		return -1;
	}
	if (addr_is_null(&a)) {
		*why = "empty address";
		return -1;
	}
	if (addr_format(&a, out, outsz) != 0) {
		*why = "address too long";
		return -1;
	}
	for (i = 0; out[i] != '\0'; i++) {
		/* The files are "address: ..." and "address a, b, c" lines
		 * with # comments: an address they cannot hold back would
		 * make the whole file unreadable (RFC 5321 allows these in
		 * quoted local parts, and '#' even unquoted). */
		if (strchr("\" \t,:#", out[i]) != NULL) {
			*why = "quotes, spaces, ',', ':' and '#' cannot be "
			    "stored in the directory";
			return -1;
		}
		out[i] = (char)tolower((unsigned char)out[i]);
	}
	return 0;
}

/* Does the address given as a target name `norm` (normalised)? */
static int
targets_name(const char *const *targets, size_t n, const char *norm)
{
	char t[ADDR_PATH_MAX + 1];
	const char *why;
	size_t i;

	for (i = 0; i < n; i++)
		if (address_norm(targets[i], t, sizeof(t), &why) == 0 &&
		    strcmp(t, norm) == 0)
			return 1;
	return 0;
}

/* An alias or group source: an address, or "@domain" (catch-all). */
static int
source_norm(const char *s, char *out, size_t outsz, const char **why)
{
	if (s[0] == '@') {
		if (!domain_ok(s + 1)) {
			*why = "bad domain in catch-all";
			return -1;
		}
		if (strlen(s) >= outsz) {
			*why = "too long";
			return -1;
		}
		lower_into(s, out, outsz);
		return 0;
	}
	return address_norm(s, out, outsz, why);
}

/* ---- reading -------------------------------------------------------- */

struct reader {
	const char *file;
	size_t	 lineno;
	char	*err;
	size_t	 errsz;
	struct buf comment;	/* pending comment lines */
};

static int
rd_fail(struct reader *r, const char *why, const char *what)
{
	snprintf(r->err, r->errsz, "%s:%zu: %s%s%s", r->file, r->lineno, why,
	    what ? ": " : "", what ? what : "");
	return -1;
}

/* Take the pending comment text (NULL when none). */
static char *
take_comment(struct reader *r)
{
	char *c;

	if (r->comment.len == 0)
		return NULL;
	c = strdup(buf_cstr(&r->comment));
	buf_reset(&r->comment);
	return c;
}

/* Split s at blanks (and commas when commas is set) into words. */
static int
split_words(const char *s, int commas, char ***words_r, size_t *n_r)
{
	char **w = NULL;
	size_t n = 0, cap = 0;

	for (;;) {
		size_t len;

		while (*s == ' ' || *s == '\t' || (commas && *s == ','))
			s++;
		if (*s == '\0')
			break;
		len = commas ? strcspn(s, " \t,") : strcspn(s, " \t");
		if (n == cap) {
			char **nw;

			cap = cap ? cap * 2 : 8;
			if ((nw = realloc(w, cap * sizeof(*w))) == NULL)
				goto fail;
			w = nw;
		}
		if ((w[n] = dup_n(s, len)) == NULL)
			goto fail;
		n++;
		s += len;
	}
	*words_r = w;
	*n_r = n;
	return 0;
fail:
	free_words(w, n);
	return -1;
}

static int
grow(void *arrp, size_t n, size_t elem)
{
	void **a = arrp;
	void *na;

	/* Room for 8, then doubled whenever n reaches a power of two (the
	 * capacity is always at least the next one). */
	if (n != 0 && (n < 8 || (n & (n - 1)) != 0))
		return 0;
	if ((na = realloc(*a, (n ? n * 2 : 8) * elem)) == NULL)
		return -1;
	*a = na;
	return 0;
}

static int
parse_domain_line(struct dir *d, struct reader *r, const char *line)
{
	struct dir_domain e;
	char **w;
	size_t n, i;

	memset(&e, 0, sizeof(e));
	if (split_words(line, 0, &w, &n) != 0)
		return rd_fail(r, "out of memory", NULL);
	if (!domain_ok(w[0])) {
		rd_fail(r, "bad domain name", w[0]);
		free_words(w, n);
		return -1;
	}
	for (i = 1; i < n; i++)
		if (strchr(w[i], '=') == NULL || w[i][0] == '=') {
			rd_fail(r, "expected key=value", w[i]);
			free_words(w, n);
			return -1;
		}
	e.name = dup_lower(w[0], strlen(w[0]));
	free(w[0]);
	memmove(w, w + 1, (n - 1) * sizeof(*w));
	e.words = w;
	e.nwords = n - 1;
	e.comment = take_comment(r);
	if (e.name == NULL || grow(&d->domains, d->ndomains, sizeof(e)) != 0) {
		domain_clear(&e);
		return rd_fail(r, "out of memory", NULL);
	}
	d->domains[d->ndomains++] = e;
	return 0;
}

static int
parse_user_line(struct dir *d, struct reader *r, const char *line)
{
	struct dir_user e;
	const char *f[7], *p = line, *why;
	size_t flen[7], i;
	char norm[ADDR_PATH_MAX + 1];

	memset(&e, 0, sizeof(e));
	for (i = 0; i < 7; i++) {
		const char *c = strchr(p, ':');

		f[i] = p;
		flen[i] = c ? (size_t)(c - p) : strlen(p);
		p = c ? c + 1 : p + strlen(p);
		if (c == NULL) {
			for (i++; i < 7; i++) {
				f[i] = p;
				flen[i] = 0;
			}
			break;
		}
	}
	/* p: the extra fields (everything after the seventh colon). */
	if (flen[0] == 0)
		return rd_fail(r, "empty user name", NULL);
	{
		char *name = dup_n(f[0], flen[0]);

		if (name == NULL)
			return rd_fail(r, "out of memory", NULL);
		if (address_norm(name, norm, sizeof(norm), &why) != 0) {
			rd_fail(r, why, name);
			free(name);
			return -1;
		}
		free(name);
	}
	e.name = strdup(norm);
	e.pass = dup_n(f[1], flen[1]);
	for (i = 0; i < 5; i++)
		e.mid[i] = dup_n(f[i + 2], flen[i + 2]);
	if (e.name == NULL || e.pass == NULL || e.mid[0] == NULL ||
	    e.mid[1] == NULL || e.mid[2] == NULL || e.mid[3] == NULL ||
	    e.mid[4] == NULL || split_words(p, 0, &e.extra, &e.nextra) != 0) {
		user_clear(&e);
		return rd_fail(r, "out of memory", NULL);
	}
	e.comment = take_comment(r);
	if (grow(&d->users, d->nusers, sizeof(e)) != 0) {
		user_clear(&e);
		return rd_fail(r, "out of memory", NULL);
	}
	d->users[d->nusers++] = e;
	return 0;
}

static int
check_targets(struct reader *r, char **t, size_t n)
{
	char norm[ADDR_PATH_MAX + 1];
	const char *why;
	size_t i;

	for (i = 0; i < n; i++)
		if (address_norm(t[i], norm, sizeof(norm), &why) != 0)
			return rd_fail(r, why, t[i]);
	return 0;
}

static int
parse_list_line(struct dir *d, int k, struct reader *r, const char *line)
{
	struct dir_list e, *prev;
	char **w, src[ADDR_PATH_MAX + 2];
	const char *why;
	size_t n, len;

	memset(&e, 0, sizeof(e));
	if (line[0] == ' ' || line[0] == '\t') {
		/* A continuation line: more targets of the entry above. */
		char **nw;

		if (d->nlists[k] == 0 || r->comment.len != 0)
			return rd_fail(r, "continuation line without an entry",
			    NULL);
		prev = &d->lists[k][d->nlists[k] - 1];
		if (split_words(line, 1, &w, &n) != 0)
			return rd_fail(r, "out of memory", NULL);
		if (check_targets(r, w, n) != 0 || (nw = realloc(prev->targets,
		    (prev->ntargets + n) * sizeof(*nw))) == NULL) {
			free_words(w, n);
			return -1;
		}
		memcpy(nw + prev->ntargets, w, n * sizeof(*w));
		prev->targets = nw;
		prev->ntargets += n;
		free(w);
		return 0;
	}
	len = strcspn(line, " \t");
	if (len > 0 && line[len - 1] == ':')
		len--;			/* "source: targets" (aliases(5) style) */
	if (len == 0 || len >= sizeof(src))
		return rd_fail(r, "bad source", NULL);
	memcpy(src, line, len);
	src[len] = '\0';
	{
		char norm[ADDR_PATH_MAX + 2];

		if (source_norm(src, norm, sizeof(norm), &why) != 0)
			return rd_fail(r, why, src);
		if ((e.src = strdup(norm)) == NULL)
			return rd_fail(r, "out of memory", NULL);
	}
	line += strcspn(line, " \t");
	if (split_words(line, 1, &e.targets, &e.ntargets) != 0) {
		list_clear(&e);
		return rd_fail(r, "out of memory", NULL);
	}
	if (e.ntargets == 0) {
		list_clear(&e);
		return rd_fail(r, "no target", src);
	}
	if (check_targets(r, e.targets, e.ntargets) != 0) {
		list_clear(&e);
		return -1;
	}
	e.comment = take_comment(r);
	if (grow(&d->lists[k], d->nlists[k], sizeof(e)) != 0) {
		list_clear(&e);
		return rd_fail(r, "out of memory", NULL);
	}
	d->lists[k][d->nlists[k]++] = e;
	return 0;
}

static int
load_file(struct dir *d, enum dir_file f, char *err, size_t errsz)
{
	char path[4096], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *fp;
	struct reader r;
	int rc = 0, fd;

	snprintf(path, sizeof(path), "%s/%s", d->path, file_names[f]);
	/* Not through a link: the directory is the service user's, and
	 * root running edgemailctl would read (and quote in its errors)
	 * whatever file such a link names. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || (fp = fdopen(fd, "r")) == NULL) {
		if (fd < 0 && errno == ENOENT)
			return 0;
		snprintf(err, errsz, "%s: %s", path, errno == ELOOP ?
		    "a symbolic link, not a file" : strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memset(&r, 0, sizeof(r));
	r.file = path;
	r.err = err;
	r.errsz = errsz;
	buf_init(&r.comment, DIR_FILE_MAX);
	while (rc == 0 && (n = getline(&line, &cap, fp)) >= 0) {
		const char *s = line;

		r.lineno++;
		if (n > DIR_LINE_MAX) {
			rc = rd_fail(&r, "line too long", NULL);
			break;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (strlen(line) != (size_t)n) {
			rc = rd_fail(&r, "NUL byte in line", NULL);
			break;
		}
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#') {
			if (buf_printf(&r.comment, "%s\n", line) != 0)
				rc = rd_fail(&r, "file too large", NULL);
			continue;
		}
		switch (f) {
		case DIR_DOMAINS:
			rc = parse_domain_line(d, &r, s);
			break;
		case DIR_USERS:
			rc = parse_user_line(d, &r, s);
			break;
		case DIR_ALIASES:
		case DIR_GROUPS:
			rc = parse_list_line(d, f == DIR_ALIASES ? 0 : 1, &r,
			    line);
			break;
		default:
			break;
		}
	}
	if (rc == 0 && ferror(fp)) {
		snprintf(err, errsz, "%s: read error", path);
		rc = -1;
	}
	if (rc == 0)
		d->tail[f] = take_comment(&r);
	buf_free(&r.comment);
	free(line);
	fclose(fp);
	return rc;
}

struct dir *
dir_load(const char *path, char *err, size_t errsz)
{
	struct dir *d;
	int f;

	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->path = strdup(path)) == NULL) {
		free(d);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	for (f = 0; f < DIR__NFILES; f++)
		if (load_file(d, (enum dir_file)f, err, errsz) != 0) {
			dir_free(&d);
			return NULL;
		}
	if (reindex(d) != 0) {
		dir_free(&d);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	return d;
}

/* ---- lookups ------------------------------------------------------------ */

const struct dir_domain *
dir_domain_get(const struct dir *d, const char *name)
{
	char key[ADDR_DOMAIN_MAX + 2];
	size_t i;

	lower_into(name, key, sizeof(key));
	return map_get(&d->idx_domain, key, &i) == 0 ? &d->domains[i] : NULL;
}

const struct dir_user *
dir_user_get(const struct dir *d, const char *addr)
{
	char key[ADDR_PATH_MAX + 2];
	size_t i;

	lower_into(addr, key, sizeof(key));
	return map_get(&d->idx_user, key, &i) == 0 ? &d->users[i] : NULL;
}

static const struct dir_list *
list_get(const struct dir *d, int k, const char *src)
{
	char key[ADDR_PATH_MAX + 2];
	size_t i;

	lower_into(src, key, sizeof(key));
	return map_get(&d->idx_list[k], key, &i) == 0 ? &d->lists[k][i] : NULL;
}

const struct dir_list *
dir_alias_get(const struct dir *d, const char *src)
{
	return list_get(d, 0, src);
}

const struct dir_list *
dir_group_get(const struct dir *d, const char *src)
{
	return list_get(d, 1, src);
}

int
dir_is_local_domain(const struct dir *d, const char *domain)
{
	char key[ADDR_DOMAIN_MAX + 2];
	size_t i;

	lower_into(domain, key, sizeof(key));
	return map_get(&d->idx_domain, key, &i) == 0 ||
	    map_get(&d->idx_userdom, key, &i) == 0;
}

size_t
dir_count(const struct dir *d, enum dir_file f)
{
	switch (f) {
	case DIR_DOMAINS:
		return d->ndomains;
	case DIR_USERS:
		return d->nusers;
	case DIR_ALIASES:
		return d->nlists[0];
	case DIR_GROUPS:
		return d->nlists[1];
	default:
		return 0;
	}
}

const struct dir_domain *
dir_domain_at(const struct dir *d, size_t i)
{
	return i < d->ndomains ? &d->domains[i] : NULL;
}

const struct dir_user *
dir_user_at(const struct dir *d, size_t i)
{
	return i < d->nusers ? &d->users[i] : NULL;
}

const struct dir_list *
dir_alias_at(const struct dir *d, size_t i)
{
	return i < d->nlists[0] ? &d->lists[0][i] : NULL;
}

const struct dir_list *
dir_group_at(const struct dir *d, size_t i)
{
	return i < d->nlists[1] ? &d->lists[1][i] : NULL;
}

const char *
dir_domain_attr(const struct dir_domain *dom, const char *key)
{
	size_t i, kl = strlen(key);

	for (i = 0; i < dom->nwords; i++)
		if (strncmp(dom->words[i], key, kl) == 0 &&
		    dom->words[i][kl] == '=')
			return dom->words[i] + kl + 1;
	return NULL;
}

int
dir_user_suspended(const struct dir_user *u)
{
	size_t i;

	for (i = 0; i < u->nextra; i++)
		if (strcmp(u->extra[i], "nologin") == 0)
			return 1;
	return 0;
}

const char *
dir_user_quota(const struct dir_user *u)
{
	size_t i, pl = strlen(QUOTA_PREFIX);

	for (i = 0; i < u->nextra; i++)
		if (strncmp(u->extra[i], QUOTA_PREFIX, pl) == 0)
			return u->extra[i] + pl;
	return NULL;
}

/* ---- editing ------------------------------------------------------------ */

int
dir_lock(const char *path, int *fd_r, char *err, size_t errsz)
{
	char lp[4096];
	int fd;

	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(lp, sizeof(lp), "%s/.lock", path);
	if ((fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0) {
		snprintf(err, errsz, "%s: %s", lp, strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX) != 0) {
		if (errno == EINTR)
			continue;
		snprintf(err, errsz, "%s: lock: %s", lp, strerror(errno));
		close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

void
dir_unlock(int *fdp)
{
	if (*fdp >= 0) {
		flock(*fdp, LOCK_UN);
		close(*fdp);
	}
	*fdp = -1;
}

static int
oom(char *err, size_t errsz)
{
	snprintf(err, errsz, "out of memory");
	return -1;
}

static ssize_t
find_domain(const struct dir *d, const char *name)
{
	const struct dir_domain *e = dir_domain_get(d, name);

	return e ? e - d->domains : -1;
}

static ssize_t
find_user(const struct dir *d, const char *addr)
{
	const struct dir_user *e = dir_user_get(d, addr);

	return e ? e - d->users : -1;
}

int
dir_domain_add(struct dir *d, const char *name, char *err, size_t errsz)
{
	struct dir_domain e;

	if (!domain_ok(name)) {
		snprintf(err, errsz, "bad domain name '%s'", name);
		return -1;
	}
	if (find_domain(d, name) >= 0) {
		snprintf(err, errsz, "domain %s exists", name);
		return -1;
	}
	memset(&e, 0, sizeof(e));
	if ((e.name = dup_lower(name, strlen(name))) == NULL ||
	    grow(&d->domains, d->ndomains, sizeof(e)) != 0) {
		free(e.name);
		return oom(err, errsz);
	}
	d->domains[d->ndomains++] = e;
	d->dirty[DIR_DOMAINS] = 1;
	return reindex(d) == 0 ? 0 : oom(err, errsz);
}

int
dir_domain_del(struct dir *d, const char *name, char *err, size_t errsz)
{
	ssize_t i = find_domain(d, name);

	if (i < 0) {
		snprintf(err, errsz, "no domain %s", name);
		return -1;
	}
	domain_clear(&d->domains[i]);
	memmove(&d->domains[i], &d->domains[i + 1],
	    (d->ndomains - (size_t)i - 1) * sizeof(*d->domains));
	d->ndomains--;
	d->dirty[DIR_DOMAINS] = 1;
	return reindex(d) == 0 ? 0 : oom(err, errsz);
}

/* Remove the word starting with prefix (if any); add `add` (if any). */
static int
words_replace(char ***wp, size_t *np, const char *prefix, const char *add)
{
	size_t i, pl = strlen(prefix);
	char **nw;

	for (i = 0; i < *np; i++)
		if (strncmp((*wp)[i], prefix, pl) == 0 &&
		    (prefix[pl - 1] == '=' || (*wp)[i][pl] == '\0')) {
			free((*wp)[i]);
			memmove(&(*wp)[i], &(*wp)[i + 1],
			    (*np - i - 1) * sizeof(**wp));
			(*np)--;
			i--;
		}
	if (add == NULL)
		return 0;
	if ((nw = realloc(*wp, (*np + 1) * sizeof(*nw))) == NULL)
		return -1;
	*wp = nw;
	if ((nw[*np] = strdup(add)) == NULL)
		return -1;
	(*np)++;
	return 0;
}

int
dir_domain_set(struct dir *d, const char *name, const char *key,
    const char *value, char *err, size_t errsz)
{
	ssize_t i = find_domain(d, name);
	char prefix[64], word[ADDR_PATH_MAX + 80];

	if (i < 0) {
		snprintf(err, errsz, "no domain %s", name);
		return -1;
	}
	if (strchr(key, '=') != NULL || strchr(key, ' ') != NULL ||
	    (value != NULL && strpbrk(value, " \t\n") != NULL)) {
		snprintf(err, errsz, "bad domain setting %s", key);
		return -1;
	}
	snprintf(prefix, sizeof(prefix), "%s=", key);
	snprintf(word, sizeof(word), "%s=%s", key, value ? value : "");
	if (words_replace(&d->domains[i].words, &d->domains[i].nwords, prefix,
	    value != NULL && value[0] != '\0' ? word : NULL) != 0)
		return oom(err, errsz);
	d->dirty[DIR_DOMAINS] = 1;
	return 0;
}

static int
pass_ok(const char *pass, char *err, size_t errsz)
{
	if (pass[0] != '{' || strchr(pass, '}') == NULL ||
	    strpbrk(pass, ": \t\r\n") != NULL) {
		snprintf(err, errsz, "password hash must be {SCHEME}hash "
		    "without ':' or blanks");
		return -1;
	}
	return 0;
}

static int
quota_ok(const char *q, char *err, size_t errsz)
{
	size_t i, n = strlen(q);

	if (n == 0 || n > 20)
		goto bad;
	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)q[i]))
			break;
	if (i == 0 || (i < n && (i != n - 1 || strchr("kKmMgGtT", q[i]) == NULL)))
		goto bad;
	return 0;
bad:
	snprintf(err, errsz, "bad quota '%s' (a number with an optional "
	    "k, M, G or T)", q);
	return -1;
}

int
dir_user_add(struct dir *d, const char *addr, const char *pass,
    const char *quota, char *err, size_t errsz)
{
	struct dir_user e;
	char norm[ADDR_PATH_MAX + 1], word[96];
	const char *why;
	size_t i;

	if (address_norm(addr, norm, sizeof(norm), &why) != 0) {
		snprintf(err, errsz, "%s: %s", addr, why);
		return -1;
	}
	/* Lookups cut the local part at '+' (the +detail of DESIGN 3,
	 * Dovecot's recipient_delimiter): such a mailbox would never get
	 * mail. */
	if (strchr(norm, '+') != NULL) {
		snprintf(err, errsz, "%s: a mailbox name cannot contain '+' "
		    "(the +detail separator)", addr);
		return -1;
	}
	if (find_domain(d, strrchr(norm, '@') + 1) < 0) {
		snprintf(err, errsz, "domain %s is not in the directory "
		    "(edgemailctl domain add)", strrchr(norm, '@') + 1);
		return -1;
	}
	if (find_user(d, norm) >= 0 || dir_alias_get(d, norm) != NULL ||
	    dir_group_get(d, norm) != NULL) {
		snprintf(err, errsz, "%s exists (%s)", norm,
		    find_user(d, norm) >= 0 ? "mailbox" :
		    dir_alias_get(d, norm) ? "alias" : "group");
		return -1;
	}
	if (pass_ok(pass, err, errsz) != 0 ||
	    (quota != NULL && quota_ok(quota, err, errsz) != 0))
		return -1;
	memset(&e, 0, sizeof(e));
	e.name = strdup(norm);
	e.pass = strdup(pass);
	for (i = 0; i < 5; i++)
		e.mid[i] = strdup("");
	if (quota != NULL) {
		snprintf(word, sizeof(word), "%s%s", QUOTA_PREFIX, quota);
		if (words_replace(&e.extra, &e.nextra, QUOTA_PREFIX, word) != 0)
			e.mid[4] = NULL;
	}
	if (e.name == NULL || e.pass == NULL || e.mid[4] == NULL ||
	    grow(&d->users, d->nusers, sizeof(e)) != 0) {
		user_clear(&e);
		return oom(err, errsz);
	}
	d->users[d->nusers++] = e;
	d->dirty[DIR_USERS] = 1;
	return reindex(d) == 0 ? 0 : oom(err, errsz);
}

int
dir_user_del(struct dir *d, const char *addr, char *err, size_t errsz)
{
	ssize_t i = find_user(d, addr);

	if (i < 0) {
		snprintf(err, errsz, "no mailbox %s", addr);
		return -1;
	}
	user_clear(&d->users[i]);
	memmove(&d->users[i], &d->users[i + 1],
	    (d->nusers - (size_t)i - 1) * sizeof(*d->users));
	d->nusers--;
	d->dirty[DIR_USERS] = 1;
	return reindex(d) == 0 ? 0 : oom(err, errsz);
}

int
dir_user_set_pass(struct dir *d, const char *addr, const char *pass,
    char *err, size_t errsz)
{
	ssize_t i = find_user(d, addr);
	char *p;

	if (i < 0) {
		snprintf(err, errsz, "no mailbox %s", addr);
		return -1;
	}
	if (pass_ok(pass, err, errsz) != 0)
		return -1;
	if ((p = strdup(pass)) == NULL)
		return oom(err, errsz);
	if (d->users[i].pass != NULL)
		explicit_bzero(d->users[i].pass, strlen(d->users[i].pass));
	free(d->users[i].pass);
	d->users[i].pass = p;
	d->dirty[DIR_USERS] = 1;
	return 0;
}

int
dir_user_set_quota(struct dir *d, const char *addr, const char *quota,
    char *err, size_t errsz)
{
	ssize_t i = find_user(d, addr);
	char word[96];

	if (i < 0) {
		snprintf(err, errsz, "no mailbox %s", addr);
		return -1;
	}
	if (quota != NULL && quota_ok(quota, err, errsz) != 0)
		return -1;
	snprintf(word, sizeof(word), "%s%s", QUOTA_PREFIX, quota ? quota : "");
	if (words_replace(&d->users[i].extra, &d->users[i].nextra, QUOTA_PREFIX,
	    quota ? word : NULL) != 0)
		return oom(err, errsz);
	d->dirty[DIR_USERS] = 1;
	return 0;
}

int
dir_user_set_suspended(struct dir *d, const char *addr, int on, char *err,
    size_t errsz)
{
	ssize_t i = find_user(d, addr);

	if (i < 0) {
		snprintf(err, errsz, "no mailbox %s", addr);
		return -1;
	}
	if (words_replace(&d->users[i].extra, &d->users[i].nextra, "nologin",
	    on ? "nologin" : NULL) != 0)
		return oom(err, errsz);
	d->dirty[DIR_USERS] = 1;
	return 0;
}

static int
list_has(const struct dir_list *l, const char *norm)
{
	char t[ADDR_PATH_MAX + 1];
	const char *why;
	size_t i;

	for (i = 0; i < l->ntargets; i++)
		if (address_norm(l->targets[i], t, sizeof(t), &why) == 0 &&
		    strcmp(t, norm) == 0)
			return 1;
	return 0;
}

int
dir_list_add(struct dir *d, enum dir_file f, const char *src,
    const char *const *targets, size_t n, char *err, size_t errsz)
{
	int k = f == DIR_ALIASES ? 0 : 1;
	char norm[ADDR_PATH_MAX + 2], t[ADDR_PATH_MAX + 1];
	const char *why, *dom;
	struct dir_list *l, e;
	size_t i;

	if (f != DIR_ALIASES && f != DIR_GROUPS)
		return -1;
	if (source_norm(src, norm, sizeof(norm), &why) != 0) {
		snprintf(err, errsz, "%s: %s", src, why);
		return -1;
	}
	if (k == 1 && norm[0] == '@') {
		snprintf(err, errsz, "a group needs a full address, not %s",
		    norm);
		return -1;
	}
	dom = norm[0] == '@' ? norm + 1 : strrchr(norm, '@') + 1;
	if (find_domain(d, dom) < 0) {
		snprintf(err, errsz, "domain %s is not in the directory", dom);
		return -1;
	}
	/* A mailbox may also be an alias of itself plus others ("keep a
	 * copy and forward": bob -> bob, bob@elsewhere). */
	if (norm[0] != '@' && ((find_user(d, norm) >= 0 &&
	    (k == 1 || !targets_name(targets, n, norm))) ||
	    list_get(d, 1 - k, norm) != NULL)) {
		snprintf(err, errsz, "%s exists as a %s", norm,
		    find_user(d, norm) >= 0 ? "mailbox" :
		    k == 0 ? "group" : "alias");
		return -1;
	}
	if (n == 0) {
		snprintf(err, errsz, "no target given");
		return -1;
	}
	for (i = 0; i < n; i++)
		if (address_norm(targets[i], t, sizeof(t), &why) != 0) {
			snprintf(err, errsz, "target %s: %s", targets[i], why);
			return -1;
		}
	l = (struct dir_list *)list_get(d, k, norm);
	if (l == NULL) {
		memset(&e, 0, sizeof(e));
		if ((e.src = strdup(norm)) == NULL ||
		    grow(&d->lists[k], d->nlists[k], sizeof(e)) != 0) {
			free(e.src);
			return oom(err, errsz);
		}
		d->lists[k][d->nlists[k]++] = e;
		l = &d->lists[k][d->nlists[k] - 1];
	}
	for (i = 0; i < n; i++) {
		char **nt;

		address_norm(targets[i], t, sizeof(t), &why);
		if (list_has(l, t))
			continue;
		if ((nt = realloc(l->targets, (l->ntargets + 1) *
		    sizeof(*nt))) == NULL)
			return oom(err, errsz);
		l->targets = nt;
		if ((nt[l->ntargets] = strdup(t)) == NULL)
			return oom(err, errsz);
		l->ntargets++;
	}
	d->dirty[f] = 1;
	return reindex(d) == 0 ? 0 : oom(err, errsz);
}

int
dir_list_del(struct dir *d, enum dir_file f, const char *src,
    const char *const *targets, size_t n, char *err, size_t errsz)
{
	int k = f == DIR_ALIASES ? 0 : 1;
	struct dir_list *l;
	char t[ADDR_PATH_MAX + 1], x[ADDR_PATH_MAX + 1];
	const char *why;
	size_t i, j;

	if (f != DIR_ALIASES && f != DIR_GROUPS)
		return -1;
	if ((l = (struct dir_list *)list_get(d, k, src)) == NULL) {
		snprintf(err, errsz, "no %s %s", k ? "group" : "alias", src);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (address_norm(targets[i], t, sizeof(t), &why) != 0 ||
		    !list_has(l, t)) {
			snprintf(err, errsz, "%s is not a target of %s",
			    targets[i], l->src);
			return -1;
		}
	}
	for (i = 0; i < n; i++) {
		address_norm(targets[i], t, sizeof(t), &why);
		for (j = 0; j < l->ntargets; j++)
			if (address_norm(l->targets[j], x, sizeof(x), &why) ==
			    0 && strcmp(x, t) == 0) {
				free(l->targets[j]);
				memmove(&l->targets[j], &l->targets[j + 1],
				    (l->ntargets - j - 1) * sizeof(char *));
				l->ntargets--;
				break;
			}
	}
	if (n == 0 || l->ntargets == 0) {
		size_t at = (size_t)(l - d->lists[k]);

		list_clear(l);
		memmove(&d->lists[k][at], &d->lists[k][at + 1],
		    (d->nlists[k] - at - 1) * sizeof(*l));
		d->nlists[k]--;
	}
	d->dirty[f] = 1;
	return reindex(d) == 0 ? 0 : oom(err, errsz);
}

/* ---- writing ------------------------------------------------------------ */

static int
serialize(const struct dir *d, enum dir_file f, struct buf *b)
{
	size_t i, j, k;
	int rc = 0;

	switch (f) {
	case DIR_DOMAINS:
		for (i = 0; i < d->ndomains; i++) {
			const struct dir_domain *e = &d->domains[i];

			rc |= buf_puts(b, e->comment ? e->comment : "");
			rc |= buf_puts(b, e->name);
			for (j = 0; j < e->nwords; j++)
				rc |= buf_printf(b, " %s", e->words[j]);
			rc |= buf_putc(b, '\n');
		}
		break;
	case DIR_USERS:
		for (i = 0; i < d->nusers; i++) {
			const struct dir_user *e = &d->users[i];

			rc |= buf_puts(b, e->comment ? e->comment : "");
			rc |= buf_printf(b, "%s:%s", e->name, e->pass);
			for (j = 0; j < 5; j++)
				rc |= buf_printf(b, ":%s", e->mid[j]);
			rc |= buf_putc(b, ':');
			for (j = 0; j < e->nextra; j++)
				rc |= buf_printf(b, "%s%s", j ? " " : "",
				    e->extra[j]);
			rc |= buf_putc(b, '\n');
		}
		break;
	case DIR_ALIASES:
	case DIR_GROUPS:
		k = f == DIR_ALIASES ? 0 : 1;
		for (i = 0; i < d->nlists[k]; i++) {
			const struct dir_list *e = &d->lists[k][i];

			rc |= buf_puts(b, e->comment ? e->comment : "");
			rc |= buf_puts(b, e->src);
			for (j = 0; j < e->ntargets; j++)
				rc |= buf_printf(b, "%s%s", j ? ", " : " ",
				    e->targets[j]);
			rc |= buf_putc(b, '\n');
		}
		break;
	default:
		break;
	}
	if (d->tail[f] != NULL)
		rc |= buf_puts(b, d->tail[f]);
	return rc ? -1 : 0;
}

/* Replace dir/name with data: temp file, fsync, rename, fsync dir.  An
 * existing file's owner and mode are kept.  A new one gets defmode, and
 * its group may read it too when the directory is open to its group and
 * closed to others: that is how Dovecot's auth, in dovecot_group, reads
 * the users file (0640) of a directory the service user owns (0750,
 * group dovecot_group), while in a 0755 directory it stays 0600. */
static int
write_atomic(const char *dir, const char *name, const char *data, size_t len,
    mode_t defmode, char *err, size_t errsz)
{
	char path[4096], tmp[4200];
	struct stat st, dst;
	int fd, dfd, have, saved;
	mode_t mode;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.%ld", dir, name, (long)getpid());
	/* A link in its place is not "the file" whose owner and mode to
	 * keep: rename replaces it with a file of the directory's owner. */
	have = lstat(path, &st) == 0 && S_ISREG(st.st_mode);
	if (stat(dir, &dst) != 0) {
		snprintf(err, errsz, "%s: %s", dir, strerror(errno));
		return -1;
	}
	mode = have ? (st.st_mode & 07777) : defmode;
	if (!have && (dst.st_mode & (S_IRGRP | S_IROTH)) == S_IRGRP)
		mode |= S_IRGRP;
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    mode);
	if (fd < 0) {
		snprintf(err, errsz, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) != 0)		/* whatever the umask */
		goto fail;
	if (have) {
		if (fchown(fd, st.st_uid, st.st_gid) != 0 && errno != EPERM)
			goto fail;
	} else if (geteuid() == 0) {
		/* A new file belongs to whoever owns the directory (the
		 * service user), not to root running edgemailctl. */
		if (fchown(fd, dst.st_uid, dst.st_gid) != 0)
			goto fail;
	}
	if (io_write_all(fd, data, len) != 0)
		goto fail;
	/*
	 * Dovecot notices a changed passwd-file by its mtime in whole
	 * seconds and its size: a new password hash of the same length
	 * written within the second of the last change would go unseen.
	 * So the new file never has the old file's mtime second.
	 */
	if (have) {
		struct timespec ts[2];

		clock_gettime(CLOCK_REALTIME, &ts[0]);
		ts[1] = ts[0];
		if (ts[1].tv_sec <= st.st_mtim.tv_sec) {
			ts[1].tv_sec = st.st_mtim.tv_sec + 1;
			ts[1].tv_nsec = 0;
			if (futimens(fd, ts) != 0)
				goto fail;
		}
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	snprintf(err, errsz, "%s: %s", path, strerror(saved));
	return -1;
}

int
dir_save(struct dir *d, char *err, size_t errsz)
{
	int f;

	if (mkdir(d->path, 0755) != 0 && errno != EEXIST) {
		snprintf(err, errsz, "%s: %s", d->path, strerror(errno));
		return -1;
	}
	for (f = 0; f < DIR__NFILES; f++) {
		struct buf b;
		int rc;

		if (!d->dirty[f])
			continue;
		buf_init(&b, DIR_FILE_MAX);
		if (serialize(d, (enum dir_file)f, &b) != 0) {
			buf_free(&b);
			return oom(err, errsz);
		}
		rc = write_atomic(d->path, file_names[f], buf_cstr(&b), b.len,
		    f == DIR_USERS ? 0600 : 0644, err, errsz);
		if (b.data != NULL)
			explicit_bzero(b.data, b.len);
		buf_free(&b);
		if (rc != 0)
			return -1;
		d->dirty[f] = 0;
	}
	return 0;
}

/* ---- expansion ---------------------------------------------------------- */

struct xctx {
	const struct dir *d;
	size_t	 max_targets;
	struct dir_expansion *x;
	char	 path[DIR_MAX_DEPTH + 2][ADDR_PATH_MAX + 2];
	size_t	 depth;
	int	 fatal;		/* x->reply holds a refusal for the whole */
	int	 problem;	/* first per-target problem in x->reply */
	int	 oom;
};

static int
strv_add(char ***vp, size_t *np, const char *s)
{
	char **nv;

	if ((nv = realloc(*vp, (*np + 1) * sizeof(*nv))) == NULL)
		return -1;
	*vp = nv;
	if ((nv[*np] = strdup(s)) == NULL)
		return -1;
	(*np)++;
	return 0;
}

static ssize_t
strv_find(char **v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return (ssize_t)i;
	return -1;
}

static int
strv_has(char **v, size_t n, const char *s)
{
	return strv_find(v, n, s) >= 0;
}

static void
x_fatal(struct xctx *c, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
x_fatal(struct xctx *c, int code, const char *enh, const char *fmt, ...)
{
	va_list ap;
	char text[sizeof(c->x->reply.text)];

	if (c->fatal)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	reply_set(&c->x->reply, code, enh, "%s", text);
	c->fatal = 1;
}

/* A target that cannot be delivered: remembered (the first one becomes
 * the reply when nothing else is delivered) and noted for the logs. */
static void
x_problem(struct xctx *c, int code, const char *enh, const char *addr,
    const char *what)
{
	char note[ADDR_PATH_MAX + 64];

	if (!c->problem && !c->fatal) {
		reply_set(&c->x->reply, code, enh, "<%s>: %s", addr, what);
		c->problem = 1;
	}
	snprintf(note, sizeof(note), "%s (%s)", addr, what);
	if (strv_add(&c->x->notes, &c->x->nnotes, note) != 0)
		c->oom = 1;
}

static int
x_count(struct xctx *c)
{
	if (c->x->nmailbox + c->x->nforward >= DIR_MAX_TARGETS) {
		x_fatal(c, 550, "5.2.4", "expansion gives more than %d "
		    "targets", DIR_MAX_TARGETS);
		return -1;
	}
	return 0;
}

static void x_expand(struct xctx *c, const char *addr, int top);

/* The path so far, for the loop message: "a -> b -> c". */
static void
x_path_text(const struct xctx *c, const char *last, char *out, size_t outsz)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < c->depth && o < outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, "%s -> ", c->path[i]);
	if (o < outsz)
		snprintf(out + o, outsz - o, "%s", last);
}

static void
x_list(struct xctx *c, const struct dir_list *l, const char *self,
    const char *kind)
{
	size_t i;

	if (l->ntargets > c->max_targets) {
		x_fatal(c, 550, "5.2.4", "%s %s has %zu targets, more than "
		    "the limit of %zu (max_group_targets)", kind, l->src,
		    l->ntargets, c->max_targets);
		return;
	}
	if (c->depth >= DIR_MAX_DEPTH) {
		char p[200];

		x_path_text(c, l->src, p, sizeof(p));
		x_fatal(c, 550, "5.4.6", "alias expansion deeper than %d "
		    "levels: %s", DIR_MAX_DEPTH, p);
		return;
	}
	snprintf(c->path[c->depth], sizeof(c->path[0]), "%s", l->src);
	c->depth++;
	for (i = 0; i < l->ntargets && !c->fatal && !c->oom; i++) {
		char t[ADDR_PATH_MAX + 1];
		const char *why;
		const struct dir_user *u;

		if (address_norm(l->targets[i], t, sizeof(t), &why) != 0) {
			x_problem(c, 550, "5.1.3", l->targets[i], why);
			continue;
		}
		/* An alias that names itself delivers to its own mailbox. */
		if (self != NULL && strcmp(t, self) == 0 &&
		    (u = dir_user_get(c->d, t)) != NULL) {
			if (dir_user_suspended(u)) {
				x_problem(c, 550, "5.2.1", t,
				    "mailbox disabled");
				continue;
			}
			if (!strv_has(c->x->mailboxes, c->x->nmailbox, t) &&
			    (x_count(c) != 0 || strv_add(&c->x->mailboxes,
			    &c->x->nmailbox, t) != 0))
				c->oom |= !c->fatal;
			continue;
		}
		x_expand(c, t, 0);
	}
	c->depth--;
}

static void
x_expand(struct xctx *c, const char *addr, int top)
{
	struct addr a;
	const char *err = NULL, *dom;
	char full[ADDR_PATH_MAX + 2], key[ADDR_PATH_MAX + 2];
	char catchall[ADDR_DOMAIN_MAX + 2], p[200];
	const struct dir_list *l;
	const struct dir_user *u;
	size_t i;

	if (addr_parse(addr, strlen(addr), ADDR_ALLOW_UTF8, &a, &err) != 0 ||
	    addr_is_null(&a)) {
		if (top)
			x_fatal(c, 550, "5.1.3", "<%s>: bad address: %s", addr,
			    err ? err : "empty");
		else
			x_problem(c, 550, "5.1.3", addr, err ? err : "empty");
		return;
	}
	addr_format(&a, full, sizeof(full));
	lower_into(full, full, sizeof(full));
	addr_lookup_key(&a, key, sizeof(key));
	dom = a.domain;

	if (!dir_is_local_domain(c->d, dom)) {
		if (top) {
			x_fatal(c, 550, "5.1.2", "<%s>: domain %s is not "
			    "served here", full, dom);
			return;
		}
		if (!strv_has(c->x->forwards, c->x->nforward, full) &&
		    (x_count(c) != 0 || strv_add(&c->x->forwards,
		    &c->x->nforward, full) != 0))
			c->oom |= !c->fatal;
		return;
	}
	/* On the path already: a loop. */
	for (i = 0; i < c->depth; i++)
		if (strcmp(c->path[i], key) == 0 ||
		    strcmp(c->path[i], full) == 0) {
			x_path_text(c, full, p, sizeof(p));
			x_fatal(c, 550, "5.4.6", "alias loop: %s", p);
			return;
		}
	if ((l = dir_alias_get(c->d, full)) != NULL ||
	    (l = dir_alias_get(c->d, key)) != NULL) {
		x_list(c, l, key, "alias");
		return;
	}
	if ((l = dir_group_get(c->d, key)) != NULL) {
		x_list(c, l, key, "group");
		return;
	}
	if ((u = dir_user_get(c->d, key)) != NULL) {
		if (dir_user_suspended(u)) {
			if (top)
				x_fatal(c, 550, "5.2.1", "<%s>: mailbox "
				    "disabled", full);
			else
				x_problem(c, 550, "5.2.1", key,
				    "mailbox disabled");
			return;
		}
		/* Keep the +detail of an envelope recipient for Sieve. */
		for (i = 0; i < c->x->nmailbox; i++) {
			char k2[ADDR_PATH_MAX + 2];
			struct addr b;

			if (addr_parse(c->x->mailboxes[i],
			    strlen(c->x->mailboxes[i]), ADDR_ALLOW_UTF8, &b,
			    &err) == 0) {
				addr_lookup_key(&b, k2, sizeof(k2));
				if (strcmp(k2, key) == 0)
					return;		/* a duplicate */
			}
		}
		if (x_count(c) != 0 || strv_add(&c->x->mailboxes,
		    &c->x->nmailbox, top ? full : key) != 0)
			c->oom |= !c->fatal;
		return;
	}
	snprintf(catchall, sizeof(catchall), "@%s", dom);
	if ((l = dir_alias_get(c->d, catchall)) != NULL) {
		for (i = 0; i < c->depth; i++)
			if (strcmp(c->path[i], catchall) == 0) {
				/* The catch-all's own target does not exist. */
				x_problem(c, 550, "5.1.1", full, "no such user "
				    "(target of the catch-all)");
				return;
			}
		x_list(c, l, NULL, "catch-all");
		return;
	}
	if (top)
		x_fatal(c, 550, "5.1.1", "<%s>: no such user here", full);
	else
		x_problem(c, 550, "5.1.1", full, "no such user");
}

int
dir_expand(const struct dir *d, const char *addr, size_t max_targets,
    int top, struct dir_expansion *x)
{
	struct xctx *c;

	memset(x, 0, sizeof(*x));
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->d = d;
	c->max_targets = max_targets ? max_targets : DIR_DEFAULT_GROUP_MAX;
	c->x = x;
	x_expand(c, addr, top);
	if (c->oom) {
		free(c);
		dir_expansion_free(x);
		return -1;
	}
	if (c->fatal) {
		size_t i;

		/* Nothing of a refused expansion is delivered. */
		for (i = 0; i < x->nmailbox; i++)
			free(x->mailboxes[i]);
		for (i = 0; i < x->nforward; i++)
			free(x->forwards[i]);
		free(x->mailboxes);
		free(x->forwards);
		x->mailboxes = x->forwards = NULL;
		x->nmailbox = x->nforward = 0;
	} else if (x->nmailbox > 0 || x->nforward > 0) {
		reply_set(&x->reply, 250, "2.1.5", "<%s>: ok", addr);
	} else if (!c->problem) {
		reply_set(&x->reply, 550, "5.1.1", "<%s>: no such user here",
		    addr);
	}
	free(c);
	return 0;
}

void
dir_expansion_free(struct dir_expansion *x)
{
	size_t i;

	for (i = 0; i < x->nmailbox; i++)
		free(x->mailboxes[i]);
	for (i = 0; i < x->nforward; i++)
		free(x->forwards[i]);
	for (i = 0; i < x->nnotes; i++)
		free(x->notes[i]);
	free(x->mailboxes);
	free(x->forwards);
	free(x->notes);
	memset(x, 0, sizeof(*x));
}

/* ---- the live directory -------------------------------------------------- */

struct stamp {
	int	 exists;
	dev_t	 dev;
	ino_t	 ino;
	off_t	 size;
	struct timespec mtime;
	struct timespec ctime;
};

struct directory {
	char	*path;
	size_t	 max_targets;
	pthread_rwlock_t lock;
	struct dir *cur;		/* under lock */
	struct stamp stamps[DIR__NFILES];	/* under check_mu */
	pthread_mutex_t check_mu;
	_Atomic long long last_check_ms;
	int	 warned;
};

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
take_stamps(const char *path, struct stamp *s)
{
	char p[4096];
	struct stat st;
	int f;

	for (f = 0; f < DIR__NFILES; f++) {
		memset(&s[f], 0, sizeof(s[f]));
		snprintf(p, sizeof(p), "%s/%s", path, file_names[f]);
		if (stat(p, &st) != 0)
			continue;
		s[f].exists = 1;
		s[f].dev = st.st_dev;
		s[f].ino = st.st_ino;
		s[f].size = st.st_size;
		s[f].mtime = st.st_mtim;
		s[f].ctime = st.st_ctim;
	}
}

static int
stamps_differ(const struct stamp *a, const struct stamp *b)
{
	int f;

	for (f = 0; f < DIR__NFILES; f++)
		if (a[f].exists != b[f].exists || a[f].dev != b[f].dev ||
		    a[f].ino != b[f].ino || a[f].size != b[f].size ||
		    a[f].mtime.tv_sec != b[f].mtime.tv_sec ||
		    a[f].mtime.tv_nsec != b[f].mtime.tv_nsec ||
		    a[f].ctime.tv_sec != b[f].ctime.tv_sec ||
		    a[f].ctime.tv_nsec != b[f].ctime.tv_nsec)
			return 1;
	return 0;
}

struct directory *
directory_open(const char *path, size_t max_group_targets, char *err,
    size_t errsz)
{
	struct directory *dr;

	if ((dr = calloc(1, sizeof(*dr))) == NULL ||
	    (dr->path = strdup(path)) == NULL) {
		free(dr);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	dr->max_targets = max_group_targets ? max_group_targets :
	    DIR_DEFAULT_GROUP_MAX;
	pthread_rwlock_init(&dr->lock, NULL);
	pthread_mutex_init(&dr->check_mu, NULL);
	take_stamps(path, dr->stamps);
	if ((dr->cur = dir_load(path, err, errsz)) == NULL) {
		directory_free(&dr);
		return NULL;
	}
	atomic_store(&dr->last_check_ms, mono_ms());
	return dr;
}

void
directory_free(struct directory **dp)
{
	struct directory *dr;

	if (dp == NULL || (dr = *dp) == NULL)
		return;
	dir_free(&dr->cur);
	pthread_rwlock_destroy(&dr->lock);
	pthread_mutex_destroy(&dr->check_mu);
	free(dr->path);
	free(dr);
	*dp = NULL;
}

int
directory_refresh(struct directory *dr, int force)
{
	struct stamp now[DIR__NFILES];
	long long t = mono_ms();
	struct dir *nd, *old;
	char err[512], q[600];
	int reloaded = 0;

	if (!force && t - atomic_load(&dr->last_check_ms) < 1000)
		return 0;
	pthread_mutex_lock(&dr->check_mu);
	atomic_store(&dr->last_check_ms, t);
	take_stamps(dr->path, now);
	if (stamps_differ(now, dr->stamps)) {
		if ((nd = dir_load(dr->path, err, sizeof(err))) == NULL) {
			/* Keep serving the last good copy; say so once per
			 * change. */
			log_errx("event=directory_error path=%s error=%s",
			    dr->path, log_quote(err, q, sizeof(q)));
		} else {
			pthread_rwlock_wrlock(&dr->lock);
			old = dr->cur;
			dr->cur = nd;
			pthread_rwlock_unlock(&dr->lock);
			dir_free(&old);
			reloaded = 1;
			log_info("event=directory_reloaded path=%s domains=%zu "
			    "users=%zu aliases=%zu groups=%zu", dr->path,
			    nd->ndomains, nd->nusers, nd->nlists[0],
			    nd->nlists[1]);
		}
		memcpy(dr->stamps, now, sizeof(now));
	}
	pthread_mutex_unlock(&dr->check_mu);
	return reloaded;
}

int
directory_is_local_domain(struct directory *dr, const char *domain)
{
	int local;

	directory_refresh(dr, 0);
	pthread_rwlock_rdlock(&dr->lock);
	local = dir_is_local_domain(dr->cur, domain);
	pthread_rwlock_unlock(&dr->lock);
	return local;
}

int
directory_in_use(struct directory *dr)
{
	int used;

	directory_refresh(dr, 0);
	pthread_rwlock_rdlock(&dr->lock);
	used = dr->cur->ndomains > 0 || dr->cur->nusers > 0;
	pthread_rwlock_unlock(&dr->lock);
	return used;
}

/* Index of s in the plan's LMTP list, added when new; -1 out of memory. */
static ssize_t
plan_lmtp_index(struct dir_plan *p, const char *s)
{
	size_t i;

	for (i = 0; i < p->nlmtp; i++)
		if (strcmp(p->lmtp[i], s) == 0)
			return (ssize_t)i;
	if (strv_add(&p->lmtp, &p->nlmtp, s) != 0)
		return -1;
	return (ssize_t)(p->nlmtp - 1);
}

/* The archive mailbox of the domain of a delivered mailbox, if any. */
static const char *
archive_of(const struct dir *d, const char *mailbox)
{
	const char *at = strrchr(mailbox, '@');
	const struct dir_domain *dom;

	if (at == NULL || (dom = dir_domain_get(d, at + 1)) == NULL)
		return NULL;
	return dir_domain_attr(dom, "archive");
}

int
directory_plan(struct directory *dr, const char *id, const char *const *rcpts,
    size_t nrcpt, struct dir_plan *p)
{
	const struct dir *d;
	char **archives = NULL, q[600];
	size_t narch = 0, i, j;
	int rc = -1, retried = 0;

	memset(p, 0, sizeof(*p));
	if ((p->rcpt = calloc(nrcpt ? nrcpt : 1, sizeof(*p->rcpt))) == NULL)
		return -1;
	p->nrcpt = nrcpt;
	directory_refresh(dr, 0);
again:
	pthread_rwlock_rdlock(&dr->lock);
	d = dr->cur;
	for (i = 0; i < nrcpt; i++) {
		struct dir_expansion x;
		struct dir_plan_rcpt *pr = &p->rcpt[i];

		if (dir_expand(d, rcpts[i], dr->max_targets, 1, &x) != 0)
			goto out;
		if (x.reply.cls != REPLY_OK && !retried) {
			/* A miss may be a change younger than a second (a
			 * mailbox just added): look at the files now. */
			dir_expansion_free(&x);
			pthread_rwlock_unlock(&dr->lock);
			retried = 1;
			directory_refresh(dr, 1);
			for (j = 0; j < i; j++) {
				free(p->rcpt[j].lmtp);
				free(p->rcpt[j].fwd);
				memset(&p->rcpt[j], 0, sizeof(p->rcpt[j]));
			}
			for (j = 0; j < p->nlmtp; j++)
				free(p->lmtp[j]);
			for (j = 0; j < p->nforward; j++)
				free(p->forwards[j]);
			free(p->lmtp);
			free(p->forwards);
			p->lmtp = p->forwards = NULL;
			p->nlmtp = p->nforward = 0;
			for (j = 0; j < narch; j++)
				free(archives[j]);
			free(archives);
			archives = NULL;
			narch = 0;
			goto again;
		}
		pr->reply = x.reply;
		for (j = 0; id != NULL && j < x.nnotes; j++)
			log_info("id=%s event=directory_skip rcpt=%s target=%s",
			    id, rcpts[i], log_quote(x.notes[j], q, sizeof(q)));
		if (x.reply.cls != REPLY_OK) {
			if (id != NULL)
				log_info("id=%s event=directory_refused "
				    "rcpt=%s code=%d enhanced=%s text=%s", id,
				    rcpts[i], x.reply.code, x.reply.enhanced,
				    log_quote(x.reply.text, q, sizeof(q)));
			dir_expansion_free(&x);
			continue;
		}
		if ((pr->lmtp = calloc(x.nmailbox ? x.nmailbox : 1,
		    sizeof(*pr->lmtp))) == NULL) {
			dir_expansion_free(&x);
			goto out;
		}
		for (j = 0; j < x.nmailbox; j++) {
			ssize_t k = plan_lmtp_index(p, x.mailboxes[j]);
			const char *arch;

			if (k < 0) {
				dir_expansion_free(&x);
				goto out;
			}
			pr->lmtp[pr->nlmtp++] = (size_t)k;
			arch = archive_of(d, x.mailboxes[j]);
			if (arch != NULL && strcmp(arch, x.mailboxes[j]) != 0 &&
			    !strv_has(archives, narch, arch) &&
			    strv_add(&archives, &narch, arch) != 0) {
				dir_expansion_free(&x);
				goto out;
			}
		}
		/* Forwards (targets outside our domains) go to the relay's
		 * outbound spool; the caller does that (api/directory.c). */
		if (x.nforward > 0 && (pr->fwd = calloc(x.nforward,
		    sizeof(*pr->fwd))) == NULL) {
			dir_expansion_free(&x);
			goto out;
		}
		for (j = 0; j < x.nforward; j++) {
			ssize_t k = strv_find(p->forwards, p->nforward,
			    x.forwards[j]);

			if (k < 0) {
				if (strv_add(&p->forwards, &p->nforward,
				    x.forwards[j]) != 0) {
					dir_expansion_free(&x);
					goto out;
				}
				k = (ssize_t)p->nforward - 1;
			}
			pr->fwd[pr->nforward++] = (size_t)k;
		}
		if (id == NULL) {
			/* A plan made ahead: no log lines. */
		} else if (x.nmailbox == 0) {
			log_info("id=%s event=expanded rcpt=%s forwards=%zu", id,
			    rcpts[i], x.nforward);
		} else if (x.nmailbox > 1 || strcmp(x.mailboxes[0],
		    rcpts[i]) != 0) {
			struct buf b;

			buf_init(&b, 4096);
			for (j = 0; j < x.nmailbox; j++)
				buf_printf(&b, "%s%s", j ? "," : "",
				    x.mailboxes[j]);
			log_info("id=%s event=expanded rcpt=%s mailboxes=%s", id,
			    rcpts[i], log_quote(buf_cstr(&b), q, sizeof(q)));
			buf_free(&b);
		}
		dir_expansion_free(&x);
	}
	/* Archive copies go last, once each, unless the archive is also a
	 * recipient in its own right. */
	for (j = 0; j < narch; j++) {
		const struct dir_user *u = dir_user_get(d, archives[j]);

		if (u == NULL || dir_user_suspended(u)) {
			if (id != NULL)
				log_warnx("id=%s event=archive_missing "
				    "mailbox=%s", id, archives[j]);
			continue;
		}
		if (strv_has(p->lmtp, p->nlmtp, archives[j]))
			continue;
		if (strv_add(&p->lmtp, &p->nlmtp, archives[j]) != 0)
			goto out;
		p->narchive++;
	}
	rc = 0;
out:
	pthread_rwlock_unlock(&dr->lock);
	for (j = 0; j < narch; j++)
		free(archives[j]);
	free(archives);
	if (rc != 0)
		dir_plan_free(p);
	return rc;
}

void
dir_plan_outcome(const struct dir_plan *p, size_t i,
    const struct reply *lmtp_replies, const struct reply *fwd_replies,
    struct reply *out)
{
	const struct dir_plan_rcpt *pr = &p->rcpt[i];
	const struct reply *ok = NULL, *temp = NULL, *perm = NULL;
	size_t j, n = pr->nlmtp + (fwd_replies ? pr->nforward : 0);

	if (pr->reply.cls != REPLY_OK || n == 0) {
		*out = pr->reply;
		return;
	}
	for (j = 0; j < n; j++) {
		const struct reply *r = j < pr->nlmtp ?
		    &lmtp_replies[pr->lmtp[j]] :
		    &fwd_replies[pr->fwd[j - pr->nlmtp]];

		if (r->cls == REPLY_TEMP && temp == NULL)
			temp = r;
		else if (r->cls == REPLY_OK && ok == NULL)
			ok = r;
		else if (r->cls == REPLY_PERM && perm == NULL)
			perm = r;
	}
	*out = temp ? *temp : ok ? *ok : *perm;
}

void
dir_plan_free(struct dir_plan *p)
{
	size_t i;

	for (i = 0; i < p->nrcpt && p->rcpt != NULL; i++) {
		free(p->rcpt[i].lmtp);
		free(p->rcpt[i].fwd);
	}
	free(p->rcpt);
	for (i = 0; i < p->nlmtp; i++)
		free(p->lmtp[i]);
	free(p->lmtp);
	for (i = 0; i < p->nforward; i++)
		free(p->forwards[i]);
	free(p->forwards);
	memset(p, 0, sizeof(*p));
}
