/*
 * dovecot.c - `edgemailctl dovecot-config`: the whole Dovecot 2.3
 * configuration, written from edgemail.conf, for the dev stack and for
 * production alike (deploy/stack.sh calls it; tests/golden/ holds the
 * expected output).  Also `quota-warning`, the hook Dovecot runs when a
 * mailbox passes quota_warning_percent.
 *
 * What the configuration does: passwd-file passdb/userdb on the
 * directory's users file (Dovecot re-reads it when it changes: new
 * passwords and suspensions apply at once), Maildir under mail_dir,
 * IMAP/POP3 with STARTTLS and over TLS, LMTP on the socket the API and
 * the relay use, the auth-client socket of SMTP AUTH, the quota plugin
 * (per-user rule from the users file, default_quota otherwise, a warning,
 * quota_max_mail_size above max_message_size), Sieve with ManageSieve and
 * the global spam script filing into Junk.  Everything lives under
 * dovecot_dir; it never reads /etc/dovecot.
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "ctl/ctl.h"
#include "lib/conf.h"
#include "lib/directory.h"
#include "lib/log.h"

/* Resolve mail_owner ("name" or "uid:gid") to ids and a user name. */
static int
mail_owner(struct ctl *c, long long *uid, long long *gid, char *name,
    size_t namesz)
{
	const char *o = ctl_get(c, "mail_owner");
	const char *colon = strchr(o, ':');
	struct passwd *pw;

	if (colon != NULL) {
		char u[32];

		if ((size_t)(colon - o) >= sizeof(u))
			return ctl_fail(c, "bad mail_owner '%s'", o) ? -1 : -1;
		memcpy(u, o, (size_t)(colon - o));
		u[colon - o] = '\0';
		if (str_to_ll(u, 0, INT_MAX, uid) != 0 ||
		    str_to_ll(colon + 1, 0, INT_MAX, gid) != 0)
			return ctl_fail(c, "bad mail_owner '%s' (want a user "
			    "name or UID:GID)", o) ? -1 : -1;
		pw = getpwuid((uid_t)*uid);
		snprintf(name, namesz, "%s", pw ? pw->pw_name : "");
	} else {
		if ((pw = getpwnam(o)) == NULL)
			return ctl_fail(c, "mail_owner: no user '%s' on this "
			    "system", o) ? -1 : -1;
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
		snprintf(name, namesz, "%s", o);
	}
	if (*uid == 0)
		return ctl_fail(c, "mail_owner must not be root (Dovecot "
		    "refuses to store mail as root)") ? -1 : -1;
	return 0;
}

/* A size in the largest unit that divides it ("26M"). */
static void
size_text(unsigned long long n, char *out, size_t outsz)
{
	if (n != 0 && n % (1ULL << 30) == 0)
		snprintf(out, outsz, "%lluG", n >> 30);
	else if (n != 0 && n % (1ULL << 20) == 0)
		snprintf(out, outsz, "%lluM", n >> 20);
	else if (n != 0 && n % 1024 == 0)
		snprintf(out, outsz, "%lluk", n >> 10);
	else
		snprintf(out, outsz, "%llu", n);
}

/* The postmaster address: the setting, else postmaster@ the first domain
 * of the directory, else postmaster@ the host name. */
static void
postmaster(struct ctl *c, char *out, size_t outsz)
{
	struct dir *d;
	char err[512];
	const char *pm = ctl_get(c, "postmaster_address");

	if (pm[0] != '\0') {
		snprintf(out, outsz, "%s", pm);
		return;
	}
	d = dir_load(ctl_get(c, "directory_dir"), err, sizeof(err));
	if (d != NULL && dir_count(d, DIR_DOMAINS) > 0)
		snprintf(out, outsz, "postmaster@%s", dir_domain_at(d, 0)->name);
	else
		snprintf(out, outsz, "postmaster@%s", ctl_hostname(c));
	dir_free(&d);
}

/* FNV-1a of the Dovecot directory: one instance name per state dir. */
static unsigned long
instance_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return (unsigned long)h;
}

static int
check_value(struct ctl *c, const char *key, const char *v)
{
	/* Values go into a Dovecot config file verbatim: no line breaks,
	 * no braces, no quotes that would change its structure. */
	if (strpbrk(v, "\r\n{}\"") != NULL)
		return ctl_fail(c, "%s: characters not allowed in a Dovecot "
		    "setting: '%s'", key, v) ? -1 : -1;
	return 0;
}

static int
port_of(struct ctl *c, const char *key, long long *p)
{
	return ctl_get_ll(c, key, 1, 65535, p);
}

