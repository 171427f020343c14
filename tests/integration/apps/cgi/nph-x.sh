#!/bin/sh
# A non-parsed-header script: it writes the status line itself.
printf 'HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\nX-Nph: yes\r\nContent-Length: 6\r\n\r\nnph ok'
