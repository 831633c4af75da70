/*
 * backup.c - edgemailctl backup create|restore: the state of one machine
 * in one tar.gz file, made and read by tar(1).
 *
 * In it, at the paths the configuration names: the configuration file,
 * the directory (domains, mailboxes with their password hashes, aliases,
 * groups), the keys (HMAC, SRS, DKIM), the TLS certificate and key, both
 * queues (queue/ only: tmp/ never holds an acknowledged message) and,
 * unless --no-mail, the mailboxes (with users' Sieve scripts).  Not in
 * it: what the programs make again (the Dovecot configuration, logs,
 * pids, sockets, idempotency records, the ClamAV database).
 *
 * It may be taken while everything runs: each file in it was complete
 * when read (the directory and the queues are replaced by rename or
 * link, Maildir files appear whole), and a queued message whose journal
 * was being appended to loses at most that last record, which loading
 * cuts as torn.  A file that goes away while tar reads the tree (a
 * Maildir file moving from new/ to cur/, a message leaving the queue) is
 * no error.  The file is written 0600 (it holds keys) under a temporary
 * name and renamed when complete.  Restore into stopped services.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/ctl.h"

#define BACKUP_PATHS	16

struct paths {
	char	 p[BACKUP_PATHS][PATH_MAX];
	size_t	 n;
};

/* Add path (made absolute) unless it is missing or inside one added. */
static void
paths_add(struct paths *ps, const char *path)
{
	char abs[PATH_MAX];
	size_t i, n;

	if (path == NULL || path[0] == '\0' || ps->n == BACKUP_PATHS ||
	    realpath(path, abs) == NULL)
		return;
	for (i = 0; i < ps->n; i++) {
		n = strlen(ps->p[i]);
		if (strncmp(abs, ps->p[i], n) == 0 &&
		    (abs[n] == '\0' || abs[n] == '/'))
			return;
	}
	snprintf(ps->p[ps->n++], PATH_MAX, "%s", abs);
}

static void
paths_add_sub(struct paths *ps, const char *dir, const char *sub)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	paths_add(ps, p);
}

static void
paths_add_dirname(struct paths *ps, const char *file)
{
	char p[PATH_MAX], *slash;

	snprintf(p, sizeof(p), "%s", file);
	if ((slash = strrchr(p, '/')) != NULL && slash != p) {
		*slash = '\0';
		paths_add(ps, p);
	}
}

/*
 * The arguments of both commands: FILE and one optional --FLAG.  -1 to go
 * on (*file set, *set 1 when the flag was given), else the command's exit
 * status (help, usage error).
 */
static int
file_and_flag(struct ctl *c, int argc, char **argv, const char *flag,
    int *set, const char **file)
{
	const struct option opts[] = {
		{ flag, no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	*set = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		switch (ch) {
		case 'f':
			*set = 1;
			break;
		case 'h':
			return ctl_help(c);
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind != 1)
		return ctl_usage(c, "one FILE expected");
	*file = argv[optind];
	return -1;
}

int
cmd_backup_create(struct ctl *c, int argc, char **argv)
{
	char tmp[PATH_MAX], *targv[BACKUP_PATHS + 16];
	const char *file;
	struct paths ps;
	size_t j, k = 0;
	int no_mail, rc, fd;

	rc = file_and_flag(c, argc, argv, "no-mail", &no_mail, &file);
	if (rc >= 0)
		return rc;
	memset(&ps, 0, sizeof(ps));
	paths_add(&ps, c->conf_path);
	paths_add(&ps, ctl_get(c, "directory_dir"));
	paths_add_dirname(&ps, ctl_get(c, "hmac_keys_file"));
	paths_add(&ps, ctl_get(c, "dkim_keys_dir"));
	paths_add(&ps, ctl_get(c, "srs_secret_file"));
	paths_add(&ps, ctl_get(c, "tls_cert_file"));
	paths_add(&ps, ctl_get(c, "tls_key_file"));
	paths_add_sub(&ps, ctl_get(c, "spool_dir"), "queue");
	paths_add_sub(&ps, ctl_get(c, "outbound_spool_dir"), "queue");
	if (!no_mail)
		paths_add(&ps, ctl_get(c, "mail_dir"));
	if (ps.n == 0)
		return ctl_fail(c, "nothing to back up (no state found)");

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", file, (long)getpid());
	/* Made 0600 before tar writes keys into it. */
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) < 0)
		return ctl_fail(c, "%s: %s", tmp, strerror(errno));
	close(fd);
	targv[k++] = "tar";
	targv[k++] = "--create";
	targv[k++] = "--gzip";
	targv[k++] = "--file";
	targv[k++] = tmp;
	targv[k++] = "--directory";
	targv[k++] = "/";
	targv[k++] = "--ignore-failed-read";
	targv[k++] = "--warning=no-file-changed";
	targv[k++] = "--warning=no-file-removed";
	for (j = 0; j < ps.n; j++)
		targv[k++] = ps.p[j] + 1;	/* relative to / */
	targv[k] = NULL;
	/* A file that changed while read (a journal record appended) is
	 * no failure: see the top of this file. */
	if ((rc = ctl_run(c, targv, 1)) != CTL_OK) {
		unlink(tmp);
		return rc;
	}
	if (rename(tmp, file) != 0) {
		unlink(tmp);
		return ctl_fail(c, "%s: %s", file, strerror(errno));
	}
	if (!c->json) {
		printf("backup %s:", file);
		for (j = 0; j < ps.n; j++)
			printf(" %s", ps.p[j]);
		printf("\n");
	}
	return CTL_OK;
}

int
cmd_backup_restore(struct ctl *c, int argc, char **argv)
{
	char users[PATH_MAX];
	char *targv[] = { "tar", "--extract", "--gzip", "--file", NULL,
	    "--directory", "/", "--same-permissions", "--same-owner", NULL };
	const char *file;
	struct stat st;
	int force, rc;

	rc = file_and_flag(c, argc, argv, "force", &force, &file);
	if (rc >= 0)
		return rc;
	if (access(file, R_OK) != 0)
		return ctl_fail(c, "%s: %s", file, strerror(errno));
	/* Over a machine that has mailboxes only when asked to. */
	snprintf(users, sizeof(users), "%s/users", ctl_get(c, "directory_dir"));
	if (!force && stat(users, &st) == 0 && st.st_size > 0)
		return ctl_fail(c, "%s exists: restore over it with --force "
		    "(stop edgemail and Dovecot first)", users);
	targv[4] = (char *)file;
	return ctl_run(c, targv, 0);
}
