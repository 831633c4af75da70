/*
 * autoconfig.c - mail client set-up for the directory's domains (DESIGN
 * section 4): Thunderbird autoconfig and Outlook autodiscover.
 *
 *   GET  /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=A
 *   GET  /mail/config-v1.1.xml?emailaddress=A        (autoconfig.DOMAIN)
 *   POST /autodiscover/autodiscover.xml              (POX, EMailAddress)
 *
 * Both point at imap_host / pop3_host / submission_host with the
 * configured ports: implicit TLS first, STARTTLS second.  A domain that
 * is not ours gets 404.  No authentication: the answers hold nothing but
 * host names and ports, as the DNS records (edgemailctl dns) do.
 * http.c routes the requests here and sends the answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/api.h"
#include "lib/conf.h"
#include "lib/directory.h"

#define AC_BODY_MAX	(64 * 1024)

int
autoconfig_match(const char *path)
{
	if (strcmp(path, "/.well-known/autoconfig/mail/config-v1.1.xml") == 0 ||
	    strcmp(path, "/mail/config-v1.1.xml") == 0)
		return AUTOCONFIG_THUNDERBIRD;
	if (strcasecmp(path, "/autodiscover/autodiscover.xml") == 0)
		return AUTOCONFIG_OUTLOOK;
	return 0;
}

size_t
autoconfig_body_max(void)
{
	return AC_BODY_MAX;
}

/* XML text: & < > " ' escaped. */
static void
xml(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		switch (*s) {
		case '&':
			buf_puts(b, "&amp;");
			break;
		case '<':
			buf_puts(b, "&lt;");
			break;
		case '>':
			buf_puts(b, "&gt;");
			break;
		case '"':
			buf_puts(b, "&quot;");
			break;
		case '\'':
			buf_puts(b, "&apos;");
			break;
		default:
			buf_putc(b, *s);
		}
}


/* The value of name= in a query string, percent-decoded; -1 if absent. */
static int
query_param(const char *q, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name);

	while (q != NULL && *q != '\0') {
		const char *end = q + strcspn(q, "&");

		if ((size_t)(end - q) > nl && strncmp(q, name, nl) == 0 &&
		    q[nl] == '=') {
			const char *p = q + nl + 1;
			size_t o = 0;

			while (p < end && o + 1 < outsz) {
				if (*p == '%' && end - p >= 3 &&
				    hex_digit(p[1]) >= 0 && hex_digit(p[2]) >= 0) {
					out[o++] = (char)(hex_digit(p[1]) * 16 +
					    hex_digit(p[2]));
					p += 3;
				} else {
					out[o++] = *p == '+' ? ' ' : *p;
					p++;
				}
			}
			out[o] = '\0';
			return 0;
		}
		q = *end ? end + 1 : end;
	}
	return -1;
}

/* The text between <tag> and </tag> (any case, any namespace prefix). */
static int
xml_element(const char *body, size_t len, const char *tag, char *out,
    size_t outsz)
{
	size_t tl = strlen(tag), i;

	for (i = 0; i + tl + 2 < len; i++) {
		size_t j, k;

		if (body[i] != '<' || body[i + 1] == '/')
			continue;
		/* <ns:Tag> or <Tag> */
		j = i + 1;
		k = j;
		while (k < len && body[k] != '>' && body[k] != ':' &&
		    body[k] != ' ')
			k++;
		if (k < len && body[k] == ':')
			j = k + 1;
		if (j + tl < len && strncasecmp(body + j, tag, tl) == 0 &&
		    body[j + tl] == '>') {
			size_t s = j + tl + 1, e = s;

			while (e < len && body[e] != '<')
				e++;
			if (e - s + 1 > outsz)
				return -1;
			memcpy(out, body + s, e - s);
			out[e - s] = '\0';
			/* Trim blanks. */
			while (out[0] == ' ' || out[0] == '\t' ||
			    out[0] == '\r' || out[0] == '\n')
				memmove(out, out + 1, strlen(out));
			e = strlen(out);
			while (e > 0 && (out[e - 1] == ' ' || out[e - 1] == '\t'
			    || out[e - 1] == '\r' || out[e - 1] == '\n'))
				out[--e] = '\0';
			return 0;
		}
	}
	return -1;
}

