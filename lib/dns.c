/*
 * dns.c - TXT lookups over UDP (EDNS0) with a TCP retry, bounded by one
 * timeout per lookup (see dns.h for what it is and is not).
 *
 * Every reply is checked against the query (ID, flags, the question) and
 * parsed with explicit bounds; compression pointers may only point
 * backwards and are followed a bounded number of times.  Anything odd is
 * DNS_TEMP: a spoofed or garbled answer must never look like "no record".
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "lib/buf.h"
#include "lib/dns.h"

#define DNS_UDP_MAX	4096	/* EDNS0 buffer size we announce */
#define DNS_TCP_MAX	65535
#define DNS_T_TXT	16
#define DNS_T_OPT	41
#define DNS_C_IN	1
#define DNS_PTR_MAX	64	/* compression pointers followed per name */

struct dns_resolver {
	int	 none;
	struct sockaddr_storage ss;
	socklen_t sslen;
	int	 timeout_ms;
	char	 desc[80];
};

const char *
dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_FOUND:
		return "found";
	case DNS_NOTFOUND:
		return "notfound";
	case DNS_TEMP:
		break;
	}
	return "temp";
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "1.2.3.4", "1.2.3.4:53", "::1", "[::1]:53" into ss. */
static int
parse_addr(const char *spec, int defport, struct sockaddr_storage *ss,
    socklen_t *len_r)
{
	char host[64];
	const char *p, *port = NULL;
	long long pn = defport;
	struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)ss;
	size_t n;

	memset(ss, 0, sizeof(*ss));
	if (spec[0] == '[') {
		if ((p = strchr(spec, ']')) == NULL)
			return -1;
		n = (size_t)(p - spec - 1);
		if (p[1] == ':')
			port = p + 2;
		else if (p[1] != '\0')
			return -1;
		spec++;
	} else if ((p = strchr(spec, ':')) != NULL && strchr(p + 1, ':') == NULL) {
		n = (size_t)(p - spec);
		port = p + 1;
	} else
		n = strlen(spec);
	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, spec, n);
	host[n] = '\0';
	if (port != NULL && str_to_ll(port, 1, 65535, &pn) != 0)
		return -1;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)pn);
		*len_r = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)pn);
		*len_r = sizeof(*s6);
		return 0;
	}
	return -1;
}

