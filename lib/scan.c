/*
 * scan.c - libclamav engine life cycle (load, compile, warm, reload and
 * swap) and the whole-message scan (see scan.h).
 *
 * The engine in use is reference counted: a scan takes a reference under
 * the lock, scans without it, and drops it; a reload swaps the pointer
 * and the last scan on the old engine frees it.  The message is given to
 * libclamav as one virtual file (our prefix, then the body in memory or
 * in the spool file) through an fmap read callback: nothing is copied.
 *
 * libclamav recurses through nested archives and MIME parts; the caller's
 * thread may have a small stack (the API's connection threads have
 * 256 KiB), so scans run on a fixed set of worker threads with SCAN_STACK,
 * fed first come first served: no more scans run at once than there are
 * workers (one per CPU by default; a scan is CPU work, more at once only
 * adds memory), and no thread is created per message.
 *
 * Or the scans go to edgemail-scand (scan_new_remote, scan_remote.c), and
 * the calls below only forward.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <clamav.h>

#include "lib/conf.h"
#include "lib/dynload.h"
#include "lib/log.h"
#include "lib/scan.h"
#include "lib/scan_remote.h"

#define SCAN_STACK	(16 * 1024 * 1024)
#define SCAN_COPY_MAX	(1024 * 1024)	/* messages in memory copied flat */

struct engine {
	struct cl_engine *cl;
	unsigned sigs;
	unsigned refs;		/* scans in flight + 1 while current */
};

/* One scan, queued by scan_message() and run by a worker. */
struct scan_job {
	struct scan_job *next;
	struct engine *e;
	const struct scan_input *in;
	struct scan_result *r;
	pthread_cond_t done_cv;
	int	 done;
};

struct scanner {
	struct scan_remote *remote;	/* set: edgemail-scand scans */
	pthread_mutex_t reload_mu;	/* one compile at a time: a reload
					 * asked for (SIGHUP) while the
					 * thread's runs would make a third
					 * engine in memory */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct engine *cur;
	char	*db_dir;
	struct scan_limits lim;
	char	 why[256];	/* why cur is NULL */
	struct cl_stat dbstat;
	int	 have_stat;
	pthread_t thread;
	int	 thread_running;
	int	 stopping;

	/* The scan workers and their FIFO of jobs (guarded by mu). */
	pthread_t *workers;
	unsigned nworkers;
	struct scan_job *qhead, *qtail;
	pthread_cond_t qcv;
};

/*
 * libclamav is loaded when the first engine is (dynload.h): a process
 * whose scans go to edgemail-scand never maps it, nor the libstdc++,
 * ICU and libxml2 it brings (3.5 MiB of the API's resident memory).
 */
static struct {
	__typeof__(cl_init) *init;
	__typeof__(cl_engine_new) *engine_new;
	__typeof__(cl_load) *load;
	__typeof__(cl_engine_set_num) *engine_set_num;
	__typeof__(cl_engine_set_str) *engine_set_str;
	__typeof__(cl_engine_compile) *engine_compile;
	__typeof__(cl_engine_free) *engine_free;
	__typeof__(cl_fmap_open_memory) *fmap_open_memory;
	__typeof__(cl_fmap_open_handle) *fmap_open_handle;
	__typeof__(cl_fmap_close) *fmap_close;
	__typeof__(cl_scanmap_callback) *scanmap_callback;
	__typeof__(cl_statinidir) *statinidir;
	__typeof__(cl_statchkdir) *statchkdir;
	__typeof__(cl_statfree) *statfree;
	__typeof__(cl_strerror) *strerror;
} clam;

#define CLAM(f)	{ "cl_" #f, (void **)&clam.f }
static const struct dynsym clam_syms[] = {
	CLAM(init),
	CLAM(engine_new),
	CLAM(load),
	CLAM(engine_set_num),
	CLAM(engine_set_str),
	CLAM(engine_compile),
	CLAM(engine_free),
	CLAM(fmap_open_memory),
	CLAM(fmap_open_handle),
	CLAM(fmap_close),
	CLAM(scanmap_callback),
	CLAM(statinidir),
	CLAM(statchkdir),
	CLAM(statfree),
	CLAM(strerror),
};
#undef CLAM

