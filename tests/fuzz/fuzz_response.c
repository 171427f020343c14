/* libFuzzer target: backend response heads (status line or CGI header block)
 * and their bodies on one connection, fed whole, split and byte by byte. The
 * request method they answer (GET, HEAD or CONNECT) is chosen from the input
 * length. The driver is shared with fuzz_request.c. */
#define FUZZ_RESPONSE 1
#include "fuzz_request.c"
