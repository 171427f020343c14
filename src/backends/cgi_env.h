/* The RFC 3875 meta-variables of a request, shared by the FastCGI, SCGI and
 * CGI backends (one construction, three encoders). Pure code: no libuv. */
#ifndef ATR_CGI_ENV_H
#define ATR_CGI_ENV_H

#include <stdint.h>

#include "http/http_parse.h"

/* What the environment is built from. Views are borrowed for the call. */
typedef struct atr_cgi_input {
    const atr_http_msg_t *msg;    /* the parsed request head */
    atr_str_t script_name;        /* SCRIPT_NAME, e.g. "/php/index.php" or "/cgi-bin/x.sh" */
    atr_str_t path_info;          /* PATH_INFO, e.g. "/more" (may be empty: then not set) */
    const char *script_filename;  /* SCRIPT_FILENAME (absolute), NULL = not set */
    const char *path_translated;  /* PATH_TRANSLATED (the root + PATH_INFO), NULL = not set */
    const char *document_root;    /* DOCUMENT_ROOT, NULL = not set */
    const char *remote_addr;      /* REMOTE_ADDR */
    int remote_port;              /* REMOTE_PORT */
    const char *server_addr;      /* SERVER_ADDR (the listener's address) */
    int server_port;              /* SERVER_PORT */
    int https;                    /* HTTPS=on, REQUEST_SCHEME=https */
    const char *const *tls_vars;  /* SSL_* name, value, name, value, ..., NULL (mod_ssl's) */
    uint64_t content_length;      /* CONTENT_LENGTH when has_body */
    int has_body;
    int pass_authorization;       /* export HTTP_AUTHORIZATION (FastCGI: PHP needs it; CGI: no) */
} atr_cgi_input_t;

/* The variables, in order; names and values are NUL-terminated and owned by
 * the env (one arena, freed by atr_cgi_env_free). */
typedef struct atr_cgi_env {
    char **names, **values;
    uint32_t *name_lens, *value_lens;
    int n, cap;
    char *arena;                  /* internal */
    size_t arena_len, arena_cap;
} atr_cgi_env_t;

/* Build the environment:
 *  - GATEWAY_INTERFACE=CGI/1.1, SERVER_SOFTWARE=atrium/VERSION, SERVER_PROTOCOL (HTTP/1.x as
 *    received), REQUEST_METHOD, REQUEST_URI (the target as received), QUERY_STRING (after '?',
 *    raw; empty string when none), SCRIPT_NAME, PATH_INFO (only when non-empty), PATH_TRANSLATED (when given), SCRIPT_FILENAME,
 *    DOCUMENT_ROOT, SERVER_NAME (Host without port, or server_addr), SERVER_ADDR, SERVER_PORT,
 *    REMOTE_ADDR, REMOTE_PORT, REQUEST_SCHEME, HTTPS (only when on), CONTENT_LENGTH and
 *    CONTENT_TYPE (only when the request has them);
 *  - HTTP_* for every header: name uppercased with '-' -> '_'. Dropped: names with any byte
 *    other than letters, digits and '-' (so "X_Foo" never collides with "X-Foo"), Proxy
 *    (httpoxy), Content-Length and Content-Type (they are CONTENT_*), hop-by-hop fields
 *    (Connection and what it lists, Keep-Alive, TE, Transfer-Encoding, Upgrade, Trailer,
 *    Proxy-Connection), and Authorization unless pass_authorization. Repeated fields are joined
 *    with ", " (Cookie with "; "), in order.
 * Values never contain CR, LF or NUL (the parser guarantees it for header values).
 * Returns 0, or -1 when the result would exceed 256 KiB (answer 431), or -2
 * when a value given by the caller (script_name, path_info, ...) holds CR, LF
 * or NUL (answer 400). On failure env is left empty (atr_cgi_env_free is
 * harmless). Proxy-Authorization is never exported (it is meant for us). */
int atr_cgi_env_build(const atr_cgi_input_t *in, atr_cgi_env_t *env);
void atr_cgi_env_free(atr_cgi_env_t *env);

/* Lookup (tests, CGI): the value of NAME or NULL. */
const char *atr_cgi_env_get(const atr_cgi_env_t *env, const char *name);

#endif
