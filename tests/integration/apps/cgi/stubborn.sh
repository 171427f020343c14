#!/bin/sh
# Runaway that ignores SIGTERM: only SIGKILL stops it.
trap '' TERM
echo "$$" > "$0.pid.tmp" && mv "$0.pid.tmp" "$0.pid"
while :; do sleep 0.05; done
