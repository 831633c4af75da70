/*
 * main.c - edgemailctl: global options, the command table, help, and the
 * helpers every command uses (configuration, the directory under its
 * lock, passwords, LMTP delivery).
 *
 *   edgemailctl [-c CONFIG] [-o key=value]... [--json] COMMAND [ARGS]
 *
 * Exit codes: 0 done, 1 error, 2 usage.  Every command takes --help.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "lib/conf.h"
#include "lib/directory.h"
#include "lib/log.h"
#include "lmtp/lmtp.h"

#define DEFAULT_CONFIG	"/var/lib/edgemail/edgemail.conf"

const struct ctl_cmd ctl_cmds[] = {
	{ "domain add", cmd_domain_add, "DOMAIN [--admin ADDR] [--aliases LIST]",
	    "Add a domain.  With --admin, the admin aliases (postmaster, abuse, "
	    "admin, root, nobody, dmarc-report; or the comma-separated LIST, "
	    "\"none\" for none) are created pointing at ADDR, which must be an "
	    "existing mailbox or an outside address.", 0 },
	{ "domain admin", cmd_domain_admin, "DOMAIN ADDR [--aliases LIST]",
	    "Make ADDR the domain's admin: create or repoint its admin aliases "
	    "(see domain add).", 0 },
	{ "domain del", cmd_domain_del, "DOMAIN [--force]",
	    "Remove a domain.  Refused while it has mailboxes; its aliases and "
	    "groups are removed only with --force.", 0 },
	{ "domain list", cmd_domain_list, "",
	    "List the domains with their admin, archive and counts.", 0 },
	{ "user add", cmd_user_add, "ADDR [--password-stdin] [--quota SIZE]",
	    "Add a mailbox.  A strong password is generated and printed once; "
	    "with --password-stdin it is read from the first line of stdin.  "
	    "SIZE defaults to default_quota (e.g. 4G).", 0 },
	{ "user del", cmd_user_del, "ADDR",
	    "Remove a mailbox from the directory; its mail stays on disk "
	    "until user purge.", 0 },
	{ "user list", cmd_user_list, "[DOMAIN]",
	    "List mailboxes with state and quota.", 0 },
	{ "user passwd", cmd_user_passwd, "ADDR [--password-stdin]",
	    "Set a new password (generated and printed, or read from stdin).  "
	    "It takes effect at once.", 0 },
	{ "user suspend", cmd_user_suspend, "ADDR",
	    "Suspend a mailbox: new mail is refused (550 5.2.1), IMAP, POP3 "
	    "and SMTP AUTH logins are refused, stored mail is kept.", 0 },
	{ "user resume", cmd_user_resume, "ADDR", "Undo user suspend.", 0 },
	{ "user quota", cmd_user_quota, "ADDR SIZE|none",
	    "Set the storage quota of a mailbox (none: Dovecot's default).", 0 },
	{ "user purge", cmd_user_purge, "ADDR",
	    "Delete the mail of a mailbox that was removed with user del.", 0 },
	{ "alias add", cmd_alias_add, "SOURCE TARGET... [--force]",
	    "Add an alias (virtual(5)): SOURCE local@domain, or @domain for "
	    "the domain's catch-all; TARGETs are local or outside addresses.  "
	    "Loops, unknown local targets and lists over max_group_targets are "
	    "refused (--force accepts unknown local targets).", 0 },
	{ "alias del", cmd_alias_del, "SOURCE [TARGET...]",
	    "Remove an alias, or only some of its targets.", 0 },
	{ "alias list", cmd_alias_list, "[DOMAIN]", "List aliases.", 0 },
	{ "group add", cmd_group_add, "GROUP MEMBER... [--force]",
	    "Create a group (distribution list) or add members; at most "
	    "max_group_targets members.", 0 },
	{ "group del", cmd_group_del, "GROUP [MEMBER...]",
	    "Remove a group, or only some members.", 0 },
	{ "group members", cmd_group_members, "GROUP [--expand]",
	    "List a group's members (--expand: the mailboxes and forwards "
	    "they resolve to).", 0 },
	{ "group list", cmd_group_list, "[DOMAIN]", "List groups.", 0 },
	{ "resolve", cmd_resolve, "ADDR...",
	    "Show what the directory does with a recipient address: the "
	    "mailboxes and forwards it expands to, or the refusal.", 0 },
	{ "archive set", cmd_archive_set, "DOMAIN MAILBOX|off [--create]",
	    "Copy every inbound and outbound message of the domain into the "
	    "archive MAILBOX (--create: add the mailbox, printing its "
	    "password); off turns archiving off.", 0 },
	{ "archive expire", cmd_archive_expire,
	    "[DOMAIN] [--days N] [--dry-run]",
	    "Delete archived mail older than archive_retention_days (or N) "
	    "days, by the Maildir files' dates.  Run it daily.", 0 },
	{ "dkim keygen", cmd_dkim_keygen,
	    "DOMAIN [--type rsa|ed25519] [--selector SEL] [--force]",
	    "Make a DKIM key (RSA 2048 or Ed25519) in "
	    "dkim_keys_dir/DOMAIN/SEL.key and print its DNS TXT record.", 0 },
	{ "dkim show", cmd_dkim_show, "DOMAIN [--selector SEL]",
	    "Print the DNS TXT records of the domain's DKIM keys.", 0 },
	{ "dns check", cmd_dns_check, "DOMAIN",
	    "Query DNS (dns_server) for every record of dns DOMAIN and report "
	    "what is missing or wrong; exit 1 when anything is.", 0 },
	{ "dns", cmd_dns, "DOMAIN",
	    "Print every DNS record to publish for the domain: MX (Cloudflare "
	    "Email Routing), SPF, DKIM, DMARC, autoconfig/autodiscover, "
	    "RFC 6186 SRV.", 0 },
	{ "config check", cmd_config_check, "",
	    "Validate the configuration file and print every effective value "
	    "(set or default).", 0 },
	{ "config defaults", cmd_config_defaults, "",
	    "Print every key with its default and meaning (also: config "
	    "--defaults).", 0 },
	{ "dovecot-config", cmd_dovecot_config, "[--output FILE]",
	    "Write the whole Dovecot configuration for this edgemail.conf to "
	    "stdout or, atomically, to FILE.", 0 },
	{ "quota-warning", cmd_quota_warning, "PERCENT USER",
	    "Called by Dovecot when a mailbox passes quota_warning_percent: "
	    "delivers a warning to the user.", 1 },
	{ "report", cmd_report, "[--mail [ADDR]] [--no-dns]",
	    "A setup report: domains, mailboxes, DNS status, certificate "
	    "expiry, queue sizes.  --mail delivers it by LMTP to ADDR (default: "
	    "the first domain's admin).", 0 },
	{ "backup create", cmd_backup_create, "FILE [--no-mail]",
	    "Write the configuration, directory, keys, TLS files, both queues "
	    "and (unless --no-mail) the mailboxes into FILE (tar.gz, 0600); "
	    "safe while everything runs.", 0 },
	{ "backup restore", cmd_backup_restore, "FILE [--force]",
	    "Put a backup's files back where they were (the services "
	    "stopped); --force over a directory that has mailboxes.", 0 },
	{ "queue list", cmd_queue_list, "",
	    "List queued messages of both spools (inbound: edgemail-api, "
	    "outbound: edgemail-submit) with each recipient's state.", 0 },
	{ "queue show", cmd_queue_show, "ID",
	    "Show one queued message: envelope, recipients, header.", 0 },
	{ "queue flush", cmd_queue_flush, "",
	    "Try every deferred recipient again now.", 0 },
	{ "queue retry", cmd_queue_retry, "ID",
	    "Try one message's deferred recipients again now.", 0 },
	{ "queue hold", cmd_queue_hold, "ID",
	    "Keep a message in the queue: no delivery attempts until "
	    "release.", 0 },
	{ "queue release", cmd_queue_release, "ID", "Undo queue hold.", 0 },
	{ "queue delete", cmd_queue_delete, "ID",
	    "Remove a message from the queue without a bounce.", 0 },
	{ NULL, NULL, NULL, NULL, 0 }
};

/* ---- messages --------------------------------------------------------- */

