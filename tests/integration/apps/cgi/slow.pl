#!/usr/bin/perl
# Takes a while (seconds from the query string, default 0.3), then answers.
# Perl and select(): no child process, so that counting the processes whose
# command line names this script counts exactly the running scripts (a shell
# would briefly show forked copies of itself before exec'ing sleep).
use strict;
use warnings;
my $q = defined $ENV{QUERY_STRING} ? $ENV{QUERY_STRING} : '';
my $t = $q =~ /^(\d+(?:\.\d+)?)$/ ? $1 : 0.3;
select(undef, undef, undef, $t);
print "Content-Type: text/plain\r\n\r\nslow ok";
