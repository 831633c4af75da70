/*
 * resolve.c - the DNS client of `edgemailctl dns check`: one recursive
 * query for any of MX, TXT, SRV, CNAME, A, AAAA to one server, over UDP
 * with EDNS0, again over TCP when the answer is truncated.
 *
 * The server is dns_server ("ip", "ip:port", "[v6]:port") or, when that
 * is empty, the first nameserver of /etc/resolv.conf.  Answers come back
 * as zone-file values ("10 mx.example.net", "0 1 993 imap.example.net",
 * TXT strings joined, names without the final dot).  lib/dns.c is the
 * resolver of the message path (TXT only, thread-safe); this one is for
 * an administrator's command and needs the other types.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"

#define T_A	1
#define T_CNAME	5
#define T_MX	15
#define T_TXT	16
#define T_AAAA	28
#define T_SRV	33

static const struct {
	const char *name;
	int	 type;
} types[] = {
	{ "A", T_A }, { "CNAME", T_CNAME }, { "MX", T_MX }, { "TXT", T_TXT },
	{ "AAAA", T_AAAA }, { "SRV", T_SRV },
};

static int
server_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errsz)
{
	char host[128], line[256];
	long long port = 53;
	const char *p;
	FILE *fp;

	host[0] = '\0';
	if (strcmp(spec, "none") == 0) {
		snprintf(err, errsz, "DNS lookups are off (dns_server = none)");
		return -1;
	}
	if (spec[0] == '\0') {
		/* The system's resolver: tests always set dns_server. */
		if ((fp = fopen("/etc/resolv.conf", "re")) != NULL) {
			while (fgets(line, sizeof(line), fp) != NULL)
				if (sscanf(line, "nameserver %127s", host) == 1)
					break;
			fclose(fp);
		}
		if (host[0] == '\0') {
			snprintf(err, errsz, "no dns_server and no nameserver "
			    "in /etc/resolv.conf");
			return -1;
		}
	} else if (spec[0] == '[') {
		if ((p = strchr(spec, ']')) == NULL ||
		    (size_t)(p - spec) >= sizeof(host)) {
			snprintf(err, errsz, "bad dns_server '%s'", spec);
			return -1;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(p - spec - 1),
		    spec + 1);
		if (p[1] == ':' && str_to_ll(p + 2, 1, 65535, &port) != 0) {
			snprintf(err, errsz, "bad port in dns_server '%s'", spec);
			return -1;
		}
	} else if ((p = strchr(spec, ':')) != NULL && strchr(p + 1, ':') ==
	    NULL) {
		snprintf(host, sizeof(host), "%.*s", (int)(p - spec), spec);
		if (str_to_ll(p + 1, 1, 65535, &port) != 0) {
			snprintf(err, errsz, "bad port in dns_server '%s'", spec);
			return -1;
		}
	} else
		snprintf(host, sizeof(host), "%s", spec);
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) ==
	    1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*len = sizeof(struct sockaddr_in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr)
	    == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		*len = sizeof(struct sockaddr_in6);
		return 0;
	}
	snprintf(err, errsz, "dns_server '%s' is not an IP address", spec);
	return -1;
}

static int
build_query(const char *name, int type, uint16_t id, unsigned char *q,
    size_t qsz)
{
	size_t o = 12, n;
	const char *p = name;

	if (qsz < 512)
		return -1;
	memset(q, 0, 12);
	q[0] = (unsigned char)(id >> 8);
	q[1] = (unsigned char)id;
	q[2] = 0x01;			/* RD */
	q[5] = 1;			/* QDCOUNT */
	q[11] = 1;			/* ARCOUNT: the OPT record */
	while (*p != '\0') {
		n = strcspn(p, ".");
		if (n == 0 || n > 63 || o + n + 1 > 300)
			return -1;
		q[o++] = (unsigned char)n;
		memcpy(q + o, p, n);
		o += n;
		p += n;
		if (*p == '.')
			p++;
	}
	q[o++] = 0;
	q[o++] = (unsigned char)(type >> 8);
	q[o++] = (unsigned char)type;
	q[o++] = 0;
	q[o++] = 1;			/* IN */
	/* OPT: root name, type 41, UDP size 4096, no flags. */
	q[o++] = 0;
	q[o++] = 0;
	q[o++] = 41;
	q[o++] = 0x10;
	q[o++] = 0x00;
	memset(q + o, 0, 6);
	o += 6;
	return (int)o;
}

