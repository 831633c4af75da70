/*
 * dircmd.c - edgemailctl commands on the directory: domain, user, alias,
 * group, resolve and archive.  Every change takes the directory lock,
 * checks the result (loops, limits, unknown targets) before saving, and
 * saves atomically (lib/directory.h); the API, the relay and Dovecot see
 * it without a restart.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "lib/directory.h"

static int
no_opts(struct ctl *c, int argc, char **argv)
{
	int ch;

	while ((ch = ctl_getopt(c, argc, argv, "", NULL)) != -1) {
		if (ch == 'h')
			return ctl_help(c) + 100;
		return ctl_usage(c, NULL);
	}
	return -1;
}

/* Common opening of a command without options: returns -1 to go on, or
 * the exit code. */
#define NO_OPTS(c, argc, argv) do {					\
	int rc_ = no_opts((c), (argc), (argv));				\
	if (rc_ >= 100)							\
		return rc_ - 100;					\
	if (rc_ >= 0)							\
		return rc_;						\
} while (0)

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

static int
in_domain(const char *addr, const char *domain)
{
	return strcasecmp(domain_of(addr), domain) == 0;
}

/* ---- domain -------------------------------------------------------------- */

static int	check_source(struct ctl *, const struct dir *, const char *,
		    int);

/* Point the admin aliases of domain at admin; names: comma list, "none",
 * or NULL for all.  Adds the created sources to list (may be NULL). */
static int
set_admin(struct ctl *c, struct dir *d, const char *domain, const char *admin,
    const char *names, json_t *list)
{
	char err[512], src[600], buf[128];
	const char *one[1];
	size_t i;

	if (dir_is_local_domain(d, domain_of(admin)) &&
	    dir_user_get(d, admin) == NULL && dir_alias_get(d, admin) == NULL &&
	    dir_group_get(d, admin) == NULL)
		return ctl_fail(c, "admin %s is not a mailbox (add it with "
		    "user add first)", admin);
	if (dir_domain_set(d, domain, "admin", admin, err, sizeof(err)) != 0)
		return ctl_fail(c, "%s", err);
	if (names != NULL && strcmp(names, "none") == 0)
		return CTL_OK;
	one[0] = admin;
	for (i = 0; ; i++) {
		const char *name;

		if (names == NULL) {
			if ((name = dir_admin_aliases[i]) == NULL)
				break;
		} else {
			/* The i-th word of the comma list. */
			const char *p = names;
			size_t k, len;

			for (k = 0; k < i && p != NULL; k++)
				if ((p = strchr(p, ',')) != NULL)
					p++;
			if (p == NULL || *p == '\0')
				break;
			len = strcspn(p, ",");
			/* An empty name would make "@domain": the
			 * catch-all. */
			if (len == 0 || len >= sizeof(buf) ||
			    memchr(p, '@', len) != NULL)
				return ctl_fail(c, "bad alias name '%.*s' in "
				    "--aliases", (int)len, p);
			snprintf(buf, sizeof(buf), "%.*s", (int)len, p);
			name = buf;
		}
		snprintf(src, sizeof(src), "%s@%s", name, domain);
		lower(src);
		if (dir_user_get(d, src) != NULL || dir_group_get(d, src) != NULL) {
			ctl_warn(c, "%s is a mailbox or group: not made an "
			    "admin alias", src);
			continue;
		}
		if (dir_alias_get(d, src) != NULL &&
		    dir_list_del(d, DIR_ALIASES, src, NULL, 0, err,
		    sizeof(err)) != 0)
			return ctl_fail(c, "%s", err);
		if (dir_list_add(d, DIR_ALIASES, src, one, 1, err,
		    sizeof(err)) != 0)
			return ctl_fail(c, "%s", err);
		/* An admin that is (or leads to) one of these would make
		 * a loop, and postmaster's mail would bounce. */
		if (check_source(c, d, src, 0) != CTL_OK)
			return CTL_ERR;
		if (list != NULL)
			json_array_append_new(list, json_string(src));
	}
	return CTL_OK;
}

static void
print_admin_result(struct ctl *c, const char *what, const char *domain,
    const char *admin, json_t *aliases)
{
	size_t i;

	if (c->json) {
		ctl_json(json_pack("{s:s, s:s, s:s?, s:O}", "status", what,
		    "domain", domain, "admin", admin, "aliases", aliases));
		return;
	}
	printf("domain %s %s\n", domain, what);
	if (admin != NULL)
		printf("admin %s\n", admin);
	for (i = 0; i < json_array_size(aliases); i++)
		printf("alias %s -> %s\n", json_string_value(json_array_get(
		    aliases, i)), admin);
}

