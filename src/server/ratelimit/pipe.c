/*
 * pipe.c — automatic pipelining of Redis commands over a small pool of
 * connections (the technique of ioredis' and go-redis' auto-pipelining).
 *
 * A caller queues its command on a connection and waits. If nobody is
 * talking to that connection it becomes the connection's leader: it takes
 * the queue (at most PIPE_BATCH_MAX commands), writes them in one go and
 * reads their replies in order, hands each reply to its caller and, if more
 * commands queued meanwhile, wakes the first of them to lead the next batch.
 * So Redis reads and answers a batch in one read and one write instead of
 * one each per command, and no thread of ours exists only for I/O. A call
 * may carry many commands (rl_pipe_call_many, e.g. the rate-limit checks of
 * a heartbeat batch): they stay together on one connection, in order, in
 * one write.
 *
 * Only a leader touches a connection's hiredis context, and never under the
 * lock: callers queue under the lock and then sleep on a semaphore of their
 * own, posted exactly once (with the result, or with the turn to lead), so
 * a woken caller never queues for the lock. Every socket step is bounded by the budget (hiredis' connect and
 * read/write timeouts), so a leader always comes back; when its batch
 * fails, everything still queued on that connection fails with it (it
 * would go to the same broken Redis), so a hung Redis costs a waiting
 * check about two budgets, not a queue's worth.
 */
#include "server/ratelimit/internal.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "crypto/crypto.h"
#include "server/redis/redis.h"

/* Commands written in one batch; the rest waits for the next. Bounds the
 * time a leader spends for others and the memory of one write. */
#define PIPE_BATCH_MAX 128

/* A caller joins the first connection with fewer than this many commands
 * queued or in flight, so moderate concurrency shares one connection in
 * larger batches (fewer system calls on both sides) and heavier load
 * spreads over the pool. */
#define PIPE_SPILL 8

struct pconn {
	pthread_mutex_t mu;
	redisContext *c;	     /* NULL until connected, and after a failure; leader only */
	int busy;		     /* 1 while a leader does I/O, or one is woken to */
	struct rl_call *head, *tail; /* queued, not yet written */
	_Atomic unsigned load;	     /* queued + in flight, read without the lock */
};

struct rl_pipe {
	char *url;
	int timeout_ms;
	unsigned n;
	rl_pipe_setup_fn *setup;
	void *setup_arg;
	struct pconn *conns;
};

struct rl_pipe *rl_pipe_new(const char *url, unsigned pool, int timeout_ms, rl_pipe_setup_fn *setup,
			    void *setup_arg)
{
	struct rl_pipe *p = calloc(1, sizeof(*p));

	if (p == NULL || pool < 1)
		goto fail;
	p->url = strdup(url);
	p->conns = calloc(pool, sizeof(*p->conns));
	if (p->url == NULL || p->conns == NULL)
		goto fail;
	p->n = pool;
	p->timeout_ms = timeout_ms;
	p->setup = setup;
	p->setup_arg = setup_arg;
	for (unsigned i = 0; i < pool; i++)
		pthread_mutex_init(&p->conns[i].mu, NULL);
	return p;
fail:
	if (p != NULL) {
		free(p->url);
		free(p->conns);
	}
	free(p);
	return NULL;
}

void rl_pipe_free(struct rl_pipe *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; i < p->n; i++) {
		if (p->conns[i].c != NULL)
			redisFree(p->conns[i].c);
		pthread_mutex_destroy(&p->conns[i].mu);
	}
	crypto_wipe(p->url, strlen(p->url));
	free(p->url);
	free(p->conns);
	free(p);
}

/* The connection a new command joins: the first one below PIPE_SPILL, else
 * the least loaded. Loads are read without locks: a stale one only costs a
 * less even spread. */
static struct pconn *pick(struct rl_pipe *p)
{
	unsigned best = 0, best_load = ~0u;

	for (unsigned i = 0; i < p->n; i++) {
		unsigned l = atomic_load_explicit(&p->conns[i].load, memory_order_relaxed);
		if (l < PIPE_SPILL)
			return &p->conns[i];
		if (l < best_load) {
			best = i;
			best_load = l;
		}
	}
	return &p->conns[best];
}

/* Connects PC and runs the setup hook on it; 0 or BZ_ERR_UNAVAILABLE. */
static int connect_conn(struct rl_pipe *p, struct pconn *pc)
{
	pc->c = redis_connect_url(p->url, p->timeout_ms);
	if (pc->c == NULL)
		return BZ_ERR_UNAVAILABLE;
	if (p->setup != NULL && p->setup(pc->c, p->setup_arg) != 0) {
		redisFree(pc->c);
		pc->c = NULL;
		return BZ_ERR_UNAVAILABLE;
	}
	return 0;
}

/* Marks the commands of X from its J-th on, and every call after X, as
 * unanswered. */
static void fail_from(struct rl_call *x, size_t j)
{
	for (; x != NULL; x = x->next, j = 0) {
		for (; j < x->n; j++)
			x->replies[j] = NULL;
		x->rc = BZ_ERR_UNAVAILABLE;
	}
}

/* Writes the batch starting at B in one go and reads its replies in order
 * into each call. Without the lock; only the leader runs it. A command
 * whose reply was read keeps it even if a later one fails (a call with all
 * its replies gets rc 0); the ones after a failure get no reply, their
 * calls BZ_ERR_UNAVAILABLE, and the connection is dropped. Returns 0, or
 * BZ_ERR_UNAVAILABLE if any call failed. */
