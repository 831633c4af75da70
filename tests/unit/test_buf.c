/*
 * test_buf.c - the bounded buffer, the string helpers beside it (JSON
 * strings byte for byte as jansson writes them), and the log line format (log_quote escapes, one whole line per event even from
 * many threads).
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "tests/unit/unit.h"

static void
run_buf(void)
{
	struct buf	 b;
	char		 big[1000];
	int		 rv, i, good;

	buf_init(&b, 8);
	UNIT_CHECK("buf: a fresh buffer reads as the empty string",
	    strcmp(buf_cstr(&b), "") == 0 && b.len == 0 && b.data == NULL,
	    "len=%zu", b.len);
	rv = buf_puts(&b, "12345678");
	UNIT_CHECK("buf: appending exactly up to the limit succeeds",
	    rv == 0 && b.len == 8 && strcmp(buf_cstr(&b), "12345678") == 0,
	    "rv=%d len=%zu", rv, b.len);
	rv = buf_putc(&b, 'x');
	UNIT_CHECK("buf: one byte past the limit fails and changes nothing",
	    rv == -1 && b.len == 8 && strcmp(buf_cstr(&b), "12345678") == 0,
	    "rv=%d len=%zu", rv, b.len);
	rv = buf_printf(&b, "%d", 1);
	UNIT_CHECK("buf: printf past the limit fails and changes nothing",
	    rv == -1 && b.len == 8, "rv=%d len=%zu", rv, b.len);
	UNIT_CHECK("buf: the allocation never exceeds limit + NUL",
	    b.cap <= 9, "cap=%zu", b.cap);
	buf_consume(&b, 3);
	UNIT_CHECK("buf: consume removes the first bytes",
	    b.len == 5 && strcmp(buf_cstr(&b), "45678") == 0, "[%s]",
	    buf_cstr(&b));
	buf_consume(&b, 100);
	UNIT_CHECK("buf: consuming more than len empties the buffer",
	    b.len == 0 && strcmp(buf_cstr(&b), "") == 0, "len=%zu", b.len);
	rv = buf_append(&b, "ab\0cd", 5);
	UNIT_CHECK("buf: binary data with NUL bytes is kept",
	    rv == 0 && b.len == 5 && memcmp(b.data, "ab\0cd", 6) == 0,
	    "len=%zu", b.len);
	buf_reset(&b);
	UNIT_CHECK("buf: reset empties but keeps the memory",
	    b.len == 0 && b.data != NULL && b.data[0] == '\0', "len=%zu",
	    b.len);
	rv = buf_reserve(&b, SIZE_MAX);
	UNIT_CHECK("buf: reserving SIZE_MAX fails cleanly", rv == -1, "rv=%d",
	    rv);
	buf_free(&b);
	UNIT_CHECK("buf: free leaves an empty buffer", b.data == NULL &&
	    b.len == 0, "not empty");

	buf_init(&b, 0);
	memset(big, 'z', sizeof(big));
	good = 1;
	for (i = 0; i < 1000 && good; i++)
		good = buf_append(&b, big, sizeof(big)) == 0;
	UNIT_CHECK("buf: limit 0 means no limit (1 MB appended)",
	    good && b.len == 1000 * sizeof(big) && b.data[b.len] == '\0',
	    "len=%zu", b.len);
	buf_free(&b);

	buf_init(&b, 0);
	rv = buf_printf(&b, "%s-%d-%.*s", "abc", 42, 600, big);
	UNIT_CHECK("buf: printf longer than the internal scratch space",
	    rv == 0 && b.len == 607 && strncmp(b.data, "abc-42-zzz", 10) == 0 &&
	    b.data[607] == '\0', "rv=%d len=%zu", rv, b.len);
	rv = buf_printf(&b, "|%s", "end");
	UNIT_CHECK("buf: printf appends", rv == 0 &&
	    strcmp(b.data + 607, "|end") == 0, "[%s]", b.data + 600);
	rv = buf_reserve(&b, 0);
	UNIT_CHECK("buf: reserving 0 succeeds", rv == 0, "rv=%d", rv);
	buf_free(&b);
	buf_free(&b);
	UNIT_CHECK("buf: freeing twice is harmless", b.data == NULL, "data");
}

struct ll_row {
	const char *name;
	const char *s;
	long long min, max;
	int	 rv;
	long long want;
};

static const struct ll_row ll_rows[] = {
	{ "str_to_ll: plain number", "42", 0, 100, 0, 42 },
	{ "str_to_ll: negative in range", "-5", -10, 10, 0, -5 },
	{ "str_to_ll: at the minimum", "-10", -10, 10, 0, -10 },
	{ "str_to_ll: at the maximum", "10", -10, 10, 0, 10 },
	{ "str_to_ll: below the minimum", "-11", -10, 10, -1, 0 },
	{ "str_to_ll: above the maximum", "11", -10, 10, -1, 0 },
	{ "str_to_ll: empty string", "", 0, 10, -1, 0 },
	{ "str_to_ll: trailing junk", "5x", 0, 10, -1, 0 },
	{ "str_to_ll: trailing space", "5 ", 0, 10, -1, 0 },
	{ "str_to_ll: leading space", " 5", 0, 10, -1, 0 },
	{ "str_to_ll: hex is not decimal", "0x10", 0, 100, -1, 0 },
	{ "str_to_ll: overflow", "9999999999999999999999", 0, LLONG_MAX, -1, 0 },
	{ "str_to_ll: LLONG_MAX", "9223372036854775807", 0, LLONG_MAX, 0,
	    LLONG_MAX },
};

static void
run_strings(void)
{
	char		 dst[6], hex[9];
	long long	 v;
	size_t		 i;
	int		 rv;
	static const unsigned char bytes[] = { 0x00, 0x7f, 0xab, 0xff };

	for (i = 0; i < sizeof(ll_rows) / sizeof(ll_rows[0]); i++) {
		const struct ll_row *r = &ll_rows[i];

		v = -12345;
		rv = str_to_ll(r->s, r->min, r->max, &v);
		UNIT_CHECK(r->name, rv == r->rv && (rv == -1 || v == r->want),
		    "rv=%d v=%lld", rv, v);
	}
	UNIT_CHECK("str_to_ll: NULL string", str_to_ll(NULL, 0, 1, &v) == -1,
	    "accepted");

	rv = str_copy(dst, sizeof(dst), "abcde");
	UNIT_CHECK("str_copy: fits exactly", rv == 0 &&
	    strcmp(dst, "abcde") == 0, "rv=%d [%s]", rv, dst);
	rv = str_copy(dst, sizeof(dst), "abcdef");
	UNIT_CHECK("str_copy: truncation returns -1 and terminates",
	    rv == -1 && strcmp(dst, "abcde") == 0, "rv=%d [%s]", rv, dst);
	rv = str_copy(dst, 0, "a");
	UNIT_CHECK("str_copy: zero-size destination", rv == -1, "rv=%d", rv);

	hex_encode(bytes, sizeof(bytes), hex);
	UNIT_CHECK("hex_encode: lower-case, NUL-terminated",
	    strcmp(hex, "007fabff") == 0, "[%s]", hex);
	hex_encode(bytes, 0, hex);
	UNIT_CHECK("hex_encode: zero bytes gives the empty string",
	    hex[0] == '\0', "[%s]", hex);
}

struct quote_row {
	const char *name;
	const char *in;
	size_t	 outsz;
	const char *out;
};

static const struct quote_row quote_rows[] = {
	{ "log_quote: plain text is quoted", "hello world", 64,
	    "\"hello world\"" },
	{ "log_quote: empty string", "", 64, "\"\"" },
	{ "log_quote: NULL is the empty string", NULL, 64, "\"\"" },
	{ "log_quote: double quote is escaped", "a\"b", 64, "\"a\\\"b\"" },
	{ "log_quote: backslash is escaped", "a\\b", 64, "\"a\\\\b\"" },
	{ "log_quote: CR LF and tab are escaped", "a\r\n\tb", 64,
	    "\"a\\r\\n\\tb\"" },
	{ "log_quote: other control bytes in hex", "a\001\033\177", 64,
	    "\"a\\x01\\x1b\\x7f\"" },
	{ "log_quote: UTF-8 is kept", "caf\xc3\xa9", 64, "\"caf\xc3\xa9\"" },
	{ "log_quote: cut to outsz, still closed", "abcdefgh", 6, "\"abc\"" },
	{ "log_quote: an escape is never split", "ab\"cd", 6, "\"ab\"" },
	{ "log_quote: tiny output buffer", "abc", 2, "" },
};

static void
run_quote(void)
{
	char	 out[64];
	size_t	 i;

	for (i = 0; i < sizeof(quote_rows) / sizeof(quote_rows[0]); i++) {
		const struct quote_row *r = &quote_rows[i];

		memset(out, 'X', sizeof(out));
		log_quote(r->in, out, r->outsz);
		UNIT_CHECK(r->name, strcmp(out, r->out) == 0, "[%s]", out);
	}
}

#define LOG_THREADS	8
#define LOG_LINES	500

static void *
log_thread(void *arg)
{
	int	 i, id = (int)(intptr_t)arg;

	for (i = 0; i < LOG_LINES; i++)
		log_info("event=test thread=%d n=%d pad=%s", id, i,
		    "0123456789012345678901234567890123456789");
	return NULL;
}

/* Lines that log_* wrote to a temporary file standing in for stderr. */
static void
run_log(void)
{
	char		 path[] = "/tmp/edgemail-log-XXXXXX", *text, *line, *nl;
	char		 longmsg[6000];
	pthread_t	 th[LOG_THREADS];
	int		 fd, saved, i, good, n;
	long		 size;
	FILE		*fp;

	if ((fd = mkstemp(path)) == -1) {
		UNIT_CHECK("log: temp file", 0, "mkstemp failed");
		return;
	}
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fcntl(STDERR_FILENO, F_SETFL, O_APPEND);

	log_init("/usr/bin/edgemail-test", LOG_LVL_INFO);
	log_debug("event=hidden");
	log_info("event=shown value=%s", "1");
	log_warnx("event=warned\n");
	log_errx("event=failed");
	memset(longmsg, 'y', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	log_info("event=long v=%s", longmsg);
	log_set_level(LOG_LVL_DEBUG);
	log_debug("event=debug_now");
	log_set_level(LOG_LVL_INFO);
	for (i = 0; i < LOG_THREADS; i++)
		pthread_create(&th[i], NULL, log_thread, (void *)(intptr_t)i);
	for (i = 0; i < LOG_THREADS; i++)
		pthread_join(th[i], NULL);

	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);

	if ((fp = fopen(path, "r")) == NULL) {
		UNIT_CHECK("log: read back the log", 0, "fopen failed");
		unlink(path);
		return;
	}
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	rewind(fp);
	text = calloc(1, (size_t)size + 1);
	if (fread(text, 1, (size_t)size, fp) != (size_t)size)
		size = 0;
	fclose(fp);
	unlink(path);

	line = text;
	nl = strchr(line, '\n');
	UNIT_CHECK("log: line format ts=...Z prog=NAME level=info fields",
	    nl != NULL && strncmp(line, "ts=", 3) == 0 &&
	    line[13] == 'T' && line[26] == 'Z' && line[27] == ' ' &&
	    strncmp(line + 28, "prog=edgemail-test level=info "
	    "event=shown value=1\n", 50) == 0, "[%.80s]", line);
	UNIT_CHECK("log: messages below the level are dropped",
	    strstr(text, "event=hidden") == NULL, "debug line logged");
	UNIT_CHECK("log: warn level name, trailing newline not doubled",
	    strstr(text, "level=warn event=warned\nts=") != NULL, "missing");
	UNIT_CHECK("log: error level name", strstr(text,
	    "level=error event=failed\n") != NULL, "missing");
	UNIT_CHECK("log: an overlong line is cut and marked",
	    strstr(text, "yyy...\n") != NULL, "no cut marker");
	UNIT_CHECK("log: log_set_level enables debug",
	    strstr(text, "level=debug event=debug_now\n") != NULL, "missing");

	/* Every line whole: one "ts=" at its start, the pad at its end. */
	good = 1;
	n = 0;
	for (line = text; *line != '\0' && good; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL) {
			good = 0;
			break;
		}
		*nl = '\0';
		if (strstr(line, "event=test") == NULL)
			continue;
		good = strncmp(line, "ts=", 3) == 0 &&
		    strstr(line + 1, "ts=") == NULL &&
		    strstr(line, " prog=edgemail-test level=info event=test "
		    "thread=") != NULL && nl - line > 10 &&
		    strcmp(nl - 10, "0123456789") == 0;
		n++;
	}
	UNIT_CHECK("log: lines from 8 threads never interleave",
	    good && n == LOG_THREADS * LOG_LINES, "good=%d lines=%d", good, n);
	free(text);
}