int
cmd_domain_add(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "admin", required_argument, NULL, 'a' },
		{ "aliases", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 }
	};
	const char *admin = NULL, *names = NULL;
	char err[512], domain[300];
	struct dir *d;
	json_t *aliases;
	int ch, lk, rc;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 'a':
			admin = optarg;
			break;
		case 'A':
			names = optarg;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind != 1)
		return ctl_usage(c, "one DOMAIN expected");
	snprintf(domain, sizeof(domain), "%s", argv[optind]);
	lower(domain);
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_domain_add(d, domain, err, sizeof(err)) != 0) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s", err);
	}
	aliases = json_array();
	if (admin != NULL && set_admin(c, d, domain, admin, names, aliases) !=
	    CTL_OK) {
		json_decref(aliases);
		ctl_dir_abort(&d, &lk);
		return CTL_ERR;
	}
	if ((rc = ctl_dir_commit(c, &d, &lk)) == CTL_OK) {
		print_admin_result(c, "added", domain, admin, aliases);
		if (admin == NULL && !c->json)
			ctl_warn(c, "no admin yet: add a mailbox, then "
			    "`edgemailctl domain admin %s ADDR` creates "
			    "postmaster@%s and the other admin aliases", domain,
			    domain);
	}
	json_decref(aliases);
	return rc;
}

int
cmd_domain_admin(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "aliases", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 }
	};
	const char *names = NULL;
	char domain[300], admin[300];
	struct dir *d;
	json_t *aliases;
	int ch, lk, rc;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 'A':
			names = optarg;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind != 2)
		return ctl_usage(c, "DOMAIN and ADDR expected");
	snprintf(domain, sizeof(domain), "%s", argv[optind]);
	snprintf(admin, sizeof(admin), "%s", argv[optind + 1]);
	lower(domain);
	lower(admin);
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_domain_get(d, domain) == NULL) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "no domain %s", domain);
	}
	aliases = json_array();
	if (set_admin(c, d, domain, admin, names, aliases) != CTL_OK) {
		json_decref(aliases);
		ctl_dir_abort(&d, &lk);
		return CTL_ERR;
	}
	if ((rc = ctl_dir_commit(c, &d, &lk)) == CTL_OK)
		print_admin_result(c, "updated", domain, admin, aliases);
	json_decref(aliases);
	return rc;
}

int
cmd_domain_del(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 }
	};
	char domain[300], err[512], src[300];
	struct dir *d;
	size_t i, nusers = 0, nlists = 0;
	int ch, lk, force = 0, k;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 'f':
			force = 1;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind != 1)
		return ctl_usage(c, "one DOMAIN expected");
	snprintf(domain, sizeof(domain), "%s", argv[optind]);
	lower(domain);
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	for (i = 0; i < dir_count(d, DIR_USERS); i++)
		if (in_domain(dir_user_at(d, i)->name, domain))
			nusers++;
	for (k = DIR_ALIASES; k <= DIR_GROUPS; k++)
		for (i = 0; i < dir_count(d, (enum dir_file)k); i++) {
			const struct dir_list *l = k == DIR_ALIASES ?
			    dir_alias_at(d, i) : dir_group_at(d, i);

			if (in_domain(l->src, domain) || (l->src[0] == '@' &&
			    strcmp(l->src + 1, domain) == 0))
				nlists++;
		}
	if (nusers > 0) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s still has %zu mailbox(es): user del "
		    "them first", domain, nusers);
	}
	if (nlists > 0 && !force) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s has %zu alias(es)/group(s): --force "
		    "removes them with the domain", domain, nlists);
	}
	for (k = DIR_ALIASES; k <= DIR_GROUPS; k++)
		for (i = dir_count(d, (enum dir_file)k); i-- > 0;) {
			const struct dir_list *l = k == DIR_ALIASES ?
			    dir_alias_at(d, i) : dir_group_at(d, i);

			if (!in_domain(l->src, domain) && !(l->src[0] == '@' &&
			    strcmp(l->src + 1, domain) == 0))
				continue;
			snprintf(src, sizeof(src), "%s", l->src);
			if (dir_list_del(d, (enum dir_file)k, src, NULL, 0, err,
			    sizeof(err)) != 0) {
				ctl_dir_abort(&d, &lk);
				return ctl_fail(c, "%s", err);
			}
		}
	if (dir_domain_del(d, domain, err, sizeof(err)) != 0) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s", err);
	}
	if (ctl_dir_commit(c, &d, &lk) != CTL_OK)
		return CTL_ERR;
	if (c->json)
		return ctl_json(json_pack("{s:s, s:s, s:i}", "status", "deleted",
		    "domain", domain, "lists_removed", (int)nlists));
	printf("domain %s deleted\n", domain);
	return CTL_OK;
}

