/*
 * addr.c - RFC 5321 envelope addresses (Mailbox, Reverse-path, Forward-path).
 *
 * Grammar (RFC 5321 4.1.2, RFC 6531 for UTF-8):
 *
 *	Path       = "<" [ A-d-l ":" ] Mailbox ">"	(source route ignored)
 *	Mailbox    = Local-part "@" ( Domain / address-literal )
 *	Local-part = Dot-string / Quoted-string
 *	Domain     = sub-domain *("." sub-domain), Let-dig [Ldh-str]
 *
 * The result is normalised: a quoted local part whose content is a
 * dot-atom loses its quotes, one that needs them is re-quoted with only the
 * necessary escapes, the domain is lower-cased.  The length limits apply to
 * that normalised form.  Every loop is bounded by the input length and
 * every copy by the fixed-size fields of struct addr.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "lib/addr.h"

/* RFC 5322 atext without ALPHA / DIGIT. */
static const char atext_specials[] = "!#$%&'*+-/=?^_`{|}~";

static int
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) ||
	    (c != '\0' && strchr(atext_specials, c) != NULL);
}

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms,
 * no surrogates, nothing past U+10FFFF) starting at s[0] >= 0x80; 0 if
 * it is not one.
 */
static size_t
utf8_len(const unsigned char *s, size_t len)
{
	size_t	 n, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (len < n)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/*
 * Non-ASCII at s[0]: the length of its UTF-8 sequence, or 0 with *err_r
 * set when UTF-8 is not allowed or the bytes are malformed.
 */
static size_t
check_utf8(const unsigned char *s, size_t len, int flags, const char **err_r)
{
	size_t	 n;

	if (!(flags & ADDR_ALLOW_UTF8)) {
		*err_r = "non-ASCII character";
		return 0;
	}
	if ((n = utf8_len(s, len)) == 0)
		*err_r = "invalid UTF-8";
	return n;
}

/* Whether s[0..len) is a dot-atom (ASCII, or UTF-8 when allowed). */
static int
is_dot_atom(const unsigned char *s, size_t len, int flags)
{
	const char	*err;
	size_t		 i = 0, n;
	int		 prev_dot = 1;	/* no leading dot */

	if (len == 0)
		return 0;
	while (i < len) {
		if (s[i] == '.') {
			if (prev_dot)
				return 0;
			prev_dot = 1;
			i++;
		} else if (s[i] >= 0x80) {
			if ((n = check_utf8(s + i, len - i, flags, &err)) == 0)
				return 0;
			prev_dot = 0;
			i += n;
		} else if (is_atext(s[i])) {
			prev_dot = 0;
			i++;
		} else
			return 0;
	}
	return !prev_dot;
}

/*
 * Local part at s[0..len) (up to, not including, the '@').  Writes the
 * normalised form into a->local.
 */
static int
parse_local(const unsigned char *s, size_t len, int flags, struct addr *a,
    const char **err_r)
{
	unsigned char	 content[ADDR_LOCAL_MAX] = { 0 };
	size_t		 i, n, clen = 0, o = 0;

	if (len == 0) {
		*err_r = "empty local part";
		return -1;
	}
	if (s[0] != '"') {
		if (len > ADDR_LOCAL_MAX) {
			*err_r = "local part too long";
			return -1;
		}
		for (i = 0; i < len; i++) {
			if (s[i] >= 0x80) {
				if ((n = check_utf8(s + i, len - i, flags,
				    err_r)) == 0)
					return -1;
				i += n - 1;
			} else if (s[i] != '.' && !is_atext(s[i])) {
				*err_r = "bad character in local part";
				return -1;
			}
		}
		if (!is_dot_atom(s, len, flags)) {
			*err_r = "bad dots in local part";
			return -1;
		}
		memcpy(a->local, s, len);
		a->local[len] = '\0';
		return 0;
	}

	/* Quoted-string: the caller found its closing quote at s[len - 1]. */
	if (len < 2 || s[len - 1] != '"') {
		*err_r = "bad quoted local part";
		return -1;
	}
	for (i = 1; i < len - 1; i++) {
		unsigned char c = s[i];

		if (c == '\\') {
			if (++i >= len - 1 || s[i] < 32 || s[i] > 126) {
				*err_r = "bad quoted-pair in local part";
				return -1;
			}
			c = s[i];
		} else if (c == '"' || c < 32 || c == 127) {
			*err_r = "bad character in quoted local part";
			return -1;
		} else if (c >= 0x80) {
			if ((n = check_utf8(s + i, len - 1 - i, flags,
			    err_r)) == 0)
				return -1;
			if (clen + n > sizeof(content)) {
				*err_r = "local part too long";
				return -1;
			}
			memcpy(content + clen, s + i, n);
			clen += n;
			i += n - 1;
			continue;
		}
		if (clen >= sizeof(content)) {
			*err_r = "local part too long";
			return -1;
		}
		content[clen++] = c;
	}
	if (is_dot_atom(content, clen, flags)) {
		memcpy(a->local, content, clen);
		a->local[clen] = '\0';
		return 0;
	}
	a->local[o++] = '"';
	for (i = 0; i < clen; i++) {
		if (content[i] == '"' || content[i] == '\\')
			a->local[o++] = '\\';
		a->local[o++] = (char)content[i];
	}
	a->local[o++] = '"';
	a->local[o] = '\0';
	if (o > ADDR_LOCAL_MAX) {
		*err_r = "local part too long";
		return -1;
	}
	return 0;
}

/* Dotted-quad IPv4, each part 0-255 without leading zeros. */
static int
is_ipv4(const unsigned char *s, size_t len)
{
	size_t	 i = 0, parts = 0, digits;
	unsigned v;

	while (parts < 4) {
		digits = 0;
		v = 0;
		while (i < len && is_digit(s[i]) && digits < 4) {
			v = v * 10 + (unsigned)(s[i] - '0');
			digits++;
			i++;
		}
		if (digits == 0 || digits > 3 || v > 255 ||
		    (digits > 1 && s[i - digits] == '0'))
			return 0;
		parts++;
		if (parts < 4) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	return i == len;
}

static int
parse_literal(const unsigned char *s, size_t len, struct addr *a,
    const char **err_r)
{
	char	 tmp[64];
	unsigned char v6[16];
	size_t	 i;

	*err_r = "bad address literal";
	if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof(tmp))
		return -1;
	/* RFC 5321 dcontent; also keeps NUL away from inet_pton. */
	for (i = 1; i < len - 1; i++)
		if (s[i] < 33 || s[i] > 126 || s[i] == '[' || s[i] == ']' ||
		    s[i] == '\\')
			return -1;
	memcpy(tmp, s + 1, len - 2);
	tmp[len - 2] = '\0';
	if (is_ipv4((const unsigned char *)tmp, len - 2)) {
		memcpy(a->domain, s, len);
		a->domain[len] = '\0';
		return 0;
	}
	if (len - 2 > 5 && strncasecmp(tmp, "IPv6:", 5) == 0 &&
	    strchr(tmp, '%') == NULL &&
	    inet_pton(AF_INET6, tmp + 5, v6) == 1) {
		memcpy(a->domain, "[IPv6:", 6);
		for (i = 5; i < len - 2; i++) {
			char c = tmp[i];

			a->domain[i + 1] = c >= 'A' && c <= 'Z' ?
			    (char)(c - 'A' + 'a') : c;
		}
		a->domain[len - 1] = ']';
		a->domain[len] = '\0';
		return 0;
	}
	return -1;
}

static int
parse_domain(const unsigned char *s, size_t len, int flags, struct addr *a,
    const char **err_r)
{
	size_t	 i, n, label = 0;

	if (len == 0) {
		*err_r = "empty domain";
		return -1;
	}
	if (len > ADDR_DOMAIN_MAX) {
		*err_r = "domain too long";
		return -1;
	}
	if (s[0] == '[')
		return parse_literal(s, len, a, err_r);
	*err_r = "bad domain";
	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return -1;
			label = 0;
			a->domain[i] = '.';
			continue;
		}
		if (c >= 0x80) {
			if ((n = check_utf8(s + i, len - i, flags, err_r)) == 0)
				return -1;
			memcpy(a->domain + i, s + i, n);
			label += n;
			i += n - 1;
		} else if (is_alpha(c) || is_digit(c)) {
			a->domain[i] = c >= 'A' && c <= 'Z' ?
			    (char)(c - 'A' + 'a') : (char)c;
			label++;
		} else if (c == '-' && label > 0) {
			a->domain[i] = '-';
			label++;
		} else
			return -1;
		if (label > 63) {
			*err_r = "domain label too long";
			return -1;
		}
	}
	if (label == 0 || s[len - 1] == '-')
		return -1;
	a->domain[len] = '\0';
	return 0;
}

