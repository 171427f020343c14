#!/bin/sh
# Runaway with a child: starts a background sleep, records both pids next to
# itself ("$0.pids"), then loops without output.
sleep 60 &
echo "$$ $!" > "$0.pids.tmp" && mv "$0.pids.tmp" "$0.pids"
while :; do sleep 0.05; done
