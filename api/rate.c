/*
 * rate.c - per-key message rate limit (`rate_limit_per_key` messages per
 * minute for each HMAC key id; 0 turns it off).
 *
 * Fixed one-minute windows: a counter per key and minute, in Redis when
 * configured (shared by every instance), otherwise in this process.  Over
 * the limit the request gets 429 with Retry-After = seconds left in the
 * window; the Worker treats 429 as temporary, so the sender retries.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "api/api.h"

#define RATE_SLOTS	64

struct slot {
	char	 key[65];
	long long minute;
	long long count;
};

static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[RATE_SLOTS];

static long long
local_incr(const char *key_id, long long minute)
{
	struct slot *free_slot = NULL;
	long long v = -1;
	size_t i;

	pthread_mutex_lock(&rate_lock);
	for (i = 0; i < RATE_SLOTS; i++) {
		if (strcmp(slots[i].key, key_id) == 0) {
			if (slots[i].minute != minute) {
				slots[i].minute = minute;
				slots[i].count = 0;
			}
			v = ++slots[i].count;
			break;
		}
		if (free_slot == NULL && (slots[i].key[0] == '\0' ||
		    slots[i].minute < minute))
			free_slot = &slots[i];
	}
	if (v < 0 && free_slot != NULL) {
		snprintf(free_slot->key, sizeof(free_slot->key), "%s", key_id);
		free_slot->minute = minute;
		free_slot->count = v = 1;
	}
	pthread_mutex_unlock(&rate_lock);
	return v < 0 ? 1 : v;	/* table full: do not punish anyone */
}

int
rate_check(struct api *api, const char *key_id)
{
	time_t now = time(NULL);
	long long minute = (long long)now / 60, v;
	char key[160];

	if (api->rate_limit <= 0)
		return 0;
	if (api->redis != NULL) {
		snprintf(key, sizeof(key), "edgemail:rate:%s:%lld", key_id, minute);
		if ((v = redis_incr(api->redis, key, 120)) < 0)
			return -1;
	} else
		v = local_incr(key_id, minute);
	if (v <= api->rate_limit)
		return 0;
	return (int)(60 - now % 60);
}