/* Write the configuration into b; -1 with a message printed. */
static int
dovecot_conf(struct ctl *c, struct buf *b)
{
	static const char *const checked[] = {
		"dovecot_dir", "directory_dir", "mail_dir", "state_dir",
		"tls_cert_file", "tls_key_file", "dovecot_listen",
		"dovecot_user", "dovecot_group", "dovecot_login_user",
		"lmtp_server", "dovecot_auth_socket", "password_scheme",
		"default_quota", "hostname", NULL
	};
	const char *dd = ctl_get(c, "dovecot_dir");
	const char *lmtp = ctl_get(c, "lmtp_server");
	const char *diru = ctl_get(c, "directory_dir");
	const char *mail = ctl_get(c, "mail_dir");
	long long uid, gid, imap, imaps, pop3, pop3s, sieve, warn;
	unsigned long long maxsize;
	char owner[256], pm[300], maxmail[32], self[PATH_MAX], err[256];
	char qw_listener[300], confpath[PATH_MAX];
	ssize_t n;
	int i, penalty;

	for (i = 0; checked[i] != NULL; i++)
		if (check_value(c, checked[i], ctl_get(c, checked[i])) != 0)
			return -1;
	if (mail_owner(c, &uid, &gid, owner, sizeof(owner)) != 0 ||
	    port_of(c, "imap_port", &imap) != 0 ||
	    port_of(c, "imaps_port", &imaps) != 0 ||
	    port_of(c, "pop3_port", &pop3) != 0 ||
	    port_of(c, "pop3s_port", &pop3s) != 0 ||
	    port_of(c, "managesieve_port", &sieve) != 0 ||
	    ctl_get_ll(c, "quota_warning_percent", 1, 100, &warn) != 0)
		return -1;
	if (conf_get_size(c->conf, "max_message_size", &maxsize, err,
	    sizeof(err)) != 0 || conf_get_bool(c->conf,
	    "dovecot_login_penalty", &penalty, err, sizeof(err)) != 0)
		return ctl_fail(c, "%s", err) ? -1 : -1;
	/* The API refuses bodies over max_message_size itself; the extra
	 * megabyte leaves room for the trace fields it adds, so that a
	 * message it accepted is never refused by Dovecot with a 451. */
	size_text(maxsize + (1ULL << 20), maxmail, sizeof(maxmail));
	postmaster(c, pm, sizeof(pm));
	if (realpath(c->conf_path, confpath) == NULL)
		snprintf(confpath, sizeof(confpath), "%s", c->conf_path);
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0)
		snprintf(self, sizeof(self), "edgemailctl");
	else
		self[n] = '\0';
	if (strncmp(lmtp, "unix:", 5) != 0 && lmtp[0] != '/')
		return ctl_fail(c, "lmtp_server must be a unix socket for the "
		    "Dovecot configuration (unix:/path), not '%s'", lmtp) ? -1 :
		    -1;
	if (strncmp(lmtp, "unix:", 5) == 0)
		lmtp += 5;
	if (owner[0] != '\0')
		snprintf(qw_listener, sizeof(qw_listener), "    user = %s\n"
		    "    mode = 0600\n", owner);
	else
		snprintf(qw_listener, sizeof(qw_listener), "    mode = 0666\n");

	buf_printf(b,
"# dovecot.conf - written by `edgemailctl dovecot-config` from\n"
"# %s.\n"
"# Do not edit: change edgemail.conf and run the command again.\n"
"# Start with `dovecot -c %s/dovecot.conf`; it never reads /etc/dovecot.\n"
"\n"
"# -- process and paths -------------------------------------------------\n"
"\n"
"instance_name = edgemail-%08lx\n"
"# Not %s itself: Dovecot puts a dovecot.conf link in base_dir.\n"
"base_dir = %s/base\n"
"state_dir = %s/state\n"
"listen = %s\n"
"protocols = imap pop3 lmtp sieve\n"
"hostname = %s\n"
"postmaster_address = %s\n"
"\n"
"default_internal_user = %s\n"
"default_internal_group = %s\n"
"default_login_user = %s\n"
"first_valid_uid = %lld\n"
"last_valid_uid = %lld\n"
"first_valid_gid = %lld\n"
"last_valid_gid = %lld\n"
"\n"
"log_path = %s/dovecot.log\n"
"info_log_path = %s/dovecot.log\n"
"log_timestamp = \"%%Y-%%m-%%dT%%H:%%M:%%S \"\n"
"auth_verbose = yes\n"
"auth_verbose_passwords = no\n"
"\n"
"# Mail clients (and the tests) open many connections at once.\n"
"mail_max_userip_connections = 200\n"
"default_idle_kill = 30 secs\n"
"shutdown_clients = yes\n"
"# No stats service: nothing reads it, and a process that connects to it\n"
"# while the master shuts down waits 5 s for an answer.\n"
"stats_writer_socket_path =\n"
"version_ignore = yes\n"
"\n",
	    c->conf_loaded ? confpath : "the built-in defaults", dd,
	    instance_hash(dd), dd, dd, dd, ctl_get(c, "dovecot_listen"),
	    ctl_hostname(c), pm, ctl_get(c, "dovecot_user"),
	    ctl_get(c, "dovecot_group"), ctl_get(c, "dovecot_login_user"),
	    uid, uid, gid, gid, dd, dd);

	buf_printf(b,
"# -- TLS ---------------------------------------------------------------\n"
"\n"
"# STARTTLS on the plain ports, implicit TLS on imaps/pop3s.\n"
"ssl = yes\n"
"ssl_cert = <%s\n"
"ssl_key = <%s\n"
"ssl_min_protocol = TLSv1.2\n"
"ssl_prefer_server_ciphers = yes\n"
"\n"
"# -- users (the directory's passwd-file) --------------------------------\n"
"\n"
"# user@domain:{SCHEME}hash::::::userdb_quota_rule=*:storage=4G [nologin]\n"
"# Dovecot re-reads the file when it changes; nologin (edgemailctl user\n"
"# suspend) refuses IMAP, POP3, ManageSieve and SMTP AUTH logins.  No auth\n"
"# cache: a new password or a suspension applies to the next login.\n"
"auth_username_format = %%Lu\n"
"auth_mechanisms = plain login\n"
"disable_plaintext_auth = yes\n"
"%s"
"\n"
"passdb {\n"
"  driver = passwd-file\n"
"  args = scheme=%s username_format=%%Lu %s/users\n"
"}\n"
"userdb {\n"
"  driver = passwd-file\n"
"  args = username_format=%%Lu %s/users\n"
"  default_fields = home=%s/%%d/%%n\n"
"  override_fields = uid=%lld gid=%lld\n"
"}\n"
"\n",
	    ctl_get(c, "tls_cert_file"), ctl_get(c, "tls_key_file"),
	    penalty ? "" : "# dovecot_login_penalty = no: a wrong password "
	    "does not slow the\n# logins that follow it (no failure delay, no "
	    "per-IP penalty).\nauth_failure_delay = 0\n",
	    ctl_get(c, "password_scheme"), diru, diru, mail, uid, gid);

	buf_printf(b,
"# -- mail storage --------------------------------------------------------\n"
"\n"
"mail_location = maildir:~/Maildir\n"
"mail_uid = %lld\n"
"mail_gid = %lld\n"
"mail_plugins = $mail_plugins quota\n"
"pop3_uidl_format = %%08Xu%%08Xv\n"
"recipient_delimiter = +\n"
"lda_mailbox_autocreate = yes\n"
"lda_mailbox_autosubscribe = yes\n"
"\n"
"namespace inbox {\n"
"  inbox = yes\n"
"  separator = /\n"
"  mailbox Drafts {\n"
"    special_use = \\Drafts\n"
"    auto = subscribe\n"
"  }\n"
"  mailbox Junk {\n"
"    special_use = \\Junk\n"
"    auto = subscribe\n"
"  }\n"
"  mailbox Sent {\n"
"    special_use = \\Sent\n"
"    auto = subscribe\n"
"  }\n"
"  mailbox Trash {\n"
"    special_use = \\Trash\n"
"    auto = subscribe\n"
"  }\n"
"}\n"
"\n"
"plugin {\n"
"  quota = maildir:User quota\n"
"  # Users without a quota of their own in the users file.\n"
"  quota_rule = *:storage=%s\n"
"  quota_rule2 = Trash:storage=+10%%%%\n"
"  quota_warning = storage=%lld%%%% quota-warning %lld %%u\n"
"  quota_max_mail_size = %s\n"
"  quota_status_success = DUNNO\n"
"  quota_status_nouser = DUNNO\n"
"  quota_status_overquota = \"552 5.2.2 Mailbox is full\"\n"
"\n"
"  # Users' filters (ManageSieve), vacation and forwarding rules.\n"
"  sieve = file:~/sieve;active=~/.dovecot.sieve\n"
"  # Runs before every user's own script: spam goes to Junk.\n"
"  sieve_before = %s/sieve/junk.sieve\n"
"  # The global script drops repeated deliveries of one\n"
"  # X-Edgemail-Delivery-Id for 14 days (the default cap is 2).\n"
"  sieve_duplicate_max_period = 14d\n"
"  sieve_max_redirects = 4\n"
"}\n"
"\n",
	    uid, gid, ctl_get(c, "default_quota"), warn, warn, maxmail,
	    ctl_get(c, "state_dir"));

	buf_printf(b,
"# -- protocols -----------------------------------------------------------\n"
"\n"
"protocol imap {\n"
"  mail_plugins = $mail_plugins imap_quota\n"
"}\n"
"protocol lmtp {\n"
"  mail_plugins = $mail_plugins sieve\n"
"  # Over-quota mailboxes are refused at RCPT (552 5.2.2), before DATA.\n"
"  lmtp_rcpt_check_quota = yes\n"
"}\n"
"protocol sieve {\n"
"}\n"
"\n"
"# -- listeners -----------------------------------------------------------\n"
"\n"
"# No chroot: it needs root, and the login processes already run as the\n"
"# unprivileged default_login_user.\n"
"service imap-login {\n"
"  chroot =\n"
"  inet_listener imap {\n"
"    port = %lld\n"
"  }\n"
"  inet_listener imaps {\n"
"    port = %lld\n"
"    ssl = yes\n"
"  }\n"
"}\n"
"service pop3-login {\n"
"  chroot =\n"
"  inet_listener pop3 {\n"
"    port = %lld\n"
"  }\n"
"  inet_listener pop3s {\n"
"    port = %lld\n"
"    ssl = yes\n"
"  }\n"
"}\n"
"service managesieve-login {\n"
"  chroot =\n"
"  inet_listener sieve {\n"
"    port = %lld\n"
"  }\n"
"}\n"
"service submission-login {\n"
"  chroot =\n"
"}\n"
"service imap-urlauth-login {\n"
"  chroot =\n"
"}\n"
"service lmtp {\n"
"  # Where the API and the relay deliver.\n"
"  unix_listener %s {\n"
"    mode = 0660\n"
"    user = %s\n"
"    group = %s\n"
"  }\n"
"  # Dovecot's own listener (base_dir/lmtp) is 0666: anyone on the\n"
"  # machine could deliver past the API's checks.  Closed.\n"
"  unix_listener lmtp {\n"
"    mode = 0\n"
"  }\n"
"}\n"
"service auth {\n"
"  # Where the relay checks SMTP AUTH passwords.\n"
"  unix_listener %s {\n"
"    mode = 0660\n"
"    user = %s\n"
"    group = %s\n"
"  }\n"
"  unix_listener auth-userdb {\n"
"    mode = 0660\n"
"    user = %s\n"
"    group = %s\n"
"  }\n"
"}\n"
"service auth-worker {\n"
"  user = %s\n"
"}\n"
"service anvil {\n"
"  chroot =\n"
"%s"
"}\n"
"# Run by the quota plugin when a mailbox passes the warning level.\n"
"service quota-warning {\n"
"  executable = script %s -c %s quota-warning\n"
"  user = %s\n"
"  unix_listener quota-warning {\n"
"%s"
"  }\n"
"}\n",
	    imap, imaps, pop3, pop3s, sieve, lmtp, ctl_get(c, "dovecot_user"),
	    ctl_get(c, "dovecot_group"), ctl_get(c, "dovecot_auth_socket"),
	    ctl_get(c, "dovecot_user"), ctl_get(c, "dovecot_group"),
	    ctl_get(c, "dovecot_user"), ctl_get(c, "dovecot_group"),
	    ctl_get(c, "dovecot_user"), penalty ? "" :
	    "  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n",
	    self, confpath, ctl_get(c, "dovecot_user"), qw_listener);
	return 0;
}

