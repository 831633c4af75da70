/*
 * spool.h - the durable queue: one file per message (DESIGN section 3).
 *
 * A message file holds a small text envelope, the message itself (CRLF
 * line ends) and, after it, an append-only journal of per-recipient
 * outcomes.  spool_commit() writes the file under tmp/, fsyncs it, links
 * it into queue/ and fsyncs the directory: only after it returns 0 may a
 * program answer 2xx/250.  Journal records are appended and fdatasync'ed;
 * reading the file replays them, so a crash at any instant leaves either
 * no file (never acknowledged) or a complete one.  At open, half-written
 * files under tmp/ are removed.
 *
 *   EDGEMAIL-SPOOL/1
 *   id: 3f2e11b6ac53195e
 *   created: 1796292322
 *   from: a@sender.test
 *   rcpt: demo@example.test
 *   size: 1234
 *   <blank line>
 *   <1234 bytes of message>
 *   R 0 done 1 0 250 2.0.0 Saved            (journal: rcpt index, state,
 *   R 1 pending 1 1796292400 451 4.2.0 ...    attempts, next try, reply)
 *   H 1                                      (held / released)
 *   F 0                                      (rcpt 0's forwards to
 *                                             outside addresses queued)
 *
 * Thread-safe for distinct messages; a message is worked on by one thread
 * at a time (the caller's queue runner guarantees that).
 */
#ifndef EDGEMAIL_SPOOL_H
#define EDGEMAIL_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/addr.h"
#include "lib/reply.h"

struct lmtp_msg;

#define SPOOL_ID_MAX	32

enum spool_state {
	SPOOL_PENDING = 0,	/* still to be delivered */
	SPOOL_DONE,		/* delivered */
	SPOOL_FAILED,		/* permanent failure or expired: bounce owed */
	SPOOL_BOUNCED,		/* failure reported to the sender (or no sender) */
};

struct spool_rcpt {
	char	 addr[ADDR_PATH_MAX + 1];
	enum spool_state state;
	int	 attempts;
	int64_t	 next_try;	/* unix seconds; 0 = now */
	struct reply last;	/* latest outcome */
	int	 forwarded;	/* its forwards are queued (never again) */
};

struct spool_msg {
	char	 id[SPOOL_ID_MAX + 1];
	int64_t	 created;
	char	 mail_from[ADDR_PATH_MAX + 1];
	struct spool_rcpt *rcpts;
	size_t	 nrcpt;
	int	 hold;
	int	 fd;		/* open read/append while loaded */
	off_t	 msg_off;	/* where the message starts in the file */
	off_t	 msg_len;
	off_t	 file_len;
	int	 torn;		/* the journal ends in half a record */
};

struct spool;

/* Create dir, dir/tmp, dir/queue as needed; remove half-written files.
 * max_bytes: refuse commits past this total (0 = no limit). */
struct spool *spool_open(const char *dir, uint64_t max_bytes, char *err,
	    size_t errsz);
/* The same for a program that writes into or manages another program's
 * spool (forwards into the relay's, edgemailctl queue): no recovery, so
 * the owner's messages being written are left alone. */
struct spool *spool_attach(const char *dir, uint64_t max_bytes, char *err,
	    size_t errsz);
void	spool_close(struct spool **sp);

/*
 * Write a message durably (see above).  rcpts[i] start PENDING unless
 * states is given (then states[i]/replies[i] are journalled at once, e.g.
 * recipients already delivered; PENDING ones then wait until next_try).
 * On failure: -1 and a TEMP reply
 * (disk full, fsync failure, spool_max_bytes reached), or SPOOL_EXISTS
 * when a message with this id is queued already (it is left as it was).
 */
#define SPOOL_EXISTS	(-2)
int	spool_commit(struct spool *s, const char *id, const char *mail_from,
	    const char *const *rcpts, size_t nrcpt,
	    const enum spool_state *states, const struct reply *replies,
	    int64_t next_try, const struct lmtp_msg *m, struct reply *r);

/* Queue ids (oldest first by name); free with spool_ids_free. */
int	spool_list(struct spool *s, char ***ids_r, size_t *n_r);
void	spool_ids_free(char **ids, size_t n);
/* Load envelope + journal; m->fd stays open until spool_msg_free. */
int	spool_load(struct spool *s, const char *id, struct spool_msg *m);
void	spool_msg_free(struct spool_msg *m);
/* The message bytes as an LMTP source (fd, offset, length). */
void	spool_msg_source(const struct spool_msg *m, struct lmtp_msg *out);
/* Journal rcpt i's current state; fdatasync. */
int	spool_record(struct spool *s, struct spool_msg *m, size_t i);
int	spool_set_hold(struct spool *s, struct spool_msg *m, int hold);
/* Journal that rcpt i's forwards are queued; fdatasync. */
int	spool_set_forwarded(struct spool *s, struct spool_msg *m, size_t i);
/* Delete a message (all recipients final). */
int	spool_remove(struct spool *s, const char *id);
/* Bytes currently queued. */
uint64_t spool_bytes(struct spool *s);
const char *spool_state_name(enum spool_state st);

#endif
