/*
 * dynload.c - resolve a shared library's functions at run time (see
 * dynload.h).
 */
#include <dlfcn.h>
#include <stdio.h>

#include "lib/dynload.h"

int
dynload(const char *soname, const struct dynsym *syms, size_t n, char *why,
    size_t whysz)
{
	void *h, *p;
	const char *e;
	size_t i;

	if ((h = dlopen(soname, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		e = dlerror();
		snprintf(why, whysz, "%s", e ? e : soname);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((p = dlsym(h, syms[i].name)) == NULL) {
			snprintf(why, whysz, "%s: no symbol %s", soname,
			    syms[i].name);
			dlclose(h);
			return -1;
		}
	}
	/* All there: only now fill the slots, so a failure leaves none. */
	for (i = 0; i < n; i++)
		*syms[i].slot = dlsym(h, syms[i].name);
	return 0;
}
