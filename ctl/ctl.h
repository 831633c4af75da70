/*
 * ctl.h - edgemailctl, the administration command: shared context and the
 * helpers its command files use.
 *
 *   main.c      options, the command table, help, exit codes
 *   dircmd.c    domain, user, alias, group, archive
 *   dovecot.c   dovecot-config (the whole Dovecot configuration) and the
 *               quota-warning hook Dovecot calls
 *   dkim.c      dkim keygen / show
 *   dns.c       dns DOMAIN (records to publish), dns check DOMAIN
 *   resolve.c   a small DNS client for dns check (any record type)
 *   config.c    config check / config defaults
 *   report.c    report [--mail]
 *   queue.c     queue list|show|flush|retry|hold|release|delete
 *
 * Exit codes: 0 done, 1 error (message on stderr), 2 usage.
 */
#ifndef EDGEMAIL_CTL_H
#define EDGEMAIL_CTL_H

#include <stddef.h>

#include <jansson.h>

#include "lib/buf.h"
#include "lib/reply.h"

struct conf;
struct dir;

#define CTL_OK		0
#define CTL_ERR		1
#define CTL_USAGE	2

struct ctl {
	struct conf *conf;
	const char *conf_path;
	int	 conf_loaded;	/* the file existed and was read */
	int	 json;		/* --json */
	const struct ctl_cmd *cur;	/* the command being run */
};

/* A command: "name" or "group name"; fn gets the arguments after it
 * (argv[0] is the command name, as for getopt). */
struct ctl_cmd {
	const char *name;
	int	(*fn)(struct ctl *, int, char **);
	const char *usage;	/* arguments, after the name */
	const char *help;	/* one paragraph */
	int	 hidden;	/* not listed in the overview */
};

extern const struct ctl_cmd ctl_cmds[];

/* Messages: "edgemailctl: user add: ..." on stderr; return CTL_ERR. */
/* deploy/sieve/junk.sieve (build/junk_sieve.c, made by the Makefile). */
extern const char junk_sieve[];

/* Run a program (argv[0] looked up in PATH) and wait for it: CTL_OK when
 * it exited with at most ok_max, else a message and CTL_ERR. */
