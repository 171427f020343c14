/* `status;` routes: the metrics page (Prometheus text format). */
#ifndef ATR_STATUS_H
#define ATR_STATUS_H

#include "net/conn.h"

/* Answer r (its head already consumed) with the page; method is the
 * request's method (405 unless GET or HEAD); has_body closes the connection
 * after the answer (the body is not read). */
void atr_status_handle(atr_req_t *r, int method, int has_body);

#endif
