/* placeholder: being written */ typedef int atr_placeholder_fcgi_proto;
