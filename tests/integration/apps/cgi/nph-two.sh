#!/bin/sh
# A status line and a Status field: which one is meant? Never forwarded.
printf 'HTTP/1.1 200 OK\r\nStatus: 500 Bad\r\nContent-Type: text/plain\r\n\r\nwhich'