int
cmd_domain_list(struct ctl *c, int argc, char **argv)
{
	struct dir *d;
	json_t *list;
	size_t i, j, k;

	NO_OPTS(c, argc, argv);
	if (argc - optind != 0)
		return ctl_usage(c, "no argument expected");
	if ((d = ctl_dir_read(c)) == NULL)
		return CTL_ERR;
	list = json_array();
	for (i = 0; i < dir_count(d, DIR_DOMAINS); i++) {
		const struct dir_domain *dom = dir_domain_at(d, i);
		size_t nu = 0, na = 0, ng = 0;

		for (j = 0; j < dir_count(d, DIR_USERS); j++)
			nu += in_domain(dir_user_at(d, j)->name, dom->name);
		for (k = 0; k < dir_count(d, DIR_ALIASES); k++) {
			const char *s = dir_alias_at(d, k)->src;

			na += in_domain(s, dom->name) || (s[0] == '@' &&
			    strcmp(s + 1, dom->name) == 0);
		}
		for (k = 0; k < dir_count(d, DIR_GROUPS); k++)
			ng += in_domain(dir_group_at(d, k)->src, dom->name);
		json_array_append_new(list, json_pack("{s:s, s:s?, s:s?, s:i, "
		    "s:i, s:i}", "domain", dom->name, "admin",
		    dir_domain_attr(dom, "admin"), "archive",
		    dir_domain_attr(dom, "archive"), "mailboxes", (int)nu,
		    "aliases", (int)na, "groups", (int)ng));
	}
	dir_free(&d);
	if (c->json)
		return ctl_json(list);
	printf("%-30s %-30s %-9s %-7s %-6s %s\n", "DOMAIN", "ADMIN",
	    "MAILBOXES", "ALIASES", "GROUPS", "ARCHIVE");
	for (i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i);
		const char *a = json_string_value(json_object_get(e, "admin"));
		const char *r = json_string_value(json_object_get(e, "archive"));

		printf("%-30s %-30s %-9lld %-7lld %-6lld %s\n",
		    json_string_value(json_object_get(e, "domain")),
		    a ? a : "-", json_integer_value(json_object_get(e,
		    "mailboxes")), json_integer_value(json_object_get(e,
		    "aliases")), json_integer_value(json_object_get(e,
		    "groups")), r ? r : "-");
	}
	json_decref(list);
	return CTL_OK;
}

/* ---- user ---------------------------------------------------------------- */

/* --password-stdin or a generated password; *generated_r tells which. */
static int
get_password(struct ctl *c, int from_stdin, char *plain, size_t plainsz,
    char *hash, size_t hashsz)
{
	if (from_stdin) {
		if (ctl_password_stdin(c, plain, plainsz) != 0)
			return -1;
	} else
		ctl_password_new(plain, plainsz);
	return ctl_password_hash(c, plain, hash, hashsz);
}

static int
user_pw_opts(struct ctl *c, int argc, char **argv, int *from_stdin,
    const char **quota)
{
	static const struct option opts[] = {
		{ "password-stdin", no_argument, NULL, 'p' },
		{ "quota", required_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c) + 100;
		case 'p':
			*from_stdin = 1;
			break;
		case 'q':
			if (quota == NULL)
				return ctl_usage(c, "no --quota here");
			*quota = optarg;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind != 1)
		return ctl_usage(c, "one ADDR expected");
	return -1;
}

int
cmd_user_add(struct ctl *c, int argc, char **argv)
{
	const char *quota = NULL;
	char addr[300], plain[512], hash[512], err[512];
	struct dir *d;
	int from_stdin = 0, lk, rc;

	if ((rc = user_pw_opts(c, argc, argv, &from_stdin, &quota)) >= 0)
		return rc >= 100 ? rc - 100 : rc;
	snprintf(addr, sizeof(addr), "%s", argv[optind]);
	lower(addr);
	if (quota == NULL)
		quota = ctl_get(c, "default_quota");
	/* A quick look first, so that a typo does not cost a hash. */
	if ((d = ctl_dir_read(c)) == NULL)
		return CTL_ERR;
	if (dir_user_get(d, addr) != NULL) {
		dir_free(&d);
		return ctl_fail(c, "mailbox %s exists", addr);
	}
	if (dir_domain_get(d, domain_of(addr)) == NULL) {
		dir_free(&d);
		return ctl_fail(c, "domain %s is not in the directory "
		    "(edgemailctl domain add %s)", domain_of(addr),
		    domain_of(addr));
	}
	dir_free(&d);
	if (get_password(c, from_stdin, plain, sizeof(plain), hash,
	    sizeof(hash)) != 0)
		return CTL_ERR;
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_user_add(d, addr, hash, quota[0] ? quota : NULL, err,
	    sizeof(err)) != 0) {
		ctl_dir_abort(&d, &lk);
		explicit_bzero(plain, sizeof(plain));
		return ctl_fail(c, "%s", err);
	}
	if ((rc = ctl_dir_commit(c, &d, &lk)) == CTL_OK) {
		if (c->json)
			ctl_json(json_pack("{s:s, s:s, s:s, s:s?}", "status",
			    "added", "user", addr, "quota", quota,
			    "password", from_stdin ? NULL : plain));
		else {
			printf("mailbox %s added (quota %s)\n", addr, quota);
			if (!from_stdin)
				printf("password: %s\n", plain);
		}
	}
	explicit_bzero(plain, sizeof(plain));
	return rc;
}

/* Where aliases, groups and domains still name addr (for warnings). */
static void
warn_references(struct ctl *c, const struct dir *d, const char *addr)
{
	size_t i, j;
	int k;

	for (k = DIR_ALIASES; k <= DIR_GROUPS; k++)
		for (i = 0; i < dir_count(d, (enum dir_file)k); i++) {
			const struct dir_list *l = k == DIR_ALIASES ?
			    dir_alias_at(d, i) : dir_group_at(d, i);

			for (j = 0; j < l->ntargets; j++)
				if (strcasecmp(l->targets[j], addr) == 0)
					ctl_warn(c, "%s %s still names %s",
					    k == DIR_ALIASES ? "alias" : "group",
					    l->src, addr);
		}
	for (i = 0; i < dir_count(d, DIR_DOMAINS); i++) {
		const struct dir_domain *dom = dir_domain_at(d, i);
		const char *a = dir_domain_attr(dom, "admin");
		const char *r = dir_domain_attr(dom, "archive");

		if (a != NULL && strcasecmp(a, addr) == 0)
			ctl_warn(c, "%s is the admin of %s", addr, dom->name);
		if (r != NULL && strcasecmp(r, addr) == 0)
			ctl_warn(c, "%s is the archive of %s", addr, dom->name);
	}
}