struct ports {
	long long imaps, imap, pop3s, pop3, submissions, submission;
	const char *imap_host, *pop3_host, *smtp_host;
};

static long long
port_of(struct api *api, const char *key, long long def)
{
	const char *v = conf_get(api->conf, key), *colon;
	long long p;

	if (v == NULL)
		return def;
	colon = strrchr(v, ':');
	if (str_to_ll(colon ? colon + 1 : v, 1, 65535, &p) != 0)
		return def;
	return p;
}

static const char *
host_of(struct api *api, const char *key)
{
	const char *h = conf_get(api->conf, key);

	return h != NULL && h[0] != '\0' ? h : api->hostname;
}

static void
get_ports(struct api *api, struct ports *p)
{
	p->imaps = port_of(api, "imaps_port", 993);
	p->imap = port_of(api, "imap_port", 143);
	p->pop3s = port_of(api, "pop3s_port", 995);
	p->pop3 = port_of(api, "pop3_port", 110);
	p->submissions = port_of(api, "submit_tls_listen", 465);
	p->submission = port_of(api, "submit_listen", 587);
	p->imap_host = host_of(api, "imap_host");
	p->pop3_host = host_of(api, "pop3_host");
	p->smtp_host = host_of(api, "submission_host");
}

static void
tb_server(struct buf *b, const char *kind, const char *type,
    const char *host, long long port, const char *sock)
{
	buf_printf(b, "    <%s type=\"%s\">\n      <hostname>", kind, type);
	xml(b, host);
	buf_printf(b, "</hostname>\n      <port>%lld</port>\n"
	    "      <socketType>%s</socketType>\n"
	    "      <authentication>password-cleartext</authentication>\n"
	    "      <username>%%EMAILADDRESS%%</username>\n    </%s>\n", port,
	    sock, kind);
}

static void
thunderbird(struct buf *b, const char *domain, const struct ports *p)
{
	buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<clientConfig version=\"1.1\">\n  <emailProvider id=\"");
	xml(b, domain);
	buf_puts(b, "\">\n    <domain>");
	xml(b, domain);
	buf_puts(b, "</domain>\n    <displayName>");
	xml(b, domain);
	buf_puts(b, " mail</displayName>\n    <displayShortName>");
	xml(b, domain);
	buf_puts(b, "</displayShortName>\n");
	tb_server(b, "incomingServer", "imap", p->imap_host, p->imaps, "SSL");
	tb_server(b, "incomingServer", "imap", p->imap_host, p->imap,
	    "STARTTLS");
	tb_server(b, "incomingServer", "pop3", p->pop3_host, p->pop3s, "SSL");
	tb_server(b, "incomingServer", "pop3", p->pop3_host, p->pop3,
	    "STARTTLS");
	tb_server(b, "outgoingServer", "smtp", p->smtp_host, p->submissions,
	    "SSL");
	tb_server(b, "outgoingServer", "smtp", p->smtp_host, p->submission,
	    "STARTTLS");
	buf_puts(b, "  </emailProvider>\n</clientConfig>\n");
}

static void
ol_protocol(struct buf *b, const char *type, const char *host,
    long long port, const char *login, int implicit_tls)
{
	buf_printf(b, "      <Protocol>\n        <Type>%s</Type>\n"
	    "        <Server>", type);
	xml(b, host);
	buf_printf(b, "</Server>\n        <Port>%lld</Port>\n"
	    "        <DomainRequired>off</DomainRequired>\n"
	    "        <LoginName>", port);
	xml(b, login);
	buf_printf(b, "</LoginName>\n        <SPA>off</SPA>\n");
	if (implicit_tls)
		buf_puts(b, "        <SSL>on</SSL>\n");
	else
		buf_puts(b, "        <Encryption>TLS</Encryption>\n");
	buf_puts(b, "        <AuthRequired>on</AuthRequired>\n");
	if (strcmp(type, "SMTP") == 0)
		buf_puts(b, "        <UsePOPAuth>off</UsePOPAuth>\n"
		    "        <SMTPLast>off</SMTPLast>\n");
	buf_puts(b, "      </Protocol>\n");
}