/* The first usable "nameserver" line of /etc/resolv.conf. */
static int
system_server(char *out, size_t outsz)
{
	FILE *f;
	char line[512], *p, *e;

	if ((f = fopen("/etc/resolv.conf", "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, "nameserver", 10) != 0 ||
		    (p[10] != ' ' && p[10] != '\t'))
			continue;
		p += 10;
		while (*p == ' ' || *p == '\t')
			p++;
		e = p;
		while (*e && *e != ' ' && *e != '\t' && *e != '\n' && *e != '\r' &&
		    *e != '%')
			e++;
		*e = '\0';
		if (*p == '\0' || strlen(p) >= outsz)
			continue;
		memcpy(out, p, strlen(p) + 1);
		fclose(f);
		return 0;
	}
	fclose(f);
	return -1;
}

struct dns_resolver *
dns_new(const char *server, int timeout_ms, char *err, size_t errsz)
{
	struct dns_resolver *r;
	char sys[128], a[INET6_ADDRSTRLEN];
	const char *spec = server;
	int is_system = 0;
	unsigned port;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	r->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	if (strcmp(server, "none") == 0) {
		r->none = 1;
		snprintf(r->desc, sizeof(r->desc), "none");
		return r;
	}
	if (server[0] == '\0') {
		is_system = 1;
		spec = system_server(sys, sizeof(sys)) == 0 ? sys : "127.0.0.1";
	}
	if (parse_addr(spec, 53, &r->ss, &r->sslen) != 0) {
		snprintf(err, errsz, "bad DNS server address '%s'", spec);
		free(r);
		return NULL;
	}
	if (r->ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&r->ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		port = ntohs(s4->sin_port);
		snprintf(r->desc, sizeof(r->desc), "%s%s:%u",
		    is_system ? "system " : "", a, port);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&r->ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		port = ntohs(s6->sin6_port);
		snprintf(r->desc, sizeof(r->desc), "%s[%s]:%u",
		    is_system ? "system " : "", a, port);
	}
	return r;
}

void
dns_free(struct dns_resolver **rp)
{
	if (rp == NULL || *rp == NULL)
		return;
	free(*rp);
	*rp = NULL;
}

const char *
dns_describe(const struct dns_resolver *r)
{
	return r->desc;
}

void
dns_txt_free(struct dns_txt *t)
{
	free(t->mem);
	memset(t, 0, sizeof(*t));
}

/* ---- wire format --------------------------------------------------- */

static void
put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static unsigned
get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

int
dns_build_query(const char *name, uint16_t id, unsigned char *out,
    size_t outsz)
{
	size_t n = strlen(name), i = 12, lab;
	const char *p = name, *dot;

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > DNS_NAME_MAX || outsz < 12 + n + 2 + 4 + 11)
		return -1;
	memset(out, 0, 12);
	put16(out, id);
	out[2] = 0x01;			/* RD */
	put16(out + 4, 1);		/* QDCOUNT */
	put16(out + 10, 1);		/* ARCOUNT: the OPT record */
	while (p < name + n) {
		dot = memchr(p, '.', (size_t)(name + n - p));
		lab = dot ? (size_t)(dot - p) : (size_t)(name + n - p);
		if (lab == 0 || lab > 63)
			return -1;
		out[i++] = (unsigned char)lab;
		memcpy(out + i, p, lab);
		i += lab;
		p += lab + (dot ? 1 : 0);
		if (dot && p == name + n)
			return -1;	/* "a..": empty last label */
	}
	out[i++] = 0;
	put16(out + i, DNS_T_TXT);
	put16(out + i + 2, DNS_C_IN);
	i += 4;
	/* EDNS0 OPT: root name, type 41, class = UDP size, TTL 0, no data */
	out[i++] = 0;
	put16(out + i, DNS_T_OPT);
	put16(out + i + 2, DNS_UDP_MAX);
	memset(out + i + 4, 0, 6);
	i += 10;
	return (int)i;
}

/*
 * Walk the name at *off, advancing *off past it as it appears there.
 * With dec given, the name is also decoded into it, dotted, without the
 * final dot (a label holding a '.' makes the name unusable: -1).
 */
static int
name_walk(const unsigned char *msg, size_t len, size_t *off, char *dec)
{
	size_t i = *off, end = 0, total = 0, w = 0;
	int jumped = 0, ptrs = 0;
	unsigned lab;

	for (;;) {
		if (i >= len)
			return -1;
		lab = msg[i];
		if ((lab & 0xc0) == 0xc0) {
			size_t to;

			if (i + 1 >= len || ++ptrs > DNS_PTR_MAX)
				return -1;
			to = (size_t)((lab & 0x3f) << 8 | msg[i + 1]);
			if (to >= i)
				return -1;	/* only backwards */
			if (!jumped)
				end = i + 2;
			jumped = 1;
			i = to;
			continue;
		}
		if (lab & 0xc0)
			return -1;
		if (lab == 0) {
			i++;
			break;
		}
		if (i + 1 + lab > len || (total += lab + 1) > 255)
			return -1;
		if (dec != NULL) {
			if (memchr(msg + i + 1, '.', lab) != NULL ||
			    memchr(msg + i + 1, '\0', lab) != NULL)
				return -1;
			if (w > 0)
				dec[w++] = '.';
			memcpy(dec + w, msg + i + 1, lab);
			w += lab;
		}
		i += 1 + lab;
	}
	if (dec != NULL)
		dec[w] = '\0';
	*off = jumped ? end : i;
	return 0;
}

