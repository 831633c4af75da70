/*
 * conf.c - edgemail.conf: the table of every key, the file reader, $name
 * expansion and typed getters.
 *
 * File syntax (postconf style):
 *
 *	# a comment line (only whole lines; '#' inside a value is data)
 *	key = value		whitespace around key and value is ignored
 *	relayhost = ""		a value in double quotes is taken without them
 *	spool_dir = $state_dir/spool	also ${state_dir}; "$$" is a '$'
 *
 * A reference to an unknown key, or a chain of references that loops or
 * nests deeper than CONF_DEPTH_MAX, is refused when the value is set, so
 * conf_get() never has to fail.  The last setting of a key wins.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/log.h"

#define CONF_DEPTH_MAX	16		/* nesting of $references */
#define CONF_VALUE_MAX	(64 * 1024)	/* an expanded value */
#define CONF_LINE_MAX	8192		/* a line of the file */

const struct conf_def conf_defs[] = {
	{ "state_dir", "/var/lib/edgemail",
	    "directory holding all state (spool, keys, Dovecot, directory)" },
	{ "hostname", "",
	    "this host's name in SMTP and headers (empty: the system host name)" },
	{ "authserv_id", "$hostname",
	    "authserv-id written in Authentication-Results headers" },
	{ "log_level", "info", "least severe level logged: debug, info, warn, error" },
	{ "api_listen", "127.0.0.1:8443", "HTTPS ingestion API address:port" },
	{ "api_http_listen", "",
	    "plain HTTP API address:port for a local tunnel (empty: off)" },
	{ "tls_cert_file", "$state_dir/tls/server.pem",
	    "TLS certificate chain (PEM) for the API and submission" },
	{ "tls_key_file", "$state_dir/tls/server.key", "TLS private key (PEM)" },
	{ "hmac_keys_file", "$state_dir/keys/hmac.keys",
	    "request signing keys: one \"key_id secret\" per line" },
	{ "signature_max_skew", "300s",
	    "largest accepted clock difference of a signed request" },
	{ "request_timeout", "300s", "deadline for a whole API request" },
	{ "api_max_connections", "256", "concurrent API connections" },
	{ "lmtp_server", "unix:$state_dir/dovecot/lmtp",
	    "Dovecot LMTP: unix:/path or host:port" },
	{ "lmtp_timeout", "60s", "timeout of each LMTP command" },
	{ "lmtp_max_connections", "8", "concurrent LMTP sessions" },
	{ "lmtp_early_envelope", "yes",
	    "send MAIL and RCPT to LMTP while the body arrives" },
	{ "max_message_size", "25M", "largest accepted message" },
	{ "max_recipients", "100", "most recipients of one message" },
	{ "max_header_size", "1M", "largest accepted header section" },
	{ "spool_dir", "$state_dir/spool", "queue of accepted messages" },
	{ "spool_max_bytes", "0",
	  "refuse new messages (503) when the spool holds this much (0: no limit)" },
	{ "queueing", "yes",
	  "queue recipients that fail temporarily (202); no: answer 503" },
	{ "idem_dir", "$state_dir/idem", "idempotency records (embedded mode)" },
	{ "srs_secret_file", "$state_dir/keys/srs.key",
	  "SRS key for forwarded mail (made at first start)" },
	{ "rate_limit_per_key", "0",
	  "messages per minute per HMAC key id, 429 above (0: no limit)" },
	{ "idempotency_ttl", "24h", "how long an Idempotency-Key is remembered" },
	{ "queue_retry_min", "60s", "first retry delay of a deferred recipient" },
	{ "queue_retry_max", "1h", "longest retry delay (exponential backoff)" },
	{ "queue_run_interval", "1s", "how often the queue runner looks for work" },
	{ "dovecot_dir", "$state_dir/dovecot",
	    "Dovecot's base_dir, configuration and mail" },
	{ "directory_dir", "$state_dir/directory",
	    "the mailbox and alias directory" },
	{ "mail_dir", "$state_dir/mail",
	    "mailboxes: DOMAIN/USER/Maildir (kept after user del until purge)" },
	{ "max_group_targets", "32",
	    "most targets of one alias or group (distribution list)" },
	{ "default_quota", "4G", "storage quota of a new mailbox" },
	{ "quota_warning_percent", "90",
	    "mail the user a warning when the mailbox passes this share" },
	{ "password_scheme", "BLF-CRYPT",
	    "hash of new passwords (doveadm pw -s): BLF-CRYPT, ARGON2ID, "
	    "SHA512-CRYPT" },
	{ "password_cost", "8",
	    "cost of password_scheme (doveadm pw -r; BLF-CRYPT 8: a login "
	    "takes ~50 ms on 2 cores; 0: the scheme's default)" },
	{ "archive_retention_days", "365",
	    "archive expire deletes archived mail older than this (0: never)" },
	{ "imap_host", "$hostname",
	    "IMAP server name given to mail clients (autoconfig, DNS)" },
	{ "pop3_host", "$hostname", "POP3 server name given to mail clients" },
	{ "submission_host", "$hostname",
	    "SMTP submission server name given to mail clients" },
	{ "autoconfig_host", "$hostname",
	    "public name of the API serving autoconfig and autodiscover" },
	{ "dovecot_listen", "*, ::", "addresses Dovecot listens on" },
	{ "imap_port", "143", "IMAP (STARTTLS) port" },
	{ "imaps_port", "993", "IMAP over TLS port" },
	{ "pop3_port", "110", "POP3 (STARTTLS) port" },
	{ "pop3s_port", "995", "POP3 over TLS port" },
	{ "managesieve_port", "4190", "ManageSieve (filters) port" },
	{ "dovecot_user", "dovecot", "Dovecot's internal user" },
	{ "dovecot_group", "dovecot", "Dovecot's internal group" },
	{ "dovecot_login_user", "dovenull",
	    "unprivileged user of Dovecot's login processes" },
	{ "mail_owner", "vmail",
	    "owner of the mailboxes: a user name or UID:GID (never root)" },
	{ "dovecot_login_penalty", "yes",
	    "slow down failed logins (Dovecot's failure delay and per-IP "
	    "penalty); the test stack turns it off" },
	{ "postmaster_address", "",
	    "sender of Dovecot's rejects (empty: postmaster@ the first domain)" },
	{ "mx_hosts", "route1.mx.cloudflare.net route2.mx.cloudflare.net "
	    "route3.mx.cloudflare.net",
	    "MX hosts to publish (Cloudflare Email Routing)" },
	{ "spf_record", "v=spf1 include:_spf.mx.cloudflare.net ~all",
	    "SPF record to publish (add the relayhost's include)" },
	{ "dmarc_policy", "quarantine", "DMARC p= to publish: none, "
	    "quarantine, reject" },
	{ "submit_listen", "127.0.0.1:587", "SMTP submission (STARTTLS) address:port" },
	{ "submit_tls_listen", "127.0.0.1:465",
	    "SMTP submission over implicit TLS address:port" },
	{ "submit_max_connections", "100",
	    "concurrent submission connections (more get 421)" },
	{ "submit_max_connections_per_ip", "50",
	    "concurrent submission connections from one client address "
	    "(more get 421)" },
	{ "submit_max_recipients", "$max_recipients",
	    "most recipients of one submitted message (more get 452)" },
	{ "submit_max_messages_per_hour", "500",
	    "messages one user may submit per hour" },
	{ "submit_max_recipients_per_hour", "2000",
	    "recipients one user may submit to per hour" },
	{ "submit_idle_timeout", "300s",
	    "submission: longest wait for the next command or data" },
	{ "submit_session_timeout", "1h", "submission: longest whole session" },
	{ "submit_auth_max_failures", "10",
	    "failed AUTH attempts per client IP and per user name within "
	    "submit_auth_failure_window before AUTH is refused (454)" },
	{ "submit_auth_failure_window", "15m",
	    "the window of submit_auth_max_failures" },
	{ "dovecot_auth_socket", "$dovecot_dir/auth-client",
	    "Dovecot's auth-client socket (SMTP AUTH passwords)" },
	{ "outbound_spool_dir", "$state_dir/outbound",
	    "the relay's queue of outgoing mail" },
	{ "submit_delivery_threads", "4",
	    "queue runner threads of the relay (LMTP and relayhost)" },
	{ "relayhost_auth_file", "",
	    "relayhost credentials: \"[host]:port user:password\" lines "
	    "(empty: no AUTH)" },
	{ "relayhost_ca_file", "",
	    "CA bundle to verify the relayhost (empty: the system's)" },
	{ "relay_timeout", "300s", "deadline of one relayhost transaction" },
	{ "dkim_keys_dir", "$state_dir/keys/dkim",
	    "DKIM private keys: DOMAIN/SELECTOR.key" },
	{ "dkim_selector", "edgemail", "DKIM selector of the rsa-sha256 key" },
	{ "dkim_ed25519_selector", "",
	    "selector of a second ed25519-sha256 signature (empty: none)" },
	{ "relayhost", "", "next hop for outgoing mail, host:port (empty: direct)" },
	{ "max_queue_lifetime", "5d",
	    "how long outgoing mail is retried before it bounces" },
	{ "redis", "", "Redis for the replay cache, idempotency records and "
	    "rate limits, redis://host:port[/db] (empty: in-process)" },
	{ "rspamd_url", "", "rspamd base URL, e.g. http://127.0.0.1:11333 "
	    "(/checkv2 is asked; empty: no spam scoring)" },
	{ "rspamd_timeout", "20s", "deadline of one rspamd check" },
	{ "rspamd_fail_open", "no",
	    "deliver unscored when rspamd fails (no: answer 503)" },
	{ "clamav_db_dir", "/var/lib/clamav", "ClamAV signature database" },
	{ "scan", "yes", "scan messages for viruses" },
	{ "scan_socket", "", "unix socket of edgemail-scand, one scanner "
	    "shared by the API and the relay (empty: each loads libclamav "
	    "itself)" },
	{ "scan_max_filesize", "100M", "largest file inside a message scanned" },
	{ "scan_max_scansize", "400M",
	    "most data scanned per message (more: refused as an archive bomb)" },
	{ "scan_max_recursion", "17", "deepest archive nesting scanned" },
	{ "scan_max_files", "10000", "most files inside archives scanned" },
	{ "scan_reload_interval", "60s",
	    "how often the signature directory is checked for changes" },
	{ "scan_tmp_dir", "/dev/shm", "where libclamav unpacks attachments (a "
	    "tmpfs: scans of small messages ~30 % faster than on the mail disk; "
	    "empty or missing: $TMPDIR or /tmp)" },
	{ "scan_threads", "0", "scans at once, on threads of their own (0: one "
	    "per CPU)" },
	{ "dns_server", "", "DNS server ip[:port] (empty: the system resolver; "
	    "none: no lookups)" },
	{ "dns_timeout", "5s", "deadline of one DNS lookup" },
	{ "dkim_verify", "yes", "verify DKIM signatures and DMARC of received mail" },
	{ "dmarc_reject", "yes", "p=reject failures: yes (refuse), quarantine "
	    "(Junk) or no (deliver)" },
	{ "public_suffix_list", "/usr/share/publicsuffix/public_suffix_list.dat",
	    "Public Suffix List for DMARC organizational domains" },
	{ "edge_key_ids", "", "HMAC key ids used by the Email Worker: only their "
	    "requests carry the edge's SPF/ARC results" },
	{ "edge_authserv_id", "mx.cloudflare.net",
	    "authserv-id of the edge's Authentication-Results" },
	{ NULL, NULL, NULL }
};

