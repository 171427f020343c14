%name atr_conf_grammar
main ::= .