static void
vmsg(struct ctl *c, const char *kind, const char *fmt, va_list ap)
{
	fprintf(stderr, "edgemailctl: %s%s%s", c->cur ? c->cur->name : "",
	    c->cur ? ": " : "", kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int
ctl_fail(struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(c, "", fmt, ap);
	va_end(ap);
	return CTL_ERR;
}

void
ctl_warn(struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(c, "warning: ", fmt, ap);
	va_end(ap);
}

int
ctl_usage(struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		vmsg(c, "", fmt, ap);
		va_end(ap);
	}
	if (c->cur != NULL)
		fprintf(stderr, "usage: edgemailctl %s %s\n", c->cur->name,
		    c->cur->usage);
	return CTL_USAGE;
}

int
ctl_help(struct ctl *c)
{
	const char *p;
	size_t col = 0;

	printf("usage: edgemailctl [-c CONFIG] [-o key=value]... [--json] "
	    "%s %s\n\n", c->cur->name, c->cur->usage);
	/* The help paragraph, wrapped at 72 columns. */
	for (p = c->cur->help; *p != '\0';) {
		size_t w = strcspn(p, " ");

		if (col > 0 && col + 1 + w > 72) {
			putchar('\n');
			col = 0;
		} else if (col > 0) {
			putchar(' ');
			col++;
		}
		printf("%.*s", (int)w, p);
		col += w;
		p += w;
		while (*p == ' ')
			p++;
	}
	putchar('\n');
	return CTL_OK;
}

int
ctl_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(j);
	return CTL_OK;
}

