#!/usr/bin/perl
# The smallest Perl CGI script.
print "Content-Type: text/plain\r\n\r\nperl ok";
