#!/bin/sh
# A local redirect (RFC 3875 6.2.2): only a Location with a local path.
printf 'Location: /cgi-bin/other.sh/p\n\n'
