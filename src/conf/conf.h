/* The configuration: parsed (Lemon grammar, conf_grammar.y), checked against
 * directive tables (conf_build.c) and built into one immutable atr_conf_t.
 * Everything in it is owned by the atr_conf_t and freed by atr_conf_free.
 * After atr_conf_load returns it is never written again, so every worker can
 * read it without locks. Durations are milliseconds, sizes bytes. */
#ifndef ATR_CONF_H
#define ATR_CONF_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "base/log.h"
#include "http/headers.h"
#include "base/registry.h"
#include "balancer/balancer.h"

struct atr_backend_ops; /* backends/backend.h: a layer above this one */

/* Where a directive was written, for messages "FILE:LINE:COL: ...". */
typedef struct atr_conf_pos {
    const char *file; /* owned by the conf (interned) */
    int line, col;    /* 1-based */
} atr_conf_pos_t;

/* `listen ADDR:PORT [tls];` — "[::1]:8080", "127.0.0.1:8080", "*:8080" (= 0.0.0.0) */
typedef struct atr_conf_listen {
    char *text;                   /* as written, e.g. "127.0.0.1:8080" */
    struct sockaddr_storage addr; /* resolved numerically, port set */
    socklen_t addrlen;
    int tls;
    atr_conf_pos_t pos;
} atr_conf_listen_t;

/* `certificate FILE; key FILE;` in a host's tls block: a certificate (its
 * chain after it in the same file) and its private key. */
typedef struct atr_conf_cert {
    char *cert, *key;
    atr_conf_pos_t cert_pos, key_pos;
} atr_conf_cert_t;

enum atr_client_verify { ATR_CLIENT_VERIFY_OFF = 0, ATR_CLIENT_VERIFY_OPTIONAL,
                         ATR_CLIENT_VERIFY_REQUIRED };

/* `tls { ... }` in a host: what clients reaching it by SNI are shown. */
typedef struct atr_conf_tls {
    atr_conf_cert_t *certs; int ncerts;  /* several pairs (ECDSA, RSA): chosen per client */
    int stapling;                   /* stapling on|off|FILE */
    char *stapling_file;            /* a DER OCSP response to staple instead of fetching one */
    atr_conf_pos_t stapling_pos;
    char *client_ca;                /* client_certificate FILE: the CAs client certificates chain to */
    atr_conf_pos_t client_ca_pos;
    enum atr_client_verify client_verify; /* client_verify off|optional|required; default
                                     * required once client_certificate is set */
    int client_ocsp;                /* client_ocsp on|off */
    int client_ocsp_fail_open;      /* client_ocsp_fail open|closed; default closed */
    atr_conf_pos_t pos;
} atr_conf_tls_t;

enum atr_session_cache { ATR_SESSION_CACHE_SHARED = 0, ATR_SESSION_CACHE_OFF,
                         ATR_SESSION_CACHE_MEMCACHED };

/* `server ADDR:PORT [weight=N] [max_conns=N] [slow_start=D] [backup] [resolve];` or
 * `server unix:/path ...;` */
typedef struct atr_conf_server {
    char *text;                   /* as written: the server's name, used to carry state over reloads */
    struct sockaddr_storage addr; /* numeric address (or AF_UNIX path); unset when resolve */
    socklen_t addrlen;
    int weight;                   /* 1..1000, default 1 */
    int max_conns;                /* 0 = unlimited */
    int backup;                   /* used only when every non-backup server is down */
    int resolve;                  /* hostname: every A/AAAA record is a member (core/resolve.c) */
    char *host;                   /* resolve: the name asked for; NULL otherwise */
    int port;                     /* resolve: the port every member gets */
    uint64_t slow_start;          /* ms to ramp up to full weight after coming back; 0 = none */
    atr_conf_pos_t pos;
} atr_conf_server_t;

#define ATR_KEEPALIVE_AUTO (-1)
#define ATR_KEEPALIVE_AUTO_MAX 4096 /* idle connections per server per worker, at most */

