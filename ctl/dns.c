/*
 * dns.c - `edgemailctl dns DOMAIN`: every record a domain should publish,
 * as zone-file lines; `dns check DOMAIN`: what DNS actually answers for
 * each of them (missing, wrong, ok).
 *
 *   MX      the edge: Cloudflare Email Routing (mx_hosts)
 *   TXT     SPF (spf_record), DKIM (one per key in dkim_keys_dir),
 *           DMARC with rua to the domain's dmarc-report alias
 *   CNAME   autoconfig. and autodiscover. to autoconfig_host (the API)
 *   SRV     RFC 6186 / RFC 8314: imaps, imap, pop3s, pop3, submissions,
 *           submission; _autodiscover._tcp for Outlook
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl/ctl.h"

static int
push(struct dns_expect **v, size_t *n, const char *name, const char *type,
    const char *value, const char *prefix)
{
	struct dns_expect *nv;

	if ((nv = realloc(*v, (*n + 1) * sizeof(*nv))) == NULL)
		return -1;
	*v = nv;
	memset(&nv[*n], 0, sizeof(nv[*n]));
	snprintf(nv[*n].name, sizeof(nv[*n].name), "%s", name);
	snprintf(nv[*n].type, sizeof(nv[*n].type), "%s", type);
	snprintf(nv[*n].value, sizeof(nv[*n].value), "%s", value);
	snprintf(nv[*n].prefix, sizeof(nv[*n].prefix), "%s", prefix ? prefix :
	    "");
	(*n)++;
	return 0;
}

/* The port of "host:port" (submit_listen...), or def. */
static long long
listen_port(struct ctl *c, const char *key, long long def)
{
	const char *v = ctl_get(c, key), *colon = strrchr(v, ':');
	long long p;

	if (colon == NULL || str_to_ll(colon + 1, 1, 65535, &p) != 0)
		return def;
	return p;
}

static const char *
host_or(struct ctl *c, const char *key)
{
	const char *h = ctl_get(c, key);

	return h[0] ? h : ctl_hostname(c);
}

int
dns_expected(struct ctl *c, const char *domain, struct dns_expect **out,
    size_t *n)
{
	char name[600], val[600];
	const char *mx = ctl_get(c, "mx_hosts");
	long long imap = 143, imaps = 993, pop3 = 110, pop3s = 995;
	json_t *dkim = json_array();
	size_t i;
	int prio = 10, rc = 0;

	*out = NULL;
	*n = 0;
	ctl_get_ll(c, "imap_port", 1, 65535, &imap);
	ctl_get_ll(c, "imaps_port", 1, 65535, &imaps);
	ctl_get_ll(c, "pop3_port", 1, 65535, &pop3);
	ctl_get_ll(c, "pop3s_port", 1, 65535, &pop3s);
	/* MX: the edge's hosts, in the order given. */
	while (*mx != '\0') {
		size_t len;

		while (*mx == ' ' || *mx == ',')
			mx++;
		if ((len = strcspn(mx, " ,")) == 0)
			break;
		snprintf(val, sizeof(val), "%d %.*s", prio, (int)len, mx);
		rc |= push(out, n, domain, "MX", val, NULL);
		prio += 10;
		mx += len;
	}
	rc |= push(out, n, domain, "TXT", ctl_get(c, "spf_record"), "v=spf1");
	dkim_domain_records(c, domain, NULL, dkim);
	for (i = 0; i < json_array_size(dkim); i++) {
		json_t *e = json_array_get(dkim, i);

		rc |= push(out, n, json_string_value(json_object_get(e, "name")),
		    "TXT", json_string_value(json_object_get(e, "record")),
		    "v=DKIM1");
	}
	json_decref(dkim);
	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	snprintf(val, sizeof(val), "v=DMARC1; p=%s; rua=mailto:dmarc-report@%s; "
	    "adkim=r; aspf=r", ctl_get(c, "dmarc_policy"), domain);
	rc |= push(out, n, name, "TXT", val, "v=DMARC1");
	snprintf(name, sizeof(name), "autoconfig.%s", domain);
	rc |= push(out, n, name, "CNAME", host_or(c, "autoconfig_host"), NULL);
	snprintf(name, sizeof(name), "autodiscover.%s", domain);
	rc |= push(out, n, name, "CNAME", host_or(c, "autoconfig_host"), NULL);
#define SRV(label, prio_, port, hostkey) do {				\
	snprintf(name, sizeof(name), "%s.%s", (label), domain);		\
	snprintf(val, sizeof(val), "%d 1 %lld %s", (prio_), (long long)(port), \
	    host_or(c, (hostkey)));					\
	rc |= push(out, n, name, "SRV", val, NULL);			\
} while (0)
	SRV("_imaps._tcp", 0, imaps, "imap_host");
	SRV("_imap._tcp", 10, imap, "imap_host");
	SRV("_pop3s._tcp", 20, pop3s, "pop3_host");
	SRV("_pop3._tcp", 30, pop3, "pop3_host");
	SRV("_submissions._tcp", 0, listen_port(c, "submit_tls_listen", 465),
	    "submission_host");
	SRV("_submission._tcp", 10, listen_port(c, "submit_listen", 587),
	    "submission_host");
	SRV("_autodiscover._tcp", 0, 443, "autoconfig_host");