/* The mailbox's home: mail_dir/DOMAIN/LOCAL (as in dovecot-config). */
static int
mail_home(struct ctl *c, const char *addr, char *out, size_t outsz)
{
	const char *at = strrchr(addr, '@');
	size_t ll;

	if (at == NULL)
		return -1;
	ll = (size_t)(at - addr);
	if (ll == 0 || memchr(addr, '/', ll) != NULL || strchr(at, '/') ||
	    (ll == 1 && addr[0] == '.') || (ll == 2 && addr[0] == '.' &&
	    addr[1] == '.') || at[1] == '.' || at[1] == '\0')
		return -1;
	if ((size_t)snprintf(out, outsz, "%s/%s/%.*s", ctl_get(c, "mail_dir"),
	    at + 1, (int)ll, addr) >= outsz)
		return -1;
	return 0;
}

int
cmd_user_del(struct ctl *c, int argc, char **argv)
{
	char addr[300], err[512], home[4096];
	struct dir *d;
	int lk;

	NO_OPTS(c, argc, argv);
	if (argc - optind != 1)
		return ctl_usage(c, "one ADDR expected");
	snprintf(addr, sizeof(addr), "%s", argv[optind]);
	lower(addr);
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_user_del(d, addr, err, sizeof(err)) != 0) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s", err);
	}
	warn_references(c, d, addr);
	if (ctl_dir_commit(c, &d, &lk) != CTL_OK)
		return CTL_ERR;
	if (mail_home(c, addr, home, sizeof(home)) != 0)
		home[0] = '\0';
	if (c->json)
		return ctl_json(json_pack("{s:s, s:s, s:s}", "status", "deleted",
		    "user", addr, "mail_kept", home));
	printf("mailbox %s deleted; its mail is kept in %s (edgemailctl user "
	    "purge %s deletes it)\n", addr, home, addr);
	return CTL_OK;
}

int
cmd_user_list(struct ctl *c, int argc, char **argv)
{
	struct dir *d;
	json_t *list;
	const char *dom = NULL;
	size_t i;

	NO_OPTS(c, argc, argv);
	if (argc - optind > 1)
		return ctl_usage(c, "at most one DOMAIN");
	if (argc - optind == 1)
		dom = argv[optind];
	if ((d = ctl_dir_read(c)) == NULL)
		return CTL_ERR;
	list = json_array();
	for (i = 0; i < dir_count(d, DIR_USERS); i++) {
		const struct dir_user *u = dir_user_at(d, i);

		if (dom != NULL && !in_domain(u->name, dom))
			continue;
		json_array_append_new(list, json_pack("{s:s, s:s, s:s?}",
		    "user", u->name, "state", dir_user_suspended(u) ?
		    "suspended" : "active", "quota", dir_user_quota(u)));
	}
	dir_free(&d);
	if (c->json)
		return ctl_json(list);
	printf("%-40s %-10s %s\n", "MAILBOX", "STATE", "QUOTA");
	for (i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i);
		const char *q = json_string_value(json_object_get(e, "quota"));

		printf("%-40s %-10s %s\n", json_string_value(json_object_get(e,
		    "user")), json_string_value(json_object_get(e, "state")),
		    q ? q : "-");
	}
	json_decref(list);
	return CTL_OK;
}

int
cmd_user_passwd(struct ctl *c, int argc, char **argv)
{
	char addr[300], plain[512], hash[512], err[512];
	struct dir *d;
	int from_stdin = 0, lk, rc;

	if ((rc = user_pw_opts(c, argc, argv, &from_stdin, NULL)) >= 0)
		return rc >= 100 ? rc - 100 : rc;
	snprintf(addr, sizeof(addr), "%s", argv[optind]);
	lower(addr);
	if ((d = ctl_dir_read(c)) == NULL)
		return CTL_ERR;
	if (dir_user_get(d, addr) == NULL) {
		dir_free(&d);
		return ctl_fail(c, "no mailbox %s", addr);
	}
	dir_free(&d);
	if (get_password(c, from_stdin, plain, sizeof(plain), hash,
	    sizeof(hash)) != 0)
		return CTL_ERR;
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_user_set_pass(d, addr, hash, err, sizeof(err)) != 0) {
		ctl_dir_abort(&d, &lk);
		explicit_bzero(plain, sizeof(plain));
		return ctl_fail(c, "%s", err);
	}
	if ((rc = ctl_dir_commit(c, &d, &lk)) == CTL_OK) {
		if (c->json)
			ctl_json(json_pack("{s:s, s:s, s:s?}", "status",
			    "changed", "user", addr, "password",
			    from_stdin ? NULL : plain));
		else {
			printf("password of %s changed\n", addr);
			if (!from_stdin)
				printf("password: %s\n", plain);
		}
	}
	explicit_bzero(plain, sizeof(plain));
	return rc;
}

