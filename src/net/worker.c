/* Worker threads (DESIGN.md "Threads and loops"). The control loop talks to a
 * worker only through its mailbox + uv_async; everything else here runs on
 * the worker's own loop. */
#include "net/worker.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "net/conn.h"
#include "net/listener.h"
#include "base/log.h"
#include "net/hooks.h"
#include "base/socache.h"
#include "base/util.h"

atr_process_t atr_process;

static void cache_free(enum atr_cache_kind k, void *p)
{
    if (k == ATR_CACHE_REQ_PARSER || k == ATR_CACHE_RESP_PARSER)
        atr_http_parser_free(p);
    else
        free(p);
}

void atr_cache_put(atr_worker_t *w, enum atr_cache_kind k, void *p)
{
    atr_cache_t *c = &w->caches[k];
    if (p == NULL)
        return;
    if (c->n < ATR_CACHE_MAX && !w->stopping)
        c->items[c->n++] = p;
    else
        cache_free(k, p);
}

static uint32_t buffer_size(atr_worker_t *w)
{
    return w->wgen ? w->wgen->gen->conf->buffer_size : 0;
}

char *atr_cache_buf_get(atr_worker_t *w, uint32_t *cap)
{
    *cap = buffer_size(w) ? buffer_size(w) : 16384;
    char *b = atr_cache_get(w, ATR_CACHE_BUF);
    return b ? b : atr_xmalloc(*cap);
}

void atr_cache_buf_put(atr_worker_t *w, char *buf, uint32_t cap)
{
    if (buf && cap == buffer_size(w))
        atr_cache_put(w, ATR_CACHE_BUF, buf);
    else
        free(buf);
}

char *atr_cache_head_get(atr_worker_t *w)
{
    char *h = atr_cache_get(w, ATR_CACHE_HEAD);
    return h ? h : atr_xmalloc(ATR_HEAD_CAP);
}

void atr_cache_head_put(atr_worker_t *w, char *head)
{
    /* Only buffers of about the standard size: a head that grew to tens of
     * KiB is not kept around for the small ones that follow. */
    size_t n = head ? malloc_usable_size(head) : 0;
    if (n >= ATR_HEAD_CAP && n < 2 * ATR_HEAD_CAP)
        atr_cache_put(w, ATR_CACHE_HEAD, head);
    else
        free(head);
}

void atr_cache_flush(atr_worker_t *w)
{
    for (int k = 0; k < ATR_CACHE_NKINDS; k++) {
        while (w->caches[k].n > 0)
            cache_free((enum atr_cache_kind)k, w->caches[k].items[--w->caches[k].n]);
    }
}

static void wgen_free(atr_wgen_t *wg)
{
    atr_hooks_wgen_free(wg);
    atr_gen_unref(wg->gen);
    free(wg);
}

void atr_wgen_ref(atr_wgen_t *wg)
{
    wg->refs++;
}

void atr_wgen_unref(atr_wgen_t *wg)
{
    if (--wg->refs == 0)
        wgen_free(wg);
}

static atr_wgen_t *wgen_new(atr_worker_t *w, atr_gen_t *gen)
{
    atr_wgen_t *wg = atr_xcalloc(1, sizeof *wg);
    wg->refs = 1; /* the worker's "current" reference */
    wg->w = w;
    wg->gen = gen; /* takes the mailbox's reference */
    atr_hooks_wgen_init(wg);
    return wg;
}

static atr_listener_t *find_listener(atr_worker_t *w, const char *key)
{
    for (atr_listener_t *l = w->listeners; l; l = l->next)
        if (strcmp(l->key, key) == 0)
            return l;
    return NULL;
}

/* Close listeners absent from the new set, adopt new fds. Listeners whose
 * address stays are kept as they are: never re-bound. */
static void apply_listeners(atr_worker_t *w, atr_listen_fd_t *ls, int n)
{
    atr_listener_t **pp = &w->listeners;
    while (*pp) {
        atr_listener_t *l = *pp;
        int keep = 0;
        for (int i = 0; i < n && !keep; i++)
            keep = strcmp(ls[i].key, l->key) == 0;
        if (keep) {
            pp = &l->next;
        } else {
            *pp = l->next;
            ATR_INFO("%s: closing listener %s", w->name, l->key);
            atr_listener_close(l);
        }
    }
    for (int i = 0; i < n; i++) {
        if (ls[i].fd >= 0 && find_listener(w, ls[i].key) == NULL)
            atr_listener_adopt(w, ls[i].key, ls[i].fd);
        else if (ls[i].fd >= 0)
            close(ls[i].fd);
        free(ls[i].key);
    }
    free(ls);
}

