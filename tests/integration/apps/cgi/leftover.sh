#!/bin/sh
# Answers and exits, but leaves a background sleep in its process group that
# holds its stdout open; records the sleep's pid next to itself ("$0.pid").
printf 'Content-Type: text/plain\r\n\r\nanswered'
sleep 123 &
echo "$!" > "$0.pid.tmp" && mv "$0.pid.tmp" "$0.pid"
exit 0
