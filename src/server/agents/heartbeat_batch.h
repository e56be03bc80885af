/*
 * heartbeat_batch.h — group commit of heartbeats (HEARTBEAT_GROUP_COMMIT,
 * issue 13 §2). A caller submits a heartbeat (token hash, path device,
 * body) with a completion callback and does not wait: one committer thread
 * takes what queued within a short window (AGENTS_HB_WINDOW_MS, or
 * AGENTS_HB_BATCH_MAX heartbeats) and runs, per batch, ONE token lookup
 * statement, the pure admission checks, the device and organization rate
 * limits of every plain heartbeat, and ONE write statement (what
 * agents_heartbeat_record() writes for a plain heartbeat, device_metrics
 * included); only then does it call each heartbeat's callback. A heartbeat
 * that is not plain (unknown or unusable token, another device's path,
 * suspended device, pending token, new address or hostname, back from
 * offline) is handed back untouched (AGENTS_HB_SLOW): the caller runs the
 * synchronous path, with its audit rows and probe handling, for it.
 * No HTTP types: callable from a worker or a test.
 */
#ifndef BZ_AGENTS_HEARTBEAT_BATCH_H
#define BZ_AGENTS_HEARTBEAT_BATCH_H

#include <stdint.h>

#include "server/agents/agents.h"
#include "server/ratelimit/ratelimit.h"

/* Most heartbeats one batch writes, and the longest a batch waits for more
 * after its first arrived (issue 13: ≤ 1,000 rows or ≤ 5 ms). */
#define AGENTS_HB_BATCH_MAX 1000
#define AGENTS_HB_WINDOW_MS 5

/* What became of a submitted heartbeat. */
enum agents_hb_verdict {
	AGENTS_HB_WRITTEN, /* committed: answer 200 (agent, rl set) */
	AGENTS_HB_SLOW,	   /* not plain: nothing done, run the synchronous path */
	AGENTS_HB_LIMITED, /* refused by the rate limiter: rl_rc and rl say how (agent set) */
	AGENTS_HB_FAILED,  /* refused: rc and why (401 row changed meanwhile, 503 …) */
};

/* A heartbeat's outcome, handed to its callback; valid during the call. */
struct agents_hb_outcome {
	enum agents_hb_verdict verdict;
	int rc;				   /* AGENTS_HB_FAILED: a negative bz_err */
	const struct bz_errinfo *why;	   /* AGENTS_HB_FAILED: its explanation */
	const struct agents_agent *agent;  /* WRITTEN, LIMITED: the token's device */
	int rl_rc;			   /* WRITTEN, LIMITED: ratelimit_check()'s return */
	const struct ratelimit_result *rl; /* WRITTEN, LIMITED: its result */
};

/*
 * One submitted heartbeat, owned by the submitter and left untouched by it
 * until DONE was called (the batcher links it into its queue; no copy).
 * DONE runs on the committer thread, once, and must not block: it may free
 * the job.
 */
struct agents_hb_job {
	char token_hash[65];	    /* SHA-256 of the agent token, 64 hex digits */
	char path_id[37];	    /* the path's device id, canonical */
	struct agents_heartbeat hb; /* what the body said; borrowed until DONE */
	void (*done)(void *ctx, const struct agents_hb_outcome *o);
	void *ctx;
	/* The batcher's own. */
	struct agents_agent agent;
	struct ratelimit_result rl;
	int rl_rc, lookup_rc;
	struct agents_hb_job *next;
	int64_t enqueued_ms;
};

struct db_pool;
struct agents_hb_batch;

/*
 * Starts the batcher and its committer thread into *OUT: at most QUEUE_MAX
 * heartbeats wait for a batch (HEARTBEAT_QUEUE_MAX); batches run on a
 * connection of POOL and check limits with RL (both borrowed, must outlive
 * the batcher; RL NULL: every plain heartbeat is LIMITED with
 * BZ_ERR_INTERNAL, never unlimited). Returns 0, BZ_ERR_NOMEM or
 * BZ_ERR_INTERNAL (no thread).
 */
int agents_hb_batch_start(struct agents_hb_batch **out, struct db_pool *pool, struct ratelimit *rl,
			  unsigned queue_max);

/*
 * Queues JOB (filled by the caller up to CTX) without waiting. Returns 0:
 * JOB->done will be called exactly once, after its batch committed or
 * failed. BZ_ERR_UNAVAILABLE: QUEUE_MAX heartbeats wait, or the batcher
 * stops — nothing queued, DONE is never called (answer 503
 * heartbeat_queue_full with Retry-After).
 */
int agents_hb_batch_submit(struct agents_hb_batch *b, struct agents_hb_job *job);

/* Heartbeats queued and not yet taken into a batch (for tests, metrics). */
unsigned agents_hb_batch_queued(struct agents_hb_batch *b);

/* Refuses new heartbeats, runs every queued one (each gets its callback),
 * joins the committer and frees B. NULL is a no-op. */
void agents_hb_batch_stop(struct agents_hb_batch *b);

#endif
