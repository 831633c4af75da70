/*
 * dkim_sign.c - DKIM signatures, rsa-sha256 and ed25519-sha256, with
 * relaxed/relaxed canonicalisation (RFC 6376 3.4, RFC 8463), on OpenSSL
 * (see dkim_sign.h).
 *
 * Why not libopendkim here (it still verifies inbound mail, see
 * dkimverify.c): its signing API takes the key as PEM text and parses it
 * again for every signature, which with OpenSSL 3's decoders costs about
 * as much as the RSA signature itself (0.9 ms against 1.1 ms on the
 * bench machine); and 2.11 leaks the key of every ed25519 signature.
 * Here a key is parsed once, when its file is first needed or changes,
 * and each signature takes a reference to the parsed key.
 *
 * The key cache maps a domain to its parsed keys and the identity of
 * their files (inode, size, mtime), so that a new key written by
 * `edgemailctl dkim keygen` is picked up at the next message.
 *
 * Header fields signed: those of RFC 6376 5.4.1's list that the message
 * has (From, Subject, Date, To, Cc, Reply-To, Message-ID and the MIME,
 * Resent-, reference and List- fields; not Received), each instance, plus
 * From once more (over-signed: a From added later breaks the signature).
 * Instances are picked as a verifier picks them (RFC 6376 5.4.2: the
 * last unused instance of the name), so h= and the hashed data agree.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lib/buf.h"
#include "lib/dkim_sign.h"
#include "lib/log.h"

#define DKIM_KEY_MAX		(64 * 1024)	/* a PEM key file */
#define DKIM_CHUNK		(64 * 1024)
#define DKIM_CACHE_MAX		4096		/* domains with cached keys */
#define DKIM_HDR_MAX		(1024 * 1024)	/* canonical signed fields */
#define DKIM_FOLD		72		/* fold h= and b= near here */

enum { KEY_RSA, KEY_ED25519, KEY__N };

struct dkim_key {
	EVP_PKEY *pk;		/* NULL: no file */
	dev_t	 dev;
	ino_t	 ino;
	off_t	 size;
	struct timespec mtime;
};

struct dkim_domain {
	char	 name[256];
	struct dkim_key key[KEY__N];
	struct dkim_domain *next;
};

struct dkim_signer {
	char	 keys_dir[PATH_MAX / 2];
	char	 selector[KEY__N][64];
	pthread_mutex_t mu;
	struct dkim_domain *domains;
	size_t	 ndomains;
};