int	ctl_run(struct ctl *c, char *const argv[], int ok_max);
int	ctl_fail(struct ctl *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Usage error: the message and the command's usage line; CTL_USAGE. */
int	ctl_usage(struct ctl *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	ctl_warn(struct ctl *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Print a JSON value (--json) and free it; returns CTL_OK. */
int	ctl_json(json_t *j);

/* Option parsing shared by the commands: getopt_long over argv, plus
 * --json (handled here) and -h/--help (returned as 'h').  Returns the
 * option char, -1 at the end, '?' on error. */
struct option;
int	ctl_getopt(struct ctl *c, int argc, char **argv, const char *shortopts,
	    const struct option *longopts);
/* Print the current command's usage and help; CTL_OK. */
int	ctl_help(struct ctl *c);

/* Configuration values. */
const char *ctl_get(struct ctl *c, const char *key);
int	ctl_get_ll(struct ctl *c, const char *key, long long min, long long max,
	    long long *v);
/* The host name: conf hostname, else the system's. */
const char *ctl_hostname(struct ctl *c);

/* The directory: load for reading, or lock + load for a change. */
struct dir *ctl_dir_read(struct ctl *c);
struct dir *ctl_dir_edit(struct ctl *c, int *lockfd);
/* Save (when ok) and unlock; returns CTL_OK or CTL_ERR. */
int	ctl_dir_commit(struct ctl *c, struct dir **dp, int *lockfd);
void	ctl_dir_abort(struct dir **dp, int *lockfd);
size_t	ctl_max_targets(struct ctl *c);

/* Passwords: a new random one (out: at least 32 bytes), one line read
 * from stdin, the hash by `doveadm pw` (scheme and cost from the
 * configuration).  -1 with a message printed. */
void	ctl_password_new(char *out, size_t outsz);
int	ctl_password_stdin(struct ctl *c, char *out, size_t outsz);
int	ctl_password_hash(struct ctl *c, const char *plain, char *out,
	    size_t outsz);

/* Deliver a message (CRLF lines) to rcpt over LMTP (conf lmtp_server). */
int	ctl_lmtp_deliver(struct ctl *c, const char *from, const char *rcpt,
	    const char *msg, size_t len, struct reply *r);

/* Commands. */
int	cmd_domain_add(struct ctl *, int, char **);
int	cmd_domain_admin(struct ctl *, int, char **);
int	cmd_domain_del(struct ctl *, int, char **);
int	cmd_domain_list(struct ctl *, int, char **);
int	cmd_user_add(struct ctl *, int, char **);
int	cmd_user_del(struct ctl *, int, char **);
int	cmd_user_list(struct ctl *, int, char **);
int	cmd_user_passwd(struct ctl *, int, char **);
int	cmd_user_suspend(struct ctl *, int, char **);
int	cmd_user_resume(struct ctl *, int, char **);
int	cmd_user_quota(struct ctl *, int, char **);
int	cmd_user_purge(struct ctl *, int, char **);
int	cmd_alias_add(struct ctl *, int, char **);
int	cmd_alias_del(struct ctl *, int, char **);
int	cmd_alias_list(struct ctl *, int, char **);
int	cmd_group_add(struct ctl *, int, char **);
int	cmd_group_del(struct ctl *, int, char **);
int	cmd_group_members(struct ctl *, int, char **);
int	cmd_group_list(struct ctl *, int, char **);
int	cmd_resolve(struct ctl *, int, char **);
int	cmd_archive_set(struct ctl *, int, char **);
int	cmd_archive_expire(struct ctl *, int, char **);
int	cmd_dovecot_config(struct ctl *, int, char **);
int	cmd_quota_warning(struct ctl *, int, char **);
int	cmd_dkim_keygen(struct ctl *, int, char **);
int	cmd_dkim_show(struct ctl *, int, char **);
int	cmd_dns(struct ctl *, int, char **);
int	cmd_dns_check(struct ctl *, int, char **);
int	cmd_config_check(struct ctl *, int, char **);
int	cmd_config_defaults(struct ctl *, int, char **);
int	cmd_report(struct ctl *, int, char **);
/* queue.c */
int	cmd_backup_create(struct ctl *, int, char **);
int	cmd_backup_restore(struct ctl *, int, char **);
int	cmd_queue_list(struct ctl *, int, char **);
int	cmd_queue_show(struct ctl *, int, char **);
int	cmd_queue_flush(struct ctl *, int, char **);
int	cmd_queue_retry(struct ctl *, int, char **);
int	cmd_queue_hold(struct ctl *, int, char **);
int	cmd_queue_release(struct ctl *, int, char **);
int	cmd_queue_delete(struct ctl *, int, char **);

/* dkim.c: the records of the domain's DKIM keys (all, or selector only)
 * appended to list as {selector, name, type, record}; -1 when a key file
 * is unusable (the others are still listed). */
int	dkim_domain_records(struct ctl *c, const char *domain, const char *only,
	    json_t *list);

/* Shared by dns.c and report.c. */
struct dns_expect {
	char	 name[300];	/* owner name, absolute, no trailing dot */
	char	 type[8];	/* "MX", "TXT", "SRV", "CNAME" */
	char	 value[2048];	/* as in a zone file (TXT without quotes) */
	char	 prefix[64];	/* TXT: a record starting with this counts */
};
/* The records a domain should publish; -1 when out of memory. */
int	dns_expected(struct ctl *c, const char *domain,
	    struct dns_expect **out, size_t *n);
/* Check one domain; fills j (per record status) and returns the number
 * of problems, or -1 when the DNS server cannot be used. */
int	dns_check_domain(struct ctl *c, const char *domain, json_t *list,
	    int print);

/* resolve.c: query server ("ip:port" or "ip") for name/type; answers as
 * zone-file values ("10 mx.example.", "0 1 993 imap.example.", TXT
 * strings joined).  Returns the number of answers, 0 for none/NXDOMAIN,
 * -1 on failure (message in err). */
int	resolve_query(const char *server, const char *name, const char *type,
	    int timeout_ms, char ***answers_r, char *err, size_t errsz);
void	resolve_free(char **answers, int n);

#endif
