#!/bin/sh
# Writes half a header line, then exits.
printf 'Content-Type: text/pl'
exit 0
