/*
 * dkim.c - `edgemailctl dkim keygen|show`: DKIM keys for the relay's
 * signer (lib/dkim_sign.h) and the DNS TXT records that publish them.
 *
 * Keys live in dkim_keys_dir/DOMAIN/SELECTOR.key (PEM, PKCS#8, mode
 * 0600): RSA 2048 (rsa-sha256, RFC 6376) or Ed25519 (ed25519-sha256,
 * RFC 8463).  The record is "v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo>"
 * or "v=DKIM1; k=ed25519; p=<the raw 32-byte key>", base64.
 */
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ctl/ctl.h"
#include "lib/directory.h"

#define DKIM_RSA_BITS	2048

static int
selector_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' &&
		    s[i] <= '9') || s[i] == '-' || (s[i] >= 'A' &&
		    s[i] <= 'Z')))
			return 0;
	return 1;
}

static int
domain_name_ok(const char *s)
{
	return s[0] != '\0' && s[0] != '.' && strchr(s, '/') == NULL &&
	    strstr(s, "..") == NULL && strlen(s) <= 253;
}

/* "v=DKIM1; k=...; p=..." of a key into out; -1 for an unknown type. */
static int
dkim_record(EVP_PKEY *pk, struct buf *out)
{
	unsigned char *der = NULL, raw[64];
	size_t rawlen = sizeof(raw);
	int len;

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		if ((len = i2d_PUBKEY(pk, &der)) <= 0)
			return -1;
		buf_puts(out, "v=DKIM1; k=rsa; p=");
		buf_put_base64(out, der, (size_t)len, 0);
		OPENSSL_free(der);
		return 0;
	case EVP_PKEY_ED25519:
		if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) != 1)
			return -1;
		buf_puts(out, "v=DKIM1; k=ed25519; p=");
		buf_put_base64(out, raw, rawlen, 0);
		return 0;
	default:
		return -1;
	}
}

static EVP_PKEY *
load_key(const char *path, char *err, size_t errsz)
{
	EVP_PKEY *pk;
	FILE *fp;

	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return NULL;
	}
	pk = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	if (pk == NULL)
		snprintf(err, errsz, "%s: not a PEM private key", path);
	return pk;
}

/* The zone-file line of a TXT record, strings of at most 255 bytes. */
static void
print_txt(const char *name, const char *value)
{
	size_t n = strlen(value), i;

	printf("%s. 3600 IN TXT (", name);
	for (i = 0; i < n; i += 255)
		printf(" \"%.*s\"", (int)(n - i > 255 ? 255 : n - i), value + i);
	printf(" )\n");
}

