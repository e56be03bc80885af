#include "common/clock.h"
#include "common/err.h"

#include <stdatomic.h>
#include <time.h>

static _Atomic int64_t pinned_now;

int64_t bz_now(void)
{
	int64_t p = atomic_load(&pinned_now);

	if (p != 0)
		return p;
	return (int64_t)time(NULL);
}

int64_t bz_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bz_clock_set_for_test(int64_t t)
{
	atomic_store(&pinned_now, t);
}

int bz_format_iso8601(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL)
		return BZ_ERR_INVALID;
	return strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0 ? BZ_ERR_INVALID : 0;
}
