#!/bin/sh
# A local redirect to itself, forever.
printf 'Location: /cgi-bin/selfloop.sh\n\n'