int
dkim_domain_records(struct ctl *c, const char *domain, const char *only,
    json_t *list)
{
	char dir[4096], path[4400], err[4600], sel[256];
	struct dirent **ents = NULL;
	int n, i, bad = 0;

	snprintf(dir, sizeof(dir), "%s/%s", ctl_get(c, "dkim_keys_dir"),
	    domain);
	if ((n = scandir(dir, &ents, NULL, alphasort)) < 0)
		return errno == ENOENT ? 0 : -1;
	for (i = 0; i < n; i++) {
		size_t len = strlen(ents[i]->d_name);
		struct buf rec;
		EVP_PKEY *pk;

		if (len <= 4 || strcmp(ents[i]->d_name + len - 4, ".key") != 0 ||
		    ents[i]->d_name[0] == '.')
			continue;
		snprintf(sel, sizeof(sel), "%.*s", (int)(len - 4),
		    ents[i]->d_name);
		if (only != NULL && strcmp(only, sel) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if ((pk = load_key(path, err, sizeof(err))) == NULL) {
			ctl_warn(c, "%s", err);
			bad++;
			continue;
		}
		buf_init(&rec, 16384);
		if (dkim_record(pk, &rec) == 0)
			json_array_append_new(list, json_pack("{s:s, s:s, s:s, "
			    "s:s}", "selector", sel, "name", "", "type",
			    EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA ? "rsa" :
			    "ed25519", "record", buf_cstr(&rec)));
		else {
			ctl_warn(c, "%s: key type not usable for DKIM", path);
			bad++;
		}
		buf_free(&rec);
		EVP_PKEY_free(pk);
	}
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	/* The owner names, now that the selectors are known. */
	for (i = 0; i < (int)json_array_size(list); i++) {
		json_t *e = json_array_get(list, (size_t)i);
		char name[600];

		snprintf(name, sizeof(name), "%s._domainkey.%s",
		    json_string_value(json_object_get(e, "selector")), domain);
		json_object_set_new(e, "name", json_string(name));
	}
	return bad ? -1 : 0;
}

static int
mkdir_p(const char *path, mode_t mode)
{
	char p[4096];
	size_t i;

	snprintf(p, sizeof(p), "%s", path);
	for (i = 1; p[i] != '\0'; i++)
		if (p[i] == '/') {
			p[i] = '\0';
			if (mkdir(p, mode) != 0 && errno != EEXIST)
				return -1;
			p[i] = '/';
		}
	return mkdir(p, mode) != 0 && errno != EEXIST ? -1 : 0;
}

int
cmd_dkim_keygen(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "selector", required_argument, NULL, 's' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 }
	};
	const char *type = "rsa", *sel = NULL, *domain;
	char dir[4096], path[4400], tmp[4500], up[4096], lc[256], *slash;
	struct buf rec;
	EVP_PKEY *pk;
	FILE *fp;
	int ch, force = 0, fd, have_own = 0;
	struct stat st, own, dst;
	size_t i;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 't':
			type = optarg;
			break;
		case 's':
			sel = optarg;
			break;
		case 'f':
			force = 1;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind != 1)
		return ctl_usage(c, "one DOMAIN expected");
	/* The signer looks keys up by the lower-cased From domain. */
	snprintf(lc, sizeof(lc), "%s", argv[optind]);
	for (i = 0; lc[i] != '\0'; i++)
		lc[i] = (char)tolower((unsigned char)lc[i]);
	domain = lc;
	if (strcmp(type, "rsa") != 0 && strcmp(type, "ed25519") != 0)
		return ctl_usage(c, "--type is rsa or ed25519");
	if (sel == NULL) {
		sel = strcmp(type, "rsa") == 0 ? ctl_get(c, "dkim_selector") :
		    ctl_get(c, "dkim_ed25519_selector");
		if (sel[0] == '\0')
			sel = "ed25519";
	}
	if (!selector_ok(sel))
		return ctl_usage(c, "bad selector '%s' (letters, digits, '-')",
		    sel);
	if (!domain_name_ok(domain))
		return ctl_usage(c, "bad domain '%s'", domain);
	snprintf(dir, sizeof(dir), "%s/%s", ctl_get(c, "dkim_keys_dir"),
	    domain);
	snprintf(path, sizeof(path), "%s/%s.key", dir, sel);
	if (stat(path, &st) == 0 && !force)
		return ctl_fail(c, "%s exists (--force replaces it; publish "
		    "the new record before the signer uses it)", path);
	/* The signer picks a new key of its selector up at the next
	 * message: every signature would fail until the new record is
	 * published and the old one's TTL has run out. */
	if (stat(path, &st) == 0 && (strcmp(sel, ctl_get(c,
	    "dkim_selector")) == 0 || strcmp(sel, ctl_get(c,
	    "dkim_ed25519_selector")) == 0))
		return ctl_fail(c, "%s is the selector the signer uses: to "
		    "rotate, make a key under a new selector (--selector NEW), "
		    "publish its record, then set dkim_selector = NEW", sel);
	/* The keys belong to whoever owns the state the keys directory is
	 * made in (the service that signs), not to root running this: the
	 * nearest directory that exists already says who that is. */
	snprintf(up, sizeof(up), "%s", ctl_get(c, "dkim_keys_dir"));
	while (!(have_own = stat(up, &own) == 0) &&
	    (slash = strrchr(up, '/')) != NULL && slash != up)
		*slash = '\0';
	if (geteuid() != 0)
		have_own = 0;
	if (mkdir_p(dir, 0700) != 0)
		return ctl_fail(c, "%s: %s", dir, strerror(errno));
	/* The directories belong to the service user, who could have put a
	 * link to /etc there: root neither writes through one nor gives
	 * its target away. */
	if (lstat(dir, &dst) != 0 || !S_ISDIR(dst.st_mode))
		return ctl_fail(c, "%s: not a directory (a symbolic link?)",
		    dir);
	if (have_own) {
		(void)!lchown(ctl_get(c, "dkim_keys_dir"), own.st_uid,
		    own.st_gid);
		(void)!lchown(dir, own.st_uid, own.st_gid);
	}
	pk = strcmp(type, "rsa") == 0 ?
	    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIM_RSA_BITS) :
	    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pk == NULL)
		return ctl_fail(c, "key generation failed");
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) <
	    0 || (fp = fdopen(fd, "w")) == NULL) {
		EVP_PKEY_free(pk);
		return ctl_fail(c, "%s: %s", tmp, strerror(errno));
	}
	if (have_own)
		(void)!fchown(fd, own.st_uid, own.st_gid);
	if (PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fflush(fp) != 0 || fsync(fd) != 0) {
		fclose(fp);
		unlink(tmp);
		EVP_PKEY_free(pk);
		return ctl_fail(c, "writing %s failed", tmp);
	}
	fclose(fp);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		EVP_PKEY_free(pk);
		return ctl_fail(c, "%s: %s", path, strerror(errno));
	}
	buf_init(&rec, 16384);
	dkim_record(pk, &rec);
	EVP_PKEY_free(pk);
	if (c->json)
		ctl_json(json_pack("{s:s, s:s, s:s, s:s, s:s%}", "domain", domain,
		    "selector", sel, "type", type, "key_file", path, "record",
		    rec.data, rec.len));
	else {
		char name[600];

		snprintf(name, sizeof(name), "%s._domainkey.%s", sel, domain);
		printf("# %s key written to %s; publish:\n", type, path);
		print_txt(name, buf_cstr(&rec));
		if (strcmp(type, "ed25519") == 0 &&
		    strcmp(ctl_get(c, "dkim_ed25519_selector"), sel) != 0)
			printf("# the signer uses it once dkim_ed25519_selector "
			    "= %s\n", sel);
		else if (strcmp(type, "rsa") == 0 &&
		    strcmp(ctl_get(c, "dkim_selector"), sel) != 0)
			printf("# the signer uses it once dkim_selector = %s\n",
			    sel);
	}
	buf_free(&rec);
	return CTL_OK;
}

