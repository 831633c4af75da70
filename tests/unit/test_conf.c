/*
 * test_conf.c - configuration: the defaults table, $name expansion, the
 * file reader and its error messages, and the typed getters (one row per
 * accepted or refused value).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/conf.h"
#include "tests/unit/unit.h"

static char host[256];

static void
run_defaults(void)
{
	static const struct {
		const char *name, *key, *want;
	} rows[] = {
		{ "conf: default state_dir", "state_dir", "/var/lib/edgemail" },
		{ "conf: default spool_dir expands $state_dir", "spool_dir",
		    "/var/lib/edgemail/spool" },
		{ "conf: default tls_cert_file expands $state_dir",
		    "tls_cert_file", "/var/lib/edgemail/tls/server.pem" },
		{ "conf: default hmac_keys_file", "hmac_keys_file",
		    "/var/lib/edgemail/keys/hmac.keys" },
		{ "conf: default lmtp_server is the Dovecot socket",
		    "lmtp_server", "unix:/var/lib/edgemail/dovecot/lmtp" },
		{ "conf: default api_listen is loopback HTTPS", "api_listen",
		    "127.0.0.1:8443" },
		{ "conf: default api_http_listen is off (empty)",
		    "api_http_listen", "" },
		{ "conf: default relayhost is empty", "relayhost", "" },
		{ "conf: default max_message_size", "max_message_size", "25M" },
		{ "conf: default log_level", "log_level", "info" },
		{ "conf: default hostname is the system host name", "hostname",
		    host },
		{ "conf: default authserv_id follows $hostname", "authserv_id",
		    host },
	};
	struct conf	*c = conf_new();
	const char	*v;
	size_t		 i, j;
	int		 good;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		v = conf_get(c, rows[i].key);
		UNIT_CHECK(rows[i].name, v != NULL && strcmp(v, rows[i].want) == 0,
		    "got [%s]", v ? v : "(null)");
	}
	UNIT_CHECK("conf: unknown key gives NULL", conf_get(c, "nope") == NULL,
	    "not NULL");
	UNIT_CHECK("conf: a default is not 'set'", !conf_is_set(c, "state_dir"),
	    "is set");

	good = 1;
	for (i = 0; conf_defs[i].name != NULL && good; i++) {
		v = conf_get(c, conf_defs[i].name);
		good = v != NULL && strchr(v, '$') == NULL &&
		    conf_defs[i].def != NULL && conf_defs[i].help != NULL &&
		    conf_defs[i].help[0] != '\0';
		for (j = 0; j < i && good; j++)
			good = strcmp(conf_defs[i].name, conf_defs[j].name) != 0;
	}
	UNIT_CHECK("conf: every key is unique, documented and expands fully",
	    good, "key %s", conf_defs[i - 1].name);
	conf_free(&c);
	UNIT_CHECK("conf: conf_free sets the pointer to NULL", c == NULL,
	    "not NULL");
}

static void
run_expansion(void)
{
	struct conf	*c = conf_new();
	char		 err[256];
	const char	*old, *v;
	int		 rv;

	conf_set(c, "state_dir", "/srv/em");
	v = conf_get(c, "spool_dir");
	UNIT_CHECK("conf: $state_dir follows an explicit state_dir",
	    v && strcmp(v, "/srv/em/spool") == 0, "got [%s]", v);
	old = v;
	conf_set(c, "spool_dir", "${state_dir}q");
	v = conf_get(c, "spool_dir");
	UNIT_CHECK("conf: ${name} form is expanded", v &&
	    strcmp(v, "/srv/emq") == 0, "got [%s]", v);
	UNIT_CHECK("conf: a pointer from before conf_set stays valid",
	    strcmp(old, "/srv/em/spool") == 0, "got [%s]", old);
	conf_set(c, "relayhost", "a$$b");
	v = conf_get(c, "relayhost");
	UNIT_CHECK("conf: $$ is a literal dollar", v && strcmp(v, "a$b") == 0,
	    "got [%s]", v);
	conf_set(c, "relayhost", "cost $ 5 $");
	v = conf_get(c, "relayhost");
	UNIT_CHECK("conf: a lone $ is literal", v &&
	    strcmp(v, "cost $ 5 $") == 0, "got [%s]", v);
	conf_set(c, "relayhost", "${state_dir");
	v = conf_get(c, "relayhost");
	UNIT_CHECK("conf: an unclosed ${ is literal", v &&
	    strcmp(v, "${state_dir") == 0, "got [%s]", v);
	conf_set(c, "dovecot_dir", "$spool_dir/$state_dir");
	v = conf_get(c, "dovecot_dir");
	UNIT_CHECK("conf: nested and repeated references",
	    v && strcmp(v, "/srv/emq//srv/em") == 0, "got [%s]", v);

	rv = conf_set_line(c, "relayhost = $no_such_key", err, sizeof(err));
	UNIT_CHECK("conf: reference to an unknown key is refused",
	    rv == -1 && strstr(err, "unknown key '$no_such_key'") != NULL,
	    "rv=%d err=[%s]", rv, err);
	rv = conf_set_line(c, "state_dir = $spool_dir", err, sizeof(err));
	v = conf_get(c, "state_dir");
	UNIT_CHECK("conf: a reference loop is refused and the old value kept",
	    rv == -1 && strstr(err, "loop") != NULL && v &&
	    strcmp(v, "/srv/em") == 0, "rv=%d err=[%s] v=[%s]", rv, err, v);
	rv = conf_set_line(c, "state_dir = x$state_dir", err, sizeof(err));
	UNIT_CHECK("conf: a key referring to itself is refused", rv == -1,
	    "rv=%d", rv);
	rv = conf_set(c, "no_such_key", "1");
	UNIT_CHECK("conf: conf_set of an unknown key fails", rv == -1,
	    "rv=%d", rv);

	conf_set(c, "hostname", "mx.example.org");
	v = conf_get(c, "authserv_id");
	UNIT_CHECK("conf: authserv_id follows an explicit hostname", v &&
	    strcmp(v, "mx.example.org") == 0, "got [%s]", v);
	conf_set(c, "hostname", "");
	v = conf_get(c, "hostname");
	UNIT_CHECK("conf: an empty hostname means the system host name", v &&
	    strcmp(v, host) == 0, "got [%s]", v);
	conf_free(&c);
}

static int
write_file(char *path, const char *text)
{
	int	 fd;
	ssize_t	 n = (ssize_t)strlen(text);

	snprintf(path, 64, "/tmp/edgemail-conf-XXXXXX");
	if ((fd = mkstemp(path)) == -1)
		return -1;
	if (write(fd, text, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

struct file_row {
	const char *name;
	const char *text;
	int	 rv;
	const char *err;	/* after "path:" */
	const char *key, *want;
};