struct conf_ent {
	char	*raw;		/* set value, NULL: the default */
	char	*cache;		/* expanded value, NULL until conf_get */
};

struct conf {
	pthread_mutex_t	  mu;
	size_t		  n;
	struct conf_ent	 *ent;
	char		**old;	/* replaced cache strings, kept until free */
	size_t		  nold;
	size_t		  oldcap;
};

static int
conf_index(const char *name, size_t len)
{
	int	 i;

	for (i = 0; conf_defs[i].name != NULL; i++)
		if (strlen(conf_defs[i].name) == len &&
		    strncmp(conf_defs[i].name, name, len) == 0)
			return i;
	return -1;
}

struct conf *
conf_new(void)
{
	struct conf	*c;
	size_t		 n = 0;

	while (conf_defs[n].name != NULL)
		n++;
	c = xcalloc(1, sizeof(*c));
	c->n = n;
	c->ent = xcalloc(n, sizeof(*c->ent));
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void
conf_free(struct conf **cp)
{
	struct conf	*c;
	size_t		 i;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	for (i = 0; i < c->n; i++) {
		free(c->ent[i].raw);
		free(c->ent[i].cache);
	}
	for (i = 0; i < c->nold; i++)
		free(c->old[i]);
	free(c->old);
	free(c->ent);
	pthread_mutex_destroy(&c->mu);
	free(c);
	*cp = NULL;
}

static const char *
conf_raw(const struct conf *c, int idx)
{
	return c->ent[idx].raw != NULL ? c->ent[idx].raw : conf_defs[idx].def;
}

static int
is_name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_';
}

