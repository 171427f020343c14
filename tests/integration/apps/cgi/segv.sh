#!/bin/sh
# Dies by SIGSEGV before writing anything.
kill -SEGV $$
sleep 5