/* Skip an RFC 5321 A-d-l "@dom,@dom:" at s; returns its length, 0 if bad. */
static size_t
skip_source_route(const unsigned char *s, size_t len, int flags)
{
	struct addr	 tmp;
	const char	*err;
	size_t		 i = 0, start;

	for (;;) {
		if (i >= len || s[i] != '@')
			return 0;
		start = ++i;
		while (i < len && s[i] != ',' && s[i] != ':')
			i++;
		if (i >= len ||
		    parse_domain(s + start, i - start, flags, &tmp, &err) == -1)
			return 0;
		if (s[i++] == ':')
			return i;
	}
}

int
addr_parse(const char *str, size_t len, int flags, struct addr *a,
    const char **err_r)
{
	const unsigned char *s = (const unsigned char *)str;
	const char	*dummy;
	size_t		 i, at, n;
	int		 bracketed = 0;

	if (err_r == NULL)
		err_r = &dummy;
	a->local[0] = '\0';
	a->domain[0] = '\0';
	a->utf8 = 0;

	if (len > 0 && s[0] == '<') {
		if (len < 2 || s[len - 1] != '>') {
			*err_r = "unbalanced <>";
			return -1;
		}
		s++;
		len -= 2;
		bracketed = 1;
	} else if (len > 0 && s[len - 1] == '>') {
		*err_r = "unbalanced <>";
		return -1;
	}
	if ((flags & ADDR_REQUIRE_BRACKETS) && !bracketed) {
		*err_r = "missing <>";
		return -1;
	}
	if (len == 0) {
		if (flags & ADDR_ALLOW_EMPTY)
			return 0;
		*err_r = "empty address";
		return -1;
	}
	if (bracketed && s[0] == '@') {
		if ((n = skip_source_route(s, len, flags)) == 0) {
			*err_r = "bad source route";
			return -1;
		}
		s += n;
		len -= n;
	}

	/* Find the '@' that ends the local part. */
	if (s[0] == '"') {
		for (i = 1; i < len && s[i] != '"'; i++)
			if (s[i] == '\\')
				i++;
		if (i >= len) {
			*err_r = "unterminated quoted string";
			return -1;
		}
		at = i + 1;
		if (at >= len || s[at] != '@') {
			*err_r = at >= len ? "missing @" :
			    "bad character after quoted local part";
			return -1;
		}
	} else {
		const unsigned char *p = memchr(s, '@', len);

		if (p == NULL) {
			*err_r = "missing @";
			return -1;
		}
		at = (size_t)(p - s);
	}
	if (parse_local(s, at, flags, a, err_r) == -1 ||
	    parse_domain(s + at + 1, len - at - 1, flags, a, err_r) == -1) {
		a->local[0] = '\0';
		a->domain[0] = '\0';
		return -1;
	}
	if (strlen(a->local) + 1 + strlen(a->domain) + 2 > ADDR_PATH_MAX) {
		*err_r = "address too long";
		a->local[0] = '\0';
		a->domain[0] = '\0';
		return -1;
	}
	for (i = 0; a->local[i] != '\0'; i++)
		if ((unsigned char)a->local[i] >= 0x80)
			a->utf8 = 1;
	for (i = 0; a->domain[i] != '\0'; i++)
		if ((unsigned char)a->domain[i] >= 0x80)
			a->utf8 = 1;
	return 0;
}

