/*
 * fuzz_reply.c - libFuzzer target for the SMTP/LMTP reply line parser.
 *
 * The input is split into lines as a reply stream would be.  Every
 * accepted line must yield a code in 200-599 whose class follows from it,
 * an enhanced code that is empty or of the code's class, a text without
 * control characters, and formatting then parsing must give it back.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/reply.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const char *line, size_t len)
{
	struct reply	 r, p;
	char		 out[512];
	size_t		 i, n;
	int		 more = -1;

	if (reply_parse_line(line, len, &r, &more) == -1)
		return;
	if (r.code < 200 || r.code > 599 || (more != 0 && more != 1) ||
	    r.cls != reply_class_of(r.code))
		abort();
	n = strnlen(r.enhanced, sizeof(r.enhanced));
	if (n == sizeof(r.enhanced) ||
	    (n > 0 && r.enhanced[0] != '0' + r.code / 100))
		abort();
	n = strnlen(r.text, sizeof(r.text));
	if (n == sizeof(r.text))
		abort();
	for (i = 0; i < n; i++)
		if (((unsigned char)r.text[i] < 0x20 && r.text[i] != '\t') ||
		    r.text[i] == 0x7f)
			abort();

	reply_format(&r, out, sizeof(out));
	if (reply_parse_line(out, strlen(out), &p, NULL) == -1 ||
	    p.code != r.code || p.cls != r.cls ||
	    strcmp(p.enhanced, r.enhanced) != 0 || strcmp(p.text, r.text) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*s = (const char *)data, *nl;
	char		*line;
	size_t		 n;

	while (size > 0) {
		nl = memchr(s, '\n', size);
		n = nl != NULL ? (size_t)(nl - s) : size;
		/* Exact-size copy so that ASan sees any read past the line. */
		if ((line = malloc(n ? n : 1)) == NULL)
			return 0;
		memcpy(line, s, n);
		check(line, n);
		free(line);
		if (nl == NULL)
			break;
		s += n + 1;
		size -= n + 1;
	}
	return 0;
}