/* path, atomically, mode 0644 (read by Dovecot's processes). */
static int
write_file(struct ctl *c, const char *path, const char *data, size_t len)
{
	char tmp[PATH_MAX];
	FILE *fp;
	int fd, rc = CTL_OK;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	/* Never through a name someone else made (a symlink in a directory
	 * Dovecot's user may write). */
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0644)) < 0 || (fp = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		return ctl_fail(c, "%s: %s", tmp, strerror(errno));
	}
	(void)fchmod(fd, 0644);		/* whatever the umask */
	if (fwrite(data, 1, len, fp) != len || fflush(fp) != 0 ||
	    fsync(fileno(fp)) != 0)
		rc = ctl_fail(c, "%s: %s", tmp, strerror(errno));
	if (fclose(fp) != 0 && rc == CTL_OK)
		rc = ctl_fail(c, "%s: %s", tmp, strerror(errno));
	if (rc == CTL_OK && rename(tmp, path) != 0)
		rc = ctl_fail(c, "%s: %s", path, strerror(errno));
	if (rc != CTL_OK)
		unlink(tmp);
	return rc;
}

/* The directory FILE goes into, made if it is missing (on a new server
 * the first start makes dovecot_dir: edgemail-dovecot.service writes the
 * configuration into it before Dovecot runs). */
