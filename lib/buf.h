/*
 * buf.h - bounded, growable byte buffer.
 *
 * Every piece of network input goes through a struct buf with an explicit
 * limit: appending past the limit fails (returns -1) and leaves the buffer
 * as it was, so an attacker can never make us allocate without bound.
 * The data is always NUL-terminated (the NUL is not counted in len), so a
 * buffer holding text can be handed to string functions directly.
 */
#ifndef EDGEMAIL_BUF_H
#define EDGEMAIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;	/* NUL-terminated; NULL until the first append */
	size_t	 len;
	size_t	 cap;
	size_t	 max;	/* hard limit on len; 0 means SIZE_MAX */
	int	 failed;	/* an append failed since init or reset: a
				 * builder may check once, at the end */
};

/* Initialise an empty buffer that may hold at most max bytes (0: no limit). */
void	buf_init(struct buf *b, size_t max);
/* Release the memory; the buffer can be used again after buf_init. */
void	buf_free(struct buf *b);
/* Forget the contents, keep the memory. */
void	buf_reset(struct buf *b);
/* Make room for n more bytes; -1 if that would pass the limit. */
int	buf_reserve(struct buf *b, size_t n);
int	buf_append(struct buf *b, const void *p, size_t n);
int	buf_puts(struct buf *b, const char *s);
int	buf_putc(struct buf *b, char c);
int	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));
/* Remove the first n bytes (consumed input). */
void	buf_consume(struct buf *b, size_t n);
/* The contents as a C string ("" for an empty buffer, never NULL). */
const char *buf_cstr(const struct buf *b);
/* Append base64 of n bytes; with fold > 0, "\r\n\t" after every fold
 * characters that more characters follow (a folded header value). */
int	buf_put_base64(struct buf *b, const void *p, size_t n, size_t fold);
/* Append s as a JSON string, quotes included, escaped as jansson's
 * json_dumps does (control characters, '"' and '\\'); a byte that is
 * not valid UTF-8 becomes U+FFFD, so the output is always valid JSON. */
int	buf_put_json_string(struct buf *b, const char *s);

/* Safe string copy: always terminates, returns -1 when truncated. */
int	str_copy(char *dst, size_t dstsz, const char *src);
/* Parse a decimal integer in [min, max]; -1 on any junk or range error. */
int	str_to_ll(const char *s, long long min, long long max, long long *val_r);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void	hex_encode(const unsigned char *p, size_t n, char *out);
/* The value of one hex digit (either case), or -1. */
int	hex_digit(char c);

#endif