static int
user_flag(struct ctl *c, int argc, char **argv, int on)
{
	char addr[300], err[512];
	struct dir *d;
	int lk;

	NO_OPTS(c, argc, argv);
	if (argc - optind != 1)
		return ctl_usage(c, "one ADDR expected");
	snprintf(addr, sizeof(addr), "%s", argv[optind]);
	lower(addr);
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_user_set_suspended(d, addr, on, err, sizeof(err)) != 0) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s", err);
	}
	if (ctl_dir_commit(c, &d, &lk) != CTL_OK)
		return CTL_ERR;
	if (c->json)
		return ctl_json(json_pack("{s:s, s:s}", "user", addr, "state",
		    on ? "suspended" : "active"));
	printf("mailbox %s %s\n", addr, on ? "suspended" : "active");
	return CTL_OK;
}

int
cmd_user_suspend(struct ctl *c, int argc, char **argv)
{
	return user_flag(c, argc, argv, 1);
}

int
cmd_user_resume(struct ctl *c, int argc, char **argv)
{
	return user_flag(c, argc, argv, 0);
}

int
cmd_user_quota(struct ctl *c, int argc, char **argv)
{
	char addr[300], err[512];
	const char *q;
	struct dir *d;
	int lk;

	NO_OPTS(c, argc, argv);
	if (argc - optind != 2)
		return ctl_usage(c, "ADDR and SIZE expected");
	snprintf(addr, sizeof(addr), "%s", argv[optind]);
	lower(addr);
	q = strcmp(argv[optind + 1], "none") == 0 ? NULL : argv[optind + 1];
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_user_set_quota(d, addr, q, err, sizeof(err)) != 0) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s", err);
	}
	if (ctl_dir_commit(c, &d, &lk) != CTL_OK)
		return CTL_ERR;
	if (c->json)
		return ctl_json(json_pack("{s:s, s:s?}", "user", addr, "quota",
		    q));
	printf("quota of %s: %s\n", addr, q ? q : "none (Dovecot's default)");
	return CTL_OK;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) == 0 ? 0 : -1;
	return unlink(path) == 0 ? 0 : -1;
}

int
cmd_user_purge(struct ctl *c, int argc, char **argv)
{
	char addr[300], home[4096];
	struct stat st;
	struct dir *d;
	int lk;

	NO_OPTS(c, argc, argv);
	if (argc - optind != 1)
		return ctl_usage(c, "one ADDR expected");
	snprintf(addr, sizeof(addr), "%s", argv[optind]);
	lower(addr);
	if (mail_home(c, addr, home, sizeof(home)) != 0)
		return ctl_fail(c, "bad address %s", addr);
	/* Under the lock: a user add of the same name must not race us. */
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_user_get(d, addr) != NULL) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s is still a mailbox: user del it first",
		    addr);
	}
	if (lstat(home, &st) != 0 || !S_ISDIR(st.st_mode)) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "no mail stored for %s (%s)", addr, home);
	}
	if (nftw(home, rm_entry, 32, FTW_DEPTH | FTW_PHYS) != 0) {
		int e = errno;

		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "removing %s: %s", home, strerror(e));
	}
	ctl_dir_abort(&d, &lk);
	if (c->json)
		return ctl_json(json_pack("{s:s, s:s, s:s}", "status", "purged",
		    "user", addr, "path", home));
	printf("mail of %s deleted (%s)\n", addr, home);
	return CTL_OK;
}

/* ---- alias and group ----------------------------------------------------- */

/*
 * After a change to src: expand it as a recipient would be, and refuse
 * loops, over-deep or over-long lists; unknown local targets unless force.
 */
static int
check_source(struct ctl *c, const struct dir *d, const char *src, int force)
{
	struct dir_expansion x;
	const struct dir_list *l;
	size_t i;
	int rc = CTL_OK;

	if (src[0] == '@') {
		/* A catch-all: check each of its targets. */
		if ((l = dir_alias_get(d, src)) == NULL)
			return CTL_OK;
		for (i = 0; i < l->ntargets && rc == CTL_OK; i++) {
			if (dir_expand(d, l->targets[i], ctl_max_targets(c), 0,
			    &x) != 0)
				return ctl_fail(c, "out of memory");
			if (x.reply.cls != REPLY_OK && (x.nnotes == 0 || !force))
				rc = ctl_fail(c, "refused: %s", x.reply.text);
			dir_expansion_free(&x);
		}
		return rc;
	}
	if (dir_expand(d, src, ctl_max_targets(c), 1, &x) != 0)
		return ctl_fail(c, "out of memory");
	if (x.reply.cls != REPLY_OK &&
	    (strcmp(x.reply.enhanced, "5.4.6") == 0 ||
	    strcmp(x.reply.enhanced, "5.2.4") == 0 || !force))
		rc = ctl_fail(c, "refused: %s", x.reply.text);
	else
		for (i = 0; i < x.nnotes; i++) {
			if (strstr(x.notes[i], "no such user") != NULL &&
			    !force) {
				rc = ctl_fail(c, "refused: target %s (--force "
				    "accepts it)", x.notes[i]);
				break;
			}
			ctl_warn(c, "target %s", x.notes[i]);
		}
	dir_expansion_free(&x);
	return rc;
}