static pthread_once_t clam_once = PTHREAD_ONCE_INIT;
static char clam_why[200];	/* "": loaded and initialised */

static void
clam_load_once(void)
{
	cl_error_t rc;

	if (dynload(CLAMAV_SONAME, clam_syms,
	    sizeof(clam_syms) / sizeof(clam_syms[0]), clam_why,
	    sizeof(clam_why)) != 0)
		return;
	if ((rc = clam.init(CL_INIT_DEFAULT)) != CL_SUCCESS)
		snprintf(clam_why, sizeof(clam_why), "cl_init: %s",
		    clam.strerror(rc));
}

/* 0 when libclamav can be used; -1 with why. */
static int
clam_load(char *why, size_t whysz)
{
	pthread_once(&clam_once, clam_load_once);
	if (clam_why[0] == '\0')
		return 0;
	snprintf(why, whysz, "libclamav: %s", clam_why);
	return -1;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *
scan_verdict_name(enum scan_verdict v)
{
	switch (v) {
	case SCAN_CLEAN:
		return "clean";
	case SCAN_VIRUS:
		return "virus";
	case SCAN_ENCRYPTED:
		return "encrypted";
	case SCAN_LIMITS:
		return "limits";
	case SCAN_ERROR:
		break;
	}
	return "error";
}

static void
engine_unref(struct engine *e)
{
	if (e != NULL && --e->refs == 0) {
		clam.engine_free(e->cl);
		free(e);
	}
}

static void
scan_options(struct cl_scan_options *o)
{
	memset(o, 0, sizeof(*o));
	o->general = CL_SCAN_GENERAL_HEURISTICS;
	o->parse = ~0u;			/* every parser, mail included */
	o->heuristic = CL_SCAN_HEURISTIC_ENCRYPTED_ARCHIVE |
	    CL_SCAN_HEURISTIC_EXCEEDS_MAX;
}

/* Build, compile and warm an engine; NULL with why. */
static struct engine *
engine_load(const char *dir, const struct scan_limits *lim, char *why,
    size_t whysz)
{
	static const char warm[] = "From: warm-up\r\n\r\nwarm-up\r\n";
	struct cl_scan_options opts;
	struct engine *e;
	unsigned sigs = 0;
	const char *vname = NULL;
	unsigned long scanned = 0;
	cl_fmap_t *map;
	cl_error_t rc;

	if (clam_load(why, whysz) != 0)
		return NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->cl = clam.engine_new()) == NULL) {
		free(e);
		snprintf(why, whysz, "out of memory");
		return NULL;
	}
	e->refs = 1;
	if ((rc = clam.load(dir, e->cl, &sigs, CL_DB_STDOPT)) != CL_SUCCESS) {
		snprintf(why, whysz, "signatures in %s: %s", dir, clam.strerror(rc));
		goto fail;
	}
	if (sigs == 0) {
		snprintf(why, whysz, "no signatures in %s", dir);
		goto fail;
	}
	/*
	 * libclamav cuts a ZIP member at MAX_FILESIZE and says nothing (for
	 * gzip it raises the heuristic): what lies past the cut would go
	 * unscanned, "clean".  With the file limit never below the scan
	 * limit, such a member uses up the scan budget instead, and that
	 * is Heuristics.Limits.Exceeded.MaxScanSize: refused.
	 */
	if (clam.engine_set_num(e->cl, CL_ENGINE_MAX_FILESIZE,
	    (long long)(lim->max_filesize > lim->max_scansize ?
	    lim->max_filesize : lim->max_scansize)) != CL_SUCCESS ||
	    clam.engine_set_num(e->cl, CL_ENGINE_MAX_SCANSIZE,
	    (long long)lim->max_scansize) != CL_SUCCESS ||
	    clam.engine_set_num(e->cl, CL_ENGINE_MAX_RECURSION,
	    lim->max_recursion) != CL_SUCCESS ||
	    clam.engine_set_num(e->cl, CL_ENGINE_MAX_FILES,
	    lim->max_files) != CL_SUCCESS) {
		snprintf(why, whysz, "cannot set scan limits");
		goto fail;
	}
	/* Archives and MIME parts are unpacked into files there: a tmpfs
	 * makes a small message's scan several times faster. */
	if (lim->tmp_dir[0] != '\0' && access(lim->tmp_dir, W_OK | X_OK) != 0) {
		/* The default (/dev/shm) may be missing in a container:
		 * scanning slower beats not scanning at all. */
		log_warnx("event=scan_tmp_dir_unusable dir=%s err=\"%s\" "
		    "fallback=$TMPDIR", lim->tmp_dir, strerror(errno));
	} else if (lim->tmp_dir[0] != '\0' && clam.engine_set_str(e->cl,
	    CL_ENGINE_TMPDIR, lim->tmp_dir) != CL_SUCCESS) {
		snprintf(why, whysz, "cannot use %.200s for temporary files",
		    lim->tmp_dir);
		goto fail;
	}
	if ((rc = clam.engine_compile(e->cl)) != CL_SUCCESS) {
		snprintf(why, whysz, "compile: %s", clam.strerror(rc));
		goto fail;
	}
	e->sigs = sigs;
	/* The first scan after a compile sets up lazily (~150 ms): pay it
	 * here, not on a message. */
	scan_options(&opts);
	if ((map = clam.fmap_open_memory(warm, sizeof(warm) - 1)) != NULL) {
		(void)clam.scanmap_callback(map, "warm-up", &vname, &scanned,
		    e->cl, &opts, NULL);
		clam.fmap_close(map);
	}
	return e;
