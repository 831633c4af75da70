/*
 * directory.h - domains, mailboxes, aliases and groups (DESIGN sections 3
 * and 7), shared by the API, the relay and edgemailctl.
 *
 * The directory is four text files in one directory (conf directory_dir):
 *
 *   domains   one domain per line, with optional key=value words:
 *               example.test admin=demo@example.test archive=archive@example.test
 *   users     a Dovecot passwd-file; extra fields this code knows:
 *               userdb_quota_rule=*:storage=4G   the mailbox quota
 *               nologin                           suspended (logins refused)
 *   aliases   virtual(5)-like: "SOURCE TARGET[, TARGET...]"; a SOURCE of
 *             "@domain" is the domain's catch-all
 *   groups    distribution lists, the same syntax as aliases
 *
 * '#' starts a comment line; comments and blank lines are kept when a file
 * is rewritten.  Every address is compared in lower case.
 *
 * Writers (edgemailctl) take an exclusive flock on ".lock", load, change,
 * and save: each changed file is written to a temporary name, fsync'd and
 * renamed over the old one (keeping its owner and mode), then the
 * directory is fsync'd.  Readers never lock: a rename is atomic, so they
 * see the old file or the new one.  A running program holds a struct
 * directory, which stat()s the files at most once a second (and at once
 * when a lookup misses) and re-reads them when one changed, so changes
 * take effect without a restart.  A file that does not parse is logged and
 * the previous contents stay in use.
 *
 * Expansion: an address is looked up as an alias (with its +detail, then
 * without), then as a group, then as a mailbox, then through the domain's
 * catch-all.  Aliases and groups expand recursively; an alias that names
 * itself among its targets delivers to its own mailbox (as in Postfix).
 * Loops, expansion deeper than DIR_MAX_DEPTH, a list with more than
 * max_group_targets targets and more than DIR_MAX_TARGETS results are
 * refused with a clear reply, never dropped.  A target outside our domains
 * is a forward.
 */
#ifndef EDGEMAIL_DIRECTORY_H
#define EDGEMAIL_DIRECTORY_H

#include <stddef.h>

#include "lib/addr.h"
#include "lib/reply.h"

#define DIR_MAX_DEPTH		8	/* nested aliases/groups */
#define DIR_MAX_TARGETS		1000	/* results of one expansion */
#define DIR_DEFAULT_GROUP_MAX	32

/* The admin aliases created with a domain (RFC 2142, DMARC reports). */
extern const char *const dir_admin_aliases[];

struct dir_domain {
	char	*comment;	/* comment and blank lines before the entry */
	char	*name;		/* lower case */
	char	**words;	/* "key=value" words after the name, as written */
	size_t	 nwords;
};

struct dir_user {
	char	*comment;
	char	*name;		/* user@domain, lower case */
	char	*pass;		/* "{SCHEME}hash" */
	char	*mid[5];	/* uid gid gecos home shell, as written */
	char	**extra;	/* extra fields, one word each */
	size_t	 nextra;
};

struct dir_list {
	char	*comment;
	char	*src;		/* local@domain or @domain, lower case */
	char	**targets;	/* as written */
	size_t	 ntargets;
};

enum dir_file { DIR_DOMAINS, DIR_USERS, DIR_ALIASES, DIR_GROUPS, DIR__NFILES };

/* A parsed directory: the read-only snapshot of the API and the model
 * edgemailctl edits.  Change it only through the dir_* functions below
 * (they keep the indexes and the dirty flags right). */
struct dir;

/* File name of one part ("domains", ...). */
const char *dir_file_name(enum dir_file f);

/* Load all files under path; a missing file is empty.  NULL with
 * "file:line: why" in err when a file does not parse or cannot be read. */
struct dir *dir_load(const char *path, char *err, size_t errsz);
void	dir_free(struct dir **dp);
const char *dir_path(const struct dir *d);

/* Lookups (keys in any case; NULL when absent). */
const struct dir_domain *dir_domain_get(const struct dir *d, const char *name);
const struct dir_user *dir_user_get(const struct dir *d, const char *addr);
const struct dir_list *dir_alias_get(const struct dir *d, const char *src);
const struct dir_list *dir_group_get(const struct dir *d, const char *src);
/* A domain of ours: listed in domains, or the domain of a mailbox. */
int	dir_is_local_domain(const struct dir *d, const char *domain);
size_t	dir_count(const struct dir *d, enum dir_file f);
const struct dir_domain *dir_domain_at(const struct dir *d, size_t i);
const struct dir_user *dir_user_at(const struct dir *d, size_t i);
const struct dir_list *dir_alias_at(const struct dir *d, size_t i);
const struct dir_list *dir_group_at(const struct dir *d, size_t i);

/* Domain attributes ("admin", "archive"): the value or NULL. */
const char *dir_domain_attr(const struct dir_domain *dom, const char *key);
/* Mailbox fields. */
int	dir_user_suspended(const struct dir_user *u);
/* The storage quota as written ("4G"), or NULL when the user has none. */
const char *dir_user_quota(const struct dir_user *u);

/* ---- editing (edgemailctl) ---------------------------------------- */

/* Take (and release) the directory's exclusive write lock; creates path
 * and the lock file when missing.  -1 with err. */
int	dir_lock(const char *path, int *fd_r, char *err, size_t errsz);
void	dir_unlock(int *fdp);