static int
make_parent(struct ctl *c, const char *file)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", file);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return CTL_OK;
	*slash = '\0';
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return ctl_fail(c, "%s: %s", dir, strerror(errno));
	return CTL_OK;
}

/*
 * The global script the configuration names (sieve_before), compiled
 * with the configuration just written: without it Pigeonhole skips it
 * quietly, and with it go the duplicate check that makes deliveries
 * exactly-once and the filing into Junk.
 */
static int
install_sieve(struct ctl *c, const char *conf)
{
	char dir[PATH_MAX], src[PATH_MAX], bin[PATH_MAX];
	char *argv[] = { "sievec", "-c", (char *)conf, src, bin, NULL };
	int rc;

	snprintf(dir, sizeof(dir), "%s/sieve", ctl_get(c, "state_dir"));
	snprintf(src, sizeof(src), "%s/junk.sieve", dir);
	snprintf(bin, sizeof(bin), "%s/junk.svbin", dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return ctl_fail(c, "%s: %s", dir, strerror(errno));
	rc = write_file(c, src, junk_sieve, strlen(junk_sieve));
	if (rc != CTL_OK || (rc = ctl_run(c, argv, 0)) != CTL_OK)
		return rc;
	if (chmod(bin, 0644) != 0)
		return ctl_fail(c, "%s: %s", bin, strerror(errno));
	return CTL_OK;
}

int
cmd_dovecot_config(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	const char *out = NULL;
	struct buf b;
	int ch, rc = CTL_OK;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 'o':
			out = optarg;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind != 0)
		return ctl_usage(c, "no argument expected");
	buf_init(&b, 1024 * 1024);
	if (dovecot_conf(c, &b) != 0) {
		buf_free(&b);
		return CTL_ERR;
	}
	if (out == NULL)
		fwrite(buf_cstr(&b), 1, b.len, stdout);
	else if ((rc = make_parent(c, out)) == CTL_OK &&
	    (rc = write_file(c, out, buf_cstr(&b), b.len)) == CTL_OK)
		rc = install_sieve(c, out);
	buf_free(&b);
	return rc;
}