/*
 * Find the reference at s[0] == '$'.  Sets *name and *nlen to the key name
 * (*nlen 0 for "$$" or a lone '$') and returns the length of the text it
 * replaces.
 */
static size_t
conf_ref(const char *s, const char **name, size_t *nlen)
{
	size_t	 i;

	*name = NULL;
	*nlen = 0;
	if (s[1] == '{') {
		for (i = 2; is_name_char(s[i]); i++)
			;
		if (s[i] == '}' && i > 2) {
			*name = s + 2;
			*nlen = i - 2;
			return i + 1;
		}
		return 1;
	}
	if (s[1] == '$')
		return 2;
	for (i = 1; is_name_char(s[i]); i++)
		;
	if (i > 1) {
		*name = s + 1;
		*nlen = i - 1;
	}
	return i;
}

static int	conf_expand_key(struct conf *, int, int, struct buf *);

static int
conf_expand_str(struct conf *c, const char *s, int depth, struct buf *out)
{
	const char	*name;
	size_t		 nlen, skip;
	int		 idx;

	if (depth > CONF_DEPTH_MAX)
		return -1;
	while (*s != '\0') {
		if (*s != '$') {
			const char *d = strchr(s, '$');
			size_t n = d != NULL ? (size_t)(d - s) : strlen(s);

			if (buf_append(out, s, n) == -1)
				return -1;
			s += n;
			continue;
		}
		skip = conf_ref(s, &name, &nlen);
		if (name == NULL || (idx = conf_index(name, nlen)) == -1) {
			/* "$$", a lone '$' or an unknown name: literal. */
			if (buf_putc(out, '$') == -1)
				return -1;
			s += s[1] == '$' ? 2 : 1;
			continue;
		}
		if (conf_expand_key(c, idx, depth + 1, out) == -1)
			return -1;
		s += skip;
	}
	return 0;
}

