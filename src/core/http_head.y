%name atr_http_head
main ::= .
