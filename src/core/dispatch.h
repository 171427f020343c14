/* Routing: the handler-phase hook that picks host, route and handler. */
#ifndef ATR_DISPATCH_H
#define ATR_DISPATCH_H

#include "net/conn.h"
#include "net/hooks.h"

/* The request's head is in r->msg. Always takes the request (an unknown
 * route is answered 404): ATR_HOOK_DONE. */
int atr_dispatch_route(atr_req_t *r);

#endif