/* `upstream NAME { ... }` */
typedef struct atr_conf_upstream {
    char *name;
    const atr_lb_ops_t *balance;   /* `balance NAME;` from atr_lb_registry; default its first */
    atr_lb_args_t balance_args;    /* `balance NAME ARG...;` as the method parsed them */
    /* `protocol NAME;` from the registered protocols (atr_conf_use_protocols), default
     * their first; the runtime's internal upstreams of `cgi DIR;` routes point at cgi's */
    const struct atr_backend_ops *protocol;
    atr_conf_server_t *servers;
    int nservers;
    uint64_t connect_timeout;      /* connect_timeout 2s; -> 502/504 */
    uint64_t read_timeout;         /* read_timeout 60s; response inactivity -> 504 */
    uint64_t send_timeout;         /* send_timeout 60s; request-body write inactivity -> 504 */
    int keepalive;                 /* keepalive auto|N; idle pooled connections per server per
                                    * worker: ATR_KEEPALIVE_AUTO (the default) keeps what was in
                                    * use (up to max_conns or ATR_KEEPALIVE_AUTO_MAX), trimmed by
                                    * keepalive_timeout; 0 = no reuse */
    uint64_t keepalive_timeout;    /* keepalive_timeout 60s; idle pooled connection lifetime */
    int keepalive_requests;        /* keepalive_requests 1000; per backend connection */
    int queue;                     /* queue 128; waiting requests when all servers are at max_conns */
    uint64_t queue_timeout;        /* queue_timeout 5s; -> 503 */
    int retries;                   /* retries 2; extra servers tried after a connect failure */
    uint64_t fail_timeout;         /* fail_timeout 10s; how long a refusing server is marked down */
    char **spawn_argv;             /* spawn COMMAND [ARG...] [children=N]; NULL-terminated, NULL = none:
                                    * Atrium creates the listening socket of the one server and runs
                                    * children that accept on it (fd 0, the FastCGI convention) */
    int spawn_children;            /* children=N, default 1 */
    atr_conf_pos_t spawn_pos;
    /* protocol https: how the backend is verified and what is shown to it */
    char *tls_trust;               /* tls_trust FILE; NULL = the system's trust store */
    char *tls_server_name;         /* tls_server_name NAME; NULL = each server's host */
    int tls_verify;                /* tls_verify on|off; default on */
    char *tls_client_cert, *tls_client_key; /* tls_client_certificate / tls_client_key */
    atr_conf_pos_t tls_trust_pos, tls_client_cert_pos, tls_client_key_pos;
    /* health_check [path=/] [interval=2s] [timeout=1s] [fails=3] [passes=2]: an HTTP GET
     * from the control loop to every server; 2xx/3xx passes */
    char *hc_path;                 /* NULL: no active checks */
    uint64_t hc_interval, hc_timeout;
    int hc_fails, hc_passes;
    /* outlier [consecutive=5] [interval=10s] [max_interval=5m] [max_ejected=50%] | off:
     * passive ejection of servers that fail in a row (balancer/outlier.c); consecutive 0 = off */
    atr_lb_outlier_t outlier;
    atr_conf_pos_t pos;
} atr_conf_upstream_t;


enum atr_route_kind {
    ATR_ROUTE_PROXY = 0,
    ATR_ROUTE_STATIC,
    ATR_ROUTE_RETURN,
    ATR_ROUTE_CGI,
    ATR_ROUTE_STATUS, /* `status;`: the metrics page */
};

/* `route PREFIX { proxy UPSTREAM; | static DIR; | return CODE [TEXT]; ... }` */
/* `allow ADDR[/BITS]|all;` `deny ...;` in a route: the first rule whose
 * network holds the client decides; none: allowed. */
typedef struct atr_conf_acl {
    int allow;
    int family;                     /* AF_INET, AF_INET6, or 0 for `all` */
    uint8_t addr[16];               /* the network, its host bits cleared */
    int bits;
} atr_conf_acl_t;

