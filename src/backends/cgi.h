/* CGI scripts as a backend of the unified proxy core. A `cgi DIR;` route
 * has an internal upstream (runtime.c) whose "connections" are script
 * processes: stdin is the request body, stdout the response, stderr goes to
 * the error log. The core does queueing (cgi_max_procs, cgi_queue),
 * timeouts, streaming and the response parsing; this file finds the script,
 * builds its environment, spawns it and makes sure every child is reaped. */
#ifndef ATR_CGI_H
#define ATR_CGI_H

#include "backends/backend.h"

extern const atr_backend_ops_t atr_backend_cgi;

/* CGI's hooks (core/modules.c, once at start): when a worker ends, every
 * script it started that has not been reaped yet is killed and reaped
 * (blocking, after SIGKILL), so none outlives it. */
void atr_cgi_register(void);

#endif
