/* atrium: command line. -c FILE runs in the foreground, -t checks the
 * configuration exactly as a start would, -T dumps the effective
 * configuration, -v prints versions. */
#include <ares.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "backends/backend.h"
#include "conf/conf.h"
#include "core/modules.h"
#include "core/runtime.h"

#define DEFAULT_CONF "conf/atrium.conf"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: atrium [-c FILE] [-t] [-T] [-v] [-h]\n"
            "  -c, --config FILE  configuration file (default " DEFAULT_CONF ")\n"
            "  -t, --test         check the configuration and exit (1 on error)\n"
            "  -T, --dump         check, then print the effective configuration\n"
            "  -v, --version      print the versions of atrium and its libraries\n"
            "  -h, --help         print this help\n"
            "Signals: HUP reloads the configuration, TERM and INT stop gracefully,\n"
            "USR1 reopens the log files. docs/config.md describes the configuration.\n");
}

/* Descriptors Atrium inherited must not reach the scripts and applications
 * it starts: mark every one above stderr close-on-exec. */
static void cloexec_inherited(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != dirfd(d))
            fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    }
    closedir(d);
}

static void versions(void)
{
    printf("atrium %s\n", ATR_VERSION);
    printf("libuv %s\n", uv_version_string());
    printf("BoringSSL (%s, API %d)\n", OPENSSL_VERSION_TEXT, BORINGSSL_API_VERSION);
    printf("c-ares %s\n", ares_version(NULL));
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONF;
    int check = 0, dump = 0, opt;
    static const struct option longs[] = {
        { "config", required_argument, NULL, 'c' }, { "test", no_argument, NULL, 't' },
        { "dump", no_argument, NULL, 'T' },          { "version", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
    };
    while ((opt = getopt_long(argc, argv, "c:tTvh", longs, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': check = 1; break;
        case 'T': dump = 1; break;
        case 'v': versions(); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    atr_modules_register();
    char err[1024] = "";
    atr_conf_use_protocols(&atr_backend_registry); /* before any load, reloads included */
    atr_conf_t *conf = atr_conf_load(path, err, sizeof err);
    if (conf == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if ((check || dump) && atr_runtime_check(conf, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        atr_conf_free(conf);
        return 1;
    }
    if (check || dump) {
        if (dump)
            atr_conf_dump(conf, stdout);
        else
            fprintf(stderr, "atrium: configuration %s is ok\n", path);
        atr_conf_free(conf);
        return 0;
    }
    cloexec_inherited();
    return atr_runtime_run(conf);
}
