/* The unified proxy core (seed: lighttpd's mod_proxy_core): server choice,
 * per-worker keep-alive pools, max_conns queueing, failover, timeouts and
 * body streaming with backpressure, shared by every backend protocol. A
 * backend protocol only encodes requests and decodes responses, through an
 * atr_backend_ops_t (backend.h). */
#ifndef ATR_PROXY_H
#define ATR_PROXY_H

#include "net/conn.h"

typedef struct atr_proxy atr_proxy_t;

/* The proxy core's hooks (core/modules.c calls this once at start): its
 * per-worker-generation state (balancers, pools, queues). */
void atr_proxy_register(void);

/* Handle r (route kind proxy or cgi: r->upstream and r->ups set). The head
 * views in r->msg are valid during the call only. The proxy becomes r's
 * handler; the request ends with atr_req_finish/atr_req_abort/respond. */
void atr_proxy_start(atr_req_t *r);

#endif
