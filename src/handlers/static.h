/* `static DIR;` routes: files from a directory. */
#ifndef ATR_STATIC_H
#define ATR_STATIC_H

#include "net/conn.h"

/* Answer r (route kind static; r->norm_path set) with the file, a redirect
 * to the directory's slash, or 403/404/405. */
void atr_static_handle(atr_req_t *r);

/* `try_files DIR;` on a proxy or cgi route: when r (GET or HEAD, its
 * r->norm_path set) names a regular file under DIR, answer with it (as a
 * static route would) and return 1; else 0, nothing done. */
int atr_static_try(atr_req_t *r, const char *dir);

#endif
