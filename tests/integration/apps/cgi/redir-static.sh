#!/bin/sh
# A local redirect to a static file.
printf 'Location: /pub/a.txt\n\n'
