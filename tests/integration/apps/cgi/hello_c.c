/* The smallest compiled CGI program; the test builds it with gcc. */
#include <stdio.h>

int main(void)
{
    fputs("Content-Type: text/plain\r\n\r\nC ok", stdout);
    return 0;
}