/* A (possibly compressed) name at *off into out; -1 if malformed. */
static int
read_name(const unsigned char *m, size_t len, size_t *off, char *out,
    size_t outsz)
{
	size_t o = *off, w = 0;
	int jumped = 0, hops = 0;

	out[0] = '\0';
	for (;;) {
		unsigned c;

		if (o >= len)
			return -1;
		c = m[o];
		if (c == 0) {
			if (!jumped)
				*off = o + 1;
			break;
		}
		if ((c & 0xc0) == 0xc0) {
			if (o + 1 >= len || ++hops > 32)
				return -1;
			if (!jumped)
				*off = o + 2;
			jumped = 1;
			o = ((c & 0x3f) << 8) | m[o + 1];
			continue;
		}
		if ((c & 0xc0) != 0 || o + 1 + c > len || w + c + 2 > outsz)
			return -1;
		if (w > 0)
			out[w++] = '.';
		memcpy(out + w, m + o + 1, c);
		w += c;
		out[w] = '\0';
		o += 1 + c;
	}
	return 0;
}

static int
add_answer(char ***v, int *n, const char *s)
{
	char **nv;

	if ((nv = realloc(*v, (size_t)(*n + 1) * sizeof(*nv))) == NULL)
		return -1;
	*v = nv;
	if ((nv[*n] = strdup(s)) == NULL)
		return -1;
	(*n)++;
	return 0;
}

/* Parse the answer; 1: truncated (ask again over TCP). */
static int
parse(const unsigned char *m, size_t len, uint16_t id, int type,
    char ***ans, int *nans, char *err, size_t errsz)
{
	size_t off = 12;
	unsigned qd, an, i, rcode;
	char name[1100], val[8192];

	if (len < 12 || ((m[0] << 8) | m[1]) != id || !(m[2] & 0x80)) {
		snprintf(err, errsz, "malformed answer");
		return -1;
	}
	if (m[2] & 0x02)
		return 1;
	rcode = m[3] & 0x0f;
	if (rcode == 3)
		return 0;		/* NXDOMAIN: no answer */
	if (rcode != 0) {
		snprintf(err, errsz, "server answered rcode %u", rcode);
		return -1;
	}
	qd = (unsigned)((m[4] << 8) | m[5]);
	an = (unsigned)((m[6] << 8) | m[7]);
	for (i = 0; i < qd; i++) {
		if (read_name(m, len, &off, name, sizeof(name)) != 0 ||
		    off + 4 > len)
			goto bad;
		off += 4;
	}
	for (i = 0; i < an; i++) {
		unsigned rtype, rdlen;
		size_t rd;

		if (read_name(m, len, &off, name, sizeof(name)) != 0 ||
		    off + 10 > len)
			goto bad;
		rtype = (unsigned)((m[off] << 8) | m[off + 1]);
		rdlen = (unsigned)((m[off + 8] << 8) | m[off + 9]);
		off += 10;
		if (off + rdlen > len)
			goto bad;
		rd = off;
		off += rdlen;
		if ((int)rtype != type)
			continue;	/* a CNAME on the way, say */
		val[0] = '\0';
		switch (rtype) {
		case T_A:
			if (rdlen != 4 || !inet_ntop(AF_INET, m + rd, val,
			    sizeof(val)))
				goto bad;
			break;
		case T_AAAA:
			if (rdlen != 16 || !inet_ntop(AF_INET6, m + rd, val,
			    sizeof(val)))
				goto bad;
			break;
		case T_CNAME: {
			size_t p = rd;

			if (read_name(m, len, &p, val, sizeof(val)) != 0)
				goto bad;
			break;
		}
		case T_MX: {
			size_t p = rd + 2;

			if (rdlen < 3 || read_name(m, len, &p, name,
			    sizeof(name)) != 0)
				goto bad;
			snprintf(val, sizeof(val), "%u %s",
			    (unsigned)((m[rd] << 8) | m[rd + 1]), name);
			break;
		}
		case T_SRV: {
			size_t p = rd + 6;

			if (rdlen < 7 || read_name(m, len, &p, name,
			    sizeof(name)) != 0)
				goto bad;
			snprintf(val, sizeof(val), "%u %u %u %s",
			    (unsigned)((m[rd] << 8) | m[rd + 1]),
			    (unsigned)((m[rd + 2] << 8) | m[rd + 3]),
			    (unsigned)((m[rd + 4] << 8) | m[rd + 5]), name);
			break;
		}
		case T_TXT: {
			size_t p = rd, w = 0;

			while (p < rd + rdlen) {
				unsigned sl = m[p++];

				if (p + sl > rd + rdlen || w + sl + 1 >
				    sizeof(val))
					goto bad;
				memcpy(val + w, m + p, sl);
				w += sl;
				p += sl;
			}
			val[w] = '\0';
			break;
		}
		default:
			continue;
		}
		if (add_answer(ans, nans, val) != 0) {
			snprintf(err, errsz, "out of memory");
			return -1;
		}
	}
	return 0;
bad:
	snprintf(err, errsz, "malformed answer");
	return -1;
}

