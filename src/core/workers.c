/* workers.c - the blocking-work pool (see workers.h).
 *
 * Jobs wait in a FIFO guarded by one mutex; finished jobs move to a done
 * list and one byte on a pipe wakes the loop, which runs their done
 * callbacks.  The pipe is non-blocking: when it is full the loop is already
 * due to wake, so a lost byte loses nothing. */
#include "core/workers.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct job {
	work_fn work;
	done_fn done;
	void *arg;
	struct job *next;
};

struct workers {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *todo_head, *todo_tail;
	struct job *done_head, *done_tail;
	unsigned pending;
	int stopping;
	int nthreads;
	pthread_t *threads;
	int wake[2];
	struct event *wake_ev;
};

static void push(struct job **head, struct job **tail, struct job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static void *worker_main(void *arg)
{
	struct workers *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->todo_head && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		struct job *j = w->todo_head;
		if (!j)
			break; /* stopping and nothing left */
		w->todo_head = j->next;
		if (!w->todo_head)
			w->todo_tail = NULL;
		pthread_mutex_unlock(&w->lock);
		j->work(j->arg);
		pthread_mutex_lock(&w->lock);
		push(&w->done_head, &w->done_tail, j);
		char b = 1;
		ssize_t n = write(w->wake[1], &b, 1);
		(void)n;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* run_done - on the loop: take the whole done list, run the callbacks. */
static void run_done(struct workers *w)
{
	pthread_mutex_lock(&w->lock);
	struct job *j = w->done_head;
	w->done_head = w->done_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	while (j) {
		struct job *next = j->next;
		w->pending--;
		if (j->done)
			j->done(j->arg);
		free(j);
		j = next;
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	char buf[256];
	while (read(fd, buf, sizeof buf) > 0)
		;
	run_done(arg);
}

struct workers *workers_new(struct event_base *base, int nthreads)
{
	struct workers *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	if (nthreads < 1)
		nthreads = 1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pipe2(w->wake, O_NONBLOCK | O_CLOEXEC) < 0)
		goto fail;
	w->wake_ev = event_new(base, w->wake[0], EV_READ | EV_PERSIST, on_wake, w);
	if (!w->wake_ev || event_add(w->wake_ev, NULL) < 0)
		goto fail;
	w->threads = calloc((size_t)nthreads, sizeof *w->threads);
	if (!w->threads)
		goto fail;
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0)
			goto fail;
		w->nthreads++;
	}
	return w;
fail:;
	int saved = errno;
	workers_free(&w);
	errno = saved;
	return NULL;
}

int workers_submit(struct workers *w, work_fn work, done_fn done, void *arg)
{
	struct job *j = malloc(sizeof *j);
	if (!j)
		return -1;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		free(j);
		return -1;
	}
	push(&w->todo_head, &w->todo_tail, j);
	w->pending++;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

unsigned workers_pending(const struct workers *w)
{
	return w->pending;
}

void workers_free(struct workers **pw)
{
	struct workers *w = *pw;
	if (!w)
		return;
	*pw = NULL;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	/* Done callbacks may submit follow-up jobs; those are refused now
	 * (stopping), so this ends. */
	run_done(w);
	if (w->wake_ev)
		event_free(w->wake_ev);
	if (w->wake[0] > 0) {
		close(w->wake[0]);
		close(w->wake[1]);
	}
	free(w->threads);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}
