/*
 * report.c - `edgemailctl report`: one page on the state of the setup,
 * for the administrator: domains and their mailboxes (state, quota, mail
 * stored), DNS status per domain (dns check), the TLS certificate's
 * expiry, and the queue sizes of both spools.  --mail delivers it by LMTP
 * to the admin (the address goes through the directory, so an alias such
 * as postmaster@ works).
 *
 * It only reads: the spools are counted, not opened (opening one tidies
 * it, which is its owner's business).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ctl/ctl.h"
#include "lib/directory.h"

/* Bytes and files of the messages in a Maildir (every folder). */
static void
maildir_usage(const char *dir, int depth, unsigned long long *bytes,
    unsigned long long *files)
{
	struct dirent *de;
	struct stat st;
	char p[4096];
	DIR *dp;

	if (depth > 3 || (dp = opendir(dir)) == NULL)
		return;
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			/* cur/ new/ and the .Folder directories. */
			if (strcmp(de->d_name, "cur") == 0 ||
			    strcmp(de->d_name, "new") == 0 ||
			    (de->d_name[0] == '.' && depth == 0))
				maildir_usage(p, depth + 1, bytes, files);
		} else if (S_ISREG(st.st_mode) && depth > 0 &&
		    de->d_name[0] != '.' && strncmp(de->d_name, "dovecot", 7) !=
		    0) {
			const char *parent = strrchr(dir, '/');

			if (parent != NULL && (strcmp(parent, "/cur") == 0 ||
			    strcmp(parent, "/new") == 0)) {
				*bytes += (unsigned long long)st.st_size;
				(*files)++;
			}
		}
	}
	closedir(dp);
}

