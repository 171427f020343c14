#!/bin/sh
# Status, custom headers and several Set-Cookie lines.
printf 'Status: 201 Created\r\n'
printf 'Content-Type: text/plain\r\n'
printf 'Set-Cookie: a=1; Path=/\r\n'
printf 'Set-Cookie: b=2; HttpOnly\r\n'
printf 'Set-Cookie: c=3\r\n'
printf 'X-Script: status\r\n'
printf '\r\n'
printf 'created'
