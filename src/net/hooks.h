/* How the layers above net/ plug into the request path and the workers
 * without net/ naming them (Apache httpd's hooks are the model).
 *
 * A request runs its phases in order once its head is parsed: access, limits,
 * rewrite, handler. Each phase is an ordered list of hooks; modules add theirs
 * with an order (first, middle, last). When the request is over the log hooks
 * run. Modules also keep per-worker-generation state (a slot in atr_wgen_t)
 * and may clean up when a worker ends.
 *
 * Threads: hooks are added once, on the main thread, before any worker
 * starts (core/modules.c calls every module's register function); after that
 * the lists are only read, so workers use them without locks. */
#ifndef ATR_HOOKS_H
#define ATR_HOOKS_H

typedef struct atr_req atr_req_t;
typedef struct atr_wgen atr_wgen_t;
typedef struct atr_worker atr_worker_t;

enum atr_phase {
    ATR_PHASE_ACCESS = 0, /* who may ask (allow/deny, authorization) */
    ATR_PHASE_LIMITS,     /* rate limits, suspended requests */
    ATR_PHASE_REWRITE,    /* change what is asked for */
    ATR_PHASE_HANDLER,    /* route and answer: return, static, status, proxy, cgi */
    ATR_NPHASES
};

/* Order within a phase; hooks of one order run in the order they were added. */
enum atr_hook_order { ATR_HOOK_FIRST = 0, ATR_HOOK_MIDDLE = 50, ATR_HOOK_LAST = 100 };

/* A request hook returns ATR_HOOK_DECLINED to let the next hook (and phase)
 * run, or ATR_HOOK_DONE when it took the request: it answered it, or will
 * (then it ends it with atr_req_finish / atr_req_abort / atr_req_respond*). */
enum { ATR_HOOK_DECLINED = 0, ATR_HOOK_DONE = 1 };
typedef int (*atr_req_hook_fn)(atr_req_t *r);

/* A request is over (answered or abandoned); r is still whole. */
typedef void (*atr_log_hook_fn)(atr_req_t *r);

/* Registration (main thread, before workers start). At most ATR_MAX_HOOKS
 * per list; past that the process aborts (a build mistake, not input). */
#define ATR_MAX_HOOKS 16
void atr_hook_request(enum atr_phase phase, enum atr_hook_order order, atr_req_hook_fn fn);
void atr_hook_log(atr_log_hook_fn fn);
/* Per worker generation state: init runs when a worker takes a generation,
 * free when the last request on it has ended. Either may be NULL. */
void atr_hook_wgen(void (*init)(atr_wgen_t *wg), void (*free)(atr_wgen_t *wg));
/* A worker is ending, on its own thread, once its connections are gone. */
void atr_hook_worker_exit(void (*fn)(atr_worker_t *w));
/* Some upstream of the worker's current generation has a new set of
 * members (atr_gen_members): runs on the worker's loop. */
void atr_hook_members(void (*fn)(atr_wgen_t *wg));
/* A slot in atr_wgen_t.slots for a module's per-generation state. */
int atr_wgen_slot_new(void);

/* net/ side. Run the phases from the first until a hook takes the request.
 * Returns ATR_HOOK_DONE, or ATR_HOOK_DECLINED when none did (the caller
 * answers 500: a build without a handler is a mistake). */
int atr_hooks_run_request(atr_req_t *r);
void atr_hooks_run_log(atr_req_t *r);
void atr_hooks_wgen_init(atr_wgen_t *wg);
void atr_hooks_wgen_free(atr_wgen_t *wg);
void atr_hooks_worker_exit(atr_worker_t *w);
void atr_hooks_members(atr_wgen_t *wg);

#endif
