/*
 * test_crlf.c - line-end normalisation: expected output per input, and the
 * same output whatever the chunking (every input split at every offset,
 * and fed one byte at a time).
 */
#include <stdio.h>
#include <string.h>

#include "lib/crlf.h"
#include "tests/unit/unit.h"

struct row {
	const char *name;
	const char *in;
	const char *out;
};

static const struct row rows[] = {
	{ "crlf: empty input stays empty", "", "" },
	{ "crlf: CRLF is kept", "a\r\nb\r\n", "a\r\nb\r\n" },
	{ "crlf: bare LF becomes CRLF", "a\nb\n", "a\r\nb\r\n" },
	{ "crlf: bare CR becomes CRLF", "a\rb\r", "a\r\nb\r\n" },
	{ "crlf: missing final line end is added", "abc", "abc\r\n" },
	{ "crlf: missing final line end after CRLF lines", "a\r\nb",
	    "a\r\nb\r\n" },
	{ "crlf: LF CR is two line ends", "a\n\rb", "a\r\n\r\nb\r\n" },
	{ "crlf: CR CR LF is two line ends", "a\r\r\nb", "a\r\n\r\nb\r\n" },
	{ "crlf: CR LF LF is two line ends", "a\r\n\nb", "a\r\n\r\nb\r\n" },
	{ "crlf: lone LF", "\n", "\r\n" },
	{ "crlf: lone CR", "\r", "\r\n" },
	{ "crlf: lone CRLF", "\r\n", "\r\n" },
	{ "crlf: blank lines of every kind", "\n\r\n\r\r\n",
	    "\r\n\r\n\r\n\r\n" },
	{ "crlf: mixed line ends in one message",
	    "From: a\nTo: b\r\nSubject: c\r\rbody\n.\r\n",
	    "From: a\r\nTo: b\r\nSubject: c\r\n\r\nbody\r\n.\r\n" },
	{ "crlf: trailing CR CR", "x\r\r", "x\r\n\r\n" },
	{ "crlf: only CRs", "\r\r\r", "\r\n\r\n\r\n" },
	{ "crlf: only LFs", "\n\n\n", "\r\n\r\n\r\n" },
};

/* Convert in, split into chunks at the given offsets (sorted, < n). */
static size_t
convert_split(const char *in, size_t n, const size_t *cuts, size_t ncuts,
    char *out)
{
	struct crlf_state st;
	size_t	 o = 0, prev = 0, i;

	crlf_init(&st);
	for (i = 0; i <= ncuts; i++) {
		size_t at = i < ncuts ? cuts[i] : n;

		o += crlf_convert(&st, in + prev, at - prev, out + o);
		prev = at;
	}
	o += crlf_finish(&st, out + o);
	out[o] = '\0';
	return o;
}

static void
run_rows(void)
{
	char	 out[256], name[160];
	size_t	 i, n, o, cut[2], a, b;
	int	 good;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];

		n = strlen(r->in);
		o = convert_split(r->in, n, NULL, 0, out);
		UNIT_CHECK(r->name, o == strlen(r->out) &&
		    memcmp(out, r->out, o) == 0, "got %zu bytes", o);

		/* One split at every offset. */
		good = 1;
		for (a = 0; a <= n && good; a++) {
			cut[0] = a;
			o = convert_split(r->in, n, cut, 1, out);
			good = o == strlen(r->out) && memcmp(out, r->out, o) == 0;
		}
		snprintf(name, sizeof(name), "%s (split once at every offset)",
		    r->name);
		UNIT_CHECK(name, good, "differs when split at %zu", a - 1);

		/* Two splits at every pair of offsets (empty chunks too). */
		good = 1;
		for (a = 0; a <= n && good; a++)
			for (b = a; b <= n && good; b++) {
				cut[0] = a;
				cut[1] = b;
				o = convert_split(r->in, n, cut, 2, out);
				good = o == strlen(r->out) &&
				    memcmp(out, r->out, o) == 0;
			}
		snprintf(name, sizeof(name), "%s (split twice at every pair)",
		    r->name);
		UNIT_CHECK(name, good, "differs when split at %zu,%zu", a - 1,
		    b - 1);
	}
}

/* Every byte its own chunk, on every string over {a, CR, LF} up to 6. */
static void
run_exhaustive(void)
{
	static const char alphabet[] = { 'a', '\r', '\n' };
	char	 in[8], one[32], bytewise[32];
	size_t	 cuts[8], len, i, o1, o2, total = 0;
	unsigned long code, max;
	int	 good = 1, bound_ok = 1;

	for (len = 1; len <= 6 && good; len++) {
		for (max = 1, i = 0; i < len; i++)
			max *= 3;
		for (code = 0; code < max && good; code++) {
			unsigned long c = code;

			for (i = 0; i < len; i++) {
				in[i] = alphabet[c % 3];
				c /= 3;
				cuts[i] = i + 1;
			}
			o1 = convert_split(in, len, NULL, 0, one);
			o2 = convert_split(in, len, cuts, len - 1, bytewise);
			good = o1 == o2 && memcmp(one, bytewise, o1) == 0;
			/* Each output must be CRLF-clean: no bare CR or LF. */
			for (i = 0; i < o1 && good; i++) {
				if (one[i] == '\r')
					good = i + 1 < o1 && one[i + 1] == '\n';
				if (one[i] == '\n')
					good = i > 0 && one[i - 1] == '\r';
			}
			if (o1 > 2 * len + 2)
				bound_ok = 0;
			total++;
		}
	}
	UNIT_CHECK("crlf: every {a,CR,LF} string up to 6 bytes converts the "
	    "same byte by byte as in one piece", good,
	    "differs for a string of %zu bytes", len - 1);
	UNIT_CHECK("crlf: output of every short string has only CRLF line ends",
	    good, "bare CR or LF in output");
	UNIT_CHECK("crlf: output never exceeds 2n + 2 bytes", bound_ok,
	    "output too large");
	(void)total;
}

