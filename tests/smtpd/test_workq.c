/*
 * test_workq.c -- the conversions' work queue (scheduler/workq.c): every
 * job's work runs on a thread of the queue, every done on the loop thread,
 * once each; the loop stays alive exactly while a job is pending; a done
 * may push again; freeing joins the threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <uv.h>

#include "workq.h"

#define NJOBS 2000

struct job {
	struct workq_job j;
	struct fx *fx;
	pthread_t ran_on;
	int worked, done, again;
};

struct fx {
	uv_loop_t loop;
	pthread_t loop_thread;
	struct workq *q;
	int ndone;
};

static void work(struct workq_job *j)
{
	struct job *jb = j->data;

	jb->ran_on = pthread_self();
	jb->worked++;
}

static void done(struct workq_job *j)
{
	struct job *jb = j->data;
	struct fx *f = jb->fx;

	assert_true(pthread_equal(pthread_self(), f->loop_thread));
	assert_false(pthread_equal(jb->ran_on, f->loop_thread));
	assert_int_equal(jb->worked, jb->done + 1);
	jb->done++;
	f->ndone++;
	if (jb->again-- > 0)
		workq_push(f->q, j); /* a done may queue its job again */
}

static void run(int nthreads)
{
	struct fx f = {0};
	struct job *jobs = calloc(NJOBS, sizeof(*jobs));
	char err[128];
	int total = 0;

	assert_non_null(jobs);
	assert_int_equal(uv_loop_init(&f.loop), 0);
	f.loop_thread = pthread_self();
	f.q = workq_new(&f.loop, nthreads, err, sizeof err);
	assert_non_null(f.q);
	/* Nothing pending: the queue does not keep the loop alive. */
	assert_int_equal(uv_run(&f.loop, UV_RUN_NOWAIT), 0);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i].fx = &f;
		jobs[i].j.data = &jobs[i];
		jobs[i].j.work = work;
		jobs[i].j.done = done;
		jobs[i].again = i % 3;
		total += 1 + i % 3;
		workq_push(f.q, &jobs[i].j);
	}
	assert_int_equal(workq_pending(f.q), NJOBS);
	/* uv_run returns once every done ran: nothing else is alive. */
	assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(f.ndone, total);
	assert_int_equal(workq_pending(f.q), 0);
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(jobs[i].worked, 1 + i % 3);
		assert_int_equal(jobs[i].done, 1 + i % 3);
	}
	workq_free(f.q);
	assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f.loop), 0);
	free(jobs);
}

static void test_one_thread(void **state)
{
	(void)state;
	run(1);
}

static void test_four_threads(void **state)
{
	(void)state;
	run(4);
}

static void test_bad_thread_count(void **state)
{
	uv_loop_t loop;
	char err[128];

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_null(workq_new(&loop, 0, err, sizeof err));
	assert_null(workq_new(&loop, WORKQ_MAX_THREADS + 1, err, sizeof err));
	assert_true(workq_threads() >= 1 && workq_threads() <= 4);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_thread),
	    cmocka_unit_test(test_four_threads),
	    cmocka_unit_test(test_bad_thread_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