static int
list_add(struct ctl *c, enum dir_file f, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 }
	};
	char src[300], err[512];
	const struct dir_list *l;
	struct dir *d;
	json_t *t;
	int ch, lk, force = 0;
	size_t i;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 'f':
			force = 1;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind < 2)
		return ctl_usage(c, "a source and at least one target expected");
	snprintf(src, sizeof(src), "%s", argv[optind]);
	lower(src);
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_list_add(d, f, src, (const char *const *)argv + optind + 1,
	    (size_t)(argc - optind - 1), err, sizeof(err)) != 0) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s", err);
	}
	l = f == DIR_ALIASES ? dir_alias_get(d, src) : dir_group_get(d, src);
	if (l->ntargets > ctl_max_targets(c)) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "refused: %s would have %zu targets, more "
		    "than max_group_targets (%zu)", src, l->ntargets,
		    ctl_max_targets(c));
	}
	if (check_source(c, d, src, force) != CTL_OK) {
		ctl_dir_abort(&d, &lk);
		return CTL_ERR;
	}
	l = f == DIR_ALIASES ? dir_alias_get(d, src) : dir_group_get(d, src);
	t = json_array();
	for (i = 0; i < l->ntargets; i++)
		json_array_append_new(t, json_string(l->targets[i]));
	if (ctl_dir_commit(c, &d, &lk) != CTL_OK) {
		json_decref(t);
		return CTL_ERR;
	}
	if (c->json)
		return ctl_json(json_pack("{s:s, s:o}", f == DIR_ALIASES ?
		    "alias" : "group", src, "targets", t));
	printf("%s %s ->", f == DIR_ALIASES ? "alias" : "group", src);
	for (i = 0; i < json_array_size(t); i++)
		printf(" %s", json_string_value(json_array_get(t, i)));
	printf("\n");
	json_decref(t);
	return CTL_OK;
}

static int
list_del(struct ctl *c, enum dir_file f, int argc, char **argv)
{
	char src[300], err[512];
	struct dir *d;
	int lk;

	NO_OPTS(c, argc, argv);
	if (argc - optind < 1)
		return ctl_usage(c, "a source expected");
	snprintf(src, sizeof(src), "%s", argv[optind]);
	lower(src);
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_list_del(d, f, src, (const char *const *)argv + optind + 1,
	    (size_t)(argc - optind - 1), err, sizeof(err)) != 0) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s", err);
	}
	if (ctl_dir_commit(c, &d, &lk) != CTL_OK)
		return CTL_ERR;
	if (c->json)
		return ctl_json(json_pack("{s:s, s:s}", "status", argc - optind
		    == 1 ? "deleted" : "changed", f == DIR_ALIASES ? "alias" :
		    "group", src));
	printf("%s %s %s\n", f == DIR_ALIASES ? "alias" : "group", src,
	    argc - optind == 1 ? "deleted" : "changed");
	return CTL_OK;
}

static int
list_list(struct ctl *c, enum dir_file f, int argc, char **argv)
{
	const char *dom = NULL;
	struct dir *d;
	json_t *list;
	size_t i, j;

	NO_OPTS(c, argc, argv);
	if (argc - optind > 1)
		return ctl_usage(c, "at most one DOMAIN");
	if (argc - optind == 1)
		dom = argv[optind];
	if ((d = ctl_dir_read(c)) == NULL)
		return CTL_ERR;
	list = json_array();
	for (i = 0; i < dir_count(d, f); i++) {
		const struct dir_list *l = f == DIR_ALIASES ? dir_alias_at(d, i) :
		    dir_group_at(d, i);
		json_t *t;

		if (dom != NULL && !in_domain(l->src, dom) &&
		    !(l->src[0] == '@' && strcasecmp(l->src + 1, dom) == 0))
			continue;
		t = json_array();
		for (j = 0; j < l->ntargets; j++)
			json_array_append_new(t, json_string(l->targets[j]));
		json_array_append_new(list, json_pack("{s:s, s:o}", "source",
		    l->src, "targets", t));
	}
	dir_free(&d);
	if (c->json)
		return ctl_json(list);
	for (i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i), *t;

		t = json_object_get(e, "targets");
		printf("%s", json_string_value(json_object_get(e, "source")));
		for (j = 0; j < json_array_size(t); j++)
			printf("%s%s", j ? ", " : " ",
			    json_string_value(json_array_get(t, j)));
		printf("\n");
	}
	json_decref(list);
	return CTL_OK;
}

int
cmd_alias_add(struct ctl *c, int argc, char **argv)
{
	return list_add(c, DIR_ALIASES, argc, argv);
}

int
cmd_alias_del(struct ctl *c, int argc, char **argv)
{
	return list_del(c, DIR_ALIASES, argc, argv);
}

int
cmd_alias_list(struct ctl *c, int argc, char **argv)
{
	return list_list(c, DIR_ALIASES, argc, argv);
}

int
cmd_group_add(struct ctl *c, int argc, char **argv)
{
	return list_add(c, DIR_GROUPS, argc, argv);
}

int
cmd_group_del(struct ctl *c, int argc, char **argv)
{
	return list_del(c, DIR_GROUPS, argc, argv);
}

int
cmd_group_list(struct ctl *c, int argc, char **argv)
{
	return list_list(c, DIR_GROUPS, argc, argv);
}

