#!/bin/sh
# A client redirect: Location with a full URL and no Status (RFC 3875 6.2.4).
printf 'Location: http://elsewhere.test/landing?x=1\r\n\r\n'