static int
conf_expand_key(struct conf *c, int idx, int depth, struct buf *out)
{
	size_t	 start = out->len;
	char	 host[256];

	if (conf_expand_str(c, conf_raw(c, idx), depth, out) == -1)
		return -1;
	if (out->len == start && strcmp(conf_defs[idx].name, "hostname") == 0) {
		if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
			(void)str_copy(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		if (buf_puts(out, host) == -1)
			return -1;
	}
	return 0;
}

/* Drop every cached expansion (a change may affect any reference). */
static void
conf_invalidate(struct conf *c)
{
	size_t	 i;

	for (i = 0; i < c->n; i++) {
		if (c->ent[i].cache == NULL)
			continue;
		if (c->nold == c->oldcap) {
			size_t ncap = c->oldcap ? c->oldcap * 2 : 16;
			char **p = realloc(c->old, ncap * sizeof(*p));

			if (p == NULL)
				fatalx("event=conf_oom");
			c->old = p;
			c->oldcap = ncap;
		}
		/* Callers may still hold the old pointer: keep it alive. */
		c->old[c->nold++] = c->ent[i].cache;
		c->ent[i].cache = NULL;
	}
}

static int
conf_set_err(struct conf *c, const char *name, const char *value, char *err,
    size_t errsz)
{
	struct buf	 b;
	const char	*s, *rname;
	size_t		 nlen;
	char		*saved;
	int		 idx, i, rv = 0;

	if ((idx = conf_index(name, strlen(name))) == -1) {
		snprintf(err, errsz, "unknown key '%s'", name);
		return -1;
	}
	for (s = strchr(value, '$'); s != NULL; s = strchr(s, '$')) {
		s += conf_ref(s, &rname, &nlen);
		if (rname != NULL && conf_index(rname, nlen) == -1) {
			snprintf(err, errsz, "%s: unknown key '$%.*s'", name,
			    (int)nlen, rname);
			return -1;
		}
	}

	pthread_mutex_lock(&c->mu);
	saved = c->ent[idx].raw;
	c->ent[idx].raw = xstrdup(value);
	/* Every key must still expand: no loop, no runaway size. */
	buf_init(&b, CONF_VALUE_MAX);
	for (i = 0; conf_defs[i].name != NULL; i++) {
		buf_reset(&b);
		if (conf_expand_key(c, i, 0, &b) == -1) {
			snprintf(err, errsz, "%s: $references loop, nest deeper "
			    "than %d or expand past %d bytes", name,
			    CONF_DEPTH_MAX, CONF_VALUE_MAX);
			rv = -1;
			break;
		}
	}
	buf_free(&b);
	if (rv == -1) {
		free(c->ent[idx].raw);
		c->ent[idx].raw = saved;
	} else {
		free(saved);
		conf_invalidate(c);
	}
	pthread_mutex_unlock(&c->mu);
	return rv;
}

int
conf_set(struct conf *c, const char *name, const char *value)
{
	char	 err[256];

	return conf_set_err(c, name, value, err, sizeof(err));
}

static int
is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' ||
	    ch == '\f' || ch == '\v';
}

