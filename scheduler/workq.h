/*
 * workq.h -- a queue of jobs for threads of its own, their completions
 * back on the libuv loop.
 *
 *	struct workq *q = workq_new(loop, workq_threads(), err, sizeof err);
 *	job->work = parse;      (on a worker thread)
 *	job->done = answer;     (on the loop thread, after work)
 *	workq_push(q, job);
 *	...
 *	workq_free(q);          (no job pending: joins the threads)
 *
 * Against libuv's shared thread pool (uv_queue_work): a worker takes what
 * is queued while it is busy without being woken for each job, every job
 * that ended meanwhile is handed back in one loop wake-up, and the pool's
 * threads stay free for the store's fdatasync, which never waits behind a
 * conversion (nor a conversion behind it).  Jobs run in the order pushed
 * when there is one thread; with more, each thread takes the oldest.
 */
#ifndef WU_WORKQ_H
#define WU_WORKQ_H

#include <uv.h>

struct workq_job {
	void (*work)(struct workq_job *); /* on a worker thread */
	void (*done)(struct workq_job *); /* then on the loop thread */
	void *data;                       /* the caller's */
	struct workq_job *next;           /* the queue's */
};

struct workq;

/* Starts nthreads (1 to WORKQ_MAX_THREADS) threads.  NULL with a reason in
 * err (out of memory, no thread). */
#define WORKQ_MAX_THREADS 16
struct workq *workq_new(uv_loop_t *loop, int nthreads, char *err, size_t errlen);

/* Threads for CPU-bound jobs beside the loop thread: one fewer than the
 * CPUs this process may use, at least 1, at most 4. */
int workq_threads(void);

/* Queues a job; its done runs on the loop thread once its work ended. */
void workq_push(struct workq *q, struct workq_job *job);

/* Jobs pushed whose done has not run yet. */
int workq_pending(const struct workq *q);

/* Stops the threads (after the job each is running) and frees the queue
 * once its loop handle is closed.  Jobs not run are dropped, their done
 * never called: free it when none is pending.  Accepts NULL. */
void workq_free(struct workq *q);

#endif
