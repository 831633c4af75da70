/*
 * test_srs.c - SRS0 forward and reverse: round trip, case folding by
 * mail systems, forged hashes, expired addresses, length limits.
 */
#include <stdio.h>
#include <string.h>

#include "lib/srs.h"
#include "tests/unit/unit.h"

int
main(void)
{
	const char *sec = "0123456789abcdef0123456789abcdef";
	time_t now = 1796292322;
	char fwd[300], back[300], upper[300], forged[300];
	size_t i;

	UNIT_CHECK("srs: forward rewrites into our domain",
	    srs_forward(sec, "a.b@sender.test", "example.test", now, fwd,
	    sizeof(fwd)) == 0 && strncmp(fwd, "SRS0=", 5) == 0 &&
	    strstr(fwd, "=sender.test=a.b@example.test") != NULL, "got %s", fwd);
	UNIT_CHECK("srs: reverse gives the original sender",
	    srs_reverse(sec, fwd, now, back, sizeof(back)) == 0 &&
	    strcmp(back, "a.b@sender.test") == 0, "got %s", back);
	for (i = 0; fwd[i] && fwd[i] != '@'; i++)
		upper[i] = (char)((fwd[i] >= 'a' && fwd[i] <= 'z') ?
		    fwd[i] - 32 : fwd[i]);
	snprintf(upper + i, sizeof(upper) - i, "%s", fwd + i);
	UNIT_CHECK("srs: reverse survives upper-casing of the hash and day",
	    srs_reverse(sec, upper, now, back, sizeof(back)) == 0, "%s", upper);
	snprintf(forged, sizeof(forged), "%s", fwd);
	forged[5] = forged[5] == 'a' ? 'b' : 'a';
	UNIT_CHECK("srs: forged hash refused",
	    srs_reverse(sec, forged, now, back, sizeof(back)) != 0, "%s", forged);
	UNIT_CHECK("srs: another secret refused",
	    srs_reverse("other-secret-000000000000000000", fwd, now, back,
	    sizeof(back)) != 0, "accepted");
	UNIT_CHECK("srs: within 21 days accepted",
	    srs_reverse(sec, fwd, now + 20 * 86400, back, sizeof(back)) == 0,
	    "refused");
	UNIT_CHECK("srs: older than 21 days refused",
	    srs_reverse(sec, fwd, now + 23 * 86400, back, sizeof(back)) != 0,
	    "accepted");
	UNIT_CHECK("srs: plain address is not SRS",
	    srs_reverse(sec, "demo@example.test", now, back, sizeof(back)) != 0,
	    "accepted");
	UNIT_CHECK("srs: truncated SRS address refused",
	    srs_reverse(sec, "SRS0=abcd=ab@example.test", now, back,
	    sizeof(back)) != 0, "accepted");
	UNIT_CHECK("srs: local part over 64 octets is not produced",
	    srs_forward(sec, "a-very-long-local-part-that-goes-on-and-on-"
	    "and-on@sender.test", "example.test", now, fwd, sizeof(fwd)) != 0,
	    "got %s", fwd);
	UNIT_CHECK("srs: sender without @ refused",
	    srs_forward(sec, "nobody", "example.test", now, fwd,
	    sizeof(fwd)) != 0, "got %s", fwd);
	return unit_done();
}