int
conf_set_line(struct conf *c, const char *line, char *err, size_t errsz)
{
	const char	*k, *ke, *v, *ve, *eq;
	char		 name[64];
	char		*value;
	size_t		 vlen;
	int		 rv;

	for (k = line; is_blank(*k); k++)
		;
	if (*k == '\0' || *k == '#')
		return 0;
	if ((eq = strchr(k, '=')) == NULL) {
		snprintf(err, errsz, "expected 'key = value'");
		return -1;
	}
	for (ke = eq; ke > k && is_blank(ke[-1]); ke--)
		;
	if (ke == k) {
		snprintf(err, errsz, "missing key before '='");
		return -1;
	}
	if ((size_t)(ke - k) >= sizeof(name)) {
		snprintf(err, errsz, "unknown key '%.*s...'", 32, k);
		return -1;
	}
	memcpy(name, k, (size_t)(ke - k));
	name[ke - k] = '\0';
	for (v = eq + 1; is_blank(*v); v++)
		;
	for (ve = v + strlen(v); ve > v && is_blank(ve[-1]); ve--)
		;
	if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') {
		v++;
		ve--;
	}
	vlen = (size_t)(ve - v);
	value = xmalloc(vlen + 1);
	memcpy(value, v, vlen);
	value[vlen] = '\0';
	rv = conf_set_err(c, name, value, err, errsz);
	free(value);
	return rv;
}

int
conf_load(struct conf *c, const char *path, char *err, size_t errsz)
{
	FILE	*fp;
	char	*line = NULL, why[256];
	size_t	 cap = 0;
	ssize_t	 n;
	long	 lineno = 0;
	int	 rv = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, fp)) != -1) {
		lineno++;
		if (n > CONF_LINE_MAX) {
			snprintf(err, errsz, "%s:%ld: line too long", path, lineno);
			rv = -1;
			break;
		}
		if (memchr(line, '\0', (size_t)n) != NULL) {
			snprintf(err, errsz, "%s:%ld: NUL byte", path, lineno);
			rv = -1;
			break;
		}
		if (conf_set_line(c, line, why, sizeof(why)) == -1) {
			snprintf(err, errsz, "%s:%ld: %s", path, lineno, why);
			rv = -1;
			break;
		}
	}
	if (rv == 0 && ferror(fp)) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		rv = -1;
	}
	free(line);
	fclose(fp);
	return rv;
}

const char *
conf_get(struct conf *c, const char *name)
{
	struct buf	 b;
	const char	*v;
	int		 idx;

	if ((idx = conf_index(name, strlen(name))) == -1)
		return NULL;
	pthread_mutex_lock(&c->mu);
	if (c->ent[idx].cache == NULL) {
		buf_init(&b, CONF_VALUE_MAX);
		/* Cannot fail for values accepted by conf_set; be safe anyway. */
		if (conf_expand_key(c, idx, 0, &b) == -1) {
			buf_reset(&b);
			(void)buf_puts(&b, conf_raw(c, idx));
		}
		c->ent[idx].cache = xstrdup(buf_cstr(&b));
		buf_free(&b);
	}
	v = c->ent[idx].cache;
	pthread_mutex_unlock(&c->mu);
	return v;
}

int
conf_is_set(struct conf *c, const char *name)
{
	int	 idx, set;

	if ((idx = conf_index(name, strlen(name))) == -1)
		return 0;
	pthread_mutex_lock(&c->mu);
	set = c->ent[idx].raw != NULL;
	pthread_mutex_unlock(&c->mu);
	return set;
}

static const char *
conf_get_err(struct conf *c, const char *name, char *err, size_t errsz)
{
	const char *v;

	if ((v = conf_get(c, name)) == NULL)
		snprintf(err, errsz, "unknown key '%s'", name);
	return v;
}

int
conf_get_bool(struct conf *c, const char *name, int *val_r, char *err,
    size_t errsz)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	const char	*v;
	size_t		 i;

	if ((v = conf_get_err(c, name, err, errsz)) == NULL)
		return -1;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*val_r = 1;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*val_r = 0;
			return 0;
		}
	}
	snprintf(err, errsz, "%s: '%s' is not yes or no", name, v);
	return -1;
}

