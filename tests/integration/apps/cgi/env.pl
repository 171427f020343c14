#!/usr/bin/perl
# The whole environment the script was given, as one JSON object.
use strict;
use warnings;
use JSON::PP;
binmode STDOUT;
my $json = JSON::PP->new->canonical->encode({%ENV});
print "Content-Type: application/json\r\nContent-Length: " . length($json) . "\r\n\r\n$json";