/* buf_put_base64 against RFC 4648's vectors, folding, and a long input
 * (chunk boundaries inside) against one EVP_EncodeBlock of the whole. */
static void
run_base64(void)
{
	static const struct {
		const char *name, *in, *out;
		size_t fold;
	} t[] = {
		{ "b64_empty", "", "", 0 },
		{ "b64_f", "f", "Zg==", 0 },
		{ "b64_fo", "fo", "Zm8=", 0 },
		{ "b64_foo", "foo", "Zm9v", 0 },
		{ "b64_foobar", "foobar", "Zm9vYmFy", 0 },
		{ "b64_fold_4", "foobar", "Zm9v\r\n\tYmFy", 4 },
		{ "b64_fold_none_at_the_end", "foo", "Zm9v", 4 },
		{ "b64_fold_3", "foobar", "Zm9\r\n\tvYm\r\n\tFy", 3 },
	};
	unsigned char big[5000], whole[4 * 5000 / 3 + 8];
	struct buf b;
	size_t i, j, col, ok;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_init(&b, 0);
		UNIT_CHECK(t[i].name, buf_put_base64(&b, t[i].in, strlen(t[i].in),
		    t[i].fold) == 0 && strcmp(buf_cstr(&b), t[i].out) == 0,
		    "got '%s'", buf_cstr(&b));
		buf_free(&b);
	}
	for (i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7 + i / 251);
	EVP_EncodeBlock(whole, big, (int)sizeof(big));
	buf_init(&b, 0);
	ok = buf_put_base64(&b, big, sizeof(big), 0) == 0 &&
	    strcmp(buf_cstr(&b), (char *)whole) == 0;
	UNIT_CHECK("b64_long_input", ok, "differs from EVP_EncodeBlock");
	buf_reset(&b);
	/* Folded: the same characters, 64 to a line. */
	ok = buf_put_base64(&b, big, sizeof(big), 64) == 0;
	for (i = j = col = 0; ok && i < b.len; i++) {
		if (b.data[i] == '\r') {
			ok = col == 64 && b.data[i + 1] == '\n' &&
			    b.data[i + 2] == '\t';
			i += 2;
			col = 0;
			continue;
		}
		ok = b.data[i] == (char)whole[j++];
		col++;
	}
	UNIT_CHECK("b64_long_input_folded", ok && whole[j] == '\0',
	    "at %zu", i);
	buf_free(&b);
	buf_init(&b, 10);	/* over the limit: -1 */
	UNIT_CHECK("b64_limit", buf_put_base64(&b, big, 100, 0) == -1,
	    "no error");
	buf_free(&b);
}

