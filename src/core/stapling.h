/* OCSP stapling fetched at run time (`stapling on` in a host's tls block),
 * on the control loop. For each certificate of the running generation that
 * staples, the response is fetched from the responder its AIA names
 * (net/ocsp_fetch.h), verified against the certificate and its issuer (the
 * chain file's second certificate; tls/ocsp.h), and, when it says good,
 * handed to the pair's staple slot (tls/ctx.h), which handshakes on every
 * worker read under a lock.
 *
 * When: at start before the workers take a client (the runtime waits for
 * the first answers, at most ATR_STAPLING_TIMEOUT_MS); then again halfway to
 * nextUpdate (at least 5 s, at most 12 h away). A failed fetch is retried
 * after 2 s, doubling up to 5 min; meanwhile the last good response is kept
 * until its nextUpdate and then no longer stapled. Each fetch is logged
 * (info: good until; warn: failed, keeping the last good one until).
 *
 * Reloads: responses are kept per certificate (its OCSP CertID), so a new
 * generation that keeps a certificate staples its still-valid response from
 * the first handshake, before the generation is posted to the workers; a
 * new certificate is fetched at once and stapled when the answer arrives.
 *
 * Control loop only. */
#ifndef ATR_CORE_STAPLING_H
#define ATR_CORE_STAPLING_H

#include <stdint.h>
#include <uv.h>

#include "net/gen.h"

/* A fetch's deadline on the control loop (resolve, connect, answer). */
#define ATR_STAPLING_TIMEOUT_MS 5000

/* g becomes the generation whose pairs are stapled (a reference is taken;
 * the previous one's is dropped). Staples still valid for g's certificates
 * are set on g's pairs before this returns; the others are fetched. */
void atr_stapling_use(uv_loop_t *loop, atr_gen_t *g);

/* Run loop until every certificate's first fetch has been answered (or
 * failed), at most timeout_ms. For the start, before the workers run. */
void atr_stapling_wait_first(uv_loop_t *loop, uint64_t timeout_ms);

/* Cancel every fetch and timer and drop the generation: at stop (the loop
 * must run on for the handles' close callbacks). Idempotent. */
void atr_stapling_stop(void);

#endif
