#!/bin/sh
# A redirect with a cookie (RFC 3875 6.2.2 allows a local redirect only when
# Location is the only header): the client must get the 302 and the cookie.
printf 'Set-Cookie: session=abc; Path=/\nLocation: /cgi-bin/other.sh/p\n\n'
