#!/bin/sh
# Runaway: never writes anything, burns CPU.
while :; do :; done
