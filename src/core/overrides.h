/* What the operator changed at run time (`atrium ctl`, core/control.c) over
 * the config file, per server line: a weight, drain or disable, a server
 * added or removed. Control loop only.
 *
 * A change outlives reloads while the file leaves that server as it was;
 * once the file changes the server's line (or removes it, or, for a server
 * added at run time, gains a line of that name) the file wins and the change
 * is dropped, with a log line. A reload that fails changes nothing. */
#ifndef ATR_OVERRIDES_H
#define ATR_OVERRIDES_H

#include "balancer/balancer.h"
#include "conf/conf.h"

typedef struct atr_override {
    char *upstream;
    char *server;                /* the server line's text (as written, or as added), or
                                  * one address of a `resolve` line ("TEXT/ADDR:PORT": admin
                                  * state only) */
    int weight;                  /* 0: the file's */
    enum atr_lb_admin admin;     /* READY: as the file says */
    int removed;                 /* a server of the file, taken out */
    int added;                   /* not in the file: `line` is all there is of it */
    atr_conf_server_t line;      /* added: the server as typed (line.text == server) */
    char file_sig[96];           /* the file's line when the change was made ("" for added) */
    const char *stale;           /* why the config being applied overrules it (then it is
                                  * ignored, and dropped once that config is in force); NULL */
} atr_override_t;

/* The change to server `server` (its line's text) of upstream u, or NULL. */
const atr_override_t *atr_override_find(const char *upstream, const char *server);

/* The change to (upstream, server), made empty when new. sv: the file's line
 * (NULL for a server that is not in the file). */
atr_override_t *atr_override_make(const char *upstream, const char *server,
                                  const atr_conf_server_t *sv);

/* Forget o when it holds no change any more (weight 0, ready, not added or
 * removed). */
void atr_override_tidy(atr_override_t *o);

/* The i-th change (for `show changes` and the members build), NULL past the end. */
atr_override_t *atr_override_at(int i);

/* The line of u (NULL: none, or no u) a change to `server` belongs to: the
 * line itself, or the `resolve` line one of whose addresses it names
 * ("TEXT/ADDR:PORT", drained on its own). */
const atr_conf_server_t *atr_override_line(const atr_conf_upstream_t *u, const char *server);

/* The file's settings of a server line as one string, to notice that a
 * reload changed them. */
void atr_override_sig(const atr_conf_server_t *sv, char *buf, size_t cap);

/* A config is being applied: mark the changes it overrules stale (members
 * built meanwhile ignore them). Then exactly one of: commit (the config is
 * in force: stale changes are dropped, each logged, and their servers'
 * admin state is reset) or abort (it was refused: nothing changed). */
void atr_overrides_begin(const atr_conf_t *next);
void atr_overrides_commit(void);
void atr_overrides_abort(void);

/* `control_state FILE`: keep the changes in path (rewritten whole, by a
 * rename, after each), and read them back at start, before the first
 * config is applied (which then overrules what the file changed meanwhile,
 * as a reload does). 0, or -errno (save) / -1 with a message in err (load:
 * a missing file is no changes; a line that makes no sense is skipped and
 * named in err, the others are kept). */
int atr_overrides_save(const char *path);
int atr_overrides_load(const char *path, char *err, size_t errlen);

/* Free everything (at exit). */
void atr_overrides_free(void);

#endif