/* Message files in a spool's queue/ directory; -1 when there is none. */
static long
queue_count(const char *spool)
{
	char p[4096];
	struct dirent *de;
	long n = 0;
	DIR *dp;

	snprintf(p, sizeof(p), "%s/queue", spool);
	if ((dp = opendir(p)) == NULL)
		return -1;
	while ((de = readdir(dp)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dp);
	return n;
}

/* Days until the certificate expires (negative: expired); -1000000 when
 * it cannot be read.  notafter gets the date. */
static long
cert_days(const char *path, char *notafter, size_t sz)
{
	ASN1_TIME *now;
	X509 *x;
	FILE *fp;
	int days = 0, secs = 0;
	BIO *b;

	snprintf(notafter, sz, "-");
	if ((fp = fopen(path, "re")) == NULL)
		return -1000000;
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (x == NULL)
		return -1000000;
	now = ASN1_TIME_set(NULL, time(NULL));
	if (now == NULL || ASN1_TIME_diff(&days, &secs, now,
	    X509_get0_notAfter(x)) != 1)
		days = -1000000;
	if ((b = BIO_new(BIO_s_mem())) != NULL) {
		int n;

		ASN1_TIME_print(b, X509_get0_notAfter(x));
		n = BIO_read(b, notafter, (int)sz - 1);
		notafter[n > 0 ? n : 0] = '\0';
		BIO_free(b);
	}
	ASN1_TIME_free(now);
	X509_free(x);
	return days;
}

static void
human(unsigned long long n, char *out, size_t sz)
{
	if (n >= (1ULL << 30))
		snprintf(out, sz, "%.1fG", (double)n / (1ULL << 30));
	else if (n >= (1ULL << 20))
		snprintf(out, sz, "%.1fM", (double)n / (1ULL << 20));
	else if (n >= 1024)
		snprintf(out, sz, "%.1fk", (double)n / 1024);
	else
		snprintf(out, sz, "%llu", n);
}

/* The report as JSON; the text form is made from it. */
static json_t *
collect(struct ctl *c, const struct dir *d, int dns)
{
	json_t *j = json_object(), *doms = json_array();
	char notafter[128], home[4200];
	long days;
	size_t i, k;

	json_object_set_new(j, "host", json_string(ctl_hostname(c)));
	json_object_set_new(j, "generated", json_integer((json_int_t)time(
	    NULL)));
	for (i = 0; i < dir_count(d, DIR_DOMAINS); i++) {
		const struct dir_domain *dom = dir_domain_at(d, i);
		json_t *users = json_array(), *jd;

		for (k = 0; k < dir_count(d, DIR_USERS); k++) {
			const struct dir_user *u = dir_user_at(d, k);
			const char *at = strrchr(u->name, '@');
			unsigned long long bytes = 0, files = 0;

			if (at == NULL || strcmp(at + 1, dom->name) != 0)
				continue;
			snprintf(home, sizeof(home), "%s/%s/%.*s/Maildir",
			    ctl_get(c, "mail_dir"), dom->name,
			    (int)(at - u->name), u->name);
			maildir_usage(home, 0, &bytes, &files);
			json_array_append_new(users, json_pack("{s:s, s:s, s:s?, "
			    "s:I, s:I}", "user", u->name, "state",
			    dir_user_suspended(u) ? "suspended" : "active",
			    "quota", dir_user_quota(u), "bytes",
			    (json_int_t)bytes, "messages", (json_int_t)files));
		}
		jd = json_pack("{s:s, s:s?, s:s?, s:o}", "domain", dom->name,
		    "admin", dir_domain_attr(dom, "admin"), "archive",
		    dir_domain_attr(dom, "archive"), "mailboxes", users);
		if (dns) {
			json_t *recs = json_array();
			int p = dns_check_domain(c, dom->name, recs, 0);

			json_object_set_new(jd, "dns_problems", json_integer(p));
			json_object_set_new(jd, "dns", recs);
		}
		json_array_append_new(doms, jd);
	}
	json_object_set_new(j, "domains", doms);
	days = cert_days(ctl_get(c, "tls_cert_file"), notafter,
	    sizeof(notafter));
	json_object_set_new(j, "certificate", json_pack("{s:s, s:s, s:I}",
	    "file", ctl_get(c, "tls_cert_file"), "not_after", notafter,
	    "days_left", (json_int_t)days));
	json_object_set_new(j, "queues", json_pack("{s:I, s:I}", "inbound",
	    (json_int_t)queue_count(ctl_get(c, "spool_dir")), "outbound",
	    (json_int_t)queue_count(ctl_get(c, "outbound_spool_dir"))));
	return j;
}

static void
render(json_t *j, int dns, struct buf *b)
{
	json_t *doms = json_object_get(j, "domains"), *cert, *q;
	size_t i, k;
	long long days;
	char sz[32];

	buf_printf(b, "edgemail setup report for %s\n\n",
	    json_string_value(json_object_get(j, "host")));
	for (i = 0; i < json_array_size(doms); i++) {
		json_t *d = json_array_get(doms, i);
		json_t *users = json_object_get(d, "mailboxes");
		const char *admin = json_string_value(json_object_get(d,
		    "admin"));
		const char *arch = json_string_value(json_object_get(d,
		    "archive"));

		buf_printf(b, "Domain %s\n  admin %s, archive %s, %zu "
		    "mailbox(es)\n", json_string_value(json_object_get(d,
		    "domain")), admin ? admin : "(none: postmaster@ does not "
		    "exist)", arch ? arch : "off", json_array_size(users));
		for (k = 0; k < json_array_size(users); k++) {
			json_t *u = json_array_get(users, k);
			const char *quota = json_string_value(json_object_get(u,
			    "quota"));

			human((unsigned long long)json_integer_value(
			    json_object_get(u, "bytes")), sz, sizeof(sz));
			buf_printf(b, "  %-40s %-9s %6s of %-5s %lld message(s)\n",
			    json_string_value(json_object_get(u, "user")),
			    json_string_value(json_object_get(u, "state")), sz,
			    quota ? quota : "-", json_integer_value(
			    json_object_get(u, "messages")));
		}
		if (dns) {
			json_t *recs = json_object_get(d, "dns");
			long long p = json_integer_value(json_object_get(d,
			    "dns_problems"));

			if (p < 0)
				buf_printf(b, "  DNS: could not be checked\n");
			else
				buf_printf(b, "  DNS: %lld record(s) missing or "
				    "wrong\n", p);
			for (k = 0; k < json_array_size(recs); k++) {
				json_t *r = json_array_get(recs, k);
				const char *st = json_string_value(
				    json_object_get(r, "status"));

				if (strcmp(st, "ok") != 0)
					buf_printf(b, "    %-7s %-5s %s\n", st,
					    json_string_value(json_object_get(r,
					    "type")), json_string_value(
					    json_object_get(r, "name")));
			}
		}
		buf_puts(b, "\n");
	}
	cert = json_object_get(j, "certificate");
	days = json_integer_value(json_object_get(cert, "days_left"));
	if (days == -1000000)
		buf_printf(b, "TLS certificate %s: cannot be read\n",
		    json_string_value(json_object_get(cert, "file")));
	else
		buf_printf(b, "TLS certificate %s: expires %s (%lld day(s)%s)\n",
		    json_string_value(json_object_get(cert, "file")),
		    json_string_value(json_object_get(cert, "not_after")), days,
		    days < 0 ? ", EXPIRED" : days < 14 ? ", renew it" : "");
	q = json_object_get(j, "queues");
	for (k = 0; k < 2; k++) {
		long long n = json_integer_value(json_object_get(q, k ?
		    "outbound" : "inbound"));

		buf_printf(b, "%s%s queue: ", k ? ", " : "Queues: ", k ?
		    "outbound" : "inbound");
		if (n < 0)
			buf_puts(b, "no spool yet");
		else
			buf_printf(b, "%lld message(s)", n);
	}
	buf_puts(b, "\n");
}

/* Deliver the report to every mailbox addr expands to. */
static int
mail_report(struct ctl *c, const struct dir *d, const char *addr,
    const char *text)
{
	struct dir_expansion x;
	struct reply r;
	struct buf m;
	char date[64], q[300];
	const char *dom;
	time_t now = time(NULL);
	struct tm tm;
	size_t i, k;
	int rc = CTL_OK;

	if (dir_expand(d, addr, ctl_max_targets(c), 1, &x) != 0)
		return ctl_fail(c, "out of memory");
	if (x.reply.cls != REPLY_OK || x.nmailbox == 0) {
		rc = ctl_fail(c, "cannot mail the report to %s: %s", addr,
		    x.nmailbox == 0 && x.reply.cls == REPLY_OK ?
		    "no local mailbox" : x.reply.text);
		dir_expansion_free(&x);
		return rc;
	}
	dom = strrchr(addr, '@') ? strrchr(addr, '@') + 1 : ctl_hostname(c);
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_init(&m, 4 * 1024 * 1024);
	buf_printf(&m, "From: edgemail <postmaster@%s>\r\nTo: <%s>\r\n"
	    "Subject: edgemail setup report for %s\r\nDate: %s\r\n"
	    "Message-ID: <report.%lld.%ld@%s>\r\nAuto-Submitted: "
	    "auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\n\r\n", dom, addr, ctl_hostname(c), date,
	    (long long)now, (long)getpid(), ctl_hostname(c));
	for (k = 0; text[k] != '\0'; k++) {
		if (text[k] == '\n')
			buf_puts(&m, "\r\n");
		else
			buf_putc(&m, text[k]);
	}
	for (i = 0; i < x.nmailbox; i++)
		if (ctl_lmtp_deliver(c, "", x.mailboxes[i], m.data, m.len, &r) !=
		    0) {
			reply_format(&r, q, sizeof(q));
			rc = ctl_fail(c, "delivering to %s: %s", x.mailboxes[i],
			    q);
		} else if (!c->json)
			printf("report delivered to %s\n", x.mailboxes[i]);
	buf_free(&m);
	dir_expansion_free(&x);
	return rc;
}

int
cmd_report(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mail", no_argument, NULL, 'm' },
		{ "no-dns", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	int ch, mail = 0, dns = 1, rc = CTL_OK;
	char to[300];
	struct dir *d;
	struct buf b;
	json_t *j;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 'm':
			mail = 1;
			break;
		case 'n':
			dns = 0;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind > (mail ? 1 : 0))
		return ctl_usage(c, "unexpected argument %s", argv[optind]);
	if ((d = ctl_dir_read(c)) == NULL)
		return CTL_ERR;
	to[0] = '\0';
	if (mail) {
		if (argc - optind == 1)
			snprintf(to, sizeof(to), "%s", argv[optind]);
		else if (dir_count(d, DIR_DOMAINS) > 0) {
			const struct dir_domain *dom = dir_domain_at(d, 0);
			const char *a = dir_domain_attr(dom, "admin");

			if (a != NULL)
				snprintf(to, sizeof(to), "%s", a);
			else
				snprintf(to, sizeof(to), "postmaster@%s",
				    dom->name);
		}
		if (to[0] == '\0') {
			dir_free(&d);
			return ctl_fail(c, "no domain: give the address to "
			    "mail the report to");
		}
	}
	j = collect(c, d, dns);
	buf_init(&b, 4 * 1024 * 1024);
	render(j, dns, &b);
	if (mail)
		rc = mail_report(c, d, to, buf_cstr(&b));
	else if (c->json) {
		ctl_json(j);
		j = NULL;
	} else
		fputs(buf_cstr(&b), stdout);
	if (j != NULL)
		json_decref(j);
	buf_free(&b);
	dir_free(&d);
	return rc;
}