int
addr_is_null(const struct addr *a)
{
	return a->local[0] == '\0' && a->domain[0] == '\0';
}

int
addr_format(const struct addr *a, char *out, size_t outsz)
{
	size_t	 ll, dl;

	if (outsz == 0)
		return -1;
	if (addr_is_null(a)) {
		out[0] = '\0';
		return 0;
	}
	ll = strlen(a->local);
	dl = strlen(a->domain);
	if (ll + 1 + dl >= outsz) {
		out[0] = '\0';
		return -1;
	}
	memcpy(out, a->local, ll);
	out[ll] = '@';
	memcpy(out + ll + 1, a->domain, dl + 1);
	return 0;
}

void
addr_lookup_key(const struct addr *a, char *out, size_t outsz)
{
	size_t	 i, o = 0, ll = strlen(a->local);
	const char *plus;

	if (outsz == 0)
		return;
	out[0] = '\0';
	if (addr_is_null(a))
		return;
	/* A quoted local part has no +detail we could cut safely. */
	if (a->local[0] != '"' && (plus = strchr(a->local, '+')) != NULL &&
	    plus != a->local)
		ll = (size_t)(plus - a->local);
	for (i = 0; i < ll && o + 1 < outsz; i++) {
		char c = a->local[i];

		out[o++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	if (o + 1 < outsz)
		out[o++] = '@';
	for (i = 0; a->domain[i] != '\0' && o + 1 < outsz; i++)
		out[o++] = a->domain[i];
	out[o] = '\0';
}
