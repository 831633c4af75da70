/*
 * srs.c - Sender Rewriting Scheme, SRS0 only (see srs.h).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/random.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/addr.h"
#include "lib/buf.h"
#include "lib/io.h"
#include "lib/log.h"
#include "lib/srs.h"

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

static void
srs_hash(const char *secret, const char *tt, const char *domain,
    const char *local, char out[5])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char msg[ADDR_PATH_MAX * 2 + 8], dom[ADDR_DOMAIN_MAX + 1];
	size_t i;
	unsigned v;

	/* Case-insensitive: relays may change the case of the local part. */
	snprintf(dom, sizeof(dom), "%s", domain);
	snprintf(msg, sizeof(msg), "%s%s%s", tt, dom, local);
	for (i = 0; msg[i]; i++)
		msg[i] = (char)tolower((unsigned char)msg[i]);
	HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)msg, strlen(msg), mac, &maclen);
	v = (unsigned)mac[0] << 12 | (unsigned)mac[1] << 4 | mac[2] >> 4;
	for (i = 0; i < 4; i++)
		out[i] = b32[(v >> (15 - 5 * i)) & 31];
	out[4] = '\0';
}

static void
srs_day(time_t now, char out[3])
{
	unsigned d = (unsigned)(now / 86400) % 1024;

	out[0] = b32[d >> 5];
	out[1] = b32[d & 31];
	out[2] = '\0';
}

int
srs_forward(const char *secret, const char *sender, const char *domain,
    time_t now, char *out, size_t outsz)
{
	const char *at = strrchr(sender, '@');
	char local[ADDR_PATH_MAX + 1], tt[3], hh[5];
	int n;

	if (at == NULL || at == sender || (size_t)(at - sender) >= sizeof(local))
		return -1;
	memcpy(local, sender, (size_t)(at - sender));
	local[at - sender] = '\0';
	srs_day(now, tt);
	srs_hash(secret, tt, at + 1, local, hh);
	n = snprintf(out, outsz, "SRS0=%s=%s=%s=%s@%s", hh, tt, at + 1, local,
	    domain);
	/* The local part must stay within RFC 5321's 64 octets. */
	if (n < 0 || (size_t)n >= outsz ||
	    strlen(out) - strlen(domain) - 1 > ADDR_LOCAL_MAX)
		return -1;
	return 0;
}

int
srs_reverse(const char *secret, const char *addr, time_t now, char *out,
    size_t outsz)
{
	char buf[ADDR_PATH_MAX + 1], *hh, *tt, *dom, *local, *at, want[5];
	const char *p;
	unsigned day, today;

	if (strncasecmp(addr, "SRS0=", 5) != 0 ||
	    snprintf(buf, sizeof(buf), "%s", addr + 5) >= (int)sizeof(buf))
		return -1;
	if ((at = strrchr(buf, '@')) == NULL)
		return -1;
	*at = '\0';
	hh = buf;
	if ((tt = strchr(hh, '=')) == NULL)
		return -1;
	*tt++ = '\0';
	if ((dom = strchr(tt, '=')) == NULL)
		return -1;
	*dom++ = '\0';
	if ((local = strchr(dom, '=')) == NULL)
		return -1;
	*local++ = '\0';
	if (strlen(hh) != 4 || strlen(tt) != 2 || *dom == '\0' || *local == '\0')
		return -1;
	for (p = tt; *p; p++)
		*(char *)p = (char)tolower((unsigned char)*p);
	if (strchr(b32, tt[0]) == NULL || strchr(b32, tt[1]) == NULL)
		return -1;
	srs_hash(secret, tt, dom, local, want);
	if (strcasecmp(want, hh) != 0)
		return -1;
	day = (unsigned)(strchr(b32, tt[0]) - b32) << 5 |
	    (unsigned)(strchr(b32, tt[1]) - b32);
	today = (unsigned)(now / 86400) % 1024;
	if ((today + 1024 - day) % 1024 > SRS_MAX_AGE_DAYS)
		return -1;
	if (snprintf(out, outsz, "%s@%s", local, dom) >= (int)outsz)
		return -1;
	return 0;
}

int
srs_secret_load(const char *path, char *out, size_t outsz, char *err,
    size_t errsz)
{
	unsigned char rnd[32];
	char hex[65], tmp[PATH_MAX], *s;
	int fd;

	if ((s = io_read_file(path, 1024, NULL)) == NULL && errno == ENOENT) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			snprintf(err, errsz, "getrandom failed");
			return -1;
		}
		hex_encode(rnd, sizeof(rnd), hex);
		/* Written under a temporary name and linked into place, so
		 * that two programs starting together agree on one key. */
		snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600)) < 0 || io_write_all(fd, hex, 64) != 0 ||
		    fsync(fd) != 0 || close(fd) != 0) {
			snprintf(err, errsz, "%s: %s", tmp, strerror(errno));
			unlink(tmp);
			return -1;
		}
		if (link(tmp, path) == 0)
			log_info("event=srs_key_created path=%s", path);
		else if (errno != EEXIST) {
			snprintf(err, errsz, "%s: %s", path, strerror(errno));
			unlink(tmp);
			return -1;
		}
		unlink(tmp);
		s = io_read_file(path, 1024, NULL);
	}
	if (s == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	s[strcspn(s, "\r\n")] = '\0';
	if (strlen(s) < 16 || strlen(s) >= outsz) {
		snprintf(err, errsz, "%s: secret must be 16-%zu characters", path,
		    outsz - 1);
		explicit_bzero(s, strlen(s));
		free(s);
		return -1;
	}
	snprintf(out, outsz, "%s", s);
	explicit_bzero(s, strlen(s));
	free(s);
	return 0;
}