#undef SRV
	if (rc != 0) {
		free(*out);
		*out = NULL;
		*n = 0;
		return -1;
	}
	return 0;
}

static int
domain_arg(struct ctl *c, int argc, char **argv, const char **domain)
{
	int ch;

	while ((ch = ctl_getopt(c, argc, argv, "", NULL)) != -1) {
		if (ch == 'h')
			return ctl_help(c) + 100;
		return ctl_usage(c, NULL);
	}
	if (argc - optind != 1)
		return ctl_usage(c, "one DOMAIN expected");
	*domain = argv[optind];
	if (strchr(*domain, '/') != NULL || strchr(*domain, ' ') != NULL ||
	    (*domain)[0] == '.' || (*domain)[0] == '\0')
		return ctl_usage(c, "bad domain '%s'", *domain);
	return -1;
}

static void
print_record(const struct dns_expect *e)
{
	char name[320];

	snprintf(name, sizeof(name), "%s.", e->name);
	if (strcmp(e->type, "TXT") == 0) {
		size_t n = strlen(e->value), i;

		printf("%-40s 3600 IN TXT   ", name);
		for (i = 0; i < n || i == 0; i += 255)
			printf("%s\"%.*s\"", i ? " " : "",
			    (int)(n - i > 255 ? 255 : n - i), e->value + i);
		printf("\n");
	} else
		printf("%-40s 3600 IN %-5s %s.\n", name, e->type, e->value);
}

int
cmd_dns(struct ctl *c, int argc, char **argv)
{
	struct dns_expect *ex;
	const char *domain;
	size_t i, n;
	int rc;

	if ((rc = domain_arg(c, argc, argv, &domain)) >= 0)
		return rc >= 100 ? rc - 100 : rc;
	if (dns_expected(c, domain, &ex, &n) != 0)
		return ctl_fail(c, "out of memory");
	if (c->json) {
		json_t *list = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(list, json_pack("{s:s, s:s, s:s}",
			    "name", ex[i].name, "type", ex[i].type, "value",
			    ex[i].value));
		free(ex);
		return ctl_json(list);
	}
	printf("; DNS records for %s (edgemailctl dns %s)\n", domain, domain);
	for (i = 0; i < n; i++) {
		if (i == 0 || strcmp(ex[i].type, ex[i - 1].type) != 0 ||
		    strcmp(ex[i].type, "TXT") == 0)
			printf(";\n");
		print_record(&ex[i]);
	}
	free(ex);
	return CTL_OK;
}

/* Compare two DNS values: case-insensitive, final dots and runs of
 * blanks ignored. */