int
conf_get_ll(struct conf *c, const char *name, long long min, long long max,
    long long *val_r, char *err, size_t errsz)
{
	const char	*v;

	if ((v = conf_get_err(c, name, err, errsz)) == NULL)
		return -1;
	if (str_to_ll(v, min, max, val_r) == -1) {
		snprintf(err, errsz, "%s: '%s' is not a number in [%lld, %lld]",
		    name, v, min, max);
		return -1;
	}
	return 0;
}

/*
 * Unsigned decimal number followed by at most one unit letter.  Returns
 * -1 for junk or overflow; *unit_r is the letter or '\0'.
 */
static int
conf_number_unit(const char *v, unsigned long long *num_r, char *unit_r)
{
	unsigned long long	 n = 0;
	const char		*p = v;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (~0ULL - 9) / 10)
			return -1;
		n = n * 10 + (unsigned)(*p - '0');
	}
	*unit_r = *p;
	if (*p != '\0' && p[1] != '\0')
		return -1;
	*num_r = n;
	return 0;
}

int
conf_get_size(struct conf *c, const char *name, unsigned long long *val_r,
    char *err, size_t errsz)
{
	const char		*v;
	unsigned long long	 n, mul;
	char			 unit;

	if ((v = conf_get_err(c, name, err, errsz)) == NULL)
		return -1;
	if (conf_number_unit(v, &n, &unit) == -1)
		goto bad;
	switch (unit) {
	case '\0':
		mul = 1;
		break;
	case 'k':
	case 'K':
		mul = 1ULL << 10;
		break;
	case 'm':
	case 'M':
		mul = 1ULL << 20;
		break;
	case 'g':
	case 'G':
		mul = 1ULL << 30;
		break;
	default:
		goto bad;
	}
	if (n > ~0ULL / mul)
		goto bad;
	*val_r = n * mul;
	return 0;
bad:
	snprintf(err, errsz, "%s: '%s' is not a size (bytes, or with k, M, G)",
	    name, v);
	return -1;
}

int
conf_get_duration(struct conf *c, const char *name, long long *secs_r,
    char *err, size_t errsz)
{
	const char		*v;
	unsigned long long	 n, mul;
	char			 unit;

	if ((v = conf_get_err(c, name, err, errsz)) == NULL)
		return -1;
	if (conf_number_unit(v, &n, &unit) == -1)
		goto bad;
	switch (unit) {
	case '\0':
	case 's':
		mul = 1;
		break;
	case 'm':
		mul = 60;
		break;
	case 'h':
		mul = 3600;
		break;
	case 'd':
		mul = 86400;
		break;
	default:
		goto bad;
	}
	if (n > (unsigned long long)LLONG_MAX / mul)
		goto bad;
	*secs_r = (long long)(n * mul);
	return 0;
bad:
	snprintf(err, errsz, "%s: '%s' is not a duration (seconds, or with "
	    "s, m, h, d)", name, v);
	return -1;
}

void
conf_or_die(int rc, const char *err)
{
	if (rc != 0)
		fatalx("config: %s", err);
}

static void
conf_usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-c CONFIG] [-o key=value]... [-t]\n", prog);
	exit(2);
}

struct conf *
conf_from_args(int argc, char **argv, const char *prog, int *check_only_r)
{
	const char *config = "/var/lib/edgemail/edgemail.conf";
	char *overrides[64], err[512];
	int noverrides = 0, ch, i;
	struct conf *c;

	*check_only_r = 0;
	while ((ch = getopt(argc, argv, "c:o:th")) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'o':
			if (noverrides == 64)
				conf_usage(prog);
			overrides[noverrides++] = optarg;
			break;
		case 't':
			*check_only_r = 1;
			break;
		default:
			conf_usage(prog);
		}
	}
	if (optind != argc)
		conf_usage(prog);
	log_init(prog, LOG_LVL_INFO);
	if ((c = conf_new()) == NULL)
		fatalx("out of memory");
	if (access(config, F_OK) == 0 || errno != ENOENT)
		conf_or_die(conf_load(c, config, err, sizeof(err)), err);
	for (i = 0; i < noverrides; i++)
		conf_or_die(conf_set_line(c, overrides[i], err, sizeof(err)), err);
	if (strcmp(conf_get(c, "log_level"), "debug") == 0)
		log_set_level(LOG_LVL_DEBUG);
	return c;
}
