/* The runtime API: `control PATH;` opens a unix socket (mode 0600, owned by
 * the user Atrium runs as) on the control loop, and `atrium ctl COMMAND`
 * (core/ctl_client.c) speaks to it. One command per connection: a line of
 * words in, text out, then the server closes; an answer whose first line
 * starts "error: " is a refusal. docs/control.md lists the commands. */
#ifndef ATR_CONTROL_H
#define ATR_CONTROL_H

#include <stdint.h>
#include <uv.h>

#include "conf/conf.h"
#include "net/gen.h"

/* What the control loop's owner (core/runtime.c) does for the commands. */
typedef struct atr_control_ops {
    const atr_gen_t *(*gen)(void);              /* the generation in force */
    int (*reload)(char *err, size_t errlen);    /* 0, or -1 with the reason (kept running) */
    void (*reopen)(void);                       /* the log files */
    /* The operator's changes (core/overrides.h) changed: build the running
     * generation's members again and hand them to the workers; the upstream
     * named `force` (NULL: none) even when its members are the same (a
     * drain: its idle connections close). */
    void (*members_changed)(const char *force);
    /* A change was made: keep the changes in `control_state` if the config
     * has one. 0, or -errno with the file's path in *path. */
    int (*save)(const char **path);
    /* The last failed reload's message and wall-clock time (ms), or NULL. */
    const char *(*last_error)(uint64_t *unix_ms);
} atr_control_ops_t;

/* Serve `control` of conf (close the socket when conf has none, open
 * another when the path changed). 0, or -1 with "FILE:LINE:COL: message"
 * in err and the current socket kept. */
int atr_control_apply(uv_loop_t *loop, const atr_conf_t *conf, const atr_control_ops_t *ops,
                      char *err, size_t errlen);

/* The socket's owner when Atrium runs as root with `user` (set before the
 * first apply). */
void atr_control_set_owner(uv_uid_t uid, uv_gid_t gid);

/* Answer one command line (no newline) into out: the whole protocol but the
 * socket, for the socket and for tests. Returns 0, or -1 for a refusal. */
struct atr_buf;
int atr_control_run(const char *line, struct atr_buf *out);

/* Close the socket and the connections on it (shutdown). */
void atr_control_stop(void);

#endif
