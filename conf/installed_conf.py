#!/usr/bin/env python3
"""The default config as installed: conf/atrium.conf with its paths moved from the
source tree to the system (the demo page under DATADIR, logs and the pid file where
the unit and the logrotate snippet expect them). Every rewrite must match exactly
once, so that an edit to conf/atrium.conf that breaks one fails the build instead of
shipping a config that points into a source tree.

usage: installed_conf.py IN OUT WWW_DIR LOG_DIR RUN_DIR"""
import sys

src, out, www, logs, run = sys.argv[1:6]
rewrites = [
    ("error_log stderr info;", "error_log %s/error.log info;" % logs),
    ("access_log stdout combined;", "access_log %s/access.log combined;" % logs),
    # -s reload|stop|reopen and the logrotate snippet find the process by it.
    ("listen 127.0.0.1:8080;", "pid_file %s/atrium.pid;\n\nlisten 127.0.0.1:8080;" % run),
    ("control atrium.sock;           # relative paths follow this file's directory",
     "control %s/atrium.sock;       # mode 0600, owned by the user atrium runs as" % run),
    ("static www; }            # relative paths follow this file's directory",
     "static %s; }  # the demo page" % www),
]
text = open(src).read()
for old, new in rewrites:
    if text.count(old) != 1:
        sys.exit("%s: expected '%s' exactly once" % (src, old))
    text = text.replace(old, new)
head = "# Installed from Atrium's conf/atrium.conf; logs go to %s (rotated by logrotate).\n" % logs
open(out, "w").write(head + text)
