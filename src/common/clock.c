#include "common/clock.h"
#include "common/err.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static _Atomic int64_t pinned_now;

/* The offset file (bz_clock_use_file): its path, and the offset last read
 * from it with the file's change time and size at that read. */
static struct {
	pthread_mutex_t mu;
	char path[4096];
	_Atomic int on;
	struct timespec mtime;
	off_t size;
	int64_t offset;
} clock_file = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The offset in seconds the file says now (re-read when it changed); 0
 * while it is missing or unreadable. */
static int64_t file_offset(void)
{
	struct stat st;
	int64_t off;

	pthread_mutex_lock(&clock_file.mu);
	if (stat(clock_file.path, &st) != 0) {
		clock_file.offset = 0;
		clock_file.size = -1;
	} else if (st.st_size != clock_file.size || st.st_mtim.tv_sec != clock_file.mtime.tv_sec ||
		   st.st_mtim.tv_nsec != clock_file.mtime.tv_nsec) {
		FILE *f = fopen(clock_file.path, "r");
		char buf[32] = "";
		if (f != NULL) {
			if (fgets(buf, sizeof(buf), f) == NULL)
				buf[0] = '\0';
			fclose(f);
		}
		char *end;
		errno = 0;
		long long v = strtoll(buf, &end, 10);
		clock_file.offset = (errno == 0 && end != buf) ? (int64_t)v : 0;
		clock_file.mtime = st.st_mtim;
		clock_file.size = st.st_size;
	}
	off = clock_file.offset;
	pthread_mutex_unlock(&clock_file.mu);
	return off;
}

int64_t bz_now(void)
{
	int64_t p = atomic_load(&pinned_now);

	if (p != 0)
		return p;
	if (atomic_load(&clock_file.on))
		return (int64_t)time(NULL) + file_offset();
	return (int64_t)time(NULL);
}

int64_t bz_now_ms(void)
{
	int64_t p = atomic_load(&pinned_now);
	struct timespec ts;

	if (p != 0)
		return p * 1000;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (atomic_load(&clock_file.on))
		ms += file_offset() * 1000;
	return ms;
}

int bz_clock_use_file(const char *path)
{
	if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(clock_file.path))
		return BZ_ERR_INVALID;
	pthread_mutex_lock(&clock_file.mu);
	snprintf(clock_file.path, sizeof(clock_file.path), "%s", path);
	clock_file.size = -1;
	clock_file.offset = 0;
	pthread_mutex_unlock(&clock_file.mu);
	atomic_store(&clock_file.on, 1);
	return 0;
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