/* The converter must stay within 2n + 1 bytes per call, pending CR too. */
static void
run_bound(void)
{
	struct crlf_state st;
	char	 out[8];
	size_t	 o;

	crlf_init(&st);
	o = crlf_convert(&st, "\r", 1, out);
	UNIT_CHECK("crlf: a CR at chunk end is held back", o == 0 &&
	    st.pending_cr == 1, "o=%zu pending=%d", o, st.pending_cr);
	o = crlf_convert(&st, "x\n", 2, out);
	UNIT_CHECK("crlf: held CR plus 2 bytes writes at most 2n + 1",
	    o == 5 && memcmp(out, "\r\nx\r\n", 5) == 0, "o=%zu", o);
	o = crlf_convert(&st, "", 0, out);
	UNIT_CHECK("crlf: empty chunk writes nothing", o == 0, "o=%zu", o);
	o = crlf_finish(&st, out);
	UNIT_CHECK("crlf: finish after a line end adds nothing", o == 0,
	    "o=%zu", o);
	crlf_init(&st);
	o = crlf_convert(&st, "\r", 1, out);
	o += crlf_convert(&st, "", 0, out + o);
	o += crlf_convert(&st, "\n", 1, out + o);
	o += crlf_finish(&st, out + o);
	UNIT_CHECK("crlf: CR, empty chunk, LF is still one CRLF", o == 2 &&
	    memcmp(out, "\r\n", 2) == 0, "o=%zu", o);
}

/* Pseudo-random, the same every run. */
static unsigned
next_rand(unsigned *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/*
 * The way ingest uses it: crlf_clean_prefix first, its bytes taken as
 * they are, crlf_convert for the rest.  Chunked anyhow, that must give
 * what crlf_convert alone gives.  The inputs are mostly CRLF lines (the
 * fast path) with now and then a bare CR or LF, across block edges.
 */
static void
run_clean_prefix(void)
{
	static char in[700], one[1500], two[1500];
	struct crlf_state st;
	size_t	 n, i, o1, o2, at, k, c, fast = 0;
	unsigned x = 2463534242u, round;
	int	 good = 1;

	for (round = 0; round < 3000 && good; round++) {
		n = next_rand(&x) % sizeof(in);
		for (i = 0; i < n; i++) {
			unsigned r = next_rand(&x) % 1000;

			if (i % 40 == 38 && r < 990)
				in[i] = '\r';
			else if (i % 40 == 39 && r < 990)
				in[i] = '\n';
			else
				in[i] = r < 3 ? '\r' : r < 6 ? '\n' : 'a';
		}
		o1 = convert_split(in, n, NULL, 0, one);
		crlf_init(&st);
		for (o2 = 0, at = 0; at < n; at += k) {
			k = 1 + next_rand(&x) % 300;
			if (k > n - at)
				k = n - at;
			c = crlf_clean_prefix(&st, in + at, k);
			memcpy(two + o2, in + at, c);
			o2 += c;
			fast += c;
			o2 += crlf_convert(&st, in + at + c, k - c, two + o2);
		}
		o2 += crlf_finish(&st, two + o2);
		good = o1 == o2 && memcmp(one, two, o1) == 0;
	}
	UNIT_CHECK("crlf: clean prefix plus conversion of the rest equals "
	    "conversion alone, in any chunks", good,
	    "differs in round %u", round - 1);
	UNIT_CHECK("crlf: CRLF lines take the clean-prefix path", fast > 0,
	    "no byte passed as clean");

	for (i = 0; i + 2 <= 640; i += 80) {
		memset(in + i, 'b', 78);
		memcpy(in + i + 78, "\r\n", 2);
	}
	crlf_init(&st);
	c = crlf_clean_prefix(&st, in, 640);
	UNIT_CHECK("crlf: 640 bytes of CRLF lines are clean but for the "
	    "last block", c >= 640 - 64 && st.at_bol == (in[c - 1] == '\n'),
	    "clean=%zu", c);
	in[100] = '\n';
	crlf_init(&st);
	c = crlf_clean_prefix(&st, in, 640);
	UNIT_CHECK("crlf: the clean prefix stops before a bare LF", c <= 100,
	    "clean=%zu", c);
}

int
main(void)
{
	run_rows();
	run_exhaustive();
	run_bound();
	run_clean_prefix();
	return unit_done();
}
