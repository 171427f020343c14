/* `static DIR;` routes: files from a directory. */
#ifndef ATR_STATIC_H
#define ATR_STATIC_H

#include "net/conn.h"

/* Answer r (route kind static; r->norm_path set) with the file, a redirect
 * to the directory's slash, or 403/404/405. */
void atr_static_handle(atr_req_t *r);

#endif
