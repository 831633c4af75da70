/*
 * parse.c - pure SMTP protocol parsing for edgemail-submit: command
 * lines, MAIL FROM / RCPT TO arguments, base64 for AUTH, the DATA reader
 * and the address list of a From: header.
 *
 * Nothing here does I/O or keeps state outside its arguments, so every
 * function is table-tested (tests/unit/test_smtp_parse.c) and fuzzed
 * (tests/fuzz/fuzz_smtp_parse.c).  Input is attacker data: every loop is
 * bounded by the given length, every copy by its destination.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/addr.h"
#include "lib/reply.h"
#include "smtp-out/submit.h"

#define PARAM_MAX	64	/* ESMTP parameters on one command */

int
smtp_split(const char *line, struct smtp_line *l)
{
	size_t i;

	memset(l, 0, sizeof(*l));
	for (i = 0; isalpha((unsigned char)line[i]); i++) {
		if (i + 1 >= sizeof(l->verb))
			return -1;
		l->verb[i] = (char)toupper((unsigned char)line[i]);
	}
	if (i == 0)
		return -1;
	l->verb[i] = '\0';
	if (line[i] == '\0')
		l->args = line + i;
	else if (line[i] == ' ')
		l->args = line + i + 1;
	else
		return -1;
	return 0;
}

/*
 * The path at s ("<...>", quotes respected): its length including both
 * brackets, or 0 when it is not well formed.
 */
static size_t
path_len(const char *s)
{
	size_t i;
	int quoted = 0;

	if (s[0] != '<')
		return 0;
	for (i = 1; s[i] != '\0'; i++) {
		if (quoted) {
			if (s[i] == '\\' && s[i + 1] != '\0')
				i++;
			else if (s[i] == '"')
				quoted = 0;
		} else if (s[i] == '"')
			quoted = 1;
		else if (s[i] == '>')
			return i + 1;
		else if (s[i] == '<')
			return 0;
	}
	return 0;
}

/* "KEYWORD:" then optional spaces; the rest in *rest_r. */
static int
keyword(const char *args, const char *kw, const char **rest_r)
{
	size_t n = strlen(kw);

	if (strncasecmp(args, kw, n) != 0)
		return -1;
	args += n;
	while (*args == ' ')	/* "MAIL FROM: <a@b>" is common */
		args++;
	*rest_r = args;
	return 0;
}

/* Split the parameters after a path into words (in place, bounded). */
static int
split_params(char *p, char **words, size_t max, size_t *n_r)
{
	size_t n = 0;

	while (*p != '\0') {
		if (*p == ' ') {
			p++;
			continue;
		}
		if (n == max)
			return -1;
		words[n++] = p;
		while (*p != '\0' && *p != ' ')
			p++;
		if (*p == ' ')
			*p++ = '\0';
	}
	*n_r = n;
	return 0;
}

int
smtp_parse_mail(const char *args, int esmtp, unsigned long long max_size,
    struct smtp_mail_args *m, struct reply *r)
{
	char params[SUBMIT_CMD_MAX], *w[PARAM_MAX];
	const char *rest, *err;
	size_t plen, n, i;
	long long v;
	int flags;