int
cmd_dkim_show(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "selector", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	const char *sel = NULL;
	json_t *list;
	size_t i;
	int ch, rc;

	while ((ch = ctl_getopt(c, argc, argv, "", opts)) != -1)
		switch (ch) {
		case 'h':
			return ctl_help(c);
		case 's':
			sel = optarg;
			break;
		default:
			return ctl_usage(c, NULL);
		}
	if (argc - optind != 1)
		return ctl_usage(c, "one DOMAIN expected");
	if (!domain_name_ok(argv[optind]))
		return ctl_usage(c, "bad domain '%s'", argv[optind]);
	list = json_array();
	rc = dkim_domain_records(c, argv[optind], sel, list);
	if (json_array_size(list) == 0) {
		json_decref(list);
		return ctl_fail(c, "no DKIM key for %s%s%s (dkim keygen %s)",
		    argv[optind], sel ? " selector " : "", sel ? sel : "",
		    argv[optind]);
	}
	if (c->json)
		ctl_json(list);
	else {
		for (i = 0; i < json_array_size(list); i++) {
			json_t *e = json_array_get(list, i);

			print_txt(json_string_value(json_object_get(e, "name")),
			    json_string_value(json_object_get(e, "record")));
		}
		json_decref(list);
	}
	return rc == 0 ? CTL_OK : CTL_ERR;
}