static void close_listeners(atr_worker_t *w)
{
    while (w->listeners) {
        atr_listener_t *l = w->listeners;
        w->listeners = l->next;
        atr_listener_close(l);
    }
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Attach the generation's session cache when it is another one. */
static void use_session_cache(atr_worker_t *w, atr_gen_cache_t *c)
{
    if (c == w->session_cache)
        return;
    if (w->session_local)
        atr_socache_detach(w->session_local);
    atr_gen_cache_unref(w->session_cache);
    w->session_cache = c;
    w->session_local = NULL;
    if (c) {
        atr_gen_cache_ref(c);
        w->session_local = atr_socache_attach(c->cache, &w->loop);
    }
}

static void maybe_exit(atr_worker_t *w)
{
    if (!w->stopping || w->nconns > 0)
        return;
    use_session_cache(w, NULL);
    atr_hooks_worker_exit(w);
    if (w->wgen) {
        atr_wgen_t *wg = w->wgen;
        w->wgen = NULL;
        atr_wgen_unref(wg);
    }
    /* Remaining handles are ours (async, timers, pooled backend connections
     * closed by the wgen above); close them so the loop ends. */
    uv_walk(&w->loop, walk_close, NULL);
}

void atr_worker_pause_accept(atr_worker_t *w)
{
    if (w->accept_paused)
        return;
    w->accept_paused = 1;
    for (atr_listener_t *l = w->listeners; l; l = l->next)
        atr_listener_pause(l);
    ATR_WARN("%s: max_connections (%d) reached: new connections wait", w->name,
             w->wgen ? w->wgen->gen->max_conns : 0);
}

static void maybe_resume_accept(atr_worker_t *w)
{
    int cap = w->wgen ? w->wgen->gen->max_conns : 0;
    if (!w->accept_paused || w->stopping || (cap > 0 && w->nconns >= cap))
        return;
    w->accept_paused = 0;
    for (atr_listener_t *l = w->listeners; l; l = l->next)
        atr_listener_resume(l);
}

void atr_worker_conn_gone(atr_worker_t *w)
{
    maybe_resume_accept(w);
    maybe_exit(w);
}

/* The drain timer: at a stop, the end of the drain for every connection;
 * after reloads, the end for requests still running on a replaced
 * generation (drain_timeout bounds both: a tunnel or a slow request must not
 * keep an old generation and its pools alive for good). */
static void on_drain_timeout(uv_timer_t *t)
{
    atr_worker_t *w = t->data;
    if (w->stopping) {
        ATR_WARN("%s: drain timeout: closing %d connection(s)", w->name, w->nconns);
        for (atr_conn_t *c = w->conns; c; c = c->next)
            atr_conn_close(c);
        return;
    }
    uint64_t now = uv_now(&w->loop), next = 0;
    int cut = 0;
    for (atr_conn_t *c = w->conns; c; c = c->next) {
        uint64_t at = c->req ? c->req->wg->retire_at : 0;
        if (at == 0)
            continue;
        if (at <= now) {
            atr_conn_close(c);
            cut++;
        } else if (next == 0 || at < next) {
            next = at;
        }
    }
    if (cut)
        ATR_WARN("%s: drain timeout after reload: closing %d connection(s) of an old generation",
                 w->name, cut);
    if (next)
        uv_timer_start(&w->drain_timer, on_drain_timeout, next - now, 0);
}

/* A generation was replaced while requests still use it: they get its
 * drain_timeout to finish. */
static void retire(atr_worker_t *w, atr_wgen_t *old)
{
    uint64_t drain = old->gen->conf->drain_timeout;
    old->retire_at = uv_now(&w->loop) + (drain ? drain : 1);
    if (!uv_is_active((uv_handle_t *)&w->drain_timer) ||
        uv_timer_get_due_in(&w->drain_timer) > drain) {
        uv_timer_start(&w->drain_timer, on_drain_timeout, drain, 0);
        uv_unref((uv_handle_t *)&w->drain_timer); /* never what keeps a loop alive */
    }
}

static void begin_stop(atr_worker_t *w)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    close_listeners(w);
    atr_conn_close_idle(w);
    uint64_t drain = w->wgen ? w->wgen->gen->conf->drain_timeout : 30000;
    uv_timer_start(&w->drain_timer, on_drain_timeout, drain, 0);
    uv_unref((uv_handle_t *)&w->drain_timer);
    maybe_exit(w);
}

static void on_wake(uv_async_t *a)
{
    atr_worker_t *w = a->data;
    uv_mutex_lock(&w->lock);
    atr_gen_t *gen = w->next_gen;
    atr_listen_fd_t *ls = w->next_listen;
    int nls = w->next_nlisten, stop = w->stop_requested, members = w->members_changed;
    w->members_changed = 0;
    w->next_gen = NULL;
    w->next_listen = NULL;
    w->next_nlisten = 0;
    uv_mutex_unlock(&w->lock);

    if (gen && !w->stopping) {
        atr_wgen_t *old = w->wgen;
        if (ls)
            apply_listeners(w, ls, nls);
        atr_cache_flush(w);
        w->wgen = wgen_new(w, gen);
        use_session_cache(w, gen->session_cache);
        if (old && old->refs > 1)
            retire(w, old);
        maybe_resume_accept(w); /* the new generation's cap may be higher */
        if (old)
            atr_wgen_unref(old);
        ATR_DEBUG("%s: generation %llu active", w->name, (unsigned long long)gen->id);
        if (old == NULL) /* the first: this worker listens now (the `started` line waits) */
            atomic_fetch_add(&atr_process.workers_ready, 1);
    } else {
        if (gen)
            atr_gen_unref(gen);
        for (int i = 0; ls && i < nls; i++) {
            if (ls[i].fd >= 0)
                close(ls[i].fd);
            free(ls[i].key);
        }
        free(ls);
    }
    /* A new generation read its members just now; an older one's change
     * needs its hook. */
    if (members && !gen && w->wgen && !w->stopping)
        atr_hooks_members(w->wgen);
    if (stop)
        begin_stop(w);
}