/* quota-warning PERCENT USER: Dovecot's script service runs this (as
 * dovecot_user) when USER's mailbox passes PERCENT of its quota. */
int
cmd_quota_warning(struct ctl *c, int argc, char **argv)
{
	struct buf m;
	struct reply r;
	char date[64], pm[300], q[300];
	long long pct;
	time_t now = time(NULL);
	struct tm tm;
	int ch;

	while ((ch = ctl_getopt(c, argc, argv, "", NULL)) != -1) {
		if (ch == 'h')
			return ctl_help(c);
		return ctl_usage(c, NULL);
	}
	if (argc - optind != 2 || str_to_ll(argv[optind], 1, 100, &pct) != 0)
		return ctl_usage(c, "PERCENT (1-100) and USER expected");
	if (strpbrk(argv[optind + 1], "\r\n<>") != NULL ||
	    strchr(argv[optind + 1], '@') == NULL)
		return ctl_usage(c, "bad user '%s'", argv[optind + 1]);
	postmaster(c, pm, sizeof(pm));
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_init(&m, 16 * 1024);
	buf_printf(&m,
	    "From: Mail system <%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: Your mailbox is %lld%% full\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <quota.%lld.%ld@%s>\r\n"
	    "Auto-Submitted: auto-generated\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "\r\n"
	    "Your mailbox %s has used %lld%% of its storage quota.\r\n"
	    "\r\n"
	    "When it is full, new mail is refused and returned to its\r\n"
	    "senders.  Please delete old messages (and empty the Trash),\r\n"
	    "or ask your administrator for a larger quota.\r\n",
	    pm, argv[optind + 1], pct, date, (long long)now, (long)getpid(),
	    ctl_hostname(c), argv[optind + 1], pct);
	/* The null sender: a warning is never answered or bounced. */
	if (ctl_lmtp_deliver(c, "", argv[optind + 1], m.data, m.len, &r) != 0) {
		buf_free(&m);
		reply_format(&r, q, sizeof(q));
		return ctl_fail(c, "delivering the warning to %s: %s",
		    argv[optind + 1], q);
	}
	buf_free(&m);
	return CTL_OK;
}
