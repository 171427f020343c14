#!/bin/sh
# The smallest shell CGI script: CRLF header, plain body.
printf 'Content-Type: text/plain\r\n\r\nshell ok'
