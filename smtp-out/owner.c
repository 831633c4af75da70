/*
 * owner.c - the relay's view of the directory (lib/directory.h): which
 * domains are ours, which addresses a user may send as, whether a local
 * recipient exists, and where a local recipient's mail goes.
 *
 * It keeps its own parsed snapshot (dir_load) behind a read-write lock
 * and loads a new one when a file of the directory changed (checked at
 * most once a second), so edgemailctl's changes apply without a restart;
 * a directory that fails to parse leaves the last good snapshot in use.
 *
 * A user owns: their mailbox address, any +detail of it, and every
 * address whose expansion delivers to their mailbox through aliases
 * (including a domain catch-all that names them).  Distribution lists
 * (groups) give no right to send as the list.
 */
#include <sys/stat.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/directory.h"
#include "lib/log.h"
#include "smtp-out/submit.h"

#define OWNER_MAX_TARGETS	DIR_DEFAULT_GROUP_MAX

struct file_id {
	dev_t	 dev;
	ino_t	 ino;
	off_t	 size;
	struct timespec mtime;
	int	 exists;
};

struct owner {
	char	 path[PATH_MAX / 2];
	pthread_rwlock_t lock;
	pthread_mutex_t check_mu;
	struct dir *dir;		/* NULL: nothing loaded yet */
	struct file_id ids[DIR__NFILES];
	time_t	 checked;
};

static void
file_ids(const char *path, struct file_id ids[DIR__NFILES])
{
	char p[PATH_MAX];
	struct stat st;
	int f;

	memset(ids, 0, sizeof(struct file_id) * DIR__NFILES);
	for (f = 0; f < DIR__NFILES; f++) {
		snprintf(p, sizeof(p), "%s/%s", path, dir_file_name((enum dir_file)f));
		if (stat(p, &st) != 0)
			continue;
		ids[f].exists = 1;
		ids[f].dev = st.st_dev;
		ids[f].ino = st.st_ino;
		ids[f].size = st.st_size;
		ids[f].mtime = st.st_mtim;
	}
}

static int
ids_equal(const struct file_id *a, const struct file_id *b)
{
	int f;

	for (f = 0; f < DIR__NFILES; f++)
		if (a[f].exists != b[f].exists || a[f].dev != b[f].dev ||
		    a[f].ino != b[f].ino || a[f].size != b[f].size ||
		    a[f].mtime.tv_sec != b[f].mtime.tv_sec ||
		    a[f].mtime.tv_nsec != b[f].mtime.tv_nsec)
			return 0;
	return 1;
}

/* Load a new snapshot when the files changed (at most once a second). */
static void
refresh(struct owner *o)
{
	struct file_id ids[DIR__NFILES];
	struct dir *d, *old;
	char err[512];
	time_t now = time(NULL);

	pthread_mutex_lock(&o->check_mu);
	if (o->dir != NULL && now == o->checked) {
		pthread_mutex_unlock(&o->check_mu);
		return;
	}
	o->checked = now;
	file_ids(o->path, ids);
	if (o->dir != NULL && ids_equal(ids, o->ids)) {
		pthread_mutex_unlock(&o->check_mu);
		return;
	}
	if ((d = dir_load(o->path, err, sizeof(err))) == NULL) {
		log_warnx("event=directory_unreadable path=%s error=\"%s\"",
		    o->path, err);
		pthread_mutex_unlock(&o->check_mu);
		return;
	}
	pthread_rwlock_wrlock(&o->lock);
	old = o->dir;
	o->dir = d;
	memcpy(o->ids, ids, sizeof(ids));
	pthread_rwlock_unlock(&o->lock);
	pthread_mutex_unlock(&o->check_mu);
	if (old != NULL)
		log_info("event=directory_reloaded path=%s", o->path);
	dir_free(&old);
}

