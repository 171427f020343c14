/* Process runtime: the control loop (main thread), building configuration
 * generations (net/gen.h) and handing them and the listeners to workers. */
#ifndef ATR_RUNTIME_H
#define ATR_RUNTIME_H

#include <stdatomic.h>
#include <stdint.h>

#include "conf/conf.h"
#include "net/gen.h"

/* What -t checks beyond the config itself, exactly as a start would: the
 * features this build supports and that every listen address can be bound.
 * 0, or -1 with "FILE:LINE:COL: message" in err. */
int atr_runtime_check(const atr_conf_t *conf, char *err, size_t errlen);

/* Run the proxy with a loaded config until stopped. Takes ownership of conf.
 * Returns the process exit status. */
int atr_runtime_run(atr_conf_t *conf);

#endif