/* Same name, ignoring case and one final dot on either side. */
static int
name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

enum dns_status
dns_parse_answer(const unsigned char *msg, size_t len, uint16_t id,
    const char *name, struct dns_txt *out, int *truncated_r)
{
	unsigned qd, an, rcode, type, cls, rdlen, i;
	size_t off = 12, total = 0, rd, p, w;
	char qname[DNS_NAME_MAX + 3];

	memset(out, 0, sizeof(*out));
	*truncated_r = 0;
	if (len < 12 || get16(msg) != id || (msg[2] & 0x80) == 0 ||
	    (msg[2] & 0x78) != 0)
		return DNS_TEMP;	/* not a reply to a standard query */
	if (msg[2] & 0x02) {
		*truncated_r = 1;
		return DNS_TEMP;
	}
	rcode = msg[3] & 0x0f;
	qd = get16(msg + 4);
	an = get16(msg + 6);
	if (qd != 1)
		return DNS_TEMP;
	if (name_walk(msg, len, &off, qname) != 0 || !name_eq(qname, name) ||
	    off + 4 > len || get16(msg + off) != DNS_T_TXT ||
	    get16(msg + off + 2) != DNS_C_IN)
		return DNS_TEMP;
	off += 4;
	if (rcode == 3) {
		out->nxdomain = 1;
		return DNS_NOTFOUND;
	}
	if (rcode != 0)
		return DNS_TEMP;

	/* First pass: bounds and the space needed. */
	p = off;
	for (i = 0; i < an; i++) {
		if (name_walk(msg, len, &p, NULL) != 0 || p + 10 > len)
			return DNS_TEMP;
		rdlen = get16(msg + p + 8);
		if (p + 10 + rdlen > len)
			return DNS_TEMP;
		total += rdlen + 1;
		p += 10 + rdlen;
	}
	if (total == 0)
		return DNS_NOTFOUND;
	if ((out->mem = malloc(total)) == NULL)
		return DNS_TEMP;
	w = 0;
	p = off;
	for (i = 0; i < an; i++) {
		int bad = 0;
		size_t start = w;

		(void)name_walk(msg, len, &p, NULL);
		type = get16(msg + p);
		cls = get16(msg + p + 2);
		rdlen = get16(msg + p + 8);
		p += 10;
		rd = p;
		p += rdlen;
		if (type != DNS_T_TXT || cls != DNS_C_IN ||
		    out->n == DNS_TXT_MAX)
			continue;
		/* character-strings: <len><bytes>, joined */
		while (rd < p) {
			unsigned sl = msg[rd++];

			if (rd + sl > p) {
				dns_txt_free(out);
				return DNS_TEMP;	/* malformed */
			}
			if (memchr(msg + rd, '\0', sl) != NULL)
				bad = 1;
			memcpy(out->mem + w, msg + rd, sl);
			w += sl;
			rd += sl;
		}
		if (bad) {
			w = start;	/* a NUL inside: not usable as text */
			continue;
		}
		out->mem[w] = '\0';
		out->rec[out->n] = out->mem + start;
		out->len[out->n] = w - start;
		out->n++;
		w++;
	}
	if (out->n == 0) {
		dns_txt_free(out);
		return DNS_NOTFOUND;
	}
	return DNS_FOUND;
}

/* ---- transport ----------------------------------------------------- */

static int
wait_fd(int fd, short ev, long long deadline)
{
	struct pollfd pfd;
	long long left;
	int rc;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return -1;
		pfd.fd = fd;
		pfd.events = ev;
		rc = poll(&pfd, 1, (int)left);
		if (rc > 0)
			return 0;
		if (rc == 0 || errno != EINTR)
			return -1;
	}
}