static const struct file_row file_rows[] = {
	{ "conf file: comments, blank lines and whitespace are ignored",
	    "# comment\n\n   \n  # indented comment\n  relayhost   =   "
	    "smtp.example:25  \n", 0, NULL, "relayhost", "smtp.example:25" },
	{ "conf file: value in double quotes loses them",
	    "api_http_listen = \"127.0.0.1:8080\"\n", 0, NULL,
	    "api_http_listen", "127.0.0.1:8080" },
	{ "conf file: \"\" sets an empty value",
	    "api_listen = \"\"\n", 0, NULL, "api_listen", "" },
	{ "conf file: key=value without spaces", "relayhost=x:25\n", 0, NULL,
	    "relayhost", "x:25" },
	{ "conf file: '#' inside a value is data", "rspamd_url = http://x/#a\n",
	    0, NULL, "rspamd_url", "http://x/#a" },
	{ "conf file: '=' inside a value is data", "redis = a=b\n", 0, NULL,
	    "redis", "a=b" },
	{ "conf file: the last setting wins", "relayhost = a\nrelayhost = b\n",
	    0, NULL, "relayhost", "b" },
	{ "conf file: CRLF line ends", "relayhost = a\r\n", 0, NULL,
	    "relayhost", "a" },
	{ "conf file: last line without newline", "relayhost = a", 0, NULL,
	    "relayhost", "a" },
	{ "conf file: $state_dir set in the file is used by defaults",
	    "state_dir = /srv/x\n", 0, NULL, "spool_dir", "/srv/x/spool" },
	{ "conf file: empty file", "", 0, NULL, "relayhost", "" },
	{ "conf file: unknown key error names file, line and key",
	    "# c\nrelayhost = a\nrelay_host = b\n", -1,
	    ":3: unknown key 'relay_host'", NULL, NULL },
	{ "conf file: line without '=' is an error", "relayhost\n", -1,
	    ":1: expected 'key = value'", NULL, NULL },
	{ "conf file: line with an empty key is an error", " = x\n", -1,
	    ":1: missing key before '='", NULL, NULL },
	{ "conf file: unknown reference error has the line", "\n\nredis = $x\n",
	    -1, ":3: redis: unknown key '$x'", NULL, NULL },
};