static int run_batch(struct rl_pipe *p, struct pconn *pc, struct rl_call *b)
{
	struct rl_call *x = b;
	size_t j = 0;

	if (pc->c == NULL && connect_conn(p, pc) != 0)
		goto fail;
	for (struct rl_call *y = b; y != NULL; y = y->next)
		for (size_t k = 0; k < y->n; k++)
			if (redisAppendFormattedCommand(pc->c, y->cmds[k], y->lens[k]) != REDIS_OK)
				goto fail;
	for (; x != NULL; x = x->next) {
		for (j = 0; j < x->n; j++) {
			void *rep = NULL;
			/* The first read writes the whole output buffer, then each reads. */
			if (redisGetReply(pc->c, &rep) != REDIS_OK || rep == NULL)
				goto fail;
			x->replies[j] = rep;
		}
		x->rc = 0;
	}
	return 0;
fail:
	fail_from(x, j);
	if (pc->c != NULL) {
		/* Broken, timed out or half-read: start afresh next time. */
		redisFree(pc->c);
		pc->c = NULL;
	}
	return BZ_ERR_UNAVAILABLE;
}

/* Gives every call from X on its result (BZ_ERR_UNAVAILABLE if FAILED)
 * and wakes its caller: the one post its semaphore gets. The caller returns
 * as soon as it sees it, so nothing here touches a call after its post. */
static void finish(struct rl_call *x, int failed)
{
	while (x != NULL) {
		struct rl_call *next = x->next;
		if (failed) {
			for (size_t j = 0; j < x->n; j++)
				x->replies[j] = NULL;
			x->rc = BZ_ERR_UNAVAILABLE;
		}
		atomic_store(&x->done, 1);
		sem_post(&x->wake);
		x = next;
	}
}

/* Leads one batch on PC: called and returns with PC->mu held and
 * PC->busy 1, the caller's call at the head of the queue. The batch's
 * callers are woken without the lock, so none of them waits for it. If
 * more queued meanwhile, the connection stays busy, reserved for the new
 * head, whose caller is woken to lead the next batch. */
static void lead(struct rl_pipe *p, struct pconn *pc)
{
	struct rl_call *b = pc->head, *last = b;
	size_t k = b->n;

	/* Whole calls only: a call of many commands is one batch of its own
	 * when it is larger than PIPE_BATCH_MAX (its one write). */
	while (last->next != NULL && k + last->next->n <= PIPE_BATCH_MAX) {
		last = last->next;
		k += last->n;
	}
	pc->head = last->next;
	if (pc->head == NULL)
		pc->tail = NULL;
	last->next = NULL;
	pthread_mutex_unlock(&pc->mu);
	int rc = run_batch(p, pc, b);
	atomic_fetch_sub(&pc->load, (unsigned)k);
	finish(b, 0);
	pthread_mutex_lock(&pc->mu);
	if (rc != 0 && pc->head != NULL) {
		/* Queued behind a failed batch: the same Redis would fail them. */
		unsigned q = 0;
		for (struct rl_call *y = pc->head; y != NULL; y = y->next)
			q += (unsigned)y->n;
		atomic_fetch_sub(&pc->load, q);
		finish(pc->head, 1);
		pc->head = pc->tail = NULL;
	}
	if (pc->head != NULL)
		sem_post(&pc->head->wake); /* not done: lead the next batch */
	else
		pc->busy = 0;
}

/* Queues CALL (CALL->n commands) on a connection of P and waits for its
 * replies, leading batches when its turn comes (see the top of the file). */
static int call_commands(struct rl_pipe *p, struct rl_call *call)
{
	struct pconn *pc = pick(p);

	call->rc = BZ_ERR_UNAVAILABLE;
	for (size_t j = 0; j < call->n; j++)
		call->replies[j] = NULL;
	atomic_store(&call->done, 0);
	call->next = NULL;
	sem_init(&call->wake, 0, 0);
	pthread_mutex_lock(&pc->mu);
	atomic_fetch_add(&pc->load, (unsigned)call->n);
	if (pc->tail != NULL)
		pc->tail->next = call;
	else
		pc->head = call;
	pc->tail = call;
	if (pc->busy) {
		/* One post comes: the result, or the turn to lead (then PC is
		 * still busy, reserved for this call, which heads the queue). */
		pthread_mutex_unlock(&pc->mu);
		while (sem_wait(&call->wake) != 0)
			; /* EINTR */
		if (atomic_load(&call->done))
			goto out;
		pthread_mutex_lock(&pc->mu);
	} else {
		pc->busy = 1; /* idle means an empty queue: this call heads it */
	}
	lead(p, pc);
	pthread_mutex_unlock(&pc->mu);
out:
	sem_destroy(&call->wake);
	return call->rc;
}

int rl_pipe_call(struct rl_pipe *p, struct rl_call *call)
{
	call->n = 1;
	call->cmds = &call->cmd;
	call->lens = &call->len;
	call->replies = &call->reply;
	return call_commands(p, call);
}

int rl_pipe_call_many(struct rl_pipe *p, struct rl_call *call)
{
	if (call->n < 1 || call->n > RL_PIPE_MANY_MAX) {
		call->rc = BZ_ERR_UNAVAILABLE;
		return BZ_ERR_UNAVAILABLE;
	}
	call->reply = NULL;
	return call_commands(p, call);
}