static enum dns_status
query_udp(struct dns_resolver *r, const char *name, const unsigned char *q,
    size_t qlen, uint16_t id, long long deadline, struct dns_txt *out,
    int *truncated_r)
{
	unsigned char ans[DNS_UDP_MAX];
	enum dns_status st = DNS_TEMP;
	long long tries_end;
	ssize_t n;
	int fd, attempt;

	if ((fd = socket(r->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return DNS_TEMP;
	if (connect(fd, (struct sockaddr *)&r->ss, r->sslen) != 0)
		goto done;
	/* Two sends: the second one after half of the time is gone. */
	for (attempt = 0; attempt < 2; attempt++) {
		tries_end = attempt == 0 ? now_ms() + (deadline - now_ms()) / 2 :
		    deadline;
		if (send(fd, q, qlen, 0) != (ssize_t)qlen)
			goto done;
		while (wait_fd(fd, POLLIN, tries_end) == 0) {
			n = recv(fd, ans, sizeof(ans), 0);
			if (n < 0) {
				if (errno == EINTR || errno == EAGAIN)
					continue;
				goto done;	/* e.g. ECONNREFUSED */
			}
			st = dns_parse_answer(ans, (size_t)n, id, name, out,
			    truncated_r);
			if (st != DNS_TEMP || *truncated_r)
				goto done;
			/* A stray or bad packet: keep listening. */
			if ((size_t)n >= 12 && get16(ans) == id &&
			    (ans[3] & 0x0f) != 0 && (ans[3] & 0x0f) != 3)
				goto done;	/* SERVFAIL, REFUSED...: final */
		}
	}
done:
	close(fd);
	return st;
}

static int
io_all(int fd, unsigned char *p, size_t n, int writing, long long deadline)
{
	ssize_t k;

	while (n > 0) {
		if (wait_fd(fd, writing ? POLLOUT : POLLIN, deadline) != 0)
			return -1;
		k = writing ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static enum dns_status
query_tcp(struct dns_resolver *r, const char *name, const unsigned char *q,
    size_t qlen, uint16_t id, long long deadline, struct dns_txt *out)
{
	unsigned char hdr[2], *ans = NULL, *msg;
	enum dns_status st = DNS_TEMP;
	int fd, err, tc;
	socklen_t el = sizeof(err);
	size_t alen;

	if ((fd = socket(r->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) < 0)
		return DNS_TEMP;
	if (connect(fd, (struct sockaddr *)&r->ss, r->sslen) != 0) {
		if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) != 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 ||
		    err != 0)
			goto done;
	}
	if ((msg = malloc(qlen + 2)) == NULL)
		goto done;
	put16(msg, (unsigned)qlen);
	memcpy(msg + 2, q, qlen);
	err = io_all(fd, msg, qlen + 2, 1, deadline);
	free(msg);
	if (err != 0 || io_all(fd, hdr, 2, 0, deadline) != 0)
		goto done;
	alen = get16(hdr);
	if (alen < 12 || (ans = malloc(alen)) == NULL ||
	    io_all(fd, ans, alen, 0, deadline) != 0)
		goto done;
	st = dns_parse_answer(ans, alen, id, name, out, &tc);
done:
	free(ans);
	close(fd);
	return st;
}

enum dns_status
dns_txt(struct dns_resolver *r, const char *name, struct dns_txt *out)
{
	unsigned char q[512];
	uint16_t id;
	long long deadline;
	enum dns_status st;
	int qlen, tc = 0;

	memset(out, 0, sizeof(*out));
	if (r->none)
		return DNS_NOTFOUND;
	if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
		return DNS_TEMP;
	if ((qlen = dns_build_query(name, id, q, sizeof(q))) < 0)
		return DNS_NOTFOUND;	/* not a valid name: it cannot exist */
	deadline = now_ms() + r->timeout_ms;
	st = query_udp(r, name, q, (size_t)qlen, id, deadline, out, &tc);
	if (st == DNS_TEMP && tc) {
		dns_txt_free(out);
		st = query_tcp(r, name, q, (size_t)qlen, id, deadline, out);
	}
	return st;
}
