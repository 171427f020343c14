#!/bin/sh
# Reads its stdin to EOF, as cat, wc and most filters do: it only answers
# once the server has closed the script's stdin after the request body.
n=$(wc -c)
printf 'Content-Type: text/plain\r\n\r\nread=%s' "$n"
