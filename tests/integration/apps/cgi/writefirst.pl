#!/usr/bin/perl
# Writes 1 MiB of output BEFORE it reads any of its request body, then reads
# CONTENT_LENGTH bytes of body and appends "|len=N sha256=HEX". A gateway that
# writes the whole body before reading any output deadlocks on this script.
use strict;
use warnings;
use Digest::SHA;
binmode STDIN;
binmode STDOUT;
$| = 1;
print "Content-Type: application/octet-stream\r\n\r\n";
my $block = 'o' x 65536;
print $block for 1 .. 16;
my $want = ($ENV{CONTENT_LENGTH} || '') =~ /^(\d+)$/ ? $1 : 0;
my $sha = Digest::SHA->new(256);
my ($len, $buf) = (0, '');
while ($len < $want) {
    my $n = sysread(STDIN, $buf, $want - $len > 65536 ? 65536 : $want - $len);
    die "read: $!" unless defined $n;
    last if $n == 0;
    $len += $n;
    $sha->add($buf);
}
print "|len=$len sha256=" . $sha->hexdigest;