fail:
	clam.engine_free(e->cl);
	free(e);
	return NULL;
}

/* Load now; swap in on success.  Called without mu held. */
static int
reload_locked_out(struct scanner *s)
{
	char why[256];
	struct engine *e, *old;
	struct cl_stat st;
	int have = 0;
	double t0;

	pthread_mutex_lock(&s->reload_mu);
	t0 = now_ms();
	memset(&st, 0, sizeof(st));
	if (clam_load(why, sizeof(why)) == 0 &&
	    clam.statinidir(s->db_dir, &st) == CL_SUCCESS)
		have = 1;
	e = engine_load(s->db_dir, &s->lim, why, sizeof(why));
	pthread_mutex_lock(&s->mu);
	if (e == NULL) {
		if (s->cur == NULL)
			snprintf(s->why, sizeof(s->why), "%s", why);
		pthread_mutex_unlock(&s->mu);
		if (have)
			clam.statfree(&st);
		log_warnx("event=scanner_load_failed db=%s why=\"%s\"",
		    s->db_dir, why);
		pthread_mutex_unlock(&s->reload_mu);
		return -1;
	}
	old = s->cur;
	s->cur = e;
	s->why[0] = '\0';
	if (s->have_stat)
		clam.statfree(&s->dbstat);
	s->dbstat = st;
	s->have_stat = have;
	engine_unref(old);
	pthread_mutex_unlock(&s->mu);
	log_info("event=scanner_loaded db=%s signatures=%u ms=%.0f",
	    s->db_dir, e->sigs, now_ms() - t0);
	pthread_mutex_unlock(&s->reload_mu);
	return 0;
}

int
scan_reload(struct scanner *s)
{
	if (s->remote != NULL)
		return 0;	/* edgemail-scand reloads its own */
	return reload_locked_out(s);
}