static void
run_file_rows(void)
{
	struct conf	*c;
	char		 path[64], err[512], want[512];
	const char	*v;
	size_t		 i;
	int		 rv;

	for (i = 0; i < sizeof(file_rows) / sizeof(file_rows[0]); i++) {
		const struct file_row *r = &file_rows[i];

		if (write_file(path, r->text) == -1) {
			UNIT_CHECK(r->name, 0, "cannot write temp file");
			continue;
		}
		c = conf_new();
		err[0] = '\0';
		rv = conf_load(c, path, err, sizeof(err));
		if (r->rv == 0) {
			v = conf_get(c, r->key);
			UNIT_CHECK(r->name, rv == 0 && v &&
			    strcmp(v, r->want) == 0, "rv=%d err=[%s] v=[%s]",
			    rv, err, v ? v : "(null)");
		} else {
			snprintf(want, sizeof(want), "%s%s", path, r->err);
			UNIT_CHECK(r->name, rv == -1 && strcmp(err, want) == 0,
			    "rv=%d err=[%s] want=[%s]", rv, err, want);
		}
		conf_free(&c);
		unlink(path);
	}

	c = conf_new();
	rv = conf_load(c, "/nonexistent/edgemail.conf", err, sizeof(err));
	UNIT_CHECK("conf file: a missing file is an error naming the file",
	    rv == -1 && strncmp(err, "/nonexistent/edgemail.conf: ", 28) == 0,
	    "rv=%d err=[%s]", rv, err);
	if (write_file(path, "relayhost = a\n") == 0) {
		conf_load(c, path, err, sizeof(err));
		UNIT_CHECK("conf file: a key from the file counts as set",
		    conf_is_set(c, "relayhost") && !conf_is_set(c, "redis"),
		    "is_set wrong");
		unlink(path);
	}
	rv = conf_set_line(c, "max_recipients = 7", err, sizeof(err));
	UNIT_CHECK("conf: conf_set_line (an -o override) sets the value",
	    rv == 0 && strcmp(conf_get(c, "max_recipients"), "7") == 0,
	    "rv=%d", rv);
	rv = conf_set_line(c, "   # just a comment", err, sizeof(err));
	UNIT_CHECK("conf: conf_set_line accepts a comment", rv == 0, "rv=%d",
	    rv);
	conf_free(&c);
}

enum kind { SIZE, DURATION, BOOL, LL };

struct typed_row {
	const char *name;
	enum kind kind;
	const char *value;
	int	 rv;
	long long want;
};

static const struct typed_row typed_rows[] = {
	{ "conf size: plain bytes", SIZE, "1024", 0, 1024 },
	{ "conf size: zero", SIZE, "0", 0, 0 },
	{ "conf size: 64k is 65536", SIZE, "64k", 0, 65536 },
	{ "conf size: 64K is 65536", SIZE, "64K", 0, 65536 },
	{ "conf size: 25M is 26214400", SIZE, "25M", 0, 26214400 },
	{ "conf size: 25m is 26214400", SIZE, "25m", 0, 26214400 },
	{ "conf size: 1G is 1073741824", SIZE, "1G", 0, 1073741824LL },
	{ "conf size: 1g is 1073741824", SIZE, "1g", 0, 1073741824LL },
	{ "conf size: empty is refused", SIZE, "", -1, 0 },
	{ "conf size: unit without number is refused", SIZE, "M", -1, 0 },
	{ "conf size: two-letter unit is refused", SIZE, "25MB", -1, 0 },
	{ "conf size: unknown unit is refused", SIZE, "1T", -1, 0 },
	{ "conf size: negative is refused", SIZE, "-1", -1, 0 },
	{ "conf size: fraction is refused", SIZE, "1.5M", -1, 0 },
	{ "conf size: space before the unit is refused", SIZE, "25 M", -1, 0 },
	{ "conf size: leading plus is refused", SIZE, "+5", -1, 0 },
	{ "conf size: number past 64 bits is refused", SIZE,
	    "99999999999999999999", -1, 0 },
	{ "conf size: unit multiplication past 64 bits is refused", SIZE,
	    "17179869184G", -1, 0 },
	{ "conf duration: plain is seconds", DURATION, "30", 0, 30 },
	{ "conf duration: 30s", DURATION, "30s", 0, 30 },
	{ "conf duration: 5m is 300", DURATION, "5m", 0, 300 },
	{ "conf duration: 2h is 7200", DURATION, "2h", 0, 7200 },
	{ "conf duration: 5d is 432000", DURATION, "5d", 0, 432000 },
	{ "conf duration: zero", DURATION, "0", 0, 0 },
	{ "conf duration: weeks are refused", DURATION, "5w", -1, 0 },
	{ "conf duration: upper-case unit is refused", DURATION, "5M", -1, 0 },
	{ "conf duration: negative is refused", DURATION, "-5", -1, 0 },
	{ "conf duration: fraction is refused", DURATION, "1.5h", -1, 0 },
	{ "conf duration: unit without number is refused", DURATION, "s", -1,
	    0 },
	{ "conf duration: empty is refused", DURATION, "", -1, 0 },
	{ "conf duration: overflow is refused", DURATION, "999999999999999999d",
	    -1, 0 },
	{ "conf bool: yes", BOOL, "yes", 0, 1 },
	{ "conf bool: no", BOOL, "no", 0, 0 },
	{ "conf bool: true", BOOL, "true", 0, 1 },
	{ "conf bool: false", BOOL, "false", 0, 0 },
	{ "conf bool: on", BOOL, "on", 0, 1 },
	{ "conf bool: off", BOOL, "off", 0, 0 },
	{ "conf bool: 1", BOOL, "1", 0, 1 },
	{ "conf bool: 0", BOOL, "0", 0, 0 },
	{ "conf bool: case-insensitive YES", BOOL, "YES", 0, 1 },
	{ "conf bool: 2 is refused", BOOL, "2", -1, 0 },
	{ "conf bool: maybe is refused", BOOL, "maybe", -1, 0 },
	{ "conf bool: empty is refused", BOOL, "", -1, 0 },
	{ "conf bool: yess is refused", BOOL, "yess", -1, 0 },
	{ "conf number: in range", LL, "100", 0, 100 },
	{ "conf number: at the minimum", LL, "1", 0, 1 },
	{ "conf number: at the maximum", LL, "1000", 0, 1000 },
	{ "conf number: below the minimum is refused", LL, "0", -1, 0 },
	{ "conf number: above the maximum is refused", LL, "1001", -1, 0 },
	{ "conf number: junk after digits is refused", LL, "10x", -1, 0 },
	{ "conf number: empty is refused", LL, "", -1, 0 },
	{ "conf number: leading space is refused", LL, " 10", -1, 0 },
};