/* RFC 6376 5.4.1: the fields a signature should cover (and From). */
static const char *const sign_fields[] = {
	"from", "reply-to", "subject", "date", "to", "cc", "message-id",
	"mime-version", "content-type", "content-transfer-encoding",
	"content-id", "content-description", "resent-date", "resent-from",
	"resent-sender", "resent-to", "resent-cc", "resent-message-id",
	"in-reply-to", "references", "list-id", "list-help",
	"list-unsubscribe", "list-subscribe", "list-post", "list-owner",
	"list-archive", NULL
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

	if (!name_ok(selector, 63) || (ed25519_selector != NULL &&
	    *ed25519_selector != '\0' && !name_ok(ed25519_selector, 63))) {
		snprintf(err, errsz, "bad DKIM selector");
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errsz, "out of memory");
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

static void
domain_free(struct dkim_domain *d)
{
	int k;

	for (k = 0; k < KEY__N; k++)
		EVP_PKEY_free(d->key[k].pk);
	free(d);
}

void
dkim_signer_free(struct dkim_signer **sp)
{
	struct dkim_signer *s;
	struct dkim_domain *d, *next;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	for (d = s->domains; d != NULL; d = next) {
		next = d->next;
		domain_free(d);
	}
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

/* The private key in pem if it is of the kind selector k signs with;
 * NULL otherwise. */
static EVP_PKEY *
key_parse(const char *pem, int k)
{
	BIO *b;
	EVP_PKEY *pk;
	int ok;

	if ((b = BIO_new_mem_buf(pem, -1)) == NULL)
		return NULL;
	pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	if (pk == NULL)
		return NULL;
	ok = k == KEY_RSA ? EVP_PKEY_base_id(pk) == EVP_PKEY_RSA &&
	    EVP_PKEY_get_bits(pk) >= 1024 :
	    EVP_PKEY_base_id(pk) == EVP_PKEY_ED25519;
	if (!ok) {
		EVP_PKEY_free(pk);
		return NULL;
	}
	return pk;
}

/*
 * Refresh one key of a cached domain from its file (called locked).
 * Returns 0 (key present or absent), -1 when the file exists but cannot
 * be read or is not a key of the right kind.
 */
static int
key_refresh(struct dkim_signer *s, struct dkim_domain *d, int k)
{
	struct dkim_key *key = &d->key[k];
	char path[PATH_MAX];
	struct stat st;
	EVP_PKEY *pk;
	char *pem;

	if (s->selector[k][0] == '\0')
		return 0;
	snprintf(path, sizeof(path), "%s/%s/%s.key", s->keys_dir, d->name,
	    s->selector[k]);
	if (stat(path, &st) != 0) {
		EVP_PKEY_free(key->pk);
		key->pk = NULL;
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	}
	if (key->pk != NULL && key->dev == st.st_dev && key->ino == st.st_ino &&
	    key->size == st.st_size &&
	    key->mtime.tv_sec == st.st_mtim.tv_sec &&
	    key->mtime.tv_nsec == st.st_mtim.tv_nsec)
		return 0;
	if ((pem = read_key(path, &st)) == NULL) {
		log_warnx("event=dkim_key_unreadable path=%s error=\"%s\"", path,
		    strerror(errno));
		return -1;
	}
	pk = key_parse(pem, k);
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	if (pk == NULL) {
		log_warnx("event=dkim_key_unreadable path=%s error=\"not a PEM "
		    "%s private key\"", path, k == KEY_RSA ? "RSA" : "Ed25519");
		return -1;
	}
	EVP_PKEY_free(key->pk);
	key->pk = pk;
	key->dev = st.st_dev;
	key->ino = st.st_ino;
	key->size = st.st_size;
	key->mtime = st.st_mtim;
	return 0;
}

/* References to the domain's current keys (NULL where none), to be
 * released with EVP_PKEY_free; -1 on error. */
static int
keys_get(struct dkim_signer *s, const char *domain, EVP_PKEY *pk_r[KEY__N])
{
	struct dkim_domain *d;
	int k, rc = 0;

	pk_r[KEY_RSA] = pk_r[KEY_ED25519] = NULL;
	pthread_mutex_lock(&s->mu);
	for (d = s->domains; d != NULL; d = d->next)
		if (strcmp(d->name, domain) == 0)
			break;
	if (d == NULL) {
		if (s->ndomains >= DKIM_CACHE_MAX) {
			/* Drop the whole cache rather than grow without
			 * bound; it refills from the files. */
			struct dkim_domain *x, *next;

			for (x = s->domains; x != NULL; x = next) {
				next = x->next;
				domain_free(x);
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
		else if (d->key[k].pk != NULL) {
			if (EVP_PKEY_up_ref(d->key[k].pk) == 1)
				pk_r[k] = d->key[k].pk;
			else
				rc = -1;
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (rc != 0) {
		EVP_PKEY_free(pk_r[KEY_RSA]);
		EVP_PKEY_free(pk_r[KEY_ED25519]);
		pk_r[KEY_RSA] = pk_r[KEY_ED25519] = NULL;
	}
	return rc;
}

int
dkim_signer_has_key(struct dkim_signer *s, const char *domain)
{
	EVP_PKEY *pk[KEY__N];
	int has;

	if (!name_ok(domain, 253) || keys_get(s, domain, pk) != 0)
		return 0;
	has = pk[KEY_RSA] != NULL;
	EVP_PKEY_free(pk[KEY_RSA]);
	EVP_PKEY_free(pk[KEY_ED25519]);
	return has;
}

/* ---- body: relaxed canonicalisation (RFC 6376 3.4.4) into SHA-256 ---- */

struct body_canon {
	EVP_MD_CTX *md;
	unsigned char out[4096];
	size_t	 n;
	size_t	 crlfs;		/* line ends not written yet */
	int	 wsp;		/* whitespace not written yet */
	int	 cr;		/* the last byte was CR */
	int	 any;		/* something written */
	int	 err;
};

static void
bc_put(struct body_canon *bc, const void *p, size_t n)
{
	if (bc->n + n > sizeof(bc->out)) {
		if (EVP_DigestUpdate(bc->md, bc->out, bc->n) != 1)
			bc->err = 1;
		bc->n = 0;
		if (n > sizeof(bc->out)) {
			if (EVP_DigestUpdate(bc->md, p, n) != 1)
				bc->err = 1;
			return;
		}
	}
	memcpy(bc->out + bc->n, p, n);
	bc->n += n;
}

/* A byte of line content: first the line ends and the one space that
 * stand before it. */
static void
bc_content(struct body_canon *bc, unsigned char c)
{
	for (; bc->crlfs > 0; bc->crlfs--)
		bc_put(bc, "\r\n", 2);
	if (bc->wsp)
		bc_put(bc, " ", 1);
	bc->wsp = 0;
	bc_put(bc, &c, 1);
	bc->any = 1;
}

/*
 * Whitespace runs become one space, whitespace at the end of a line goes,
 * and so do empty lines at the end of the body: a line end is written
 * only when content follows it, and the body ends with exactly one CRLF
 * (nothing at all when it is empty).  A bare LF ends a line too.
 */
static void
bc_feed(struct body_canon *bc, const unsigned char *p, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		unsigned char c = p[i];

		/* Plain text with nothing pending goes out as one run. */
		if (!bc->cr && bc->crlfs == 0 && !bc->wsp && c != '\r' &&
		    c != '\n' && c != ' ' && c != '\t') {
			for (j = i + 1; j < n && p[j] != '\r' && p[j] != '\n' &&
			    p[j] != ' ' && p[j] != '\t'; j++)
				;
			bc_put(bc, p + i, j - i);
			bc->any = 1;
			i = j - 1;
			continue;
		}
		if (bc->cr && c != '\n')
			bc_content(bc, '\r');	/* a bare CR is content */
		bc->cr = 0;
		switch (c) {
		case '\r':
			bc->cr = 1;
			break;
		case '\n':
			bc->wsp = 0;
			bc->crlfs++;
			break;
		case ' ':
		case '\t':
			bc->wsp = 1;
			break;
		default:
			bc_content(bc, c);
			break;
		}
	}
}

static void
bc_finish(struct body_canon *bc, unsigned char hash[32])
{
	unsigned int hl = 0;

	if (bc->cr)
		bc_content(bc, '\r');
	if (bc->any)
		bc_put(bc, "\r\n", 2);
	if (EVP_DigestUpdate(bc->md, bc->out, bc->n) != 1 ||
	    EVP_DigestFinal_ex(bc->md, hash, &hl) != 1 || hl != 32)
		bc->err = 1;
}

/* SHA-256 of the canonical body, from memory or the file range. */
static int
body_hash(const struct dkim_input *in, unsigned char hash[32])
{
	struct body_canon bc;
	unsigned char *chunk = NULL;
	off_t pos, end;
	ssize_t n;

	memset(&bc, 0, sizeof(bc));
	if ((bc.md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(bc.md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(bc.md);
		return -1;
	}
	if (in->fd < 0)
		bc_feed(&bc, (const unsigned char *)in->body, in->body_len);
	else if ((chunk = malloc(DKIM_CHUNK)) == NULL)
		bc.err = 1;
	else {
		pos = in->off;
		end = in->off + in->len;
		while (pos < end) {
			size_t want = (size_t)(end - pos) < DKIM_CHUNK ?
			    (size_t)(end - pos) : DKIM_CHUNK;

			n = pread(in->fd, chunk, want, pos);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				bc.err = 1;
				break;
			}
			bc_feed(&bc, chunk, (size_t)n);
			pos += n;
		}
		free(chunk);
	}
	bc_finish(&bc, hash);
	EVP_MD_CTX_free(bc.md);
	return bc.err ? -1 : 0;
}

/* ---- header: relaxed canonicalisation (RFC 6376 3.4.2) ---------------- */

/* One field (its bytes up to and with the CRLF that ends it). */
struct field {
	const char *p;
	size_t	 len;
	size_t	 namelen;	/* before the colon, trailing WSP excluded */
	int	 used;
};

/* "name:value\r\n": the name lower-cased, the folds removed, whitespace
 * runs made one space, none around the colon or at the end. */
static int
canon_field(struct buf *out, const char *p, size_t len)
{
	const char *colon = memchr(p, ':', len);
	size_t i, nl;
	int pending = 0, started = 0;

	if (colon == NULL)
		return 0;		/* not a field: never selected */
	nl = (size_t)(colon - p);
	while (nl > 0 && (p[nl - 1] == ' ' || p[nl - 1] == '\t'))
		nl--;
	for (i = 0; i < nl; i++)
		if (buf_putc(out, (char)(p[i] >= 'A' && p[i] <= 'Z' ?
		    p[i] + ('a' - 'A') : p[i])) != 0)
			return -1;
	if (buf_putc(out, ':') != 0)
		return -1;
	for (i = (size_t)(colon - p) + 1; i < len; i++) {
		char c = p[i];

		if (c == '\r' || c == '\n')
			continue;
		if (c == ' ' || c == '\t') {
			pending = 1;
			continue;
		}
		if ((pending && started && buf_putc(out, ' ') != 0) ||
		    buf_putc(out, c) != 0)
			return -1;
		pending = 0;
		started = 1;
	}
	return buf_puts(out, "\r\n");
}

/* Split the header section into fields; -1 when out of memory. */
static int
split_fields(const char *h, size_t len, struct field **fr, size_t *nr)
{
	struct field *f = NULL, *nf;
	size_t n = 0, cap = 0, i = 0, j;

	while (i < len) {
		const char *colon;

		j = i;
		/* The field runs to a line end not followed by WSP. */
		for (;;) {
			const char *lf = memchr(h + j, '\n', len - j);

			j = lf != NULL ? (size_t)(lf - h) + 1 : len;
			if (j >= len || (h[j] != ' ' && h[j] != '\t'))
				break;
		}
		if (j - i <= 2 && (h[i] == '\r' || h[i] == '\n'))
			break;		/* the blank line */
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			if ((nf = realloc(f, cap * sizeof(*f))) == NULL) {
				free(f);
				return -1;
			}
			f = nf;
		}
		f[n].p = h + i;
		f[n].len = j - i;
		f[n].used = 0;
		colon = memchr(h + i, ':', j - i);
		f[n].namelen = colon != NULL ? (size_t)(colon - (h + i)) : 0;
		while (f[n].namelen > 0 && (h[i + f[n].namelen - 1] == ' ' ||
		    h[i + f[n].namelen - 1] == '\t'))
			f[n].namelen--;
		n++;
		i = j;
	}
	*fr = f;
	*nr = n;
	return 0;
}

static int
is_signed_field(const struct field *f)
{
	size_t k;

	for (k = 0; sign_fields[k] != NULL; k++)
		if (strlen(sign_fields[k]) == f->namelen &&
		    strncasecmp(f->p, sign_fields[k], f->namelen) == 0)
			return 1;
	return 0;
}

/*
 * h= (into hlist) and the canonical signed fields (into canon): the
 * fields of sign_fields top to bottom, then From once more; each name
 * of h= hashes the last instance not hashed yet, as the verifier reads it.
 */
static int
signed_fields(const struct dkim_input *in, struct buf *hlist,
    struct buf *canon)
{
	struct field *f;
	size_t n, i, j, line = 0;
	int rc = -1;

	if (split_fields(in->hdr, in->hdr_len, &f, &n) != 0)
		return -1;
	for (i = 0; i <= n; i++) {
		const char *name = i < n ? f[i].p : "From";
		size_t nl = i < n ? f[i].namelen : 4;

		if (i < n && !is_signed_field(&f[i]))
			continue;
		if (hlist->len > 0) {
			/* Fold before a colon (FWS is allowed there). */
			if (line + nl + 1 > DKIM_FOLD) {
				if (buf_puts(hlist, "\r\n\t") != 0)
					goto out;
				line = 0;
			}
			if (buf_putc(hlist, ':') != 0)
				goto out;
			line++;
		}
		if (buf_append(hlist, name, nl) != 0)
			goto out;
		line += nl;
		/* The last unused instance of this name. */
		for (j = n; j-- > 0;)
			if (!f[j].used && f[j].namelen == nl &&
			    strncasecmp(f[j].p, name, nl) == 0)
				break;
		if (j != (size_t)-1 && j < n) {
			f[j].used = 1;
			if (canon_field(canon, f[j].p, f[j].len) != 0)
				goto out;
		}
	}
	rc = 0;
out:
	free(f);
	return rc;
}

/* ---- signing -------------------------------------------------------- */

/* The signature of data with key k: RSASSA-PKCS1-v1_5 over SHA-256, or
 * Ed25519 over the SHA-256 of data (RFC 8463 3). */
static int
sign_data(EVP_PKEY *pk, int k, const struct buf *data, unsigned char *sig,
    size_t *siglen)
{
	EVP_MD_CTX *ctx;
	unsigned char h[32];
	unsigned int hl = 0;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (k == KEY_RSA)
		ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1 &&
		    EVP_DigestSign(ctx, sig, siglen,
		    (const unsigned char *)data->data, data->len) == 1;
	else
		ok = EVP_Digest(data->data, data->len, h, &hl, EVP_sha256(),
		    NULL) == 1 &&
		    EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) == 1 &&
		    EVP_DigestSign(ctx, sig, siglen, h, hl) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* One signature with key k; appends the field to out. */
static int
sign_one(struct dkim_signer *s, int k, EVP_PKEY *pk, const char *domain,
    const unsigned char bh[32], const struct buf *hlist,
    const struct buf *canon, struct buf *out)
{
	struct buf field, data;
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	int rc = -1;

	if ((size_t)EVP_PKEY_get_size(pk) > sizeof(sig))
		return -1;
	buf_init(&field, DKIM_HDR_MAX);
	buf_init(&data, DKIM_HDR_MAX + DKIM_HDR_MAX);
	if (buf_printf(&field, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;"
	    " d=%s; s=%s;\r\n\tt=%lld; bh=", k == KEY_RSA ? "rsa-sha256" :
	    "ed25519-sha256", domain, s->selector[k], (long long)time(NULL)) != 0 ||
	    buf_put_base64(&field, bh, 32, 64) != 0 ||
	    buf_puts(&field, ";\r\n\th=") != 0 ||
	    buf_append(&field, hlist->data, hlist->len) != 0 ||
	    buf_puts(&field, ";\r\n\tb=") != 0)
		goto out;
	/* The signed data: the fields, then this one with b= empty and
	 * without its line end. */
	if (buf_append(&data, canon->data, canon->len) != 0 ||
	    canon_field(&data, field.data, field.len) != 0)
		goto out;
	data.len -= 2;
	if (sign_data(pk, k, &data, sig, &siglen) != 0 ||
	    buf_put_base64(&field, sig, siglen, DKIM_FOLD - 8) != 0 ||
	    buf_puts(&field, "\r\n") != 0 ||
	    buf_append(out, field.data, field.len) != 0)
		goto out;
	rc = 0;
out:
	buf_free(&field);
	buf_free(&data);
	return rc;
}

int
dkim_sign_message(struct dkim_signer *s, const char *domain,
    const char *job_id, const struct dkim_input *in, struct buf *out,
    struct reply *r)
{
	EVP_PKEY *pk[KEY__N];
	unsigned char bh[32];
	struct buf hlist, canon;
	size_t mark = out->len;
	const char *step = "body";
	int k, n = 0;

	if (!name_ok(domain, 253))
		return 0;
	if (keys_get(s, domain, pk) != 0) {
		reply_set(r, 451, "4.7.0", "DKIM key unreadable, try again later");
		return -1;
	}
	if (pk[KEY_RSA] == NULL && pk[KEY_ED25519] == NULL)
		return 0;
	buf_init(&hlist, DKIM_HDR_MAX);
	buf_init(&canon, DKIM_HDR_MAX);
	if (body_hash(in, bh) != 0)
		n = -1;
	else if ((step = "header", signed_fields(in, &hlist, &canon)) != 0)
		n = -1;
	/* The RSA signature on top: some receivers only look at the
	 * first signature, and not all of them know Ed25519. */
	for (k = 0; k < KEY__N && n >= 0; k++) {
		if (pk[k] == NULL)
			continue;
		step = k == KEY_RSA ? "rsa" : "ed25519";
		if (sign_one(s, k, pk[k], domain, bh, &hlist, &canon, out) != 0)
			n = -1;
		else
			n++;
	}
	if (n < 0) {
		unsigned long e = ERR_get_error();

		log_warnx("id=%s event=dkim_sign_failed domain=%s step=%s "
		    "error=\"%s\"", job_id != NULL ? job_id : "-", domain, step,
		    e != 0 ? ERR_reason_error_string(e) : "out of memory");
		ERR_clear_error();
		out->len = mark;
		if (out->data != NULL)
			out->data[mark] = '\0';
		reply_set(r, 451, "4.7.0", "DKIM signing failed, try again later");
	}
	buf_free(&hlist);
	buf_free(&canon);
	EVP_PKEY_free(pk[KEY_RSA]);
	EVP_PKEY_free(pk[KEY_ED25519]);
	return n;
}