static int
wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = { fd, ev, 0 };
	int r;

	while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	return r > 0 ? 0 : -1;
}

static int
query_tcp(const struct sockaddr_storage *ss, socklen_t sl,
    const unsigned char *q, int qlen, int timeout_ms, unsigned char *a,
    size_t asz, size_t *alen)
{
	unsigned char hdr[2] = { (unsigned char)(qlen >> 8),
	    (unsigned char)qlen };
	size_t need, got = 0;
	int fd;
	ssize_t r;

	if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)ss, sl) != 0 ||
	    write(fd, hdr, 2) != 2 || write(fd, q, (size_t)qlen) != qlen) {
		close(fd);
		return -1;
	}
	need = 2;
	while (got < need) {
		if (wait_fd(fd, POLLIN, timeout_ms) != 0 ||
		    (r = read(fd, a + got, need - got)) <= 0) {
			close(fd);
			return -1;
		}
		got += (size_t)r;
		if (need == 2 && got == 2) {
			need = 2 + (size_t)((a[0] << 8) | a[1]);
			if (need > asz) {
				close(fd);
				return -1;
			}
		}
	}
	close(fd);
	memmove(a, a + 2, need - 2);
	*alen = need - 2;
	return 0;
}

int
resolve_query(const char *server, const char *name, const char *type,
    int timeout_ms, char ***answers_r, char *err, size_t errsz)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	unsigned char q[600], a[65536];
	uint16_t id;
	int qlen, t = 0, fd, rc, n = 0, tries;
	size_t i;
	ssize_t alen = -1;
	char **ans = NULL;

	*answers_r = NULL;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(types[i].name, type) == 0)
			t = types[i].type;
	if (t == 0) {
		snprintf(err, errsz, "unsupported record type %s", type);
		return -1;
	}
	if (server_addr(server, &ss, &sl, err, errsz) != 0)
		return -1;
	if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
		id = (uint16_t)time(NULL);
	if ((qlen = build_query(name, t, id, q, sizeof(q))) < 0) {
		snprintf(err, errsz, "bad name %s", name);
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&ss, sl) != 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Two tries, each half of the time. */
	for (tries = 0; tries < 2 && alen < 0; tries++) {
		if (send(fd, q, (size_t)qlen, 0) != qlen)
			break;
		while (wait_fd(fd, POLLIN, timeout_ms / 2) == 0) {
			alen = recv(fd, a, sizeof(a), 0);
			if (alen >= 2 && ((a[0] << 8) | a[1]) == id)
				break;
			alen = -1;
		}
	}
	close(fd);
	if (alen < 0) {
		snprintf(err, errsz, "no answer from the DNS server");
		return -1;
	}
	rc = parse(a, (size_t)alen, id, t, &ans, &n, err, errsz);
	if (rc == 1) {
		size_t tl;

		if (query_tcp(&ss, sl, q, qlen, timeout_ms, a, sizeof(a), &tl) !=
		    0) {
			snprintf(err, errsz, "truncated answer, and TCP failed");
			return -1;
		}
		rc = parse(a, tl, id, t, &ans, &n, err, errsz);
	}
	if (rc != 0) {
		resolve_free(ans, n);
		return -1;
	}
	*answers_r = ans;
	return n;
}

void
resolve_free(char **answers, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(answers[i]);
	free(answers);
}
