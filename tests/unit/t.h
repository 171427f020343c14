/* A minimal table-test harness: every check names the line of the case it
 * belongs to, and the program exits non-zero when any check failed. */
#ifndef ATR_T_H
#define ATR_T_H

#include <stdio.h>
#include <string.h>

static int t_failed, t_checked;

#define T_CHECK(line, cond, ...)                                              \
    do {                                                                      \
        t_checked++;                                                          \
        if (!(cond)) {                                                        \
            t_failed++;                                                       \
            fprintf(stderr, "%s:%d: case at line %d failed: %s: ", __FILE__,  \
                    __LINE__, (int)(line), #cond);                            \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

#define T_DONE()                                                              \
    do {                                                                      \
        printf("%d checks, %d failed\n", t_checked, t_failed);                \
        return t_failed ? 1 : 0;                                              \
    } while (0)

#endif
