/*
 * fuzz_hdr.c - libFuzzer target for the header section reader, and for
 * the CRLF normaliser that every ingested message also goes through.
 *
 * Header invariants: fields tile the section in order with no gap, every
 * range lies inside the message, hdr_section_end agrees with walking.
 * CRLF invariants: the output has only CRLF line ends, fits the documented
 * bound, and does not depend on where the input is split.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/crlf.h"
#include "lib/hdr.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_hdr(const char *msg, size_t len)
{
	struct hdr_field f;
	struct buf	 v;
	size_t		 pos = 0, prev;
	int		 rv, count = 0;

	buf_init(&v, 1 << 16);
	for (;;) {
		prev = pos;
		rv = hdr_next(msg, len, &pos, &f);
		if (rv != 1)
			break;
		if (f.start != prev || f.end <= f.start || f.end > len ||
		    pos != f.end || f.name != msg + f.start ||
		    f.name_len == 0 || f.name + f.name_len > msg + f.end ||
		    f.value < f.name + f.name_len ||
		    f.value + f.value_len > msg + f.end)
			abort();
		if (hdr_unfold(&f, &v) == 0 &&
		    (v.len > f.value_len || strlen(buf_cstr(&v)) > v.len))
			abort();
		if (++count > (int)len)
			abort();	/* no progress */
	}
	if (pos > len || (rv == -1 && pos != prev) || (rv == 0 && pos < prev))
		abort();
	if (hdr_section_end(msg, len) != pos)
		abort();
	(void)hdr_find(msg, len, "subject", &v);
	buf_free(&v);
}

static size_t
crlf_all(const char *in, size_t n, size_t cut, char *out)
{
	struct crlf_state st;
	size_t	 o;

	crlf_init(&st);
	o = crlf_convert(&st, in, cut, out);
	if (o > 2 * cut + 1)
		abort();
	o += crlf_convert(&st, in + cut, n - cut, out + o);
	o += crlf_finish(&st, out + o);
	return o;
}

static void
check_crlf(const char *in, size_t n)
{
	char	*a, *b;
	size_t	 oa, ob, i, cut;

	if ((a = malloc(2 * n + 4)) == NULL || (b = malloc(2 * n + 4)) == NULL) {
		free(a);
		return;
	}
	cut = n > 0 ? (unsigned char)in[0] % (n + 1) : 0;
	oa = crlf_all(in, n, n, a);
	ob = crlf_all(in, n, cut, b);
	if (oa != ob || memcmp(a, b, oa) != 0 || oa > 2 * n + 2)
		abort();
	for (i = 0; i < oa; i++) {
		if (a[i] == '\r' && (i + 1 >= oa || a[i + 1] != '\n'))
			abort();
		if (a[i] == '\n' && (i == 0 || a[i - 1] != '\r'))
			abort();
	}
	if (oa > 0 && (oa < 2 || a[oa - 2] != '\r' || a[oa - 1] != '\n'))
		abort();
	free(a);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*msg;

	if ((msg = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(msg, data, size);
	check_hdr(msg, size);
	check_crlf(msg, size);
	free(msg);
	return 0;
}
