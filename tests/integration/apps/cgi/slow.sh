#!/bin/sh
# Takes a while (SLOW seconds, from the query string, default 0.3), then answers.
t=${QUERY_STRING:-0.3}
case $t in *[!0-9.]*) t=0.3 ;; esac
sleep "$t"
printf 'Content-Type: text/plain\r\n\r\nslow ok'