/* Each returns 0, or -1 with a message in err (and changes nothing). */
int	dir_domain_add(struct dir *d, const char *name, char *err, size_t errsz);
int	dir_domain_del(struct dir *d, const char *name, char *err, size_t errsz);
/* Set (value non-empty) or remove (NULL or "") a domain attribute. */
int	dir_domain_set(struct dir *d, const char *name, const char *key,
	    const char *value, char *err, size_t errsz);
/* pass: "{SCHEME}hash"; quota: "4G" or NULL for none. */
int	dir_user_add(struct dir *d, const char *addr, const char *pass,
	    const char *quota, char *err, size_t errsz);
int	dir_user_del(struct dir *d, const char *addr, char *err, size_t errsz);
int	dir_user_set_pass(struct dir *d, const char *addr, const char *pass,
	    char *err, size_t errsz);
int	dir_user_set_quota(struct dir *d, const char *addr, const char *quota,
	    char *err, size_t errsz);
int	dir_user_set_suspended(struct dir *d, const char *addr, int on,
	    char *err, size_t errsz);
/* Add targets to an alias or group (created when new); a target already
 * there is not added twice. */
int	dir_list_add(struct dir *d, enum dir_file f, const char *src,
	    const char *const *targets, size_t n, char *err, size_t errsz);
/* Remove the whole entry (ntargets 0) or some targets; an entry left with
 * no target is removed. */
int	dir_list_del(struct dir *d, enum dir_file f, const char *src,
	    const char *const *targets, size_t n, char *err, size_t errsz);

/* Write every changed file atomically (temp + fsync + rename + directory
 * fsync).  Call with the lock held. */
int	dir_save(struct dir *d, char *err, size_t errsz);

/* ---- expansion ------------------------------------------------------ */

struct dir_expansion {
	struct reply reply;	/* OK, or why the address is refused */
	char	**mailboxes;	/* local mailboxes to deliver to, no duplicates */
	size_t	 nmailbox;
	char	**forwards;	/* targets outside our domains */
	size_t	 nforward;
	char	**notes;	/* targets skipped (unknown, suspended): for logs */
	size_t	 nnotes;
};

/*
 * Expand one recipient address.  An address outside our domains is
 * refused (550 5.1.2) when top is set (an envelope recipient), and is a
 * forward otherwise.  Unknown: 550 5.1.1; suspended mailbox: 550 5.2.1;
 * loop or too deep: 550 5.4.6; a list over max_targets: 550 5.2.4.  A
 * list whose targets are partly unknown or suspended delivers to the rest
 * (the others are in notes); refused only when nothing is left.
 * Returns 0 (see x->reply), or -1 when out of memory.
 */
int	dir_expand(const struct dir *d, const char *addr, size_t max_targets,
	    int top, struct dir_expansion *x);
void	dir_expansion_free(struct dir_expansion *x);

/* ---- the live directory of a running program ------------------------ */

struct directory;

/* Open the directory at path (may not exist yet: then it is empty until
 * it appears).  NULL with err only when a file exists and does not parse. */
struct directory *directory_open(const char *path, size_t max_group_targets,
	    char *err, size_t errsz);
void	directory_free(struct directory **dp);
/* Re-read changed files (stat at most once a second unless force).
 * Returns 1 when the directory was reloaded, 0 otherwise. */
int	directory_refresh(struct directory *dr, int force);
/* dir_is_local_domain on the live copy. */
int	directory_is_local_domain(struct directory *dr, const char *domain);
/* Whether the directory has any domain or mailbox at all.  An empty
 * directory is "not in use": recipients go to Dovecot unchanged. */
int	directory_in_use(struct directory *dr);

/*
 * The delivery plan for one message: every envelope recipient expanded,
 * the local mailboxes gathered into one LMTP recipient list without
 * duplicates, plus the archive mailbox of each domain with archiving on
 * (inbound: the domain of a delivered mailbox).
 */
struct dir_plan_rcpt {
	struct reply reply;	/* OK, or the directory's refusal */
	size_t	*lmtp;		/* indexes into plan->lmtp */
	size_t	 nlmtp;
	size_t	*fwd;		/* indexes into plan->forwards */
	size_t	 nforward;
};

struct dir_plan {
	size_t	 nrcpt;
	struct dir_plan_rcpt *rcpt;
	char	**lmtp;		/* one LMTP transaction's recipients */
	size_t	 nlmtp;
	size_t	 narchive;	/* the last narchive of lmtp are archive copies */
	char	**forwards;	/* for the relay's outbound spool (SRS) */
	size_t	 nforward;
};

/* Build the plan for rcpts (local@domain each); id is for the log lines
 * (NULL: none, a plan made ahead of the delivery).  -1 when out of
 * memory. */
int	directory_plan(struct directory *dr, const char *id,
	    const char *const *rcpts, size_t nrcpt, struct dir_plan *p);
/* The outcome for envelope recipient i from the LMTP replies (one per
 * plan->lmtp) and the forward replies (one per plan->forwards, or NULL):
 * refused by the directory, else TEMP when any of its mailboxes or
 * forwards got TEMP, else OK when any got OK, else the first PERM. */
void	dir_plan_outcome(const struct dir_plan *p, size_t i,
	    const struct reply *lmtp_replies, const struct reply *fwd_replies,
	    struct reply *out);
void	dir_plan_free(struct dir_plan *p);

#endif
