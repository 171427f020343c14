/* TLS for a generation (core/tls_setup.c). Control loop only. */
#ifndef ATR_TLS_SETUP_H
#define ATR_TLS_SETUP_H

#include "net/gen.h"
#include "tls/tickets.h"

/* Fill g->tls, g->ups[i].tls (g->ups allocated) and g->tls_listens, and read
 * the ticket key file into keys (n = 0 without one). 0, or -1 with
 * "FILE:LINE:COL: ..." in err; what was built is freed with g. */
int atr_tls_gen_build(atr_gen_t *g, atr_tls_ticket_keys_t *keys, char *err, size_t errlen);

/* The generation's session cache (tls_session_cache): the one the last
 * generation used when the config says the same, else a new one. */
void atr_tls_gen_session_cache(atr_gen_t *g);
/* At exit, after the last generation: the kept cache goes. */
void atr_tls_release(void);

/* g is now running: its ticket keys (or keys made in memory) are used. */
void atr_tls_gen_commit(const atr_gen_t *g, const atr_tls_ticket_keys_t *keys, uint64_t now_ms);

/* `-t`: everything atr_tls_gen_build would read, read and thrown away. */
int atr_tls_check(const atr_conf_t *conf, char *err, size_t errlen);

#endif