static void
run_typed_rows(void)
{
	static const char *const keys[] = {
		[SIZE] = "max_message_size", [DURATION] = "lmtp_timeout",
		[BOOL] = "scan", [LL] = "max_recipients",
	};
	struct conf		*c = conf_new();
	char			 err[256];
	unsigned long long	 u = 0;
	long long		 ll = 0;
	int			 b = -1, rv = 0;
	size_t			 i;

	for (i = 0; i < sizeof(typed_rows) / sizeof(typed_rows[0]); i++) {
		const struct typed_row *r = &typed_rows[i];
		const char *key = keys[r->kind];
		long long got = 0;

		conf_set(c, key, r->value);
		err[0] = '\0';
		switch (r->kind) {
		case SIZE:
			rv = conf_get_size(c, key, &u, err, sizeof(err));
			got = (long long)u;
			break;
		case DURATION:
			rv = conf_get_duration(c, key, &ll, err, sizeof(err));
			got = ll;
			break;
		case BOOL:
			rv = conf_get_bool(c, key, &b, err, sizeof(err));
			got = b;
			break;
		case LL:
			rv = conf_get_ll(c, key, 1, 1000, &ll, err, sizeof(err));
			got = ll;
			break;
		}
		if (r->rv == 0)
			UNIT_CHECK(r->name, rv == 0 && got == r->want,
			    "rv=%d got=%lld err=[%s]", rv, got, err);
		else
			UNIT_CHECK(r->name, rv == -1 &&
			    strncmp(err, key, strlen(key)) == 0,
			    "rv=%d err=[%s]", rv, err);
	}
	rv = conf_get_size(c, "no_such_key", &u, err, sizeof(err));
	UNIT_CHECK("conf: typed getter of an unknown key fails with a message",
	    rv == -1 && strstr(err, "unknown key 'no_such_key'") != NULL,
	    "rv=%d err=[%s]", rv, err);
	conf_free(&c);

	c = conf_new();
	rv = conf_get_size(c, "max_message_size", &u, err, sizeof(err));
	UNIT_CHECK("conf: default max_message_size parses as 25 MiB",
	    rv == 0 && u == 25ULL << 20, "rv=%d u=%llu", rv, u);
	rv = conf_get_duration(c, "max_queue_lifetime", &ll, err, sizeof(err));
	UNIT_CHECK("conf: default max_queue_lifetime parses as 5 days",
	    rv == 0 && ll == 5 * 86400, "rv=%d ll=%lld", rv, ll);
	rv = conf_get_duration(c, "request_timeout", &ll, err, sizeof(err));
	UNIT_CHECK("conf: default request_timeout parses as 300 s",
	    rv == 0 && ll == 300, "rv=%d ll=%lld", rv, ll);
	rv = conf_get_bool(c, "scan", &b, err, sizeof(err));
	UNIT_CHECK("conf: default scan is yes", rv == 0 && b == 1, "rv=%d", rv);
	conf_free(&c);
}

int
main(void)
{
	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	run_defaults();
	run_expansion();
	run_file_rows();
	run_typed_rows();
	return unit_done();
}