/* 1 when the rules let the client at peer (an address as text) in. */
int atr_conf_acl_allows(const atr_conf_acl_t *acl, int n, const char *peer);

typedef struct atr_conf_route {
    char *prefix;                   /* starts with '/'; longest prefix wins. Or "*.EXT": a path
                                     * with a segment ending in .EXT (before any prefix route) */
    enum atr_route_kind kind;
    atr_conf_upstream_t *upstream;  /* ATR_ROUTE_PROXY: resolved reference into conf->upstreams */
    char *proxy_prefix;             /* `proxy NAME PREFIX;`: the route's prefix is replaced by it in
                                     * the path the backend gets (nginx's proxy_pass with a URI);
                                     * NULL: the path goes as received */
    char *static_root;              /* ATR_ROUTE_STATIC: directory (checked to exist) */
    char *index;                    /* `index FILE;` default "index.html" (static; proxy to fastcgi/scgi) */
    char *root;                     /* ATR_ROUTE_PROXY: `root DIR;` document root for gateway
                                     * backends: SCRIPT_FILENAME = root + path; NULL = none */
    char *cgi_dir;                  /* ATR_ROUTE_CGI: `cgi DIR;` scripts directory (checked to exist) */
    char *try_dir;                  /* `try_files DIR;` (proxy, cgi): a request naming a regular
                                     * file under DIR is served from it; NULL = none */
    int return_status;              /* ATR_ROUTE_RETURN */
    char *return_body;              /* ATR_ROUTE_RETURN, may be NULL */
    atr_hdr_op_t *req_hdr;  int nreq_hdr;
    atr_hdr_op_t *resp_hdr; int nresp_hdr;
    atr_conf_acl_t *acl; int nacl;  /* allow/deny, in order; none: everyone */
    atr_conf_pos_t pos;
} atr_conf_route_t;

/* `host NAME... { route ...; }` — `host *` is the default. */
typedef struct atr_conf_host {
    char **names; int nnames;       /* lowercased; "*" for the default; "*.example.com" wildcard */
    atr_conf_route_t *routes; int nroutes; /* sorted by prefix length, longest first */
    atr_conf_tls_t *tls;            /* NULL: no tls block */
    atr_conf_pos_t pos;
} atr_conf_host_t;

/* Heartbeats (Apache's mod_heartbeat/mod_heartmonitor format; docs/heartbeat.md). */
typedef struct atr_conf_heartbeat {
    char *listen;                   /* heartbeat_listen ADDR:PORT; NULL = no monitor */
    struct sockaddr_storage listen_addr;
    socklen_t listen_addrlen;
    char *send;                     /* heartbeat_send ADDR:PORT; NULL = no beats of ours */
    struct sockaddr_storage send_addr;
    socklen_t send_addrlen;
    uint64_t interval;              /* heartbeat_interval 1s: between our beats */
    char *key_file;                 /* heartbeat_key FILE; NULL = beats are not signed */
    unsigned char *key;             /* its bytes (trailing blanks and newlines cut), read at load */
    size_t keylen;
    char *storage;                  /* heartbeat_storage FILE: mod_heartmonitor's flat file */
    int max_servers;                /* heartbeat_max_servers 1024: senders tracked at once */
    atr_conf_pos_t listen_pos, send_pos, key_pos, storage_pos;
} atr_conf_heartbeat_t;