int
ctl_getopt(struct ctl *c, int argc, char **argv, const char *shortopts,
    const struct option *longopts)
{
	static struct option all[32];
	static char sopts[64];
	size_t n = 0;
	int ch;

	while (longopts != NULL && longopts[n].name != NULL && n < 28) {
		all[n] = longopts[n];
		n++;
	}
	all[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	all[n++] = (struct option){ "json", no_argument, NULL, 'J' };
	all[n] = (struct option){ NULL, 0, NULL, 0 };
	/* Options may follow the arguments ("user add ADDR --quota 1G"). */
	snprintf(sopts, sizeof(sopts), ":h%s", shortopts);
	for (;;) {
		ch = getopt_long(argc, argv, sopts, all, NULL);
		if (ch == 'J') {
			c->json = 1;
			continue;
		}
		if (ch == '?') {
			fprintf(stderr, "edgemailctl: %s: unknown option %s\n",
			    c->cur->name, argv[optind - 1]);
			return '?';
		}
		if (ch == ':') {
			fprintf(stderr, "edgemailctl: %s: option %s needs a "
			    "value\n", c->cur->name, argv[optind - 1]);
			return '?';
		}
		return ch;
	}
}

/* ---- configuration ------------------------------------------------------ */

const char *
ctl_get(struct ctl *c, const char *key)
{
	const char *v = conf_get(c->conf, key);

	return v ? v : "";
}

int
ctl_get_ll(struct ctl *c, const char *key, long long min, long long max,
    long long *v)
{
	char err[256];

	if (conf_get_ll(c->conf, key, min, max, v, err, sizeof(err)) != 0)
		return ctl_fail(c, "%s", err) ? -1 : -1;
	return 0;
}

const char *
ctl_hostname(struct ctl *c)
{
	static char host[256];
	const char *h = ctl_get(c, "hostname");

	if (h[0] != '\0')
		return h;
	if (host[0] == '\0' && gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "localhost");
	return host;
}

size_t
ctl_max_targets(struct ctl *c)
{
	long long v = DIR_DEFAULT_GROUP_MAX;
	char err[256];

	if (conf_get_ll(c->conf, "max_group_targets", 1, 100000, &v, err,
	    sizeof(err)) != 0)
		ctl_warn(c, "%s (using %d)", err, DIR_DEFAULT_GROUP_MAX);
	return (size_t)v;
}

/* ---- the directory ------------------------------------------------------ */

struct dir *
ctl_dir_read(struct ctl *c)
{
	char err[1024];
	struct dir *d;

	if ((d = dir_load(ctl_get(c, "directory_dir"), err, sizeof(err))) ==
	    NULL)
		ctl_fail(c, "%s", err);
	return d;
}

struct dir *
ctl_dir_edit(struct ctl *c, int *lockfd)
{
	char err[1024];
	struct dir *d;

	*lockfd = -1;
	if (dir_lock(ctl_get(c, "directory_dir"), lockfd, err, sizeof(err)) !=
	    0) {
		ctl_fail(c, "%s", err);
		return NULL;
	}
	if ((d = dir_load(ctl_get(c, "directory_dir"), err, sizeof(err))) ==
	    NULL) {
		ctl_fail(c, "%s", err);
		dir_unlock(lockfd);
	}
	return d;
}

int
ctl_dir_commit(struct ctl *c, struct dir **dp, int *lockfd)
{
	char err[1024];
	int rc = CTL_OK;

	if (dir_save(*dp, err, sizeof(err)) != 0)
		rc = ctl_fail(c, "%s", err);
	dir_free(dp);
	dir_unlock(lockfd);
	return rc;
}

void
ctl_dir_abort(struct dir **dp, int *lockfd)
{
	dir_free(dp);
	dir_unlock(lockfd);
}

/* ---- passwords ---------------------------------------------------------- */

void
ctl_password_new(char *out, size_t outsz)
{
	/* 57 symbols without look-alikes (0/O, 1/l/I): 20 of them carry
	 * about 116 bits. */
	static const char alpha[] =
	    "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	unsigned char r[64];
	size_t i, n = outsz - 1 < 20 ? outsz - 1 : 20, alen = strlen(alpha);

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		fatalx("getrandom: %s", strerror(errno));
	for (i = 0; i < n; i++) {
		/* Rejection sampling keeps the symbols uniform. */
		size_t j = i;

		while (r[j % sizeof(r)] >= 256 - 256 % alen) {
			if (getrandom(&r[j % sizeof(r)], 1, 0) != 1)
				fatalx("getrandom: %s", strerror(errno));
		}
		out[i] = alpha[r[j % sizeof(r)] % alen];
	}
	out[n] = '\0';
	explicit_bzero(r, sizeof(r));
}

int
ctl_password_stdin(struct ctl *c, char *out, size_t outsz)
{
	size_t n;

	if (fgets(out, (int)outsz, stdin) == NULL) {
		ctl_fail(c, "no password on stdin");
		return -1;
	}
	n = strlen(out);
	if (n > 0 && out[n - 1] != '\n' && !feof(stdin)) {
		ctl_fail(c, "password too long (at most %zu bytes)", outsz - 2);
		return -1;
	}
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	if (n < 8) {
		ctl_fail(c, "password too short (at least 8 characters)");
		return -1;
	}
	return 0;
}

int
ctl_run(struct ctl *c, char *const argv[], int ok_max)
{
	pid_t pid;
	int st;

	if ((pid = fork()) < 0)
		return ctl_fail(c, "fork: %s", strerror(errno));
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "edgemailctl: %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return ctl_fail(c, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) > ok_max)
		return ctl_fail(c, "%s failed (exit %d)", argv[0],
		    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return CTL_OK;
}

/* Run `doveadm -O pw -s SCHEME [-r COST]`, the password twice on stdin. */
int
ctl_password_hash(struct ctl *c, const char *plain, char *out, size_t outsz)
{
	const char *scheme = ctl_get(c, "password_scheme");
	char cost[32], buf[1024];
	long long rounds = 0;
	int in[2], outp[2], st;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	if (ctl_get_ll(c, "password_cost", 0, 1000000000, &rounds) != 0)
		return -1;
	snprintf(cost, sizeof(cost), "%lld", rounds);
	if (strpbrk(plain, "\r\n") != NULL) {
		ctl_fail(c, "a password cannot contain a line break");
		return -1;
	}
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(outp, O_CLOEXEC) != 0)
		return ctl_fail(c, "pipe: %s", strerror(errno)) ? -1 : -1;
	if ((pid = fork()) < 0)
		return ctl_fail(c, "fork: %s", strerror(errno)) ? -1 : -1;
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(outp[1], 1);
		if (rounds > 0)
			execlp("doveadm", "doveadm", "-O", "pw", "-s", scheme,
			    "-r", cost, (char *)NULL);
		else
			execlp("doveadm", "doveadm", "-O", "pw", "-s", scheme,
			    (char *)NULL);
		fprintf(stderr, "edgemailctl: doveadm: %s\n", strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(outp[1]);
	{
		struct buf b;

		buf_init(&b, 4096);
		buf_printf(&b, "%s\n%s\n", plain, plain);
		(void)!write(in[1], b.data, b.len);
		explicit_bzero(b.data, b.len);
		buf_free(&b);
	}
	close(in[1]);
	while (n + 1 < sizeof(buf) &&
	    (r = read(outp[0], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	close(outp[0]);
	buf[n] = '\0';
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || buf[0] != '{' ||
	    strchr(buf, '\n') != NULL) {
		ctl_fail(c, "doveadm pw -s %s failed (is the scheme known to "
		    "Dovecot?)", scheme);
		return -1;
	}
	if (str_copy(out, outsz, buf) != 0) {
		ctl_fail(c, "password hash too long");
		return -1;
	}
	return 0;
}

/* ---- LMTP --------------------------------------------------------------- */

int
ctl_lmtp_deliver(struct ctl *c, const char *from, const char *rcpt,
    const char *msg, size_t len, struct reply *r)
{
	struct lmtp_server srv;
	struct lmtp_msg m;
	const char *rcpts[1];
	long long timeout = 60;
	char err[256];

	if (lmtp_server_parse(ctl_get(c, "lmtp_server"), &srv) != 0) {
		reply_set(r, 451, "4.3.5", "bad lmtp_server '%s'",
		    ctl_get(c, "lmtp_server"));
		return -1;
	}
	if (conf_get_duration(c->conf, "lmtp_timeout", &timeout, err,
	    sizeof(err)) != 0)
		timeout = 60;
	memset(&m, 0, sizeof(m));
	m.fd = -1;
	m.mem = msg;
	m.mem_len = len;
	rcpts[0] = rcpt;
	lmtp_deliver(&srv, ctl_hostname(c), (int)timeout * 1000, from, rcpts, 1,
	    &m, r);
	return r->cls == REPLY_OK ? 0 : -1;
}

/* ---- main --------------------------------------------------------------- */

static void
overview(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: edgemailctl [-c CONFIG] [-o key=value]... [--json] "
	    "COMMAND [ARGS]\n\ncommands (each takes --help):\n");
	for (i = 0; ctl_cmds[i].name != NULL; i++)
		if (!ctl_cmds[i].hidden)
			fprintf(fp, "  %s %s\n", ctl_cmds[i].name,
			    ctl_cmds[i].usage);
	fprintf(fp, "\n-c CONFIG defaults to %s; -o overrides one key.\n"
	    "Exit status: 0 done, 1 error, 2 usage.\n", DEFAULT_CONFIG);
}

/* The command named by argv[0] (and argv[1]); *words_r: 1 or 2. */
static const struct ctl_cmd *
find_cmd(int argc, char **argv, int *words_r)
{
	char two[128];
	size_t i;

	if (argc >= 2) {
		snprintf(two, sizeof(two), "%s %s", argv[0], argv[1]);
		for (i = 0; ctl_cmds[i].name != NULL; i++)
			if (strcmp(ctl_cmds[i].name, two) == 0) {
				*words_r = 2;
				return &ctl_cmds[i];
			}
	}
	for (i = 0; ctl_cmds[i].name != NULL; i++)
		if (strcmp(ctl_cmds[i].name, argv[0]) == 0) {
			*words_r = 1;
			return &ctl_cmds[i];
		}
	return NULL;
}

/* "user" alone or with an unknown subcommand: list the group. */
static int
group_usage(const char *group, const char *bad)
{
	size_t i, gl = strlen(group);
	int found = 0, help;
	FILE *fp;

	help = bad != NULL && (strcmp(bad, "--help") == 0 ||
	    strcmp(bad, "-h") == 0);
	fp = help ? stdout : stderr;
	if (help)
		bad = NULL;
	for (i = 0; ctl_cmds[i].name != NULL; i++)
		if (strncmp(ctl_cmds[i].name, group, gl) == 0 &&
		    ctl_cmds[i].name[gl] == ' ') {
			if (!found) {
				if (bad != NULL)
					fprintf(stderr, "edgemailctl: %s: "
					    "unknown command '%s'\n", group,
					    bad);
				fprintf(fp, "usage:\n");
			}
			found = 1;
			fprintf(fp, "  edgemailctl %s %s\n",
			    ctl_cmds[i].name, ctl_cmds[i].usage);
		}
	if (found && help)
		return CTL_OK;
	if (!found) {
		fprintf(stderr, "edgemailctl: unknown command '%s'\n", group);
		overview(stderr);
	}
	return CTL_USAGE;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct ctl c;
	const struct ctl_cmd *cmd;
	char *overrides[64], err[1024];
	int noverrides = 0, ch, i, words;

	memset(&c, 0, sizeof(c));
	c.conf_path = getenv("EDGEMAIL_CONF") ? getenv("EDGEMAIL_CONF") :
	    DEFAULT_CONFIG;
	log_init("edgemailctl", LOG_LVL_WARN);
	while ((ch = getopt_long(argc, argv, "+c:o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			c.conf_path = optarg;
			break;
		case 'o':
			if (noverrides == 64) {
				fprintf(stderr, "edgemailctl: too many -o\n");
				return CTL_USAGE;
			}
			overrides[noverrides++] = optarg;
			break;
		case 'J':
			c.json = 1;
			break;
		case 'h':
			overview(stdout);
			return CTL_OK;
		default:
			overview(stderr);
			return CTL_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		overview(stderr);
		return CTL_USAGE;
	}
	/* "config --defaults" is "config defaults". */
	if (strcmp(argv[0], "config") == 0 && argc >= 2 &&
	    strcmp(argv[1], "--defaults") == 0)
		argv[1] = (char *)"defaults";
	if ((cmd = find_cmd(argc, argv, &words)) == NULL)
		return group_usage(argv[0], argc > 1 ? argv[1] : NULL);
	c.cur = cmd;
	argc -= words - 1;
	argv += words - 1;

	c.conf = conf_new();
	if (access(c.conf_path, F_OK) == 0) {
		if (conf_load(c.conf, c.conf_path, err, sizeof(err)) != 0) {
			fprintf(stderr, "edgemailctl: config: %s\n", err);
			return CTL_ERR;
		}
		c.conf_loaded = 1;
	} else if (errno != ENOENT) {
		fprintf(stderr, "edgemailctl: %s: %s\n", c.conf_path,
		    strerror(errno));
		return CTL_ERR;
	}
	for (i = 0; i < noverrides; i++)
		if (conf_set_line(c.conf, overrides[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "edgemailctl: -o %s: %s\n", overrides[i],
			    err);
			return CTL_USAGE;
		}
	optind = 0;		/* a fresh getopt for the command */
	i = cmd->fn(&c, argc, argv);
	fflush(stdout);
	conf_free(&c.conf);
	return i;
}
