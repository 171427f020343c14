/* Listening sockets: created by the control loop, adopted by workers. */
#ifndef ATR_LISTENER_H
#define ATR_LISTENER_H

#include <sys/socket.h>

#include "net/worker.h"

/* socket + SO_REUSEADDR + SO_REUSEPORT + bind + listen (+ TCP_DEFER_ACCEPT
 * for tls). Returns the fd, or -errno (the address is unusable: the config
 * or reload is refused). */
int atr_listener_socket(const struct sockaddr *addr, socklen_t len, int tls);

/* Whether another socket listens on addr already (another process: a
 * second Atrium would share it through SO_REUSEPORT and silently split the
 * traffic). A bind with SO_REUSEADDR alone, released at once: 0 when free,
 * -EADDRINUSE when some socket listens there, another -errno when the bind
 * fails otherwise. */
int atr_listener_probe(const struct sockaddr *addr, socklen_t len);

/* Worker side: adopt fd as a listener of w (loop thread). The fd is owned by
 * the listener from here on, even on failure. */
int atr_listener_adopt(atr_worker_t *w, const char *key, int fd);

/* Close and free (the handle's close callback frees it). */
void atr_listener_close(atr_listener_t *l);

/* Stop and start taking connections (max_connections: they wait in the backlog). */
void atr_listener_pause(atr_listener_t *l);
void atr_listener_resume(atr_listener_t *l);

#endif
