/*
 * buf.c - bounded, growable byte buffer and a few safe string helpers.
 *
 * The buffer never grows past its limit: an append that would pass it
 * fails and leaves the contents untouched.  Growth doubles the capacity
 * (capped at the limit), so appending n bytes one at a time is O(n).
 * Allocation failure is reported as -1 like a limit, never aborts: this
 * code runs on network input long after start-up.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/buf.h"

#define BUF_MIN_CAP	64

static size_t
buf_limit(const struct buf *b)
{
	return b->max == 0 ? SIZE_MAX - 1 : b->max;
}

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->failed = 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

int
buf_reserve(struct buf *b, size_t n)
{
	size_t	 limit = buf_limit(b), need, ncap;
	char	*p;

	if (n > limit || b->len > limit - n) {
		b->failed = 1;
		return -1;
	}
	need = b->len + n + 1;		/* room for the NUL */
	if (need <= b->cap)
		return 0;
	ncap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	/* Never allocate much more than the limit allows to be used. */
	if (ncap > limit + 1)
		ncap = limit + 1;
	if (ncap < need)
		ncap = need;
	if ((p = realloc(b->data, ncap)) == NULL) {
		b->failed = 1;
		return -1;
	}
	if (b->data == NULL)
		p[0] = '\0';
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list	 ap2;
	char	 small[256];
	int	 n;

	va_copy(ap2, ap);
	n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		b->failed = 1;
		return -1;
	}
	if ((size_t)n < sizeof(small))
		return buf_append(b, small, (size_t)n);
	if (buf_reserve(b, (size_t)n) == -1)
		return -1;
	va_copy(ap2, ap);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		b->data[b->len] = '\0';
		b->failed = 1;
		return -1;
	}
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 rv;

	va_start(ap, fmt);
	rv = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rv;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

const char *
buf_cstr(const struct buf *b)
{
	return b->data == NULL ? "" : b->data;
}

int
buf_put_base64(struct buf *b, const void *p, size_t n, size_t fold)
{
	const unsigned char *in = p;
	unsigned char enc[4 * 768 / 3 + 1];
	size_t i, k, len, take, col = 0;

	/* 768 is a multiple of 3: only the last chunk has padding. */
	for (i = 0; i < n; i += 768) {
		len = (size_t)EVP_EncodeBlock(enc, in + i,
		    (int)(n - i < 768 ? n - i : 768));
		for (k = 0; k < len; k += take, col += take) {
			take = len - k;
			if (fold > 0) {
				if (col == fold) {
					if (buf_puts(b, "\r\n\t") != 0)
						return -1;
					col = 0;
				}
				if (take > fold - col)
					take = fold - col;
			}
			if (buf_append(b, enc + k, take) != 0)
				return -1;
		}
	}
	return 0;
}

int
str_copy(char *dst, size_t dstsz, const char *src)
{
	size_t	 n;

	if (dstsz == 0)
		return -1;
	n = strlen(src);
	if (n >= dstsz) {
		memcpy(dst, src, dstsz - 1);
		dst[dstsz - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

int
str_to_ll(const char *s, long long min, long long max, long long *val_r)
{
	char		*end;
	long long	 v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	if (v < min || v > max)
		return -1;
	*val_r = v;
	return 0;
}

void
hex_encode(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t	 i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Length of the valid UTF-8 sequence at p (1-4), 0 when invalid
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t
utf8_len(const unsigned char *p)
{
	unsigned c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f))
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80 || (c == 0xf0 && p[1] < 0x90) ||
		    (c == 0xf4 && p[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

/* JSON's two-character escapes (RFC 8259 7), NULL for other bytes. */
static const char *
json_short_escape(unsigned char c)
{
	switch (c) {
	case '"':
		return "\\\"";
	case '\\':
		return "\\\\";
	case '\b':
		return "\\b";
	case '\f':
		return "\\f";
	case '\n':
		return "\\n";
	case '\r':
		return "\\r";
	case '\t':
		return "\\t";
	}
	return NULL;
}

int
buf_put_json_string(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *run = p;
	const char *e;
	char esc[8];
	size_t n;

	if (buf_putc(b, '"') == -1)
		return -1;
	while (*p != '\0') {
		/* utf8_len() stops at the NUL: it is no continuation byte. */
		if (*p >= 0x20 && *p != '"' && *p != '\\' &&
		    (n = utf8_len(p)) != 0) {
			p += n;
			continue;
		}
		if (buf_append(b, run, (size_t)(p - run)) == -1)
			return -1;
		if ((e = json_short_escape(*p)) == NULL) {
			if (*p < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04X", *p);
				e = esc;
			} else
				e = "\xef\xbf\xbd";	/* U+FFFD for a bad byte */
		}
		if (buf_puts(b, e) == -1)
			return -1;
		run = ++p;
	}
	if (buf_append(b, run, (size_t)(p - run)) == -1)
		return -1;
	return buf_putc(b, '"');
}