typedef struct atr_conf {
    char *path;                     /* the main file as given */
    int workers;                    /* workers N|auto; 0 = auto (one per core) */
    char *user;                     /* user NAME; NULL = stay */
    char *pid_file;                 /* pid_file PATH; NULL = none */

    char *error_log;                /* error_log stderr|PATH|syslog:... [LEVEL]; "stderr" default;
                                       a syslog target spelled out in full (atr_syslog_text) */
    atr_conf_pos_t error_log_pos;   /* where error_log was set (for errors opening it) */
    enum atr_log_level error_level; /* default info */
    char *access_log;               /* access_log stdout|stderr|off|PATH|syslog:... [combined|json];
                                       default off */
    enum atr_access_format access_format;
    atr_conf_pos_t access_log_pos;  /* where access_log was set (for errors opening it) */

    /* HTTP front end limits (http-level directives at top level) */
    uint32_t max_request_line;      /* max_request_line 8k;     -> 414 */
    uint32_t max_header_size;       /* max_header_size 32k;     -> 431 (whole head) */
    uint32_t max_headers;           /* max_headers 100;         -> 431 */
    uint64_t max_body_size;         /* max_body_size 1g;        -> 413; 0 = unlimited */
    uint64_t header_timeout;        /* header_timeout 10s;      total time to receive a head -> 408 */
    uint64_t body_timeout;          /* body_timeout 60s;        request-body read inactivity -> 408 */
    uint64_t send_timeout;          /* send_timeout 60s;        client write inactivity -> close */
    uint64_t keepalive_timeout;     /* keepalive_timeout 75s;   idle client keep-alive */
    int keepalive_requests;         /* keepalive_requests 1000; per client connection */
    uint64_t drain_timeout;         /* drain_timeout 30s;       graceful stop / old generation bound */
    int max_connections;            /* max_connections N|auto;  client connections per worker; 0 = auto */
    uint32_t buffer_size;           /* buffer_size 16k;         per-direction I/O buffer / watermark unit */
    char *via;                      /* via NAME|off; default "atrium"; NULL = off */
    int underscores_in_headers;     /* underscores_in_headers on|off; default off (dropped) */
    int allow_ambiguous_paths;      /* ambiguous_paths reject|allow; default reject (400) */
    int cgi_max_procs;              /* cgi_max_procs 64;        CGI children at once, all workers */
    char *spool_dir;                /* spool_dir /tmp;          chunked bodies for gateways (temp files) */
    uint32_t stderr_log_rate;       /* stderr_log_rate 100;     application stderr lines/s, per worker */
    int cgi_queue;                  /* cgi_queue 256;           requests waiting for a CGI slot (per worker) */
    uint64_t cgi_timeout;           /* cgi_timeout 30s;         script output inactivity -> SIGTERM, 504 */

    char *control;                  /* control PATH; the runtime API's unix socket; NULL = none */
    atr_conf_pos_t control_pos;
    char *control_state;            /* control_state FILE; where run-time changes are kept so
                                     * that a restart keeps them too; NULL = in memory only */
    atr_conf_pos_t control_state_pos;

    /* TLS, process-wide (hosts have their own blocks) */
    uint64_t tls_handshake_timeout; /* tls_handshake_timeout 10s */
    char *tls_ticket_keys;          /* tls_ticket_keys FILE; NULL = keys made in memory */
    atr_conf_pos_t tls_ticket_keys_pos;
    uint64_t tls_ticket_rotate;     /* tls_ticket_rotate 1h (keys made in memory) */
    enum atr_session_cache tls_session_cache; /* tls_session_cache shared SIZE|memcached ADDR...|off */
    uint64_t tls_session_cache_size;          /* shared: bytes, default 10m */
    struct sockaddr_storage *tls_memcached;   /* memcached: the servers */
    int ntls_memcached;
    struct sockaddr_storage *resolvers; /* resolver ADDR...; none = /etc/resolv.conf's */
    int nresolvers;
    uint64_t resolve_ttl_min;       /* resolve_ttl_min 1s;  a record is asked for again no sooner */
    uint64_t resolve_ttl_max;       /* resolve_ttl_max 5m;  ... and no later, whatever its TTL */
    int resolve_max;                /* resolve_max 64;      members one `resolve` server may add */

    atr_conf_heartbeat_t hb;        /* heartbeat_* directives */

    atr_conf_listen_t *listens; int nlistens;
    atr_conf_upstream_t *upstreams; int nupstreams;
    atr_conf_host_t *hosts; int nhosts; /* in file order; exactly one may be "*" */
} atr_conf_t;

