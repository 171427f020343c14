/* Shared by the libFuzzer targets: a check that aborts with its place, so
 * libFuzzer records the input as a crash. */
#ifndef ATR_FUZZ_H
#define ATR_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                          \
        }                                                                     \
    } while (0)

#endif
