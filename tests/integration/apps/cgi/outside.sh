#!/bin/sh
# Installed OUTSIDE the CGI directory: it must never run. If it does, it
# leaves a marker file next to itself.
touch "$0.ran"
printf 'Content-Type: text/plain\r\n\r\nOUTSIDE RAN'
