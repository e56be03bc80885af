/*
 * periodic.h — the lifecycle every background worker of `serve` shares
 * (the audit worker, the webhook delivery senders, …): one or more threads
 * that sleep on a CLOCK_MONOTONIC condition variable until their next run
 * is due, and a stop that wakes and joins them all. What a thread does
 * between sleeps (connections, retries, what a run is) stays with its
 * module.
 */
#ifndef BZ_PERIODIC_H
#define BZ_PERIODIC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define BZ_PERIODIC_MAX_THREADS 32

struct bz_periodic {
	/* Called with the lock held while stopping, after the stop flag is
	 * set and before joining (e.g. to cancel a long query); may be NULL. */
	void (*on_stop)(void *arg);
	void *arg; /* passed to every thread and to on_stop */
	/* Private to periodic.c below. */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	pthread_t threads[BZ_PERIODIC_MAX_THREADS];
	int n, started;
	atomic_int stop;
};

/* Initialiser of a static struct bz_periodic (set on_stop and arg before
 * starting it). */
#define BZ_PERIODIC_INIT                                                                           \
	{                                                                                          \
		.mu = PTHREAD_MUTEX_INITIALIZER                                                    \
	}

/*
 * Starts N (1..BZ_PERIODIC_MAX_THREADS) threads running FN(P->arg); each
 * sleeps with bz_periodic_wait_until() and returns once it says stopped.
 * Starting a started P does nothing. If a thread cannot be created, the
 * ones already running are stopped and joined. Returns 0, BZ_ERR_INVALID
 * (bad N) or BZ_ERR_INTERNAL (the caller logs it).
 */
int bz_periodic_start(struct bz_periodic *p, int n, void *(*fn)(void *));

/* Sleeps until monotonic time DUE_MS (bz_monotonic_ms()) or until P is
 * stopped. Returns 1 if stopped, else 0. */
int bz_periodic_wait_until(struct bz_periodic *p, int64_t due_ms);

/* Whether P is stopping (for checks between the steps of a run). */
int bz_periodic_stopping(struct bz_periodic *p);

/* The stop flag itself, for code that takes a `const atomic_int *stop`. */
const atomic_int *bz_periodic_stop_flag(struct bz_periodic *p);

/* Runs FN(ARG) under P's lock (for state on_stop reads). */
void bz_periodic_locked(struct bz_periodic *p, void (*fn)(void *), void *arg);

/* Sets the stop flag, wakes every thread, calls on_stop and joins them.
 * Safe if never started. */
void bz_periodic_stop(struct bz_periodic *p);

#endif
