/*
 * dynload.h - resolve a shared library's functions at run time.
 *
 * For a library that only some configurations of a program need: a
 * process that does not use it never maps it.  edgemail-api with
 * edgemail-scand and without rspamd, for instance, has no libclamav
 * (with libstdc++, ICU and libxml2: 3.5 MiB resident) and no libcurl
 * (with Kerberos, LDAP and SSH: 1.5 MiB) in its address space.
 *
 * A caller keeps a struct of function pointers, typed with __typeof__
 * from the library's own header, and a table naming each one:
 *
 *	static struct { __typeof__(cl_init) *init; } clam;
 *	static const struct dynsym syms[] = { { "cl_init", (void **)&clam.init } };
 *	if (dynload(CLAMAV_SONAME, syms, 1, why, sizeof(why)) != 0) ...
 *
 * The library stays loaded for the life of the process.
 */
#ifndef EDGEMAIL_DYNLOAD_H
#define EDGEMAIL_DYNLOAD_H

#include <stddef.h>

struct dynsym {
	const char *name;
	void	  **slot;	/* where the address goes */
};

/* Load soname (RTLD_NOW) and fill every slot; 0, or -1 with why (and no
 * slot filled). */
int	dynload(const char *soname, const struct dynsym *syms, size_t n,
	    char *why, size_t whysz);

#endif
