/*
 * workq.c -- a queue of jobs for threads of its own (see workq.h).
 *
 * One mutex guards two singly linked FIFO lists: the jobs to run and the
 * jobs run.  A worker is signalled only when one waits idle, and only
 * once the mutex is free; the loop is woken through one uv_async_t, which
 * libuv coalesces, and hands back every finished job in one callback.
 * The handle keeps the loop alive only while a job is pending, as
 * uv_queue_work's requests do.
 */
#include "workq.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jobs {
	struct workq_job *head, *tail;
};

struct workq {
	uv_async_t async;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct jobs queued, done;
	int idle;    /* workers waiting on cond */
	int stop;    /* set once: the workers return */
	int pending; /* pushed, done not yet run (loop thread only) */
	int nthreads;
	pthread_t threads[WORKQ_MAX_THREADS];
};

static void jobs_add(struct jobs *l, struct workq_job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static struct workq_job *jobs_take(struct jobs *l)
{
	struct workq_job *j = l->head;

	if (j && !(l->head = j->next))
		l->tail = NULL;
	return j;
}

static void *worker_main(void *arg)
{
	struct workq *q = arg;
	struct workq_job *j;
	int first;

	for (;;) {
		pthread_mutex_lock(&q->mu);
		while (!q->stop && !q->queued.head) {
			q->idle++;
			pthread_cond_wait(&q->cond, &q->mu);
			q->idle--;
		}
		if (q->stop) {
			pthread_mutex_unlock(&q->mu);
			return NULL;
		}
		j = jobs_take(&q->queued);
		pthread_mutex_unlock(&q->mu);
		j->work(j);
		pthread_mutex_lock(&q->mu);
		jobs_add(&q->done, j);
		first = q->done.head == j;
		pthread_mutex_unlock(&q->mu);
		/* Once per batch: the loop takes everything done when it wakes.
		 * Sent outside the lock, which the woken loop takes at once; j
		 * is the loop's again and not touched here. */
		if (first)
			uv_async_send(&q->async);
	}
}

/* On the loop thread: every job that ended, in the order they ended. */
static void on_async(uv_async_t *h)
{
	struct workq *q = h->data;
	struct workq_job *j, *next;

	pthread_mutex_lock(&q->mu);
	j = q->done.head;
	q->done.head = q->done.tail = NULL;
	pthread_mutex_unlock(&q->mu);
	for (; j; j = next) {
		next = j->next; /* done may free or push j again */
		if (--q->pending == 0)
			uv_unref((uv_handle_t *)&q->async);
		j->done(j);
	}
}

int workq_threads(void)
{
	int n = (int)uv_available_parallelism() - 1;

	return n < 1 ? 1 : n > 4 ? 4 : n;
}

static void stop_threads(struct workq *q)
{
	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->mu);
	for (int i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	q->nthreads = 0;
}

struct workq *workq_new(uv_loop_t *loop, int nthreads, char *err, size_t errlen)
{
	struct workq *q;
	int rc;

	if (nthreads < 1 || nthreads > WORKQ_MAX_THREADS) {
		snprintf(err, errlen, "work queue: %d threads (1 to %d)", nthreads,
		         WORKQ_MAX_THREADS);
		return NULL;
	}
	if (!(q = calloc(1, sizeof(*q)))) {
		snprintf(err, errlen, "work queue: out of memory");
		return NULL;
	}
	if ((rc = uv_async_init(loop, &q->async, on_async)) < 0) {
		snprintf(err, errlen, "work queue: %s", uv_strerror(rc));
		free(q);
		return NULL;
	}
	q->async.data = q;
	/* The loop is kept alive only while a job is pending. */
	uv_unref((uv_handle_t *)&q->async);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cond, NULL);
	for (; q->nthreads < nthreads; q->nthreads++) {
		if ((rc = pthread_create(&q->threads[q->nthreads], NULL, worker_main, q)) != 0) {
			snprintf(err, errlen, "work queue: cannot start a thread: %s",
			         strerror(rc));
			workq_free(q);
			return NULL;
		}
	}
	return q;
}

void workq_push(struct workq *q, struct workq_job *job)
{
	int wake;

	if (q->pending++ == 0)
		uv_ref((uv_handle_t *)&q->async);
	pthread_mutex_lock(&q->mu);
	jobs_add(&q->queued, job);
	wake = q->idle > 0;
	pthread_mutex_unlock(&q->mu);
	/* Signalled after the unlock: a worker woken under the lock would
	 * only wake to wait for it. */
	if (wake)
		pthread_cond_signal(&q->cond);
}

int workq_pending(const struct workq *q)
{
	return q->pending;
}

static void on_closed(uv_handle_t *h)
{
	struct workq *q = h->data;

	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

void workq_free(struct workq *q)
{
	if (!q)
		return;
	stop_threads(q);
	uv_close((uv_handle_t *)&q->async, on_closed);
}
