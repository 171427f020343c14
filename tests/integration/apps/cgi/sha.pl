#!/usr/bin/perl
# Reads exactly CONTENT_LENGTH bytes of request body (RFC 3875 4.2: no EOF is
# needed) and answers their length and SHA-256.
use strict;
use warnings;
use Digest::SHA;
binmode STDIN;
my $cl = defined $ENV{CONTENT_LENGTH} ? $ENV{CONTENT_LENGTH} : '';
my $want = $cl =~ /^\d+$/ ? $cl : 0;
my $sha = Digest::SHA->new(256);
my ($len, $buf) = (0, '');
while ($len < $want) {
    my $n = sysread(STDIN, $buf, $want - $len > 65536 ? 65536 : $want - $len);
    die "read: $!" unless defined $n;
    last if $n == 0;
    $len += $n;
    $sha->add($buf);
}
print "Content-Type: text/plain\r\n\r\nlen=$len sha256=" . $sha->hexdigest . " content_length=$cl";
