/*
 * test_dynload.c - run-time loading (lib/dynload.h): the table is filled
 * and the functions work; a missing library or a missing symbol is an
 * error naming it, with no slot filled; and the libraries the programs
 * load this way (the build's CLAMAV_SONAME and CURL_SONAME) are there.
 */
#include <string.h>

#include <clamav.h>
#include <curl/curl.h>

#include "lib/dynload.h"
#include "tests/unit/unit.h"

static struct {
	__typeof__(strlen) *len;
	__typeof__(strchr) *chr;
} c;

int
main(void)
{
	const struct dynsym good[] = {
		{ "strlen", (void **)&c.len },
		{ "strchr", (void **)&c.chr },
	};
	const struct dynsym bad[] = {
		{ "strchr", (void **)&c.chr },
		{ "no_such_function_here", (void **)&c.len },
	};
	struct {
		__typeof__(cl_retflevel) *retflevel;
	} clam = { NULL };
	const struct dynsym clam_syms[] = {
		{ "cl_retflevel", (void **)&clam.retflevel },
	};
	struct {
		__typeof__(curl_version) *version;
	} cu = { NULL };
	const struct dynsym curl_syms[] = {
		{ "curl_version", (void **)&cu.version },
	};
	char why[300];

	why[0] = '\0';
	UNIT_CHECK("dynload: bad symbol fails and names it",
	    dynload("libc.so.6", bad, 2, why, sizeof(why)) == -1 &&
	    strstr(why, "no_such_function_here") != NULL, "why=%s", why);
	UNIT_CHECK("dynload: a failure fills no slot",
	    c.chr == NULL && c.len == NULL, "slots filled");

	why[0] = '\0';
	UNIT_CHECK("dynload: missing library fails and names it",
	    dynload("libedgemail-none.so.9", good, 2, why, sizeof(why)) ==
	    -1 && strstr(why, "libedgemail-none.so.9") != NULL, "why=%s", why);

	UNIT_CHECK("dynload: libc functions resolved",
	    dynload("libc.so.6", good, 2, why, sizeof(why)) == 0 &&
	    c.len != NULL && c.chr != NULL, "why=%s", why);
	UNIT_CHECK("dynload: resolved functions work",
	    c.len != NULL && c.len("edgemail") == 8 &&
	    c.chr("a@b", '@') != NULL, "strlen/strchr through the table");

	UNIT_CHECK("dynload: the build's libclamav (" CLAMAV_SONAME ")",
	    dynload(CLAMAV_SONAME, clam_syms, 1, why, sizeof(why)) == 0 &&
	    clam.retflevel() > 0, "why=%s", why);
	UNIT_CHECK("dynload: the build's libcurl (" CURL_SONAME ")",
	    dynload(CURL_SONAME, curl_syms, 1, why, sizeof(why)) == 0 &&
	    strncmp(cu.version(), "libcurl/", 8) == 0, "why=%s", why);
	return unit_done();
}