static json_t *
expansion_json(const char *addr, const struct dir_expansion *x)
{
	json_t *mb = json_array(), *fw = json_array(), *nt = json_array();
	size_t i;

	for (i = 0; i < x->nmailbox; i++)
		json_array_append_new(mb, json_string(x->mailboxes[i]));
	for (i = 0; i < x->nforward; i++)
		json_array_append_new(fw, json_string(x->forwards[i]));
	for (i = 0; i < x->nnotes; i++)
		json_array_append_new(nt, json_string(x->notes[i]));
	return json_pack("{s:s, s:s, s:i, s:s, s:s, s:o, s:o, s:o}", "address",
	    addr, "result", x->reply.cls == REPLY_OK ? "ok" : "refused", "code",
	    x->reply.code, "enhanced", x->reply.enhanced, "text", x->reply.text,
	    "mailboxes", mb, "forwards", fw, "skipped", nt);
}

static void
print_expansion(const struct dir_expansion *x)
{
	size_t i;

	if (x->reply.cls != REPLY_OK) {
		printf("refused %d %s %s\n", x->reply.code, x->reply.enhanced,
		    x->reply.text);
		return;
	}
	for (i = 0; i < x->nmailbox; i++)
		printf("mailbox %s\n", x->mailboxes[i]);
	for (i = 0; i < x->nforward; i++)
		printf("forward %s\n", x->forwards[i]);
	for (i = 0; i < x->nnotes; i++)
		printf("skipped %s\n", x->notes[i]);
}

int
cmd_group_members(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "expand", no_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 }
	};
	const struct dir_list *l;
	struct dir_expansion x;
	struct dir *d;
	int ch, expand = 0;
	size_t i;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 'e':
			expand = 1;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind != 1)
		return ctl_usage(c, "one GROUP expected");
	if ((d = ctl_dir_read(c)) == NULL)
		return CTL_ERR;
	if ((l = dir_group_get(d, argv[optind])) == NULL) {
		dir_free(&d);
		return ctl_fail(c, "no group %s", argv[optind]);
	}
	if (expand) {
		if (dir_expand(d, l->src, ctl_max_targets(c), 1, &x) != 0) {
			dir_free(&d);
			return ctl_fail(c, "out of memory");
		}
		if (c->json)
			ctl_json(expansion_json(l->src, &x));
		else
			print_expansion(&x);
		ch = x.reply.cls == REPLY_OK ? CTL_OK : CTL_ERR;
		dir_expansion_free(&x);
		dir_free(&d);
		return ch;
	}
	if (c->json) {
		json_t *t = json_array();

		for (i = 0; i < l->ntargets; i++)
			json_array_append_new(t, json_string(l->targets[i]));
		ctl_json(json_pack("{s:s, s:o}", "group", l->src, "members", t));
	} else
		for (i = 0; i < l->ntargets; i++)
			printf("%s\n", l->targets[i]);
	dir_free(&d);
	return CTL_OK;
}

int
cmd_resolve(struct ctl *c, int argc, char **argv)
{
	struct dir_expansion x;
	struct dir *d;
	json_t *list;
	int i, rc = CTL_OK;

	NO_OPTS(c, argc, argv);
	if (argc - optind < 1)
		return ctl_usage(c, "an address expected");
	if ((d = ctl_dir_read(c)) == NULL)
		return CTL_ERR;
	list = json_array();
	for (i = optind; i < argc; i++) {
		if (dir_expand(d, argv[i], ctl_max_targets(c), 1, &x) != 0) {
			rc = ctl_fail(c, "out of memory");
			break;
		}
		if (x.reply.cls != REPLY_OK)
			rc = CTL_ERR;
		if (c->json)
			json_array_append_new(list, expansion_json(argv[i], &x));
		else {
			if (argc - optind > 1)
				printf("%s:\n", argv[i]);
			print_expansion(&x);
		}
		dir_expansion_free(&x);
	}
	dir_free(&d);
	if (c->json)
		ctl_json(list);
	else
		json_decref(list);
	return rc;
}

/* ---- archive -------------------------------------------------------------- */

int
cmd_archive_set(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "create", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	char domain[300], mbox[300], err[512], plain[64], hash[512];
	const struct dir_user *u;
	struct dir *d;
	int ch, lk, create = 0, off;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 'C':
			create = 1;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind != 2)
		return ctl_usage(c, "DOMAIN and MAILBOX (or off) expected");
	snprintf(domain, sizeof(domain), "%s", argv[optind]);
	snprintf(mbox, sizeof(mbox), "%s", argv[optind + 1]);
	lower(domain);
	lower(mbox);
	off = strcmp(mbox, "off") == 0;
	hash[0] = plain[0] = '\0';
	if (create && !off) {
		ctl_password_new(plain, sizeof(plain));
		if (ctl_password_hash(c, plain, hash, sizeof(hash)) != 0)
			return CTL_ERR;
	}
	if ((d = ctl_dir_edit(c, &lk)) == NULL)
		return CTL_ERR;
	if (dir_domain_get(d, domain) == NULL) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "no domain %s", domain);
	}
	if (!off && (u = dir_user_get(d, mbox)) == NULL) {
		if (!create) {
			ctl_dir_abort(&d, &lk);
			return ctl_fail(c, "%s is not a mailbox (--create adds "
			    "it)", mbox);
		}
		if (dir_user_add(d, mbox, hash, NULL, err, sizeof(err)) != 0) {
			ctl_dir_abort(&d, &lk);
			return ctl_fail(c, "%s", err);
		}
	} else
		plain[0] = '\0';
	if (dir_domain_set(d, domain, "archive", off ? NULL : mbox, err,
	    sizeof(err)) != 0) {
		ctl_dir_abort(&d, &lk);
		return ctl_fail(c, "%s", err);
	}
	if (ctl_dir_commit(c, &d, &lk) != CTL_OK)
		return CTL_ERR;
	if (c->json)
		ctl_json(json_pack("{s:s, s:s?, s:s?}", "domain", domain,
		    "archive", off ? NULL : mbox, "password", plain[0] ? plain :
		    NULL));
	else if (off)
		printf("archiving of %s off\n", domain);
	else {
		printf("archiving of %s into %s\n", domain, mbox);
		if (plain[0])
			printf("mailbox %s added\npassword: %s\n", mbox, plain);
	}
	explicit_bzero(plain, sizeof(plain));
	return CTL_OK;
}

