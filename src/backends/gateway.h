/* What the CGI-family backends (FastCGI, SCGI, CGI) share on top of
 * cgi_env.c: the meta-variables of a live request for FastCGI and SCGI (CGI
 * builds its own, with the script it found and its PATH_INFO), and bounded
 * logging of an application's stderr (FastCGI, CGI). Their body framing is
 * frame.h; that they need CONTENT_LENGTH up front is the ops' needs_length. */
#ifndef ATR_GATEWAY_H
#define ATR_GATEWAY_H

#include "backends/backend.h"
#include "backends/cgi_env.h"
#include "net/tls.h"

enum atr_gateway_style {
    ATR_GW_SCRIPT,   /* SCRIPT_NAME = the path up to a file under the root (+ index), PATH_INFO =
                      * the rest, SCRIPT_FILENAME = root + it (FastCGI/PHP) */
    ATR_GW_MOUNT     /* SCRIPT_NAME = "", PATH_INFO = path (SCGI/WSGI apps mounted at /) */
};

/* What the connection tells every gateway: the addresses and ports, and
 * over TLS HTTPS=on and the SSL_* variables. in's views point into sc,
 * which must live as long as in is used. */
typedef struct atr_gateway_scratch {
    char local[64];
    const char *tls_vars[2 * ATR_TLS_VARS + 1];
    char tls_buf[2048];
} atr_gateway_scratch_t;
void atr_gateway_conn_vars(atr_req_t *r, atr_cgi_input_t *in, atr_gateway_scratch_t *sc);

/* Walk path (normalised: no "..", no "//") below dir to the first entry
 * that is not a directory, as Apache splits a path at its script: 0 with
 * file = dir + that prefix and *consumed its length in path when it is a
 * regular file; 1 when the whole path is directories; -errno otherwise
 * (-ENOENT, -EACCES, -ENAMETOOLONG when file[cap] is too small, -EISDIR never,
 * -ENOEXEC for a special file). One stat per segment; local files only. */
int atr_gateway_walk(const char *dir, const char *path, char *file, size_t cap,
                     size_t *consumed);

/* Build the environment for r from its parsed head m. 0, or an HTTP status
 * to answer (431 when the environment is too large). */
int atr_gateway_env(atr_req_t *r, const atr_http_msg_t *m, enum atr_gateway_style style,
                    int pass_authorization, atr_cgi_env_t *env);

/* Log an application's stderr bytes as lines "upstream NAME: WHAT stderr:
 * ...", control bytes escaped, at most ATR_GATEWAY_STDERR_MAX bytes per
 * request (*budget counts them) and at most `rate` lines per second per
 * worker (stderr_log_rate; what is dropped is counted and reported with the
 * next line logged), so a chatty or hostile application can neither flood
 * nor forge the log. */
#define ATR_GATEWAY_STDERR_MAX 4096
void atr_gateway_log_stderr(const char *upstream, const char *what, const char *p, size_t n,
                            uint32_t *budget, uint32_t rate);

#endif