/* Under AddressSanitizer malloc is the sanitizer's, and glibc's allocator
 * never gets initialised by a first malloc in the main thread: malloc_trim
 * would initialise it from several workers at once, which corrupts its arena
 * list (seen as a SEGV in mtrim or an abort at thread exit). */
#ifdef ATR_ASAN
#define ATR_TRIM_HEAP() ((void)0)
#else
#define ATR_TRIM_HEAP() malloc_trim(0)
#endif

/* Half a second without a new request: empty the object caches and hand the
 * freed pages back to the kernel, so a burst's memory does not stay with an
 * idle proxy. Never runs while requests are arriving. */
static void on_idle_tick(uv_timer_t *t)
{
    atr_worker_t *w = t->data;
    int cached = 0;
    for (int k = 0; k < ATR_CACHE_NKINDS; k++)
        cached += w->caches[k].n;
    if (w->requests == w->requests_at_tick && cached > 0) {
        atr_cache_flush(w);
        ATR_TRIM_HEAP();
    }
    w->requests_at_tick = w->requests;
}

static void on_kick_idle(uv_idle_t *h)
{
    atr_worker_t *w = h->data;
    uv_idle_stop(h);
    atr_sock_run_kicks(w);
}

void atr_worker_want_kicks(atr_worker_t *w)
{
    uv_idle_start(&w->kick_idle, on_kick_idle);
}

static void thread_main(void *arg)
{
    atr_worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Let close callbacks run, then the loop must be empty. */
    uv_walk(&w->loop, walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    atr_cache_flush(w);
    if (uv_loop_close(&w->loop) != 0)
        ATR_CRIT("%s: loop closed with live handles", w->name);
}

atr_worker_t *atr_worker_new(int id)
{
    atr_worker_t *w = atr_xcalloc(1, sizeof *w);
    w->id = id;
    snprintf(w->name, sizeof w->name, "w%d", id);
    w->seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(id + 1) ^ (uint64_t)getpid();
    uv_loop_init(&w->loop);
    w->loop.data = w;
    uv_mutex_init(&w->lock);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    atr_slab_init(&w->conn_slab, sizeof(atr_conn_t));
    uv_idle_init(&w->loop, &w->kick_idle);
    w->kick_idle.data = w;
    uv_timer_init(&w->loop, &w->idle_timer);
    w->idle_timer.data = w;
    uv_timer_start(&w->idle_timer, on_idle_tick, 500, 500);
    uv_unref((uv_handle_t *)&w->idle_timer);
    return w;
}

int atr_worker_start(atr_worker_t *w)
{
    return uv_thread_create(&w->thread, thread_main, w);
}

void atr_worker_post(atr_worker_t *w, atr_gen_t *gen, atr_listen_fd_t *ls, int nls)
{
    atr_gen_ref(gen);
    uv_mutex_lock(&w->lock);
    if (w->next_gen)
        atr_gen_unref(w->next_gen);
    w->next_gen = gen;
    if (ls) {
        /* An unapplied older set is superseded: a fresh fd it carried for an
         * address the new set keeps moves over; the others close. */
        for (int i = 0; w->next_listen && i < w->next_nlisten; i++) {
            for (int j = 0; j < nls && w->next_listen[i].fd >= 0; j++) {
                if (ls[j].fd < 0 && strcmp(ls[j].key, w->next_listen[i].key) == 0) {
                    ls[j].fd = w->next_listen[i].fd;
                    w->next_listen[i].fd = -1;
                }
            }
            if (w->next_listen[i].fd >= 0)
                close(w->next_listen[i].fd);
            free(w->next_listen[i].key);
        }
        free(w->next_listen);
        w->next_listen = ls;
        w->next_nlisten = nls;
    }
    uv_mutex_unlock(&w->lock);
    uv_async_send(&w->wake);
}

void atr_worker_stop(atr_worker_t *w)
{
    uv_mutex_lock(&w->lock);
    w->stop_requested = 1;
    uv_mutex_unlock(&w->lock);
    uv_async_send(&w->wake);
}

void atr_worker_members_changed(atr_worker_t *w)
{
    uv_mutex_lock(&w->lock);
    w->members_changed = 1;
    uv_mutex_unlock(&w->lock);
    uv_async_send(&w->wake);
}

void atr_worker_join_free(atr_worker_t *w)
{
    uv_thread_join(&w->thread);
    uv_mutex_destroy(&w->lock);
    if (w->next_gen)
        atr_gen_unref(w->next_gen);
    free(w);
}