static int
same_value(const char *a, const char *b)
{
	for (;;) {
		while (*a == ' ' && (a[1] == ' ' || a[1] == '\0'))
			a++;
		while (*b == ' ' && (b[1] == ' ' || b[1] == '\0'))
			b++;
		if ((*a == '.' && (a[1] == '\0' || a[1] == ' ')) &&
		    !(*b == '.' && (b[1] == '\0' || b[1] == ' ')))
			a++;
		if ((*b == '.' && (b[1] == '\0' || b[1] == ' ')) &&
		    !(*a == '.' && (a[1] == '\0' || a[1] == ' ')))
			b++;
		if (*a == '\0' || *b == '\0')
			return *a == *b;
		if ((*a | 0x20) != (*b | 0x20) && *a != *b)
			return 0;
		a++;
		b++;
	}
}

int
dns_check_domain(struct ctl *c, const char *domain, json_t *list, int print)
{
	struct dns_expect *ex;
	size_t i;
	int problems = 0, j;
	char err[256];
	const char *server = ctl_get(c, "dns_server");

	if (dns_expected(c, domain, &ex, &i) != 0)
		return -1;
	{
		size_t n = i;

		for (i = 0; i < n; i++) {
			char **ans = NULL, *found = NULL;
			const char *status;
			int na;

			na = resolve_query(server, ex[i].name, ex[i].type, 3000,
			    &ans, err, sizeof(err));
			if (na < 0) {
				if (print)
					printf("%-8s %-5s %s: %s\n", "error",
					    ex[i].type, ex[i].name, err);
				json_array_append_new(list, json_pack("{s:s, "
				    "s:s, s:s, s:s, s:s}", "name", ex[i].name,
				    "type", ex[i].type, "expected", ex[i].value,
				    "status", "error", "detail", err));
				free(ex);
				return -1;
			}
			status = "missing";
			for (j = 0; j < na; j++) {
				if (strcmp(ex[i].type, "MX") == 0) {
					/* Priorities differ between zones:
					 * compare the host only. */
					const char *h1 = strchr(ans[j], ' ');
					const char *h2 = strchr(ex[i].value, ' ');

					if (h1 && h2 && same_value(h1 + 1,
					    h2 + 1)) {
						status = "ok";
						found = ans[j];
					}
					continue;
				}
				if (same_value(ans[j], ex[i].value)) {
					status = "ok";
					found = ans[j];
					break;
				}
				if (ex[i].prefix[0] != '\0' && strncasecmp(ans[j],
				    ex[i].prefix, strlen(ex[i].prefix)) == 0) {
					status = "wrong";
					found = ans[j];
				} else if (ex[i].prefix[0] == '\0' &&
				    strcmp(status, "ok") != 0) {
					status = "wrong";
					found = ans[j];
				}
			}
			if (strcmp(status, "ok") != 0)
				problems++;
			if (print) {
				printf("%-8s %-5s %s", status, ex[i].type,
				    ex[i].name);
				if (strcmp(status, "ok") != 0) {
					printf("\n         want: %s", ex[i].value);
					if (found != NULL)
						printf("\n         have: %s",
						    found);
				}
				printf("\n");
			}
			json_array_append_new(list, json_pack("{s:s, s:s, s:s, "
			    "s:s, s:s?}", "name", ex[i].name, "type",
			    ex[i].type, "expected", ex[i].value, "status",
			    status, "found", found));
			resolve_free(ans, na);
		}
	}
	free(ex);
	return problems;
}

int
cmd_dns_check(struct ctl *c, int argc, char **argv)
{
	const char *domain;
	json_t *list;
	int rc, problems;

	if ((rc = domain_arg(c, argc, argv, &domain)) >= 0)
		return rc >= 100 ? rc - 100 : rc;
	list = json_array();
	problems = dns_check_domain(c, domain, list, !c->json);
	if (c->json)
		ctl_json(json_pack("{s:s, s:i, s:o}", "domain", domain,
		    "problems", problems < 0 ? -1 : problems, "records", list));
	else {
		json_decref(list);
		if (problems > 0)
			printf("%d record(s) missing or wrong\n", problems);
		else if (problems == 0)
			printf("all records present\n");
	}
	if (problems < 0)
		return ctl_fail(c, "cannot query DNS (dns_server = '%s')",
		    ctl_get(c, "dns_server"));
	return problems > 0 ? CTL_ERR : CTL_OK;
}
