/* workers.h - the blocking-work pool.
 *
 * The event loop never blocks: fsync, SQLite, password hashing and file
 * writes run here.  A job is (work, done, arg): work(arg) runs on one of the
 * pool's threads, then done(arg) runs on the loop thread.  Jobs may run in
 * any order and concurrently with each other; a caller that needs ordering
 * submits the next job from the previous one's done callback.
 *
 * Ownership: ARG belongs to the caller throughout; the pool never frees it. */
#ifndef TERN_CORE_WORKERS_H
#define TERN_CORE_WORKERS_H

struct event_base;
struct workers;

typedef void (*work_fn)(void *arg);
typedef void (*done_fn)(void *arg);

/* workers_new - start NTHREADS threads whose completions are delivered on
 * BASE.  Returns NULL (errno set) on failure. */
struct workers *workers_new(struct event_base *base, int nthreads);

/* workers_submit - queue a job.  DONE may be NULL.  Returns 0, or -1 when the
 * pool is shutting down (the job is not run). */
int workers_submit(struct workers *pool, work_fn work, done_fn done, void *arg);

/* workers_pending - jobs queued or running whose done has not yet run. */
unsigned workers_pending(const struct workers *pool);

/* workers_free - finish every queued job (running their done callbacks on
 * the calling thread, which must be the loop thread), join the threads and
 * free the pool; clears *POOL. */
void workers_free(struct workers **pool);

#endif