/* The backend protocols `protocol NAME;` may name: a registry whose entries
 * are atr_backend_ops_t, the first being the default. The layer that
 * implements them (above this one) registers it once, before any config is
 * loaded; the registry is borrowed for the life of the process. Until then
 * no protocol name is accepted and upstreams get a NULL protocol. */
void atr_conf_use_protocols(const atr_registry_t *protocols);

/* Read, parse and check PATH (and its includes) exactly as a start would.
 * On success returns a new conf. On error returns NULL and writes one line
 * "FILE:LINE:COL: message" (no newline) into err[0..errlen). */
atr_conf_t *atr_conf_load(const char *path, char *err, size_t errlen);

/* Parse from a string (tests, fuzzing); `name` is used as FILE in messages,
 * includes are resolved relative to the current directory. */
atr_conf_t *atr_conf_load_string(const char *name, const char *text, size_t len,
                                 char *err, size_t errlen);

/* As atr_conf_load_string, with ATR_CONF_* flags (added by the config engineer). */
#define ATR_CONF_NO_DNS 0x1u /* `server host:PORT` is an error instead of a getaddrinfo()
                              * lookup (fuzzing must never block on a resolver) */
#define ATR_CONF_CONTROL_ONLY 0x2u /* only `control` is read (`atrium ctl`): the rest of the
                                    * file may be mid-edit, its syntax must hold */
atr_conf_t *atr_conf_load_string_ex(const char *name, const char *text, size_t len,
                                    unsigned flags, char *err, size_t errlen);
/* As atr_conf_load, with ATR_CONF_* flags. */
atr_conf_t *atr_conf_load_ex(const char *path, unsigned flags, char *err, size_t errlen);

void atr_conf_free(atr_conf_t *c); /* NULL is fine */

/* Write the effective configuration (every default filled in) in the config
 * language, so that it parses back to the same conf (-T). */
void atr_conf_dump(const atr_conf_t *c, FILE *out);

/* Lookups used by the runtime. */
/* A server line typed at run time (`atrium ctl add server UPSTREAM ADDR
 * [PARAM...]`): words[0] the address (IP:PORT, [IPv6]:PORT or unix:/path; no
 * DNS), then the config's server parameters but `resolve`, checked as the
 * config checks them. 0 with *out filled (out->text malloc'd: the caller
 * frees it), or -1 with the reason in err. */
int atr_conf_server_parse(const char *const *words, int n, atr_conf_server_t *out, char *err,
                          size_t errlen);

const atr_conf_upstream_t *atr_conf_find_upstream(const atr_conf_t *c, const char *name);

/* The host a name (a Host value, an SNI name; a port after it is allowed)
 * selects, as operators expect (and nginx does): an exact name first, the
 * name with a port before the bare one, then the longest matching wildcard.
 * NULL when none matches: the caller picks its default. A trailing dot is
 * ignored. */
const atr_conf_host_t *atr_conf_match_host(const atr_conf_t *c, const char *name, size_t len);

/* The host TLS handshakes without a known SNI name get: `host *` when it has
 * a tls block, else the first host with one; NULL when none has. */
const atr_conf_host_t *atr_conf_default_tls_host(const atr_conf_t *c);

/* Parse a size ("64k", "1m", "512") / duration ("750ms", "2s", "5m", "1h",
 * bare number = seconds). Return 0 on success, -1 if malformed,
 * ATR_CONF_TOO_LARGE if well formed but beyond 64 bits (so that the error
 * can say the value is out of range rather than invalid). */
#define ATR_CONF_TOO_LARGE (-2)
int atr_conf_parse_size(const char *s, uint64_t *out);
int atr_conf_parse_duration(const char *s, uint64_t *out_ms);

#endif