struct owner *
owner_open(const char *directory_dir, char *err, size_t errsz)
{
	struct owner *o;

	if ((o = calloc(1, sizeof(*o))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	snprintf(o->path, sizeof(o->path), "%s", directory_dir);
	pthread_rwlock_init(&o->lock, NULL);
	pthread_mutex_init(&o->check_mu, NULL);
	refresh(o);
	if (o->dir == NULL) {
		snprintf(err, errsz, "cannot load the directory %s", directory_dir);
		owner_free(&o);
		return NULL;
	}
	return o;
}

void
owner_free(struct owner **op)
{
	struct owner *o;

	if (op == NULL || (o = *op) == NULL)
		return;
	dir_free(&o->dir);
	pthread_rwlock_destroy(&o->lock);
	pthread_mutex_destroy(&o->check_mu);
	free(o);
	*op = NULL;
}

/* Take the current snapshot for reading (release with unlock). */
static const struct dir *
rdlock(struct owner *o)
{
	refresh(o);
	pthread_rwlock_rdlock(&o->lock);
	return o->dir;
}

static void
unlock(struct owner *o)
{
	pthread_rwlock_unlock(&o->lock);
}

static int
in_use(const struct dir *d)
{
	return d != NULL && (dir_count(d, DIR_DOMAINS) > 0 ||
	    dir_count(d, DIR_USERS) > 0);
}

int
owner_is_local(struct owner *o, const char *domain)
{
	const struct dir *d = rdlock(o);
	int local = in_use(d) && dir_is_local_domain(d, domain);

	unlock(o);
	return local;
}

int
owner_owns(struct owner *o, const char *user, const struct addr *a)
{
	const struct dir *d;
	struct dir_expansion x;
	char key[ADDR_PATH_MAX + 1], full[ADDR_PATH_MAX + 1];
	size_t i;
	int owns = 0;

	if (addr_is_null(a))
		return 0;
	/* key: local@domain, lower-cased, without +detail. */
	addr_lookup_key(a, key, sizeof(key));
	if (strcasecmp(key, user) == 0)
		return 1;
	/* A distribution list gives its members no right to send as it. */
	d = rdlock(o);
	if (in_use(d) && dir_is_local_domain(d, a->domain) &&
	    dir_group_get(d, key) == NULL) {
		addr_format(a, full, sizeof(full));
		memset(&x, 0, sizeof(x));
		if (dir_expand(d, full, OWNER_MAX_TARGETS, 1, &x) == 0 &&
		    x.reply.cls == REPLY_OK)
			for (i = 0; i < x.nmailbox && !owns; i++)
				owns = strcasecmp(x.mailboxes[i], user) == 0;
		dir_expansion_free(&x);
	}
	unlock(o);
	return owns;
}

int
owner_check_rcpt(struct owner *o, const char *addr, struct reply *r)
{
	const struct dir *d;
	struct dir_expansion x;
	int rc = 0;

	d = rdlock(o);
	if (in_use(d)) {
		memset(&x, 0, sizeof(x));
		if (dir_expand(d, addr, OWNER_MAX_TARGETS, 1, &x) != 0) {
			reply_set(r, 451, "4.3.0", "Out of memory");
			rc = -1;
		} else if (x.reply.cls != REPLY_OK) {
			*r = x.reply;
			rc = -1;
		}
		dir_expansion_free(&x);
	}
	unlock(o);
	return rc;
}

int
owner_suspended(struct owner *o, const char *user)
{
	const struct dir *d = rdlock(o);
	const struct dir_user *u = d != NULL ? dir_user_get(d, user) : NULL;
	int sus = u != NULL && dir_user_suspended(u);

	unlock(o);
	return sus;
}

static char **
strings_dup(char *const *v, size_t n)
{
	char **out;
	size_t i;

	if ((out = calloc(n + 1, sizeof(*out))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if ((out[i] = strdup(v[i])) == NULL) {
			owner_strings_free(out, i);
			return NULL;
		}
	return out;
}

void
owner_strings_free(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int
owner_expand(struct owner *o, const char *addr, char ***mailboxes_r,
    size_t *nmailbox_r, char ***forwards_r, size_t *nforward_r,
    struct reply *r)
{
	const struct dir *d;
	struct dir_expansion x;
	int rc = -1;

	*mailboxes_r = *forwards_r = NULL;
	*nmailbox_r = *nforward_r = 0;
	d = rdlock(o);
	if (!in_use(d)) {
		/* No directory: the address is the mailbox. */
		unlock(o);
		if ((*mailboxes_r = calloc(2, sizeof(char *))) == NULL ||
		    ((*mailboxes_r)[0] = strdup(addr)) == NULL) {
			free(*mailboxes_r);
			*mailboxes_r = NULL;
			reply_set(r, 451, "4.3.0", "Out of memory");
			return -1;
		}
		*nmailbox_r = 1;
		return 0;
	}
	memset(&x, 0, sizeof(x));
	if (dir_expand(d, addr, OWNER_MAX_TARGETS, 1, &x) != 0) {
		reply_set(r, 451, "4.3.0", "Out of memory");
	} else if (x.reply.cls != REPLY_OK) {
		*r = x.reply;
	} else if ((*mailboxes_r = strings_dup(x.mailboxes, x.nmailbox)) == NULL ||
	    (*forwards_r = strings_dup(x.forwards, x.nforward)) == NULL) {
		owner_strings_free(*mailboxes_r, x.nmailbox);
		*mailboxes_r = NULL;
		reply_set(r, 451, "4.3.0", "Out of memory");
	} else {
		*nmailbox_r = x.nmailbox;
		*nforward_r = x.nforward;
		rc = 0;
	}
	dir_expansion_free(&x);
	unlock(o);
	return rc;
}

int
owner_archive(struct owner *o, const char *domain, char *out, size_t outsz)
{
	const struct dir *d = rdlock(o);
	const struct dir_domain *dom = d != NULL ? dir_domain_get(d, domain) : NULL;
	const char *a = dom != NULL ? dir_domain_attr(dom, "archive") : NULL;
	int has = a != NULL && *a != '\0';

	if (has)
		snprintf(out, outsz, "%s", a);
	unlock(o);
	return has;
}
