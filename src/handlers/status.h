/* `status;` routes: the metrics page, as Prometheus text for scrapers, an
 * HTML page with live graphs for browsers, or the JSON that page polls
 * (status_negotiate.h decides which). */
#ifndef ATR_STATUS_H
#define ATR_STATUS_H

#include "net/conn.h"

/* Answer r with the page. r->msg must still hold the head (its Accept and
 * query choose the form): the handler reads them, then calls
 * atr_req_head_done itself. 405 unless GET or HEAD, 400 for an unknown
 * `?format=`; a request with a body closes the connection after the answer
 * (the body is not read). */
void atr_status_handle(atr_req_t *r);

#endif
