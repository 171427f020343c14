#!/bin/sh
# The target of redir.sh: shows what it was run with.
printf 'Content-Type: text/plain\r\n\r\n'
printf 'other PATH_INFO=%s METHOD=%s SCRIPT_NAME=%s' "$PATH_INFO" "$REQUEST_METHOD" "$SCRIPT_NAME"
