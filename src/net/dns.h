/* A c-ares channel driven by a libuv loop (specs-digest §6): its sockets
 * watched with uv_poll, its timeouts with one timer. Asks for every A and
 * AAAA record of a name and answers with the addresses and the time they may
 * be kept. One channel per loop (channels are not thread-safe); the control
 * loop's resolver (core/resolve.c) is the user. */
#ifndef ATR_DNS_H
#define ATR_DNS_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct atr_dns atr_dns_t;

/* The status of a query whose channel was freed (compare the pointer). */
extern const char atr_dns_cancelled[];

/* The answer to one query. status NULL: addrs[0..n) (n >= 1), sorted and
 * without repeats, each with `port` set, cut to the `max` asked for; ttl_s
 * is the smallest TTL of the records and CNAMEs that led to them. Otherwise
 * status says why (c-ares' words: "Domain name not found", "Timeout while
 * contacting DNS servers", ...), n is 0, and nothing else is set. addrs is
 * valid during the call only. */
typedef void (*atr_dns_cb)(void *arg, const char *status, const struct sockaddr_storage *addrs,
                           int n, uint32_t ttl_s);

/* A channel on loop asking servers[0..n) (n 0: /etc/resolv.conf's), DNS only
 * (no /etc/hosts), timeout_ms per try, 2 tries. NULL with err set when
 * c-ares refuses. */
atr_dns_t *atr_dns_new(uv_loop_t *loop, const struct sockaddr_storage *servers, int n,
                       unsigned timeout_ms, char *err, size_t errlen);

/* Ask for host's addresses; cb runs once on the loop, possibly during this
 * call (an immediate error), or during atr_dns_free with status
 * atr_dns_cancelled when the channel goes first. */
void atr_dns_query(atr_dns_t *d, const char *host, int port, int max, atr_dns_cb cb, void *arg);

/* Cancel every query (their callbacks run now, with atr_dns_cancelled) and
 * close the channel; its handles close on the loop. NULL is fine. */
void atr_dns_free(atr_dns_t *d);

#endif