struct expire_count {
	size_t	 deleted;
	size_t	 kept;
	size_t	 errors;
};

/* Every message file of one Maildir folder (cur/ and new/). */
static void
expire_folder(const char *folder, time_t cutoff, int dry,
    struct expire_count *n)
{
	static const char *const subs[] = { "cur", "new" };
	char p[4096];
	struct dirent *de;
	struct stat st;
	size_t i;
	DIR *dp;

	for (i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", folder, subs[i]);
		if ((dp = opendir(p)) == NULL)
			continue;
		while ((de = readdir(dp)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s/%s", folder, subs[i],
			    de->d_name);
			if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			/* A Maildir file's mtime is the message's received
			 * date (IMAP INTERNALDATE). */
			if (st.st_mtime >= cutoff) {
				n->kept++;
				continue;
			}
			if (dry || unlink(p) == 0)
				n->deleted++;
			else
				n->errors++;
		}
		closedir(dp);
	}
}

static void
expire_maildir(const char *maildir, time_t cutoff, int dry,
    struct expire_count *n)
{
	struct dirent *de;
	char p[4096];
	DIR *dp;

	expire_folder(maildir, cutoff, dry, n);
	if ((dp = opendir(maildir)) == NULL)
		return;
	while ((de = readdir(dp)) != NULL) {
		/* Maildir++ folders: ".Name", ".Name.Sub". */
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", maildir,
		    de->d_name) >= sizeof(p))
			continue;
		expire_folder(p, cutoff, dry, n);
	}
	closedir(dp);
}

int
cmd_archive_expire(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "days", required_argument, NULL, 'd' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	long long days;
	const char *only = NULL;
	struct dir *d;
	json_t *list;
	time_t cutoff;
	size_t i, errors = 0;
	int ch, dry = 0, have_days = 0;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 'd':
			if (str_to_ll(optarg, 0, 36500, &days) != 0)
				return ctl_usage(c, "--days: 0 to 36500");
			have_days = 1;
			break;
		case 'n':
			dry = 1;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind > 1)
		return ctl_usage(c, "at most one DOMAIN");
	if (argc - optind == 1)
		only = argv[optind];
	if (!have_days && ctl_get_ll(c, "archive_retention_days", 0, 36500,
	    &days) != 0)
		return CTL_ERR;
	/* 0 reads as "keep for ever", never as "older than now": that
	 * would empty the archive. */
	if (days == 0) {
		if (!c->json)
			printf("retention 0 days: the archive is kept, nothing "
			    "expires\n");
		return c->json ? ctl_json(json_array()) : CTL_OK;
	}
	cutoff = time(NULL) - (time_t)days * 86400;
	if ((d = ctl_dir_read(c)) == NULL)
		return CTL_ERR;
	if (only != NULL && dir_domain_get(d, only) == NULL) {
		dir_free(&d);
		return ctl_fail(c, "no domain %s", only);
	}
	list = json_array();
	for (i = 0; i < dir_count(d, DIR_DOMAINS); i++) {
		const struct dir_domain *dom = dir_domain_at(d, i);
		const char *arch = dir_domain_attr(dom, "archive");
		char home[4096], maildir[4200];
		struct expire_count n = { 0, 0, 0 };

		if (only != NULL && strcasecmp(only, dom->name) != 0)
			continue;
		if (arch == NULL) {
			if (only != NULL)
				ctl_warn(c, "%s has no archive", dom->name);
			continue;
		}
		if (mail_home(c, arch, home, sizeof(home)) != 0)
			continue;
		snprintf(maildir, sizeof(maildir), "%s/Maildir", home);
		expire_maildir(maildir, cutoff, dry, &n);
		errors += n.errors;
		json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:i, "
		    "s:i, s:b}", "domain", dom->name, "archive", arch,
		    "deleted", (int)n.deleted, "kept", (int)n.kept, "errors",
		    (int)n.errors, "dry_run", dry));
		if (!c->json)
			printf("%s (%s): %zu message(s) older than %lld days "
			    "%s, %zu kept%s\n", dom->name, arch, n.deleted, days,
			    dry ? "would be deleted" : "deleted", n.kept,
			    n.errors ? " (some could not be deleted)" : "");
	}
	dir_free(&d);
	if (c->json)
		ctl_json(list);
	else
		json_decref(list);
	return errors ? CTL_ERR : CTL_OK;
}