	memset(m, 0, sizeof(*m));
	m->size = -1;
	if (keyword(args, "FROM:", &rest) != 0) {
		reply_set(r, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return -1;
	}
	if ((plen = path_len(rest)) == 0) {
		reply_set(r, 501, "5.1.7", "Bad sender address syntax");
		return -1;
	}
	if (rest[plen] != '\0' && rest[plen] != ' ') {
		reply_set(r, 501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
		return -1;
	}
	if (snprintf(params, sizeof(params), "%s", rest + plen) >=
	    (int)sizeof(params) || split_params(params, w, PARAM_MAX, &n) != 0) {
		reply_set(r, 501, "5.5.4", "Too many parameters");
		return -1;
	}
	if (n > 0 && !esmtp) {
		reply_set(r, 555, "5.5.4", "Parameters need EHLO");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (strncasecmp(w[i], "SIZE=", 5) == 0) {
			if (m->size >= 0 || w[i][5] == '\0' || strlen(w[i] + 5) > 20 ||
			    str_to_ll(w[i] + 5, 0, INT64_MAX, &v) != 0) {
				reply_set(r, 501, "5.5.4", "Bad SIZE parameter");
				return -1;
			}
			m->size = v;
		} else if (strncasecmp(w[i], "BODY=", 5) == 0) {
			if (strcasecmp(w[i] + 5, "8BITMIME") == 0)
				m->body_8bit = 1;
			else if (strcasecmp(w[i] + 5, "7BIT") != 0) {
				reply_set(r, 555, "5.5.4",
				    "Unsupported BODY type (7BIT or 8BITMIME)");
				return -1;
			}
		} else if (strcasecmp(w[i], "SMTPUTF8") == 0) {
			m->smtputf8 = 1;
		} else if (strncasecmp(w[i], "AUTH=", 5) == 0) {
			/* RFC 4954: accepted, and the session's own identity
			 * is what counts. */
		} else {
			reply_set(r, 555, "5.5.4", "Unsupported parameter");
			return -1;
		}
	}
	if (m->size >= 0 && max_size > 0 && (unsigned long long)m->size > max_size) {
		reply_set(r, 552, "5.3.4",
		    "Message size exceeds fixed maximum message size (%llu bytes)",
		    max_size);
		return -1;
	}
	flags = ADDR_REQUIRE_BRACKETS | ADDR_ALLOW_EMPTY |
	    (m->smtputf8 ? ADDR_ALLOW_UTF8 : 0);
	if (addr_parse(rest, plen, flags, &m->addr, &err) != 0) {
		reply_set(r, 501, "5.1.7", "Bad sender address syntax: %s", err);
		return -1;
	}
	return 0;
}

int
smtp_parse_rcpt(const char *args, int utf8, struct addr *a, struct reply *r)
{
	const char *rest, *err;
	size_t plen, i;

	if (keyword(args, "TO:", &rest) != 0) {
		reply_set(r, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return -1;
	}
	if ((plen = path_len(rest)) == 0) {
		reply_set(r, 501, "5.1.3", "Bad recipient address syntax");
		return -1;
	}
	for (i = plen; rest[i] == ' '; i++)
		;
	if (rest[plen] != '\0' && rest[plen] != ' ') {
		reply_set(r, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return -1;
	}
	if (rest[i] != '\0') {
		/* NOTIFY= and ORCPT= belong to DSN, which is not offered. */
		reply_set(r, 555, "5.5.4", "Unsupported parameter");
		return -1;
	}
	if (addr_parse(rest, plen, ADDR_REQUIRE_BRACKETS |
	    (utf8 ? ADDR_ALLOW_UTF8 : 0), a, &err) != 0) {
		reply_set(r, 501, "5.1.3", "Bad recipient address syntax: %s", err);
		return -1;
	}
	return 0;
}

/* ---- base64 ----------------------------------------------------------- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
b64_decode(const char *in, size_t len, unsigned char *out)
{
	size_t i, o = 0;
	int v[4], k;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		int pad = 0;

		for (k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];

			if (c == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad > 0 || (v[k] = b64val(c)) < 0)
				return -1;
		}
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	out[o] = '\0';
	return (long)o;
}

void
b64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		out[o++] = b64chars[in[i] >> 2];
		out[o++] = b64chars[(in[i] & 3) << 4 | in[i + 1] >> 4];
		out[o++] = b64chars[(in[i + 1] & 15) << 2 | in[i + 2] >> 6];
		out[o++] = b64chars[in[i + 2] & 63];
	}
	if (i < n) {
		out[o++] = b64chars[in[i] >> 2];
		if (i + 1 < n) {
			out[o++] = b64chars[(in[i] & 3) << 4 | in[i + 1] >> 4];
			out[o++] = b64chars[(in[i + 1] & 15) << 2];
		} else {
			out[o++] = b64chars[(in[i] & 3) << 4];
			out[o++] = '=';
		}
		out[o++] = '=';
	}
	out[o] = '\0';
}

/* ---- the DATA reader -------------------------------------------------- */

enum {
	DR_BOL,		/* at the start of a line (after CRLF) */
	DR_TEXT,	/* inside a line */
	DR_CR,		/* a CR, waiting for its LF */
	DR_DOT,		/* a '.' at the start of a line */
	DR_DOTCR,	/* "." CR at the start of a line */
};

void
data_reader_init(struct data_reader *d)
{
	memset(d, 0, sizeof(*d));
	/* The CRLF of the DATA command line counts: "." CRLF at once is
	 * an empty message. */
	d->state = DR_BOL;
}

size_t
data_reader_feed(struct data_reader *d, const char *in, size_t n, char *out,
    size_t *outlen_r)
{
	size_t i, o = 0;
	char c;

	for (i = 0; i < n && !d->done; i++) {
		c = in[i];
again:
		switch (d->state) {
		case DR_BOL:
			if (c == '.') {
				d->state = DR_DOT;
				break;
			}
			/* FALLTHROUGH */
		case DR_TEXT:
			if (c == '\r') {
				d->state = DR_CR;
			} else if (c == '\n') {
				/* Bare LF: data, never a line end. */
				d->bad_eol = 1;
				out[o++] = c;
				d->state = DR_TEXT;
			} else {
				out[o++] = c;
				d->state = DR_TEXT;
			}
			break;
		case DR_CR:
			if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				d->state = DR_BOL;
			} else {
				/* Bare CR: data, never a line end. */
				d->bad_eol = 1;
				out[o++] = '\r';
				d->state = DR_TEXT;
				goto again;
			}
			break;
		case DR_DOT:
			if (c == '\r') {
				d->state = DR_DOTCR;
			} else {
				/* Dot-stuffing: the leading dot goes. */
				d->state = DR_TEXT;
				goto again;
			}
			break;
		case DR_DOTCR:
			if (c == '\n') {
				d->done = 1;
			} else {
				/* "." bare CR: the dot goes as above, the CR
				 * stays as (refused) data. */
				d->bad_eol = 1;
				out[o++] = '\r';
				d->state = DR_TEXT;
				goto again;
			}
			break;
		}
	}
	*outlen_r = o;
	return i;
}

/* ---- From: header addresses ------------------------------------------- */

/* A space outside quoted strings. */
static int
has_space(const char *s, size_t n)
{
	size_t i;
	int quoted = 0;

	for (i = 0; i < n; i++) {
		if (quoted && s[i] == '\\' && i + 1 < n)
			i++;
		else if (s[i] == '"')
			quoted = !quoted;
		else if (s[i] == ' ' && !quoted)
			return 1;
	}
	return 0;
}

/*
 * RFC 5322 address-list, leniently: mailboxes separated by commas, each
 * "display name <addr-spec>" or a bare addr-spec, comments anywhere,
 * groups "name: a, b;".  What is handed to fn is the addr-spec with
 * comments and folding whitespace removed (quoted strings kept).
 */
int
hdr_addresses(const char *v, size_t len,
    int (*fn)(void *arg, const char *addr, size_t len), void *arg)
{
	char cur[ADDR_PATH_MAX * 2], ang[ADDR_PATH_MAX * 2];
	size_t i, nc = 0, na = 0;
	int depth, quoted, in_angle = 0, have_angle = 0, count = 0;
	int overflow = 0, in_group = 0;

	if (memchr(v, '\0', len) != NULL)
		return -1;
	for (i = 0; i <= len; i++) {
		char c = i < len ? v[i] : ',';

		if (c == '(' && !in_angle) {
			/* Comment (nested, with quoted pairs). */
			for (depth = 1, i++; i < len && depth > 0; i++) {
				if (v[i] == '\\' && i + 1 < len)
					i++;
				else if (v[i] == '(')
					depth++;
				else if (v[i] == ')')
					depth--;
			}
			if (depth != 0)
				return -1;
			i--;
			continue;
		}
		if (c == '"') {
			/* Quoted string: kept in the addr-spec, skipped in a
			 * display name (it is then dropped with the name). */
			size_t start = i;

			for (quoted = 1, i++; i < len && quoted; i++) {
				if (v[i] == '\\' && i + 1 < len)
					i++;
				else if (v[i] == '"')
					quoted = 0;
			}
			if (quoted)
				return -1;
			i--;
			if (in_angle) {
				if (na + (i - start + 1) >= sizeof(ang))
					overflow = 1;
				else {
					memcpy(ang + na, v + start, i - start + 1);
					na += i - start + 1;
				}
			} else {
				if (nc + (i - start + 1) >= sizeof(cur))
					overflow = 1;
				else {
					memcpy(cur + nc, v + start, i - start + 1);
					nc += i - start + 1;
				}
			}
			continue;
		}
		if (in_angle) {
			if (c == '>') {
				in_angle = 0;
				have_angle = 1;
			} else if (c == '<' || i == len) {
				return -1;
			} else if (c != ' ' && c != '\t' && c != '\r' &&
			    c != '\n') {
				if (na + 1 >= sizeof(ang))
					overflow = 1;
				else
					ang[na++] = c;
			}
			continue;
		}
		switch (c) {
		case '<':
			if (have_angle)
				return -1;
			in_angle = 1;
			na = 0;
			break;
		case '>':
			return -1;
		case ':':
			if (in_group || have_angle)
				return -1;
			/* "name:" starts a group; what came before is its
			 * display name. */
			in_group = 1;
			nc = 0;
			break;
		case ';':
			if (!in_group)
				return -1;
			in_group = 0;
			/* FALLTHROUGH */
		case ',':
			if (overflow)
				return -1;
			if (have_angle) {
				if (na == 0)
					return -1;	/* "<>" */
				ang[na] = '\0';
				if (fn(arg, ang, na) != 0)
					return -1;
				count++;
			} else {
				while (nc > 0 && cur[nc - 1] == ' ')
					nc--;
				if (nc > 0) {
					cur[nc] = '\0';
					/* Words without <...>: a name, no
					 * address. */
					if (has_space(cur, nc) ||
					    fn(arg, cur, nc) != 0)
						return -1;
					count++;
				}
			}
			nc = na = 0;
			have_angle = 0;
			break;
		case ' ': case '\t': case '\r': case '\n':
			/* Between words of a display name, or folding
			 * inside an obsolete addr-spec: not part of it.
			 * A display name followed by <...> is dropped at
			 * the comma; one without <...> is no address. */
			if (nc > 0 && cur[nc - 1] != ' ') {
				if (nc + 1 >= sizeof(cur))
					overflow = 1;
				else
					cur[nc++] = ' ';
			}
			break;
		default:
			if (have_angle)
				return -1;	/* text after <...> */
			if (nc + 1 >= sizeof(cur))
				overflow = 1;
			else
				cur[nc++] = c;
			break;
		}
	}
	if (in_group)
		return -1;
	return count;
}
