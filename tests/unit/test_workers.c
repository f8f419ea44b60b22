/* test_workers.c - jobs run off the loop and complete on it. */
#include <event2/event.h>
#include <pthread.h>

#include "check.h"
#include "core/workers.h"

struct job_arg {
	pthread_t worker_thread;
	int done_on_loop;
	int *remaining;
	struct event_base *base;
};

static void work(void *arg)
{
	struct job_arg *a = arg;
	a->worker_thread = pthread_self();
}

static void done(void *arg)
{
	struct job_arg *a = arg;
	a->done_on_loop = 1;
	if (--*a->remaining == 0)
		event_base_loopbreak(a->base);
}

static void test_jobs_complete_on_loop(void)
{
	struct event_base *base = event_base_new();
	struct workers *w = workers_new(base, 3);
	CHECK(w != NULL);
	enum { N = 100 };
	struct job_arg args[N];
	int remaining = N;
	for (int i = 0; i < N; i++) {
		args[i] = (struct job_arg){ .remaining = &remaining, .base = base };
		CHECK(workers_submit(w, work, done, &args[i]) == 0);
	}
	CHECK(workers_pending(w) == N);
	event_base_dispatch(base);
	CHECK(remaining == 0);
	for (int i = 0; i < N; i++) {
		CHECK(args[i].done_on_loop);
		CHECK(!pthread_equal(args[i].worker_thread, pthread_self()));
	}
	CHECK(workers_pending(w) == 0);
	workers_free(&w);
	CHECK(w == NULL);
	event_base_free(base);
}

static void test_free_drains_queue(void)
{
	struct event_base *base = event_base_new();
	struct workers *w = workers_new(base, 1);
	int remaining = 5;
	struct job_arg args[5];
	for (int i = 0; i < 5; i++) {
		args[i] = (struct job_arg){ .remaining = &remaining, .base = base };
		workers_submit(w, work, done, &args[i]);
	}
	workers_free(&w);
	CHECK(remaining == 0);
	event_base_free(base);
}

int main(void)
{
	RUN(test_jobs_complete_on_loop);
	RUN(test_free_drains_queue);
	return check_summary();
}