static void *
reload_thread(void *arg)
{
	struct scanner *s = arg;
	struct timespec ts;
	int changed;

	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += s->lim.reload_interval;
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		if (s->stopping)
			break;
		changed = s->cur == NULL || !s->have_stat ||
		    clam.statchkdir(&s->dbstat) == 1;
		if (!changed)
			continue;
		pthread_mutex_unlock(&s->mu);
		(void)reload_locked_out(s);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void *scan_job_run(void *arg);

static void *
scan_worker(void *arg)
{
	struct scanner *s = arg;
	struct scan_job *job;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->qhead == NULL && !s->stopping)
			pthread_cond_wait(&s->qcv, &s->mu);
		if (s->qhead == NULL)
			break;
		job = s->qhead;
		if ((s->qhead = job->next) == NULL)
			s->qtail = NULL;
		pthread_mutex_unlock(&s->mu);
		scan_job_run(job);
		pthread_mutex_lock(&s->mu);
		job->done = 1;
		pthread_cond_signal(&job->done_cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void
start_workers(struct scanner *s)
{
	pthread_attr_t attr;
	long n = s->lim.threads;
	unsigned i;

	if (n <= 0 && (n = sysconf(_SC_NPROCESSORS_ONLN)) <= 0)
		n = 1;
	if (n > 64)
		n = 64;
	if ((s->workers = calloc((size_t)n, sizeof(*s->workers))) == NULL ||
	    pthread_attr_init(&attr) != 0)
		return;
	(void)pthread_attr_setstacksize(&attr, SCAN_STACK);
	for (i = 0; i < (unsigned)n; i++)
		if (pthread_create(&s->workers[i], &attr, scan_worker, s) == 0)
			s->nworkers++;
	pthread_attr_destroy(&attr);
}

int
scan_limits_from_conf(struct conf *c, struct scan_limits *lim, char *err,
    size_t errsz)
{
	memset(lim, 0, sizeof(*lim));
	if (conf_get_size(c, "scan_max_filesize", &lim->max_filesize, err,
	    errsz) != 0 ||
	    conf_get_size(c, "scan_max_scansize", &lim->max_scansize, err,
	    errsz) != 0 ||
	    conf_get_ll(c, "scan_max_recursion", 1, 64, &lim->max_recursion,
	    err, errsz) != 0 ||
	    conf_get_ll(c, "scan_max_files", 1, 1000000, &lim->max_files, err,
	    errsz) != 0 ||
	    conf_get_duration(c, "scan_reload_interval", &lim->reload_interval,
	    err, errsz) != 0 ||
	    conf_get_ll(c, "scan_threads", 0, 64, &lim->threads, err,
	    errsz) != 0)
		return -1;
	snprintf(lim->tmp_dir, sizeof(lim->tmp_dir), "%s",
	    conf_get(c, "scan_tmp_dir"));
	return 0;
}

struct scanner *
scan_new(const char *db_dir, const struct scan_limits *lim)
{
	struct scanner *s;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->db_dir = strdup(db_dir)) == NULL) {
		free(s);
		return NULL;
	}
	s->lim = *lim;
	pthread_mutex_init(&s->reload_mu, NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_cond_init(&s->qcv, NULL);
	snprintf(s->why, sizeof(s->why), "not loaded");
	start_workers(s);
	(void)reload_locked_out(s);
	if (lim->reload_interval > 0 &&
	    pthread_create(&s->thread, NULL, reload_thread, s) == 0)
		s->thread_running = 1;
	return s;
}

struct scanner *
scan_from_conf(struct conf *c, char *err, size_t errsz)
{
	struct scan_limits lim;
	const char *sock = conf_get(c, "scan_socket");
	struct scanner *s;

	/* The limits are checked in either case: a bad key is an error
	 * whether this process or scand applies it. */
	if (scan_limits_from_conf(c, &lim, err, errsz) != 0)
		return NULL;
	s = *sock != '\0' ? scan_new_remote(sock) :
	    scan_new(conf_get(c, "clamav_db_dir"), &lim);
	if (s == NULL)
		snprintf(err, errsz, "scanner: out of memory%s",
		    *sock != '\0' ? " or scan_socket too long" : "");
	return s;
}

struct scanner *
scan_new_remote(const char *socket_path)
{
	struct scanner *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((s->remote = scan_remote_new(socket_path)) == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void
scan_free(struct scanner **sp)
{
	struct scanner *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	if (s->remote != NULL) {
		scan_remote_free(&s->remote);
		free(s);
		*sp = NULL;
		return;
	}
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	pthread_cond_signal(&s->cv);
	pthread_cond_broadcast(&s->qcv);
	pthread_mutex_unlock(&s->mu);
	if (s->thread_running)
		pthread_join(s->thread, NULL);
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	free(s->workers);
	pthread_cond_destroy(&s->qcv);
	engine_unref(s->cur);
	if (s->have_stat)
		clam.statfree(&s->dbstat);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->reload_mu);
	free(s->db_dir);
	free(s);
	*sp = NULL;
}

int
scan_ready(struct scanner *s, char *why, size_t whysz)
{
	unsigned sigs;
	int ok;

	if (s->remote != NULL)
		return scan_remote_ready(s->remote, why, whysz, &sigs);

	pthread_mutex_lock(&s->mu);
	ok = s->cur != NULL;
	if (!ok)
		snprintf(why, whysz, "%s", s->why);
	pthread_mutex_unlock(&s->mu);
	return ok;
}

unsigned
scan_signatures(struct scanner *s)
{
	char why[200];
	unsigned n;

	if (s->remote != NULL)
		return scan_remote_ready(s->remote, why, sizeof(why), &n) ? n : 0;
	pthread_mutex_lock(&s->mu);
	n = s->cur ? s->cur->sigs : 0;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* fmap read callback: the prefix, then the body. */
static off_t
read_cb(void *handle, void *buf, size_t count, off_t offset)
{
	const struct scan_input *in = handle;
	size_t done = 0, total, pl = in->prefix_len;
	ssize_t n;

	total = pl + (in->fd >= 0 ? (size_t)in->len : in->mem_len);
	if (offset < 0 || (size_t)offset >= total)
		return 0;
	if (count > total - (size_t)offset)
		count = total - (size_t)offset;
	while (done < count) {
		size_t at = (size_t)offset + done;

		if (at < pl) {
			size_t k = pl - at < count - done ? pl - at : count - done;

			memcpy((char *)buf + done, in->prefix + at, k);
			done += k;
		} else if (in->fd < 0) {
			size_t k = count - done;

			memcpy((char *)buf + done, in->mem + (at - pl), k);
			done += k;
		} else {
			n = pread(in->fd, (char *)buf + done, count - done,
			    in->off + (off_t)(at - pl));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;
			if (n == 0)
				break;
			done += (size_t)n;
		}
	}
	return (off_t)done;
}

static enum scan_verdict
classify(const char *name)
{
	if (strncmp(name, "Heuristics.Encrypted.", 21) == 0)
		return SCAN_ENCRYPTED;
	if (strncmp(name, "Heuristics.Limits.Exceeded", 26) == 0) {
		/* Too slow is not proof of a bomb: the host may be busy. */
		if (strstr(name, "MaxScanTime") != NULL)
			return SCAN_ERROR;
		return SCAN_LIMITS;
	}
	return SCAN_VIRUS;
}


static void *
scan_job_run(void *arg)
{
	struct scan_job *job = arg;
	const struct scan_input *in = job->in;
	struct scan_result *r = job->r;
	struct cl_scan_options opts;
	const char *vname = NULL;
	unsigned long scanned = 0;
	cl_fmap_t *map;
	cl_error_t rc;
	size_t total;
	char *flat = NULL;

	total = in->prefix_len + (in->fd >= 0 ? (size_t)in->len : in->mem_len);
	scan_options(&opts);
	/* A message in memory is copied behind its prefix and mapped as
	 * it is: a handle map costs an anonymous mmap and munmap per scan,
	 * and each munmap interrupts every CPU of a threaded process (a
	 * TLB shootdown): 4-7 % of the API's time at 10 KB c32. */
	if (in->fd < 0 && total <= SCAN_COPY_MAX &&
	    (flat = malloc(total ? total : 1)) != NULL) {
		memcpy(flat, in->prefix, in->prefix_len);
		memcpy(flat + in->prefix_len, in->mem, in->mem_len);
		map = clam.fmap_open_memory(flat, total);
	} else
		map = clam.fmap_open_handle((void *)(uintptr_t)in, 0, total,
		    read_cb, 1);
	if (map == NULL) {
		free(flat);
		r->verdict = SCAN_ERROR;
		snprintf(r->name, sizeof(r->name), "out of memory");
		return NULL;
	}
	rc = clam.scanmap_callback(map, "message.eml", &vname, &scanned,
	    job->e->cl, &opts, NULL);
	clam.fmap_close(map);
	free(flat);
	if (rc == CL_VIRUS && vname == NULL) {
		/* What libclamav says, nameless, when the message itself is
		 * over the file limit: no virus, a limit. */
		snprintf(r->name, sizeof(r->name), "Heuristics.Limits.Exceeded");
		r->verdict = SCAN_LIMITS;
	} else if (rc == CL_VIRUS) {
		snprintf(r->name, sizeof(r->name), "%s", vname);
		r->verdict = classify(r->name);
	} else if (rc == CL_CLEAN)
		r->verdict = SCAN_CLEAN;
	else {
		r->verdict = SCAN_ERROR;
		snprintf(r->name, sizeof(r->name), "%s", clam.strerror(rc));
	}
	return NULL;
}

void
scan_message(struct scanner *s, const struct scan_input *in,
    struct scan_result *r)
{
	struct scan_job job;
	double t0 = now_ms();

	memset(r, 0, sizeof(*r));
	if (s->remote != NULL) {
		scan_remote_message(s->remote, in, r);
		r->ms = now_ms() - t0;
		return;
	}
	memset(&job, 0, sizeof(job));
	pthread_mutex_lock(&s->mu);
	if ((job.e = s->cur) != NULL)
		job.e->refs++;
	else
		snprintf(r->name, sizeof(r->name), "scanner not ready: %.100s",
		    s->why);
	pthread_mutex_unlock(&s->mu);
	if (job.e == NULL) {
		r->verdict = SCAN_ERROR;
		return;
	}
	job.in = in;
	job.r = r;
	pthread_cond_init(&job.done_cv, NULL);
	pthread_mutex_lock(&s->mu);
	if (s->nworkers == 0) {
		r->verdict = SCAN_ERROR;
		snprintf(r->name, sizeof(r->name), "no scan threads");
	} else {
		/* job lives on our stack: a worker dequeues it before it
		 * runs it, and we return only once it is done. */
		if (s->qtail != NULL)
			s->qtail->next = &job;	/* cppcheck-suppress autoVariables */
		else
			s->qhead = &job;	/* cppcheck-suppress autoVariables */
		s->qtail = &job;	/* cppcheck-suppress autoVariables */
		pthread_cond_signal(&s->qcv);
		while (!job.done)
			pthread_cond_wait(&job.done_cv, &s->mu);
	}
	engine_unref(job.e);
	pthread_mutex_unlock(&s->mu);
	pthread_cond_destroy(&job.done_cv);
	r->ms = now_ms() - t0;
}

void
scan_reply(const struct scan_result *r, struct reply *rep)
{
	switch (r->verdict) {
	case SCAN_CLEAN:
		reply_set(rep, 250, "2.0.0", "clean");
		break;
	case SCAN_VIRUS:
		reply_set(rep, 554, "5.7.1", "virus found: %s", r->name);
		break;
	case SCAN_ENCRYPTED:
		reply_set(rep, 554, "5.7.1", "encrypted archive refused");
		break;
	case SCAN_LIMITS:
		reply_set(rep, 554, "5.7.1", "archive exceeds the scan limits "
		    "(%s)", r->name);
		break;
	case SCAN_ERROR:
		reply_set(rep, 451, "4.3.0", "virus scan not possible now: %s",
		    r->name);
		break;
	}
}
