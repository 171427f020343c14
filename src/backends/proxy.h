/* The unified proxy core (seed: lighttpd's mod_proxy_core): server choice,
 * per-worker keep-alive pools, max_conns queueing, failover, timeouts and
 * body streaming with backpressure, shared by every backend protocol. A
 * backend protocol only encodes requests and decodes responses, through an
 * atr_backend_ops_t (backend.h). */
#ifndef ATR_PROXY_H
#define ATR_PROXY_H

#include "net/worker.h"

typedef struct atr_req atr_req_t;

/* Per worker generation: balancers, pools, queues (worker.c calls these). */
void atr_proxy_wgen_init(atr_wgen_t *wg);
void atr_proxy_wgen_free(atr_wgen_t *wg);

/* Handle r (route kind proxy). The head views in r->msg are valid during the
 * call only. Ends with atr_req_finish/atr_req_abort/respond_simple. */
void atr_proxy_start(atr_req_t *r);

/* Client side events, called by conn code. */
void atr_proxy_on_body_ready(atr_req_t *r);   /* more request body can be read */
void atr_proxy_on_client_gone(atr_req_t *r);  /* the client connection is closing */

#endif
