/*
 * dkim_sign.c - DKIM signatures with libopendkim (see dkim_sign.h).
 *
 * One DKIM_LIB handle for the program (libopendkim allows concurrent
 * DKIM handles on it); one DKIM handle per signature.  The key cache maps
 * a domain to the text of its key files and their identity (inode, size,
 * mtime), so that a new key written by `edgemailctl dkim keygen` is picked
 * up at the next message.  A signer holds a copy of the key while it signs,
 * never a pointer into the cache.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <opendkim/dkim.h>

#include "lib/buf.h"
#include "lib/dkim_sign.h"
#include "lib/log.h"

#define DKIM_KEY_MAX		(64 * 1024)	/* a PEM key file */
#define DKIM_CHUNK		(64 * 1024)
#define DKIM_CACHE_MAX		4096		/* domains with cached keys */
#define DKIM_SIG_MAX		8192		/* one DKIM-Signature value */

enum { KEY_RSA, KEY_ED25519, KEY__N };

struct dkim_key {
	char	*pem;		/* NULL: no file */
	dev_t	 dev;
	ino_t	 ino;
	off_t	 size;
	struct timespec mtime;
	int	 checked;	/* stat'ed at least once */
};

struct dkim_domain {
	char	 name[256];
	struct dkim_key key[KEY__N];
	struct dkim_domain *next;
};

struct dkim_signer {
	DKIM_LIB *lib;
	char	 keys_dir[PATH_MAX / 2];
	char	 selector[KEY__N][64];
	pthread_mutex_t mu;
	struct dkim_domain *domains;
	size_t	 ndomains;
};

static int
name_ok(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > max || s[0] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return 0;
	}
	return strstr(s, "..") == NULL;
}

struct dkim_signer *
dkim_signer_new(const char *keys_dir, const char *selector,
    const char *ed25519_selector, char *err, size_t errsz)
{
	struct dkim_signer *s;
	unsigned int flags = DKIM_LIBFLAGS_FIXCRLF;
	const char *oversign[] = { "from", NULL };

	if (!name_ok(selector, 63) || (ed25519_selector != NULL &&
	    *ed25519_selector != '\0' && !name_ok(ed25519_selector, 63))) {
		snprintf(err, errsz, "bad DKIM selector");
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if ((s->lib = dkim_init(NULL, NULL)) == NULL) {
		free(s);
		snprintf(err, errsz, "dkim_init failed");
		return NULL;
	}
	if (dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	    sizeof(flags)) != DKIM_STAT_OK ||
	    dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
	    oversign, sizeof(char **)) != DKIM_STAT_OK ||
	    /* RFC 6376 5.4.1's list (From, Subject, Date, To, Cc,
	     * Message-ID, MIME and list fields...), not Received. */
	    dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
	    dkim_should_signhdrs, sizeof(u_char **)) != DKIM_STAT_OK) {
		dkim_close(s->lib);
		free(s);
		snprintf(err, errsz, "dkim_options failed");
		return NULL;
	}
	snprintf(s->keys_dir, sizeof(s->keys_dir), "%s", keys_dir);
	snprintf(s->selector[KEY_RSA], sizeof(s->selector[0]), "%s", selector);
	if (ed25519_selector != NULL)
		snprintf(s->selector[KEY_ED25519], sizeof(s->selector[0]), "%s",
		    ed25519_selector);
	pthread_mutex_init(&s->mu, NULL);
	return s;
}

void
dkim_signer_free(struct dkim_signer **sp)
{
	struct dkim_signer *s;
	struct dkim_domain *d, *next;
	int k;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	for (d = s->domains; d != NULL; d = next) {
		next = d->next;
		for (k = 0; k < KEY__N; k++)
			free(d->key[k].pem);
		free(d);
	}
	dkim_close(s->lib);
	pthread_mutex_destroy(&s->mu);
	free(s);
	*sp = NULL;
}

