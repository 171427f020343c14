/* placeholder: being written */ typedef int atr_placeholder_cgi_env;