/* buf_put_json_string: the bytes jansson's json_dumps writes for every
 * valid string, U+FFFD for what is not UTF-8, the sticky failure. */
static void
run_json(void)
{
	static const struct {
		const char *name, *in, *bad_out;	/* bad_out: not UTF-8 */
	} t[] = {
		{ "json_empty", "", NULL },
		{ "json_plain", "250 2.0.0 <x@y> Saved", NULL },
		{ "json_quote_backslash", "say \"hi\" \\ there", NULL },
		{ "json_short_escapes", "a\bb\fc\nd\re\tf", NULL },
		{ "json_control_u", "\x01\x1f\x7f end", NULL },
		{ "json_slash_kept", "a/b", NULL },
		{ "json_utf8_2_3_4", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7",
		    NULL },
		{ "json_bad_lead", "a\xff" "b", "\"a\xef\xbf\xbd" "b\"" },
		{ "json_bad_truncated", "a\xe2\x82", "\"a\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "json_bad_overlong", "\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "json_bad_surrogate", "\xed\xa0\x80",
		    "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
	};
	struct buf b;
	json_t *j;
	char *want;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_init(&b, 0);
		if (t[i].bad_out != NULL) {
			UNIT_CHECK(t[i].name, buf_put_json_string(&b, t[i].in) ==
			    0 && strcmp(buf_cstr(&b), t[i].bad_out) == 0,
			    "got %s", buf_cstr(&b));
		} else {
			j = json_string(t[i].in);
			want = j ? json_dumps(j, JSON_COMPACT |
			    JSON_ENCODE_ANY) : NULL;
			UNIT_CHECK(t[i].name, want != NULL &&
			    buf_put_json_string(&b, t[i].in) == 0 &&
			    strcmp(buf_cstr(&b), want) == 0,
			    "got %s want %s", buf_cstr(&b), want ? want : "-");
			free(want);
			json_decref(j);
		}
		buf_free(&b);
	}
	buf_init(&b, 8);
	UNIT_CHECK("json_limit_sticks", buf_put_json_string(&b, "0123456789")
	    == -1 && b.failed && buf_puts(&b, "}") == 0 && b.failed,
	    "failed=%d", b.failed);
	buf_reset(&b);
	UNIT_CHECK("json_reset_clears_failed", !b.failed, "still failed");
	buf_free(&b);
}

int
main(void)
{
	run_buf();
	run_base64();
	run_json();
	run_strings();
	run_quote();
	run_log();
	return unit_done();
}
