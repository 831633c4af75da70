/*
 * fuzz_addr.c - libFuzzer target for the RFC 5321 address parser.
 *
 * Besides memory safety it checks what callers rely on: an accepted
 * address respects the length limits, its domain is lower-case, and
 * parsing the formatted result again gives the same address.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addr.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const char *s, size_t len, int flags)
{
	struct addr	 a, b;
	const char	*err = NULL;
	char		 out[ADDR_PATH_MAX + 8], wrapped[ADDR_PATH_MAX + 8];
	char		 key[ADDR_PATH_MAX], tiny[5];
	size_t		 ll, dl, i, n;

	if (addr_parse(s, len, flags, &a, &err) == -1) {
		if (err == NULL || *err == '\0')
			abort();	/* a refusal always says why */
		return;
	}
	ll = strlen(a.local);
	dl = strlen(a.domain);
	if (ll > ADDR_LOCAL_MAX || dl > ADDR_DOMAIN_MAX ||
	    (!addr_is_null(&a) && ll + dl + 3 > ADDR_PATH_MAX))
		abort();
	if (addr_is_null(&a) && !(flags & ADDR_ALLOW_EMPTY))
		abort();
	for (i = 0; i < dl; i++)
		if (a.domain[i] >= 'A' && a.domain[i] <= 'Z' &&
		    strncmp(a.domain, "[IPv6:", 6) != 0)
			abort();
	if (a.utf8 && !(flags & ADDR_ALLOW_UTF8))
		abort();

	if (addr_format(&a, out, sizeof(out)) == -1)
		abort();
	n = strlen(out);
	if (flags & ADDR_REQUIRE_BRACKETS) {
		wrapped[0] = '<';
		memcpy(wrapped + 1, out, n);
		wrapped[n + 1] = '>';
		n += 2;
	} else
		memcpy(wrapped, out, n);
	if (addr_parse(wrapped, n, flags, &b, &err) == -1 ||
	    strcmp(a.local, b.local) != 0 || strcmp(a.domain, b.domain) != 0 ||
	    a.utf8 != b.utf8)
		abort();

	addr_lookup_key(&a, key, sizeof(key));
	if (strlen(key) >= sizeof(key))
		abort();
	memset(tiny, 'x', sizeof(tiny));
	addr_lookup_key(&a, tiny, sizeof(tiny));
	if (memchr(tiny, '\0', sizeof(tiny)) == NULL)
		abort();
	if (addr_format(&a, tiny, sizeof(tiny)) == 0 && strlen(tiny) >= 5)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s;
	int	 flags;

	/* An exact-size copy lets ASan catch reads past the end. */
	if ((s = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	for (flags = 0; flags < 8; flags++)
		check(s, size, flags);
	free(s);
	return 0;
}
