#!/bin/sh
# Answers, then leaves a grandchild in a session of its own that keeps the
# script's stderr open: the script is reaped long before its stderr ends.
printf 'Content-Type: text/plain\r\n\r\ndetached'
setsid sleep 60 >/dev/null </dev/null &
echo "$!" > "$0.pid.tmp" && mv "$0.pid.tmp" "$0.pid"
