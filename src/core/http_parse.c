/* placeholder: being written */ typedef int atr_placeholder_http_parse;
