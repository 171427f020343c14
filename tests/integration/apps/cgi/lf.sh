#!/bin/sh
# Headers ended with bare LF, as plain echo writes them.
echo "Content-Type: text/plain"
echo "X-Lf: yes"
echo ""
echo "lf body"
