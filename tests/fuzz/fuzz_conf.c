/* libFuzzer target: the configuration language, end to end. Every input is
 * loaded with atr_conf_load_string (DNS lookups off); a failure must leave
 * exactly one non-empty line in err, a success must dump to text that loads
 * again and dumps identically. Everything is freed, so LeakSanitizer checks
 * the arena too. Includes run against a scratch directory made at start-up
 * (two small files and one that includes itself); inputs naming /dev, /proc
 * or /sys are skipped so that no input can block on a device. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "conf/conf.h"

#include "fuzz.h"

static void put(const char *name, const char *text)
{
    FILE *f = fopen(name, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static char dir[] = "/tmp/atr-fuzz-conf-XXXXXX";

static void cleanup(void)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atr_conf_use_protocols(&atr_backend_registry); /* as main.c does */
    CHECK(mkdtemp(dir) != NULL);
    CHECK(chdir(dir) == 0);
    atexit(cleanup);
    put("a.conf", "listen 8081;\n");
    put("b.conf", "server 127.0.0.1:9001 weight=2;\n");
    put("loop.conf", "include loop.conf;\n");
    CHECK(system("mkdir -p www") == 0);
    return 0;
}

static char *dump(const atr_conf_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    atr_conf_dump(c, f);
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    if (memmem(data, size, "/dev", 4) != NULL || memmem(data, size, "/proc", 5) != NULL ||
        memmem(data, size, "/sys", 4) != NULL)
        return 0;
    atr_conf_t *c = atr_conf_load_string_ex("fuzz.conf", (const char *)data, size, ATR_CONF_NO_DNS,
                                            err, sizeof(err));
    if (c == NULL) {
        /* One error per line (every mistake is listed), each with a position,
         * no other control byte, no empty line. */
        CHECK(err[0] != '\0');
        int lines = 0;
        for (const char *l = err; *l; lines++) {
            const char *nl = strchr(l, '\n');
            size_t n = nl ? (size_t)(nl - l) : strlen(l);
            CHECK(n > 0 && memchr(l, ':', n) != NULL);
            for (size_t i = 0; i < n; i++)
                CHECK((unsigned char)l[i] >= 0x20 && l[i] != 0x7f);
            l += n + (nl != NULL);
        }
        CHECK(lines >= 1 && lines <= 20);
        return 0;
    }
    char *d1 = dump(c);
    atr_conf_t *c2 =
        atr_conf_load_string_ex("fuzz.conf", d1, strlen(d1), ATR_CONF_NO_DNS, err, sizeof(err));
    if (c2 == NULL) {
        fprintf(stderr, "dump does not load: %s\n%s\n", err, d1);
        abort();
    }
    char *d2 = dump(c2);
    if (strcmp(d1, d2) != 0) {
        fprintf(stderr, "dumps differ:\n%s\n----\n%s\n", d1, d2);
        abort();
    }
    free(d2);
    free(d1);
    atr_conf_free(c2);
    atr_conf_free(c);
    return 0;
}