/* Read a key file whole (bounded); NULL with errno on failure. */
static char *
read_key(const char *path, struct stat *st)
{
	char *p;
	ssize_t n;
	size_t got = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	if (fstat(fd, st) != 0 || st->st_size <= 0 ||
	    st->st_size > DKIM_KEY_MAX) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	if ((p = malloc((size_t)st->st_size + 1)) == NULL) {
		close(fd);
		return NULL;
	}
	while (got < (size_t)st->st_size) {
		n = read(fd, p + got, (size_t)st->st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	p[got] = '\0';
	return p;
}

/* Whether pem holds a private key of the kind selector k signs with. */
static int
key_ok(const char *pem, int k)
{
	BIO *b;
	EVP_PKEY *pk;
	int ok;

	if ((b = BIO_new_mem_buf(pem, -1)) == NULL)
		return 0;
	pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	if (pk == NULL)
		return 0;
	ok = k == KEY_RSA ? EVP_PKEY_base_id(pk) == EVP_PKEY_RSA &&
	    EVP_PKEY_get_bits(pk) >= 1024 :
	    EVP_PKEY_base_id(pk) == EVP_PKEY_ED25519;
	EVP_PKEY_free(pk);
	return ok;
}

/*
 * Refresh one key of a cached domain from its file (called locked).
 * Returns 0 (key present or absent), -1 when the file exists but cannot
 * be read.
 */
static int
key_refresh(struct dkim_signer *s, struct dkim_domain *d, int k)
{
	struct dkim_key *key = &d->key[k];
	char path[PATH_MAX];
	struct stat st;
	char *pem;

	if (s->selector[k][0] == '\0')
		return 0;
	snprintf(path, sizeof(path), "%s/%s/%s.key", s->keys_dir, d->name,
	    s->selector[k]);
	if (stat(path, &st) != 0) {
		free(key->pem);
		key->pem = NULL;
		key->checked = 1;
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	}
	if (key->pem != NULL && key->dev == st.st_dev && key->ino == st.st_ino &&
	    key->size == st.st_size &&
	    key->mtime.tv_sec == st.st_mtim.tv_sec &&
	    key->mtime.tv_nsec == st.st_mtim.tv_nsec)
		return 0;
	if ((pem = read_key(path, &st)) == NULL) {
		log_warnx("event=dkim_key_unreadable path=%s error=\"%s\"", path,
		    strerror(errno));
		return -1;
	}
	if (!key_ok(pem, k)) {
		/* Checked here, once per file: libopendkim would fail on
		 * every message (and leak on that path). */
		log_warnx("event=dkim_key_unreadable path=%s error=\"not a PEM "
		    "%s private key\"", path, k == KEY_RSA ? "RSA" : "Ed25519");
		free(pem);
		return -1;
	}
	free(key->pem);
	key->pem = pem;
	key->dev = st.st_dev;
	key->ino = st.st_ino;
	key->size = st.st_size;
	key->mtime = st.st_mtim;
	key->checked = 1;
	return 0;
}

/* Copies of the domain's current keys (NULL where none); -1 on error. */
static int
keys_get(struct dkim_signer *s, const char *domain, char *pem_r[KEY__N])
{
	struct dkim_domain *d, **pp;
	int k, rc = 0;

	pem_r[KEY_RSA] = pem_r[KEY_ED25519] = NULL;
	pthread_mutex_lock(&s->mu);
	for (pp = &s->domains; (d = *pp) != NULL; pp = &d->next)
		if (strcmp(d->name, domain) == 0)
			break;
	if (d == NULL) {
		if (s->ndomains >= DKIM_CACHE_MAX) {
			/* Drop the whole cache rather than grow without
			 * bound; it refills from the files. */
			struct dkim_domain *x, *next;

			for (x = s->domains; x != NULL; x = next) {
				next = x->next;
				for (k = 0; k < KEY__N; k++)
					free(x->key[k].pem);
				free(x);
			}
			s->domains = NULL;
			s->ndomains = 0;
		}
		if ((d = calloc(1, sizeof(*d))) == NULL) {
			pthread_mutex_unlock(&s->mu);
			return -1;
		}
		snprintf(d->name, sizeof(d->name), "%s", domain);
		d->next = s->domains;
		s->domains = d;
		s->ndomains++;
	}
	for (k = 0; k < KEY__N && rc == 0; k++) {
		if (key_refresh(s, d, k) != 0)
			rc = -1;
		else if (d->key[k].pem != NULL &&
		    (pem_r[k] = strdup(d->key[k].pem)) == NULL)
			rc = -1;
	}
	pthread_mutex_unlock(&s->mu);
	if (rc != 0) {
		free(pem_r[KEY_RSA]);
		free(pem_r[KEY_ED25519]);
		pem_r[KEY_RSA] = pem_r[KEY_ED25519] = NULL;
	}
	return rc;
}

int
dkim_signer_has_key(struct dkim_signer *s, const char *domain)
{
	char *pem[KEY__N];
	int has;

	if (!name_ok(domain, 253) || keys_get(s, domain, pem) != 0)
		return 0;
	has = pem[KEY_RSA] != NULL;
	free(pem[KEY_RSA]);
	free(pem[KEY_ED25519]);
	return has;
}

/* Feed the body bytes from memory or the file range. */
static DKIM_STAT
feed_body(DKIM *d, const struct dkim_input *in)
{
	unsigned char *chunk;
	off_t pos, end;
	ssize_t n;
	DKIM_STAT st = DKIM_STAT_OK;

	if (in->fd < 0) {
		if (in->body_len == 0)
			return DKIM_STAT_OK;
		return dkim_chunk(d, (unsigned char *)(uintptr_t)in->body,
		    in->body_len);
	}
	if ((chunk = malloc(DKIM_CHUNK)) == NULL)
		return DKIM_STAT_NORESOURCE;
	pos = in->off;
	end = in->off + in->len;
	while (pos < end && st == DKIM_STAT_OK) {
		size_t want = (size_t)(end - pos) < DKIM_CHUNK ?
		    (size_t)(end - pos) : DKIM_CHUNK;

		n = pread(in->fd, chunk, want, pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			st = DKIM_STAT_INTERNAL;
			break;
		}
		st = dkim_chunk(d, chunk, (size_t)n);
		pos += n;
	}
	free(chunk);
	return st;
}

/* One signature with one key; appends the field to out. */
static int
sign_one(struct dkim_signer *s, int k, const char *pem, const char *domain,
    const char *job_id, const struct dkim_input *in, struct buf *out,
    struct reply *r)
{
	DKIM *d;
	DKIM_STAT st;
	unsigned char *sig;
	size_t siglen, i;
	const char *what = "dkim_sign";
	char id[64];

	snprintf(id, sizeof(id), "%s", job_id != NULL ? job_id : "-");
	d = dkim_sign(s->lib, (const unsigned char *)id, NULL,
	    (dkim_sigkey_t)(uintptr_t)pem,
	    (const unsigned char *)s->selector[k],
	    (const unsigned char *)domain, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED,
	    k == KEY_RSA ? DKIM_SIGN_RSASHA256 : DKIM_SIGN_ED25519SHA256,
	    -1, &st);
	if (d == NULL)
		goto fail;
	what = "header";
	if ((st = dkim_chunk(d, (unsigned char *)(uintptr_t)in->hdr,
	    in->hdr_len)) != DKIM_STAT_OK)
		goto fail_free;
	what = "body";
	if ((st = feed_body(d, in)) != DKIM_STAT_OK ||
	    (st = dkim_chunk(d, NULL, 0)) != DKIM_STAT_OK)
		goto fail_free;
	what = "eom";
	if ((st = dkim_eom(d, NULL)) != DKIM_STAT_OK)
		goto fail_free;
	what = "getsighdr";
	if ((st = dkim_getsighdr_d(d, sizeof(DKIM_SIGNHEADER ": ") - 1, &sig,
	    &siglen)) != DKIM_STAT_OK || siglen > DKIM_SIG_MAX)
		goto fail_free;
	/* libopendkim folds with bare LF: write CRLF. */
	if (buf_puts(out, DKIM_SIGNHEADER ": ") != 0)
		goto fail_free;
	for (i = 0; i < siglen; i++) {
		if (sig[i] == '\r')
			continue;
		if ((sig[i] == '\n' ? buf_puts(out, "\r\n") :
		    buf_putc(out, (char)sig[i])) != 0)
			goto fail_free;
	}
	if (buf_puts(out, "\r\n") != 0)
		goto fail_free;
	dkim_free(d);
	return 0;
fail_free:
	log_warnx("id=%s event=dkim_sign_failed domain=%s selector=%s step=%s "
	    "error=\"%s\"", id, domain, s->selector[k], what,
	    dkim_geterror(d) != NULL ? dkim_geterror(d) : dkim_getresultstr(st));
	dkim_free(d);
	reply_set(r, 451, "4.7.0", "DKIM signing failed, try again later");
	return -1;
fail:
	log_warnx("id=%s event=dkim_sign_failed domain=%s selector=%s step=%s "
	    "error=\"%s\"", id, domain, s->selector[k], what,
	    dkim_getresultstr(st));
	reply_set(r, 451, "4.7.0", "DKIM signing failed, try again later");
	return -1;
}

int
dkim_sign_message(struct dkim_signer *s, const char *domain,
    const char *job_id, const struct dkim_input *in, struct buf *out,
    struct reply *r)
{
	char *pem[KEY__N];
	size_t mark = out->len;
	int k, n = 0;

	if (!name_ok(domain, 253))
		return 0;
	if (keys_get(s, domain, pem) != 0) {
		reply_set(r, 451, "4.7.0", "DKIM key unreadable, try again later");
		return -1;
	}
	/* The RSA signature on top: some receivers only look at the
	 * first signature, and not all of them know Ed25519. */
	for (k = 0; k < KEY__N; k++) {
		if (pem[k] == NULL)
			continue;
		if (sign_one(s, k, pem[k], domain, job_id, in, out, r) != 0) {
			n = -1;
			break;
		}
		n++;
	}
	if (n < 0) {
		out->len = mark;
		if (out->data != NULL)
			out->data[mark] = '\0';
	}
	free(pem[KEY_RSA]);
	free(pem[KEY_ED25519]);
	return n;
}