static void
outlook(struct buf *b, const char *email, const struct ports *p)
{
	buf_puts(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
	    "autodiscover/responseschema/2006\">\n"
	    "  <Response xmlns=\"http://schemas.microsoft.com/exchange/"
	    "autodiscover/outlook/responseschema/2006a\">\n"
	    "    <User>\n      <DisplayName>");
	xml(b, email);
	buf_puts(b, "</DisplayName>\n    </User>\n    <Account>\n"
	    "      <AccountType>email</AccountType>\n"
	    "      <Action>settings</Action>\n");
	ol_protocol(b, "IMAP", p->imap_host, p->imaps, email, 1);
	ol_protocol(b, "POP3", p->pop3_host, p->pop3s, email, 1);
	ol_protocol(b, "SMTP", p->smtp_host, p->submissions, email, 1);
	ol_protocol(b, "SMTP", p->smtp_host, p->submission, email, 0);
	buf_puts(b, "    </Account>\n  </Response>\n</Autodiscover>\n");
}

/* The domain of an address (lower case) into out; -1 if malformed. */
static int
domain_of_email(const char *email, char *out, size_t outsz)
{
	struct addr a;
	const char *err;

	if (addr_parse(email, strlen(email), ADDR_ALLOW_UTF8, &a, &err) != 0 ||
	    addr_is_null(&a))
		return -1;
	snprintf(out, outsz, "%s", a.domain);
	return 0;
}

unsigned
autoconfig_answer(struct api *api, int kind, const char *query,
    const char *host, const char *body, size_t len, struct buf *out,
    const char **ctype, char *why, size_t whysz)
{
	char email[ADDR_PATH_MAX + 1], domain[ADDR_DOMAIN_MAX + 1];
	struct ports p;

	email[0] = domain[0] = '\0';
	*ctype = "application/xml; charset=utf-8";
	if (kind == AUTOCONFIG_THUNDERBIRD) {
		if (query_param(query, "emailaddress", email, sizeof(email)) ==
		    0 && email[0] != '\0') {
			if (domain_of_email(email, domain, sizeof(domain)) != 0) {
				snprintf(why, whysz, "bad emailaddress");
				return 400;
			}
		} else if (host != NULL) {
			/* autoconfig.DOMAIN[:port] */
			const char *h = host;
			size_t n;

			if (strncasecmp(h, "autoconfig.", 11) == 0)
				h += 11;
			n = strcspn(h, ":");
			snprintf(domain, sizeof(domain), "%.*s", (int)n, h);
			for (n = 0; domain[n] != '\0'; n++)
				if (domain[n] >= 'A' && domain[n] <= 'Z')
					domain[n] = (char)(domain[n] - 'A' + 'a');
		}
	} else {
		if (body == NULL || xml_element(body, len, "EMailAddress", email,
		    sizeof(email)) != 0 || domain_of_email(email, domain,
		    sizeof(domain)) != 0) {
			snprintf(why, whysz, "no valid EMailAddress in the "
			    "request");
			return 400;
		}
	}
	if (domain[0] == '\0' || api->dir == NULL ||
	    !directory_is_local_domain(api->dir, domain)) {
		snprintf(why, whysz, "not a domain of this server");
		return 404;
	}
	get_ports(api, &p);
	if (kind == AUTOCONFIG_THUNDERBIRD)
		thunderbird(out, domain, &p);
	else
		outlook(out, email, &p);
	return 200;
}
