/*
 * periodic.c — start, sleep and stop for the background workers of
 * `serve` (periodic.h).
 */
#include "common/periodic.h"

#include <time.h>

#include "common/clock.h"
#include "common/err.h"

/* Stops and joins the first P->n threads (the lock is not held). */
static void stop_and_join(struct bz_periodic *p)
{
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->stop, 1);
	pthread_cond_broadcast(&p->cv);
	if (p->on_stop != NULL)
		p->on_stop(p->arg);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n; i++)
		pthread_join(p->threads[i], NULL);
	p->n = 0;
}

int bz_periodic_start(struct bz_periodic *p, int n, void *(*fn)(void *))
{
	pthread_condattr_t ca;

	if (p->started)
		return 0;
	if (n < 1 || n > BZ_PERIODIC_MAX_THREADS)
		return BZ_ERR_INVALID;
	atomic_store(&p->stop, 0);
	p->n = 0;
	if (pthread_condattr_init(&ca) != 0)
		goto fail;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int err = pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (err != 0)
		goto fail;
	for (; p->n < n; p->n++)
		if (pthread_create(&p->threads[p->n], NULL, fn, p->arg) != 0)
			break;
	if (p->n < n) {
		stop_and_join(p);
		pthread_cond_destroy(&p->cv);
		goto fail;
	}
	p->started = 1;
	return 0;
fail:
	return BZ_ERR_INTERNAL;
}

int bz_periodic_wait_until(struct bz_periodic *p, int64_t due_ms)
{
	struct timespec ts;
	int stopped;

	pthread_mutex_lock(&p->mu);
	while (!atomic_load(&p->stop)) {
		int64_t left = due_ms - bz_monotonic_ms();
		if (left <= 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(left / 1000);
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	stopped = atomic_load(&p->stop);
	pthread_mutex_unlock(&p->mu);
	return stopped;
}

int bz_periodic_stopping(struct bz_periodic *p)
{
	return atomic_load(&p->stop);
}

const atomic_int *bz_periodic_stop_flag(struct bz_periodic *p)
{
	return &p->stop;
}

void bz_periodic_locked(struct bz_periodic *p, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&p->mu);
	fn(arg);
	pthread_mutex_unlock(&p->mu);
}

void bz_periodic_stop(struct bz_periodic *p)
{
	if (!p->started)
		return;
	stop_and_join(p);
	pthread_cond_destroy(&p->cv);
	p->started = 0;
}
