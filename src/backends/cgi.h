/* CGI scripts as a backend of the unified proxy core. A `cgi DIR;` route
 * has an internal upstream (runtime.c) whose "connections" are script
 * processes: stdin is the request body, stdout the response, stderr goes to
 * the error log. The core does queueing (cgi_max_procs, cgi_queue),
 * timeouts, streaming and the response parsing; this file finds the script,
 * builds its environment, spawns it and makes sure every child is reaped. */
#ifndef ATR_CGI_H
#define ATR_CGI_H

#include <uv.h>

#include "backends/backend.h"

typedef struct atr_cgi_child atr_cgi_child_t;

extern const atr_backend_ops_t atr_backend_cgi;

/* Start the script planned for r (by atr_backend_cgi.encode_head) on loop.
 * out is initialised here as the pipe carrying the script's stdout (the
 * caller reads and later closes it like any stream); *in is the script's
 * stdin. The caller's server slot (slot) is held until the process has
 * exited, then released and kick(arg) called so a queued request can start.
 * Returns 0 or a negative libuv error (then nothing was started; the caller
 * still closes out). */
int atr_cgi_spawn(atr_req_t *r, uv_loop_t *loop, uv_pipe_t *out, atr_cgi_child_t **child,
                  uv_stream_t **in, atomic_int *slot, void (*kick)(void *), void *arg);

/* The request body is complete: close the script's stdin (it sees EOF). */
void atr_cgi_close_stdin(atr_cgi_child_t *c);

/* The exchange is over. A running script gets SIGTERM (its process group),
 * then SIGKILL after a grace period; the child is freed once it has exited
 * and is reaped. */
void atr_cgi_release(atr_cgi_child_t *c);

/* CGI's hooks (core/modules.c, once at start): when a worker ends, every
 * script it started that has not been reaped yet is killed and reaped
 * (blocking, after SIGKILL), so none outlives it. */
void atr_cgi_register(void);

#endif
